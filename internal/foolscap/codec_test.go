package foolscap

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strings"
	"testing"
)

// pyCapture is one byte sequence produced by python3-foolscap
// (testdata/capture.py writes captures_test.go).
type pyCapture struct {
	name  string
	vocab int
	hex   string
}

var testLimits = decodeLimits{maxDepth: 64, maxItems: 100000, maxMessageBytes: 1 << 20, maxVocab: 1024}

// decodeAll decodes a complete byte string into messages.
func decodeAll(data []byte, vocab int, lim decodeLimits, topValues bool) ([]*message, error) {
	tr := newTokenReader(bufio.NewReader(bytes.NewReader(data)), 1<<16)
	d := newDecoder(lim, nil, initialVocabTables[vocab])
	d.topValues = topValues
	var out []*message
	for {
		t, err := tr.next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		m, err := d.feed(t)
		if err != nil {
			return out, err
		}
		if m != nil {
			out = append(out, m)
		}
	}
}

// encodeMessages re-encodes decoded messages on a fresh connection state.
func encodeMessages(msgs []*message, vocab int) ([]byte, error) {
	e := newEncoder(initialVocabTables[vocab], nil, nil)
	var out []byte
	for _, m := range msgs {
		e.begin()
		var err error
		switch m.kind {
		case mCall:
			kw := map[string]Value{}
			for _, k := range m.kwargs {
				kw[k.Name] = k.Value
			}
			err = e.call(m.reqID, m.target, m.method, m.args, kw)
		case mAnswer:
			err = e.answer(m.reqID, m.value)
		case mError:
			e.errorAnswer(m.reqID, m.value.(*RemoteError))
		case mValue:
			err = e.value(m.value)
		default:
			err = fmt.Errorf("cannot re-encode message kind %d", m.kind)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e.commit()...)
	}
	return out, nil
}

func bigPow(base, exp int64, neg bool) *big.Int {
	b := new(big.Int).Exp(big.NewInt(base), big.NewInt(exp), nil)
	if neg {
		b.Neg(b)
	}
	return b
}

func bs(s string) []byte { return []byte(s) }

var annT = Tuple{bs(`{"service-name": "storage"}`), bs("v0-sig"), bs("v0-key")}

// answers holds the value of the single answer in each value capture.
var answers = map[string]Value{
	"none":            nil,
	"true":            true,
	"false":           false,
	"int0":            int64(0),
	"int127":          int64(127),
	"int128":          int64(128),
	"int2_31m1":       int64(1<<31 - 1),
	"int2_31":         int64(1 << 31),
	"neg1":            int64(-1),
	"neg2_31":         int64(-1 << 31),
	"neg2_31m1":       int64(-1<<31 - 1),
	"int2_64":         bigPow(2, 64, false),
	"neg2_100":        bigPow(2, 100, true),
	"float":           1.5,
	"bytes_empty":     []byte{},
	"bytes":           bs("hello"),
	"bytes_vocabword": bs("list"),
	"unicode_empty":   "",
	"unicode":         "h\u00e9llo \u4e2d",
	"list_empty":      List{},
	"list":            List{int64(1), bs("a"), nil},
	"tuple_empty":     Tuple{},
	"tuple":           Tuple{bs("x")},
	"dict":            Dict{{bs("k"), bs("v")}, {bs("n"), int64(1)}},
	"dict_empty":      Dict{},
	"set":             Set{bs("only")},
	"frozenset":       FrozenSet{bs("a")},
	"nested":          Dict{{bs("list"), List{Tuple{int64(1), int64(2)}, Dict{{bs("x"), List{nil, true}}}}}},
	"decimal":         Decimal("1.25"),
	"shared_list":     List{List{int64(1)}, List{int64(1)}},
	"shared_tuple":    List{Tuple{bs("t"), int64(2)}, Tuple{bs("t"), int64(2)}},
	"vocab0_list":     List{bs("list"), "tuple"},
	"ann_set":         Set{annT},
	"subscriber_info": Dict{{bs("app-versions"), List{}}, {bs("my-version"), bs("tahoe-lafs/1.20")},
		{bs("nickname"), "n\u00efck"}, {bs("oldest-supported"), bs("1.0")}, {bs("version"), int64(0)}},
}

