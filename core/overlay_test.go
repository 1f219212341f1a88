package core_test

import (
	"fmt"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/sim"
)

// overlayGrid: a relay, servers that bootstrap from it, and a client that
// dials every server, all with gossip degree d.
func overlayGrid(t *testing.T, servers, d int) (*sim.Net, *sim.Host, []*sim.Host) {
	t.Helper()
	net := sim.NewNet(11)
	add := overlayAdder(t, net, d)
	relay := add("relay", "relay", nil)
	var ss []*sim.Host
	for i := range servers {
		ss = append(ss, add("server", fmt.Sprintf("s%d", i), relay))
	}
	client := add("client", "client", relay)
	net.Run(5 * time.Second)
	return net, client, ss
}

// overlayAdder returns a function that adds a running host of a role to
// net, with gossip degree d, bootstrapped from boot if it is set.
func overlayAdder(t *testing.T, net *sim.Net, d int) func(role, name string, boot *sim.Host) *sim.Host {
	cfg := core.TestConfig()
	cfg.GossipDegree = d
	return func(role, name string, boot *sim.Host) *sim.Host {
		id, c := sim.Role(role, name, sim.KeyFor(name, 3), cfg)
		if boot != nil {
			id.Bootstrap = []announce.Locator{{ID: boot.ID, Addr: "sim:1"}}
		}
		h := net.Add(name, id, c)
		if err := net.Start(h); err != nil {
			t.Fatal(err)
		}
		return h
	}
}

// A client connected to every server gossips over D of them; the others
// carry their own records only, so it still holds and passes on every
// server, and pays less in steady state than gossiping over every link.
// When a gossip neighbour goes, another link is promoted.
func TestOverlayBoundsGossip(t *testing.T) {
	const servers, d = 12, 3
	net, client, ss := overlayGrid(t, servers, d)
	mine, all := client.Node.GossipLinks()
	if mine != d || all != d {
		t.Fatalf("client gossips over %d links (%d chosen), want %d", all, mine, d)
	}
	for _, s := range ss {
		if !client.Node.Relays(s.ID) {
			t.Fatalf("client does not pass on %s", s.Name)
		}
	}
	steady := func(net *sim.Net, h *sim.Host) uint64 {
		var before uint64
		for _, s := range h.Node.Servers() {
			before += s.BytesIn + s.BytesOut
		}
		net.Run(time.Minute)
		var after uint64
		for _, s := range h.Node.Servers() {
			after += s.BytesIn + s.BytesOut
		}
		return after - before
	}
	bounded := steady(net, client)
	fullNet, fullClient, _ := overlayGrid(t, servers, 0)
	full := steady(fullNet, fullClient)
	t.Logf("client bytes per minute: %d with D=%d, %d gossiping over all %d links", bounded, d, full, servers+1)
	if bounded*2 > full {
		t.Fatalf("the overlay saved too little: %d bytes against %d", bounded, full)
	}

	// A chosen neighbour goes: another link is promoted.
	var gone *sim.Host
	for _, s := range ss {
		if client.Node.GossipsWith(s.ID) {
			gone = s
			break
		}
	}
	if gone == nil {
		t.Fatal("no server is a gossip neighbour of the client")
	}
	net.Stop(gone)
	net.Run(2 * time.Second)
	if mine, _ := client.Node.GossipLinks(); mine != d {
		t.Fatalf("after a neighbour left the client gossips over %d chosen links, want %d", mine, d)
	}
}

// Every client dials the servers in about the same order (its bootstrap,
// then the most recently seen, R3), so choosing the first D links it
// reached would make the same few servers every client's neighbours.
// The choice is a uniform draw instead: no server carries much more than
// its share of the overlay, and every client still has D neighbours.
func TestOverlayNeighboursSpread(t *testing.T) {
	const servers, clients, d = 40, 60, 4
	net := sim.NewNet(5)
	add := overlayAdder(t, net, d)
	relay := add("relay", "relay", nil)
	var ss []*sim.Host
	for i := range servers {
		ss = append(ss, add("server", fmt.Sprintf("s%d", i), relay))
	}
	net.Run(5 * time.Second)
	var cs []*sim.Host
	for i := range clients {
		cs = append(cs, add("client", fmt.Sprintf("c%d", i), relay))
	}
	net.Run(10 * time.Second)
	chosen := map[announce.NodeID]int{}
	for _, c := range cs {
		if mine, _ := c.Node.GossipLinks(); mine != d {
			t.Fatalf("%s chose %d gossip links, want %d", c.Name, mine, d)
		}
		for _, h := range append([]*sim.Host{relay}, ss...) {
			if c.Node.GossipsWith(h.ID) {
				chosen[h.ID]++
			}
		}
	}
	most, mean := 0, float64(clients*d)/float64(servers+1)
	for _, n := range chosen {
		most = max(most, n)
	}
	t.Logf("%d clients chose %d gossip links each among %d nodes: at most %d chose the same node (mean %.1f)", clients, d, servers+1, most, mean)
	if float64(most) > 3*mean {
		t.Fatalf("%d of %d clients chose the same node as a neighbour (mean %.1f): the overlay has a hub", most, clients, mean)
	}
}

