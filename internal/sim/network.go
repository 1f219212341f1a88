// Package sim runs many protocol cores on a virtual clock over a simulated
// network. The cores are the same code the daemon runs; only the clock, the
// transport and the storage differ.
package sim

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/wire"
)

// Epoch is the virtual clock's zero.
var Epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Host is one simulated machine running a core.
type Host struct {
	Name     string
	ID       announce.NodeID
	Identity core.Identity
	Config   core.Config
	Node     *core.Node
	Up       bool
	// NAT hosts can dial out but cannot be dialled. Blackholed hosts'
	// addresses swallow connection attempts until the dialer times out.
	NAT        bool
	Blackholed bool
	// Skew is added to the virtual clock to give this host's local time
	// (its wall clock). Changing it while the host runs is setting its
	// clock: the core sees the step only if its config asks for the wall
	// clock alone (core.Variant.NoMonotonicClock), as the daemon's does
	// only on a host without a monotonic clock; see localTime.
	Skew time.Duration
	// Disk is the persisted state, as of the last stop (or of the moment
	// its writes began to fail, FailWrites).
	Disk core.State
	// Events received from the core, if Net.KeepEvents.
	Events []core.Event

	conns     map[announce.NodeID]bool
	dials     map[announce.NodeID]bool
	halfOpen  map[announce.NodeID]bool // attempts on the wire
	osQueue   []core.Dial              // attempts waiting for a half-open slot
	group     int                      // partition group; hosts in different groups cannot talk
	BytesOut  uint64
	MsgsOut   uint64
	RecsOut   uint64 // signed records sent (in Records messages)
	incarnate int    // bumped on every start, so stale ticks are ignored
	// failWrites: the disk is full (FailWrites); the counter is not
	// acknowledged to the core.
	failWrites bool
}

// Net is the simulated network and its virtual clock.
type Net struct {
	Now     time.Time
	Latency time.Duration // one-way
	Jitter  time.Duration // added uniformly in [0, Jitter)
	Loss    float64       // probability a message is lost (the connection is reset)
	// HalfOpenLimit models an operating system that allows only so many
	// connection attempts in progress per host (Windows XP SP2 allowed 10,
	// the cause of Tahoe's two-hour start-up, ticket #605); the rest wait
	// in a queue. 0: no limit.
	HalfOpenLimit int
	KeepEvents    bool
	OnEvent       func(h *Host, e core.Event)
	// OnDial is called for each dial a core starts.
	OnDial func(h *Host, d core.Dial)

	rng    *rand.Rand
	hosts  map[announce.NodeID]*Host
	byName map[string]*Host
	order  []*Host
	q      eventQueue
	seq    uint64
	// lastDeliver keeps each link's messages in order under jitter.
	lastDeliver map[[2]announce.NodeID]time.Time
	verified    map[announce.Signed]verifyResult
}

type verifyResult struct {
	a   *announce.Announcement
	err error
}

// Verify checks a record once for the whole network: every node then
// shares the one parsed copy.
func (n *Net) Verify(s announce.Signed) (*announce.Announcement, error) {
	if r, ok := n.verified[s]; ok {
		return r.a, r.err
	}
	a, err := announce.Verify(s)
	n.verified[s] = verifyResult{a, err}
	return a, err
}

// NewNet returns an empty network at Epoch.
func NewNet(seed uint64) *Net {
	return &Net{
		Now:         Epoch,
		Latency:     10 * time.Millisecond,
		rng:         rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		hosts:       map[announce.NodeID]*Host{},
		byName:      map[string]*Host{},
		lastDeliver: map[[2]announce.NodeID]time.Time{},
		verified:    map[announce.Signed]verifyResult{},
	}
}

// Rand returns the network's random source.
func (n *Net) Rand() *rand.Rand { return n.rng }

// Host returns a host by name.
func (n *Net) Host(name string) (*Host, bool) {
	h, ok := n.byName[name]
	return h, ok
}

// HostByID returns a host by node ID.
func (n *Net) HostByID(id announce.NodeID) (*Host, bool) {
	h, ok := n.hosts[id]
	return h, ok
}

// Hosts returns all hosts in the order they were added.
func (n *Net) Hosts() []*Host { return n.order }

// Locator returns the simulated locator of a host.
func Locator(id announce.NodeID) string { return announce.Locator{ID: id, Addr: "sim:1"}.String() }

