package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"slices"
	"time"

	"grapevine/announce"
)

// ALPN is the application protocol both sides negotiate. A new
// incompatible protocol gets a new name. ALPNv1 is what nodes before the
// 2-minute heartbeat offer: the same messages, but they close a link
// quiet for 90 s, so over such a link the heartbeat keeps their timings
// (legacyHeartbeat).
const (
	ALPN   = "grapevine/2"
	ALPNv1 = "grapevine/1"
)

// protocols are offered and accepted in this order of preference.
var protocols = []string{ALPN, ALPNv1}

// speaks reports whether p is one of the protocols this node speaks.
func speaks(p string) bool { return slices.Contains(protocols, p) }

// legacy reports whether a finished handshake agreed on grapevine/1.
func legacy(tc *tls.Conn) bool { return tc.ConnectionState().NegotiatedProtocol == ALPNv1 }

// A grapevine/1 peer closes a link with nothing read for 90 s and, when
// it dialled, pings a quiet link every 60 s. Variables for the tests.
var legacyHeartbeat, legacyIdle = 30 * time.Second, 90 * time.Second

// certificate returns the node's self-signed TLS certificate: its ed25519
// key, signed by itself. It is deterministic: the serial number derives
// from the key and the validity is fixed (peers ignore the dates).
func certificate(key announce.PrivateKey) (tls.Certificate, error) {
	priv := ed25519.NewKeyFromSeed(key.Seed())
	pub := priv.Public().(ed25519.PublicKey)
	h := sha256.Sum256(append([]byte("grapevine-cert\x00"), pub...))
	h[0] &= 0x7f // a positive serial of at most 20 bytes
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(h[:16]),
		Subject:               pkix.Name{CommonName: string(key.ID())},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, nil
}

// peerID checks what the peer proved in a finished handshake and returns
// its node ID: exactly one certificate, with an ed25519 key, self-signed
// by that key, and the ALPN protocol negotiated. TLS 1.3 has already
// checked that the peer holds the key (CertificateVerify). Failures are
// *AuthError.
func peerID(cs tls.ConnectionState) (announce.NodeID, error) {
	if cs.Version != tls.VersionTLS13 {
		return "", &AuthError{Reason: ReasonProtocol, Detail: fmt.Sprintf("TLS version %#x, want 1.3", cs.Version)}
	}
	if !speaks(cs.NegotiatedProtocol) {
		return "", &AuthError{Reason: ReasonProtocol, Detail: fmt.Sprintf("application protocol %q, want one of %q", cs.NegotiatedProtocol, protocols)}
	}
	if n := len(cs.PeerCertificates); n != 1 {
		return "", &AuthError{Reason: ReasonBadCertificate, Detail: fmt.Sprintf("%d certificates, want one", n)}
	}
	c := cs.PeerCertificates[0]
	pub, ok := c.PublicKey.(ed25519.PublicKey)
	if !ok {
		return "", &AuthError{Reason: ReasonBadCertificate, Detail: fmt.Sprintf("a %T key, want ed25519", c.PublicKey)}
	}
	if c.SignatureAlgorithm != x509.PureEd25519 {
		return "", &AuthError{Reason: ReasonBadCertificate, Detail: "signed with " + c.SignatureAlgorithm.String() + ", want Ed25519"}
	}
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		return "", &AuthError{Reason: ReasonBadCertificate, Detail: "not self-signed by its key: " + err.Error()}
	}
	return announce.IDOf(pub), nil
}

// tlsConfig returns the configuration both directions share: TLS 1.3
// only, a certificate required both ways, no CA or host name check (peerID
// and the caller's key pin replace them), no session resumption.
func tlsConfig(cert tls.Certificate, self announce.NodeID) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		NextProtos:             protocols,
		ClientAuth:             tls.RequestClientCert, // peerID requires exactly one
		InsecureSkipVerify:     true,                  // for the client side: VerifyConnection verifies
		SessionTicketsDisabled: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := peerID(cs)
			if err == nil && id == self {
				err = &AuthError{Reason: ReasonSelf, Detail: "the peer has our own key"}
			}
			return err
		},
	}
}

// clientConfig pins the key a dial expects.
func clientConfig(base *tls.Config, self announce.NodeID, loc announce.Locator) *tls.Config {
	cfg := base.Clone()
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		id, err := peerID(cs)
		switch {
		case err != nil:
			return err
		case id != loc.ID:
			return &KeyMismatchError{Want: loc.ID, Got: id, Addr: loc.Addr}
		case id == self:
			return &AuthError{Reason: ReasonSelf, Detail: "the peer has our own key"}
		}
		return nil
	}
	return cfg
}
