package core

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"time"
	"unsafe"

	"grapevine/announce"
	"grapevine/records"
)

// Identity is who the node is and what it announces.
type Identity struct {
	Key       announce.PrivateKey
	Services  []announce.Template // one record per service; none for a pure client
	Bootstrap []announce.Locator  // dialled at start and kept connected
	// Nickname and Locators are used for the record a node that announces
	// no service signs while it hosts servers (ServiceHost).
	Nickname string
	Locators []string
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

// Forget: the operator forgets a server now (reason "operator"), with
// tombstones that refuse its current records; a newer seqnum from it is
// accepted again.
type Forget struct {
	ID announce.NodeID
}

// Import: records brought in by the operator (from a file, another node's
// export). Each is verified and admitted as if fetched from a neighbour,
// with no source and no rate limit; a server first heard of this way is a
// first sighting, live for FirstSightWindow only.
type Import struct {
	Recs []announce.Signed
}

func (Tick) isInput()         {}
func (Connected) isInput()    {}
func (Disconnected) isInput() {}
func (DialFailed) isInput()   {}
func (Received) isInput()     {}
func (RTTSample) isInput()    {}
func (SetServices) isInput()  {}
func (Leave) isInput()        {}
func (Import) isInput()       {}
func (Forget) isInput()       {}

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
//  1. if Counter > 0, persist it, and once it is on disk step
//     Persisted{Counter}: own records carrying it stay in the core until
//     then, so a driver whose write failed just does not acknowledge;
//  2. if StateChanged, persist State() (or the parts it tracks);
//  3. send Messages, cancel CancelDials, start Dials;
//  4. log or show Events.
//
// Only step 1 must precede step 3 for safety: a record of another node
// is signed by it and comes back from the network if a crash loses it.
// So a driver may batch the state writes of gossip (the daemon writes
// them at most once a second) and write at once only what it
// acknowledges to an operator.
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
	// indexed: it was given a place in the change index (not held back).
	indexed bool
	// fromSigner: it came from its signer over the link still up to it.
	fromSigner bool
}

// tombMeta is the bookkeeping for a tombstone.
type tombMeta struct {
	at      Elapsed
	atWall  time.Time
	ver     uint64 // withdrawals are relayed: their place in the index
	freshAt Elapsed
	fresh   bool // a withdrawal received or made in this run
	hash    uint64
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
	deadline Elapsed
}

// link is the state of one connection.
type link struct {
	id         announce.NodeID
	p          *peer
	inbound    bool
	mine       bool // this node gossips over it (chosen among links it dialled)
	theirs     bool // the other end gossips over it (its SyncReq said so)
	theirEpoch uint64
	cursor     uint64 // their index, seen up to
	sentTo     uint64 // our index: what the neighbour's cursor should be
	scanned    uint64 // our index: scanned for this neighbour up to
	lastSync   Elapsed
	tokens     float64
	tokensAt   Elapsed
	pending    int   // records asked of this link and not yet answered
	asked      []int // sizes of the unanswered fetches, oldest first
	// First sightings of unreached servers this link may still vouch for
	// (FirstSightBudget), and whether running out was reported.
	vouchTokens float64
	vouchAt     Elapsed
	vouchSpent  bool
	closed      bool
	inGlinks    bool
	swapIn      bool        // drawn to replace a gossip link after its opening round
	syncStamp   uint32      // bumped at each round (syncQueue)
	heard       *heardTable // gossip links only: what the other end announced
}