// KeyFor derives a host's key from its name, so runs are reproducible.
func KeyFor(name string, seed uint64) announce.PrivateKey {
	s := make([]byte, 32)
	r := rand.New(rand.NewPCG(seed, uint64(len(name))))
	for i := range s {
		s[i] = byte(r.Uint32())
	}
	for i, c := range []byte(name) {
		s[i%32] ^= c
	}
	k, _ := announce.NewPrivateKey(s)
	return k
}

// Role returns the identity and configuration of a simulated server
// (announces storage, dials only its bootstrap), relay (announces
// grapevine-relay) or client (announces nothing).
func Role(role, name string, key announce.PrivateKey, cfg core.Config) (core.Identity, core.Config) {
	loc := Locator(key.ID())
	id := core.Identity{Key: key, Nickname: name, Locators: []string{loc}}
	svc := func(s string) []announce.Template {
		return []announce.Template{{Nickname: name, Service: announce.Service{Name: s}, Locators: []string{loc}}}
	}
	switch role {
	case "server":
		cfg.DialServers = false
		id.Services = svc("storage")
	case "relay":
		id.Services = svc("grapevine-relay")
	}
	return id, cfg
}

// Add creates a host (not yet started). Unless cfg.Verify is set, the host
// uses the network's shared verifier.
func (n *Net) Add(name string, id core.Identity, cfg core.Config) *Host {
	if cfg.Verify == nil {
		cfg.Verify = n.Verify
	}
	if cfg.MsgSize == nil {
		cfg.MsgSize = wire.Size
	}
	h := &Host{Name: name, ID: id.Key.ID(), Identity: id, Config: cfg,
		conns: map[announce.NodeID]bool{}, dials: map[announce.NodeID]bool{}, halfOpen: map[announce.NodeID]bool{}}
	n.hosts[h.ID] = h
	n.byName[name] = h
	n.order = append(n.order, h)
	return h
}

// Start boots a host from its disk.
func (n *Net) Start(h *Host) error {
	node, err := core.New(h.Config, h.Identity, h.Disk, rand.New(rand.NewPCG(n.rng.Uint64(), n.rng.Uint64())))
	if err != nil {
		return err
	}
	h.Node, h.Up = node, true
	h.incarnate++
	inc := h.incarnate
	// Ticks start at a random phase.
	phase := time.Duration(n.rng.Int64N(int64(h.Config.TickInterval)))
	n.at(n.Now.Add(phase), func() { n.tick(h, inc) })
	n.step(h, core.Tick{})
	return nil
}

func (n *Net) tick(h *Host, inc int) {
	if !h.Up || h.incarnate != inc {
		return
	}
	n.step(h, core.Tick{})
	n.at(n.Now.Add(h.Config.TickInterval), func() { n.tick(h, inc) })
}

// Stop crashes a host: its connections drop, its disk keeps the last
// persisted state.
func (n *Net) Stop(h *Host) {
	if !h.Up {
		return
	}
	// The daemon persists every change before acting on it, so the disk at
	// a crash holds the state after the last step, or after the last save
	// before its writes failed.
	if !h.failWrites {
		h.Disk = h.Node.State()
	}
	h.Up = false
	for _, id := range sortedIDs(h.conns) {
		n.dropConn(h, n.hosts[id], "peer-gone")
	}
	h.dials = map[announce.NodeID]bool{}
	h.halfOpen, h.osQueue = map[announce.NodeID]bool{}, nil
	h.Node = nil
}

// FailWrites makes a host's disk refuse writes (a full disk) or take them
// again. While it refuses, the host's counter is not acknowledged to its
// core (core.Persisted), so no own record above the last saved counter
// leaves it, and a crash keeps only the state saved before.
func (n *Net) FailWrites(h *Host, fail bool) {
	if fail && !h.failWrites && h.Up {
		h.Disk = h.Node.State()
	}
	h.failWrites = fail
}

// Wipe loses a stopped host's state; only the key survives.
func (n *Net) Wipe(h *Host) { h.Disk = core.State{} }

