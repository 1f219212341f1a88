package core

import (
	"fmt"
	"time"

	"grapevine/announce"
)

// Config holds every rule's parameters. DefaultConfig documents the
// defaults; TestConfig scales the durations down to seconds.
type Config struct {
	// TickInterval is how often the driver delivers a Tick. The elapsed-time
	// measure (R5) advances by at most MaxTickGap between two inputs, so a
	// suspend, a clock jump or the node's own downtime counts as at most
	// MaxTickGap. Default 1 s and 10 s.
	TickInterval time.Duration
	MaxTickGap   time.Duration
	// SetbackMemory (R5): how far behind the elapsed-time measure a clock
	// that was set back within a run is remembered to be. Until forward
	// steps of the clock beyond one tick interval have paid that back,
	// they do not count; so a clock stepped back and forth by up to this
	// much counts the real time between (ticks always count, the measure
	// never stalls), and one set back further counts each return as at
	// most MaxTickGap. 0 turns the memory off: a step back counts
	// 0 and is forgotten, and every forward step counts up to MaxTickGap.
	// Default 24 h.
	SetbackMemory time.Duration

	// SyncInterval is the anti-entropy round: each neighbour is asked for
	// the changes since its cursor this often. New records are pushed as
	// digests (to every neighbour within a tick) over reliable links, and a
	// link starts with a full round, so the round only bounds recovery from
	// a fetch deferred by a rate limit. Default 5 min (memberlist's
	// push/pull is 30 s; ours carries only changes, but idle rounds still
	// cost bytes on every link).
	SyncInterval time.Duration

	// PushFanout: after a change, digests are pushed at once to at most
	// this many neighbours that have not been sent it, chosen at random;
	// the others at the next tick (a neighbour that has the record by then
	// does not fetch it). 0 pushes to every neighbour at once. Default 8 (about log3
	// of 10,000 nodes).
	PushFanout int

	// GossipDegree D bounds the gossip overlay: a node gossips (pushes
	// third-party records, runs sync rounds) over at most D links it
	// dialled, plus the links whose other end chose it. Every other link
	// carries only its two ends' own records, with a sync round every
	// RefreshInterval. So a client connected to every server pays for D
	// gossip neighbours, not for every connection. 0: gossip over every
	// link. Default 8 (PushFanout; about log3 of 10,000 nodes).
	GossipDegree int

	// PlainRelayDelay holds a record that came over a plain link (its
	// server's own, straight from it) back from the gossip links for this
	// long, to the first tick after: the server's own pushes through the
	// overlay usually reach those neighbours first, so they do not fetch
	// it from a node linked to every server. Default 10 s.
	PlainRelayDelay time.Duration

	// LivenessWindow W (R1): a server is live while connected, or for W
	// after a new seqnum from it was first received in this run. Only live
	// servers' records are passed on. Default 72 h (three refresh periods).
	LivenessWindow time.Duration

	// FirstSightWindow: a server first heard of through gossip (not
	// connected, no earlier record) is passed on for this long only, and
	// counts as seen good W ago, not now. A first sighting proves the
	// server was alive once, not that it is now: this keeps newcomers from
	// extending a departed server's life. Default 1 h (pushes cross a grid
	// in seconds). Every node re-signs its records once, FirstSightWindow/2
	// after it starts (the confirming re-sign), so that nodes which took
	// its first record as a first sighting hold a fresh seqnum from it
	// before their window closes.
	FirstSightWindow time.Duration

	// FirstSightBudget: a node that dials servers passes on a server it
	// has not reached (first heard of from a neighbour) only for this many
	// such servers per neighbour per FirstSightWindow; the others it holds
	// and dials, and passes on once connected. Joins are rare, a flood of
	// fresh keys is not. Default 64.
	FirstSightBudget int

	// RefreshInterval (R2): a node re-signs its records with the next seqnum
	// this often even when nothing changed. Default 24 h.
	RefreshInterval time.Duration

	// DialServers: dial every known server (clients and relays). Servers
	// dial only Bootstrap. Default true.
	DialServers bool
	// MaxDialsInFlight K (R3). Default 10.
	MaxDialsInFlight int
	// The connect timeout for a server is srtt + 4*rttvar from its RTT
	// history, clamped to [DialTimeoutFloor, DialTimeoutCeiling];
	// DialTimeoutDefault without history. Defaults 2 s, 60 s, 20 s.
	DialTimeoutDefault time.Duration
	DialTimeoutFloor   time.Duration
	DialTimeoutCeiling time.Duration
	// After the n-th consecutive failure the next attempt waits
	// BackoffBase * 2^(n-1), at most BackoffMax, times a random factor in
	// [1-BackoffJitter, 1+BackoffJitter]. Defaults 5 s, 1 h, 0.25.
	BackoffBase   time.Duration
	BackoffMax    time.Duration
	BackoffJitter float64

	// ForgetHorizon H (R4): a server is forgotten when, by the elapsed-time
	// measure, nothing good was seen of it for H and the node is healthy.
	// Default 30 days.
	ForgetHorizon time.Duration
	// TombstoneTTL T: how long a forgotten key's tombstone refuses replays.
	// Default 60 days (2H: longer than any replay can circulate, since no
	// node relays a record it has not seen fresh within W < H).
	TombstoneTTL time.Duration
	// Quorum Q = clamp(ceil(QuorumFraction * R), QuorumMin, QuorumMax),
	// where R is the number of known servers seen good within H/2. The node
	// forgets only while connected to at least Q servers. Defaults 0.5, 1, 5.
	QuorumFraction float64
	QuorumMin      int
	QuorumMax      int

	// MaxRecords M (R6) bounds held records; MaxPerSource bounds those
	// first learnt through one neighbour. MaxTombstones bounds tombstones.
	// Defaults 4096, 1024, 4096.
	MaxRecords    int
	MaxPerSource  int
	MaxTombstones int
	// Each neighbour may deliver RecordRate records per second, in bursts
	// of RecordBurst (a token bucket). Defaults 50 and 500.
	RecordRate  float64
	RecordBurst int

	// Message bounds: items per digest, records per fetch. A fetch not
	// answered within FetchTimeout is asked of another neighbour.
	// Defaults 256, 64, 30 s.
	MaxDigestItems int
	MaxFetchItems  int
	FetchTimeout   time.Duration

	// MaxEvents bounds the explain events kept for the status page.
	// Default 256.
	MaxEvents int
	// NoRecentEvents keeps no events for RecentEvents: for a driver that
	// reads every event from Ready (the simulator), whose nodes would
	// otherwise each hold MaxEvents of them.
	NoRecentEvents bool

	// Verify checks a signed record. Nil means announce.Verify; the
	// simulator passes a memoizing verifier shared by all its nodes.
	Verify func(announce.Signed) (*announce.Announcement, error) `json:"-"`

	// MsgSize returns a message's encoded length: wire.Size, which the
	// core cannot import. The node counts bytes in and out by it and
	// bounds its digests by MaxMsgBytes. Required.
	MsgSize func(Msg) int `json:"-"`
	// ItemSize returns what one item adds to a digest's encoding:
	// wire.ItemSize. Nil: worked out with MsgSize, at an allocation an
	// item.
	ItemSize func(Item) int `json:"-"`

	// Membership, if set, admits only members' records (a closed grid,
	// docs/grid.md). Nil is an open grid.
	Membership Membership `json:"-"`

	// Variant switches rules off or swaps them for the alternatives the
	// simulator compares. The zero value is Grapevine's rules.
	Variant Variant
}

