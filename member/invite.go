package member

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"strings"

	"grapevine/announce"
)

// InvitePrefix starts every invite code; it names the code's version.
const InvitePrefix = "gv1-"

// MaxAddrLen bounds an invite's address.
const MaxAddrLen = 255

const (
	inviteVersion  = 1
	gridPrefixSize = 10
	secretSize     = 16
	checksumSize   = 4
	// inviteFixed is every byte of an invite code but the address's.
	inviteFixed = 1 + gridPrefixSize + keySize + 1 + secretSize + checksumSize // 64
	// maxCodeLen bounds ParseInvite's input: the longest code with a
	// separator after every character, and room around it.
	maxCodeLen = 64 + 2*((inviteFixed+MaxAddrLen)*8+4)/5

	secretHashDomain = "grapevine-invite-secret-v1\x00"
	secretIDDomain   = "grapevine-invite-id-v1\x00"
)

// Invite is what an invite code carries: enough for the invitee to find
// the inviter and check its key, to recognise the grid, and to prove to
// the inviter that it holds the code.
type Invite struct {
	GridPrefix [10]byte        // the first bytes of the founder's public key
	Inviter    announce.NodeID // the member who made the invite; its endpoint must prove this key
	Addr       string          // host:port of the inviter's gossip endpoint
	Secret     [16]byte        // presented to the inviter when joining
}

// NewInvite makes an invite for grid by the member inviter, reachable at
// addr, with a secret read from rand.
func NewInvite(grid, inviter announce.NodeID, addr string, rand io.Reader) (Invite, error) {
	gpub, err := grid.PublicKey()
	if err != nil {
		return Invite{}, inviteErrorf(ReasonMalformed, "grid: %v", err)
	}
	inv := Invite{Inviter: inviter, Addr: addr}
	copy(inv.GridPrefix[:], gpub)
	if _, err := inv.encode(); err != nil {
		return Invite{}, err
	}
	if _, err := io.ReadFull(rand, inv.Secret[:]); err != nil {
		return Invite{}, fmt.Errorf("member: reading the invite secret: %w", err)
	}
	return inv, nil
}

// Matches reports whether the invite was made for grid.
func (inv Invite) Matches(grid announce.NodeID) bool {
	pub, err := grid.PublicKey()
	return err == nil && bytes.Equal(pub[:gridPrefixSize], inv.GridPrefix[:])
}

// ID names the invite in the inviter's table of pending invites and in
// logs, without revealing the secret: SecretID(inv.Secret).
func (inv Invite) ID() string { return SecretID(inv.Secret) }

// SecretID is the ID of the invite with this secret: 16 characters of
// base32 of a hash of the secret. An inviter finds the pending invite a
// presented secret redeems by it.
func SecretID(secret [16]byte) string {
	h := sha256.Sum256(append([]byte(secretIDDomain), secret[:]...))
	return announce.EncodeBase32(h[:10])
}

// HashSecret is what the inviter stores to check a secret later; the
// secret itself need not be kept.
func HashSecret(secret [16]byte) [32]byte {
	return sha256.Sum256(append([]byte(secretHashDomain), secret[:]...))
}

// SecretMatches reports whether secret is the one hash was made from, in
// time independent of where they differ.
func SecretMatches(hash [32]byte, secret [16]byte) bool {
	h := HashSecret(secret)
	return subtle.ConstantTimeCompare(h[:], hash[:]) == 1
}

// Code returns the invite code: InvitePrefix, then the base32 of the
// binary form in groups of five characters joined by '-'. An invite that
// has no code (an Inviter that is not a node ID, a bad address) gives
// InvitePrefix + "?", which ParseInvite refuses.
func (inv Invite) Code() string {
	b, err := inv.encode()
	if err != nil {
		return InvitePrefix + "?"
	}
	text := announce.EncodeBase32(b)
	var sb strings.Builder
	sb.Grow(len(InvitePrefix) + len(text) + len(text)/5)
	sb.WriteString(InvitePrefix)
	for i := 0; i < len(text); i += 5 {
		if i > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(text[i:min(i+5, len(text))])
	}
	return sb.String()
}

