package tahoe_test

import (
	"encoding/hex"
	"testing"

	"grapevine/announce"
	"grapevine/internal/tahoe"
)

// Tahoe's permute_server_hash is SHA-1 over the storage index followed by
// the seed. The expected values were computed outside Go, with Python's
// hashlib: sha1(bytes(range(16)) + seed).hexdigest().
func TestPermutationHash(t *testing.T) {
	si := make([]byte, 16)
	for i := range si {
		si[i] = byte(i)
	}
	for _, c := range []struct{ seed, want string }{
		{"vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq", "6a3152fbdf10607c902461ec10b48d796f1bc557"},
		{"3w6vakoc4pwhygjat7wlkgsxixkpehcpceatv2kpii5zjhw4b57q", "ab3a787464e898ea7bf93466c494ea7f7c4532ce"},
		{"5jfgyy7ctrjavpxvkb5rglwf7gkuo5vox27hxescd3vgsfcg2iwa", "9fd4b8a8f226712976d6cdc0abeb911df799da29"},
	} {
		seed, err := announce.DecodeBase32(c.seed)
		if err != nil {
			t.Fatal(err)
		}
		h := tahoe.PermutationHash(si, seed)
		if got := hex.EncodeToString(h[:]); got != c.want {
			t.Errorf("hash(%s) = %s, want %s", c.seed, got, c.want)
		}
	}
	for _, c := range []struct {
		in   string
		ok   bool
		want string
	}{
		{"aaaqeayeaudaocajbifqydiob4", true, "000102030405060708090a0b0c0d0e0f"},
		{"AAAQEAYEAUDAOCAJBIFQYDIOB4", true, "000102030405060708090a0b0c0d0e0f"},
		{"000102030405060708090a0b0c0d0e0f", true, "000102030405060708090a0b0c0d0e0f"},
		{"", false, ""},
		{"aaaqeayeaudaocajbifqydiob5", false, ""}, // non-canonical trailing bits
		{"000102030405060708090a0b0c0d0e0g", false, ""},
		{"0001020304", false, ""},
	} {
		b, err := tahoe.ParseStorageIndex(c.in)
		if (err == nil) != c.ok || (c.ok && hex.EncodeToString(b) != c.want) {
			t.Errorf("ParseStorageIndex(%q) = %x, %v", c.in, b, err)
		}
	}
}
