package tahoe

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"grapevine/announce"
)

// ParseStorageIndex reads a Tahoe storage index: 16 bytes, as 26
// characters of Tahoe's base32 (how Tahoe prints it) or 32 hex digits.
func ParseStorageIndex(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	var b []byte
	var err error
	switch len(s) {
	case 26:
		b, err = announce.DecodeBase32(strings.ToLower(s))
	case 32:
		b, err = hex.DecodeString(s)
	default:
		err = fmt.Errorf("%d characters", len(s))
	}
	if err != nil || len(b) != 16 {
		return nil, fmt.Errorf("storage index %q: want 16 bytes as 26 base32 characters or 32 hex digits (%v)", s, err)
	}
	return b, nil
}

// PermutationSeed returns the seed a Tahoe-LAFS client permutes a storage
// server by (storage_client.py, _parse_announcement): the announcement's
// permutation-seed-base32 if present, else the public key in the server
// ID. ok is false when the field is present but not base32 text, which
// Tahoe cannot parse either.
func PermutationSeed(a *announce.Announcement) (seed []byte, from string, ok bool) {
	if v, present := a.Body.Get("permutation-seed-base32"); present {
		if v.Kind != announce.String {
			return nil, "", false
		}
		b, err := announce.DecodeBase32(v.Str)
		if err != nil {
			return nil, "", false
		}
		return b, "announcement", true
	}
	pub, err := a.ID.PublicKey()
	if err != nil {
		return nil, "", false
	}
	return pub, "key", true
}

// PermutationHash is Tahoe's permute_server_hash (util/hashutil.py):
// SHA-1 of the peer selection index (the storage index) followed by the
// server's permutation seed. Servers are tried in ascending order of it.
func PermutationHash(storageIndex, seed []byte) [sha1.Size]byte {
	return sha1.Sum(append(slices.Clone(storageIndex), seed...))
}
