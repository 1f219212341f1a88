package transport

import (
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/wire"
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
// node with links to 20 others, all quiet but for the heartbeat, for a
// window of 4 minutes; TCP segments each way and bytes on the wire
// (payload plus 52 bytes of IPv4 and TCP headers with timestamps per
// segment), per link. Cases: the kernel's TCP keepalive at Go's default
// period with the old 30-s heartbeat (before), keepalive off with that
// heartbeat, and keepalive off with the default heartbeat (now).
//
//	go test -run XXX -bench IdleLink -benchtime 1x -v ./internal/transport/
func BenchmarkIdleLink(b *testing.B) {
	const links, window, header = 20, 4 * time.Minute, 52
	for _, c := range []struct{ keepAlive, heartbeat time.Duration }{
		{15 * time.Second, legacyHeartbeat},
		{0, legacyHeartbeat},
		{0, DefaultHeartbeat},
	} {
		ka := "off"
		if c.keepAlive > 0 {
			ka = c.keepAlive.String()
		}
		b.Run(fmt.Sprintf("kernel-keepalive=%s/heartbeat=%v", ka, c.heartbeat), func(b *testing.B) {
			var segs, bytes float64
			for range b.N {
				s, by := idleLinks(b, links, window, c.keepAlive, c.heartbeat)
				segs, bytes = segs+s, bytes+by
			}
			per := float64(b.N) * links * window.Seconds()
			b.ReportMetric(segs/per, "segments/s/link")
			b.ReportMetric((bytes+segs*header)/per, "wireB/s/link")
			b.ReportMetric((bytes+segs*header)/per*(24*time.Hour).Seconds()/1e6, "MB/day/link")
		})
	}
}

// idleLinks connects a hub to n nodes, waits out the window, and returns
// the segments and payload bytes the hub's sockets sent and received in
// it.
func idleLinks(b *testing.B, n int, window, keepAlive, heartbeat time.Duration) (segs, bytes float64) {
	b.StopTimer()
	opt := Options{kernelKeepAlive: keepAlive, HeartbeatInterval: heartbeat}
	hub := benchTransport(b, 0, opt, nil)
	for i := 1; i <= n; i++ {
		dialHub(b, benchTransport(b, i, opt, nil), hub, i)
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

// A node that speaks only grapevine/1 closes a link quiet for its idle
// timeout, so a newer node keeps to its timings over that link (and only
// that one): it pings at the legacy period, and the legacy node's link
// stays up. Two newer nodes keep their own, long, heartbeat.
func TestLegacyPeerKeepsItsTimings(t *testing.T) {
	hb, idle := legacyHeartbeat, legacyIdle
	legacyHeartbeat, legacyIdle = 20*time.Millisecond, 300*time.Millisecond
	t.Cleanup(func() { legacyHeartbeat, legacyIdle = hb, idle })
	slow := func(o *Options) { o.HeartbeatInterval, o.IdleTimeout = time.Hour, 2*time.Hour }

	protocols = []string{ALPNv1} // made with the old protocol list
	old := startTCP(t, testKey(t, 1), slow)
	protocols = []string{ALPN, ALPNv1}
	a := startTCP(t, testKey(t, 2), slow)
	b := startTCP(t, testKey(t, 3), slow)
	connect(t, a, old)
	connect(t, a, b)
	time.Sleep(time.Second) // a second of an idle link: 25 legacy heartbeats, none of a's own
	if n := a.rec.count(isRTT(old.id)); n < 5 {
		t.Errorf("a pinged the grapevine/1 node %d times in a second, want the legacy period (20 ms)", n)
	}
	if n := a.rec.count(isRTT(b.id)); n != 1 {
		t.Errorf("a pinged a grapevine/2 node %d times in a second, want only the first ping", n)
	}
	if n := old.rec.count(isDisconnected(a.id)); n != 0 {
		t.Errorf("the grapevine/1 node closed its link to a: %d Disconnected", n)
	}
}

// BenchmarkIdleLinkMemory measures what an idle connection holds in
// memory, per end: heap in use and goroutine stacks, after the first
// pings, against the same endpoints before they connected. A storage
// server keeps a link to each client, so this is its cost per client.
//
//	go test -run XXX -bench IdleLinkMemory -benchtime 1x -v ./internal/transport/
func BenchmarkIdleLinkMemory(b *testing.B) {
	const links = 100
	for range b.N {
		b.StopTimer()
		var trs []*TCP
		for i := range links + 1 {
			trs = append(trs, benchTransport(b, i, Options{}, nil))
		}
		hub := trs[0]
		heap0, stack0, g0 := memNow()
		for i := 1; i <= links; i++ {
			dialHub(b, trs[i], hub, i)
		}
		time.Sleep(time.Second) // the first pings
		heap1, stack1, g1 := memNow()
		ends := float64(2 * links)
		b.ReportMetric(float64(heap1-heap0)/ends, "heapB/end")
		b.ReportMetric(float64(stack1-stack0)/ends, "stackB/end")
		b.ReportMetric(float64(g1-g0)/ends, "goroutines/end")
		b.ReportMetric(0, "ns/op")
	}
}

// memNow returns the heap and stacks in use and the goroutines, after a
// collection.
func memNow() (heap, stack uint64, goroutines int) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse, runtime.NumGoroutine()
}

// BenchmarkLinkThroughput sends small digests (20 items, as a push of a
// busy grid's changes) one way over one TLS link as fast as the link
// takes them, with reads straight from TLS (now) and through the 16 KiB
// buffer each connection had before (baseline). The read rate is
// unbounded here, so that the link is what is measured.
//
//	go test -run XXX -bench LinkThroughput -v ./internal/transport/
func BenchmarkLinkThroughput(b *testing.B) {
	for _, buf := range []int{0, 16 << 10} {
		b.Run(fmt.Sprintf("read-buffer=%d", buf), func(b *testing.B) {
			var got atomic.Int64
			opt := Options{readBuffer: buf, ReadRate: 1 << 40}
			src := benchTransport(b, 1, opt, nil)
			dst := benchTransport(b, 2, opt, func(in core.Input) {
				if _, ok := in.(core.Received); ok {
					got.Add(1)
				}
			})
			dialHub(b, src, dst, 1)
			waitLinks(b, src, 1) // up at both ends: sends before that are dropped
			d := core.Digest{From: 1, To: 2}
			for i := range 20 {
				d.Items = append(d.Items, core.Item{Service: "storage", ID: src.ID(), Seqnum: int64(i + 1), Hash: uint64(i + 1)})
			}
			f, err := wire.EncodeFrame(d)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(f)))
			b.ResetTimer()
			wait := func(n int) {
				for deadline := time.Now().Add(10 * time.Second); got.Load() < int64(n); time.Sleep(20 * time.Microsecond) {
					if time.Now().After(deadline) {
						b.Fatalf("%d of %d digests arrived", got.Load(), n)
					}
				}
			}
			for i := range b.N {
				// A bounded window in flight, so the send queue never fills.
				wait(i - 100)
				src.Send(dst.ID(), d)
			}
			wait(b.N)
		})
	}
}

// benchTransport starts a transport on loopback with the i-th benchmark
// key and opt, and hands its inputs to onInput (if set) until it closes.
func benchTransport(b *testing.B, i int, opt Options, onInput func(core.Input)) *TCP {
	opt.Key, opt.ListenAddr = idleKey(b, i), "127.0.0.1:0"
	tr, err := Listen(opt)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for in := range tr.Inputs() {
			if onInput != nil {
				onInput(in)
			}
		}
	}()
	b.Cleanup(func() { tr.Close() })
	return tr
}

// dialHub dials hub from tr and waits until hub has links links. One at
// a time: handshakes from one address are limited.
func dialHub(b *testing.B, tr, hub *TCP, links int) {
	tr.Dial(hub.ID(), []string{announce.Locator{ID: hub.ID(), Addr: hub.Addr()}.String()}, 5*time.Second)
	waitLinks(b, hub, links)
}

// waitLinks waits until tr has links links.
func waitLinks(b *testing.B, tr *TCP, links int) {
	deadline := time.Now().Add(10 * time.Second)
	for len(sockets(b, tr)) < links {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d links up", len(sockets(b, tr)), links)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
