package announce_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"grapevine/announce"
	"grapevine/internal/testkit"
)

// fuzzSeed is the ed25519 seed of the key that signs the hand-made seeds, so
// that the fuzzer starts from inputs that pass the signature check and reach
// the parser.
var fuzzSeed = bytes.Repeat([]byte{7}, ed25519.SeedSize)

// signRaw signs arbitrary bytes (not necessarily an announcement) with the
// fuzz key, in Tahoe's wire form.
func signRaw(msg string) announce.Signed {
	priv := ed25519.NewKeyFromSeed(fuzzSeed)
	return announce.Signed{
		Msg: msg,
		Sig: announce.V0Prefix + announce.EncodeBase32(ed25519.Sign(priv, []byte(msg))),
		Key: string(announce.IDOf(priv.Public().(ed25519.PublicKey))),
	}
}

func FuzzVerify(f *testing.F) {
	vectors := testkit.TahoeVectors(f)
	for _, v := range vectors {
		f.Add(v.Msg, v.Sig, v.Key)
	}
	good := vectors[0]
	key, err := announce.NewPrivateKey(fuzzSeed)
	if err != nil {
		f.Fatal(err)
	}
	built := announce.Sign(key, announce.Build(key, announce.Template{
		Nickname: "fuzz \u00e9\U0001F600",
		Service:  announce.Service{Name: "storage"},
		Locators: []string{"gv://" + string(key.ID()) + "@127.0.0.1:7370"},
	}, 3))
	withdrawn := announce.Sign(key, announce.Build(key, announce.Template{
		Service: announce.Service{Name: "storage"}, Withdrawn: true,
	}, 4))
	seeds := []announce.Signed{
		built,
		withdrawn,
		{},
		{Msg: good.Msg},
		{Msg: good.Msg, Sig: good.Sig},
		{Msg: good.Msg, Sig: "v0-", Key: good.Key},
		{Msg: good.Msg, Sig: good.Sig[:len(good.Sig)-1], Key: good.Key},
		{Msg: good.Msg, Sig: good.Sig + "a", Key: good.Key},
		{Msg: good.Msg, Sig: strings.ToUpper(good.Sig), Key: good.Key},
		{Msg: good.Msg, Sig: good.Sig, Key: "v0-"},
		{Msg: good.Msg, Sig: good.Sig, Key: "pub-v0-" + strings.TrimPrefix(good.Key, "v0-")},
		{Msg: good.Msg, Sig: good.Sig, Key: good.Key + "="},
		// Trailing bits set: a non-canonical spelling of the key.
		{Msg: good.Msg, Sig: good.Sig, Key: good.Key[:len(good.Key)-1] + "7"},
		{Msg: strings.Repeat(" ", announce.MaxMsgSize+1), Sig: good.Sig, Key: good.Key},
		// Validly signed, but the signed bytes are not an announcement.
		signRaw(""),
		signRaw("not json"),
		signRaw(`[1, 2, 3]`),
		signRaw(`{}`),
		signRaw(`{"service-name": ""}`),
		signRaw(`{"service-name": 7}`),
		signRaw(`{"service-name": "storage"}`),
		signRaw(`{"service-name": "storage", "seqnum": "1"}`),
		signRaw(`{"service-name": "storage", "seqnum": 1.5}`),
		signRaw(`{"service-name": "storage", "seqnum": 1e400}`),
		signRaw(`{"service-name": "storage", "seqnum": 99999999999999999999}`),
		signRaw(`{"service-name": "storage", "service-name": "x"}`),
		signRaw(`{"service-name": "st\ud800orage", "seqnum": -1}`),
		signRaw("{\"service-name\": \"\xff\"}"),
	}
	for _, s := range seeds {
		f.Add(s.Msg, s.Sig, s.Key)
	}

	f.Fuzz(func(t *testing.T, msg, sig, keyText string) {
		s := announce.Signed{Msg: msg, Sig: sig, Key: keyText}
		a, err := announce.Verify(s)
		checkAnnouncement(t, "Verify", s, a, err)
		// The fuzzer rarely forges a signature, so also drive the parse step
		// that follows a good one directly.
		a, err = announce.ParseUnverified(s)
		checkAnnouncement(t, "ParseUnverified", s, a, err)
	})
}

