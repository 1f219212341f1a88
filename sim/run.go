package sim

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"grapevine/announce"
	"grapevine/core"
)

// Options for Run.
type Options struct {
	Design string
	Seed   uint64 // 0: the scenario's seed
	// Progress, if set, is called every sample with the virtual time done.
	Progress func(done, total time.Duration)
}

// Report is the outcome of one run: what report.json holds.
type Report struct {
	Scenario     string  `json:"scenario"`
	Design       string  `json:"design"`
	Seed         uint64  `json:"seed"`
	Nodes        int     `json:"nodes"`
	DurationDays float64 `json:"duration_days"`
	Metrics      Metrics `json:"metrics"`
	Series       Series  `json:"series"`
}

// Metrics are the numbers the study compares. Times are in seconds or
// days as named; -1 means "did not happen".
type Metrics struct {
	JoinedServers int `json:"joined_servers"`
	// Time for a server that joined to be known by 50%, 99% and 100% of
	// the clients up at the end: the mean over joined servers, and the
	// worst. Joins never known by all clients are counted.
	JoinP50Sec         float64 `json:"join_p50_s"`
	JoinP99Sec         float64 `json:"join_p99_s"`
	JoinP100Sec        float64 `json:"join_p100_s"`
	JoinP100MaxSec     float64 `json:"join_p100_max_s"`
	JoinsNeverComplete int     `json:"joins_never_complete"`

	DepartedServers   int     `json:"departed_servers"`
	FirstDepartureDay float64 `json:"first_departure_day"` // -1: none
	// Node-days in which a departed server was still held / relayed.
	ZombieHeldNodeDays    float64 `json:"zombie_held_node_days"`
	ZombieRelayedNodeDays float64 `json:"zombie_relayed_node_days"`
	// Longest time from a departure to the last node holding it (days),
	// among nodes that ran throughout. Nodes that started after the
	// departure (came back, or joined) count time by their own running
	// clock (R5); their holding is reported apart, in HeldByReturnedNodes
	// (node-days). StillHeldAtEnd counts departed
	// servers a node that ran throughout still holds.
	ZombieLifetimeMaxDays float64 `json:"zombie_lifetime_max_days"`
	StillHeldAtEnd        int     `json:"departed_still_held_at_end"`
	HeldByReturnedNodes   float64 `json:"zombie_node_days_held_by_returned_nodes"`

	FalseForgets  int `json:"false_forgets"` // a live server deleted anywhere
	Resurrections int `json:"resurrections"` // a deleted server back without a new seqnum
	Evictions     int `json:"evictions"`     // dropped for room (R6)

	BytesPerNodePerDay float64 `json:"bytes_per_node_per_day"`
	// Time after a restart until the client is connected to every live
	// server it can dial (worst over restarts; -1 if never).
	StartupConnectSec float64 `json:"startup_connect_s"`
	// Share of clients up at the end that know every live server, and
	// every live server they can dial.
	CoverageAll      float64 `json:"coverage_all"`
	CoverageDialable float64 `json:"coverage_dialable"`
}

// Series are sampled over time for the plots.
type Series struct {
	TimeDays        []float64 `json:"time_days"`
	HeldDeparted    []float64 `json:"held_departed"`    // (node, departed server) pairs held
	RelayedDeparted []float64 `json:"relayed_departed"` // ... and passed on
	CoverageJoined  []float64 `json:"coverage_joined"`  // share of (client, server joined over an hour ago) pairs known
}

type runner struct {
	sc     *Scenario
	opt    Options
	cfg    core.Config
	net    *Net
	seed   uint64
	start  time.Time
	nextID int

	servers, clients, relays []*Host
	isClientHost             map[*Host]bool
	departed                 map[announce.NodeID]time.Time
	departedOrder            []*Host
	lastHeld                 map[announce.NodeID]time.Time
	joined                   map[announce.NodeID]time.Time
	joinedOrder              []*Host
	known                    map[announce.NodeID]map[announce.NodeID]time.Time // server -> client -> first known
	forgotSeq                map[[2]announce.NodeID]int64
	restarts                 map[*Host]time.Time
	lastStart                map[*Host]time.Time
	joinAudience             map[announce.NodeID][]*Host
	startup                  float64
	m                        Metrics
	series                   Series
}