// Node is the protocol state machine. It is single-threaded and does no
// I/O: Step applies an input at a local time, Ready returns what to do.
type Node struct {
	syncRounds uint64
	lazyDue    bool // the next pushDigests serves every neighbour behind
	mineLinks  int  // links this node chose to gossip over (overlay.go)
	// What plain links may need since the last push: own records changed,
	// or records of these peers (overlay.go).
	ownChanged bool
	plainDirty []announce.NodeID // unsorted, may repeat

	cfg  Config
	key  announce.PrivateKey
	id   announce.NodeID
	svcs []announce.Template
	nick string
	locs []string
	rng  *rand.Rand

	store     *records.Store
	meta      map[records.Key]*recMeta
	tombs     map[records.Key]*tombMeta
	peers     map[announce.NodeID]*peer
	linkList  []*link // sorted by ID
	fetching  map[records.Key]*fetchState
	fetchPeak int // the most entries fetching held since it was made
	perSrc    map[announce.NodeID]int
	// away holds every peer not connected that has records or is a
	// bootstrap (and maybe others: it is pruned as it is read), so dialing
	// and forgetting look at those, not at every peer.
	away map[announce.NodeID]struct{}
	// glinks are the links gossips() is true of, sorted by ID; outLinks
	// counts the links this node dialled.
	glinks    []*link
	outLinks  int
	plainHeld []plainHeld // held back from the index (relayLater), oldest first
	// Anti-entropy rounds due, oldest first: over the links it syncs
	// (SyncInterval) and over the others (RefreshInterval).
	syncQ, plainSyncQ syncQueue

	// Hosting (host.go): host -> servers its held records list, and back.
	hostsOf  map[announce.NodeID][]announce.NodeID
	hostedBy map[announce.NodeID]map[announce.NodeID]struct{}

	counter     int64
	durable     int64                    // the counter acknowledged as on disk (persist.go)
	heldOwn     map[records.Key]struct{} // own keys held out of the index until durable
	published   bool
	lastPublish Elapsed

	epoch     uint64
	ver       uint64
	pushedVer uint64
	log       []logEntry
	verOf     map[records.Key]uint64
	oneSvc    map[string][]string // shared lists of one service (addSvc)
	// emptyDigest is a digest's size without items, which its fields'
	// values do not change (fixed-width in wire).
	emptyDigest int
	// Buffers reused from one push to the next (fillDigest, pushDigests).
	itemBuf             []Item
	behindBuf, plainBuf []*link

	elapsed    Elapsed
	savedWall  time.Time
	started    Elapsed
	lastNow    time.Time
	wall       time.Time
	inflight   int
	dialing    map[announce.NodeID]bool
	bootIDs    []announce.NodeID
	dialDirty  bool    // a slot or a candidate may be free: scheduleDials looks
	dialRescan bool    // a candidate may have been added: dialQ is stale
	dialQ      []*peer // sorted candidates not yet dialled (scheduleDials)
	nextDial   Elapsed
	lastForget Elapsed
	leaving    bool

	// R5 within a run: the driver's last monotonic reading (StepMono), how
	// far the clock is behind the furthest it had gone (setbacks not yet
	// taken off a forward step, at most SetbackMemory), and the elapsed
	// time at the last Tick.
	lastMono   time.Duration
	lastMonoOK bool
	behind     time.Duration
	lastTick   Elapsed
	// R1: the confirming re-sign, FirstSightWindow/2 after start, is due.
	confirmDue bool

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
	if cfg.MsgSize == nil {
		return nil, errors.New("core: Config.MsgSize is nil (drivers pass wire.Size)")
	}
	n := &Node{
		cfg:      cfg,
		key:      id.Key,
		id:       id.Key.ID(),
		svcs:     slices.Clone(id.Services),
		nick:     id.Nickname,
		locs:     slices.Clone(id.Locators),
		rng:      rng,
		store:    records.New(),
		meta:     map[records.Key]*recMeta{},
		tombs:    map[records.Key]*tombMeta{},
		peers:    map[announce.NodeID]*peer{},
		fetching: map[records.Key]*fetchState{},
		perSrc:   map[announce.NodeID]int{},
		away:     map[announce.NodeID]struct{}{},
		hostsOf:  map[announce.NodeID][]announce.NodeID{},
		hostedBy: map[announce.NodeID]map[announce.NodeID]struct{}{},
		verOf:    map[records.Key]uint64{},
		oneSvc:   map[string][]string{},
		dialing:  map[announce.NodeID]bool{},
		epoch:    rng.Uint64() | 1,
	}
	n.emptyDigest = cfg.MsgSize(Digest{})
	if n.cfg.ItemSize == nil {
		n.cfg.ItemSize = itemSizeByMsgSize(cfg.MsgSize)
	}
	if err := n.restore(st); err != nil {
		return nil, err
	}
	n.confirmDue = true
	for _, l := range id.Bootstrap {
		if l.ID == n.id {
			continue
		}
		p := n.peer(l.ID)
		if !p.bootstrap {
			n.bootIDs = append(n.bootIDs, l.ID)
		}
		p.bootstrap = true
		n.away[l.ID] = struct{}{}
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

// Wall returns the local clock at the last input: the moment Elapsed
// describes.
func (n *Node) Wall() time.Time { return n.wall }

// Elapsed returns the elapsed-time measure (R5).
func (n *Node) Elapsed() Elapsed { return n.elapsed }

// Counter returns the last seqnum used.
func (n *Node) Counter() int64 { return n.counter }

// Step applies one input at local time now. Time within a run is
// measured by now's monotonic reading if it has one (time.Now's does;
// see Variant.NoMonotonicClock), else by its wall clock.
func (n *Node) Step(now time.Time, in Input) { n.step(now, 0, false, in) }

// StepMono is Step for a driver that keeps its own monotonic clock: now is
// the local wall clock (what the node shows, signs and saves), mono a
// reading of a clock that nobody sets, whose differences within one run
// are the real time passed; its zero is arbitrary. The simulator uses it
// to give the core what time.Now gives the daemon.
func (n *Node) StepMono(now time.Time, mono time.Duration, in Input) { n.step(now, mono, true, in) }

func (n *Node) step(now time.Time, mono time.Duration, monoOK bool, in Input) {
	_, tick := in.(Tick)
	n.advance(now, mono, monoOK, tick)
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
	case Import:
		for _, r := range in.Recs {
			n.admit(r, "")
		}
	case Forget:
		n.forgetNow(in.ID)
	case Publish:
		n.onPublish(in.Rec, in.NotServer)
	case Unpublished:
		n.onUnpublished(in.ID)
	case Persisted:
		n.onPersisted(in.Counter)
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

// advance moves the elapsed-time measure (R5) to local time now: by the
// time passed since the last input, measured by the monotonic reading
// when the driver gives one (mono if monoOK, else now's own), never
// backwards and never more than MaxTickGap at once, so clock jumps,
// suspends and the node's own downtime do not count against anyone. A
// wall clock that was set back is remembered (up to SetbackMemory) and
// taken off its later forward steps (see count), so a clock stepped back
// and forth makes the measure run neither fast nor slow.
func (n *Node) advance(now time.Time, mono time.Duration, monoOK, tick bool) {
	if n.cfg.Variant.NoMonotonicClock || n.cfg.Variant.WallClockElapsed {
		now, monoOK = now.Round(0), false // Round(0) drops Go's monotonic reading
	}
	n.wall = now
	prev, prevMono, prevOK := n.lastNow, n.lastMono, n.lastMonoOK
	n.lastNow, n.lastMono, n.lastMonoOK = now, mono, monoOK
	if prev.IsZero() {
		if n.cfg.Variant.WallClockElapsed && !n.savedWall.IsZero() {
			n.elapsed = n.elapsed.Add(now.Sub(n.savedWall)) // downtime counts, as does any jump
		}
		n.lastTick = n.elapsed
		return
	}
	var d time.Duration
	if monoOK && prevOK {
		d = mono - prevMono
	} else {
		d = now.Sub(prev) // by Go's monotonic readings if both carry one
	}
	if n.cfg.Variant.WallClockElapsed {
		n.elapsed = n.elapsed.Add(d)
	} else {
		n.elapsed = n.elapsed.Add(n.count(d))
	}
	if tick {
		n.lastTick = n.elapsed
	}
}

// count is what a step of d of the local clock adds to the elapsed-time
// measure (R5). The driver delivers a Tick every TickInterval by a clock
// nobody sets, so between two ticks about TickInterval passes; room is
// what is left of it since the last Tick. A step forward counts as it
// is, up to MaxTickGap (a late tick, or a jump or suspend that counts
// only that much). A step back counts room, and the clock now owes the
// measure the difference (n.behind, remembered up to SetbackMemory): while
// it does, the part of a forward step beyond room pays that back first.
// So a clock stepped back and forth counts the real time between, not
// more, and ticks always count, so the measure never stalls either.
// SetbackMemory 0 turns the memory off: a step back counts 0 and is
// forgotten.
func (n *Node) count(d time.Duration) time.Duration {
	gap, memory := n.cfg.MaxTickGap, n.cfg.SetbackMemory
	room := max(0, n.cfg.TickInterval-n.elapsed.Sub(n.lastTick))
	if d < 0 {
		counted := room
		if memory == 0 {
			counted = 0
		}
		n.behind = min(n.behind+counted-d, memory)
		n.emit(Event{Kind: EvClock, Reason: "backwards", Facts: facts("by", -d, "counted", counted, "behind", n.behind)})
		return counted
	}
	if n.behind > 0 && d > room {
		paid := min(n.behind, d-room)
		n.behind -= paid
		if paid >= gap || n.behind == 0 {
			n.emit(Event{Kind: EvClock, Reason: "forward-after-backwards",
				Facts: facts("by", d, "taken_off", paid, "counted", min(d-paid, gap), "behind", n.behind)})
		}
		d -= paid
	}
	if d > gap {
		if d > 10*gap {
			n.emit(Event{Kind: EvClock, Reason: "jump-or-suspend", Facts: facts("by", d, "counted", gap)})
		}
		d = gap
	}
	return d
}

func (n *Node) emit(e Event) {
	n.evSeq++
	e.Seq, e.Elapsed, e.Wall = n.evSeq, n.elapsed, n.wall
	if len(n.ready.Events) < 4*n.cfg.MaxEvents {
		n.ready.Events = append(n.ready.Events, e)
	}
	if n.cfg.NoRecentEvents {
		return
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

// fetchDone gives back the memory of a fetch table that grew (at
// start-up a client fetches every server's records) once it is empty: a
// map does not shrink, and walking it costs its size.
func (n *Node) fetchDone() {
	if len(n.fetching) == 0 && n.fetchPeak > 64 {
		n.fetching, n.fetchPeak = map[records.Key]*fetchState{}, 0
	}
}

// linkOf returns the link to id; nil: not connected.
func (n *Node) linkOf(id announce.NodeID) *link {
	if p := n.peers[id]; p != nil {
		return p.link
	}
	return nil
}

func hashOf(s announce.Signed) uint64 {
	// The signed bytes are read in place, not copied: Sum256 neither
	// keeps nor changes them.
	h := sha256.Sum256(unsafe.Slice(unsafe.StringData(s.Msg), len(s.Msg)))
	return binary.BigEndian.Uint64(h[:8])
}

// index gives key the next version in the change index, unless it is an
// own key not yet durable (holdBack).
func (n *Node) index(k records.Key) uint64 {
	if n.holdBack(k) {
		return 0
	}
	n.ver++
	if _, ok := n.verOf[k]; !ok {
		p := n.peer(k.ID)
		p.editKeys().indexed = n.addSvc(p.indexed(), k.Service)
	}
	n.verOf[k] = n.ver
	n.notePlain(k.ID)
	n.log = append(n.log, logEntry{n.ver, k})
	if len(n.log) > 64 && 2*len(n.log) > 3*len(n.verOf) {
		// Into a fresh array a little over the live size: memory stays
		// within about 1.6 entries per key, at about 3 lookups per index.
		live := make([]logEntry, 0, len(n.verOf)+len(n.verOf)/8+16)
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

func (n *Node) unindex(k records.Key) {
	if _, ok := n.verOf[k]; !ok {
		return
	}
	delete(n.verOf, k)
	if p, ok := n.peers[k.ID]; ok {
		p.editKeys().indexed = dropSvc(p.indexed(), k.Service)
	}
}

// maxSharedSvcs bounds the service names addSvc shares lists for.
const maxSharedSvcs = 64

// addSvc adds svc to a sorted list of services. A list of one service
// is shared (most peers hold one record): nothing writes into it, since
// an insert into it reallocates and dropSvc empties it by returning nil.
func (n *Node) addSvc(svcs []string, svc string) []string {
	i, found := slices.BinarySearch(svcs, svc)
	if found {
		return svcs
	}
	if len(svcs) == 0 {
		one, ok := n.oneSvc[svc]
		if !ok {
			one = []string{svc}[:1:1]
			if len(n.oneSvc) < maxSharedSvcs {
				n.oneSvc[svc] = one
			}
		}
		return one
	}
	return slices.Insert(svcs[:len(svcs):len(svcs)], i, svc)
}

func dropSvc(svcs []string, svc string) []string {
	i, found := slices.BinarySearch(svcs, svc)
	switch {
	case !found:
		return svcs
	case len(svcs) == 1:
		return nil
	}
	return slices.Delete(slices.Clone(svcs), i, i+1)
}

// setMeta records a held record's bookkeeping.
func (n *Node) setMeta(k records.Key, m *recMeta) {
	if _, ok := n.meta[k]; !ok {
		p := n.peer(k.ID)
		p.editKeys().held = n.addSvc(p.held(), k.Service)
	}
	n.meta[k] = m
}

// live reports whether a server is live to this node (R1): connected now,
// or a new seqnum from it arrived within W in this run. A node that dials
// servers passes on a server it never reached only if it vouched for it at
// first sight, which each neighbour may ask of it FirstSightBudget times
// per FirstSightWindow: a flood of fresh keys with unreachable addresses
// mostly stops at the first dialling node, while joins spread at once.
func (n *Node) live(id announce.NodeID) bool { return n.liveness(id, true) }

// liveDirect is live without counting hosting: what a host must be for
// its vouching to count.
func (n *Node) liveDirect(id announce.NodeID) bool { return n.liveness(id, false) }

func (n *Node) liveness(id announce.NodeID, hosting bool) bool {
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
	if p.connected || hosting && (p.hostedHere || n.liveViaHost(id)) {
		return true
	}
	return n.liveBySeqnum(p)
}

func (n *Node) liveBySeqnum(p *peer) bool {
	if n.cfg.DialServers && !n.cfg.Variant.RelayUnreached && p.LastConnected < 0 && !p.vouched {
		return false
	}
	window := n.cfg.LivenessWindow
	if p.firstSight {
		window = n.cfg.FirstSightWindow
	}
	return p.fresh && n.elapsed.Sub(p.freshAt) < window
}

func (n *Node) publish(why string) {
	n.published = true
	n.lastPublish = n.elapsed
	n.counter++
	n.ready.Counter = n.counter
	hosts, hosting := n.hostsField()
	svcs := n.templates()
	refused := 0
	for _, t := range svcs {
		if hosting {
			t.Service.Fields = append(slices.Clone(t.Service.Fields), hosts)
		}
		if n.cfg.Variant.Timestamp {
			t.Service.Fields = append(slices.Clone(t.Service.Fields), announce.Member{Key: FieldTimestamp, Value: announce.Int(n.wall.Unix())})
		}
		if n.admitOwn(announce.Sign(n.key, announce.Build(n.key, t, n.counter))) != nil {
			refused++
		}
	}
	n.emit(Event{Kind: EvPublished, Peer: n.id, Reason: why, Facts: publishedFacts(n.counter, len(svcs), refused)})
}

func publishedFacts(seqnum int64, services, refused int) []Fact {
	if refused == 0 {
		return facts("seqnum", seqnum, "services", services)
	}
	return facts("seqnum", seqnum, "services", services, "refused", refused)
}

// admitOwn stores a record the node just signed. It fails on a template
// that makes no valid record (Reason own-record-invalid) or a seqnum the
// store refuses (own-record-refused; only a counter at its int64 limit
// does that): each is an EvRejected event, so the status page and the
// log say why a service is not announced.
func (n *Node) admitOwn(s announce.Signed) error {
	a, err := announce.ParseUnverified(s)
	if err != nil {
		why := "invalid"
		if ae, ok := err.(*announce.Error); ok {
			why = string(ae.Reason)
		}
		n.emit(Event{Kind: EvRejected, Peer: n.id, Reason: "own-record-invalid", Facts: facts("why", why, "error", err)})
		return err
	}
	res, err := n.store.AdmitVerified(a)
	if err != nil {
		why := "invalid"
		if re, ok := err.(*records.RejectError); ok {
			why = string(re.Reason)
		}
		n.emit(Event{Kind: EvRejected, Peer: n.id, Service: a.ServiceName, Reason: "own-record-refused",
			Facts: facts("why", why, "seqnum", a.Seqnum, "error", err)})
		return err
	}
	n.applyAdmitted(res, n.id)
	if res.Outcome.Changed() {
		n.learnMembership(a)
	}
	return nil
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
		if a.ID == n.id && !slices.ContainsFunc(n.templates(), func(t announce.Template) bool { return t.Service.Name == a.ServiceName }) {
			gone = append(gone, a.ServiceName)
		}
	}
	if len(gone) == 0 {
		return
	}
	n.counter++
	n.ready.Counter = n.counter
	refused := 0
	for _, svc := range gone {
		t := announce.Template{Service: announce.Service{Name: svc}, Withdrawn: true}
		if n.admitOwn(announce.Sign(n.key, announce.Build(n.key, t, n.counter))) != nil {
			refused++
		}
	}
	n.emit(Event{Kind: EvPublished, Peer: n.id, Reason: "withdrawn", Facts: publishedFacts(n.counter, len(gone), refused)})
}

// observeOwn applies the counter recovery rule to a record of our own key
// heard from a neighbour.
func (n *Node) observeOwn(a *announce.Announcement, from announce.NodeID) {
	var ours announce.Signed
	k := records.Key{Service: a.ServiceName, ID: n.id}
	if h, ok := n.store.Get(k); ok {
		ours = h.Signed
	} else if t, ok := n.store.Tombstone(k); ok {
		ours = t.Last // withdrawn: its withdrawal is what it signs now
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
			_ = n.admitOwn(announce.Sign(n.key, announce.Build(n.key, t, n.counter))) // explained by its event
		}
	}
}

func (n *Node) tick() {
	if !n.leaving && !n.cfg.Variant.NoRefresh && n.elapsed.Sub(n.lastPublish) >= n.cfg.RefreshInterval {
		n.publish("refresh")
	}
	n.confirm()
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
	n.fetchDone()
	n.indexHeld()
	n.lazyDue = true
	// Anti-entropy rounds.
	n.chooseNeighbours()
	for _, l := range n.dueSyncs() {
		n.sendSyncReq(l)
	}
	if n.elapsed.Sub(n.lastForget) >= n.forgetCheckInterval() {
		n.lastForget = n.elapsed
		n.forget()
		n.expireTombstones()
	}
}

// confirm makes the confirming re-sign of R1 (first sightings): once,
// FirstSightWindow/2 after start, the node re-signs its records, so that
// every node that took its first record of this run as a first sighting
// (passed on for FirstSightWindow only) holds a fresh seqnum from it,
// live for W, before that window closes. A server that has just joined
// thus stays passed on by the servers that heard of it, and reaches nodes
// that arrive later (servers dial no servers) within a sync, not at its
// first refresh a day later. The seqnum is the node's own proof of life:
// a departed server signs none, so this relays no zombie.
func (n *Node) confirm() {
	if !n.confirmDue || n.elapsed.Sub(n.started) < n.cfg.FirstSightWindow/2 {
		return
	}
	n.confirmDue = false
	v := n.cfg.Variant
	if n.leaving || v.NoRefresh || v.NoConfirmResign || len(n.templates()) == 0 {
		return
	}
	n.publish("confirm")
}

// forgetCheckInterval is H/1000: 43 minutes for H = 30 days, a precision
// of 0.1% of the horizon.
func (n *Node) forgetCheckInterval() time.Duration {
	return n.cfg.ForgetHorizon / 1000
}

func linkCmp(l *link, id announce.NodeID) int { return cmp.Compare(l.id, id) }

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