// decodeOnly lists captures our encoder cannot reproduce byte for byte:
// shared references (we never send 'reference') and a set-vocab exchange.
var decodeOnly = map[string]bool{
	"shared_list": true, "shared_tuple": true, "set_vocab": true, "ping_pong": true,
}

var boomFailure = &RemoteError{Type: "builtins.ValueError", Value: "boom", Traceback: "Traceback unavailable\n",
	Parents: []string{"builtins.ValueError", "builtins.Exception", "builtins.BaseException", "builtins.object"}}

type wantMsg struct {
	kind   msgKind
	reqID  int64
	target int64
	method string
	args   []Value
	kwargs []kwarg
	value  Value
}

var messages = map[string][]wantMsg{
	"call_getref": {{kind: mCall, reqID: 1, target: 0, method: "getReferenceByName", args: []Value{},
		kwargs: []kwarg{{"name", bs("swissnum")}}}},
	"call_publish": {{kind: mCall, reqID: 5, target: 1, method: "publish_v2",
		args: []Value{annT, &refPlaceholder{CLID: 1, Extra: 1}}}},
	"call_subscribe": {{kind: mCall, reqID: 6, target: 1, method: "subscribe_v2",
		args: []Value{&refPlaceholder{CLID: 1, Interface: "RIIntroducerSubscriberClient_v2.tahoe.allmydata.com", Extra: 1},
			bs("storage"), Dict{{bs("version"), int64(0)}}}}},
	"call_twice": {
		{kind: mCall, reqID: 7, target: 1, method: "publish_v2", args: []Value{annT, &refPlaceholder{CLID: 1, Extra: 1}}},
		{kind: mCall, reqID: 8, target: 1, method: "publish_v2", args: []Value{annT, &refPlaceholder{CLID: 1}}},
	},
	"call_only": {{kind: mCall, reqID: 0, target: 3, method: "announce_v2", args: []Value{Set{annT}}}},
	"call_kwargs": {{kind: mCall, reqID: 2, target: 0, method: "decref", args: []Value{},
		kwargs: []kwarg{{"clid", int64(1)}, {"count", int64(2)}}}},
	"answer_none":  {{kind: mAnswer, reqID: 3, value: nil}},
	"error":        {{kind: mError, reqID: 4, value: boomFailure}},
	"error_vocab0": {{kind: mError, reqID: 4, value: boomFailure}},
	"set_vocab":    {{kind: mAnswer, reqID: 1, value: List{bs("foo"), bs("bar"), bs("baz")}}},
	"ping_pong":    nil,
}

// valuesEqual compares values structurally (big ints by value, floats by
// bits).
func valuesEqual(a, b Value) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool, int64, string, Decimal:
		return a == b
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case *big.Int:
		y, ok := b.(*big.Int)
		return ok && x.Cmp(y) == 0
	case List:
		y, ok := b.(List)
		return ok && slicesEqual(x, y)
	case Tuple:
		y, ok := b.(Tuple)
		return ok && slicesEqual(x, y)
	case Set:
		y, ok := b.(Set)
		return ok && slicesEqual(x, y)
	case FrozenSet:
		y, ok := b.(FrozenSet)
		return ok && slicesEqual(x, y)
	case Dict:
		y, ok := b.(Dict)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !valuesEqual(x[i].Key, y[i].Key) || !valuesEqual(x[i].Value, y[i].Value) {
				return false
			}
		}
		return true
	case *refPlaceholder:
		y, ok := b.(*refPlaceholder)
		return ok && *x == *y
	case *yourRefPlaceholder:
		y, ok := b.(*yourRefPlaceholder)
		return ok && *x == *y
	case *RemoteError:
		y, ok := b.(*RemoteError)
		return ok && fmt.Sprintf("%#v", *x) == fmt.Sprintf("%#v", *y)
	case *Copyable:
		y, ok := b.(*Copyable)
		return ok && x.Name == y.Name && valuesEqual(x.State, y.State)
	}
	return false
}

