package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"grapevine/announce"
	"grapevine/core"
)

// TCP is the real transport: mutual TLS 1.3 over TCP.
type TCP struct {
	e     *engine
	ln    net.Listener
	tls   *tls.Config
	slots *handshakeSlots // inbound handshakes in progress
	addr  string
	stats counters // what the sockets carried (see Stats)

	inbound, refused atomic.Int64 // inbound connections open; refused before their handshake
	refusals         refusalLog
}

var _ Transport = (*TCP)(nil)

// Listen starts a TCP transport listening on opts.ListenAddr.
func Listen(opts Options) (*TCP, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := announce.CheckHostPort(opts.ListenAddr, true); err != nil {
		return nil, err
	}
	cert, err := certificate(opts.Key)
	if err != nil {
		return nil, err
	}
	lc := net.ListenConfig{KeepAlive: opts.tcpKeepAlive()}
	ln, err := lc.Listen(context.Background(), "tcp", opts.ListenAddr)
	if err != nil {
		return nil, err
	}
	t := &TCP{ln: ln, slots: newHandshakeSlots(opts.MaxHandshakes, opts.MaxHandshakesPerAddress), addr: ln.Addr().String()}
	t.e = newEngine(opts, t.connect)
	t.refusals.e = t.e
	t.tls = tlsConfig(cert, t.e.self)
	t.e.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// ID returns the node ID the transport proves.
func (t *TCP) ID() announce.NodeID { return t.e.self }

// Locator returns the gv:// locator of the listening address. A listener
// on an unspecified address (":0", "[::]:0") gives a locator only useful
// on this host.
func (t *TCP) Locator() announce.Locator { return announce.Locator{ID: t.e.self, Addr: t.addr} }

func (t *TCP) Dial(peer announce.NodeID, locators []string, timeout time.Duration) {
	t.e.Dial(peer, locators, timeout)
}
func (t *TCP) CancelDial(peer announce.NodeID)       { t.e.CancelDial(peer) }
func (t *TCP) Send(peer announce.NodeID, m core.Msg) { t.e.Send(peer, m) }
func (t *TCP) Disconnect(peer announce.NodeID)       { t.e.Disconnect(peer) }
func (t *TCP) Inputs() <-chan core.Input             { return t.e.Inputs() }
func (t *TCP) Addr() string                          { return t.addr }

// Close closes the listener and every connection, waits for the
// transport's goroutines to end, then closes Inputs.
func (t *TCP) Close() error {
	var err error
	t.e.shutdown(func() { err = t.ln.Close() })
	return err
}

func (t *TCP) acceptLoop() {
	e := t.e
	defer e.wg.Done()
	var backoff time.Duration
	for {
		raw, err := t.ln.Accept()
		if err != nil {
			if e.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait a little.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			e.log.Warn("accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-e.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		// Never wait here: a connection that cannot start its handshake
		// now is closed now.
		if t.inbound.Load() >= int64(e.opts.MaxInbound) {
			t.refuse(raw, ReasonTooManyInbound)
			continue
		}
		h, reason := t.slots.admit(raw)
		if h == nil {
			t.refuse(raw, reason)
			continue
		}
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			raw.Close()
			t.slots.release(h)
			return
		}
		t.inbound.Add(1)
		e.wg.Add(1)
		e.mu.Unlock()
		go func() {
			defer e.wg.Done()
			defer t.inbound.Add(-1)
			c := t.accept(h)
			if c != nil {
				e.serve(c, nil)
			}
		}()
	}
}

func (t *TCP) refuse(raw net.Conn, reason string) {
	t.refused.Add(1)
	t.refusals.refuse(raw, reason)
}

// accept runs an inbound handshake in the slot h holds, and frees it. The
// whole ClientHello must arrive within HelloTimeout, the rest of the
// handshake within HandshakeTimeout.
func (t *TCP) accept(h *handshake) *conn {
	e := t.e
	start := time.Now()
	raw := net.Conn(countingConn{h.raw, &t.stats})
	addr := raw.RemoteAddr().String()
	raw.SetDeadline(start.Add(e.opts.HelloTimeout))
	cfg := t.tls.Clone()
	var hello *tls.ClientHelloInfo
	cfg.GetConfigForClient = func(ch *tls.ClientHelloInfo) (*tls.Config, error) {
		hello = ch
		raw.SetDeadline(start.Add(e.opts.HandshakeTimeout))
		return nil, nil
	}
	tc := tls.Server(raw, cfg)
	ctx, cancel := context.WithTimeout(e.ctx, e.opts.HandshakeTimeout)
	defer cancel()
	err := tc.HandshakeContext(ctx)
	var id announce.NodeID
	if err == nil {
		id, err = peerID(tc.ConnectionState())
	}
	evicted := t.slots.release(h)
	if evicted && err == nil {
		err = errEvicted // closed under it as it finished
	}
	if err != nil {
		raw.Close()
		if e.ctx.Err() == nil {
			reason := handshakeReason(err)
			switch {
			case evicted:
				reason = ReasonEvicted
			case hello == nil && reason == ReasonTimeout:
				reason = ReasonHelloTimeout
			}
			if hello != nil && reason == ReasonHandshake &&
				(len(hello.SupportedProtos) > 0 && !slices.ContainsFunc(hello.SupportedProtos, speaks) ||
					!slices.Contains(hello.SupportedVersions, tls.VersionTLS13)) {
				reason = ReasonProtocol
			}
			var ae *AuthError
			if errors.As(err, &ae) && ae.Reason == ReasonSelf {
				id = e.self
			}
			e.reject(Rejection{Addr: addr, Peer: id, Inbound: true, Reason: reason, Err: err})
		}
		return nil
	}
	raw.SetDeadline(time.Time{})
	return e.newConn(tc, raw, id, true, addr, legacy(tc))
}

// connect dials one locator and runs the outbound handshake.
func (t *TCP) connect(ctx context.Context, loc announce.Locator) (*conn, error) {
	e := t.e
	d := net.Dialer{KeepAlive: e.opts.tcpKeepAlive()}
	raw, err := d.DialContext(ctx, "tcp", loc.Addr)
	if err != nil {
		return nil, err
	}
	raw = countingConn{raw, &t.stats}
	addr := raw.RemoteAddr().String()
	raw.SetDeadline(time.Now().Add(e.opts.HandshakeTimeout))
	tc := tls.Client(raw, clientConfig(t.tls, e.self, loc))
	hctx, cancel := context.WithTimeout(ctx, e.opts.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			r := Rejection{Addr: addr, Reason: handshakeReason(err), Err: err}
			var km *KeyMismatchError
			if errors.As(err, &km) {
				r.Peer = km.Got
			}
			e.reject(r)
		}
		return nil, err
	}
	raw.SetDeadline(time.Time{})
	return e.newConn(tc, raw, loc.ID, false, addr, legacy(tc)), nil
}

var errEvicted = errors.New("transport: handshake slot given to a connection from a less busy address")

func handshakeReason(err error) string {
	var km *KeyMismatchError
	var ae *AuthError
	var ne net.Error
	switch {
	case errors.As(err, &km):
		return ReasonKeyMismatch
	case errors.As(err, &ae):
		return ae.Reason
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	}
	return ReasonHandshake
}

// dialReason classifies an error from a connector.
func dialReason(err error) string {
	var ne net.Error
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, errMemRefused):
		return ReasonRefused
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	case errors.As(err, &dnsErr):
		return ReasonUnreachable
	}
	if r := handshakeReason(err); r != ReasonHandshake {
		return r
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return ReasonUnreachable
	}
	return ReasonHandshake
}
