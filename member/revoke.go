package member

import (
	"crypto/ed25519"
	"encoding/binary"
	"slices"

	"grapevine/announce"
)

// RevocationPrefix starts the text form of a revocation.
const RevocationPrefix = "gvr1-"

const (
	revocationVersion = 1
	revocationDomain  = "grapevine-revocation-v1\x00"
	// revocationFields is grid | issuer | serial | subject.
	revocationFields = 3*keySize + 8
	revocationSize   = 1 + revocationFields + sigSize // 169
)

// RevocationTextLen is the length of every revocation's text form.
const RevocationTextLen = len(RevocationPrefix) + (revocationSize*8+4)/5 // 276

// Revocation withdraws the certificate (Issuer, Serial) of Grid, and with
// it every chain through that certificate. Only the certificate's issuer
// signs one. Subject repeats whom the certificate admitted, for people
// reading logs; it plays no part in deciding what is revoked.
type Revocation struct {
	Grid    announce.NodeID
	Issuer  announce.NodeID
	Serial  uint64
	Subject announce.NodeID
	Sig     [ed25519.SignatureSize]byte // ed25519 by Issuer; see the package doc
}

// Revoke signs the revocation of c. The key must be c's issuer's.
func Revoke(issuer announce.PrivateKey, c Cert) (Revocation, error) {
	if !issuer.Valid() {
		return Revocation{}, errorf(ReasonMalformed, -1, "issuer key not set")
	}
	if id := issuer.ID(); c.Issuer != id {
		return Revocation{}, errorf(ReasonNotIssuer, -1, "certificate %d was issued by %s, not %s", c.Serial, c.Issuer.Short(), id.Short())
	}
	r := Revocation{Grid: c.Grid, Issuer: c.Issuer, Serial: c.Serial, Subject: c.Subject}
	f, err := r.fields()
	if err != nil {
		return Revocation{}, err
	}
	sign(issuer, revocationDomain, f, &r.Sig)
	return r, nil
}

// ParseRevocation reads a revocation's text form and checks its
// signature. It is strict: the input must be exactly what String returns.
func ParseRevocation(s string) (Revocation, error) {
	b, err := decodeText(s, RevocationPrefix, revocationSize, "revocation")
	if err != nil {
		return Revocation{}, err
	}
	if b[0] != revocationVersion {
		return Revocation{}, errorf(ReasonMalformed, -1, "revocation version %d, want %d", b[0], revocationVersion)
	}
	r := Revocation{
		Grid:    announce.IDOf(b[1 : 1+keySize]),
		Issuer:  announce.IDOf(b[1+keySize : 1+2*keySize]),
		Serial:  binary.BigEndian.Uint64(b[1+2*keySize:]),
		Subject: announce.IDOf(b[1+2*keySize+8 : 1+3*keySize+8]),
	}
	copy(r.Sig[:], b[1+revocationFields:])
	if err := r.Verify(); err != nil {
		return Revocation{}, err
	}
	return r, nil
}

// String is the text form: RevocationPrefix and the base32 of the binary
// form, or RevocationPrefix + "?" (which no parser accepts) if an ID is
// not a node ID.
func (r Revocation) String() string {
	f, err := r.fields()
	if err != nil {
		return RevocationPrefix + "?"
	}
	return encodeText(RevocationPrefix, revocationVersion, f, &r.Sig)
}

// Verify checks that the IDs are node IDs and that Issuer signed it.
func (r Revocation) Verify() error {
	f, err := r.fields()
	if err != nil {
		return err
	}
	return verify(r.Issuer, revocationDomain, f, &r.Sig, "revocation")
}

func (r Revocation) fields() ([]byte, error) {
	b := make([]byte, 0, revocationFields)
	b, err := appendKey(b, "grid", r.Grid)
	if err != nil {
		return nil, err
	}
	if b, err = appendKey(b, "issuer", r.Issuer); err != nil {
		return nil, err
	}
	b = binary.BigEndian.AppendUint64(b, r.Serial)
	return appendKey(b, "subject", r.Subject)
}

type certKey struct {
	issuer announce.NodeID
	serial uint64
}

// RevocationSet holds the verified revocations of one grid, at most a
// fixed number. Its Revoked method is VerifyChain's revoked argument. It
// is not safe for concurrent use.
//
// Anyone can sign a revocation of a certificate it made up, so the bound
// is what keeps strangers from growing the set without end; callers should
// add only revocations whose issuer they have seen to be a member, so that
// filling the set takes a member's key.
type RevocationSet struct {
	grid announce.NodeID
	max  int
	m    map[certKey]string // text form
}

// NewRevocationSet returns an empty set for grid that holds at most max
// revocations.
func NewRevocationSet(grid announce.NodeID, max int) *RevocationSet {
	return &RevocationSet{grid: grid, max: max, m: map[certKey]string{}}
}

// Add verifies r and adds it. added reports whether the set changed: a
// revocation of a certificate already revoked changes nothing, except that
// of two different revocations of one certificate (the issuer signed
// both) the set keeps the one whose text sorts first, so that sets that
// saw both agree. A full set refuses new certificates with ReasonFull.
func (s *RevocationSet) Add(r Revocation) (added bool, err error) {
	if r.Grid != s.grid {
		return false, errorf(ReasonWrongGrid, -1, "revocation for grid %s, want %s", r.Grid.Short(), s.grid.Short())
	}
	if err := r.Verify(); err != nil {
		return false, err
	}
	k := certKey{r.Issuer, r.Serial}
	text := r.String()
	if old, ok := s.m[k]; ok {
		if text >= old {
			return false, nil
		}
		s.m[k] = text
		return true, nil
	}
	if len(s.m) >= s.max {
		return false, errorf(ReasonFull, -1, "%d revocations, at most %d", len(s.m), s.max)
	}
	s.m[k] = text
	return true, nil
}

// Revoked reports whether the issuer's certificate serial is revoked. A
// nil set revokes nothing.
func (s *RevocationSet) Revoked(issuer announce.NodeID, serial uint64) bool {
	if s == nil {
		return false
	}
	_, ok := s.m[certKey{issuer, serial}]
	return ok
}

// Strings returns the text forms, sorted: two sets holding the same
// revocations return the same list.
func (s *RevocationSet) Strings() []string {
	out := make([]string, 0, len(s.m))
	for _, t := range s.m {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Len returns the number of revocations held.
func (s *RevocationSet) Len() int { return len(s.m) }