func slicesEqual(a, b []Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !valuesEqual(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestPythonCaptures(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range pyCaptures {
		t.Run(c.name, func(t *testing.T) {
			seen[c.name] = true
			data, err := hex.DecodeString(c.hex)
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := decodeAll(data, c.vocab, testLimits, false)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if want, ok := answers[c.name]; ok {
				if len(msgs) != 1 || msgs[0].kind != mAnswer || msgs[0].reqID != 1 {
					t.Fatalf("got %d messages %+v", len(msgs), msgs)
				}
				if !valuesEqual(msgs[0].value, want) {
					t.Fatalf("value = %#v, want %#v", msgs[0].value, want)
				}
			} else if wants, ok := messages[c.name]; ok {
				if len(msgs) != len(wants) {
					t.Fatalf("got %d messages, want %d", len(msgs), len(wants))
				}
				for i, w := range wants {
					m := msgs[i]
					if m.violation != nil {
						t.Fatalf("violation: %v", m.violation)
					}
					if m.kind != w.kind || m.reqID != w.reqID || m.target != w.target || m.method != w.method {
						t.Fatalf("message %d = %+v, want %+v", i, m, w)
					}
					if w.kind == mCall {
						if !slicesEqual(m.args, w.args) {
							t.Fatalf("args = %#v, want %#v", m.args, w.args)
						}
						if len(m.kwargs) != len(w.kwargs) {
							t.Fatalf("kwargs = %#v", m.kwargs)
						}
						for j := range w.kwargs {
							if m.kwargs[j].Name != w.kwargs[j].Name || !valuesEqual(m.kwargs[j].Value, w.kwargs[j].Value) {
								t.Fatalf("kwargs = %#v, want %#v", m.kwargs, w.kwargs)
							}
						}
					} else if !valuesEqual(m.value, w.value) {
						t.Fatalf("value = %#v, want %#v", m.value, w.value)
					}
				}
			} else {
				t.Fatalf("no expectation for capture %q", c.name)
			}
			if decodeOnly[c.name] {
				return
			}
			again, err := encodeMessages(msgs, c.vocab)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !bytes.Equal(again, data) {
				t.Fatalf("re-encoded bytes differ\n got %x\nwant %x", again, data)
			}
		})
	}
	for name := range answers {
		if !seen[name] {
			t.Errorf("capture %q missing from captures_test.go", name)
		}
	}
}

func TestPingPongTokens(t *testing.T) {
	tr := newTokenReader(bufio.NewReader(bytes.NewReader([]byte{0x8e, 0x05, 0x8f})), 100)
	t1, err := tr.next()
	if err != nil || t1.typ != tPING || t1.n != 0 {
		t.Fatalf("%+v %v", t1, err)
	}
	t2, err := tr.next()
	if err != nil || t2.typ != tPONG || t2.n != 5 || t2.off != 1 {
		t.Fatalf("%+v %v", t2, err)
	}
	e := newEncoder(nil, nil, nil)
	e.ping()
	e.pong(5)
	if !bytes.Equal(e.buf, []byte{0x8e, 0x05, 0x8f}) {
		t.Fatalf("%x", e.buf)
	}
}

func TestVocabHashes(t *testing.T) {
	// foolscap's test_banana.VocabTest1.test_table_hashes
	if vocabHash(0) != "da39" || vocabHash(1) != "bb33" {
		t.Fatalf("hashes %s %s", vocabHash(0), vocabHash(1))
	}
}

// tokens builds a byte string from hex fragments.
func tokens(parts ...string) []byte {
	var out []byte
	for _, p := range parts {
		b, err := hex.DecodeString(strings.ReplaceAll(p, " ", ""))
		if err != nil {
			panic(p)
		}
		out = append(out, b...)
	}
	return out
}

func TestDecodeErrors(t *testing.T) {
	answerOpen := "00880d87" + "0181" // OPEN(0) 'answer' reqID 1
	cases := []struct {
		name   string
		data   []byte
		offset int64
		want   string
	}{
		{"top-level primitive", tokens("0181"), 0, "top-level must be OPEN"},
		{"bad type byte", tokens("05ff"), 0, "invalid type byte 0xff"},
		{"oldbanana list", tokens("0180"), 0, "LIST"},
		{"long header", bytes.Repeat([]byte{1}, 65), 0, "token prefix is limited"},
		{"huge string", tokens(answerOpen, "7f7f7f7f0182"), 6, "string too long"},
		{"unknown vocab", tokens(answerOpen, "6487"), 6, "unknown vocab index 100"},
		{"lost sync", tokens(answerOpen, "0081", "0589"), 8, "lost sync"},
		{"close without open", tokens("0089"), 0, "CLOSE without matching OPEN"},
		{"open after open", tokens("00880088"), 2, "OPEN token followed by OPEN"},
		{"none with child", tokens(answerOpen, "0188008700810189"), 10, "'none' does not accept"},
		{"dangling reference", tokens(answerOpen, "018802870581"), 10, "dangling reference"},
		{"bad utf8", tokens(answerOpen, "0188088701 82ff"), 10, "invalid UTF-8"},
		{"duplicate dict key", tokens(answerOpen, "01880387 018261 0081 018261"), 15, "duplicate dict key"},
		{"call stage", tokens("00880b87", "0183"), 4, "request ID must be an INT"},
		{"answer without value", tokens(answerOpen, "0089"), 6, "ended too early"},
		{"oversized error", tokens("7f7f8d"), 0, "oversized ERROR"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeAll(c.data, 1, testLimits, false)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v (%T), want *ProtocolError", err, err)
			}
			if pe.Offset != c.offset || !bytes.Contains([]byte(pe.Msg+pe.Token), []byte(c.want)) {
				t.Fatalf("err = %v, want offset %d and %q", err, c.offset, c.want)
			}
		})
	}
}

