package announce_test

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"grapevine/announce"
	"grapevine/internal/testkit"
)

func expectedErr(t *testing.T, outcome string) error {
	switch {
	case outcome == "ok":
		return nil
	case outcome == "BadSignature":
		return announce.ErrBadSignature
	case strings.HasPrefix(outcome, "UnknownKeyError"):
		return announce.ErrUnknownFormat
	}
	t.Fatalf("vector outcome %q has no mapping", outcome)
	return nil
}

func TestTahoeVectors(t *testing.T) {
	vectors := testkit.TahoeVectors(t)
	resigned := 0
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			if v.MsgHex != "" {
				raw, err := hex.DecodeString(v.MsgHex)
				if err != nil || string(raw) != v.Msg {
					t.Fatalf("msg_hex does not match msg")
				}
			}
			want := expectedErr(t, v.Verify)
			a, err := announce.Verify(announce.Signed{Msg: v.Msg, Sig: v.Sig, Key: v.Key})
			if want == nil {
				if err != nil {
					t.Fatalf("Verify: %v, want ok", err)
				}
				if a.ServiceName != "storage" || !a.HasSeqnum {
					t.Fatalf("parsed %q seqnum ok=%v", a.ServiceName, a.HasSeqnum)
				}
			} else if !errors.Is(err, want) {
				t.Fatalf("Verify: %v, want %v", err, want)
			}
			if v.SeedHex == "" {
				return
			}
			seed, _ := hex.DecodeString(v.SeedHex)
			key, err := announce.NewPrivateKey(seed)
			if err != nil {
				t.Fatal(err)
			}
			if got := key.String(); got != v.Privkey {
				t.Errorf("privkey %s, want %s", got, v.Privkey)
			}
			parsed, err := announce.ParsePrivateKey(v.Privkey)
			if err != nil || parsed.String() != v.Privkey {
				t.Errorf("ParsePrivateKey round trip: %v", err)
			}
			if got := key.PublicKeyFile(); got != v.Pubkey {
				t.Errorf("pubkey %s, want %s", got, v.Pubkey)
			}
			if got := string(key.ID()); got != v.Key {
				t.Errorf("key %s, want %s", got, v.Key)
			}
			dict, err := announce.ParseJSON(v.AnnDict)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(announce.EncodePython(dict)); got != v.Msg {
				t.Fatalf("encoding differs from Tahoe's msg:\n got %s\nwant %s", got, v.Msg)
			}
			if a != nil && !a.Body.Equal(dict) {
				t.Errorf("parsed msg differs from ann_dict")
			}
			s := announce.Sign(key, dict)
			if s.Msg != v.Msg || s.Sig != v.Sig || s.Key != v.Key {
				t.Fatalf("re-signed %+v, want sig %s", s, v.Sig)
			}
			resigned++
		})
	}
	if resigned == 0 {
		t.Fatal("no vector was re-signed")
	}
}

func TestBase32Canonical(t *testing.T) {
	key := "vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq"
	if _, err := announce.DecodeBase32(key); err != nil {
		t.Fatal(err)
	}
	// 'q' is 16 = 0b10000: the low 4 bits are unused. 'r' sets one of them.
	if _, err := announce.DecodeBase32(key[:len(key)-1] + "r"); !errors.Is(err, announce.ErrNonCanonical) {
		t.Fatalf("non-canonical spelling: %v", err)
	}
	for _, bad := range []string{"VHHM", "a", "abc!"} {
		if _, err := announce.DecodeBase32(bad); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
	for n := range 70 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*37 + n)
		}
		got, err := announce.DecodeBase32(announce.EncodeBase32(b))
		if err != nil || string(got) != string(b) {
			t.Fatalf("%d bytes: round trip %v", n, err)
		}
	}
}

// TahoePermutationSeed is what Tahoe-LAFS 1.20's own code announces. The
// expected seeds were produced by running Tahoe's
// allmydata.client._Client._init_permutation_seed (a node without shares
// and without a permutation-seed file) on the public keys of these
// node.privkey files, under /usr/bin/python3 with Tahoe's source on
// sys.path. They are base32 of the 52 ASCII characters of the key's text,
// not of its 32 bytes.
func TestTahoePermutationSeed(t *testing.T) {
	for _, c := range []struct{ privkey, pubkey, seed string }{
		{ // the alpha key of testdata/tahoe
			"priv-v0-4yfortuyhkqbd2sxlmigvvyy4nfpgjm47flr7pj6ecahzos5qxva",
			"pub-v0-vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq",
			"ozugq3lkpfvhaytnne3gcy3hnn3wk6dqnjxg2zzvoj4w62lmpa2xk4drnzwxmn3wgy3xqndjonsdi5dvpfyq",
		},
		{ // the key whose seed is 32 bytes of 7
			"priv-v0-a4dqobyha4dqobyha4dqobyha4dqobyha4dqobyha4dqobyha4dq",
			"pub-v0-5jfgyy7ctrjavpxvkb5rglwf7gkuo5vox27hxescd3vgsfcg2iwa",
			"gvvgmz3zpe3wg5dsnjqxm4dyozvwenlsm5whozrxm5vxk3zvozxxqmrxnb4gk43dmqzxmz3tmzrwomtjo5qq",
		},
	} {
		key, err := announce.ParsePrivateKey(c.privkey)
		if err != nil {
			t.Fatal(err)
		}
		if got := key.PublicKeyFile(); got != c.pubkey {
			t.Fatalf("%s: public key %s, want %s", c.privkey, got, c.pubkey)
		}
		got := announce.TahoePermutationSeed(key.Public())
		if got != c.seed || len(got) != 84 {
			t.Errorf("%s: seed %s, want Tahoe's %s", c.pubkey, got, c.seed)
		}
		raw, err := announce.DecodeBase32(got)
		if err != nil || string(raw) != strings.TrimPrefix(c.pubkey, announce.PubPrefix) {
			t.Errorf("%s: seed decodes to %q (%v), want the key's text", c.pubkey, raw, err)
		}

		// Build announces it, unless the template gives the seed.
		seedOf := func(tmpl announce.Template) string {
			v, _ := announce.Build(key, tmpl, 1).Get("permutation-seed-base32")
			return v.Str
		}
		if s := seedOf(announce.Template{Service: announce.Service{Name: "storage"}}); s != c.seed {
			t.Errorf("%s: Build announces seed %s, want %s", c.pubkey, s, c.seed)
		}
		own := "u33m4y7klhz3bypswqkozwetvabelhxt" // a Tub ID's, as a pre-#466 server keeps
		if s := seedOf(announce.Template{Service: announce.Service{Name: "storage"}, PermutationSeed: own}); s != own {
			t.Errorf("%s: Build with an explicit seed announces %s, want %s", c.pubkey, s, own)
		}
	}
}
