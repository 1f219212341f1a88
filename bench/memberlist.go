package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// MemberlistPushPull is DefaultLANConfig's push/pull interval as
// memberlist scales it for n nodes: 30 s up to 32 nodes, then
// 30 s × (ceil(log2(n) - log2(32)) + 1).
func MemberlistPushPull(n int) time.Duration {
	base := memberlist.DefaultLANConfig().PushPullInterval
	if n <= 32 {
		return base
	}
	return time.Duration(math.Ceil(math.Log2(float64(n))-5)+1) * base
}

// countingTransport is a memberlist.NetTransport that counts the UDP
// payloads it sends and the bytes written on its TCP streams, both ways
// of opening them.
type countingTransport struct {
	*memberlist.NetTransport
	udp, tcp *counter
	streams  chan net.Conn
	done     chan struct{}
}

var _ memberlist.NodeAwareTransport = (*countingTransport)(nil)

func newCountingTransport() (*countingTransport, error) {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{"127.0.0.1"},
		BindPort:  0,
		Logger:    log.New(io.Discard, "", 0),
	})
	if err != nil {
		return nil, err
	}
	t := &countingTransport{NetTransport: nt, udp: &counter{}, tcp: &counter{},
		streams: make(chan net.Conn), done: make(chan struct{})}
	go func() {
		for {
			select {
			case c := <-nt.StreamCh():
				select {
				case t.streams <- countConn{c, t.tcp}:
				case <-t.done:
					c.Close()
					return
				}
			case <-t.done:
				return
			}
		}
	}()
	return t, nil
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	ts, err := t.NetTransport.WriteTo(b, addr)
	if err == nil {
		t.udp.add(len(b))
	}
	return ts, err
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	ts, err := t.NetTransport.WriteToAddress(b, a)
	if err == nil {
		t.udp.add(len(b))
	}
	return ts, err
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return countConn{c, t.tcp}, nil
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return countConn{c, t.tcp}, nil
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *countingTransport) Shutdown() error {
	close(t.done)
	return t.NetTransport.Shutdown()
}

// mlEvents timestamps NotifyJoin per joining node.
type mlEvents struct {
	joined *seen
	leaves *counter
}

func (e mlEvents) NotifyJoin(n *memberlist.Node)   { e.joined.mark(n.Name, time.Now()) }
func (e mlEvents) NotifyLeave(n *memberlist.Node)  { e.leaves.add(1) }
func (e mlEvents) NotifyUpdate(n *memberlist.Node) {}

// mlLog counts the failure detector's doubts in memberlist's log: probes
// that timed out, suspicions raised, and suspicions a node refuted about
// itself. In a healthy quiet cluster all three stay at zero.
type mlLog struct {
	probeFails, suspects, refutes counter
}

func (l *mlLog) Write(p []byte) (int, error) {
	switch {
	case bytes.Contains(p, []byte("Failed UDP ping")):
		l.probeFails.add(1)
	case bytes.Contains(p, []byte("] memberlist: Suspect ")):
		l.suspects.add(1)
	case bytes.Contains(p, []byte("Refuting a suspect")):
		l.refutes.add(1)
	}
	return len(p), nil
}

func (l *mlLog) counts() [3]uint64 {
	return [3]uint64{l.probeFails.writes.Load(), l.suspects.writes.Load(), l.refutes.writes.Load()}
}

type mlNode struct {
	name   string
	addr   string
	list   *memberlist.Memberlist
	tr     *countingTransport
	joined *seen
	leaves *counter
}

func startMemberlist(i int, logs *mlLog) (*mlNode, error) {
	tr, err := newCountingTransport()
	if err != nil {
		return nil, err
	}
	n := &mlNode{name: fmt.Sprintf("ml-%03d", i), tr: tr, joined: newSeen(), leaves: &counter{}}
	port := tr.GetAutoBindPort()
	n.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := memberlist.DefaultLANConfig()
	conf.Name = n.name
	conf.BindAddr, conf.BindPort = "127.0.0.1", port
	conf.AdvertiseAddr, conf.AdvertisePort = "127.0.0.1", port
	conf.Transport = tr
	conf.Events = mlEvents{n.joined, n.leaves}
	conf.Logger = log.New(logs, "", 0)
	if n.list, err = memberlist.Create(conf); err != nil {
		tr.Shutdown()
		return nil, err
	}
	return n, nil
}

