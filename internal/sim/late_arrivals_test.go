package sim_test

import (
	"testing"

	"grapevine/core"
	"grapevine/internal/sim"
)

// Issue #14, R1: the other servers hold a server that has just joined
// only as a first sighting, passed on for an hour, and servers dial no
// servers. Clients that arrive 6 hours later (new, or restarted with their
// state wiped), with no relay, must still learn it at once: the new
// server's confirming re-sign, half an hour after it started, made it
// fresh at the servers. Without the re-sign they wait for its first
// refresh, a day after it joined.
func TestLateArrivals(t *testing.T) {
	sc, err := sim.ParseScenario("late.yaml", []byte(`
name: late
duration: 2d
population: {servers: 20, clients: 40}
network: {latency: 40ms, jitter: 20ms}
events:
  - {at: 1d, action: join-servers, count: 1}
  - {at: 1d6h, action: join-clients, count: 5}
  - {at: 1d6h, action: restart-clients, count: 5, wipe: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	sim.Designs["grapevine-no-confirm"] = func(c *core.Config) { c.Variant.NoConfirmResign = true }
	defer delete(sim.Designs, "grapevine-no-confirm")
	for _, d := range []string{"grapevine", "grapevine-no-confirm"} {
		rep, err := sim.Run(sc, sim.Options{Design: d})
		if err != nil {
			t.Fatal(err)
		}
		m := rep.Metrics
		t.Logf("%s: new clients know and reach every live server in %.1f s, wiped ones in %.1f s", d, m.ClientJoinConnectSec, m.StartupConnectSec)
		ok := func(s float64) bool { return s >= 0 && s <= 60 }
		switch {
		case m.ClientJoins != 5 || m.Restarts != 5:
			t.Fatalf("%s: %d joins, %d restarts, want 5 and 5", d, m.ClientJoins, m.Restarts)
		case d == "grapevine" && (!ok(m.ClientJoinConnectSec) || !ok(m.StartupConnectSec)):
			t.Errorf("grapevine: late clients took %.1f s (new) and %.1f s (wiped), want at most a minute", m.ClientJoinConnectSec, m.StartupConnectSec)
		case d != "grapevine" && ok(m.ClientJoinConnectSec):
			t.Errorf("without the confirming re-sign new clients took %.1f s: the test does not test it", m.ClientJoinConnectSec)
		}
	}
}