// Run simulates a scenario with one design.
func Run(sc *Scenario, opt Options) (*Report, error) {
	cfg, err := sc.CoreConfig(opt.Design)
	if err != nil {
		return nil, err
	}
	seed := opt.Seed
	if seed == 0 {
		seed = sc.Seed
	}
	r := &runner{sc: sc, opt: opt, cfg: cfg, seed: seed, net: NewNet(seed),
		departed: map[announce.NodeID]time.Time{}, lastHeld: map[announce.NodeID]time.Time{},
		joined: map[announce.NodeID]time.Time{}, known: map[announce.NodeID]map[announce.NodeID]time.Time{},
		forgotSeq: map[[2]announce.NodeID]int64{}, restarts: map[*Host]time.Time{}, startup: -1,
		isClientHost: map[*Host]bool{}, lastStart: map[*Host]time.Time{}, joinAudience: map[announce.NodeID][]*Host{}}
	r.start = r.net.Now
	r.net.Latency = time.Duration(sc.Network.Latency)
	if r.net.Latency == 0 {
		r.net.Latency = 20 * time.Millisecond
	}
	r.net.Jitter, r.net.Loss = time.Duration(sc.Network.Jitter), sc.Network.Loss
	r.net.HalfOpenLimit = sc.Network.HalfOpen
	r.net.OnEvent = r.onEvent
	if err := r.populate(); err != nil {
		return nil, err
	}
	r.schedule()
	total := time.Duration(sc.Duration)
	for t := time.Duration(0); t < total; {
		step := min(time.Duration(sc.Sample), total-t)
		t += step
		r.net.RunUntil(r.start.Add(t))
		r.sample()
		if opt.Progress != nil {
			opt.Progress(t, total)
		}
	}
	r.finish()
	return &Report{Scenario: sc.Name, Design: opt.Design, Seed: seed, Nodes: len(r.net.Hosts()),
		DurationDays: days(total), Metrics: r.m, Series: r.series}, nil
}

func days(d time.Duration) float64 { return d.Hours() / 24 }

func (r *runner) rng() float64 { return r.net.Rand().Float64() }

func (r *runner) add(role string, nat bool) *Host {
	name := role[:1] + strconv.Itoa(r.nextID)
	r.nextID++
	id, cfg := Role(role, name, KeyFor(name, r.seed), r.cfg)
	h := r.net.Add(name, id, cfg)
	h.NAT = nat
	switch role {
	case "server":
		r.servers = append(r.servers, h)
	case "client":
		r.clients = append(r.clients, h)
		r.isClientHost[h] = true
	default:
		r.relays = append(r.relays, h)
	}
	return h
}

// bootstrap gives a host locators of nodes it can dial, as an invitation
// from a member would: a relay if there are relays, a random dialable
// node of the other kind, and the grid's founder of the other kind (the
// first dialable server or client), so that the grid is one piece.
func (r *runner) bootstrap(h *Host, isServer bool) {
	var pool []*Host
	if isServer {
		pool = r.clients
	} else {
		pool = r.servers
	}
	var dialable []*Host
	for _, o := range pool {
		if !o.NAT && o != h {
			dialable = append(dialable, o)
		}
	}
	add := func(o *Host) {
		for _, b := range h.Identity.Bootstrap {
			if b.ID == o.ID {
				return
			}
		}
		h.Identity.Bootstrap = append(h.Identity.Bootstrap, announce.Locator{ID: o.ID, Addr: "sim:1"})
	}
	if len(r.relays) > 0 {
		add(r.relays[r.net.Rand().IntN(len(r.relays))])
	}
	if len(dialable) > 0 {
		add(dialable[r.net.Rand().IntN(len(dialable))])
		add(dialable[0])
	}
}

