package foolscap

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Options configure a Server (and Dial). Zero values take the defaults
// noted; a negative duration disables that timer.
type Options struct {
	Logger *slog.Logger // default: discard

	MaxConnections    int           // concurrent connections, default 1000
	HandshakeTimeout  time.Duration // whole negotiation, default 60s
	KeepaliveInterval time.Duration // PING after this much silence, default 60s
	IdleTimeout       time.Duration // drop after this much silence, default 180s
	WriteTimeout      time.Duration // per message write, default 60s

	MaxTokenSize    int // STRING body bytes, default 640 KiB
	MaxMessageSize  int // bytes per top-level message, default 4 MiB
	MaxOpenDepth    int // nested sequences per message, default 64
	MaxItems        int // tokens per top-level message, default 200000
	MaxVocab        int // inbound vocab entries, default 1024
	MaxPendingCalls int // queued inbound calls per connection, default 64
	MaxRemoteRefs   int // peer objects tracked per connection, default 10000
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	defd := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	def(&o.MaxConnections, 1000)
	defd(&o.HandshakeTimeout, 60*time.Second)
	defd(&o.KeepaliveInterval, 60*time.Second)
	defd(&o.IdleTimeout, 180*time.Second)
	defd(&o.WriteTimeout, 60*time.Second)
	def(&o.MaxTokenSize, 640<<10)
	def(&o.MaxMessageSize, 4<<20)
	def(&o.MaxOpenDepth, 64)
	def(&o.MaxItems, 200000)
	def(&o.MaxVocab, 1024)
	def(&o.MaxPendingCalls, 64)
	def(&o.MaxRemoteRefs, 10000)
	return o
}

// Server accepts foolscap connections for one Tub and serves the objects
// registered under swissnum names.
type Server struct {
	tub  *Tub
	opts Options
	log  *slog.Logger
	sem  chan struct{}

	mu        sync.Mutex
	names     map[string]Object
	listeners map[net.Listener]struct{}
	raws      map[net.Conn]struct{}
	conns     map[*Conn]struct{}
	closed    bool
	wg        sync.WaitGroup
}

// NewServer returns a server for tub.
func NewServer(tub *Tub, opts Options) *Server {
	opts = opts.withDefaults()
	return &Server{
		tub: tub, opts: opts, log: opts.Logger,
		sem:       make(chan struct{}, opts.MaxConnections),
		names:     map[string]Object{},
		listeners: map[net.Listener]struct{}{},
		raws:      map[net.Conn]struct{}{},
		conns:     map[*Conn]struct{}{},
	}
}

// Tub returns the server's identity.
func (s *Server) Tub() *Tub { return s.tub }

// Register publishes obj under name (the FURL's last component, usually
// NewSwissnum). obj may implement RemoteInterfacer.
func (s *Server) Register(name string, obj Object) {
	s.mu.Lock()
	s.names[name] = obj
	s.mu.Unlock()
}

// Unregister removes a name; existing references keep working.
func (s *Server) Unregister(name string) {
	s.mu.Lock()
	delete(s.names, name)
	s.mu.Unlock()
}

func (s *Server) lookup(name string) (Object, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.names[name]
	return o, ok
}

// Conns returns the currently established connections.
func (s *Server) Conns() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// Serve accepts connections on ln until Close; it then returns
// ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	backoff := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(backoff)
				backoff = min(2*backoff, time.Second)
				continue
			}
			return err
		}
		backoff = 5 * time.Millisecond
		select {
		case s.sem <- struct{}{}:
		default:
			s.log.Warn("foolscap: connection limit reached, refusing", "remote", nc.RemoteAddr())
			nc.Close()
			continue
		}
		s.wg.Add(1)
		go s.handle(nc)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) handle(nc net.Conn) {
	defer s.wg.Done()
	defer func() { <-s.sem }()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.raws[nc] = struct{}{}
	s.mu.Unlock()
	c, err := s.handshake(nc)
	s.mu.Lock()
	delete(s.raws, nc)
	if err == nil && s.closed {
		err = ErrServerClosed
	}
	if err == nil {
		s.conns[c] = struct{}{}
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Info("foolscap: negotiation failed", "remote", nc.RemoteAddr(), "err", err)
		if c != nil {
			c.fail(err)
		}
		nc.Close()
		return
	}
	s.log.Info("foolscap: connection established", "peer", c.peerID, "remote", nc.RemoteAddr())
	c.addOnClose(func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	})
	c.start()
	<-c.Done()
}

func (s *Server) handshake(nc net.Conn) (*Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.HandshakeTimeout)
	defer cancel()
	nc.SetDeadline(time.Now().Add(s.opts.HandshakeTimeout))
	br := bufio.NewReaderSize(nc, maxBlockSize)
	if err := serverPlaintext(nc, br, s.tub.id); err != nil {
		return nil, err
	}
	tc := tls.Server(&bufferedConn{Conn: nc, r: br}, tlsServerConfig(s.tub))
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	peer, err := peerTubID(tc)
	if err != nil {
		return nil, err
	}
	c := newConn(s.tub, nc, tc, s.opts, false, s.lookup)
	c.peerID = peer
	if err := c.encrypted(ctx); err != nil {
		return c, err
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

// Close stops all listeners and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	var lns []net.Listener
	for ln := range s.listeners {
		lns = append(lns, ln)
	}
	var raws []net.Conn
	for r := range s.raws {
		raws = append(raws, r)
	}
	var conns []*Conn
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	for _, r := range raws {
		r.Close()
	}
	for _, c := range conns {
		c.fail(ErrServerClosed)
	}
	s.wg.Wait()
	return nil
}
