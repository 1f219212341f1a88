package daemon

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/nodedir"
	"grapevine/internal/transport"
	"grapevine/wire"
)

// fanInRules are the rules of every node in BenchmarkClientFanIn, for a
// given refresh interval. The sync round is 0.2 s: with a refresh of
// 1 min that is 1:300, near production's 5 min to 24 h (1:288), so a
// window of one refresh holds one refresh of every server and about 300
// rounds on every gossip link. W, H and T keep their production ratios
// to the refresh (3, 30 and 60 times). Ticks are the test preset's 0.1 s.
func fanInRules(refresh time.Duration) nodedir.Rules {
	return nodedir.Rules{
		SyncInterval:    nodedir.Duration(200 * time.Millisecond),
		RefreshInterval: nodedir.Duration(refresh),
		LivenessWindow:  nodedir.Duration(3 * refresh),
		ForgetHorizon:   nodedir.Duration(30 * refresh),
		TombstoneTTL:    nodedir.Duration(60 * refresh),
	}
}

const (
	fanInWindow = time.Minute
	// fanInBootstrap: each server bootstraps to this many random earlier
	// ones: the servers' own overlay, as bench/ builds it.
	fanInBootstrap = 3
)

// BenchmarkClientFanIn measures one client's traffic in steady state:
// real daemons, TLS on 127.0.0.1, SQLite peer books. The client is given
// the locators of the servers it is to connect to, as a Tahoe client gets
// them from its introducer, and dials them; it gossips with the first 8
// that connect (GossipDegree). Three cases:
//
//   - servers=20 and servers=200: a grid of that many servers, all
//     connected to the client (a Tahoe client's links);
//   - servers=200,connected=20: the 200-server grid, the client connected
//     to 20 of them (it dials no others) and learning the rest through its
//     gossip neighbours. Against servers=200 this isolates what the
//     connections themselves cost, at the same number of servers.
//
// Gossip bytes are the protocol messages (sync requests, digests,
// fetches, records) the client sent and received, as encoded; total
// bytes are what its TLS sockets carried, heartbeats included. With a
// refresh of 1 min every server re-signs once in the window; with 1 h
// none does, which leaves what the links cost by themselves. Run with
//
//	go test -run XXX -bench ClientFanIn -benchtime 1x -timeout 60m -v ./daemon/
func BenchmarkClientFanIn(b *testing.B) {
	cases := []struct{ servers, connected int }{{20, 20}, {200, 200}, {200, 20}}
	for _, refresh := range []time.Duration{time.Minute, time.Hour} {
		b.Run(fmt.Sprintf("refresh=%v", refresh), func(b *testing.B) {
			gossip, total := map[[2]int]float64{}, map[[2]int]float64{}
			for _, c := range cases {
				name := fmt.Sprintf("servers=%d", c.servers)
				if c.connected < c.servers {
					name += fmt.Sprintf(",connected=%d", c.connected)
				}
				b.Run(name, func(b *testing.B) {
					r := fanIn(b, c.servers, c.connected, fanInRules(refresh))
					w := r.window.Seconds()
					b.ReportMetric(0, "ns/op")
					b.ReportMetric(float64(r.gossip)/w, "gossipB/s")
					b.ReportMetric(float64(r.neighbours)/w, "neighbourB/s")
					b.ReportMetric(float64(r.gossip-r.neighbours)/w, "plainB/s")
					b.ReportMetric(float64(r.total)/w, "totalB/s")
					b.ReportMetric(float64(r.rounds)/w, "rounds/s")
					b.ReportMetric(float64(r.refreshes), "refreshes")
					for _, k := range r.kinds() {
						b.Logf("%-8s %-10s %-9s %6d msgs %9d bytes", k.typ, k.link, k.dir, r.byKind[k][0], r.byKind[k][1])
					}
					key := [2]int{c.servers, c.connected}
					gossip[key], total[key] = float64(r.gossip)/w, float64(r.total)/w
				})
			}
			ratio := func(x, y [2]int) {
				if gossip[x] > 0 && gossip[y] > 0 {
					b.Logf("%d servers (%d connected) / %d servers (%d connected): gossip bytes/s %.2f, total bytes/s %.2f",
						x[0], x[1], y[0], y[1], gossip[x]/gossip[y], total[x]/total[y])
				}
			}
			ratio([2]int{200, 200}, [2]int{20, 20})
			ratio([2]int{200, 200}, [2]int{200, 20})
		})
	}
}