func TestDecodeTruncated(t *testing.T) {
	data, _ := hex.DecodeString(pyCaptures[0].hex)
	for i := 1; i < len(data); i++ {
		_, err := decodeAll(data[:i], 1, testLimits, false)
		if err != nil && err != io.ErrUnexpectedEOF {
			t.Fatalf("prefix %d: %v", i, err)
		}
	}
	if _, err := decodeAll(tokens("05826162"), 1, testLimits, false); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated string body: %v", err)
	}
}

func TestDecodeLimits(t *testing.T) {
	lim := decodeLimits{maxDepth: 3, maxItems: 10, maxMessageBytes: 40, maxVocab: 2}
	deep := tokens("00880d87", "0181", "01880487", "02880487", "03880487")
	if _, err := decodeAll(deep, 1, lim, false); err == nil || !bytes.Contains([]byte(err.Error()), []byte("nesting deeper than 3")) {
		t.Fatalf("depth: %v", err)
	}
	many := tokens("00880d87", "0181", "01880487", "0181018101810181018101810181")
	if _, err := decodeAll(many, 1, lim, false); err == nil || !bytes.Contains([]byte(err.Error()), []byte("more than 10 tokens")) {
		t.Fatalf("items: %v", err)
	}
	big := tokens("00880d87", "0181", "2882", hex.EncodeToString(make([]byte, 40)))
	if _, err := decodeAll(big, 1, lim, false); err == nil || !bytes.Contains([]byte(err.Error()), []byte("larger than 40 bytes")) {
		t.Fatalf("bytes: %v", err)
	}
	// add-vocab beyond the table limit (set-vocab to 2 entries first)
	vocab := tokens("0088 09827365742d766f636162", "0081 0182 61", "0181 0182 62", "0089",
		"0188 09826164642d766f636162 0281 0182 63 0189")
	if _, err := decodeAll(vocab, 0, lim, false); err == nil || !bytes.Contains([]byte(err.Error()), []byte("vocab table larger")) {
		t.Fatalf("vocab: %v", err)
	}
}

