// Package sim runs many protocol cores on a virtual clock over a simulated
// network. The cores are the same code the daemon runs; only the clock, the
// transport and the storage differ.
package sim

import (
	"cmp"
	"fmt"
	"math/bits"
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

	conns     []uint64 // bit i: connected to Net.order[i]
	dials     map[announce.NodeID]bool
	halfOpen  map[announce.NodeID]bool // attempts on the wire
	osQueue   []core.Dial              // attempts waiting for a half-open slot
	group     int                      // partition group; hosts in different groups cannot talk
	BytesOut  uint64
	MsgsOut   uint64
	RecsOut   uint64 // signed records sent (in Records and Own messages)
	incarnate int32  // bumped on every start, so stale ticks are ignored
	idx       int32  // index in Net.order
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
	now    int64 // Now, in ns since Epoch
	q      []qent
	evs    []event // event slots, by qent.data
	free   []int32 // unused slots of evs
	seq    uint64
	// lastDeliver keeps each link's messages in order under jitter: the
	// last delivery time of each link (linkKey) with messages in flight.
	lastDeliver map[uint64]int64
	pruneAt     int // len(lastDeliver) at which to drop past times
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
		lastDeliver: map[uint64]int64{},
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
		cfg.MsgSize, cfg.ItemSize = wire.Size, wire.ItemSize
	}
	h := &Host{Name: name, ID: id.Key.ID(), Identity: id, Config: cfg, idx: int32(len(n.order)),
		dials: map[announce.NodeID]bool{}, halfOpen: map[announce.NodeID]bool{}}
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
	phase := n.rng.Int64N(int64(h.Config.TickInterval))
	n.push(n.now+phase, event{kind: evTick, from: h, inc: inc})
	n.step(h, core.Tick{})
	return nil
}

