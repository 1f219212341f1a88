package announce

import (
	"crypto/ed25519"
	"encoding/base32"
	"errors"
	"strings"
)

// Tahoe's base32: the RFC 4648 alphabet in lower case, without padding.
const b32Alphabet = "abcdefghijklmnopqrstuvwxyz234567"

var b32 = base32.NewEncoding(b32Alphabet).WithPadding(base32.NoPadding)

// EncodeBase32 encodes b in Tahoe's base32.
func EncodeBase32(b []byte) string { return b32.EncodeToString(b) }

// ErrNonCanonical is returned for base32 text whose unused trailing bits
// are not zero: every value has exactly one spelling.
var ErrNonCanonical = errors.New("non-canonical base32 (trailing bits set, or a length no encoding has)")

// DecodeBase32 decodes Tahoe's base32, refusing non-canonical spellings.
func DecodeBase32(s string) ([]byte, error) {
	b, err := b32.DecodeString(s)
	if err != nil {
		return nil, err
	}
	// The last character carries unused low bits; they must be zero.
	unused := len(s)*5 - len(b)*8
	if unused >= 5 {
		return nil, ErrNonCanonical // a length no encoding produces
	}
	if unused > 0 {
		if strings.IndexByte(b32Alphabet, s[len(s)-1])&(1<<unused-1) != 0 {
			return nil, ErrNonCanonical
		}
	}
	return b, nil
}

// Prefixes of Tahoe's key and signature strings.
const (
	PrivPrefix = "priv-v0-"
	PubPrefix  = "pub-v0-"
	V0Prefix   = "v0-"
)

// NodeID is a node's public key as Tahoe writes it: "v0-" + base32(key).
// It is the server ID in announcements and the key of every table.
type NodeID string

// PublicKey returns the ed25519 key in the ID.
func (id NodeID) PublicKey() (ed25519.PublicKey, error) {
	return decodeKey(string(id), "key")
}

// Short is a prefix of the ID for display.
func (id NodeID) Short() string {
	s := strings.TrimPrefix(string(id), V0Prefix)
	if len(s) > 8 {
		s = s[:8]
	}
	return s
}

// IDOf returns the node ID of a public key.
func IDOf(pub ed25519.PublicKey) NodeID { return NodeID(V0Prefix + EncodeBase32(pub)) }

// ParseNodeID checks that s is a well-formed node ID.
func ParseNodeID(s string) (NodeID, error) {
	if _, err := decodeKey(s, "key"); err != nil {
		return "", err
	}
	return NodeID(s), nil
}

func decodeKey(s, field string) (ed25519.PublicKey, error) {
	if !strings.HasPrefix(s, V0Prefix) {
		return nil, errorf(ReasonUnknownFormat, field, "only %q keys are recognised", V0Prefix)
	}
	b, err := DecodeBase32(s[len(V0Prefix):])
	if err != nil {
		return nil, &Error{Reason: ReasonMalformedKey, Field: field, Detail: "not base32", Err: err}
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, errorf(ReasonMalformedKey, field, "%d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// PrivateKey is a node's signing key.
type PrivateKey struct {
	key ed25519.PrivateKey
}

// NewPrivateKey derives the key from a 32-byte ed25519 seed.
func NewPrivateKey(seed []byte) (PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return PrivateKey{}, errorf(ReasonMalformedKey, "private key", "seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return PrivateKey{ed25519.NewKeyFromSeed(seed)}, nil
}

// ParsePrivateKey reads Tahoe's node.privkey text: "priv-v0-" + base32(seed).
// Surrounding white space is ignored.
func ParsePrivateKey(text string) (PrivateKey, error) {
	s := strings.TrimSpace(text)
	if !strings.HasPrefix(s, PrivPrefix) {
		return PrivateKey{}, errorf(ReasonUnknownFormat, "private key", "want the prefix %q", PrivPrefix)
	}
	seed, err := DecodeBase32(s[len(PrivPrefix):])
	if err != nil {
		return PrivateKey{}, &Error{Reason: ReasonMalformedKey, Field: "private key", Detail: "not base32", Err: err}
	}
	return NewPrivateKey(seed)
}

// ParsePublicKeyFile reads Tahoe's node.pubkey text: "pub-v0-" + base32(key).
func ParsePublicKeyFile(text string) (NodeID, error) {
	s := strings.TrimSpace(text)
	if !strings.HasPrefix(s, PubPrefix) {
		return "", errorf(ReasonUnknownFormat, "public key", "want the prefix %q", PubPrefix)
	}
	return ParseNodeID(V0Prefix + s[len(PubPrefix):])
}

// String is the node.privkey form. Keep it secret.
func (k PrivateKey) String() string { return PrivPrefix + EncodeBase32(k.Seed()) }

// Seed returns the 32-byte seed.
func (k PrivateKey) Seed() []byte { return k.key.Seed() }

// Public returns the public key.
func (k PrivateKey) Public() ed25519.PublicKey { return k.key.Public().(ed25519.PublicKey) }

// ID returns the node ID.
func (k PrivateKey) ID() NodeID { return IDOf(k.Public()) }

// PublicKeyFile is the node.pubkey form.
func (k PrivateKey) PublicKeyFile() string { return PubPrefix + EncodeBase32(k.Public()) }

// Valid reports whether the key is set.
func (k PrivateKey) Valid() bool { return len(k.key) == ed25519.PrivateKeySize }