func sortedIDs(m map[announce.NodeID]bool) []announce.NodeID {
	ids := make([]announce.NodeID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Partition puts hosts into groups; hosts in different groups lose their
// connections and cannot dial each other. Group 0 is the default.
func (n *Net) Partition(groups map[*Host]int) {
	for h, g := range groups {
		h.group = g
	}
	for _, h := range n.order {
		for _, id := range sortedIDs(h.conns) {
			o := n.hosts[id]
			if o.group != h.group {
				n.dropConn(h, o, "partition")
			}
		}
	}
}

// Heal puts every host back in group 0.
func (n *Net) Heal() {
	for _, h := range n.order {
		h.group = 0
	}
}

// HealGroups puts the hosts of the given groups back in group 0; other
// groups stay cut off.
func (n *Net) HealGroups(groups ...int) {
	for _, h := range n.order {
		if h.group != 0 && slices.Contains(groups, h.group) {
			h.group = 0
		}
	}
}

// localTime is a host's clock as the daemon gives it to the core: the
// wall clock (the virtual clock plus the host's skew), and a monotonic
// reading (the virtual clock itself), whose differences within a run are
// the real time passed however the wall clock is set, as Go's time.Now
// carries one. Across restarts only the wall clock remains (a new core
// has no earlier reading to compare with).
func (n *Net) localTime(h *Host) (wall time.Time, mono time.Duration) {
	return n.Now.Add(h.Skew), n.Now.Sub(Epoch)
}

// step delivers one input to a host's core and acts on its Ready as the
// daemon does: the counter is "persisted" at once (unless FailWrites) and
// acknowledged, which releases the own records it held back, and then
// both Readies are acted on.
func (n *Net) step(h *Host, in core.Input) {
	if !h.Up {
		return
	}
	wall, mono := n.localTime(h)
	h.Node.StepMono(wall, mono, in)
	rd := h.Node.Ready()
	if !h.failWrites && h.Node.Counter() > h.Node.Durable() {
		h.Node.StepMono(wall, mono, core.Persisted{Counter: h.Node.Counter()})
		ack := h.Node.Ready()
		n.act(h, rd)
		rd = ack
	}
	n.act(h, rd)
}

func (n *Net) act(h *Host, rd core.Ready) {
	for _, id := range rd.CancelDials {
		delete(h.dials, id)
		n.release(h, id)
	}
	for _, m := range rd.Messages {
		n.send(h, m)
	}
	for _, d := range rd.Dials {
		n.dial(h, d)
	}
	for _, e := range rd.Events {
		if n.KeepEvents {
			h.Events = append(h.Events, e)
		}
		if n.OnEvent != nil {
			n.OnEvent(h, e)
		}
	}
}

func (n *Net) delay() time.Duration {
	d := n.Latency
	if n.Jitter > 0 {
		d += time.Duration(n.rng.Int64N(int64(n.Jitter)))
	}
	return d
}

func (n *Net) send(from *Host, env core.Envelope) {
	to, ok := n.hosts[env.To]
	if !ok || !from.conns[env.To] {
		return
	}
	from.BytesOut += uint64(wire.Size(env.Msg))
	from.MsgsOut++
	if recs, ok := env.Msg.(core.Records); ok {
		from.RecsOut += uint64(len(recs.Recs))
	}
	if n.Loss > 0 && n.rng.Float64() < n.Loss {
		n.dropConn(from, to, "reset")
		return
	}
	key := [2]announce.NodeID{from.ID, to.ID}
	at := n.Now.Add(n.delay())
	if last := n.lastDeliver[key]; at.Before(last) {
		at = last
	}
	n.lastDeliver[key] = at
	fromInc, toInc := from.incarnate, to.incarnate
	n.at(at, func() {
		if from.incarnate != fromInc || to.incarnate != toInc || !to.conns[from.ID] {
			return
		}
		n.step(to, core.Received{From: from.ID, Msg: env.Msg})
	})
}

func (n *Net) dial(from *Host, d core.Dial) {
	if n.OnDial != nil {
		n.OnDial(from, d)
	}
	from.dials[d.Peer] = true
	// Ticks may be coarse: wake the dialer when its timeout is due.
	fromInc := from.incarnate
	n.at(n.Now.Add(d.Timeout+time.Millisecond), func() {
		if from.incarnate == fromInc && from.dials[d.Peer] {
			n.step(from, core.Tick{})
		}
	})
	if n.HalfOpenLimit > 0 && len(from.halfOpen) >= n.HalfOpenLimit {
		from.osQueue = append(from.osQueue, d)
		return
	}
	n.attempt(from, d)
}

// release frees a half-open slot and starts queued attempts.
func (n *Net) release(h *Host, peer announce.NodeID) {
	if !h.halfOpen[peer] {
		return
	}
	delete(h.halfOpen, peer)
	for len(h.osQueue) > 0 && (n.HalfOpenLimit == 0 || len(h.halfOpen) < n.HalfOpenLimit) {
		d := h.osQueue[0]
		h.osQueue = h.osQueue[1:]
		if h.dials[d.Peer] && !h.halfOpen[d.Peer] {
			n.attempt(h, d)
		}
	}
}

func (n *Net) attempt(from *Host, d core.Dial) {
	from.halfOpen[d.Peer] = true
	to, ok := n.hosts[d.Peer]
	inc := from.incarnate
	rtt := 2 * n.delay()
	switch {
	case !ok || to.Blackholed || (to.Up && to.group != from.group):
		return // the attempt hangs; the core times it out
	case !to.Up || to.NAT:
		n.at(n.Now.Add(rtt), func() {
			if from.incarnate != inc || !from.dials[d.Peer] {
				return
			}
			delete(from.dials, d.Peer)
			n.release(from, d.Peer)
			n.step(from, core.DialFailed{Peer: d.Peer, Err: "refused"})
		})
	default:
		toInc := to.incarnate
		n.at(n.Now.Add(rtt), func() {
			if from.incarnate != inc || !from.dials[d.Peer] {
				return
			}
			delete(from.dials, d.Peer)
			n.release(from, d.Peer)
			if to.incarnate != toInc || !to.Up || to.group != from.group {
				n.step(from, core.DialFailed{Peer: d.Peer, Err: "refused"})
				return
			}
			n.connect(from, to, rtt)
		})
	}
}

func (n *Net) connect(from, to *Host, rtt time.Duration) {
	if from.conns[to.ID] {
		n.step(from, core.Connected{Peer: to.ID})
		return
	}
	from.conns[to.ID], to.conns[from.ID] = true, true
	n.step(from, core.Connected{Peer: to.ID})
	// The dialler acts on the connection at once, and a message it sends
	// may be lost, which resets the connection. The receiver, not yet told
	// of the connection, ignores that reset; so it must then not be told of
	// the connection either (a TCP reset before accept), or it would
	// believe for ever that it is connected (a ghost connection).
	if !from.conns[to.ID] {
		return
	}
	n.step(to, core.Connected{Peer: from.ID, Inbound: true})
	n.step(from, core.RTTSample{Peer: to.ID, RTT: rtt})
	n.step(to, core.RTTSample{Peer: from.ID, RTT: rtt})
}

func (n *Net) dropConn(a, b *Host, why string) {
	if !a.conns[b.ID] {
		return
	}
	delete(a.conns, b.ID)
	delete(b.conns, a.ID)
	n.step(a, core.Disconnected{Peer: b.ID, Err: why})
	n.step(b, core.Disconnected{Peer: a.ID, Err: why})
}

// Connected reports whether two hosts have a connection.
func (n *Net) Connected(a, b *Host) bool { return a.conns[b.ID] }

// Input delivers an input to a host now.
func (n *Net) Input(h *Host, in core.Input) { n.step(h, in) }

// At schedules f at virtual time t.
func (n *Net) At(t time.Time, f func()) { n.at(t, f) }

func (n *Net) at(t time.Time, f func()) {
	n.seq++
	heap.Push(&n.q, &event{at: t, seq: n.seq, f: f})
}

// RunUntil processes events up to and including time t.
func (n *Net) RunUntil(t time.Time) {
	for n.q.Len() > 0 && !n.q[0].at.After(t) {
		e := heap.Pop(&n.q).(*event)
		n.Now = e.at
		e.f()
	}
	n.Now = t
}

// Run advances the virtual clock by d.
func (n *Net) Run(d time.Duration) { n.RunUntil(n.Now.Add(d)) }

type event struct {
	at  time.Time
	seq uint64
	f   func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at.Equal(q[j].at) {
		return q[i].seq < q[j].seq
	}
	return q[i].at.Before(q[j].at)
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// String names a host for messages.
func (h *Host) String() string { return fmt.Sprintf("%s(%s)", h.Name, h.ID.Short()) }
