package core

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"grapevine/announce"
	"grapevine/records"
)

// Identity is who the node is and what it announces.
type Identity struct {
	Key       announce.PrivateKey
	Services  []announce.Template // one record per service; none for a pure client
	Bootstrap []announce.Locator  // dialled at start and kept connected
}

// Input is something that happened, delivered to Step with the local time.
type Input interface{ isInput() }

// Tick: time passed. The driver delivers one every Config.TickInterval.
type Tick struct{}

// Connected: an authenticated connection to Peer is up (dialled by us, or
// Inbound).
type Connected struct {
	Peer    announce.NodeID
	Inbound bool
}

// Disconnected: the connection to Peer is gone.
type Disconnected struct {
	Peer announce.NodeID
	Err  string
}

// DialFailed: a dial the core asked for failed.
type DialFailed struct {
	Peer announce.NodeID
	Err  string
}

// Received: a message arrived from a connected peer.
type Received struct {
	From announce.NodeID
	Msg  Msg
}

// RTTSample: the transport measured a round trip to Peer.
type RTTSample struct {
	Peer announce.NodeID
	RTT  time.Duration
}

// SetServices: what the node announces changed. Removed services are
// withdrawn; the rest are re-signed with the next seqnum at once.
type SetServices struct {
	Services []announce.Template
}

// Leave: withdraw every service (R7). The node keeps running and relays the
// withdrawals.
type Leave struct{}

func (Tick) isInput()         {}
func (Connected) isInput()    {}
func (Disconnected) isInput() {}
func (DialFailed) isInput()   {}
func (Received) isInput()     {}
func (RTTSample) isInput()    {}
func (SetServices) isInput()  {}
func (Leave) isInput()        {}

// Envelope is a message to send.
type Envelope struct {
	To  announce.NodeID
	Msg Msg
}

// Dial asks the driver to connect to Peer at one of Locators within
// Timeout, and to report Connected or DialFailed.
type Dial struct {
	Peer     announce.NodeID
	Locators []string
	Timeout  time.Duration
}

// Ready is the output of Step, in the order the driver must act on it:
//  1. if Counter > 0, persist it (before anything that carries it leaves);
//  2. if StateChanged, persist State() (or the parts it tracks);
//  3. send Messages, cancel CancelDials, start Dials;
//  4. log or show Events.
type Ready struct {
	Counter      int64
	StateChanged bool
	Messages     []Envelope
	Dials        []Dial
	CancelDials  []announce.NodeID
	Events       []Event
}

// recMeta is the core's bookkeeping for a held record.
type recMeta struct {
	source announce.NodeID // the neighbour it was first fetched from; own ID for own records
	hash   uint64
	ver    uint64
}

// tombMeta is the bookkeeping for a tombstone.
type tombMeta struct {
	atE    time.Duration
	atWall time.Time
	ver    uint64 // withdrawals are relayed: their place in the index
	freshE time.Duration
	fresh  bool // a withdrawal received or made in this run
	hash   uint64
	// refused is 1 + the highest seqnum whose refusal was reported.
	refused int64
}

type logEntry struct {
	ver uint64
	key records.Key
}

type fetchState struct {
	from     announce.NodeID
	seqnum   int64
	deadline time.Duration
}

// link is the state of one connection.
type link struct {
	id         announce.NodeID
	inbound    bool
	theirEpoch uint64
	cursor     uint64 // their index, seen up to
	sentTo     uint64 // our index: what the neighbour's cursor should be
	scanned    uint64 // our index: scanned for this neighbour up to
	lastSyncE  time.Duration
	tokens     float64
	tokensE    time.Duration
	pending    int   // records asked of this link and not yet answered
	asked      []int // sizes of the unanswered fetches, oldest first
}

// Node is the protocol state machine. It is single-threaded and does no
// I/O: Step applies an input at a local time, Ready returns what to do.
type Node struct {
	cfg  Config
	key  announce.PrivateKey
	id   announce.NodeID
	svcs []announce.Template
	rng  *rand.Rand

	store    *records.Store
	meta     map[records.Key]*recMeta
	tombs    map[records.Key]*tombMeta
	peers    map[announce.NodeID]*peer
	links    map[announce.NodeID]*link
	linkIDs  []announce.NodeID // sorted
	fetching map[records.Key]*fetchState
	perSrc   map[announce.NodeID]int

	counter      int64
	published    bool
	lastPublishE time.Duration

	epoch     uint64
	ver       uint64
	pushedVer uint64
	log       []logEntry
	verOf     map[records.Key]uint64

	elapsed   time.Duration
	savedWall time.Time
	startE    time.Duration
	lastNow   time.Time
	wall      time.Time
	inflight  int
	dialing   map[announce.NodeID]bool
	bootIDs   []announce.NodeID
	dialDirty bool
	nextDialE time.Duration
	forgetE   time.Duration
	leaving   bool

	evSeq  uint64
	recent []Event
	ready  Ready
}

// New returns a node restored from st (the zero State for a new node).
// rng drives jitter and the index epoch; pass a seeded source for
// reproducible runs.
func New(cfg Config, id Identity, st State, rng *rand.Rand) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:      cfg,
		key:      id.Key,
		id:       id.Key.ID(),
		svcs:     slices.Clone(id.Services),
		rng:      rng,
		store:    records.New(),
		meta:     map[records.Key]*recMeta{},
		tombs:    map[records.Key]*tombMeta{},
		peers:    map[announce.NodeID]*peer{},
		links:    map[announce.NodeID]*link{},
		fetching: map[records.Key]*fetchState{},
		perSrc:   map[announce.NodeID]int{},
		verOf:    map[records.Key]uint64{},
		dialing:  map[announce.NodeID]bool{},
		epoch:    rng.Uint64() | 1,
	}
	if err := n.restore(st); err != nil {
		return nil, err
	}
	for _, l := range id.Bootstrap {
		if l.ID == n.id {
			continue
		}
		p := n.peer(l.ID)
		if !p.bootstrap {
			n.bootIDs = append(n.bootIDs, l.ID)
		}
		p.bootstrap = true
		if !slices.Contains(p.Locators, l.String()) {
			p.Locators = append(p.Locators, l.String())
		}
	}
	return n, nil
}

