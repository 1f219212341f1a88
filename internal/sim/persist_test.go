package sim_test

import (
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/sim"
)

// A server whose disk refuses writes keeps its re-signed records to
// itself: its counter is not acknowledged, and a connected client that
// syncs every second keeps the last seqnum on disk. When writes succeed
// again, the acknowledgement alone (no new seqnum) brings the client the
// held record: no digest moved its cursor past it meanwhile.
func TestUnpersistedCounterHoldsOwnRecords(t *testing.T) {
	net := sim.NewNet(3)
	cfg := core.TestConfig()
	cfg.Variant.NoRefresh = true // only SetServices re-signs
	sid, scfg := sim.Role("server", "srv", sim.KeyFor("srv", 3), cfg)
	srv := net.Add("srv", sid, scfg)
	cid, ccfg := sim.Role("client", "cli", sim.KeyFor("cli", 3), cfg)
	cid.Bootstrap = []announce.Locator{{ID: srv.ID, Addr: "sim:1"}}
	cli := net.Add("cli", cid, ccfg)
	for _, h := range []*sim.Host{srv, cli} {
		if err := net.Start(h); err != nil {
			t.Fatal(err)
		}
	}
	net.Run(5 * time.Second)
	seen := func() int64 {
		s, _ := cli.Node.Server(srv.ID)
		return s.Seqnum
	}
	onDisk := srv.Node.Counter()
	if seen() != onDisk || srv.Node.Durable() != onDisk {
		t.Fatalf("before: client holds seqnum %d, server signed %d, acknowledged %d", seen(), onDisk, srv.Node.Durable())
	}

	net.FailWrites(srv, true)
	for range 3 {
		net.Input(srv, core.SetServices{Services: sid.Services})
		net.Run(3 * time.Second)
	}
	signed := srv.Node.Counter()
	if signed != onDisk+3 || srv.Node.Durable() != onDisk {
		t.Fatalf("disk full: signed %d, acknowledged %d; want %d and %d", signed, srv.Node.Durable(), onDisk+3, onDisk)
	}
	if seen() != onDisk || !net.Connected(srv, cli) {
		t.Fatalf("disk full: the client holds seqnum %d (connected %v), want %d, the last on disk", seen(), net.Connected(srv, cli), onDisk)
	}

	net.FailWrites(srv, false)
	net.Run(time.Second)
	if srv.Node.Durable() != signed || srv.Node.Counter() != signed {
		t.Fatalf("writable: acknowledged %d, counter %d; want both %d", srv.Node.Durable(), srv.Node.Counter(), signed)
	}
	if seen() != signed {
		t.Fatalf("writable: the client holds seqnum %d, want the held-back %d", seen(), signed)
	}
}
