package sim

import (
	"testing"
	"time"
)

// holdsAndReaches is the definition the start-up metrics use, written out:
// h holds every live server and is connected to every live one it can dial.
func holdsAndReaches(r *runner, h *Host) bool {
	for _, s := range r.servers {
		if _, gone := r.departed[s.ID]; !s.Up || gone {
			continue
		}
		if !h.Node.Holds(s.ID) || (!s.NAT && !r.net.Connected(h, s)) {
			return false
		}
	}
	return true
}

// replay runs a scenario (deterministic for a seed) up to at and returns
// the runner there.
func replay(t *testing.T, sc *Scenario, design string, at time.Duration) *runner {
	t.Helper()
	r, err := newRunner(sc, Options{Design: design})
	if err != nil {
		t.Fatal(err)
	}
	r.net.RunUntil(r.start.Add(at))
	return r
}

// After a wipe the client knows nothing but its bootstrap nodes: start-up
// connect is the time until it holds every live server and is connected
// to every one, not until it is connected to those it knows (which took
// one round trip, 0.1 s, however little it knew).
func TestStartupAfterWipe(t *testing.T) {
	sc, err := ParseScenario("wipe.yaml", []byte(`
name: wipe
duration: 2d
population: {servers: 10, clients: 4}
network: {latency: 50ms}
events:
  - {at: 1d12h, action: restart-clients, count: 1, wipe: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	// Never-forget passes on all it holds, so the client learns the grid
	// at once; Grapevine's servers pass on only what is live to them.
	for _, design := range []string{"never-forget", "grapevine"} {
		t.Run(design, func(t *testing.T) { checkStartup(t, sc, design) })
	}
}

func checkStartup(t *testing.T, sc *Scenario, design string) {
	rep, err := Run(sc, Options{Design: design})
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Metrics
	t.Logf("start-up connect %.3f s", m.StartupConnectSec)
	if m.Restarts != 1 {
		t.Fatalf("restarts %d, want 1", m.Restarts)
	}
	restart := 36 * time.Hour
	client := func(r *runner) *Host {
		for _, c := range r.clients {
			if r.lastStart[c].Equal(r.start.Add(restart)) {
				return c
			}
		}
		t.Fatal("no client restarted")
		return nil
	}
	if m.StartupConnectSec < 0 {
		// Never: then it does not hold and reach every live server at the end.
		r := replay(t, sc, design, time.Duration(sc.Duration))
		if c := client(r); holdsAndReaches(r, c) {
			t.Errorf("start-up connect never, yet %s holds and reaches every live server at the end", c)
		}
		return
	}
	// Connect to the bootstrap (a round trip), learn the index (a sync
	// request, a digest, a fetch and the records), connect to the others
	// (a round trip): at least 8 one-way latencies.
	if m.StartupConnectSec < 8*0.05 {
		t.Fatalf("start-up connect %.3f s, want at least 0.4 s", m.StartupConnectSec)
	}
	done := restart + time.Duration(m.StartupConnectSec*float64(time.Second))
	before := replay(t, sc, design, done-time.Millisecond)
	if c := client(before); holdsAndReaches(before, c) {
		t.Errorf("%s held and reached every live server before start-up connect said", c)
	}
	at := replay(t, sc, design, done+time.Millisecond)
	if c := client(at); !holdsAndReaches(at, c) {
		t.Errorf("%s does not hold and reach every live server when start-up connect says it does", c)
	}
}

// A client that joins late bootstraps from running nodes, as a member's
// invitation would give it: here every server of the grid's start is gone
// (and so are the clients that knew only them: they stay cut off), and the
// new clients still reach the servers that joined since. New client
// connect times them as start-up connect times restarts.
func TestJoinClients(t *testing.T) {
	sc, err := ParseScenario("late.yaml", []byte(`
name: late-clients
duration: 3d
sample: 6h
population: {servers: 4, clients: 4}
events:
  - {at: 1d, action: depart-servers, fraction: 1}
  - {at: 1d, action: join-servers, count: 2}
  - {at: 2d12h, action: join-clients, count: 3}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := replay(t, sc, "grapevine", 0)
	rep := r.run()
	m := rep.Metrics
	t.Logf("new client connect %.3f s", m.ClientJoinConnectSec)
	if rep.Nodes != 4+4+2+3 || m.DepartedServers != 4 || m.ClientJoins != 3 {
		t.Fatalf("nodes %d, departed %d, clients joined %d; want 13, 4, 3", rep.Nodes, m.DepartedServers, m.ClientJoins)
	}
	for _, c := range r.clients[4:] {
		reached := 0
		for _, b := range c.Identity.Bootstrap {
			if s := r.net.hosts[b.ID]; !s.Up {
				t.Errorf("%s was given %s to bootstrap from, which is down", c, s)
			}
		}
		for _, s := range r.servers {
			if r.net.Connected(c, s) {
				reached++
			}
		}
		if reached == 0 {
			t.Errorf("%s reached no server", c)
		}
	}
	all := true
	for _, c := range r.clients[4:] {
		all = all && holdsAndReaches(r, c)
	}
	if all && m.ClientJoinConnectSec < 0 {
		t.Errorf("new client connect never, yet every new client holds and reaches every live server at the end")
	}
}