// ID returns the node's ID.
func (n *Node) ID() announce.NodeID { return n.id }

// Config returns the configuration.
func (n *Node) Config() Config { return n.cfg }

// Elapsed returns the elapsed-time measure (R5).
func (n *Node) Elapsed() time.Duration { return n.elapsed }

// Counter returns the last seqnum used.
func (n *Node) Counter() int64 { return n.counter }

// Step applies one input at local time now.
func (n *Node) Step(now time.Time, in Input) {
	n.advance(now)
	if !n.published {
		n.publish("start")
	}
	switch in := in.(type) {
	case Tick:
		n.tick()
	case Connected:
		n.onConnected(in)
	case Disconnected:
		n.onDisconnected(in.Peer, in.Err)
	case DialFailed:
		n.onDialFailed(in.Peer, in.Err)
	case Received:
		n.onReceived(in.From, in.Msg)
	case RTTSample:
		if p, ok := n.peers[in.Peer]; ok && in.RTT > 0 {
			p.addRTT(in.RTT)
		}
	case SetServices:
		n.setServices(in.Services)
	case Leave:
		n.leave()
	}
	n.pushDigests()
	n.scheduleDials()
}

// Ready returns the outputs accumulated since the last call.
func (n *Node) Ready() Ready {
	r := n.ready
	n.ready = Ready{}
	return r
}

// advance moves the elapsed-time measure (R5): by the local time passed
// since the last input, but never backwards and never more than MaxTickGap
// at once, so clock jumps, suspends and the node's own downtime do not
// count against anyone.
func (n *Node) advance(now time.Time) {
	n.wall = now
	if n.lastNow.IsZero() {
		n.lastNow = now
		if n.cfg.Variant.WallClockElapsed && !n.savedWall.IsZero() {
			n.elapsed += now.Sub(n.savedWall) // downtime counts, as does any jump
		}
		return
	}
	d := now.Sub(n.lastNow)
	n.lastNow = now
	if n.cfg.Variant.WallClockElapsed {
		n.elapsed += d
		return
	}
	switch {
	case d < 0:
		n.emit(Event{Kind: EvClock, Reason: "backwards", Facts: facts("by", -d, "counted", 0)})
		d = 0
	case d > n.cfg.MaxTickGap:
		if d > 10*n.cfg.MaxTickGap {
			n.emit(Event{Kind: EvClock, Reason: "jump-or-suspend", Facts: facts("by", d, "counted", n.cfg.MaxTickGap)})
		}
		d = n.cfg.MaxTickGap
	}
	n.elapsed += d
}

func (n *Node) emit(e Event) {
	n.evSeq++
	e.Seq, e.Elapsed, e.Wall = n.evSeq, n.elapsed, n.wall
	if len(n.ready.Events) < 4*n.cfg.MaxEvents {
		n.ready.Events = append(n.ready.Events, e)
	}
	if len(n.recent) < n.cfg.MaxEvents {
		n.recent = append(n.recent, e)
	} else {
		n.recent[n.evSeq%uint64(len(n.recent))] = e
	}
}

