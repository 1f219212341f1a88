package member

import (
	"crypto/ed25519"
	"encoding/binary"
	"strings"

	"grapevine/announce"
)

// CertPrefix starts the text form of a certificate.
const CertPrefix = "gvc1-"

const (
	certVersion = 1
	certDomain  = "grapevine-cert-v1\x00"
	keySize     = ed25519.PublicKeySize
	sigSize     = ed25519.SignatureSize
	// certFields is grid | issuer | subject | serial: what is signed after
	// the domain string.
	certFields = 3*keySize + 8
	certSize   = 1 + certFields + sigSize // 169
)

// CertTextLen is the length of every certificate's text form.
const CertTextLen = len(CertPrefix) + (certSize*8+4)/5 // 276

// Cert is a certificate: Issuer, the founder or a member of Grid, admits
// Subject to Grid. It carries no time: it holds until revoked.
type Cert struct {
	Grid    announce.NodeID // the founder's node ID
	Issuer  announce.NodeID // who signed
	Subject announce.NodeID // who is admitted
	// Serial names the certificate among its issuer's, for revocation. The
	// issuer keeps serials unique: a revocation hits every certificate of
	// the issuer with that serial.
	Serial uint64
	Sig    [ed25519.SignatureSize]byte // ed25519 by Issuer; see the package doc
}

// Issue signs a certificate admitting subject to grid. grid and subject
// must be well-formed node IDs (ParseNodeID, IDOf) and the key must be
// set: Issue panics otherwise, as these come from the caller, not from
// the network.
func Issue(issuer announce.PrivateKey, grid, subject announce.NodeID, serial uint64) Cert {
	if !issuer.Valid() {
		panic("member.Issue: issuer key not set")
	}
	c := Cert{Grid: grid, Issuer: issuer.ID(), Subject: subject, Serial: serial}
	f, err := c.fields()
	if err != nil {
		panic("member.Issue: " + err.Error())
	}
	sign(issuer, certDomain, f, &c.Sig)
	return c
}

// ParseCert reads a certificate's text form and checks its signature. It
// is strict: the input must be exactly what String returns.
func ParseCert(s string) (Cert, error) {
	b, err := decodeText(s, CertPrefix, certSize, "certificate")
	if err != nil {
		return Cert{}, err
	}
	if b[0] != certVersion {
		return Cert{}, errorf(ReasonMalformed, -1, "certificate version %d, want %d", b[0], certVersion)
	}
	c := Cert{
		Grid:    announce.IDOf(b[1 : 1+keySize]),
		Issuer:  announce.IDOf(b[1+keySize : 1+2*keySize]),
		Subject: announce.IDOf(b[1+2*keySize : 1+3*keySize]),
		Serial:  binary.BigEndian.Uint64(b[1+3*keySize:]),
	}
	copy(c.Sig[:], b[1+certFields:])
	if err := c.Verify(); err != nil {
		return Cert{}, err
	}
	return c, nil
}

// String is the text form: CertPrefix and the base32 of the binary form.
// A certificate whose IDs are not node IDs has none; String then returns
// CertPrefix + "?", which no parser accepts.
func (c Cert) String() string {
	f, err := c.fields()
	if err != nil {
		return CertPrefix + "?"
	}
	return encodeText(CertPrefix, certVersion, f, &c.Sig)
}

// Verify checks that the certificate's IDs are node IDs and that Issuer
// signed it. It says nothing of whether Issuer is a member: VerifyChain does.
func (c Cert) Verify() error {
	f, err := c.fields()
	if err != nil {
		return err
	}
	return verify(c.Issuer, certDomain, f, &c.Sig, "certificate")
}

// fields returns the signed fields: grid | issuer | subject | serial.
func (c Cert) fields() ([]byte, error) {
	b := make([]byte, 0, certFields)
	b, err := appendKey(b, "grid", c.Grid)
	if err != nil {
		return nil, err
	}
	if b, err = appendKey(b, "issuer", c.Issuer); err != nil {
		return nil, err
	}
	if b, err = appendKey(b, "subject", c.Subject); err != nil {
		return nil, err
	}
	return binary.BigEndian.AppendUint64(b, c.Serial), nil
}

func appendKey(b []byte, field string, id announce.NodeID) ([]byte, error) {
	pub, err := id.PublicKey()
	if err != nil {
		return nil, errorf(ReasonMalformed, -1, "%s: %v", field, err)
	}
	return append(b, pub...), nil
}

func sign(k announce.PrivateKey, domain string, fields []byte, sig *[sigSize]byte) {
	msg := append([]byte(domain), fields...)
	copy(sig[:], ed25519.Sign(ed25519.NewKeyFromSeed(k.Seed()), msg))
}

func verify(signer announce.NodeID, domain string, fields []byte, sig *[sigSize]byte, what string) error {
	pub, err := signer.PublicKey()
	if err != nil {
		return errorf(ReasonMalformed, -1, "issuer: %v", err)
	}
	msg := append([]byte(domain), fields...)
	if !ed25519.Verify(pub, msg, sig[:]) {
		return errorf(ReasonBadSignature, -1, "%s not signed by its issuer %s", what, signer.Short())
	}
	return nil
}

// encodeText returns prefix + base32(version | fields | sig).
func encodeText(prefix string, version byte, fields []byte, sig *[sigSize]byte) string {
	b := make([]byte, 0, 1+len(fields)+sigSize)
	b = append(b, version)
	b = append(b, fields...)
	b = append(b, sig[:]...)
	return prefix + announce.EncodeBase32(b)
}

// decodeText undoes encodeText for a binary form of exactly size bytes,
// refusing every spelling but the canonical one.
func decodeText(s, prefix string, size int, what string) ([]byte, error) {
	body, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return nil, errorf(ReasonMalformed, -1, "a %s starts with %q", what, prefix)
	}
	if want := (size*8 + 4) / 5; len(body) != want {
		return nil, errorf(ReasonMalformed, -1, "%s of %d characters after the prefix, want %d", what, len(body), want)
	}
	b, err := announce.DecodeBase32(body)
	if err != nil {
		return nil, errorf(ReasonMalformed, -1, "%s is not lower-case base32: %v", what, err)
	}
	// The decoder skips line breaks: insist on the one spelling.
	if len(b) != size || announce.EncodeBase32(b) != body {
		return nil, errorf(ReasonMalformed, -1, "%s is not in canonical form", what)
	}
	return b, nil
}
