package transport

import (
	"net"
	"sync/atomic"
)

// Stats counts what a TCP transport has carried since Listen, on its TCP
// sockets under TLS: handshakes, TLS record headers and tags, frames,
// heartbeats, and refused handshakes too. IP and TCP headers are not
// counted. Writes counts the write calls that moved at least one byte;
// for small messages each is about one TCP segment.
type Stats struct {
	BytesIn, BytesOut uint64
	Writes            uint64
}

// Stats returns the transport's byte counts so far. It is safe to call
// at any time, also after Close.
func (t *TCP) Stats() Stats {
	return Stats{BytesIn: t.stats.in.Load(), BytesOut: t.stats.out.Load(), Writes: t.stats.writes.Load()}
}

type counters struct {
	in, out, writes atomic.Uint64
}

// countingConn counts the bytes read and written on a raw connection.
type countingConn struct {
	net.Conn
	c *counters
}

func (cc countingConn) Read(b []byte) (int, error) {
	n, err := cc.Conn.Read(b)
	cc.c.in.Add(uint64(n))
	return n, err
}

func (cc countingConn) Write(b []byte) (int, error) {
	n, err := cc.Conn.Write(b)
	if n > 0 {
		cc.c.out.Add(uint64(n))
		cc.c.writes.Add(1)
	}
	return n, err
}
