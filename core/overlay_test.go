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
	cfg := core.TestConfig()
	cfg.GossipDegree = d
	add := func(role, name string, boot *sim.Host) *sim.Host {
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
	relay := add("relay", "relay", nil)
	var ss []*sim.Host
	for i := range servers {
		ss = append(ss, add("server", fmt.Sprintf("s%d", i), relay))
	}
	client := add("client", "client", relay)
	net.Run(5 * time.Second)
	return net, client, ss
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