func (r *runner) populate() error {
	p := r.sc.Population
	for range p.Relays {
		r.add("relay", false)
	}
	for range p.Servers {
		r.add("server", r.rng() < p.ServerNAT)
	}
	for range p.Clients {
		r.add("client", r.rng() < p.ClientNAT)
	}
	for _, h := range r.servers {
		r.bootstrap(h, true)
	}
	for _, h := range r.clients {
		r.bootstrap(h, false)
	}
	for _, h := range r.relays {
		r.bootstrap(h, false)
	}
	for _, h := range r.net.Hosts() {
		// Start within the first minute, in a random order.
		h := h
		r.net.At(r.start.Add(time.Duration(r.rng()*float64(time.Minute))), func() { r.startHost(h) })
	}
	return nil
}

func (r *runner) startHost(h *Host) {
	r.lastStart[h] = r.net.Now
	if err := r.net.Start(h); err != nil {
		panic(fmt.Sprintf("sim: starting %s: %v", h.Name, err)) // configs are validated before
	}
}

func (r *runner) schedule() {
	for _, e := range r.sc.Events {
		e := e
		for at := time.Duration(e.At); at <= time.Duration(r.sc.Duration); at += time.Duration(e.Every) {
			r.net.At(r.start.Add(at), func() { r.apply(e) })
			if e.Every <= 0 || (e.Until > 0 && at+time.Duration(e.Every) > time.Duration(e.Until)) {
				break
			}
		}
	}
}

// choose picks Count or Fraction of the hosts that pass keep.
func (r *runner) choose(hs []*Host, e Event, keep func(*Host) bool) []*Host {
	var pool []*Host
	for _, h := range hs {
		if keep(h) {
			pool = append(pool, h)
		}
	}
	n := e.Count
	if e.Fraction > 0 {
		n = int(math.Round(e.Fraction * float64(len(pool))))
	}
	n = min(n, len(pool))
	r.net.Rand().Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	out := pool[:n]
	slices.SortFunc(out, func(a, b *Host) int { return r.index(a) - r.index(b) })
	return out
}

func (r *runner) index(h *Host) int {
	return slices.Index(r.net.Hosts(), h)
}

func (r *runner) liveServer(h *Host) bool {
	_, gone := r.departed[h.ID]
	return h.Up && !gone
}

func (r *runner) apply(e Event) {
	now := r.net.Now
	switch e.Action {
	case "join-servers":
		for range max(e.Count, 1) {
			h := r.add("server", r.rng() < r.sc.Population.ServerNAT)
			r.bootstrap(h, true)
			r.joined[h.ID] = now
			r.joinedOrder = append(r.joinedOrder, h)
			r.known[h.ID] = map[announce.NodeID]time.Time{}
			for _, c := range r.clients {
				if c.Up {
					r.joinAudience[h.ID] = append(r.joinAudience[h.ID], c)
				}
			}
			r.startHost(h)
		}
	case "depart-servers", "kill-servers":
		for _, h := range r.choose(r.servers, e, r.liveServer) {
			r.departed[h.ID] = now
			r.departedOrder = append(r.departedOrder, h)
			h.Blackholed = e.Action == "kill-servers"
			r.net.Stop(h)
		}
	case "leave-servers":
		for _, h := range r.choose(r.servers, e, r.liveServer) {
			r.departed[h.ID] = now
			r.departedOrder = append(r.departedOrder, h)
			r.net.Input(h, core.Leave{})
			h := h
			r.net.At(now.Add(time.Hour), func() { r.net.Stop(h) })
		}
	case "offline-clients":
		for _, h := range r.choose(r.clients, e, func(h *Host) bool { return h.Up }) {
			r.net.Stop(h)
			h := h
			r.net.At(now.Add(time.Duration(e.For)), func() { r.startHost(h); r.restarts[h] = r.net.Now })
		}
	case "restart-clients":
		for _, h := range r.choose(r.clients, e, func(h *Host) bool { return h.Up }) {
			r.net.Stop(h)
			if e.Wipe {
				r.net.Wipe(h)
			}
			r.startHost(h)
			r.restarts[h] = now
		}
	case "skew":
		all := r.choose(r.net.Hosts(), e, func(*Host) bool { return true })
		for i, h := range all {
			if i%2 == 0 {
				h.Skew += time.Duration(e.By)
			} else {
				h.Skew -= time.Duration(e.By)
			}
		}
	case "partition":
		groups := map[*Host]int{}
		for _, h := range r.choose(r.net.Hosts(), e, func(*Host) bool { return true }) {
			groups[h] = 1
		}
		r.net.Partition(groups)
		r.net.At(now.Add(time.Duration(e.For)), r.net.Heal)
	}
}

