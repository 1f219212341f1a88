package core_test

import (
	"fmt"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/sim"
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
