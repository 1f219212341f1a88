package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
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
	// OnApply, if set, is called for each scenario event applied, with the
	// hosts it picked or added, by name, in the order they were added.
	OnApply func(at time.Duration, action string, hosts []string)
}

// busiestMinDays is the running time a server needs to count for
// BytesBusiestServerPerDay: a short run's start-up is not its rate.
const busiestMinDays = 1.0

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
	// Joins that are timed. A join no client could witness (no client was
	// up at the join and still up at the end, without a restart between)
	// is counted in JoinsUnwitnessed instead, and a server that stopped at
	// the moment it joined (a departure picked it at once) in
	// JoinsRemovedAtOnce; neither is timed.
	JoinsTimed         int `json:"joins_timed"`
	JoinsUnwitnessed   int `json:"joins_unwitnessed"`
	JoinsRemovedAtOnce int `json:"joins_removed_at_once"`
	// Time for a server that joined to be known by 50%, 99% and 100% of
	// the clients up at its join and at the end: the mean over timed joins,
	// and the worst. Joins never known by all clients are counted.
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
	// among nodes that ran throughout. Nodes that were running before the
	// departure, stopped and started again count time by their own running
	// clock (R5); their holding is reported apart, in HeldByReturnedNodes
	// (node-days). Nodes first started after the departure (servers and
	// clients that joined later) are in neither. StillHeldAtEnd counts
	// departed servers that departed more than H before the end and that a
	// node that ran throughout still holds.
	ZombieLifetimeMaxDays float64 `json:"zombie_lifetime_max_days"`
	StillHeldAtEnd        int     `json:"departed_still_held_at_end"`
	HeldByReturnedNodes   float64 `json:"zombie_node_days_held_by_returned_nodes"`

	FalseForgets  int `json:"false_forgets"` // a live server deleted anywhere
	Resurrections int `json:"resurrections"` // a deleted server back without a new seqnum
	Evictions     int `json:"evictions"`     // dropped for room (R6)

	// Protocol bytes sent per day of a node running (RunningNodeDays is the
	// sum over nodes of the time each was up).
	RunningNodeDays    float64 `json:"running_node_days"`
	BytesPerNodePerDay float64 `json:"bytes_per_node_per_day"`
	// The same for servers and for clients alone (relays are in neither).
	// A server pays for each of its clients (its own records pushed, a
	// round per RefreshInterval); a client's cost should not grow with
	// the clients.
	BytesPerServerPerDay float64 `json:"bytes_per_server_per_day"`
	BytesPerClientPerDay float64 `json:"bytes_per_client_per_day"`
	// The most a server sent per day of running, among servers that ran
	// a day or more: the load of a hub, if the overlay has one.
	BytesBusiestServerPerDay float64 `json:"bytes_busiest_server_per_day"`
	// Signed records sent over every link: the deliveries the run did,
	// against the floor of every node getting every server's refresh.
	RecordsDelivered uint64 `json:"records_delivered"`
	// After a client restart (restart-clients, offline-clients): time until
	// it knows every live server and is connected to every live server it
	// can dial (worst over the Restarts; -1 if one never got there).
	Restarts          int     `json:"restarts"`
	StartupConnectSec float64 `json:"startup_connect_s"`
	// The same for clients that joined (join-clients), from their start.
	ClientJoins          int     `json:"joined_clients"`
	ClientJoinConnectSec float64 `json:"client_join_connect_s"`
	// Servers that went offline (offline-servers), one entry per absence.
	Returns []Return `json:"returns,omitempty"`
	// Share of clients up at the end that know every live server, and
	// every live server they can dial.
	CoverageAll      float64 `json:"coverage_all"`
	CoverageDialable float64 `json:"coverage_dialable"`
}

// Return is one absence of a server that went offline with its state
// (offline-servers) and came back. Its audience is the clients up when it
// came back and still up at the end, without a restart between.
type Return struct {
	Server   string  `json:"server"`
	NAT      bool    `json:"nat,omitempty"`
	OffDay   float64 `json:"off_day"`
	AwayDays float64 `json:"away_days"`
	Returned bool    `json:"returned"` // false: the run ended first
	// Nodes that deleted it while it was away.
	ForgottenBy int `json:"forgotten_by"`
	// Clients of the audience that did not hold it when it came back.
	LostBy int `json:"lost_by"`
	// After it came back: time until every client of the audience holds it
	// (0: none had lost it), and until every one is also connected to it
	// (dialable servers only; -1 for a NAT server); -1 if never.
	KnownSec  float64 `json:"known_again_s"`
	UsableSec float64 `json:"usable_s"`
}