// RunMemberlist measures memberlist with DefaultLANConfig.
func RunMemberlist(ctx context.Context, cfg Config) (res Result, err error) {
	cfg = cfg.withDefaults()
	res = Result{System: "memberlist", N: cfg.N, Quiet: cfg.window(MemberlistPushPull(cfg.N)), JoinLimit: cfg.JoinTimeout}
	pick := newPicker(cfg.Seed, 1)
	logs := &mlLog{}
	var nodes []*mlNode
	defer func() {
		for _, n := range nodes {
			n.list.Shutdown()
		}
	}()

	start := time.Now()
	for i := range cfg.N {
		n, err := startMemberlist(i, logs)
		if err != nil {
			return res, err
		}
		if i > 0 {
			peer := nodes[pick.r.IntN(len(nodes))]
			addrs := []string{peer.addr}
			if cfg.BuildJoinAll {
				addrs = addrs[:0]
				for _, m := range nodes {
					addrs = append(addrs, m.addr)
				}
			}
			if _, err := n.list.Join(addrs); err != nil {
				n.list.Shutdown()
				return res, fmt.Errorf("node %d joining through %s: %w", i, peer.name, err)
			}
		}
		nodes = append(nodes, n)
	}
	converged := func() bool {
		for _, n := range nodes {
			if n.list.NumMembers() != cfg.N {
				return false
			}
		}
		return true
	}
	if res.Converge, err = waitConverged(ctx, start, cfg.Converge, converged); err != nil {
		return res, err
	}
	cfg.Logf("memberlist N=%d: converged in %v; settling %v, then a quiet window of %v", cfg.N, res.Converge.Round(time.Millisecond), cfg.Settle, res.Quiet)

	// Steady state.
	if err := sleep(ctx, cfg.Settle); err != nil {
		return res, err
	}
	sum := func() (udp, udpW, tcp, tcpW, leaves uint64) {
		for _, n := range nodes {
			udp += n.tr.udp.bytes.Load()
			udpW += n.tr.udp.writes.Load()
			tcp += n.tr.tcp.bytes.Load()
			tcpW += n.tr.tcp.writes.Load()
			leaves += n.leaves.writes.Load()
		}
		return
	}
	u0, uw0, t0, tw0, l0 := sum()
	d0 := logs.counts()
	if err := sleep(ctx, res.Quiet); err != nil {
		return res, err
	}
	u1, uw1, t1, tw1, l1 := sum()
	d1 := logs.counts()
	if d1 != d0 {
		res.Notes = append(res.Notes, fmt.Sprintf("memberlist N=%d: during the quiet window %d probes timed out, %d suspicions were raised and %d refuted (failure-detector traffic, not steady state)",
			cfg.N, d1[0]-d0[0], d1[1]-d0[1], d1[2]-d0[2]))
	}
	res.UDPBytes, res.TCPBytes = u1-u0, t1-t0
	res.Bytes, res.Writes = res.UDPBytes+res.TCPBytes, (uw1-uw0)+(tw1-tw0)
	if l1 != l0 || !converged() {
		res.Notes = append(res.Notes, fmt.Sprintf("memberlist N=%d: %d nodes seen leaving during the quiet window", cfg.N, l1-l0))
	}
	cfg.Logf("memberlist N=%d: %.1f B/node/s (UDP %d B, TCP %d B)", cfg.N, res.BytesPerNodeSec(), res.UDPBytes, res.TCPBytes)

	// Joins.
	var lats []time.Duration
	for j := range cfg.Joins {
		n, err := startMemberlist(cfg.N+j, logs)
		if err != nil {
			return res, err
		}
		existing := nodes
		peer := existing[pick.r.IntN(len(existing))]
		t0 := time.Now()
		if _, err := n.list.Join([]string{peer.addr}); err != nil {
			n.list.Shutdown()
			return res, fmt.Errorf("join %d through %s: %w", j+1, peer.name, err)
		}
		nodes = append(nodes, n)
		at := waitAll(ctx, cfg.JoinTimeout, len(existing), func(i int) (time.Time, bool) {
			return existing[i].joined.get(n.name)
		})
		l, missed := joinTimes(t0, at)
		lats = append(lats, l...)
		res.Missed += missed
		res.Joins++
		res.JoinMax = append(res.JoinMax, joinMax(l, missed))
		cfg.Logf("memberlist N=%d: join %d: %s", cfg.N, j+1, describeJoin(l, missed, len(existing)))
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	res.Join = summarise(lats)
	return res, nil
}

// waitAll polls every 5 ms until get reports every one of n nodes, or
// timeout passes; it returns each node's time (zero if not reported).
func waitAll(ctx context.Context, timeout time.Duration, n int, get func(i int) (time.Time, bool)) []time.Time {
	at := make([]time.Time, n)
	left := n
	deadline := time.Now().Add(timeout)
	for left > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		for i := range at {
			if at[i].IsZero() {
				if t, ok := get(i); ok {
					at[i] = t
					left--
				}
			}
		}
		if left > 0 {
			sleep(ctx, 5*time.Millisecond)
		}
	}
	return at
}

// joinMax is the time until the last node knew; -1 if some never did.
func joinMax(lat []time.Duration, missed int) time.Duration {
	if missed > 0 || len(lat) == 0 {
		return -1
	}
	return summarise(lat).Max
}

func describeJoin(lat []time.Duration, missed, n int) string {
	d := summarise(lat)
	s := fmt.Sprintf("%d/%d nodes knew it: p50 %v, p90 %v, max %v", n-missed, n, d.P50.Round(time.Millisecond),
		d.P90.Round(time.Millisecond), d.Max.Round(time.Millisecond))
	return s
}
