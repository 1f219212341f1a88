package bench

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// counter counts bytes and write calls.
type counter struct {
	bytes, writes atomic.Uint64
}

func (c *counter) add(n int) {
	c.bytes.Add(uint64(n))
	c.writes.Add(1)
}

// countConn counts what is written on a stream.
type countConn struct {
	net.Conn
	c *counter
}

func (cc countConn) Write(b []byte) (int, error) {
	n, err := cc.Conn.Write(b)
	if n > 0 {
		cc.c.add(n)
	}
	return n, err
}

// seen records, per subject, when a node first learnt of it.
type seen struct {
	mu sync.Mutex
	at map[string]time.Time
}

func newSeen() *seen { return &seen{at: map[string]time.Time{}} }

func (s *seen) mark(subject string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.at[subject]; !ok {
		s.at[subject] = t
	}
}

func (s *seen) get(subject string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[subject]
	return t, ok
}

func (s *seen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.at)
}