// Series are sampled over time for the plots.
type Series struct {
	TimeDays        []float64 `json:"time_days"`
	HeldDeparted    []float64 `json:"held_departed"`    // (node, departed server) pairs held
	RelayedDeparted []float64 `json:"relayed_departed"` // ... and passed on
	CoverageJoined  []float64 `json:"coverage_joined"`  // share of (client, server joined over an hour ago) pairs known
}

type runner struct {
	sc        *Scenario
	opt       Options
	cfg       core.Config
	net       *Net
	pick      *rand.Rand // the scenario's own stream (see Run)
	seed      uint64
	start     time.Time
	nextID    int
	nextGroup int

	servers, clients, relays []*Host
	isClientHost             map[*Host]bool
	isServerHost             map[*Host]bool
	departed                 map[announce.NodeID]time.Time
	departedOrder            []*Host
	lastHeld                 map[announce.NodeID]time.Time
	joined                   map[announce.NodeID]time.Time
	joinedOrder              []*Host
	known                    map[announce.NodeID]map[announce.NodeID]time.Time // server -> client -> first known
	forgotSeq                map[uint64]int64                                  // by linkKey(node, server)
	firstStart, lastStart    map[*Host]time.Time
	firstStop                map[*Host]time.Time
	// Running days of each host's incarnations that stopped. Days, not a
	// Duration: 10,000 nodes for 60 days is past int64 nanoseconds.
	upDays       map[*Host]float64
	joinAudience map[announce.NodeID][]*Host
	// Clients that are to know every live server and connect to every
	// dialable one: since they restarted, and since they joined.
	restarts, clientJoins map[*Host]time.Time
	startup, clientJoin   float64
	// Servers away (offline-servers); the last absence of each that ended.
	away, back map[announce.NodeID]*absence
	absences   []*absence
	m          Metrics
	series     Series
}

// absence is one stay offline of a server (offline-servers).
type absence struct {
	h         *Host
	off, back time.Time
	returned  bool
	forgot    map[announce.NodeID]bool // nodes that deleted it while it was away
	upAtBack  []*Host                  // clients up when it came back
	held      map[*Host]bool           // ... that held it then
	known     map[*Host]time.Time      // first held after it came back
	connected map[*Host]time.Time      // first connected after it came back
}

// Run simulates a scenario with one design.
//
// Two random streams drive a run. The scenario's own, seeded from the seed
// alone, makes every choice the scenario leaves to chance: which nodes are
// behind NAT, whom they bootstrap from, when they start, and which nodes an
// event picks. The network's makes the rest (latency, loss, the cores'
// random sources). So for one seed every design sees the same nodes
// depart, go offline or get cut off, however differently their messages
// went.
func Run(sc *Scenario, opt Options) (*Report, error) {
	r, err := newRunner(sc, opt)
	if err != nil {
		return nil, err
	}
	return r.run(), nil
}

// newRunner sets up a run: the population and the scenario's events are
// scheduled, nothing has run yet.
func newRunner(sc *Scenario, opt Options) (*runner, error) {
	cfg, err := sc.CoreConfig(opt.Design)
	if err != nil {
		return nil, err
	}
	seed := opt.Seed
	if seed == 0 {
		seed = sc.Seed
	}
	r := &runner{sc: sc, opt: opt, cfg: cfg, seed: seed, net: NewNet(seed),
		pick:     rand.New(rand.NewPCG(seed^0x5ce7a210c0ffee, seed+1)),
		departed: map[announce.NodeID]time.Time{}, lastHeld: map[announce.NodeID]time.Time{},
		joined: map[announce.NodeID]time.Time{}, known: map[announce.NodeID]map[announce.NodeID]time.Time{},
		forgotSeq: map[uint64]int64{}, isClientHost: map[*Host]bool{}, isServerHost: map[*Host]bool{}, upDays: map[*Host]float64{},
		firstStart: map[*Host]time.Time{}, lastStart: map[*Host]time.Time{}, firstStop: map[*Host]time.Time{},
		joinAudience: map[announce.NodeID][]*Host{},
		restarts:     map[*Host]time.Time{}, clientJoins: map[*Host]time.Time{}, startup: -1, clientJoin: -1,
		away: map[announce.NodeID]*absence{}, back: map[announce.NodeID]*absence{}}
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
	return r, nil
}

// run runs the scenario to its end and reports.
func (r *runner) run() *Report {
	sc, opt, seed := r.sc, r.opt, r.seed
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
		DurationDays: days(total), Metrics: r.m, Series: r.series}
}

