package core_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/sim"
	"grapevine/records"
	"grapevine/wire"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// newCore is core.New with the wire's message sizes, as every driver
// passes them.
func newCore(cfg core.Config, id core.Identity, st core.State, rng *rand.Rand) (*core.Node, error) {
	cfg.MsgSize = wire.Size
	return core.New(cfg, id, st, rng)
}

func newNode(t *testing.T, name string, cfg core.Config, svcs ...string) *core.Node {
	t.Helper()
	key := sim.KeyFor(name, 7)
	id := core.Identity{Key: key}
	for _, s := range svcs {
		id.Services = append(id.Services, announce.Template{Service: announce.Service{Name: s}, Locators: []string{sim.Locator(key.ID())}})
	}
	n, err := newCore(cfg, id, core.State{}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConfigPresetsValid(t *testing.T) {
	for name, c := range map[string]core.Config{"default": core.DefaultConfig(), "test": core.TestConfig()} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := core.DefaultConfig()
	bad.ForgetHorizon = bad.LivenessWindow
	if bad.Validate() == nil {
		t.Error("H <= W accepted")
	}
	bad = core.DefaultConfig()
	bad.QuorumFraction = 2
	if bad.Validate() == nil {
		t.Error("QuorumFraction 2 accepted")
	}
	if _, err := core.New(core.DefaultConfig(), core.Identity{Key: sim.KeyFor("n", 7)}, core.State{}, randSource()); err == nil {
		t.Error("New without MsgSize accepted")
	}
}

// A neighbour that advertises junk is fetched from only as fast as its
// token bucket allows; records it sends unasked, or with bad signatures,
// are dropped with a reason.
func TestJunkNeighbour(t *testing.T) {
	cfg := core.TestConfig()
	cfg.RecordBurst, cfg.RecordRate, cfg.MaxFetchItems = 20, 5, 8
	n := newNode(t, "victim", cfg)
	junk := sim.KeyFor("junk", 7).ID()
	now := t0
	n.Step(now, core.Connected{Peer: junk, Inbound: true})
	n.Ready()
	var items []core.Item
	var recs []announce.Signed
	for i := range 200 {
		k := sim.KeyFor(fmt.Sprintf("j%d", i), 7)
		r := announce.Sign(k, announce.Build(k, announce.Template{Service: announce.Service{Name: "storage"}}, 1))
		recs = append(recs, r)
		items = append(items, core.Item{Service: "storage", ID: k.ID(), Seqnum: 1, Hash: uint64(i) + 1, Ver: uint64(i + 1)})
	}
	n.Step(now, core.Received{From: junk, Msg: core.Digest{Epoch: 9, From: 0, To: 200, Items: items}})
	rd := n.Ready()
	asked := 0
	for _, m := range rd.Messages {
		if f, ok := m.Msg.(core.Fetch); ok {
			if len(f.Keys) > cfg.MaxFetchItems {
				t.Fatalf("fetch of %d keys, limit %d", len(f.Keys), cfg.MaxFetchItems)
			}
			asked += len(f.Keys)
		}
	}
	if asked != cfg.RecordBurst {
		t.Fatalf("asked for %d records, want the burst %d", asked, cfg.RecordBurst)
	}
	if !hasEvent(rd.Events, core.EvRateLimited, "fetch-deferred") {
		t.Fatal("no rate-limited event")
	}
	// The first fetch is answered with 8 good records; the second with a bad
	// signature, 7 good ones and one record nobody asked for.
	n.Step(now, core.Received{From: junk, Msg: core.Records{Recs: recs[:8]}})
	bad := recs[8]
	bad.Sig = recs[9].Sig
	answer := append(append([]announce.Signed{bad}, recs[9:16]...), recs[100])
	n.Step(now, core.Received{From: junk, Msg: core.Records{Recs: answer}})
	rd = n.Ready()
	if n.RecordCount() != 15 {
		t.Fatalf("held %d records, want 15", n.RecordCount())
	}
	if !hasEvent(rd.Events, core.EvRejected, "bad-signature") || !hasEvent(rd.Events, core.EvUnsolicited, "not-fetched") {
		t.Fatalf("events %v", rd.Events)
	}
}

func hasEvent(evs []core.Event, kind core.EventKind, reason string) bool {
	for _, e := range evs {
		if e.Kind == kind && e.Reason == reason {
			return true
		}
	}
	return false
}

// Connect timeouts follow the RTT history: srtt + 4*rttvar, clamped.
func TestDialTimeoutFromRTT(t *testing.T) {
	cfg := core.TestConfig()
	n := newNode(t, "c", cfg)
	s := sim.KeyFor("s", 7).ID()
	if got := n.DialTimeout(s); got != cfg.DialTimeoutDefault {
		t.Fatalf("no history: %v", got)
	}
	n.Step(t0, core.Connected{Peer: s})
	n.Step(t0, core.RTTSample{Peer: s, RTT: 100 * time.Millisecond})
	if got := n.DialTimeout(s); got != 300*time.Millisecond { // 100 + 4*50
		t.Fatalf("one sample: %v", got)
	}
	for range 50 {
		n.Step(t0, core.RTTSample{Peer: s, RTT: time.Millisecond})
	}
	if got := n.DialTimeout(s); got != cfg.DialTimeoutFloor {
		t.Fatalf("fast peer: %v, want the floor %v", got, cfg.DialTimeoutFloor)
	}
	for range 50 {
		n.Step(t0, core.RTTSample{Peer: s, RTT: time.Minute})
	}
	if got := n.DialTimeout(s); got != cfg.DialTimeoutCeiling {
		t.Fatalf("slow peer: %v, want the ceiling %v", got, cfg.DialTimeoutCeiling)
	}
}

// Uptime over a window counts connected time since first heard.
func TestUptime(t *testing.T) {
	n := newNode(t, "c", core.TestConfig())
	s := sim.KeyFor("s", 7).ID()
	now := t0
	step := func(d time.Duration, in core.Input) {
		for d > 0 { // advance in ticks: elapsed time is clamped per input
			dt := min(d, 500*time.Millisecond)
			now = now.Add(dt)
			d -= dt
			n.Step(now, core.Tick{})
		}
		n.Step(now, in)
	}
	step(0, core.Connected{Peer: s})
	step(30*time.Second, core.Disconnected{Peer: s})
	step(10*time.Second, core.Connected{Peer: s})
	step(20*time.Second, core.Tick{})
	info, _ := n.Server(s)
	up, ok := info.Uptime(n.Elapsed(), time.Hour, info.ConnectedSince, info.Connected)
	if !ok || up < 0.83 || up > 0.84 { // 50s of 60s
		t.Fatalf("uptime %v %v", up, ok)
	}
}

// Q follows its formula: clamp(ceil(0.5*R), 1, 5).
func TestQuorumFormula(t *testing.T) {
	for _, tc := range []struct{ servers, want int }{{0, 1}, {1, 1}, {3, 2}, {8, 4}, {40, 5}} {
		n := newNode(t, "c", core.TestConfig())
		now := t0
		for i := range tc.servers {
			k := sim.KeyFor(fmt.Sprintf("s%d", i), 7)
			from := k.ID()
			n.Step(now, core.Connected{Peer: from, Inbound: true})
			n.Step(now, core.Received{From: from, Msg: core.Digest{Epoch: 1, To: 1, Items: []core.Item{{Service: "storage", ID: from, Seqnum: 1, Ver: 1}}}})
			r := announce.Sign(k, announce.Build(k, announce.Template{Service: announce.Service{Name: "storage"}}, 1))
			n.Step(now, core.Received{From: from, Msg: core.Records{Recs: []announce.Signed{r}}})
		}
		if got := n.Quorum(); got != tc.want {
			t.Errorf("%d servers: Q=%d, want %d", tc.servers, got, tc.want)
		}
		if tc.servers > 0 && !n.Holds(sim.KeyFor("s0", 7).ID()) {
			t.Errorf("record not held")
		}
	}
}

// In steady state one exchange per link per round costs the same number of
// bytes whether the node knows 10 servers or 1,000.
func TestSteadyStateBytesPerLink(t *testing.T) {
	sizes := []int{10, 1000}
	if testing.Short() {
		sizes = []int{10, 100}
	}
	var perRound []float64
	for _, n := range sizes {
		perRound = append(perRound, steadyBytes(t, n))
	}
	t.Logf("bytes per link per round: %v servers -> %v", sizes, perRound)
	if perRound[0] != perRound[1] || perRound[0] == 0 {
		t.Fatalf("steady-state bytes per link per round differ: %v", perRound)
	}
}

func steadyBytes(t *testing.T, servers int) float64 {
	cfg := core.TestConfig()
	cfg.RefreshInterval, cfg.LivenessWindow, cfg.ForgetHorizon, cfg.TombstoneTTL = time.Hour, 3*time.Hour, 6*time.Hour, 12*time.Hour
	net := sim.NewNet(3)
	c0 := sim.KeyFor("c0", 1)
	add := func(name string, svc bool, boot announce.NodeID) *sim.Host {
		k := sim.KeyFor(name, 1)
		c := cfg
		id := core.Identity{Key: k, Bootstrap: []announce.Locator{{ID: boot, Addr: "sim:1"}}}
		// c1 dials c0 alone, so that the link measured is a gossip link
		// at every size.
		c.DialServers = name != "c1"
		if svc {
			c.DialServers = false
			id.Services = []announce.Template{{Service: announce.Service{Name: "storage"}, Locators: []string{sim.Locator(k.ID())}}}
		}
		return net.Add(name, id, c)
	}
	for i := range servers {
		add(fmt.Sprintf("s%d", i), true, c0.ID())
	}
	add("c0", false, sim.KeyFor("s0", 1).ID())
	c1 := add("c1", false, c0.ID())
	for _, h := range net.Hosts() {
		if err := net.Start(h); err != nil {
			t.Fatal(err)
		}
	}
	net.Run(30 * time.Second)
	for i := range servers {
		if !c1.Node.Holds(sim.KeyFor(fmt.Sprintf("s%d", i), 1).ID()) {
			t.Fatalf("%d servers: c1 does not hold s%d", servers, i)
		}
	}
	h0, _ := net.Host("c0")
	si0, _ := c1.Node.Server(h0.ID)
	in0, out0 := si0.BytesIn, si0.BytesOut
	const rounds = 20
	net.Run(rounds * cfg.SyncInterval)
	si1, _ := c1.Node.Server(h0.ID)
	return float64(si1.BytesIn-in0+si1.BytesOut-out0) / rounds
}

// Imported records are verified and stored like gossiped ones: a bad one
// is rejected with a reason, a good one is held and, by a node that does
// not dial servers, passed on only for the first-sight window. An
// operator's import is vouched for, by a node that dials servers too.
func TestImport(t *testing.T) {
	cfg := core.TestConfig()
	dialler := newNode(t, "dialler", cfg)
	cfg.DialServers = false
	n := newNode(t, "importer", cfg)
	key := sim.KeyFor("srv", 7)
	good := announce.Sign(key, announce.Build(key, announce.Template{Service: announce.Service{Name: "storage"}}, 3))
	bad := good
	bad.Sig = good.Sig[:len(good.Sig)-2] + "aa"
	n.Step(t0, core.Import{Recs: []announce.Signed{bad, good}})
	r := n.Ready()
	if !hasEvent(r.Events, core.EvAccepted, "added") || !n.Holds(key.ID()) {
		t.Fatalf("good record not held; events %v", r.Events)
	}
	rejected := false
	for _, e := range r.Events {
		rejected = rejected || (e.Kind == core.EvRejected && e.Reason != "")
	}
	if !rejected || !r.StateChanged {
		t.Fatalf("bad record: want a rejection with a reason and a state change; events %v", r.Events)
	}
	if !n.Relays(key.ID()) {
		t.Fatal("first sighting not relayed")
	}
	dialler.Step(t0, core.Import{Recs: []announce.Signed{good}})
	if !dialler.Holds(key.ID()) || !dialler.Relays(key.ID()) {
		t.Fatalf("a dialling node: holds %v, relays %v; an operator's import is vouched for", dialler.Holds(key.ID()), dialler.Relays(key.ID()))
	}
	// A neighbour that asks for it gets it (imports have no source to
	// leave out).
	nb := sim.KeyFor("neighbour", 7).ID()
	n.Step(t0, core.Connected{Peer: nb, Inbound: true})
	n.Step(t0, core.Received{From: nb, Msg: core.Fetch{Keys: []records.Key{{Service: "storage", ID: key.ID()}}}})
	served := false
	for _, m := range n.Ready().Messages {
		if r, ok := m.Msg.(core.Records); ok && m.To == nb && len(r.Recs) == 1 && r.Recs[0] == good {
			served = true
		}
	}
	if !served {
		t.Fatal("imported record not served to a neighbour that fetched it")
	}
	for now := t0; now.Before(t0.Add(cfg.FirstSightWindow + time.Second)); now = now.Add(cfg.TickInterval) {
		n.Step(now, core.Tick{})
	}
	if n.Relays(key.ID()) {
		t.Fatal("imported record still relayed after the first-sight window")
	}
}

// The operator's forget leaves a tombstone that refuses the same record,
// and a newer seqnum from the server is accepted again.
func TestOperatorForget(t *testing.T) {
	n := newNode(t, "op", core.TestConfig())
	key := sim.KeyFor("gone", 7)
	rec := func(seq int64) announce.Signed {
		return announce.Sign(key, announce.Build(key, announce.Template{Service: announce.Service{Name: "storage"}}, seq))
	}
	n.Step(t0, core.Forget{ID: key.ID()})
	if !hasEvent(n.Ready().Events, core.EvRejected, "forget-unknown") {
		t.Fatal("forgetting an unknown server was not refused with a reason")
	}
	n.Step(t0, core.Import{Recs: []announce.Signed{rec(4)}})
	n.Step(t0, core.Forget{ID: key.ID()})
	r := n.Ready()
	if n.Holds(key.ID()) || !hasEvent(r.Events, core.EvForgot, "operator") || !r.StateChanged {
		t.Fatalf("not forgotten: %v", r.Events)
	}
	n.Step(t0, core.Import{Recs: []announce.Signed{rec(4)}})
	if n.Holds(key.ID()) {
		t.Fatal("the forgotten record was taken back")
	}
	n.Step(t0, core.Import{Recs: []announce.Signed{rec(5)}})
	if !n.Holds(key.ID()) {
		t.Fatal("a newer seqnum was refused after an operator forget")
	}
}

// A node that dials servers passes on servers it has not reached only up
// to FirstSightBudget per neighbour per FirstSightWindow; it holds the
// rest and passes each on once connected to it. Another neighbour has a
// budget of its own, and the budget refills.
func TestFirstSightBudget(t *testing.T) {
	for _, ablate := range []bool{false, true} {
		cfg := core.TestConfig()
		cfg.Variant.RelayUnreached = ablate
		n := newNode(t, "client", cfg)
		feed := func(now time.Time, from announce.NodeID, names ...string) []announce.NodeID {
			var items []core.Item
			var recs []announce.Signed
			var ids []announce.NodeID
			for i, name := range names {
				k := sim.KeyFor(name, 7)
				s := announce.Sign(k, announce.Build(k, announce.Template{Service: announce.Service{Name: "storage"}, Locators: []string{sim.Locator(k.ID())}}, 1))
				items = append(items, core.Item{Service: "storage", ID: k.ID(), Seqnum: 1, Ver: uint64(i + 1)})
				recs = append(recs, s)
				ids = append(ids, k.ID())
			}
			n.Step(now, core.Received{From: from, Msg: core.Digest{Epoch: 1, To: uint64(len(items)), Items: items}})
			byID := map[announce.NodeID]announce.Signed{}
			for i, id := range ids {
				byID[id] = recs[i]
			}
			for _, m := range n.Ready().Messages {
				if f, ok := m.Msg.(core.Fetch); ok && m.To == from {
					var answer []announce.Signed
					for _, k := range f.Keys {
						answer = append(answer, byID[k.ID])
					}
					n.Step(now, core.Received{From: from, Msg: core.Records{Recs: answer}})
				}
			}
			n.Ready()
			return ids
		}
		nb, nb2 := sim.KeyFor("neighbour", 7).ID(), sim.KeyFor("other", 7).ID()
		n.Step(t0, core.Connected{Peer: nb, Inbound: true})
		n.Step(t0, core.Connected{Peer: nb2, Inbound: true})
		n.Ready()
		var names []string
		for i := range cfg.FirstSightBudget + 24 {
			names = append(names, fmt.Sprintf("fresh%d", i))
		}
		ids := feed(t0, nb, names...)
		held, relayed := 0, 0
		for _, id := range ids {
			if n.Holds(id) {
				held++
			}
			if n.Relays(id) {
				relayed++
			}
		}
		want := cfg.FirstSightBudget
		if ablate {
			want = len(ids)
		}
		if held != len(ids) || relayed != want {
			t.Fatalf("ablate=%v: of %d first sightings from one neighbour, %d held and %d relayed; want all held, %d relayed", ablate, len(ids), held, relayed, want)
		}
		if ablate {
			continue
		}
		if other := feed(t0, nb2, "from-other"); !n.Relays(other[0]) {
			t.Fatal("another neighbour's first sighting is not relayed: budgets are per neighbour")
		}
		later := t0.Add(cfg.FirstSightWindow / time.Duration(cfg.FirstSightBudget))
		for now := t0; !now.After(later); now = now.Add(cfg.TickInterval) {
			n.Step(now, core.Tick{})
		}
		if again := feed(later, nb, "after-refill"); !n.Relays(again[0]) {
			t.Fatal("the budget does not refill")
		}
		unvouched := ids[len(ids)-1]
		n.Step(later, core.Connected{Peer: unvouched})
		if !n.Relays(unvouched) {
			t.Fatal("a server held unvouched is not relayed once connected")
		}
	}
}

// A record of its own the node cannot hold is not dropped silently: a
// template that makes no valid record, and a seqnum the store refuses
// (the counter wrapped past int64), are each a rejection with a reason,
// and the published event counts them.
func TestOwnRecordRefusalExplained(t *testing.T) {
	check := func(t *testing.T, evs []core.Event, id announce.NodeID, reason, why string) {
		t.Helper()
		var rejected, published bool
		for _, e := range evs {
			if e.Kind == core.EvRejected && e.Reason == reason && e.Peer == id {
				got, _ := e.Fact("why")
				rejected = got == why
			}
			if e.Kind == core.EvPublished {
				got, _ := e.Fact("refused")
				published = got == "1"
			}
		}
		if !rejected || !published {
			t.Fatalf("want %s (why=%s) and a published event with refused=1; events %v", reason, why, evs)
		}
	}
	t.Run("invalid template", func(t *testing.T) {
		n := newNode(t, "own", core.TestConfig())
		n.Step(t0, core.SetServices{Services: []announce.Template{{Service: announce.Service{Name: ""}}}})
		check(t, n.Ready().Events, n.ID(), "own-record-invalid", string(announce.ReasonMissingServiceName))
		if n.RecordCount() != 0 {
			t.Fatalf("holds %d records", n.RecordCount())
		}
	})
	t.Run("seqnum refused", func(t *testing.T) {
		key := sim.KeyFor("own", 7)
		tmpl := announce.Template{Service: announce.Service{Name: "storage"}}
		last := announce.Sign(key, announce.Build(key, tmpl, math.MaxInt64))
		st := core.State{Counter: math.MaxInt64, Records: []core.StoredRecord{{Signed: last, Source: key.ID()}}}
		n, err := newCore(core.TestConfig(), core.Identity{Key: key, Services: []announce.Template{tmpl}}, st, randSource())
		if err != nil {
			t.Fatal(err)
		}
		n.Step(t0, core.Tick{})
		check(t, n.Ready().Events, n.ID(), "own-record-refused", string(records.ReasonStale))
		if a, ok := n.Record(records.Key{Service: "storage", ID: n.ID()}); !ok || a.Seqnum != math.MaxInt64 {
			t.Fatalf("the held record changed: %v %v", a, ok)
		}
	})
}
