package foolscap

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"strings"
	"sync"
	"time"

	"grapevine/internal/atomicfile"
)

// certCommonName is the subject foolscap gives its self-signed certificates.
const certCommonName = "newpb_thingy"

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Tub is a foolscap identity: a private key and self-signed certificate.
// Its ID is the lower-case base32 SHA-1 of the certificate DER. A Tub also
// holds the per-peer connection table used to resolve duplicate
// connections, so use one Tub per process identity.
type Tub struct {
	cert        tls.Certificate
	certDER     []byte
	pem         []byte
	id          string
	incarnation string

	mu         sync.Mutex
	conns      map[string]*Conn     // peer tub ID -> live connection
	masterSeq  map[string]int64     // seqnum of the last connection we decided
	slaveTable map[string][2]string // (master incarnation, seqnum) we were told
}

// TubIDFromCert returns foolscap's tub ID for a DER certificate.
func TubIDFromCert(der []byte) string {
	sum := sha1.Sum(der)
	return strings.ToLower(b32.EncodeToString(sum[:]))
}

// NewSwissnum returns a random object name: 160 bits from r (crypto/rand
// if nil) in lower-case base32, 32 characters, like foolscap's
// generateSwissnumber(160). It panics if r fails.
func NewSwissnum(r io.Reader) string {
	if r == nil {
		r = rand.Reader
	}
	var b [20]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		panic("foolscap: reading random bytes: " + err.Error())
	}
	return strings.ToLower(b32.EncodeToString(b[:]))
}

// NewTub creates a fresh identity (RSA 2048, CN newpb_thingy) in memory.
func NewTub() (*Tub, error) {
	data, err := generateTubPEM()
	if err != nil {
		return nil, err
	}
	return TubFromPEM(data)
}

// TubFromPEM loads an identity from PEM data holding a CERTIFICATE and a
// private key (PKCS#8 "PRIVATE KEY", "RSA PRIVATE KEY" or "EC PRIVATE KEY"),
// in either order. Files written by foolscap's Tub(certFile=...) load.
func TubFromPEM(data []byte) (*Tub, error) {
	var certDER []byte
	var keyBlock *pem.Block
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			if certDER == nil {
				certDER = b.Bytes
			}
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if keyBlock == nil {
				keyBlock = b
			}
		}
	}
	if certDER == nil {
		return nil, errors.New("no CERTIFICATE block")
	}
	if keyBlock == nil {
		return nil, errors.New("no private key block")
	}
	key, err := parseKey(keyBlock)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate: %w", err)
	}
	if !publicKeyMatches(leaf.PublicKey, key) {
		return nil, errors.New("private key does not match certificate")
	}
	inc := make([]byte, 8)
	if _, err := rand.Read(inc); err != nil {
		return nil, err
	}
	return &Tub{
		cert:        tls.Certificate{Certificate: [][]byte{certDER}, PrivateKey: key, Leaf: leaf},
		certDER:     certDER,
		pem:         append([]byte(nil), data...),
		id:          TubIDFromCert(certDER),
		incarnation: hex.EncodeToString(inc),
		conns:       map[string]*Conn{},
		masterSeq:   map[string]int64{},
		slaveTable:  map[string][2]string{},
	}, nil
}

func parseKey(b *pem.Block) (crypto.Signer, error) {
	var k any
	var err error
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	switch s.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		return s, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T", k)
}

func publicKeyMatches(pub any, key crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := key.Public().(equaler)
	return ok && e.Equal(pub)
}

func generateTubPEM() ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	name := pkix.Name{CommonName: certCommonName}
	tmpl := &x509.Certificate{
		SerialNumber:       serial.Add(serial, big.NewInt(1)),
		Subject:            name,
		Issuer:             name,
		NotBefore:          now.Add(-time.Hour),
		NotAfter:           now.AddDate(30, 0, 0), // foolscap ignores expiry
		SignatureAlgorithm: x509.SHA256WithRSA,
		KeyUsage:           x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	pk8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	// certificate first, then key: the layout foolscap writes
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk8})...)
	return out, nil
}

// LoadOrCreateTub loads the identity in the PEM file at path, or creates a
// new one there (mode 0600, written to a temporary file, synced, then
// linked into place so a concurrent creator cannot be overwritten). An
// unusable existing file gives *CorruptTubError and is never modified.
func LoadOrCreateTub(path string) (*Tub, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		t, perr := TubFromPEM(data)
		if perr != nil {
			return nil, &CorruptTubError{Path: path, Err: perr}
		}
		return t, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	data, err = generateTubPEM()
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteNew(path, data, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateTub(path) // someone else created it first
		}
		return nil, err
	}
	return TubFromPEM(data)
}

// ID returns the tub ID (32 lower-case base32 characters).
func (t *Tub) ID() string { return t.id }

// PEM returns the identity file contents (certificate and private key).
func (t *Tub) PEM() []byte { return append([]byte(nil), t.pem...) }

// Certificate returns the TLS certificate presented on connections.
func (t *Tub) Certificate() tls.Certificate { return t.cert }

// Incarnation is the random per-process string sent as my-incarnation.
func (t *Tub) Incarnation() string { return t.incarnation }

// FURL is a parsed foolscap URL: pb://TUBID@HINT,HINT/NAME.
type FURL struct {
	TubID string
	Hints []string
	Name  string
}

// String formats the FURL.
func (f FURL) String() string { return FormatFURL(f.TubID, f.Hints, f.Name) }

// FormatFURL returns "pb://TUBID@HINT1,HINT2/NAME". Hints look like
// "tcp:HOST:PORT" (see TCPHint).
func FormatFURL(tubID string, hints []string, name string) string {
	return "pb://" + tubID + "@" + strings.Join(hints, ",") + "/" + name
}

// TCPHint formats a connection hint; IPv6 literals are bracketed.
func TCPHint(host string, port int) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("tcp:%s:%d", host, port)
}

// ParseFURL parses a FURL like foolscap's decode_furl: only the first 32
// characters of the tub ID are used and must be base32; hints may be empty
// as a whole but no single hint may be empty.
func ParseFURL(s string) (FURL, error) {
	rest, ok := strings.CutPrefix(s, "pb://")
	if !ok {
		return FURL{}, fmt.Errorf("foolscap: unknown FURL prefix in %q", s)
	}
	at := strings.IndexByte(rest, '@')
	if at <= 0 {
		return FURL{}, fmt.Errorf("foolscap: FURL %q has no tub ID", s)
	}
	id, rest := rest[:at], rest[at+1:]
	slash := strings.IndexByte(rest, '/')
	if slash < 0 || slash == len(rest)-1 {
		return FURL{}, fmt.Errorf("foolscap: FURL %q has no name", s)
	}
	hints, name := rest[:slash], rest[slash+1:]
	if len(id) > 32 {
		id = id[:32]
	}
	id = strings.ToLower(id)
	if len(id) != 32 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		return FURL{}, fmt.Errorf("foolscap: %q is not a valid tubid", id)
	}
	f := FURL{TubID: id, Name: name, Hints: []string{}}
	if hints != "" {
		f.Hints = strings.Split(hints, ",")
		for _, h := range f.Hints {
			if h == "" {
				return FURL{}, fmt.Errorf("foolscap: no connection hint may be empty")
			}
		}
	}
	return f, nil
}