// Variant selects policy variants of the core. Each field removes or
// replaces one rule; tests use them to show that each rule matters, and
// the simulator to model the other designs.
type Variant struct {
	RelayAll           bool // R1 off: pass on every held record (Tahoe's behaviour)
	RelayConnectedOnly bool // R1 as the seed wrote it: only servers connected now
	RelayUnreached     bool // R1's first-sight budget off: a dialling node passes on every server it never reached
	NoRefresh          bool // R2 off: publish only at start and on change
	NoDialOrder        bool // R3 off: dial in ID order with no in-flight limit
	NeverForget        bool // R4 off: never forget (Tahoe)
	ForgetWhenIsolated bool // R4's conditions off: forget after H whatever the node's health
	WallClockElapsed   bool // R5 off: durations are raw differences of the local wall clock, across restarts too
	NoTombstones       bool // R4's tombstones off: forgetting leaves nothing behind
	NoCaps             bool // R6 off: no table caps, no rate limit
	IgnoreWithdrawals  bool // R7 off: withdrawals are dropped
	NoCounterRecovery  bool // the seqnum recovery rule off (Tahoe)

	// NoMonotonicClock: R5 reads only the wall clock, as on a host without
	// a monotonic clock (or under the daemon's --clock-offset-file): steps
	// of the clock within a run reach R5's rule. Otherwise the core measures
	// time within a run by the driver's monotonic reading (Go's time.Now
	// carries one; the simulator passes its own to StepMono).
	NoMonotonicClock bool
	// NoConfirmResign: R1's confirming re-sign off: a node's second seqnum
	// waits for its first refresh (R2).
	NoConfirmResign bool

	// The seed's other proposals, for the simulator's designs:
	// GoodOnlyByConnection: only a successful connection counts as seeing a
	// server (fresh seqnums do not); ForgetWithoutAttempt: R4 does not wait
	// for a failed attempt in this run; Timestamp: records carry the
	// publisher's wall clock and receivers delete those older than H by
	// their own wall clock, from TimestampGrace after start-up.
	GoodOnlyByConnection bool
	ForgetWithoutAttempt bool
	Timestamp            bool
	TimestampGrace       time.Duration
}