// encode returns the binary form, checksum included, or why there is none.
func (inv Invite) encode() ([]byte, error) {
	pub, err := inv.Inviter.PublicKey()
	if err != nil {
		return nil, inviteErrorf(ReasonMalformed, "inviter: %v", err)
	}
	if err := checkAddr(inv.Addr); err != nil {
		return nil, err
	}
	b := make([]byte, 0, inviteFixed+len(inv.Addr))
	b = append(b, inviteVersion)
	b = append(b, inv.GridPrefix[:]...)
	b = append(b, pub...)
	b = append(b, byte(len(inv.Addr)))
	b = append(b, inv.Addr...)
	b = append(b, inv.Secret[:]...)
	sum := sha256.Sum256(b)
	return append(b, sum[:checksumSize]...), nil
}

func checkAddr(addr string) error {
	if len(addr) > MaxAddrLen {
		return inviteErrorf(ReasonMalformed, "address of %d bytes, at most %d", len(addr), MaxAddrLen)
	}
	if err := announce.CheckHostPort(addr, false); err != nil {
		return inviteErrorf(ReasonMalformed, "%v", err)
	}
	return nil
}

// ParseInvite reads an invite code as people pass them on: letters in
// either case, with or without the dashes, spaces or line breaks anywhere
// after the prefix, and the digits 0, 1 and 8 read as the letters o, l and
// b they are mistaken for. Every refusal is an *InviteError: not-an-invite
// (no gv1- prefix, or an unknown version), mistyped (the checksum does not
// match, or characters codes do not use) or malformed (the checksum
// matches but the content is not an invite: a faulty or hostile program
// made it).
func ParseInvite(code string) (Invite, error) {
	if len(code) > maxCodeLen {
		return Invite{}, inviteErrorf(ReasonNotAnInvite, "%d characters, far more than any invite code", len(code))
	}
	s := strings.TrimSpace(code)
	rest, ok := cutPrefixFold(s, "gv1")
	if !ok {
		switch {
		case hasPrefixFold(s, CertPrefix):
			return Invite{}, inviteErrorf(ReasonNotAnInvite, "this is a membership certificate (%s), not an invite", CertPrefix)
		case hasPrefixFold(s, RevocationPrefix):
			return Invite{}, inviteErrorf(ReasonNotAnInvite, "this is a revocation (%s), not an invite", RevocationPrefix)
		case hasPrefixFold(s, "gv"):
			return Invite{}, inviteErrorf(ReasonNotAnInvite, "unknown kind or version; this program reads %s codes", InvitePrefix)
		}
		return Invite{}, inviteErrorf(ReasonNotAnInvite, "an invite code starts with %s", InvitePrefix)
	}
	norm := make([]byte, 0, len(rest))
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch {
		case c == '-' || c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '0':
			c = 'o'
		case c == '1':
			c = 'l'
		case c == '8':
			c = 'b'
		}
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return Invite{}, inviteErrorf(ReasonMistyped, "%q is not a character of invite codes", rest[i])
		}
		norm = append(norm, c)
	}
	b, err := announce.DecodeBase32(string(norm))
	if err != nil || len(b) <= checksumSize {
		return Invite{}, inviteErrorf(ReasonMistyped, "characters are missing or extra")
	}
	payload, sum := b[:len(b)-checksumSize], b[len(b)-checksumSize:]
	if h := sha256.Sum256(payload); !bytes.Equal(h[:checksumSize], sum) {
		return Invite{}, inviteErrorf(ReasonMistyped, "the checksum does not match")
	}
	if payload[0] != inviteVersion {
		return Invite{}, inviteErrorf(ReasonNotAnInvite, "invite format %d, this program reads %d", payload[0], inviteVersion)
	}
	if len(payload) < inviteFixed-checksumSize {
		return Invite{}, inviteErrorf(ReasonMalformed, "%d bytes, at least %d", len(b), inviteFixed)
	}
	n := int(payload[1+gridPrefixSize+keySize])
	if want := inviteFixed - checksumSize + n; len(payload) != want {
		return Invite{}, inviteErrorf(ReasonMalformed, "%d bytes for an address of %d, want %d", len(b), n, want+checksumSize)
	}
	addrAt := 1 + gridPrefixSize + keySize + 1
	inv := Invite{
		Inviter: announce.IDOf(payload[1+gridPrefixSize : 1+gridPrefixSize+keySize]),
		Addr:    string(payload[addrAt : addrAt+n]),
	}
	copy(inv.GridPrefix[:], payload[1:])
	copy(inv.Secret[:], payload[addrAt+n:])
	if err := checkAddr(inv.Addr); err != nil {
		return Invite{}, err
	}
	return inv, nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if !hasPrefixFold(s, prefix) {
		return s, false
	}
	return s[len(prefix):], true
}