// fanInResult is what the client exchanged over the window.
type fanInResult struct {
	window     time.Duration
	gossip     uint64 // protocol message bytes, sent and received
	neighbours uint64 // of them, over its gossip links
	total      uint64 // TLS socket bytes, sent and received
	rounds     uint64 // sync requests it sent
	refreshes  int    // servers whose seqnum it saw rise
	byKind     map[msgKind][2]uint64
}

// msgKind is a message type, over a gossip or a plain link, one way.
type msgKind struct{ typ, link, dir string }

func (r fanInResult) kinds() []msgKind {
	var out []msgKind
	for _, typ := range []string{"SyncReq", "Digest", "Fetch", "Records", "Own"} {
		for _, link := range []string{"neighbour", "plain"} {
			for _, dir := range []string{"sent", "received"} {
				if k := (msgKind{typ, link, dir}); r.byKind[k][0] > 0 {
					out = append(out, k)
				}
			}
		}
	}
	return out
}

// fanInSnap is the client's counters at one moment.
type fanInSnap struct {
	at                  time.Time
	msgs                map[msgKey][2]uint64
	seqnums             map[announce.NodeID]int64
	gossipLinks         map[announce.NodeID]bool
	connected, holds    int
	rounds, socketBytes uint64
}

// fanIn runs a grid of servers and a client connected to the first
// connected of them in a random order, and measures the client.
func fanIn(b *testing.B, servers, connected int, rules nodedir.Rules) fanInResult {
	rng := rand.New(rand.NewPCG(1, uint64(servers)))
	var locators [][]string
	for i := range servers {
		n := testNode(b, fmt.Sprintf("s%03d", i), nodedir.Config{Rules: rules, Introducer: noIntroducer,
			Services: []nodedir.ServiceConfig{{Name: "storage", FURL: fmt.Sprintf("pb://s%03d@tcp:127.0.0.1:9/swiss", i)}}})
		var boot []string
		for _, j := range rng.Perm(i)[:min(i, fanInBootstrap)] {
			boot = append(boot, locators[j]...)
		}
		d, _ := run(b, Options{Dir: n.Dir, Bootstrap: boot})
		locators = append(locators, d.Locators())
	}
	cn := testNode(b, "client", nodedir.Config{Rules: rules, Introducer: noIntroducer})
	tcp, err := transport.Listen(transport.Options{Key: cn.Key, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	tr := countMessages(tcp)
	b.Cleanup(func() { tr.Close() })
	var dial []string
	for _, i := range rng.Perm(servers)[:connected] {
		dial = append(dial, locators[i]...)
	}
	opt := Options{Dir: cn.Dir, Transport: tr, Bootstrap: dial}
	if connected < servers {
		opt.coreConfig = func(c *core.Config) { c.DialServers = false }
	}
	client, _ := run(b, opt)

	snap := func() fanInSnap {
		s := fanInSnap{seqnums: map[announce.NodeID]int64{}, gossipLinks: map[announce.NodeID]bool{}}
		client.Query(context.Background(), func(n *core.Node) {
			for _, p := range n.Servers() {
				s.seqnums[p.ID] = p.Seqnum
				s.gossipLinks[p.ID] = n.GossipsWith(p.ID)
				if p.Connected {
					s.connected++
				}
				if n.Holds(p.ID) {
					s.holds++
				}
			}
			s.rounds = n.SyncRounds()
		})
		st := tcp.Stats()
		s.at, s.socketBytes, s.msgs = time.Now(), st.BytesIn+st.BytesOut, tr.counts()
		return s
	}

	// Steady state: connected to every server with every record held,
	// then a few seconds more for the first full rounds to end. (Polled:
	// eventually's 10 s is short for 200 dials on a shared machine.)
	deadline := time.Now().Add(5 * time.Minute)
	for s := snap(); s.connected < connected || s.holds < servers; s = snap() {
		if time.Now().After(deadline) {
			b.Fatalf("after 5 min the client is connected to %d of %d servers and holds %d of %d records", s.connected, connected, s.holds, servers)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(10 * time.Second)

	s0 := snap()
	time.Sleep(fanInWindow)
	s1 := snap()
	if s1.connected != connected || s1.holds < servers {
		b.Fatalf("after the window the client is connected to %d servers (want %d) and holds %d of %d records", s1.connected, connected, s1.holds, servers)
	}

	r := fanInResult{window: s1.at.Sub(s0.at), total: s1.socketBytes - s0.socketBytes, rounds: s1.rounds - s0.rounds,
		byKind: map[msgKind][2]uint64{}}
	for k, v := range s1.msgs {
		n, size := v[0]-s0.msgs[k][0], v[1]-s0.msgs[k][1]
		kind := msgKind{typ: typeName[k.typ], link: "plain", dir: "received"}
		r.gossip += size
		if s1.gossipLinks[k.peer] {
			r.neighbours += size
			kind.link = "neighbour"
		}
		if k.sent {
			kind.dir = "sent"
		}
		c := r.byKind[kind]
		r.byKind[kind] = [2]uint64{c[0] + n, c[1] + size}
	}
	for id, seq := range s1.seqnums {
		if seq > s0.seqnums[id] {
			r.refreshes++
		}
	}
	return r
}

var typeName = map[core.MsgType]string{core.TypeSyncReq: "SyncReq", core.TypeDigest: "Digest", core.TypeFetch: "Fetch", core.TypeRecords: "Records", core.TypeOwn: "Own"}

// messageCounter is a TCP transport that counts the protocol messages
// sent and received, by peer, type and direction: the gossip alone, since
// heartbeats never leave the transport.
type messageCounter struct {
	*transport.TCP
	inputs chan core.Input
	stop   chan struct{}
	mu     sync.Mutex
	msgs   map[msgKey][2]uint64 // messages, bytes
}

type msgKey struct {
	peer announce.NodeID
	typ  core.MsgType
	sent bool
}

func countMessages(t *transport.TCP) *messageCounter {
	c := &messageCounter{TCP: t, inputs: make(chan core.Input, transport.InputQueue), stop: make(chan struct{}),
		msgs: map[msgKey][2]uint64{}}
	go func() {
		defer close(c.inputs)
		for in := range t.Inputs() {
			if r, ok := in.(core.Received); ok {
				c.count(r.From, r.Msg, false)
			}
			select {
			case c.inputs <- in:
			case <-c.stop:
			}
		}
	}()
	return c
}

func (c *messageCounter) count(peer announce.NodeID, m core.Msg, sent bool) {
	if m == nil {
		return
	}
	if _, ok := typeName[m.Type()]; !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := msgKey{peer, m.Type(), sent}
	v := c.msgs[k]
	c.msgs[k] = [2]uint64{v[0] + 1, v[1] + uint64(wire.Size(m))}
}

func (c *messageCounter) counts() map[msgKey][2]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.msgs)
}

func (c *messageCounter) Send(peer announce.NodeID, m core.Msg) {
	c.count(peer, m, true)
	c.TCP.Send(peer, m)
}

func (c *messageCounter) Inputs() <-chan core.Input { return c.inputs }

func (c *messageCounter) Close() error {
	close(c.stop)
	return c.TCP.Close()
}