func days(d time.Duration) float64 { return d.Hours() / 24 }

// rng draws from the scenario's stream.
func (r *runner) rng() float64 { return r.pick.Float64() }

func (r *runner) add(role string, nat bool) *Host {
	name := role[:1] + strconv.Itoa(r.nextID)
	r.nextID++
	id, cfg := Role(role, name, KeyFor(name, r.seed), r.cfg)
	h := r.net.Add(name, id, cfg)
	h.NAT = nat
	switch role {
	case "server":
		r.servers = append(r.servers, h)
		r.isServerHost[h] = true
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
// first dialable server or client), so that the grid is one piece. Once
// the grid runs, only running nodes invite: the random node and the
// founder are picked among the dialable nodes that are up (and have not
// departed), if there are any.
func (r *runner) bootstrap(h *Host, isServer bool) {
	var pool []*Host
	if isServer {
		pool = r.clients
	} else {
		pool = r.servers
	}
	var dialable, running []*Host
	for _, o := range pool {
		if !o.NAT && o != h {
			dialable = append(dialable, o)
			if _, gone := r.departed[o.ID]; o.Up && !gone {
				running = append(running, o)
			}
		}
	}
	if len(running) > 0 {
		dialable = running
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
		add(r.relays[r.pick.IntN(len(r.relays))])
	}
	if len(dialable) > 0 {
		add(dialable[r.pick.IntN(len(dialable))])
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
	if _, ok := r.firstStart[h]; !ok {
		r.firstStart[h] = r.net.Now
	}
	r.lastStart[h] = r.net.Now
	if err := r.net.Start(h); err != nil {
		panic(fmt.Sprintf("sim: starting %s: %v", h.Name, err)) // configs are validated before
	}
}

// stopHost stops a running host and counts its running time.
func (r *runner) stopHost(h *Host) {
	if !h.Up {
		return
	}
	r.upDays[h] += days(r.net.Now.Sub(r.lastStart[h]))
	if _, ok := r.firstStop[h]; !ok {
		r.firstStop[h] = r.net.Now
	}
	r.net.Stop(h)
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

// choose picks Count or Fraction of the hosts that pass keep, with the
// scenario's stream.
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
	r.pick.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	out := pool[:n]
	slices.SortFunc(out, func(a, b *Host) int { return int(a.idx - b.idx) })
	return out
}

func (r *runner) liveServer(h *Host) bool {
	_, gone := r.departed[h.ID]
	return h.Up && !gone
}

func up(h *Host) bool { return h.Up }

func (r *runner) apply(e Event) {
	now := r.net.Now
	var picked []*Host
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
			picked = append(picked, h)
		}
	case "join-clients":
		for range max(e.Count, 1) {
			h := r.add("client", r.rng() < r.sc.Population.ClientNAT)
			r.bootstrap(h, false)
			r.clientJoins[h] = now
			r.m.ClientJoins++
			r.startHost(h)
			picked = append(picked, h)
		}
	case "depart-servers", "kill-servers":
		picked = r.choose(r.servers, e, r.liveServer)
		for _, h := range picked {
			r.departed[h.ID] = now
			r.departedOrder = append(r.departedOrder, h)
			h.Blackholed = e.Action == "kill-servers"
			r.stopHost(h)
		}
	case "leave-servers":
		picked = r.choose(r.servers, e, r.liveServer)
		for _, h := range picked {
			r.departed[h.ID] = now
			r.departedOrder = append(r.departedOrder, h)
			r.net.Input(h, core.Leave{})
			h := h
			r.net.At(now.Add(time.Hour), func() { r.stopHost(h) })
		}
	case "offline-servers":
		picked = r.choose(r.servers, e, r.liveServer)
		for _, h := range picked {
			a := &absence{h: h, off: now, forgot: map[announce.NodeID]bool{}, held: map[*Host]bool{},
				known: map[*Host]time.Time{}, connected: map[*Host]time.Time{}}
			r.away[h.ID] = a
			r.absences = append(r.absences, a)
			r.stopHost(h)
			r.net.At(now.Add(time.Duration(e.For)), func() { r.comeBack(a) })
		}
	case "offline-clients":
		picked = r.choose(r.clients, e, up)
		for _, h := range picked {
			r.stopHost(h)
			h := h
			r.net.At(now.Add(time.Duration(e.For)), func() {
				r.restarts[h] = r.net.Now
				r.m.Restarts++
				r.startHost(h)
			})
		}
	case "restart-clients":
		picked = r.choose(r.clients, e, up)
		for _, h := range picked {
			r.stopHost(h)
			if e.Wipe {
				r.net.Wipe(h)
			}
			r.restarts[h] = now
			r.m.Restarts++
			r.startHost(h)
		}
	case "skew":
		picked = r.choose(r.net.Hosts(), e, func(*Host) bool { return true })
		for i, h := range picked {
			if i%2 == 0 {
				h.Skew += time.Duration(e.By)
			} else {
				h.Skew -= time.Duration(e.By)
			}
		}
	case "partition":
		// Nodes already cut off by another partition are not picked again;
		// each partition heals on its own.
		picked = r.choose(r.net.Hosts(), e, func(h *Host) bool { return h.group == 0 })
		ids := make([]int, max(e.Groups, 1))
		for i := range ids {
			r.nextGroup++
			ids[i] = r.nextGroup
		}
		groups := map[*Host]int{}
		for i, h := range picked {
			groups[h] = ids[i%len(ids)]
		}
		r.net.Partition(groups)
		r.net.At(now.Add(time.Duration(e.For)), func() { r.net.HealGroups(ids...) })
	}
	// A server gone may be the last one a restarted client lacked.
	r.checkPending()
	if r.opt.OnApply != nil {
		names := make([]string, len(picked))
		for i, h := range picked {
			names[i] = h.Name
		}
		r.opt.OnApply(now.Sub(r.start), e.Action, names)
	}
}

// comeBack starts a server that was offline, with its state.
func (r *runner) comeBack(a *absence) {
	h := a.h
	delete(r.away, h.ID)
	a.returned, a.back = true, r.net.Now
	for _, c := range r.clients {
		if c.Up {
			a.upAtBack = append(a.upAtBack, c)
			if c.Node.Holds(h.ID) {
				a.held[c] = true
				a.known[c] = r.net.Now
			}
		}
	}
	r.back[h.ID] = a
	r.startHost(h)
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
		if a, ok := r.back[e.Peer]; ok && r.isClient(h) {
			if _, seen := a.known[h]; !seen {
				a.known[h] = now
			}
		}
		if o, ok := r.net.HostByID(e.Peer); ok && len(r.forgotSeq) > 0 {
			if seq, ok := r.forgotSeq[linkKey(h, o)]; ok {
				got, _ := e.Fact("seqnum")
				if n, err := strconv.ParseInt(got, 10, 64); err == nil && n <= seq {
					r.m.Resurrections++
				}
				delete(r.forgotSeq, linkKey(h, o))
			}
		}
		r.checkHost(h)
	case core.EvForgot:
		o, known := r.net.HostByID(e.Peer)
		if known && r.liveServer(o) {
			r.m.FalseForgets++
		}
		if a, ok := r.away[e.Peer]; ok {
			a.forgot[h.ID] = true
		}
		got, _ := e.Fact("seqnum")
		if n, err := strconv.ParseInt(got, 10, 64); err == nil && known {
			r.forgotSeq[linkKey(h, o)] = n
		}
	case core.EvEvicted:
		r.m.Evictions++
	case core.EvConnected:
		if a, ok := r.back[e.Peer]; ok && r.isClient(h) {
			if _, seen := a.connected[h]; !seen {
				a.connected[h] = now
			}
		}
		r.checkHost(h)
	}
}