func (n *Net) tick(h *Host, inc int32) {
	if !h.Up || h.incarnate != inc {
		return
	}
	n.step(h, core.Tick{})
	n.push(n.now+int64(h.Config.TickInterval), event{kind: evTick, from: h, inc: inc})
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
	for _, o := range n.peers(h, nil) {
		n.dropConn(h, o, "peer-gone")
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

// peers returns h's connected peers that pass keep (nil: all), by ID.
func (n *Net) peers(h *Host, keep func(*Host) bool) []*Host {
	var out []*Host
	for w, word := range h.conns {
		for ; word != 0; word &= word - 1 {
			o := n.order[w<<6|bits.TrailingZeros64(word)]
			if keep == nil || keep(o) {
				out = append(out, o)
			}
		}
	}
	slices.SortFunc(out, func(a, b *Host) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Partition puts hosts into groups; hosts in different groups lose their
// connections and cannot dial each other. Group 0 is the default.
func (n *Net) Partition(groups map[*Host]int) {
	for h, g := range groups {
		h.group = g
	}
	for _, h := range n.order {
		apart := func(o *Host) bool { return o.group != h.group }
		for _, o := range n.peers(h, apart) {
			n.dropConn(h, o, "partition")
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
	return n.Now.Add(h.Skew), time.Duration(n.now)
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
	if !ok || !from.linked(to) {
		return
	}
	from.BytesOut += uint64(wire.Size(env.Msg))
	from.MsgsOut++
	switch m := env.Msg.(type) {
	case core.Records:
		from.RecsOut += uint64(len(m.Recs))
	case core.Own:
		from.RecsOut += uint64(len(m.Recs))
	}
	if n.Loss > 0 && n.rng.Float64() < n.Loss {
		n.dropConn(from, to, "reset")
		return
	}
	k := linkKey(from, to)
	at := n.now + int64(n.delay())
	if last, ok := n.lastDeliver[k]; ok && last > at {
		at = last
	}
	n.lastDeliver[k] = at
	if len(n.lastDeliver) >= n.pruneAt {
		// Times past cannot delay a message: forget them.
		for k, last := range n.lastDeliver {
			if last <= n.now {
				delete(n.lastDeliver, k)
			}
		}
		n.pruneAt = max(2*len(n.lastDeliver), 1024)
	}
	n.push(at, event{kind: evDeliver, from: from, to: to, inc: from.incarnate, toInc: to.incarnate, msg: env.Msg})
}

func (n *Net) deliver(e *event) {
	from, to := e.from, e.to
	if from.incarnate != e.inc || to.incarnate != e.toInc || !n.Connected(to, from) {
		return
	}
	n.step(to, core.Received{From: from.ID, Msg: e.msg})
}

func (n *Net) dial(from *Host, d core.Dial) {
	if n.OnDial != nil {
		n.OnDial(from, d)
	}
	from.dials[d.Peer] = true
	n.wake(n.now+int64(d.Timeout+time.Millisecond), from, d.Peer)
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
	rtt := 2 * n.delay()
	e := event{from: from, to: to, inc: from.incarnate, rtt: rtt}
	switch {
	case !ok || to.Blackholed || (to.Up && to.group != from.group):
		return // the attempt hangs; the core times it out
	case !to.Up || to.NAT:
		e.kind = evRefused
	default:
		e.kind, e.toInc = evDialed, to.incarnate
	}
	n.push(n.now+int64(rtt), e)
}

// dialed ends an attempt after its round trip: refused, or connected if
// the peer is still the one dialled and can be reached.
func (n *Net) dialed(e *event) {
	from, to := e.from, e.to
	peer := to.ID
	if from.incarnate != e.inc || !from.dials[peer] {
		return
	}
	delete(from.dials, peer)
	n.release(from, peer)
	if e.kind == evRefused || to.incarnate != e.toInc || !to.Up || to.group != from.group {
		n.step(from, core.DialFailed{Peer: peer, Err: "refused"})
		return
	}
	n.connect(from, to, e.rtt)
}

func (n *Net) connect(from, to *Host, rtt time.Duration) {
	if n.Connected(from, to) {
		n.step(from, core.Connected{Peer: to.ID})
		return
	}
	from.setLink(to, true)
	to.setLink(from, true)
	n.step(from, core.Connected{Peer: to.ID})
	// The dialler acts on the connection at once, and a message it sends
	// may be lost, which resets the connection. The receiver, not yet told
	// of the connection, ignores that reset; so it must then not be told of
	// the connection either (a TCP reset before accept), or it would
	// believe for ever that it is connected (a ghost connection).
	if !n.Connected(from, to) {
		return
	}
	n.step(to, core.Connected{Peer: from.ID, Inbound: true})
	n.step(from, core.RTTSample{Peer: to.ID, RTT: rtt})
	n.step(to, core.RTTSample{Peer: from.ID, RTT: rtt})
}

func (n *Net) dropConn(a, b *Host, why string) {
	if !a.linked(b) {
		return
	}
	a.setLink(b, false)
	b.setLink(a, false)
	n.step(a, core.Disconnected{Peer: b.ID, Err: why})
	n.step(b, core.Disconnected{Peer: a.ID, Err: why})
}

// Connected reports whether two hosts have a connection.
func (n *Net) Connected(a, b *Host) bool { return a.linked(b) }

func (h *Host) linked(o *Host) bool {
	w := int(o.idx >> 6)
	return w < len(h.conns) && h.conns[w]&(1<<(o.idx&63)) != 0
}

func (h *Host) setLink(o *Host, on bool) {
	w := int(o.idx >> 6)
	if w >= len(h.conns) {
		if !on {
			return
		}
		h.conns = append(h.conns, make([]uint64, w+1-len(h.conns))...)
	}
	if on {
		h.conns[w] |= 1 << (o.idx & 63)
	} else {
		h.conns[w] &^= 1 << (o.idx & 63)
	}
}

// linkKey names the link from one host to another in Net.lastDeliver.
func linkKey(from, to *Host) uint64 { return uint64(from.idx)<<32 | uint64(to.idx) }

// Input delivers an input to a host now.
func (n *Net) Input(h *Host, in core.Input) { n.step(h, in) }

// At schedules f at virtual time t.
func (n *Net) At(t time.Time, f func()) {
	n.push(int64(t.Sub(Epoch)), event{kind: evFunc, f: f})
}

// RunUntil processes events up to and including time t.
func (n *Net) RunUntil(t time.Time) {
	end := int64(t.Sub(Epoch))
	for len(n.q) > 0 && n.q[0].at <= end {
		top := n.pop()
		n.now, n.Now = top.at, Epoch.Add(time.Duration(top.at))
		if top.data&wakeBit != 0 {
			d := top.data
			from, peer := n.order[d>>wakeShift&wakeMask], n.order[d>>(2*wakeShift)&wakeMask]
			n.dialWake(from, int32(d&wakeMask), peer.ID)
			continue
		}
		slot := int32(top.data)
		e := n.evs[slot]
		n.evs[slot] = event{}
		n.free = append(n.free, slot)
		switch e.kind {
		case evFunc:
			e.f()
		case evTick:
			n.tick(e.from, e.inc)
		case evDeliver:
			n.deliver(&e)
		case evRefused, evDialed:
			n.dialed(&e)
		}
	}
	n.now, n.Now = end, t
	n.shrink()
}

// shrink gives back the room of a burst of events (the start-up's).
func (n *Net) shrink() {
	if c := cap(n.q); c > 1<<16 && len(n.q) < c/8 {
		n.q = append(make([]qent, 0, 2*len(n.q)), n.q...)
	}
	if c := cap(n.evs); c > 1<<16 && len(n.evs)-len(n.free) < c/8 {
		evs := make([]event, 0, 2*(len(n.evs)-len(n.free)))
		for i, x := range n.q {
			if x.data&wakeBit == 0 {
				evs = append(evs, n.evs[x.data])
				n.q[i].data = uint64(len(evs) - 1)
			}
		}
		n.evs, n.free = evs, nil
	}
}

// Run advances the virtual clock by d.
func (n *Net) Run(d time.Duration) { n.RunUntil(n.Now.Add(d)) }

type evKind uint8

const (
	evFunc    evKind = iota // f
	evTick                  // from's tick (inc)
	evDeliver               // msg from from (inc) to to (toInc)
	evRefused               // from's (inc) attempt on to is refused
	evDialed                // from's (inc) attempt on to (toInc) is answered
)

// event is a scheduled action; the fields its kind uses are set.
type event struct {
	from, to   *Host
	msg        core.Msg
	f          func()
	rtt        time.Duration
	inc, toInc int32
	kind       evKind
}

// qent is an event in the queue: events run by time, then in the order
// they were scheduled (seq). data is the event's slot in Net.evs, or,
// with wakeBit, a dial wake-up: the dialer's incarnation and the indices
// of dialer and peer (wakeShift bits each), as there are many.
type qent struct {
	at   int64 // ns since Epoch
	seq  uint64
	data uint64
}

const (
	wakeBit   = 1 << 63
	wakeShift = 21
	wakeMask  = 1<<wakeShift - 1
)

// wake schedules from's wake-up at the timeout of its dial of peer.
func (n *Net) wake(at int64, from *Host, peer announce.NodeID) {
	inc := from.incarnate
	if to, ok := n.hosts[peer]; ok && from.idx <= wakeMask && to.idx <= wakeMask && inc <= wakeMask {
		n.enqueue(at, wakeBit|uint64(to.idx)<<(2*wakeShift)|uint64(from.idx)<<wakeShift|uint64(inc))
		return
	}
	n.push(at, event{kind: evFunc, f: func() { n.dialWake(from, inc, peer) }})
}

// dialWake steps a dialer whose dial of peer is still on when it is due
// to time out: ticks may be coarse.
func (n *Net) dialWake(from *Host, inc int32, peer announce.NodeID) {
	if from.incarnate == inc && from.dials[peer] {
		n.step(from, core.Tick{})
	}
}

func (a qent) less(b qent) bool { return a.at < b.at || a.at == b.at && a.seq < b.seq }

// push schedules e at (ns since Epoch).
func (n *Net) push(at int64, e event) {
	var slot int32
	if k := len(n.free); k > 0 {
		slot = n.free[k-1]
		n.free = n.free[:k-1]
		n.evs[slot] = e
	} else {
		slot = int32(len(n.evs))
		n.evs = append(n.evs, e)
	}
	n.enqueue(at, uint64(slot))
}

// enqueue adds an event to the queue, a 4-ary heap.
func (n *Net) enqueue(at int64, data uint64) {
	n.seq++
	x := qent{at: at, seq: n.seq, data: data}
	q := append(n.q, x)
	i := len(q) - 1
	for i > 0 {
		p := (i - 1) / 4
		if !x.less(q[p]) {
			break
		}
		q[i] = q[p]
		i = p
	}
	q[i] = x
	n.q = q
}

// pop removes the first event of the queue.
func (n *Net) pop() qent {
	q := n.q
	top := q[0]
	last := len(q) - 1
	x := q[last]
	q = q[:last]
	n.q = q
	if last == 0 {
		return top
	}
	i := 0
	for {
		c := 4*i + 1
		if c >= last {
			break
		}
		m := c
		for k := c + 1; k < min(c+4, last); k++ {
			if q[k].less(q[m]) {
				m = k
			}
		}
		if !q[m].less(x) {
			break
		}
		q[i] = q[m]
		i = m
	}
	q[i] = x
	return top
}

// String names a host for messages.
func (h *Host) String() string { return fmt.Sprintf("%s(%s)", h.Name, h.ID.Short()) }
