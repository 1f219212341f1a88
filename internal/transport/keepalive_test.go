package transport

import (
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"grapevine/announce"
)

// sockets returns the TCP sockets of tr's connections.
func sockets(t testing.TB, tr *TCP) []*net.TCPConn {
	t.Helper()
	tr.e.mu.Lock()
	defer tr.e.mu.Unlock()
	var out []*net.TCPConn
	for _, s := range tr.e.peers {
		for _, c := range s.conns {
			if c == nil {
				continue
			}
			cc, ok := c.raw.(countingConn)
			if !ok {
				t.Fatalf("raw connection is a %T", c.raw)
			}
			tc, ok := cc.Conn.(*net.TCPConn)
			if !ok {
				t.Fatalf("raw connection wraps a %T", cc.Conn)
			}
			out = append(out, tc)
		}
	}
	return out
}

func sockopt(t testing.TB, c *net.TCPConn, f func(fd int)) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Control(func(fd uintptr) { f(int(fd)) }); err != nil {
		t.Fatal(err)
	}
}

// The kernel's TCP keepalive is off on both ends: the heartbeat does its
// work (Go turns it on by default, 15 s).
func TestNoKernelKeepAlive(t *testing.T) {
	a := startTCP(t, testKey(t, 1), nil)
	b := startTCP(t, testKey(t, 2), nil)
	connect(t, a, b)
	for name, n := range map[string]*node{"dialler": a, "listener": b} {
		socks := sockets(t, n.tr.(*TCP))
		if len(socks) != 1 {
			t.Fatalf("%s has %d sockets, want 1", name, len(socks))
		}
		sockopt(t, socks[0], func(fd int) {
			on, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
			if err != nil {
				t.Fatal(err)
			}
			if on != 0 {
				t.Errorf("%s's socket has SO_KEEPALIVE on", name)
			}
		})
	}
}

// BenchmarkIdleLink measures what idle connections cost below TLS: one
// node with links to 20 others, all quiet but for the heartbeat (the
// default 30 s), for a window of 2 minutes; TCP segments each way and
// bytes on the wire (payload plus 52 bytes of IPv4 and TCP headers with
// timestamps per segment), per link. The baseline is the kernel's TCP
// keepalive at Go's default period, measured in the same run.
//
//	go test -run XXX -bench IdleLink -benchtime 1x -v ./internal/transport/
func BenchmarkIdleLink(b *testing.B) {
	const links, window, header = 20, 2 * time.Minute, 52
	for _, ka := range []time.Duration{15 * time.Second, 0} {
		name := "kernel-keepalive=off"
		if ka > 0 {
			name = fmt.Sprintf("kernel-keepalive=%v", ka)
		}
		b.Run(name, func(b *testing.B) {
			var segs, bytes float64
			for range b.N {
				s, by := idleLinks(b, links, window, ka)
				segs, bytes = segs+s, bytes+by
			}
			per := float64(b.N) * links * window.Seconds()
			b.ReportMetric(segs/per, "segments/s/link")
			b.ReportMetric((bytes+segs*header)/per, "wireB/s/link")
			b.ReportMetric((bytes+segs*header)/float64(b.N)/links*(24*time.Hour).Seconds()/window.Seconds()/1e6, "MB/day/link")
		})
	}
}

// idleLinks connects a hub to n nodes, waits out the window, and returns
// the segments and payload bytes the hub's sockets sent and received in
// it.
func idleLinks(b *testing.B, n int, window, keepAlive time.Duration) (segs, bytes float64) {
	b.StopTimer()
	start := func(i int) *TCP {
		tr, err := Listen(Options{Key: idleKey(b, i), ListenAddr: "127.0.0.1:0", kernelKeepAlive: keepAlive})
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for range tr.Inputs() {
			}
		}()
		b.Cleanup(func() { tr.Close() })
		return tr
	}
	hub := start(0)
	for i := 1; i <= n; i++ {
		// One at a time: handshakes from one address are limited.
		tr := start(i)
		tr.Dial(hub.ID(), []string{locator(idleKey(b, 0), hub)}, 5*time.Second)
		deadline := time.Now().Add(10 * time.Second)
		for len(sockets(b, hub)) < i {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d links up", len(sockets(b, hub)), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(time.Second) // the first pings
	count := func() (s, by float64) {
		for _, c := range sockets(b, hub) {
			sockopt(b, c, func(fd int) {
				ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
				if err != nil {
					b.Fatal(err)
				}
				s += float64(ti.Segs_out) + float64(ti.Segs_in)
				by += float64(ti.Bytes_sent) + float64(ti.Bytes_received)
			})
		}
		return s, by
	}
	s0, by0 := count()
	b.StartTimer()
	time.Sleep(window)
	b.StopTimer()
	s1, by1 := count()
	return s1 - s0, by1 - by0
}

func idleKey(b *testing.B, i int) announce.PrivateKey {
	k, err := announce.NewPrivateKey(fmt.Appendf(nil, "idle-link-benchmark-key-%08d", i))
	if err != nil {
		b.Fatal(err)
	}
	return k
}