// checkHost ends a restarted or joined client's wait once it knows every
// live server and is connected to every one it can dial.
func (r *runner) checkHost(h *Host) {
	t0, restarting := r.restarts[h]
	t1, joining := r.clientJoins[h]
	if (!restarting && !joining) || !r.knowsAll(h) {
		return
	}
	if restarting {
		r.startup = max(r.startup, r.net.Now.Sub(t0).Seconds())
		delete(r.restarts, h)
	}
	if joining {
		r.clientJoin = max(r.clientJoin, r.net.Now.Sub(t1).Seconds())
		delete(r.clientJoins, h)
	}
}

// checkPending checks every waiting client, after the set of live servers
// changed.
func (r *runner) checkPending() {
	for _, h := range r.clients {
		r.checkHost(h)
	}
}

// knowsAll: h holds every live server and is connected to every live one
// it can dial.
func (r *runner) knowsAll(h *Host) bool {
	if !h.Up {
		return false
	}
	for _, s := range r.servers {
		if !r.liveServer(s) {
			continue
		}
		if !h.Node.Holds(s.ID) || (!s.NAT && !r.net.Connected(h, s)) {
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
		dep := r.departed[d.ID]
		for _, h := range r.net.Hosts() {
			if h == d || !h.Up {
				continue
			}
			if h.Node.Holds(d.ID) {
				n++
				if h.Node.Relays(d.ID) {
					rel++
				}
				switch {
				case !r.lastStart[h].After(dep):
					throughout++
				case !r.firstStart[h].After(dep):
					// Ran before the departure, was off since.
					r.m.HeldByReturnedNodes += sd
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
	now := r.net.Now
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
		joined := r.joined[s.ID]
		if t, ok := r.firstStop[s]; ok && t.Equal(joined) {
			m.JoinsRemovedAtOnce++ // nobody could hear of it
			continue
		}
		// The clients up when it joined and at the end.
		var audience []*Host
		for _, c := range r.joinAudience[s.ID] {
			if c.Up && !r.lastStart[c].After(joined) {
				audience = append(audience, c)
			}
		}
		if len(audience) == 0 {
			m.JoinsUnwitnessed++
			continue
		}
		m.JoinsTimed++
		var ts []float64
		for _, c := range audience {
			if t, ok := r.known[s.ID][c.ID]; ok {
				ts = append(ts, t.Sub(joined).Seconds())
			}
		}
		slices.Sort(ts)
		q := func(f float64) float64 {
			need := int(math.Ceil(f * float64(len(audience))))
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
		dep := r.departed[d.ID]
		if t, ok := r.lastHeld[d.ID]; ok {
			m.ZombieLifetimeMaxDays = max(m.ZombieLifetimeMaxDays, days(t.Sub(dep)))
			if t.Equal(now) && now.Sub(dep) > r.cfg.ForgetHorizon {
				m.StillHeldAtEnd++
			}
		} else {
			m.ZombieLifetimeMaxDays = max(m.ZombieLifetimeMaxDays, 0)
		}
	}
	// Bytes, per day of a node running: over all nodes, and by role.
	var bytes, serverBytes, clientBytes uint64
	var serverDays, clientDays float64
	for _, h := range r.net.Hosts() {
		up := r.upDays[h]
		if h.Up {
			up += days(now.Sub(r.lastStart[h]))
		}
		bytes += h.BytesOut
		m.RunningNodeDays += up
		m.RecordsDelivered += h.RecsOut
		switch {
		case r.isServerHost[h]:
			serverBytes += h.BytesOut
			serverDays += up
			if up >= busiestMinDays {
				m.BytesBusiestServerPerDay = max(m.BytesBusiestServerPerDay, float64(h.BytesOut)/up)
			}
		case r.isClient(h):
			clientBytes += h.BytesOut
			clientDays += up
		}
	}
	perDay := func(b uint64, d float64) float64 {
		if d > 0 {
			return float64(b) / d
		}
		return 0
	}
	m.BytesPerNodePerDay = perDay(bytes, m.RunningNodeDays)
	m.BytesPerServerPerDay = perDay(serverBytes, serverDays)
	m.BytesPerClientPerDay = perDay(clientBytes, clientDays)
	m.StartupConnectSec = r.startup
	if len(r.restarts) > 0 {
		m.StartupConnectSec = -1 // some restart never got there
	}
	m.ClientJoinConnectSec = r.clientJoin
	if len(r.clientJoins) > 0 {
		m.ClientJoinConnectSec = -1
	}
	// Servers back from offline.
	for _, a := range r.absences {
		ret := Return{Server: a.h.Name, NAT: a.h.NAT, OffDay: days(a.off.Sub(r.start)),
			ForgottenBy: len(a.forgot), Returned: a.returned, KnownSec: -1, UsableSec: -1}
		if !a.returned {
			ret.AwayDays = days(now.Sub(a.off))
			m.Returns = append(m.Returns, ret)
			continue
		}
		ret.AwayDays = days(a.back.Sub(a.off))
		known, usable, allKnown, allUsable := 0.0, 0.0, true, !a.h.NAT
		for _, c := range a.upAtBack {
			if !c.Up || r.lastStart[c].After(a.back) {
				continue
			}
			if !a.held[c] {
				ret.LostBy++
			}
			tk, ok := a.known[c]
			if !ok {
				allKnown, allUsable = false, false
				continue
			}
			known = max(known, tk.Sub(a.back).Seconds())
			tc, ok := a.connected[c]
			if !ok {
				allUsable = false
				continue
			}
			usable = max(usable, max(tk.Sub(a.back), tc.Sub(a.back)).Seconds())
		}
		if allKnown {
			ret.KnownSec = known
		}
		if allUsable {
			ret.UsableSec = usable
		}
		m.Returns = append(m.Returns, ret)
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
