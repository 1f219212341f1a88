package sim_test

import (
	"flag"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/sim"
)

var propagationN = flag.Int("propagation-n", 1000, "nodes in TestPropagationRounds (the recorded run uses 10000)")

// A new record, with every node allowed to relay, reaches 99.9% of n nodes
// within log3(n) + ln ln(n) + 3 gossip rounds: the push-pull floor of
// Karp et al., "Randomized Rumor Spreading" (FOCS 2000), plus 3. Nodes are relays on a random graph (each dials 5 random
// others); one server joins and announces. A round is one hop: the digest
// push, the fetch and the records, three one-way latencies with no jitter.
func TestPropagationRounds(t *testing.T) {
	n := *propagationN
	if testing.Short() {
		n = 200
	}
	rounds, reached, elapsed := propagate(t, n, 5)
	floor := math.Log(float64(n))/math.Log(3) + math.Log(math.Log(float64(n)))
	t.Logf("n=%d: 99.9%% reached after %.2f rounds (%d of %d nodes at the end); floor log3(n)+lnln(n) = %.2f; limit %.2f; wall %v",
		n, rounds, reached, n, floor, floor+3, elapsed)
	if rounds > floor+3 {
		t.Fatalf("%.2f rounds to reach 99.9%% of %d nodes, limit %.2f", rounds, n, floor+3)
	}
}

func propagate(t *testing.T, n, degree int) (rounds float64, reached int, wall time.Duration) {
	start := time.Now()
	net := sim.NewNet(11)
	net.Latency, net.Jitter = 10*time.Millisecond, 0
	cfg := core.TestConfig()
	cfg.SyncInterval = time.Hour // rounds of anti-entropy play no part: pushes only
	cfg.TickInterval, cfg.MaxTickGap = time.Second, 10*time.Second
	cfg.RefreshInterval, cfg.LivenessWindow, cfg.FirstSightWindow = time.Hour, 3*time.Hour, time.Hour
	cfg.ForgetHorizon, cfg.TombstoneTTL = 6*time.Hour, 12*time.Hour
	keys := make([]announce.PrivateKey, n)
	for i := range keys {
		keys[i] = sim.KeyFor(fmt.Sprintf("r%d", i), 11)
	}
	rng := net.Rand()
	var hosts []*sim.Host
	for i := range n {
		id := core.Identity{Key: keys[i]}
		for range degree {
			j := rng.IntN(n)
			if j != i {
				id.Bootstrap = append(id.Bootstrap, announce.Locator{ID: keys[j].ID(), Addr: "sim:1"})
			}
		}
		hosts = append(hosts, net.Add(fmt.Sprintf("r%d", i), id, cfg))
	}
	for _, h := range hosts {
		if err := net.Start(h); err != nil {
			t.Fatal(err)
		}
	}
	net.Run(2 * time.Minute) // connect
	// A server joins through one relay and announces.
	skey := sim.KeyFor("new-server", 11)
	sid, scfg := sim.Role("server", "new-server", skey, cfg)
	sid.Bootstrap = []announce.Locator{{ID: keys[0].ID(), Addr: "sim:1"}}
	got := map[announce.NodeID]time.Time{}
	net.OnEvent = func(h *sim.Host, e core.Event) {
		if e.Kind == core.EvAccepted && e.Peer == skey.ID() {
			if _, ok := got[h.ID]; !ok {
				got[h.ID] = net.Now
			}
		}
	}
	srv := net.Add("new-server", sid, scfg)
	if err := net.Start(srv); err != nil {
		t.Fatal(err)
	}
	net.Run(time.Minute)
	first := got[keys[0].ID()] // the relay it is connected to: round 0
	var ts []time.Duration
	for _, h := range hosts {
		if at, ok := got[h.ID]; ok {
			ts = append(ts, at.Sub(first))
		}
	}
	slices.Sort(ts)
	need := int(math.Ceil(0.999 * float64(n)))
	if len(ts) < need {
		return math.Inf(1), len(ts), time.Since(start)
	}
	hop := 3 * net.Latency
	return float64(ts[need-1]) / float64(hop), len(ts), time.Since(start)
}
