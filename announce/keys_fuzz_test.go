package announce

import "testing"

// FuzzParseKeyFiles: the key-file and locator parsers never panic, and
// what they accept prints back to the same text.
func FuzzParseKeyFiles(f *testing.F) {
	f.Add("priv-v0-4yfortuyhkqbd2sxlmigvvyy4nfpgjm47flr7pj6ecahzos5qxva")
	f.Add("pub-v0-vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq\n")
	f.Add("gv://v0-vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq@[::1]:7370")
	f.Add("v0-vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq")
	f.Fuzz(func(t *testing.T, s string) {
		if k, err := ParsePrivateKey(s); err == nil {
			if again, err := ParsePrivateKey(k.String()); err != nil || again.ID() != k.ID() {
				t.Fatalf("private key %q does not round-trip: %v", s, err)
			}
		}
		if id, err := ParsePublicKeyFile(s); err == nil {
			if _, err := id.PublicKey(); err != nil {
				t.Fatalf("public key file %q gave an unusable ID: %v", s, err)
			}
		}
		if id, err := ParseNodeID(s); err == nil && string(id) != s {
			t.Fatalf("node ID %q parsed as %q", s, id)
		}
		if l, err := ParseLocator(s); err == nil {
			if again, err := ParseLocator(l.String()); err != nil || again != l {
				t.Fatalf("locator %q does not round-trip: %v %v", s, again, err)
			}
		}
	})
}
