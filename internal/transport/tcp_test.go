package transport

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
)

func startTCP(t *testing.T, key announce.PrivateKey, mod func(*Options)) *node {
	return start(t, networks["tcp"](), key, mod)
}

// selfSigned makes a certificate for pub signed by signer.
func selfSigned(t *testing.T, pub any, signer any) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: signer}
}

func edCert(t *testing.T, key announce.PrivateKey) tls.Certificate {
	c, err := certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Handshakes a node must refuse, each reported with its reason.
func TestInboundRejections(t *testing.T) {
	bKey := testKey(t, 2)
	b := startTCP(t, bKey, nil)
	cKey := testKey(t, 3)
	good := edCert(t, cKey)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	cPriv := ed25519.NewKeyFromSeed(cKey.Seed())
	// An ed25519 certificate for c's key, signed by another key: built by
	// hand, since x509 checks the signer matches the key.
	notSelf := func() tls.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
		parentKey := other.Public().(ed25519.PublicKey)
		parent := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "other"}, PublicKey: parentKey,
			BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, cPriv.Public(), other)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: cPriv}
	}()
	chain := good
	chain.Certificate = append(chain.Certificate, good.Certificate[0])

	for _, c := range []struct {
		name   string
		cfg    *tls.Config
		reason string
	}{
		{"no certificate", &tls.Config{NextProtos: []string{ALPN}}, ReasonBadCertificate},
		{"ecdsa", &tls.Config{NextProtos: []string{ALPN}, Certificates: []tls.Certificate{selfSigned(t, &ec.PublicKey, ec)}}, ReasonBadCertificate},
		{"signed by another key", &tls.Config{NextProtos: []string{ALPN}, Certificates: []tls.Certificate{notSelf}}, ReasonBadCertificate},
		{"two certificates", &tls.Config{NextProtos: []string{ALPN}, Certificates: []tls.Certificate{chain}}, ReasonBadCertificate},
		{"other protocol", &tls.Config{NextProtos: []string{"grapevine/99"}, Certificates: []tls.Certificate{good}}, ReasonProtocol},
		{"no protocol", &tls.Config{Certificates: []tls.Certificate{good}}, ReasonProtocol},
		{"tls 1.2", &tls.Config{NextProtos: []string{ALPN}, Certificates: []tls.Certificate{good}, MaxVersion: tls.VersionTLS12}, ReasonProtocol},
		{"our own key", &tls.Config{NextProtos: []string{ALPN}, Certificates: []tls.Certificate{edCert(t, bKey)}}, ReasonSelf},
		{"not tls", nil, ReasonHandshake},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw, err := net.Dial("tcp", b.tr.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			local := raw.LocalAddr().String()
			if c.cfg == nil {
				raw.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
			} else {
				c.cfg.InsecureSkipVerify = true
				tc := tls.Client(raw, c.cfg)
				tc.Handshake()
				tc.Read(make([]byte, 1)) // the server's verdict arrives after the client's Finished
			}
			rj := b.rec.rejection(t, func(r Rejection) bool { return r.Addr == local })
			if rj.Reason != c.reason || !rj.Inbound {
				t.Fatalf("rejection %+v, want reason %s", rj, c.reason)
			}
			t.Logf("%s: %v", rj.Reason, rj.Err)
		})
	}
	if n := b.rec.count(func(core.Input) bool { return true }); n != 0 {
		t.Fatalf("refused handshakes produced inputs: %v", b.rec.all())
	}
	// The good certificate is accepted.
	raw, err := tls.Dial("tcp", b.tr.Addr(), &tls.Config{NextProtos: []string{ALPN}, Certificates: []tls.Certificate{good}, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	b.rec.next(t, "Connected", isConnected(cKey.ID()))
}

// A peer that completes the handshake and then says nothing is dropped
// after IdleTimeout.
func TestIdleTimeout(t *testing.T) {
	b := startTCP(t, testKey(t, 2), func(o *Options) {
		o.HeartbeatInterval = 20 * time.Millisecond
		o.IdleTimeout = 200 * time.Millisecond
	})
	c := testKey(t, 3)
	raw, err := tls.Dial("tcp", b.tr.Addr(), &tls.Config{NextProtos: []string{ALPN}, Certificates: []tls.Certificate{edCert(t, c)}, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	start := time.Now()
	b.rec.next(t, "Connected", isConnected(c.ID()))
	d := b.rec.next(t, "Disconnected", isDisconnected(c.ID())).(core.Disconnected)
	if d.Err != ReasonIdle || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("Disconnected %q after %v", d.Err, time.Since(start))
	}
}

// silent accepts TCP connections and never speaks.
type silent struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func newSilent(t *testing.T) *silent {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silent{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *silent) close() {
	s.ln.Close()
	<-s.done
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
}

func TestDialTimeoutAndCancel(t *testing.T) {
	sl := newSilent(t)
	a := startTCP(t, testKey(t, 1), nil)
	base := runtime.NumGoroutine()
	x := testKey(t, 5).ID()
	loc := announce.Locator{ID: x, Addr: sl.ln.Addr().String()}.String()
	a.tr.Dial(x, []string{loc}, 200*time.Millisecond)
	if df := a.rec.next(t, "DialFailed", isDialFailed(x)).(core.DialFailed); df.Err != ReasonTimeout {
		t.Fatalf("DialFailed %q, want %q", df.Err, ReasonTimeout)
	}
	// A cancelled dial reports nothing: once its goroutine is gone, no
	// DialFailed has arrived.
	a.tr.Dial(x, []string{loc}, time.Minute)
	eventually(t, "dial goroutine started", func() bool { return runtime.NumGoroutine() > base })
	a.tr.CancelDial(x)
	eventually(t, "dial goroutine ended", func() bool { return runtime.NumGoroutine() <= base })
	if n := a.rec.count(isDialFailed(x)); n != 1 {
		t.Fatalf("%d DialFailed, want only the first", n)
	}
}

// dialFrom opens a TCP connection to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

// Inbound handshakes beyond MaxHandshakes or MaxHandshakesPerAddress are
// refused at once, and silent ones cut at HelloTimeout; a peer from a
// quiet address evicts one from the busiest address and gets through.
func TestHandshakeLimit(t *testing.T) {
	b := startTCP(t, testKey(t, 2), func(o *Options) {
		o.MaxHandshakes = 3
		o.MaxHandshakesPerAddress = 2
		o.HandshakeTimeout = 5 * time.Second
		o.HelloTimeout = 400 * time.Millisecond
	})
	tb := b.tr.(*TCP)
	reasonOf := func(raw net.Conn) string {
		l := raw.LocalAddr().String()
		return b.rec.rejection(t, func(r Rejection) bool { return r.Addr == l }).Reason
	}
	x1 := dialFrom(t, "127.0.0.2", b.tr.Addr())
	x2 := dialFrom(t, "127.0.0.2", b.tr.Addr())
	eventually(t, "two handshakes", func() bool { return tb.slots.inProgress() == 2 })
	if r := reasonOf(dialFrom(t, "127.0.0.2", b.tr.Addr())); r != ReasonAddressBusy {
		t.Errorf("third from one address: %s", r)
	}
	dialFrom(t, "127.0.0.3", b.tr.Addr())
	eventually(t, "three handshakes", func() bool { return tb.slots.inProgress() == 3 })
	if r := reasonOf(dialFrom(t, "127.0.0.3", b.tr.Addr())); r != ReasonTooManyHandshakes {
		t.Errorf("over MaxHandshakes, no busier address: %s", r)
	}
	start := time.Now()
	a := startTCP(t, testKey(t, 1), nil) // from 127.0.0.1
	a.tr.Dial(b.id, []string{b.loc()}, 10*time.Second)
	a.rec.next(t, "Connected", isConnected(b.id))
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Errorf("connected after %v: it waited", d)
	}
	if r := reasonOf(x1); r != ReasonEvicted {
		t.Errorf("the busiest address's oldest: %s", r)
	}
	if r := reasonOf(x2); r != ReasonHelloTimeout {
		t.Errorf("silent: %s", r)
	}
}

// Inbound connections over MaxInbound are closed at once; a slot frees
// when a connection ends.
func TestInboundLimit(t *testing.T) {
	b := startTCP(t, testKey(t, 2), func(o *Options) { o.MaxInbound = 2 })
	var held []net.Conn
	for range 2 {
		raw, err := net.Dial("tcp", b.tr.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		held = append(held, raw)
	}
	tb := b.tr.(*TCP)
	eventually(t, "two inbound connections", func() bool { return tb.inbound.Load() == 2 })
	a := startTCP(t, testKey(t, 1), func(o *Options) { o.HandshakeTimeout = time.Second })
	a.tr.Dial(b.id, []string{b.loc()}, 2*time.Second)
	if d, ok := a.rec.next(t, "DialFailed", isDialFailed(b.id)).(core.DialFailed); !ok || tb.refused.Load() == 0 {
		t.Fatalf("third connection: %+v, refused %d; want it closed over MaxInbound", d, tb.refused.Load())
	}
	held[0].Close()
	eventually(t, "a free slot", func() bool { return tb.inbound.Load() == 1 })
	a.tr.Dial(b.id, []string{b.loc()}, 5*time.Second)
	a.rec.next(t, "Connected", isConnected(b.id))
}

// Close ends every goroutine, with connections up, a dial and an inbound
// handshake in progress, and closes Inputs.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	sl := newSilent(t)
	a := startTCP(t, testKey(t, 1), nil)
	b := startTCP(t, testKey(t, 2), nil)
	connect(t, a, b)
	for _, m := range messages(t) {
		a.tr.Send(b.id, m)
	}
	b.rec.next(t, "a message", isReceived(a.id, messages(t)[3]))
	x := testKey(t, 5).ID()
	a.tr.Dial(x, []string{announce.Locator{ID: x, Addr: sl.ln.Addr().String()}.String()}, time.Minute)
	raw, err := net.Dial("tcp", b.tr.Addr()) // a handshake that never starts
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	eventually(t, "b's handshake under way", func() bool { return b.tr.(*TCP).slots.inProgress() == 1 })

	if err := a.tr.Close(); err != nil {
		t.Fatal(err)
	}
	b.tr.Close()
	a.tr.Close() // again: no effect
	for _, n := range []*node{a, b} {
		eventually(t, "Inputs closed", func() bool {
			n.rec.mu.Lock()
			defer n.rec.mu.Unlock()
			return n.rec.closed
		})
	}
	// After Close, calls do nothing.
	a.tr.Dial(b.id, []string{b.loc()}, time.Second)
	a.tr.Send(b.id, core.SyncReq{})
	a.tr.Disconnect(b.id)
	a.tr.CancelDial(b.id)
	sl.close()
	raw.Close()
	eventually(t, "goroutines back to the start", func() bool { return runtime.NumGoroutine() <= base })
}

func TestListenErrors(t *testing.T) {
	if _, err := Listen(Options{ListenAddr: "127.0.0.1:0"}); err == nil {
		t.Error("no key: no error")
	}
	if _, err := Listen(Options{Key: testKey(t, 1), ListenAddr: "nonsense"}); err == nil {
		t.Error("bad address: no error")
	}
	if _, err := Listen(Options{Key: testKey(t, 1), ListenAddr: "127.0.0.1:0", HeartbeatInterval: time.Second, IdleTimeout: time.Second}); err == nil {
		t.Error("IdleTimeout not above HeartbeatInterval: no error")
	}
	tr, err := Listen(Options{Key: testKey(t, 1), ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if tr.Locator().ID != testKey(t, 1).ID() || tr.Locator().Addr != tr.Addr() || tr.ID() != testKey(t, 1).ID() {
		t.Fatalf("locator %v", tr.Locator())
	}
	if _, err := announce.ParseLocator(tr.Locator().String()); err != nil {
		t.Fatal(err)
	}
}

// The certificate is self-signed ed25519, accepted by peerID, and the
// same each time.
func TestCertificate(t *testing.T) {
	k := testKey(t, 7)
	c1, c2 := edCert(t, k), edCert(t, k)
	if string(c1.Certificate[0]) != string(c2.Certificate[0]) {
		t.Error("certificate not deterministic")
	}
	id, err := peerID(tls.ConnectionState{Version: tls.VersionTLS13, NegotiatedProtocol: ALPN, PeerCertificates: []*x509.Certificate{c1.Leaf}})
	if err != nil || id != k.ID() {
		t.Fatalf("peerID: %v, %v", id, err)
	}
	var ae *AuthError
	if _, err := peerID(tls.ConnectionState{Version: tls.VersionTLS12, NegotiatedProtocol: ALPN, PeerCertificates: []*x509.Certificate{c1.Leaf}}); !errors.As(err, &ae) || ae.Reason != ReasonProtocol {
		t.Fatalf("TLS 1.2: %v", err)
	}
}

// A dialled address with an unacceptable certificate is refused, and the
// dial fails with the reason.
func TestOutboundRejection(t *testing.T) {
	a := startTCP(t, testKey(t, 1), nil)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{selfSigned(t, &ec.PublicKey, ec)},
		NextProtos:   []string{ALPN},
		ClientAuth:   tls.RequestClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-done }()
	x := testKey(t, 5).ID()
	a.tr.Dial(x, []string{announce.Locator{ID: x, Addr: ln.Addr().String()}.String()}, 5*time.Second)
	if df := a.rec.next(t, "DialFailed", isDialFailed(x)).(core.DialFailed); df.Err != ReasonBadCertificate {
		t.Fatalf("DialFailed %q", df.Err)
	}
	rj := a.rec.rejection(t, func(r Rejection) bool { return r.Addr == ln.Addr().String() })
	var ae *AuthError
	if rj.Inbound || rj.Reason != ReasonBadCertificate || !errors.As(rj.Err, &ae) {
		t.Fatalf("rejection %+v", rj)
	}
}