func TestDecodeViolationsDiscardMessage(t *testing.T) {
	cases := []struct {
		name    string
		data    []byte
		reqID   int64
		aborted bool
		want    string
	}{
		// (call 3 1 "m" (arguments 1 (instance ...))) then a good answer
		{"unknown opentype", tokens("00880b87", "0381", "0181", "01826d", "01880c87", "0181",
			"02880882696e7374616e6365", "0181", "0289", "0189", "0089"), 3, false, "unknown OPEN type (\"instance\")"},
		{"abort", tokens("00880b87", "0381", "0181", "01826d", "01880c87", "0181",
			"02880487", "0181", "028a", "0289", "0189", "0089"), 3, true, "ABORT received"},
		{"gift", tokens("00880d87", "0781", "01881187", "0581", "0382612f62", "0189", "0089"), 7, false, "gifts"},
		{"unknown top-level", tokens("00880487", "0181", "0089"), 0, false, "unknown top-level OPEN type"},
		// a sequence where my-reference expects its interface name string
		{"open in my-reference", tokens("00880d87", "0581", "01880f87", "0181", "02880487", "0181", "0289", "0189", "0089"),
			5, false, "must be strings"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := append(append([]byte(nil), c.data...), tokens("08880d87", "0981", "0081", "0889")...)
			msgs, err := decodeAll(data, 1, testLimits, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 2 {
				t.Fatalf("got %d messages", len(msgs))
			}
			m := msgs[0]
			if m.violation == nil || !bytes.Contains([]byte(m.violation.Msg), []byte(c.want)) {
				t.Fatalf("violation = %v, want %q", m.violation, c.want)
			}
			if m.reqID != c.reqID || m.aborted != c.aborted {
				t.Fatalf("reqID %d aborted %v", m.reqID, m.aborted)
			}
			if a := msgs[1]; a.kind != mAnswer || a.reqID != 9 || a.value != int64(0) || a.violation != nil {
				t.Fatalf("following message = %+v", a)
			}
		})
	}
}

func TestEncodeValues(t *testing.T) {
	e := newEncoder(initialVocabTables[1], nil, nil)
	cases := []struct {
		v    Value
		want string
	}{
		{int(5), "0581"},
		{uint64(1 << 40), "068501" + "0000000000"},
		{int32(-2), "0283"},
		{float32(0.5), "843fe0000000000000"},
		{[]Value{true}, "0088048701880187018101890089"},
		{bs("tuple"), "0587"},
		{Copyable{}, ""},
	}
	for _, c := range cases {
		e.begin()
		err := e.value(c.v)
		if c.want == "" {
			if err == nil {
				t.Errorf("%T: expected an error", c.v)
			}
			e.rollback()
			continue
		}
		if err != nil {
			t.Fatalf("%#v: %v", c.v, err)
		}
		if got := hex.EncodeToString(e.commit()); got != c.want {
			t.Errorf("%#v: got %s want %s", c.v, got, c.want)
		}
		e.openCount = 0
	}
	e.begin()
	if err := e.value("\xff"); err == nil {
		t.Error("invalid UTF-8 string encoded")
	}
	e.rollback()
	if e.openCount != 0 || len(e.buf) != 0 {
		t.Error("rollback left state behind")
	}
}
