package core_test

import (
	"fmt"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/sim"
	"grapevine/records"
)

// floodCount is the flood an outside tester ran: just over MaxTombstones.
const floodCount = 4100

// Issue #15, item 2: one neighbour in an open grid signs, under one fresh
// key, withdrawals of 4,100 services no node ever held. They must not
// flush the tombstones an operator's forget, R4 (the horizon) or an honest
// withdrawal left, at the flooded node or at a node behind it, so replays
// of those servers' last records stay refused everywhere.
func TestTombstoneFlood(t *testing.T) {
	cfg := core.TestConfig()
	// W long enough for the withdrawals to be relayed (if they were) for
	// the whole flood, as with the default 72 h; H > W; T past the test.
	cfg.LivenessWindow = 10 * time.Minute
	cfg.ForgetHorizon = 15 * time.Minute
	cfg.TombstoneTTL = 2 * time.Hour
	// The default bounds: 50 records/s, bursts of 500, 4096 tombstones.
	net := sim.NewNet(15)
	type tally struct {
		withdrawn   int // of the flood key
		first, last time.Time
		dropped     map[string]int // table-full drops by tombstone reason
		refused     map[announce.NodeID]bool
	}
	flood := sim.KeyFor("fresh-key", 7)
	seen := map[string]*tally{}
	net.OnEvent = func(h *sim.Host, e core.Event) {
		c := seen[h.Name]
		if c == nil {
			c = &tally{dropped: map[string]int{}, refused: map[announce.NodeID]bool{}}
			seen[h.Name] = c
		}
		switch {
		case e.Kind == core.EvWithdrawn && e.Peer == flood.ID():
			if c.withdrawn == 0 {
				c.first = net.Now
			}
			c.withdrawn++
			c.last = net.Now
		case e.Kind == core.EvTombstoneExpired && e.Reason == "table-full":
			was, _ := e.Fact("was")
			c.dropped[was]++
		case e.Kind == core.EvRejected && e.Reason == "tombstoned":
			c.refused[e.Peer] = true
		}
	}
	add := func(role, name string, boot *sim.Host, tweak func(*core.Config)) *sim.Host {
		id, c := sim.Role(role, name, sim.KeyFor(name, 7), cfg)
		if boot != nil {
			id.Bootstrap = []announce.Locator{{ID: boot.ID, Addr: "sim:1"}}
		}
		if tweak != nil {
			tweak(&c)
		}
		h := net.Add(name, id, c)
		if err := net.Start(h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	victim := add("relay", "victim", nil, nil)
	add("server", "s1", victim, nil) // keeps both nodes healthy for R4
	zed := add("server", "zed", victim, nil)
	dead := add("server", "dead", victim, nil)
	leaver := add("server", "leaver", victim, nil)
	behind := add("client", "behind", victim, nil)
	net.Run(5 * time.Second)
	nodes := []*sim.Host{victim, behind}
	gone := []*sim.Host{zed, dead, leaver}
	last := map[*sim.Host]announce.Signed{}
	for _, s := range gone {
		a, ok := victim.Node.Record(records.Key{Service: "storage", ID: s.ID})
		if !ok || !behind.Node.Holds(s.ID) {
			t.Fatalf("%s not held before the test", s.Name)
		}
		last[s] = a.Signed
	}

	// leaver withdraws (R7); the operator forgets zed; dead is forgotten
	// by R4 after H.
	net.Input(leaver, core.Leave{})
	net.Run(2 * time.Second)
	for _, s := range gone {
		net.Stop(s)
	}
	for _, n := range nodes {
		net.Input(n, core.Forget{ID: zed.ID})
	}
	net.Run(cfg.ForgetHorizon + 2*time.Minute)
	want := map[*sim.Host]string{zed: "operator", dead: "gone", leaver: records.TombWithdrawn}
	check := func(when string) {
		t.Helper()
		for _, n := range nodes {
			for s, reason := range want {
				ts, ok := n.Node.Tombstoned(s.ID)
				if !ok || ts.Reason != reason || n.Node.Holds(s.ID) || n.Node.Relays(s.ID) {
					t.Fatalf("%s: %s: %s tombstone %q (%v), held %v, relayed %v; want a %q tombstone",
						when, n.Name, s.Name, ts.Reason, ok, n.Node.Holds(s.ID), n.Node.Relays(s.ID), reason)
				}
			}
			if c := n.Node.TombstoneCount(); c > cfg.MaxTombstones {
				t.Fatalf("%s: %s holds %d tombstones, cap %d", when, n.Name, c, cfg.MaxTombstones)
			}
		}
	}
	check("before the flood")

	// The flood: mallory holds 4,100 services of a fresh key, then their
	// withdrawals, so it passes the withdrawals on whatever the rules; the
	// victim never held any of them. mallory dials the victim only.
	var recs []announce.Signed // each record, then its withdrawal
	for i := range floodCount {
		tm := announce.Template{Service: announce.Service{Name: fmt.Sprintf("svc-%04d", i)}}
		recs = append(recs, announce.Sign(flood, announce.Build(flood, tm, 1)))
		tm.Withdrawn = true
		recs = append(recs, announce.Sign(flood, announce.Build(flood, tm, 2)))
	}
	attacker := func(c *core.Config) {
		c.DialServers = false
		c.Variant.NoCaps = true
		c.MaxTombstones = 2 * floodCount
	}
	start := net.Now
	mallory := add("client", "mallory", victim, attacker)
	net.Input(mallory, core.Import{Recs: recs})
	if c := mallory.Node.TombstoneCount(); c < floodCount {
		t.Fatalf("mallory holds %d withdrawals, want %d", c, floodCount)
	}
	net.Run(5 * time.Minute)
	v, b := seen["victim"], seen["behind"]
	if v == nil || b == nil {
		t.Fatal("no events from the victim or the node behind")
	}
	if v.withdrawn < floodCount {
		t.Fatalf("the victim took %d of the flood's %d withdrawals", v.withdrawn, floodCount)
	}
	t.Logf("victim: %d withdrawals from %v to %v after the flood began; table-full drops %v; %d tombstones",
		v.withdrawn, v.first.Sub(start).Round(time.Millisecond), v.last.Sub(start).Round(time.Millisecond), v.dropped, victim.Node.TombstoneCount())
	if b.withdrawn > 0 {
		t.Logf("behind: %d withdrawals of the flood key, the last %v after the flood began; table-full drops %v",
			b.withdrawn, b.last.Sub(start).Round(time.Millisecond), b.dropped)
	}
	t.Logf("behind: %d tombstones", behind.Node.TombstoneCount())
	if b.withdrawn > 0 {
		t.Fatalf("the flood's withdrawals were passed on: the node behind took %d", b.withdrawn)
	}
	check("after the flood")

	// Replays of the three servers' last records: to the victim from
	// mallory, to the node behind from a newcomer connected only to it.
	var replay []announce.Signed
	for _, s := range gone {
		replay = append(replay, last[s])
	}
	net.Input(mallory, core.Import{Recs: replay})
	replayer := add("client", "replayer", behind, attacker)
	net.Input(replayer, core.Import{Recs: replay})
	net.Run(30 * time.Second)
	check("after the replay")
	for _, n := range nodes {
		for _, s := range gone {
			if !seen[n.Name].refused[s.ID] {
				t.Fatalf("%s: the replay of %s never arrived (no tombstoned refusal)", n.Name, s.Name)
			}
		}
	}
}

// Tombstones are evicted cheapest first (R6): unheld withdrawals, then
// withdrawals, then membership, horizon and operator tombstones, the
// oldest first within each.
func TestTombstoneEvictionOrder(t *testing.T) {
	cfg := core.TestConfig()
	cfg.MaxTombstones = 4
	var st core.State
	ids := map[string]announce.NodeID{}
	for i, reason := range []string{"operator", "gone", "revoked", records.TombWithdrawn} {
		k := sim.KeyFor("old-"+reason, 7)
		ids[reason] = k.ID()
		st.Tombstones = append(st.Tombstones, core.StoredTombstone{
			Tombstone: records.Tombstone{Key: records.Key{Service: "storage", ID: k.ID()}, Seqnum: 5, HasSeqnum: true, Reason: reason},
			At:        core.Elapsed(time.Duration(i) * time.Second),
		})
	}
	n, err := newCore(cfg, core.Identity{Key: sim.KeyFor("n", 7)}, st, randSource())
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	dropped := func() []string {
		var out []string
		for _, e := range n.Ready().Events {
			if e.Kind == core.EvTombstoneExpired && e.Reason == "table-full" {
				was, _ := e.Fact("was")
				out = append(out, was)
			}
		}
		return out
	}
	step := func(in core.Input) []string {
		now = now.Add(time.Second)
		n.Step(now, in)
		return dropped()
	}
	rec := func(name string, seq int64, withdrawn bool) announce.Signed {
		k := sim.KeyFor(name, 7)
		return announce.Sign(k, announce.Build(k, announce.Template{Service: announce.Service{Name: "storage"}, Withdrawn: withdrawn}, seq))
	}
	step(core.Tick{})
	// An unheld withdrawal is itself the cheapest: it goes at once.
	if got := step(core.Import{Recs: []announce.Signed{rec("never-held", 2, true)}}); len(got) != 1 || got[0] != records.TombWithdrawnUnheld {
		t.Fatalf("unheld withdrawal into a full table: dropped %v", got)
	}
	// Each operator forget now pushes out the cheapest, oldest first.
	for i, want := range []string{records.TombWithdrawn, "revoked", "gone", "operator"} {
		name := fmt.Sprintf("forgotten-%d", i)
		step(core.Import{Recs: []announce.Signed{rec(name, 1, false)}})
		if got := step(core.Forget{ID: sim.KeyFor(name, 7).ID()}); len(got) != 1 || got[0] != want {
			t.Fatalf("forget %d: dropped %v, want [%s]", i, got, want)
		}
		if _, ok := n.Tombstoned(ids[want]); ok {
			t.Fatalf("forget %d: the %s tombstone was kept, another dropped", i, want)
		}
	}
	if c := n.TombstoneCount(); c != cfg.MaxTombstones {
		t.Fatalf("%d tombstones, want %d", c, cfg.MaxTombstones)
	}
}