// RecentEvents returns the last MaxEvents events, oldest first.
func (n *Node) RecentEvents() []Event {
	out := slices.Clone(n.recent)
	slices.SortFunc(out, func(a, b Event) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

func (n *Node) peer(id announce.NodeID) *peer {
	p, ok := n.peers[id]
	if !ok {
		p = newPeer(id, n.elapsed, n.wall)
		n.peers[id] = p
	}
	return p
}

func hashOf(s announce.Signed) uint64 {
	h := sha256.Sum256([]byte(s.Msg))
	return binary.BigEndian.Uint64(h[:8])
}

// index gives key the next version in the change index.
func (n *Node) index(k records.Key) uint64 {
	n.ver++
	n.verOf[k] = n.ver
	n.log = append(n.log, logEntry{n.ver, k})
	if len(n.log) > 64 && len(n.log) > 2*len(n.verOf) {
		live := n.log[:0]
		for _, e := range n.log {
			if n.verOf[e.key] == e.ver {
				live = append(live, e)
			}
		}
		n.log = live
	}
	n.ready.StateChanged = true
	return n.ver
}

func (n *Node) unindex(k records.Key) { delete(n.verOf, k) }

// live reports whether a server is live to this node (R1): connected now,
// or a new seqnum from it arrived within W in this run.
func (n *Node) live(id announce.NodeID) bool {
	if id == n.id {
		return true
	}
	p, ok := n.peers[id]
	if !ok {
		return false
	}
	switch {
	case n.cfg.Variant.RelayAll:
		return true
	case n.cfg.Variant.RelayConnectedOnly:
		return p.connected
	}
	window := n.cfg.LivenessWindow
	if p.firstSight {
		window = n.cfg.FirstSightWindow
	}
	return p.connected || (p.fresh && n.elapsed-p.freshE < window)
}

// ---- publishing (R2, R7, counter recovery) ----

func (n *Node) publish(why string) {
	n.published = true
	n.lastPublishE = n.elapsed
	n.counter++
	n.ready.Counter = n.counter
	for _, t := range n.svcs {
		if n.cfg.Variant.Timestamp {
			t.Service.Fields = append(slices.Clone(t.Service.Fields), announce.Member{Key: FieldTimestamp, Value: announce.Int(n.wall.Unix())})
		}
		n.admitOwn(announce.Sign(n.key, announce.Build(n.key, t, n.counter)))
	}
	n.emit(Event{Kind: EvPublished, Peer: n.id, Reason: why, Facts: facts("seqnum", n.counter, "services", len(n.svcs))})
}

func (n *Node) admitOwn(s announce.Signed) {
	a, err := announce.ParseUnverified(s)
	if err != nil {
		return // our own template is always valid
	}
	res, err := n.store.AdmitVerified(a)
	if err != nil {
		return
	}
	n.applyAdmitted(res, n.id)
}

func (n *Node) setServices(svcs []announce.Template) {
	n.svcs = slices.Clone(svcs)
	n.leaving = false
	n.withdrawMissing()
	n.publish("services-changed")
}

func (n *Node) leave() {
	n.leaving = true
	n.svcs = nil
	n.withdrawMissing()
	n.published = true
}

// withdrawMissing signs withdrawals for own services no longer announced.
func (n *Node) withdrawMissing() {
	var gone []string
	for _, a := range n.store.Records() {
		if a.ID == n.id && !slices.ContainsFunc(n.svcs, func(t announce.Template) bool { return t.Service.Name == a.ServiceName }) {
			gone = append(gone, a.ServiceName)
		}
	}
	if len(gone) == 0 {
		return
	}
	n.counter++
	n.ready.Counter = n.counter
	for _, svc := range gone {
		t := announce.Template{Service: announce.Service{Name: svc}, Withdrawn: true}
		n.admitOwn(announce.Sign(n.key, announce.Build(n.key, t, n.counter)))
	}
	n.emit(Event{Kind: EvPublished, Peer: n.id, Reason: "withdrawn", Facts: facts("seqnum", n.counter, "services", len(gone))})
}

// observeOwn applies the counter recovery rule to a record of our own key
// heard from a neighbour.
func (n *Node) observeOwn(a *announce.Announcement, from announce.NodeID) {
	var ours announce.Signed
	if h, ok := n.store.Get(records.Key{Service: a.ServiceName, ID: n.id}); ok {
		ours = h.Signed
	}
	next, jump := announce.RecoverSeqnum(n.counter, a, ours)
	if !jump || n.cfg.Variant.NoCounterRecovery {
		return
	}
	n.emit(Event{Kind: EvCounterRecovered, Peer: n.id, Service: a.ServiceName, Reason: "own-record-ahead",
		Facts: facts("heard", a.Seqnum, "counter", n.counter, "from", from.Short())})
	n.counter = next - 1
	if n.leaving {
		n.counter++
		n.ready.Counter = n.counter
		n.withdrawAll()
		return
	}
	n.publish("recovered")
}

func (n *Node) withdrawAll() {
	for _, a := range n.store.Records() {
		if a.ID == n.id {
			t := announce.Template{Service: announce.Service{Name: a.ServiceName}, Withdrawn: true}
			n.admitOwn(announce.Sign(n.key, announce.Build(n.key, t, n.counter)))
		}
	}
}

// ---- ticks ----

func (n *Node) tick() {
	if !n.leaving && !n.cfg.Variant.NoRefresh && n.elapsed-n.lastPublishE >= n.cfg.RefreshInterval {
		n.publish("refresh")
	}
	// Dial timeouts.
	var expired []announce.NodeID
	for id := range n.dialing {
		if n.elapsed >= n.peers[id].dialDeadline {
			expired = append(expired, id)
		}
	}
	slices.Sort(expired)
	for _, id := range expired {
		n.ready.CancelDials = append(n.ready.CancelDials, id)
		n.onDialFailed(id, "timeout")
	}
	// Fetch timeouts: drop the claim so another neighbour's digest can
	// fetch the record.
	for k, f := range n.fetching {
		if n.elapsed >= f.deadline {
			delete(n.fetching, k)
		}
	}
	// Anti-entropy rounds.
	for _, id := range n.linkIDs {
		l := n.links[id]
		if n.elapsed-l.lastSyncE >= n.cfg.SyncInterval {
			n.sendSyncReq(l)
		}
	}
	if n.elapsed-n.forgetE >= n.forgetCheckInterval() {
		n.forgetE = n.elapsed
		n.forget()
		n.expireTombstones()
	}
}

// forgetCheckInterval is H/1000: 43 minutes for H = 30 days, a precision
// of 0.1% of the horizon.
func (n *Node) forgetCheckInterval() time.Duration {
	return n.cfg.ForgetHorizon / 1000
}

func (n *Node) sortedPeers(keep func(*peer) bool) []announce.NodeID {
	var ids []announce.NodeID
	for id, p := range n.peers {
		if keep(p) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// ---- connections ----

func (n *Node) onConnected(in Connected) {
	if in.Peer == n.id {
		return
	}
	p := n.peer(in.Peer)
	if p.dialing {
		n.endDial(p)
	}
	if p.connected {
		return
	}
	p.connected = true
	p.connectedSince, p.connSinceWall = n.elapsed, n.wall
	p.LastConnectedE, p.LastConnectedWall = n.elapsed, n.wall
	p.LastGoodE = n.elapsed
	p.LastAttemptE, p.LastAttemptWall = n.elapsed, n.wall
	p.LastAttemptFailed, p.LastError, p.Failures = false, "", 0
	p.deferred = ""
	// The neighbour asks for our index from its cursor; pushes start from
	// here.
	l := &link{id: in.Peer, inbound: in.Inbound, tokens: float64(n.cfg.RecordBurst), tokensE: n.elapsed, sentTo: n.ver, scanned: n.ver}
	n.links[in.Peer] = l
	i, _ := slices.BinarySearch(n.linkIDs, in.Peer)
	n.linkIDs = slices.Insert(n.linkIDs, i, in.Peer)
	n.ready.StateChanged = true
	n.emit(Event{Kind: EvConnected, Peer: in.Peer, Facts: facts("inbound", in.Inbound)})
	// Its records are live now: put them in the index so neighbours see them.
	for _, a := range n.recordsOf(in.Peer) {
		n.index(records.Key{Service: a.ServiceName, ID: a.ID})
	}
	n.sendSyncReq(l)
}

func (n *Node) recordsOf(id announce.NodeID) []*announce.Announcement {
	var out []*announce.Announcement
	if p, ok := n.peers[id]; ok && p.records == 0 {
		return nil
	}
	for k := range n.meta {
		if k.ID == id {
			if a, ok := n.store.Get(k); ok {
				out = append(out, a)
			}
		}
	}
	slices.SortFunc(out, func(x, y *announce.Announcement) int { return cmp.Compare(x.ServiceName, y.ServiceName) })
	return out
}

func (n *Node) onDisconnected(id announce.NodeID, errText string) {
	p, ok := n.peers[id]
	if !ok || !p.connected {
		return
	}
	p.connected = false
	p.closeInterval(n.elapsed)
	p.LastGoodE = n.elapsed
	p.LastConnectedE, p.LastConnectedWall = n.elapsed, n.wall
	delete(n.links, id)
	if i, found := slices.BinarySearch(n.linkIDs, id); found {
		n.linkIDs = slices.Delete(n.linkIDs, i, i+1)
	}
	for k, f := range n.fetching {
		if f.from == id {
			delete(n.fetching, k)
		}
	}
	p.nextDialE = n.elapsed + n.jitter(n.cfg.BackoffBase)
	n.nextDialE = min(n.nextDialE, p.nextDialE)
	n.ready.StateChanged = true
	n.emit(Event{Kind: EvDisconnected, Peer: id, Reason: reasonWord(errText, "closed")})
}

func reasonWord(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (n *Node) onDialFailed(id announce.NodeID, errText string) {
	p, ok := n.peers[id]
	if !ok || !p.dialing {
		return
	}
	n.endDial(p)
	p.Failures++
	p.failedThisRun = true
	p.LastAttemptFailed = true
	p.LastError = reasonWord(errText, "failed")
	backoff := n.cfg.BackoffBase << min(p.Failures-1, 30)
	if backoff > n.cfg.BackoffMax || backoff <= 0 {
		backoff = n.cfg.BackoffMax
	}
	backoff = n.jitter(backoff)
	p.nextDialE = n.elapsed + backoff
	n.nextDialE = min(n.nextDialE, p.nextDialE)
	n.ready.StateChanged = true
	n.emit(Event{Kind: EvDialFailed, Peer: id, Reason: p.LastError,
		Facts: facts("failures", p.Failures, "retry_in", backoff.Round(time.Millisecond))})
}

func (n *Node) endDial(p *peer) {
	p.dialing = false
	delete(n.dialing, p.ID)
	n.inflight--
	n.dialDirty = true
}

func (n *Node) jitter(d time.Duration) time.Duration {
	j := n.cfg.BackoffJitter
	if j == 0 {
		return d
	}
	f := 1 - j + 2*j*n.rng.Float64()
	return time.Duration(float64(d) * f)
}

// dialTimeout is srtt + 4*rttvar, clamped (R3).
func (n *Node) dialTimeout(p *peer) time.Duration {
	if p.SRTT == 0 {
		return n.cfg.DialTimeoutDefault
	}
	return min(max(p.SRTT+4*p.RTTVar, n.cfg.DialTimeoutFloor), n.cfg.DialTimeoutCeiling)
}

// DialTimeout returns the connect timeout for a peer.
func (n *Node) DialTimeout(id announce.NodeID) time.Duration {
	if p, ok := n.peers[id]; ok {
		return n.dialTimeout(p)
	}
	return n.cfg.DialTimeoutDefault
}

func (n *Node) wantsDial(p *peer) bool {
	if p.connected || p.dialing || len(p.Locators) == 0 || p.ID == n.id {
		return false
	}
	return p.bootstrap || (n.cfg.DialServers && p.records > 0 && !p.Withdrawn)
}

// scheduleDials starts dials (R3): most recent successful connection first,
// servers whose last attempt failed last, at most K in flight.
func (n *Node) scheduleDials() {
	limit := n.cfg.MaxDialsInFlight
	if n.cfg.Variant.NoDialOrder {
		limit = math.MaxInt
	}
	if n.inflight >= limit || (!n.dialDirty && n.elapsed < n.nextDialE) {
		return
	}
	n.dialDirty = false
	var cands []*peer
	next := time.Duration(math.MaxInt64)
	pool := n.peers
	if !n.cfg.DialServers {
		pool = make(map[announce.NodeID]*peer, len(n.bootIDs))
		for _, id := range n.bootIDs {
			pool[id] = n.peers[id]
		}
	}
	for _, p := range pool {
		if !n.wantsDial(p) {
			continue
		}
		if p.nextDialE > n.elapsed {
			next = min(next, p.nextDialE)
			continue
		}
		cands = append(cands, p)
	}
	slices.SortFunc(cands, func(a, b *peer) int {
		if n.cfg.Variant.NoDialOrder {
			return cmp.Compare(a.ID, b.ID)
		}
		if a.LastAttemptFailed != b.LastAttemptFailed {
			if a.LastAttemptFailed {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(b.LastConnectedE, a.LastConnectedE), cmp.Compare(a.ID, b.ID))
	})
	for _, p := range cands {
		if n.inflight >= limit {
			n.dialDirty = true // more are waiting: check on the next input
			break
		}
		p.dialing = true
		n.dialing[p.ID] = true
		p.dialDeadline = n.elapsed + n.dialTimeout(p)
		p.LastAttemptE, p.LastAttemptWall = n.elapsed, n.wall
		n.inflight++
		n.ready.Dials = append(n.ready.Dials, Dial{Peer: p.ID, Locators: slices.Clone(p.Locators), Timeout: n.dialTimeout(p)})
		last := "never"
		if p.LastConnectedE >= 0 {
			last = (n.elapsed - p.LastConnectedE).Round(time.Second).String() + " ago"
		}
		n.emit(Event{Kind: EvDial, Peer: p.ID, Facts: facts("last_connected", last, "last_failed", p.LastAttemptFailed, "in_flight", n.inflight)})
	}
	n.nextDialE = next
}

// ---- gossip ----

func (n *Node) send(to announce.NodeID, m Msg) {
	if p, ok := n.peers[to]; ok {
		p.BytesOut += uint64(m.Size())
	}
	n.ready.Messages = append(n.ready.Messages, Envelope{To: to, Msg: m})
}

func (n *Node) sendSyncReq(l *link) {
	l.lastSyncE = n.elapsed
	n.send(l.id, SyncReq{Epoch: l.theirEpoch, Cursor: l.cursor})
}

// digest lists relayable changes after from, leaving out records first
// learnt from the neighbour itself.
func (n *Node) digest(from uint64, to announce.NodeID) Digest {
	d := Digest{Epoch: n.epoch, From: from, To: n.ver}
	i, _ := slices.BinarySearchFunc(n.log, from+1, func(e logEntry, v uint64) int { return cmp.Compare(e.ver, v) })
	for ; i < len(n.log); i++ {
		e := n.log[i]
		if n.verOf[e.key] != e.ver {
			continue
		}
		it, ok := n.item(e.key, to)
		if !ok {
			continue
		}
		it.Ver = e.ver
		if len(d.Items) == n.cfg.MaxDigestItems {
			d.To, d.More = d.Items[len(d.Items)-1].Ver, true
			break
		}
		d.Items = append(d.Items, it)
	}
	return d
}

// item describes the record for k if it may be passed to neighbour to (R1).
func (n *Node) item(k records.Key, to announce.NodeID) (Item, bool) {
	if a, ok := n.store.Get(k); ok {
		m := n.meta[k]
		// A record is not sent back where it came from, except to its own
		// server: that is how a server that lost its counter learns it.
		if (m.source == to && k.ID != to) || !n.live(k.ID) {
			return Item{}, false
		}
		return Item{Service: k.Service, ID: k.ID, Seqnum: a.Seqnum, Hash: m.hash}, true
	}
	if t, ok := n.store.Tombstone(k); ok {
		tm := n.tombs[k]
		if tm == nil || !tm.fresh || n.elapsed-tm.freshE >= n.cfg.LivenessWindow || t.Reason != "withdrawn" {
			return Item{}, false
		}
		return Item{Service: k.Service, ID: k.ID, Seqnum: t.Seqnum, Hash: tm.hash}, true
	}
	return Item{}, false
}

// pushDigests sends each neighbour the changes it has not been sent.
func (n *Node) pushDigests() {
	if n.pushedVer == n.ver {
		return
	}
	n.pushedVer = n.ver
	var behind []announce.NodeID
	for _, id := range n.linkIDs {
		if n.links[id].scanned < n.ver {
			behind = append(behind, id)
		}
	}
	if f := n.cfg.PushFanout; f > 0 && len(behind) > f {
		n.rng.Shuffle(len(behind), func(i, j int) { behind[i], behind[j] = behind[j], behind[i] })
		behind = behind[:f]
		slices.Sort(behind)
	}
	for _, id := range behind {
		l := n.links[id]
		// Entries after sentTo and up to scanned held nothing for this
		// neighbour, so the digest may claim them: its cursor stays
		// contiguous without empty digests being sent.
		d := n.digest(l.scanned, id)
		d.From = l.sentTo
		l.scanned = d.To
		if len(d.Items) > 0 {
			n.send(id, d)
			l.sentTo = d.To
		}
	}
}

func (n *Node) onReceived(from announce.NodeID, m Msg) {
	l, ok := n.links[from]
	if !ok {
		return // not connected: the driver delivered late
	}
	p := n.peers[from]
	p.BytesIn += uint64(m.Size())
	switch m := m.(type) {
	case SyncReq:
		cursor := m.Cursor
		if m.Epoch != n.epoch || cursor > n.ver {
			cursor = 0
		}
		d := n.digest(cursor, from)
		l.sentTo, l.scanned = d.To, max(l.scanned, d.To)
		n.send(from, d)
	case Digest:
		n.onDigest(l, m)
	case Fetch:
		n.onFetch(l, m)
	case Records:
		n.onRecords(l, m)
	}
}

func (n *Node) onDigest(l *link, d Digest) {
	if d.Epoch != l.theirEpoch {
		l.theirEpoch, l.cursor = d.Epoch, 0
	}
	// A gap (a lost or rate-limited earlier digest): use the items, keep the
	// cursor; the next round asks from it.
	gap := d.From > l.cursor
	n.refill(l)
	var want []records.Key
	limit := d.To
	for _, it := range d.Items {
		if !n.wants(it) {
			n.noteTombstoned(it, l.id)
			continue
		}
		if f, ok := n.fetching[it.Key()]; ok && f.seqnum >= it.Seqnum {
			continue // fetched once, from whoever announced it first
		}
		if float64(l.pending+len(want)+1) > l.tokens && !n.cfg.Variant.NoCaps {
			limit = it.Ver - 1 // ask again from here next round
			n.emit(Event{Kind: EvRateLimited, Peer: l.id, Reason: "fetch-deferred",
				Facts: facts("tokens", int(l.tokens), "rate_per_s", n.cfg.RecordRate, "burst", n.cfg.RecordBurst)})
			break
		}
		want = append(want, it.Key())
		n.fetching[it.Key()] = &fetchState{from: l.id, seqnum: it.Seqnum, deadline: n.elapsed + n.cfg.FetchTimeout}
	}
	for len(want) > 0 {
		chunk := want[:min(len(want), n.cfg.MaxFetchItems)]
		want = want[len(chunk):]
		l.pending += len(chunk)
		l.asked = append(l.asked, len(chunk))
		n.send(l.id, Fetch{Keys: chunk})
	}
	if gap {
		return
	}
	l.cursor = max(l.cursor, min(limit, d.To))
	switch {
	case limit < d.To:
		l.lastSyncE = n.elapsed // out of tokens: wait for the next round
	case d.More:
		n.sendSyncReq(l)
	}
}

// wants decides from an item alone whether fetching it could change
// anything.
func (n *Node) wants(it Item) bool {
	k := it.Key()
	if it.ID == n.id {
		held, ok := n.meta[k]
		return it.Seqnum > n.counter || (it.Seqnum == n.counter && (!ok || held.hash != it.Hash))
	}
	if a, ok := n.store.Get(k); ok {
		if n.meta[k].hash == it.Hash {
			return false
		}
		return !a.HasSeqnum || it.Seqnum > a.Seqnum
	}
	if t, ok := n.store.Tombstone(k); ok {
		return !t.HasSeqnum || it.Seqnum > t.Seqnum
	}
	return true
}

// noteTombstoned explains, once per key and seqnum, that a neighbour offered
// a record the tombstone refuses.
func (n *Node) noteTombstoned(it Item, from announce.NodeID) {
	k := it.Key()
	t, ok := n.store.Tombstone(k)
	tm := n.tombs[k]
	if !ok || tm == nil || tm.refused >= it.Seqnum+1 || t.Reason == "withdrawn" && t.Last == (announce.Signed{}) {
		return
	}
	if t.HasSeqnum && it.Seqnum == t.Seqnum && tm.hash == it.Hash && t.Reason == "withdrawn" {
		return // the same withdrawal, passed on
	}
	tm.refused = it.Seqnum + 1
	n.emit(Event{Kind: EvRejected, Peer: k.ID, Service: k.Service, Reason: "tombstoned",
		Facts: facts("held", t.Seqnum, "got", it.Seqnum, "from", from.Short(), "why", t.Reason)})
}

func (n *Node) onFetch(l *link, f Fetch) {
	var out Records
	for _, k := range f.Keys {
		if len(out.Recs) == n.cfg.MaxFetchItems {
			break
		}
		if _, ok := n.item(k, ""); !ok {
			continue // not relayable (R1), or gone
		}
		if a, ok := n.store.Get(k); ok {
			out.Recs = append(out.Recs, a.Signed)
		} else if t, ok := n.store.Tombstone(k); ok {
			out.Recs = append(out.Recs, t.Last)
		}
	}
	n.send(l.id, out)
}

func (n *Node) refill(l *link) {
	dt := n.elapsed - l.tokensE
	l.tokensE = n.elapsed
	l.tokens = min(float64(n.cfg.RecordBurst), l.tokens+dt.Seconds()*n.cfg.RecordRate)
}

func (n *Node) onRecords(l *link, m Records) {
	n.refill(l)
	limited, unsolicited, answered := 0, 0, 0
	if len(l.asked) > 0 {
		answered = l.asked[0]
		l.asked = l.asked[1:]
		l.pending -= answered
	}
	for i, s := range m.Recs {
		if i >= answered {
			unsolicited++
			continue
		}
		if l.tokens < 1 && !n.cfg.Variant.NoCaps {
			limited++
			continue
		}
		l.tokens--
		n.admit(s, l.id)
	}
	if limited > 0 {
		n.emit(Event{Kind: EvRateLimited, Peer: l.id, Reason: "token-bucket",
			Facts: facts("dropped", limited, "rate_per_s", n.cfg.RecordRate, "burst", n.cfg.RecordBurst)})
	}
	if unsolicited > 0 {
		n.emit(Event{Kind: EvUnsolicited, Peer: l.id, Reason: "not-fetched", Facts: facts("dropped", unsolicited)})
	}
}

// admit verifies and stores a record fetched from a neighbour.
func (n *Node) admit(s announce.Signed, from announce.NodeID) {
	if _, ok := n.store.Lookup(s); ok {
		return
	}
	a, err := n.verify(s)
	if err != nil {
		reason := "invalid"
		if ae, ok := err.(*announce.Error); ok {
			reason = string(ae.Reason)
		}
		n.emit(Event{Kind: EvRejected, Peer: announce.NodeID(s.Key), Reason: reason, Facts: facts("from", from.Short(), "error", err)})
		return
	}
	k := records.Key{Service: a.ServiceName, ID: a.ID}
	if f, ok := n.fetching[k]; ok && f.from == from {
		delete(n.fetching, k)
	}
	if a.ID == n.id {
		n.observeOwn(a, from)
		return
	}
	if a.Withdrawn() && n.cfg.Variant.IgnoreWithdrawals {
		return
	}
	_, held := n.store.Get(k)
	t, tombed := n.store.Tombstone(k)
	blocked := tombed && t.HasSeqnum && (!a.HasSeqnum || a.Seqnum <= t.Seqnum)
	if !held && !blocked && !a.Withdrawn() {
		if !n.makeRoom(k, from) {
			return
		}
	}
	res, err := n.store.AdmitVerified(a)
	if err != nil {
		reason := "invalid"
		var facts_ []Fact
		if re, ok := err.(*records.RejectError); ok {
			reason = string(re.Reason)
			facts_ = facts("held", re.Held, "got", re.Got, "from", from.Short())
		}
		n.emit(Event{Kind: EvRejected, Peer: a.ID, Service: a.ServiceName, Reason: reason, Facts: facts_})
		return
	}
	n.applyAdmitted(res, from)
}

func (n *Node) verify(s announce.Signed) (*announce.Announcement, error) {
	if n.cfg.Verify != nil {
		return n.cfg.Verify(s)
	}
	return announce.Verify(s)
}

// applyAdmitted updates bookkeeping after the store changed.
func (n *Node) applyAdmitted(res records.Result, from announce.NodeID) {
	if !res.Outcome.Changed() {
		return
	}
	k, a := res.Key, res.Ann
	p := n.peer(k.ID)
	if res.Prev != nil || n.meta[k] != nil {
		n.dropMeta(k)
	}
	if res.Outcome != records.Withdrawn {
		first := res.Outcome == records.Added && p.records == 0 && p.LastConnectedE < 0 && !p.connected && k.ID != n.id
		p.fresh, p.freshE, p.freshWall, p.firstSight = true, n.elapsed, n.wall, first
		switch {
		case n.cfg.Variant.GoodOnlyByConnection:
		case first:
			p.LastGoodE = n.elapsed - n.cfg.LivenessWindow
		default:
			p.LastGoodE = n.elapsed
		}
	}
	switch res.Outcome {
	case records.Withdrawn:
		p.Withdrawn = true
		tm := &tombMeta{atE: n.elapsed, atWall: n.wall, fresh: true, freshE: n.elapsed, hash: hashOf(a.Signed)}
		n.tombs[k] = tm
		tm.ver = n.index(k)
		n.trimTombstones()
		if k.ID != n.id {
			n.emit(Event{Kind: EvWithdrawn, Peer: k.ID, Service: k.Service, Reason: "announced", Facts: facts("seqnum", a.Seqnum, "from", from.Short())})
		}
		if p.dialing {
			n.endDial(p)
			n.ready.CancelDials = append(n.ready.CancelDials, k.ID)
		}
	default:
		delete(n.tombs, k)
		n.meta[k] = &recMeta{source: from, hash: hashOf(a.Signed)}
		n.meta[k].ver = n.index(k)
		n.perSrc[from]++
		p.records++
		if p.records == 1 || p.Withdrawn {
			n.dialDirty = true
		}
		p.Withdrawn = false
		if locs := a.Locators(); len(locs) > 0 {
			p.Locators = locs
		}
		if k.ID != n.id {
			n.emit(Event{Kind: EvAccepted, Peer: k.ID, Service: k.Service, Reason: res.Outcome.String(),
				Facts: facts("seqnum", a.Seqnum, "from", from.Short())})
		}
	}
	n.ready.StateChanged = true
}

func (n *Node) dropMeta(k records.Key) {
	m, ok := n.meta[k]
	if !ok {
		return
	}
	delete(n.meta, k)
	n.unindex(k)
	if n.perSrc[m.source]--; n.perSrc[m.source] <= 0 {
		delete(n.perSrc, m.source)
	}
	if p, ok := n.peers[k.ID]; ok {
		p.records--
	}
}

// makeRoom applies R6 before a new key is added: the neighbour's share and
// the total are bounded. Records of live or recently connected servers are
// never evicted; when nothing else can go, the new record is refused.
func (n *Node) makeRoom(k records.Key, from announce.NodeID) bool {
	if n.cfg.Variant.NoCaps {
		return true
	}
	if n.perSrc[from] >= n.cfg.MaxPerSource {
		if !n.evict(from, "per-source-cap") {
			n.emit(Event{Kind: EvOverCap, Peer: k.ID, Service: k.Service, Reason: "per-source-cap",
				Facts: facts("from", from.Short(), "held_from_source", n.perSrc[from], "cap", n.cfg.MaxPerSource)})
			return false
		}
	}
	if n.store.Len() >= n.cfg.MaxRecords {
		if !n.evict("", "total-cap") {
			n.emit(Event{Kind: EvOverCap, Peer: k.ID, Service: k.Service, Reason: "total-cap",
				Facts: facts("held", n.store.Len(), "cap", n.cfg.MaxRecords)})
			return false
		}
	}
	return true
}

// evict removes one record that is not live and whose server was not
// connected within W: from source if given, else from the source holding
// the most. The one seen good longest ago goes first.
func (n *Node) evict(source announce.NodeID, why string) bool {
	var victim records.Key
	var best *peer
	bestCount := -1
	for k, m := range n.meta {
		if k.ID == n.id || (source != "" && m.source != source) || n.live(k.ID) {
			continue
		}
		p := n.peers[k.ID]
		if p.LastConnectedE >= 0 && n.elapsed-p.LastConnectedE < n.cfg.LivenessWindow {
			continue
		}
		c := n.perSrc[m.source]
		better := best == nil || c > bestCount ||
			(c == bestCount && (p.LastGoodE < best.LastGoodE || (p.LastGoodE == best.LastGoodE && keyLess(k, victim))))
		if better {
			victim, best, bestCount = k, p, c
		}
	}
	if best == nil {
		return false
	}
	src := n.meta[victim].source
	n.dropMeta(victim)
	n.store.Delete(victim)
	n.emit(Event{Kind: EvEvicted, Peer: victim.ID, Service: victim.Service, Reason: why,
		Facts: facts("source", src.Short(), "last_good_ago", (n.elapsed - best.LastGoodE).Round(time.Second))})
	n.gcPeer(victim.ID)
	return true
}

func keyLess(a, b records.Key) bool {
	return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Service, b.Service)) < 0
}

// gcPeer drops the history of a peer nothing refers to any more.
func (n *Node) gcPeer(id announce.NodeID) {
	p, ok := n.peers[id]
	if !ok || p.records > 0 || p.connected || p.dialing || p.bootstrap {
		return
	}
	for k := range n.tombs {
		if k.ID == id {
			return
		}
	}
	delete(n.peers, id)
}

// ---- forgetting (R4) ----

// healthPeer says whether a peer counts towards the node's health (R4): a
// node that dials servers counts servers; a server, which does not dial
// other servers, counts the nodes that connect to it.
func (n *Node) healthPeer(p *peer) bool {
	if p.ID == n.id {
		return false
	}
	if n.cfg.DialServers {
		return p.records > 0
	}
	return p.LastConnectedE >= 0 || p.connected
}

// Quorum returns Q, the number of connections the node needs before it
// forgets anything: clamp(ceil(QuorumFraction * R), QuorumMin, QuorumMax),
// where R counts the peers that count towards health (healthPeer) seen good
// within H/2.
func (n *Node) Quorum() int {
	r := 0
	for _, p := range n.peers {
		if n.healthPeer(p) && n.elapsed-p.LastGoodE < n.cfg.ForgetHorizon/2 {
			r++
		}
	}
	q := int(math.Ceil(n.cfg.QuorumFraction * float64(r)))
	return min(max(q, n.cfg.QuorumMin), n.cfg.QuorumMax)
}

// ConnectedServers counts connections to peers that count towards health.
func (n *Node) ConnectedServers() int {
	c := 0
	for _, id := range n.linkIDs {
		if n.healthPeer(n.peers[id]) {
			c++
		}
	}
	return c
}

func (n *Node) forget() {
	if n.cfg.Variant.Timestamp {
		n.forgetByTimestamp()
	}
	if n.cfg.Variant.NeverForget {
		return
	}
	var due []*peer
	for _, p := range n.peers {
		if p.ID != n.id && p.records > 0 && !p.connected && n.elapsed-p.LastGoodE >= n.cfg.ForgetHorizon {
			due = append(due, p)
		}
	}
	if len(due) == 0 {
		return
	}
	slices.SortFunc(due, func(a, b *peer) int { return cmp.Compare(a.ID, b.ID) })
	q, c := n.Quorum(), n.ConnectedServers()
	for _, p := range due {
		gone := (n.elapsed - p.LastGoodE).Round(time.Second)
		defer_ := ""
		switch {
		case n.cfg.Variant.ForgetWhenIsolated:
		case c < q:
			defer_ = "not-enough-connections"
		case n.wantsDialOrDialing(p) && !p.failedThisRun && !n.cfg.Variant.ForgetWithoutAttempt:
			defer_ = "not-tried-since-start"
		}
		if defer_ != "" {
			if p.deferred != defer_ {
				p.deferred = defer_
				n.emit(Event{Kind: EvForgetDeferred, Peer: p.ID, Reason: defer_,
					Facts: facts("gone_for", gone, "connected_servers", c, "quorum", q)})
			}
			continue
		}
		var seq int64
		for _, a := range n.recordsOf(p.ID) {
			seq = max(seq, a.Seqnum)
			k := records.Key{Service: a.ServiceName, ID: a.ID}
			n.dropMeta(k)
			if n.cfg.Variant.NoTombstones {
				n.store.Delete(k)
				continue
			}
			n.store.Forget(k, "gone")
			n.tombs[k] = &tombMeta{atE: n.elapsed, atWall: n.wall, hash: hashOf(a.Signed)}
		}
		n.trimTombstones()
		n.emit(Event{Kind: EvForgot, Peer: p.ID, Reason: "gone-past-horizon",
			Facts: facts("gone_for", gone, "horizon", n.cfg.ForgetHorizon, "connected_servers", c, "quorum", q, "failures", p.Failures, "seqnum", seq)})
		n.ready.StateChanged = true
		n.gcPeer(p.ID)
	}
}

// forgetByTimestamp is the seed's first proposal: delete records whose
// publisher's timestamp is older than H by this node's wall clock, once
// TimestampGrace has passed since start-up. No tombstone is kept.
func (n *Node) forgetByTimestamp() {
	if n.elapsed-n.startE < n.cfg.Variant.TimestampGrace {
		return
	}
	for _, a := range n.store.Records() {
		if a.ID == n.id {
			continue
		}
		v, _ := a.Body.Get(FieldTimestamp)
		ts, ok := v.Int64()
		if !ok {
			continue
		}
		age := n.wall.Sub(time.Unix(ts, 0))
		if age < n.cfg.ForgetHorizon {
			continue
		}
		k := records.Key{Service: a.ServiceName, ID: a.ID}
		n.dropMeta(k)
		n.store.Delete(k)
		n.emit(Event{Kind: EvForgot, Peer: a.ID, Service: a.ServiceName, Reason: "timestamp-expired",
			Facts: facts("age", age.Round(time.Second), "seqnum", a.Seqnum)})
		n.ready.StateChanged = true
		n.gcPeer(a.ID)
	}
}

func (n *Node) wantsDialOrDialing(p *peer) bool {
	return p.dialing || (len(p.Locators) > 0 && (p.bootstrap || n.cfg.DialServers))
}

func (n *Node) expireTombstones() {
	for _, t := range n.store.Tombstones() {
		tm := n.tombs[t.Key]
		if tm != nil && n.elapsed-tm.atE < n.cfg.TombstoneTTL {
			continue
		}
		n.dropTombstone(t.Key, "ttl")
	}
}

func (n *Node) dropTombstone(k records.Key, why string) {
	n.store.DropTombstone(k)
	delete(n.tombs, k)
	n.unindex(k)
	n.emit(Event{Kind: EvTombstoneExpired, Peer: k.ID, Service: k.Service, Reason: why})
	n.ready.StateChanged = true
	n.gcPeer(k.ID)
}

// trimTombstones keeps at most MaxTombstones, dropping the oldest.
func (n *Node) trimTombstones() {
	extra := len(n.tombs) - n.cfg.MaxTombstones
	if extra <= 0 {
		return
	}
	type aged struct {
		k  records.Key
		at time.Duration
	}
	var all []aged
	for k, tm := range n.tombs {
		all = append(all, aged{k, tm.atE})
	}
	slices.SortFunc(all, func(a, b aged) int {
		if c := cmp.Compare(a.at, b.at); c != 0 {
			return c
		}
		if keyLess(a.k, b.k) {
			return -1
		}
		return 1
	})
	for _, x := range all[:extra] {
		n.dropTombstone(x.k, "table-full")
	}
}