// A new seqnum from a server whose dial waits out a backoff makes the
// dial due at once (R3): a server back from maintenance is used at once.
func TestFreshSeqnumEndsBackoff(t *testing.T) {
	cfg := core.TestConfig()
	cfg.BackoffBase, cfg.BackoffMax = 10*time.Second, time.Hour
	n := newNode(t, "client", cfg)
	key := sim.KeyFor("srv", 7)
	rec := func(seq int64) announce.Signed {
		return announce.Sign(key, announce.Build(key, announce.Template{Service: announce.Service{Name: "storage"}, Locators: []string{sim.Locator(key.ID())}}, seq))
	}
	now := t0
	n.Step(now, core.Import{Recs: []announce.Signed{rec(1)}})
	dialled := func(r core.Ready) bool {
		for _, d := range r.Dials {
			if d.Peer == key.ID() {
				return true
			}
		}
		return false
	}
	if !dialled(n.Ready()) {
		t.Fatal("no first dial")
	}
	n.Step(now, core.DialFailed{Peer: key.ID(), Err: "refused"})
	n.Ready()
	info, _ := n.Server(key.ID())
	if info.NextDialIn < 2*time.Second {
		t.Fatalf("backoff %v, want a wait", info.NextDialIn)
	}
	n.Step(now.Add(time.Second/2), core.Tick{})
	if dialled(n.Ready()) {
		t.Fatal("dialled before the backoff ended")
	}
	n.Step(now.Add(time.Second), core.Import{Recs: []announce.Signed{rec(2)}})
	if !dialled(n.Ready()) {
		t.Fatal("a new seqnum did not make the waiting dial due")
	}
}

// A server pushes its own re-signed record whole over a plain link: one
// Own message, not a digest, a fetch and the records. The receiver admits
// it and moves its cursor; an Own push of a record signed by anyone but
// the sender is dropped, with a reason.
func TestOwnPushOverPlainLink(t *testing.T) {
	srv := newNode(t, "srv", core.TestConfig(), "storage")
	cl := newNode(t, "cl", core.TestConfig())
	srv.Step(t0, core.Connected{Peer: cl.ID(), Inbound: true})
	srv.Ready()
	srv.Step(t0, core.Persisted{Counter: 1})
	srv.Ready()
	srv.Step(t0, core.Received{From: cl.ID(), Msg: core.SyncReq{}}) // not a neighbour: a plain link
	first := srv.Ready().Messages
	if len(first) != 1 {
		t.Fatalf("answer to the sync request: %+v, want one digest", first)
	}
	if srv.GossipsWith(cl.ID()) {
		t.Fatal("the server gossips over an inbound link the client did not choose")
	}

	svc := announce.Template{Service: announce.Service{Name: "storage"}, Locators: []string{sim.Locator(srv.ID())}}
	srv.Step(t0, core.SetServices{Services: []announce.Template{svc}})
	srv.Ready()
	srv.Step(t0, core.Persisted{Counter: 2})
	var own []core.Own
	for _, m := range srv.Ready().Messages {
		switch msg := m.Msg.(type) {
		case core.Own:
			own = append(own, msg)
		case core.Digest:
			t.Fatalf("a digest went over the plain link: %+v", msg)
		}
	}
	if len(own) != 1 || len(own[0].Recs) != 1 || own[0].To <= own[0].From {
		t.Fatalf("pushes after the re-sign: %+v, want one Own with the record", own)
	}

	cl.Step(t0, core.Connected{Peer: srv.ID()})
	cl.Step(t0, core.Received{From: srv.ID(), Msg: first[0].Msg})
	cl.Ready()
	cl.Step(t0, core.Received{From: srv.ID(), Msg: own[0]})
	if !cl.Holds(srv.ID()) {
		t.Fatal("the client did not admit the pushed record")
	}
	if got := cl.Cursor(srv.ID()); got != own[0].To {
		t.Fatalf("cursor %d after the push, want %d", got, own[0].To)
	}
	// Not echoed to the server that pushed it, while the link is up...
	echoes := func(msgs []core.Envelope) int {
		c := 0
		for _, m := range msgs {
			if d, ok := m.Msg.(core.Digest); ok && m.To == srv.ID() {
				for _, it := range d.Items {
					if it.ID == srv.ID() {
						c++
					}
				}
			}
		}
		return c
	}
	cl.Step(t0.Add(time.Second), core.Tick{})
	if c := echoes(cl.Ready().Messages); c != 0 {
		t.Fatalf("the client sent the server its own record back %d times over the link it came by", c)
	}
	// ...but after a reconnection, which may be from a wiped directory.
	cl.Step(t0.Add(2*time.Second), core.Disconnected{Peer: srv.ID()})
	cl.Step(t0.Add(3*time.Second), core.Connected{Peer: srv.ID(), Inbound: true})
	cl.Ready()
	cl.Step(t0.Add(3*time.Second), core.Received{From: srv.ID(), Msg: core.SyncReq{Epoch: 99}})
	if c := echoes(cl.Ready().Messages); c != 1 {
		t.Fatalf("after a reconnection the client offered the server its own record %d times, want 1", c)
	}

	other := newNode(t, "other", core.TestConfig())
	x := sim.KeyFor("x", 7).ID()
	other.Step(t0, core.Connected{Peer: x})
	other.Ready()
	other.Step(t0, core.Received{From: x, Msg: own[0]})
	if other.Holds(srv.ID()) {
		t.Fatal("a record pushed by a node other than its signer was admitted")
	}
	if !hasEvent(other.Ready().Events, core.EvUnsolicited, "not-own") {
		t.Fatal("dropping another node's record in an Own push was not explained")
	}
}