func (r *runner) isClient(h *Host) bool { return r.isClientHost[h] }

func (r *runner) onEvent(h *Host, e core.Event) {
	now := r.net.Now
	switch e.Kind {
	case core.EvAccepted:
		if m, ok := r.known[e.Peer]; ok && r.isClient(h) {
			if _, seen := m[h.ID]; !seen {
				m[h.ID] = now
			}
		}
		if seq, ok := r.forgotSeq[[2]announce.NodeID{h.ID, e.Peer}]; ok {
			got, _ := e.Fact("seqnum")
			if n, err := strconv.ParseInt(got, 10, 64); err == nil && n <= seq {
				r.m.Resurrections++
			}
			delete(r.forgotSeq, [2]announce.NodeID{h.ID, e.Peer})
		}
	case core.EvForgot:
		if o, ok := r.net.HostByID(e.Peer); ok && r.liveServer(o) {
			r.m.FalseForgets++
		}
		got, _ := e.Fact("seqnum")
		if n, err := strconv.ParseInt(got, 10, 64); err == nil {
			r.forgotSeq[[2]announce.NodeID{h.ID, e.Peer}] = n
		}
	case core.EvEvicted:
		r.m.Evictions++
	case core.EvConnected:
		if t0, ok := r.restarts[h]; ok && r.connectedToAll(h) {
			r.startup = max(r.startup, now.Sub(t0).Seconds())
			delete(r.restarts, h)
		}
	}
}

// connectedToAll: connected to every live, dialable server it knows.
func (r *runner) connectedToAll(h *Host) bool {
	for _, s := range r.servers {
		if r.liveServer(s) && !s.NAT && h.Node.Holds(s.ID) && !r.net.Connected(h, s) {
			return false
		}
	}
	return true
}

func (r *runner) sample() {
	now := r.net.Now
	sd := days(time.Duration(r.sc.Sample))
	var held, relayed float64
	for _, d := range r.departedOrder {
		n, rel, throughout := 0, 0, 0
		for _, h := range r.net.Hosts() {
			if h == d || !h.Up {
				continue
			}
			if h.Node.Holds(d.ID) {
				n++
				if h.Node.Relays(d.ID) {
					rel++
				}
				if r.lastStart[h].After(r.departed[d.ID]) {
					r.m.HeldByReturnedNodes += sd
				} else {
					throughout++
				}
			}
		}
		if throughout > 0 {
			r.lastHeld[d.ID] = now
		}
		held += float64(n)
		relayed += float64(rel)
	}
	r.m.ZombieHeldNodeDays += held * sd
	r.m.ZombieRelayedNodeDays += relayed * sd
	pairs, knownPairs := 0, 0
	for _, s := range r.joinedOrder {
		// Servers that joined within the hour are still spreading (the
		// join metrics time that); the series shows whether they stay known.
		if !r.liveServer(s) || now.Sub(r.joined[s.ID]) < time.Hour {
			continue
		}
		for _, c := range r.clients {
			if c.Up {
				pairs++
				if c.Node.Holds(s.ID) {
					knownPairs++
				}
			}
		}
	}
	cov := 1.0
	if pairs > 0 {
		cov = float64(knownPairs) / float64(pairs)
	}
	r.series.TimeDays = append(r.series.TimeDays, days(now.Sub(r.start)))
	r.series.HeldDeparted = append(r.series.HeldDeparted, held)
	r.series.RelayedDeparted = append(r.series.RelayedDeparted, relayed)
	r.series.CoverageJoined = append(r.series.CoverageJoined, cov)
}

