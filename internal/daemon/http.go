package daemon

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// handler serves the status endpoint: the page, the JSON API, metrics.
func (d *Daemon) handler() http.Handler {
	mux := http.NewServeMux()
	d.statusHandlers(mux)     // status.go: /v1/status, /v1/import
	d.membershipHandlers(mux) // members.go: /v1/members, /v1/invites, /v1/revoke
	d.pageHandlers(mux)       // page.go: the HTML status page
	d.apiHandlers(mux)        // api.go: the rest of the JSON API
	d.metricsHandlers(mux)    // metrics.go: /metrics
	d.tahoeHandlers(mux)      // tahoe.go: /v1/tahoe/servers
	return d.guard(mux)
}

// The status endpoint's bounds: a client that is slow or idle loses its
// connection, and connections over the cap wait in the kernel's backlog
// instead of taking file descriptors the gossip port needs.
const (
	statusReadHeaderTimeout = 5 * time.Second
	statusReadTimeout       = 30 * time.Second // the whole request, body included
	statusWriteTimeout      = 60 * time.Second
	statusIdleTimeout       = 60 * time.Second // between requests on a kept-alive connection
	maxStatusConns          = 64
)

type statusLimits struct {
	readHeader, read, write, idle time.Duration
	conns                         int
}

func (d *Daemon) statusLimits() statusLimits {
	l := d.opt.statusLimits
	or := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	or(&l.readHeader, statusReadHeaderTimeout)
	or(&l.read, statusReadTimeout)
	or(&l.write, statusWriteTimeout)
	or(&l.idle, statusIdleTimeout)
	if l.conns <= 0 {
		l.conns = maxStatusConns
	}
	return l
}

func (d *Daemon) statusServer() *http.Server {
	l := d.statusLimits()
	return &http.Server{Handler: d.handler(), ReadHeaderTimeout: l.readHeader, ReadTimeout: l.read,
		WriteTimeout: l.write, IdleTimeout: l.idle}
}

// limitConns returns ln accepting at most n connections open at once.
func limitConns(ln net.Listener, n int) net.Listener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	slots chan struct{}
	done  chan struct{}
	once  sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &slotConn{Conn: c, slots: l.slots}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// slotConn gives its slot back when closed.
type slotConn struct {
	net.Conn
	slots chan struct{}
	once  sync.Once
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { <-c.slots })
	return err
}