// A record a gossip neighbour announced is left out of digests to it,
// whether this node held the record by then (a server's own, straight from
// the server over a plain link) or was still fetching it: each change
// crosses a gossip link about once, not once each way. A neighbour that
// did not announce it still hears of it.
func TestAnnouncedNotEchoed(t *testing.T) {
	srvItem := func() (core.Own, core.Item) {
		srv := newNode(t, "srv", core.TestConfig(), "storage")
		srv.Step(t0, core.Persisted{Counter: 1})
		srv.Ready()
		srv.Step(t0, core.Connected{Peer: sim.KeyFor("cl", 7).ID(), Inbound: true})
		srv.Ready()
		svc := announce.Template{Service: announce.Service{Name: "storage"}, Locators: []string{sim.Locator(srv.ID())}}
		srv.Step(t0, core.SetServices{Services: []announce.Template{svc}})
		srv.Ready()
		srv.Step(t0, core.Persisted{Counter: 2})
		for _, m := range srv.Ready().Messages {
			if o, ok := m.Msg.(core.Own); ok && len(o.Recs) == 1 {
				s := o.Recs[0]
				a, err := announce.Verify(s)
				if err != nil {
					t.Fatal(err)
				}
				return o, core.Item{Service: "storage", ID: srv.ID(), Seqnum: a.Seqnum, Hash: core.HashOf(s), Ver: 1}
			}
		}
		t.Fatal("the server pushed no Own after its re-sign")
		return core.Own{}, core.Item{}
	}
	own, it := srvItem()

	told := func(msgs []core.Envelope) map[announce.NodeID]bool {
		m := map[announce.NodeID]bool{}
		for _, e := range msgs {
			if d, ok := e.Msg.(core.Digest); ok {
				for _, i := range d.Items {
					m[e.To] = m[e.To] || i.ID == it.ID
				}
			}
		}
		return m
	}
	b, c, d := sim.KeyFor("b", 7).ID(), sim.KeyFor("c", 7).ID(), sim.KeyFor("d", 7).ID()
	cfg := core.TestConfig()
	cfg.GossipDegree = 3

	// Held: the server's own record came over the plain link, and b
	// announced it before the relay delay ran out.
	cl := newNode(t, "cl", cfg)
	for _, id := range []announce.NodeID{b, c, d} {
		cl.Step(t0, core.Connected{Peer: id})
	}
	cl.Step(t0, core.Connected{Peer: it.ID, Inbound: true}) // never a gossip link it chose
	cl.Ready()
	if cl.GossipsWith(it.ID) || !cl.GossipsWith(b) {
		t.Fatal("setup: the link to the server should be plain, the others gossip links")
	}
	cl.Step(t0, core.Received{From: it.ID, Msg: own})
	if !cl.Holds(it.ID) {
		t.Fatal("the client did not admit the server's own record")
	}
	cl.Step(t0, core.Received{From: b, Msg: core.Digest{To: 1, Items: []core.Item{it}}})
	cl.Ready()
	cl.Step(t0.Add(cfg.PlainRelayDelay+time.Second), core.Tick{})
	got := told(cl.Ready().Messages)
	if got[b] {
		t.Fatal("the client announced the record back to the neighbour that announced it")
	}
	if !got[c] || !got[d] {
		t.Fatalf("neighbours that did not announce it were not told: %v", got)
	}

	// Fetching: b and c announced it, b's copy arrived.
	a := newNode(t, "a", cfg)
	for _, id := range []announce.NodeID{b, c, d} {
		a.Step(t0, core.Connected{Peer: id})
	}
	a.Ready()
	a.Step(t0, core.Received{From: b, Msg: core.Digest{To: 1, Items: []core.Item{it}}})
	a.Step(t0, core.Received{From: c, Msg: core.Digest{To: 1, Items: []core.Item{it}}})
	a.Ready()
	a.Step(t0, core.Received{From: b, Msg: core.Records{Recs: own.Recs}})
	if !a.Relays(it.ID) {
		t.Fatal("a does not pass on the record it fetched")
	}
	got = told(a.Ready().Messages)
	if got[b] || got[c] {
		t.Fatalf("a announced the record back to a neighbour that announced it: %v", got)
	}
	if !got[d] {
		t.Fatal("a did not announce the record to the neighbour that lacks it")
	}
}