func checkAnnouncement(t *testing.T, fn string, s announce.Signed, a *announce.Announcement, err error) {
	t.Helper()
	if err != nil {
		var ae *announce.Error
		if !errors.As(err, &ae) {
			t.Fatalf("%s: error %T (%v) is not an *announce.Error", fn, err, err)
		}
		if ae.Reason == "" {
			t.Fatalf("%s: error %v has no Reason", fn, err)
		}
		if a != nil {
			t.Fatalf("%s: returned both an announcement and %v", fn, err)
		}
		return
	}
	if a == nil {
		t.Fatalf("%s: no announcement and no error", fn)
	}
	if a.ServiceName == "" {
		t.Fatalf("%s: accepted with an empty service name", fn)
	}
	if a.Signed != s || string(a.ID) != s.Key {
		t.Fatalf("%s: announcement does not carry its signed record", fn)
	}
	if a.Body.Kind != announce.Object {
		t.Fatalf("%s: body is not an object", fn)
	}
	if a.HasSeqnum == (a.SeqnumProblem != "") {
		t.Fatalf("%s: HasSeqnum %v with problem %q", fn, a.HasSeqnum, a.SeqnumProblem)
	}
}

func FuzzParseJSON(f *testing.F) {
	for _, v := range testkit.TahoeVectors(f) {
		f.Add([]byte(v.Msg))
		f.Add([]byte(v.AnnDict))
	}
	for _, s := range []string{
		``,
		` `,
		`null`, `true`, `false`, `0`, `-0`, `-0.0`, `1.0`, `1e16`, `1E16`, `1e15`, `1e-5`,
		`0.1e1`, `1e400`, `-1e400`, `1e-400`, `2.5e-324`, `1.7976931348623157e308`,
		`123456789012345678901234567890`, `-123456789012345678901234567890`,
		`9223372036854775807`, `9223372036854775808`, `01`, `1.`, `.5`, `-`, `1e`, `+1`,
		`""`, `"a\"b\\c\/d\b\f\n\r\t"`, `"\u0000\u001f\u007f\u0080\u00ff"`,
		`"\u00e9\u4e2d\uffff"`, `"\ud83d\ude00"`, `"\uD83D\uDE00"`, `"\ud83d"`, `"\ude00"`,
		`"\ud83d\u0041"`, `"\ude00\ud83d"`, `"\ud83d\ud83d\ude00"`, `"\ud83d\uzzzz"`,
		"\"\u00e9\U0001F600\u2028\"", "\"\xff\"", "\"\xed\xa0\x80\"", "\"a\tb\"",
		`[]`, `[[]]`, `[[[], [[]]], [1, [2, [3]]]]`, `[1,]`, `[,1]`, `[1 2]`,
		`{}`, `{"a": {"b": {"c": [1, {"d": null}]}}}`, `{"a": 1, "a": 2}`, `{"a": 1,}`,
		`{"a" 1}`, `{1: 2}`, "{\"\\u0061\": 1, \"a\": 2}",
		" \t\r\n{ \"k\" : [ true , false , null ] } \n",
		strings.Repeat("[", 40) + strings.Repeat("]", 40),
		`[` + strings.Repeat("9", 500) + `]`,
		`truex`, `nul`, `[true false]`,
		`NaN`, `[Infinity, -Infinity]`, `-NaN`, `{"a": NaN, "a": 1e400}`,
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := announce.ParseJSON(data)
		if err != nil {
			var se *announce.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("ParseJSON: error %T (%v) is not a *SyntaxError", err, err)
			}
			// Everything Go's encoding/json takes must parse, except what
			// Python refuses too (invalid UTF-8, integers over 4300
			// digits) and nesting beyond MaxDepth.
			if json.Valid(data) && utf8.Valid(data) && !expectedRefusal(se) {
				t.Fatalf("ParseJSON(%q): %v, but encoding/json accepts it", data, err)
			}
			return
		}
		// Python's NaN, Infinity and -Infinity are not JSON; the exact
		// verdicts are FuzzJSONAgainstPython's to check.
		if !json.Valid(data) && !bytes.Contains(data, []byte("NaN")) && !bytes.Contains(data, []byte("Infinity")) {
			t.Fatalf("ParseJSON(%q) succeeded, but it is not valid JSON", data)
		}
		enc := announce.EncodePython(v)
		for _, c := range enc {
			if c < 0x20 || c > 0x7e {
				t.Fatalf("EncodePython(%q) = %q: not printable ASCII", data, enc)
			}
		}
		v2, err := announce.ParseJSON(enc)
		if err != nil {
			t.Fatalf("ParseJSON(EncodePython(ParseJSON(%q))) = ParseJSON(%q): %v", data, enc, err)
		}
		if !v2.Equal(v) || !v.Equal(v2) {
			t.Fatalf("round trip of %q through %q changed the value", data, enc)
		}
		if enc2 := announce.EncodePython(v2); !bytes.Equal(enc2, enc) {
			t.Fatalf("EncodePython is not idempotent on %q:\n first %q\nsecond %q", data, enc, enc2)
		}
	})
}

// expectedRefusal: inputs encoding/json takes that ParseJSON refuses.
func expectedRefusal(se *announce.SyntaxError) bool {
	return se.Msg == "nesting too deep" || se.Msg == "integer too long"
}
