package core

import (
	"time"

	"grapevine/announce"
)

// Interval is a span of the elapsed-time measure during which a peer was
// connected.
type Interval struct {
	Start, End Elapsed
}

// maxIntervals bounds the connection history kept per peer; older
// intervals are merged.
const maxIntervals = 64

// History is what a node remembers of another node, by its own clock only:
// Elapsed times are on the elapsed-time measure (R5); ...Wall are the local
// clock when it happened, for display.
type History struct {
	ID       announce.NodeID
	Locators []string

	FirstHeard     Elapsed
	FirstHeardWall time.Time

	// LastGood is the last time a connection succeeded or a new seqnum
	// arrived: the clock R4 forgets by.
	LastGood Elapsed

	LastConnected     Elapsed // last time it was connected (up to now if it is); -1: never
	LastConnectedWall time.Time
	LastAttempt       Elapsed // -1: never
	LastAttemptWall   time.Time
	LastAttemptFailed bool
	Withdrawn         bool // it announced its departure
	LastError         string
	Failures          int // consecutive

	Intervals []Interval // connected spans, compacted

	SRTT, RTTVar time.Duration // 0: no samples
	BytesIn      uint64
	BytesOut     uint64
}

// peer is History plus what lives only while the process runs. A server
// holds one per client, so it is kept small: wall times it only shows
// are Unix nanoseconds, counters and flags packed.
type peer struct {
	History
	link           *link // nil: not connected
	connectedSince Elapsed
	dialDeadline   Elapsed
	nextDial       Elapsed
	freshAt        Elapsed   // when fresh
	lastRecv       Elapsed   // last message from it in this run; see received
	lastRecvWall   int64     // the local clock then, Unix ns
	keys           *peerKeys // nil: none
	records        int32     // held records of this ID
	deferred       deferral  // last R4 deferral reported
	// Flags together, so they pack.
	connected     bool
	dialing       bool
	failedThisRun bool
	fresh         bool // a new seqnum arrived in this run
	firstSight    bool // ...and it was only the first record heard of it
	vouched       bool // a dialling node passes it on before reaching it (FirstSightBudget)
	bootstrap     bool
	hostedHere    bool // a local publisher of it is connected (hosting)
	received      bool // a message from it arrived in this run
}

// peerKeys are the services of a peer's held records (meta) and of its
// keys in the change index (verOf), sorted: lookups by ID scan no table.
type peerKeys struct {
	held, indexed []string
}

func (p *peer) held() []string {
	if p.keys == nil {
		return nil
	}
	return p.keys.held
}

func (p *peer) indexed() []string {
	if p.keys == nil {
		return nil
	}
	return p.keys.indexed
}

func (p *peer) editKeys() *peerKeys {
	if p.keys == nil {
		p.keys = &peerKeys{}
	}
	return p.keys
}

func newPeer(id announce.NodeID, e Elapsed, wall time.Time) *peer {
	return &peer{History: History{ID: id, FirstHeard: e, FirstHeardWall: wall, LastGood: e, LastConnected: -1, LastAttempt: -1}}
}

func (p *peer) addRTT(r time.Duration) {
	if p.SRTT == 0 {
		p.SRTT, p.RTTVar = r, r/2
		return
	}
	d := p.SRTT - r
	if d < 0 {
		d = -d
	}
	p.RTTVar = (3*p.RTTVar + d) / 4
	p.SRTT = (7*p.SRTT + r) / 8
}

func (p *peer) closeInterval(e Elapsed) {
	p.Intervals = append(p.Intervals, Interval{p.connectedSince, e})
	if len(p.Intervals) > maxIntervals {
		p.Intervals[1].Start = p.Intervals[0].Start
		p.Intervals = p.Intervals[1:]
	}
}

// Uptime returns the fraction of the window ending at now during which
// the peer was connected, counting only time since it was first heard of.
// ok is false when there is no time to measure.
func (h *History) Uptime(now Elapsed, window time.Duration, connectedSince Elapsed, connected bool) (float64, bool) {
	start := max(now.Add(-window), h.FirstHeard)
	if !start.Before(now) {
		return 0, false
	}
	var up time.Duration
	add := func(a, b Elapsed) {
		a, b = max(a, start), min(b, now)
		if b.After(a) {
			up += b.Sub(a)
		}
	}
	for _, iv := range h.Intervals {
		add(iv.Start, iv.End)
	}
	if connected {
		add(connectedSince, now)
	}
	return float64(up) / float64(now.Sub(start)), true
}
