package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"grapevine/announce"
	"grapevine/core"
)

// MemNetwork is an in-memory network of transports for tests. Endpoints
// get the addresses "mem:1", "mem:2", ... in order of creation, so a
// locator is gv://v0-KEY@mem:N and parses like any other. A dial to an
// address whose endpoint has another key fails with ReasonKeyMismatch, as
// over TLS. A connection is a net.Pipe each way (so each side can close
// its half) carrying the same frames as TCP, without TLS; heartbeats,
// timeouts, queues and duplicate handling are the TCP transport's. Created inside a testing/synctest bubble, the
// network runs on the bubble's fake clock.
type MemNetwork struct {
	mu   sync.Mutex
	next int
	eps  map[string]*memEndpoint
}

// NewMemNetwork returns an empty network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{eps: map[string]*memEndpoint{}}
}

var errMemRefused = errors.New("transport: no endpoint at this memory address")

type memEndpoint struct {
	e    *engine
	net  *MemNetwork
	addr string
}

var _ Transport = (*memEndpoint)(nil)

// Endpoint adds a transport with key and default options at the next free
// address. It panics if key is not set.
func (h *MemNetwork) Endpoint(key announce.PrivateKey) Transport {
	t, err := h.EndpointWith(Options{Key: key})
	if err != nil {
		panic(err)
	}
	return t
}

// EndpointWith adds a transport with opts. ListenAddr "mem:N" asks for
// that address (free again once its endpoint is closed, so a restarted
// node can keep its locator); "" takes the next free one.
// MaxHandshakes and HandshakeTimeout do not apply.
func (h *MemNetwork) EndpointWith(opts Options) (Transport, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	addr := opts.ListenAddr
	if addr == "" {
		for {
			h.next++
			addr = "mem:" + strconv.Itoa(h.next)
			if h.eps[addr] == nil {
				break
			}
		}
	} else if n, ok := strings.CutPrefix(addr, "mem:"); !ok || !validPort(n) {
		return nil, fmt.Errorf("transport: memory address %q: want mem:N, N from 1 to 65535", addr)
	} else if h.eps[addr] != nil {
		return nil, fmt.Errorf("transport: memory address %s is in use", addr)
	}
	m := &memEndpoint{net: h, addr: addr}
	m.e = newEngine(opts, m.connect)
	h.eps[addr] = m
	return m, nil
}

func validPort(s string) bool {
	p, err := strconv.ParseUint(s, 10, 16)
	return err == nil && p > 0 && strconv.FormatUint(p, 10) == s
}

func (m *memEndpoint) Dial(peer announce.NodeID, locators []string, timeout time.Duration) {
	m.e.Dial(peer, locators, timeout)
}
func (m *memEndpoint) CancelDial(peer announce.NodeID)         { m.e.CancelDial(peer) }
func (m *memEndpoint) Send(peer announce.NodeID, msg core.Msg) { m.e.Send(peer, msg) }
func (m *memEndpoint) Disconnect(peer announce.NodeID)         { m.e.Disconnect(peer) }
func (m *memEndpoint) Inputs() <-chan core.Input               { return m.e.Inputs() }
func (m *memEndpoint) Addr() string                            { return m.addr }

func (m *memEndpoint) Close() error {
	m.net.mu.Lock()
	if m.net.eps[m.addr] == m {
		delete(m.net.eps, m.addr)
	}
	m.net.mu.Unlock()
	m.e.shutdown(nil)
	return nil
}

func (m *memEndpoint) connect(ctx context.Context, loc announce.Locator) (*conn, error) {
	m.net.mu.Lock()
	to := m.net.eps[loc.Addr]
	m.net.mu.Unlock()
	if to == nil {
		return nil, errMemRefused
	}
	var err error
	switch {
	case to.e.self != loc.ID:
		err = &KeyMismatchError{Want: loc.ID, Got: to.e.self, Addr: loc.Addr}
	case to.e.self == m.e.self:
		err = &AuthError{Reason: ReasonSelf, Detail: "the peer has our own key"}
	}
	if err != nil {
		m.e.reject(Rejection{Addr: loc.Addr, Peer: to.e.self, Reason: handshakeReason(err), Err: err})
		return nil, err
	}
	a, b := memPipe(m.addr, loc.Addr)
	if !to.accept(b, m.e.self, m.addr) {
		a.Close()
		return nil, errMemRefused
	}
	return m.e.newConn(a, a, loc.ID, false, loc.Addr, false), nil
}

// memConn is one end of an in-memory connection: a net.Pipe each way, so
// that each direction can be closed alone (CloseWrite), as over TCP.
type memConn struct {
	r, w          net.Conn
	local, remote memAddr
}

// memPipe returns the two ends of a connection between two addresses.
func memPipe(from, to string) (*memConn, *memConn) {
	r1, w1 := net.Pipe() // to -> from
	r2, w2 := net.Pipe() // from -> to
	return &memConn{r: r1, w: w2, local: memAddr(from), remote: memAddr(to)},
		&memConn{r: r2, w: w1, local: memAddr(to), remote: memAddr(from)}
}

func (c *memConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *memConn) Write(b []byte) (int, error) { return c.w.Write(b) }
func (c *memConn) CloseWrite() error           { return c.w.Close() }
func (c *memConn) Close() error {
	c.w.Close()
	return c.r.Close()
}
func (c *memConn) LocalAddr() net.Addr                { return c.local }
func (c *memConn) RemoteAddr() net.Addr               { return c.remote }
func (c *memConn) SetReadDeadline(t time.Time) error  { return c.r.SetReadDeadline(t) }
func (c *memConn) SetWriteDeadline(t time.Time) error { return c.w.SetWriteDeadline(t) }
func (c *memConn) SetDeadline(t time.Time) error {
	c.w.SetDeadline(t)
	return c.r.SetDeadline(t)
}

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

// accept serves the far end of a pipe dialled by from.
func (m *memEndpoint) accept(nc net.Conn, from announce.NodeID, addr string) bool {
	e := m.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	c := e.newConn(nc, nc, from, true, addr, false)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.serve(c, nil)
	}()
	return true
}
