package core

import (
	"fmt"
	"strings"
	"time"

	"grapevine/announce"
)

// EventKind classifies an explain event.
type EventKind string

// Every decision to accept, reject, forget, skip or limit is an event.
const (
	EvPublished        EventKind = "published"         // own records signed with a new seqnum
	EvCounterRecovered EventKind = "counter-recovered" // own record with a higher seqnum heard: jumped past it
	EvAccepted         EventKind = "accepted"          // a new or newer record
	EvRejected         EventKind = "rejected"          // invalid or not allowed to replace (Reason)
	EvWithdrawn        EventKind = "withdrawn"         // a server announced its departure
	EvForgot           EventKind = "forgot"            // R4: deleted, tombstone kept
	EvForgetDeferred   EventKind = "forget-deferred"   // R4 would forget but a condition does not hold
	EvTombstoneExpired EventKind = "tombstone-expired" // T passed, or the tombstone table was full
	EvEvicted          EventKind = "evicted"           // R6: dropped to make room
	EvOverCap          EventKind = "over-cap"          // R6: refused, no room
	EvRateLimited      EventKind = "rate-limited"      // R6: a neighbour sent faster than its bucket
	EvUnsolicited      EventKind = "unsolicited"       // records nobody asked for
	EvDial             EventKind = "dial"              // R3: a dial started
	EvDialFailed       EventKind = "dial-failed"
	EvConnected        EventKind = "connected"
	EvDisconnected     EventKind = "disconnected"
	EvClock            EventKind = "clock"    // R5: the clock went back or jumped; elapsed time clamped
	EvOverlay          EventKind = "overlay"  // a link became a gossip link
	EvHosted           EventKind = "hosted"   // a server is kept live by its host (hosting)
	EvUnhosted         EventKind = "unhosted" // ...no longer
)

// Fact is one observation a decision used.
type Fact struct {
	Name, Value string
}

// Event explains one decision. Reason is a stable machine-readable word.
type Event struct {
	Seq     uint64
	Elapsed Elapsed   // the node's elapsed-time measure (R5)
	Wall    time.Time // the local clock, for display only
	Kind    EventKind
	Peer    announce.NodeID
	Service string
	Reason  string
	Facts   []Fact
}

func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", e.Kind)
	if e.Peer != "" {
		fmt.Fprintf(&b, " %s", e.Peer.Short())
	}
	if e.Service != "" {
		fmt.Fprintf(&b, "/%s", e.Service)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " reason=%s", e.Reason)
	}
	for _, f := range e.Facts {
		fmt.Fprintf(&b, " %s=%s", f.Name, f.Value)
	}
	return b.String()
}

// Fact returns the value of a fact, if present.
func (e Event) Fact(name string) (string, bool) {
	for _, f := range e.Facts {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

func facts(kv ...any) []Fact {
	out := make([]Fact, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, Fact{fmt.Sprint(kv[i]), fmt.Sprint(kv[i+1])})
	}
	return out
}