// FieldTimestamp carries the publisher's wall clock (unix seconds) in the
// Timestamp variant. Grapevine itself never reads another node's clock.
const FieldTimestamp = "grapevine-timestamp"

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		TickInterval:       time.Second,
		MaxTickGap:         10 * time.Second,
		SetbackMemory:      24 * time.Hour,
		SyncInterval:       5 * time.Minute,
		PushFanout:         8,
		GossipDegree:       8,
		PlainRelayDelay:    10 * time.Second,
		LivenessWindow:     72 * time.Hour,
		FirstSightWindow:   time.Hour,
		FirstSightBudget:   64,
		RefreshInterval:    24 * time.Hour,
		DialServers:        true,
		MaxDialsInFlight:   10,
		DialTimeoutDefault: 20 * time.Second,
		DialTimeoutFloor:   2 * time.Second,
		DialTimeoutCeiling: 60 * time.Second,
		BackoffBase:        5 * time.Second,
		BackoffMax:         time.Hour,
		BackoffJitter:      0.25,
		ForgetHorizon:      30 * 24 * time.Hour,
		TombstoneTTL:       60 * 24 * time.Hour,
		QuorumFraction:     0.5,
		QuorumMin:          1,
		QuorumMax:          5,
		MaxRecords:         4096,
		MaxPerSource:       1024,
		MaxTombstones:      4096,
		RecordRate:         50,
		RecordBurst:        500,
		MaxDigestItems:     256,
		MaxFetchItems:      64,
		FetchTimeout:       30 * time.Second,
		MaxEvents:          256,
	}
}

// TestConfig is DefaultConfig with days become seconds-scale durations, for
// scenario tests and local demos: W 30 s, refresh 10 s, H 2 min, T 4 min.
func TestConfig() Config {
	c := DefaultConfig()
	c.TickInterval = 100 * time.Millisecond
	c.MaxTickGap = time.Second
	c.SetbackMemory = 10 * time.Second
	c.SyncInterval = time.Second
	c.LivenessWindow = 30 * time.Second
	c.FirstSightWindow = 5 * time.Second
	c.RefreshInterval = 10 * time.Second
	c.DialTimeoutDefault = 2 * time.Second
	c.DialTimeoutFloor = 200 * time.Millisecond
	c.DialTimeoutCeiling = 5 * time.Second
	c.BackoffBase = 500 * time.Millisecond
	c.BackoffMax = 10 * time.Second
	c.ForgetHorizon = 2 * time.Minute
	c.TombstoneTTL = 4 * time.Minute
	c.FetchTimeout = 2 * time.Second
	c.PlainRelayDelay = time.Second
	return c
}