func (r *runner) finish() {
	m := &r.m
	m.JoinedServers, m.DepartedServers = len(r.joinedOrder), len(r.departedOrder)
	// Joins.
	var upClients []*Host
	for _, c := range r.clients {
		if c.Up {
			upClients = append(upClients, c)
		}
	}
	var p50, p99, p100 []float64
	for _, s := range r.joinedOrder {
		// The clients up when it joined and at the end.
		var audience []*Host
		for _, c := range r.joinAudience[s.ID] {
			if c.Up && !r.lastStart[c].After(r.joined[s.ID]) {
				audience = append(audience, c)
			}
		}
		var ts []float64
		for _, c := range audience {
			if t, ok := r.known[s.ID][c.ID]; ok {
				ts = append(ts, t.Sub(r.joined[s.ID]).Seconds())
			}
		}
		slices.Sort(ts)
		q := func(f float64) float64 {
			need := int(math.Ceil(f * float64(len(audience))))
			if need == 0 {
				return 0
			}
			if need > len(ts) {
				return -1
			}
			return ts[need-1]
		}
		p50, p99, p100 = append(p50, q(0.5)), append(p99, q(0.99)), append(p100, q(1))
		if q(1) < 0 {
			m.JoinsNeverComplete++
		}
	}
	m.JoinP50Sec, m.JoinP99Sec, m.JoinP100Sec = meanKnown(p50), meanKnown(p99), meanKnown(p100)
	m.JoinP100MaxSec = -1
	for _, v := range p100 {
		m.JoinP100MaxSec = max(m.JoinP100MaxSec, v)
	}
	// Zombies.
	m.FirstDepartureDay = -1
	if len(r.departedOrder) > 0 {
		m.FirstDepartureDay = days(r.departed[r.departedOrder[0].ID].Sub(r.start))
	}
	m.ZombieLifetimeMaxDays = -1
	for _, d := range r.departedOrder {
		if t, ok := r.lastHeld[d.ID]; ok {
			m.ZombieLifetimeMaxDays = max(m.ZombieLifetimeMaxDays, days(t.Sub(r.departed[d.ID])))
			if t.Equal(r.net.Now) {
				m.StillHeldAtEnd++
			}
		} else {
			m.ZombieLifetimeMaxDays = max(m.ZombieLifetimeMaxDays, 0)
		}
	}
	// Bytes.
	var bytes uint64
	for _, h := range r.net.Hosts() {
		bytes += h.BytesOut
	}
	m.BytesPerNodePerDay = float64(bytes) / float64(len(r.net.Hosts())) / days(time.Duration(r.sc.Duration))
	m.StartupConnectSec = r.startup
	if len(r.restarts) > 0 {
		m.StartupConnectSec = -1 // some restart never connected to all
	}
	// Coverage.
	all, dial := 0, 0
	for _, c := range upClients {
		okAll, okDial := true, true
		for _, s := range r.servers {
			if !r.liveServer(s) || c.Node.Holds(s.ID) {
				continue
			}
			okAll = false
			if !s.NAT {
				okDial = false
			}
		}
		if okAll {
			all++
		}
		if okDial {
			dial++
		}
	}
	if len(upClients) > 0 {
		m.CoverageAll = float64(all) / float64(len(upClients))
		m.CoverageDialable = float64(dial) / float64(len(upClients))
	}
}

// meanKnown averages the values that are not -1; -1 if all are.
func meanKnown(v []float64) float64 {
	sum, n := 0.0, 0
	for _, x := range v {
		if x >= 0 {
			sum += x
			n++
		}
	}
	if n == 0 {
		return -1
	}
	return sum / float64(n)
}