// Validate reports the first option that makes no sense.
func (c Config) Validate() error {
	pos := []struct {
		name string
		d    time.Duration
	}{
		{"TickInterval", c.TickInterval}, {"MaxTickGap", c.MaxTickGap}, {"SyncInterval", c.SyncInterval},
		{"LivenessWindow", c.LivenessWindow}, {"FirstSightWindow", c.FirstSightWindow}, {"RefreshInterval", c.RefreshInterval},
		{"DialTimeoutDefault", c.DialTimeoutDefault}, {"DialTimeoutFloor", c.DialTimeoutFloor},
		{"DialTimeoutCeiling", c.DialTimeoutCeiling}, {"BackoffBase", c.BackoffBase}, {"BackoffMax", c.BackoffMax},
		{"ForgetHorizon", c.ForgetHorizon}, {"TombstoneTTL", c.TombstoneTTL}, {"FetchTimeout", c.FetchTimeout},
	}
	for _, p := range pos {
		if p.d <= 0 {
			return fmt.Errorf("core config: %s must be positive, got %v", p.name, p.d)
		}
	}
	switch {
	case c.SetbackMemory < 0:
		return fmt.Errorf("core config: SetbackMemory must be >= 0, got %v", c.SetbackMemory)
	case c.PlainRelayDelay < 0:
		return fmt.Errorf("core config: PlainRelayDelay must be >= 0, got %v", c.PlainRelayDelay)
	case c.MaxTickGap < c.TickInterval:
		return fmt.Errorf("core config: MaxTickGap %v is below TickInterval %v", c.MaxTickGap, c.TickInterval)
	case c.DialTimeoutFloor > c.DialTimeoutCeiling:
		return fmt.Errorf("core config: DialTimeoutFloor %v above DialTimeoutCeiling %v", c.DialTimeoutFloor, c.DialTimeoutCeiling)
	case c.FirstSightWindow > c.LivenessWindow:
		return fmt.Errorf("core config: FirstSightWindow %v exceeds LivenessWindow %v", c.FirstSightWindow, c.LivenessWindow)
	case c.LivenessWindow < c.RefreshInterval:
		return fmt.Errorf("core config: LivenessWindow %v is shorter than RefreshInterval %v: live servers would flap", c.LivenessWindow, c.RefreshInterval)
	case c.ForgetHorizon <= c.LivenessWindow:
		return fmt.Errorf("core config: ForgetHorizon %v must exceed LivenessWindow %v", c.ForgetHorizon, c.LivenessWindow)
	case c.TombstoneTTL < c.ForgetHorizon:
		return fmt.Errorf("core config: TombstoneTTL %v is shorter than ForgetHorizon %v", c.TombstoneTTL, c.ForgetHorizon)
	case c.MaxDialsInFlight < 1, c.MaxRecords < 1, c.MaxPerSource < 1, c.MaxTombstones < 1,
		c.RecordBurst < 1, c.MaxDigestItems < 1, c.MaxFetchItems < 1, c.MaxEvents < 1, c.QuorumMin < 1:
		return fmt.Errorf("core config: counts and limits must be at least 1")
	case c.PushFanout < 0:
		return fmt.Errorf("core config: PushFanout must be >= 0")
	case c.FirstSightBudget < 0:
		return fmt.Errorf("core config: FirstSightBudget must be >= 0")
	case c.QuorumMax < c.QuorumMin:
		return fmt.Errorf("core config: QuorumMax %d below QuorumMin %d", c.QuorumMax, c.QuorumMin)
	case c.QuorumFraction < 0 || c.QuorumFraction > 1:
		return fmt.Errorf("core config: QuorumFraction %v outside [0, 1]", c.QuorumFraction)
	case c.BackoffJitter < 0 || c.BackoffJitter >= 1:
		return fmt.Errorf("core config: BackoffJitter %v outside [0, 1)", c.BackoffJitter)
	case c.RecordRate <= 0:
		return fmt.Errorf("core config: RecordRate must be positive")
	}
	return nil
}
