package core

// Forgetting (R4) and tombstones.

import (
	"cmp"
	"math"
	"slices"
	"time"

	"grapevine/announce"
	"grapevine/records"
)

// healthPeer says whether a peer counts towards the node's health (R4): a
// node that dials servers counts servers; a server, which does not dial
// other servers, counts the nodes that connect to it.
func (n *Node) healthPeer(p *peer) bool {
	if p.ID == n.id {
		return false
	}
	if n.cfg.DialServers {
		return p.records > 0 && !n.hosted(p)
	}
	return p.LastConnected >= 0 || p.connected
}

// Quorum returns Q, the number of connections the node needs before it
// forgets anything: clamp(ceil(QuorumFraction * R), QuorumMin, QuorumMax),
// where R counts the peers that count towards health (healthPeer) seen good
// within H/2.
func (n *Node) Quorum() int {
	r := 0
	for _, p := range n.peers {
		if n.healthPeer(p) && n.elapsed.Sub(p.LastGood) < n.cfg.ForgetHorizon/2 {
			r++
		}
	}
	q := int(math.Ceil(n.cfg.QuorumFraction * float64(r)))
	return min(max(q, n.cfg.QuorumMin), n.cfg.QuorumMax)
}

// ConnectedServers counts connections to peers that count towards health.
func (n *Node) ConnectedServers() int {
	c := 0
	for _, l := range n.linkList {
		if n.healthPeer(n.peers[l.id]) {
			c++
		}
	}
	return c
}

// Reasons of the tombstones R4 and the operator leave.
const (
	reasonHorizon  = "gone"
	reasonOperator = "operator"
)

// deferral is why R4 last put off forgetting a peer, as a code (a
// server holds one peer per client); deferReasons names them.
type deferral uint8

const (
	deferNone deferral = iota
	deferQuorum
	deferUntried
)

var deferReasons = [...]string{deferNone: "", deferQuorum: "not-enough-connections", deferUntried: "not-tried-since-start"}

func (n *Node) forget() {
	if n.cfg.Variant.Timestamp {
		n.forgetByTimestamp()
	}
	if n.cfg.Variant.NeverForget {
		return
	}
	var due []*peer
	for _, p := range n.awayPeers() {
		if p.ID != n.id && p.records > 0 && !p.connected && !p.hostedHere && !n.liveViaHost(p.ID) && n.elapsed.Sub(p.LastGood) >= n.cfg.ForgetHorizon {
			due = append(due, p)
		}
	}
	if len(due) == 0 {
		return
	}
	slices.SortFunc(due, func(a, b *peer) int { return cmp.Compare(a.ID, b.ID) })
	q, c := n.Quorum(), n.ConnectedServers()
	for _, p := range due {
		gone := n.elapsed.Sub(p.LastGood).Round(time.Second)
		defer_ := deferNone
		switch {
		case n.cfg.Variant.ForgetWhenIsolated:
		case c < q:
			defer_ = deferQuorum
		case n.wantsDialOrDialing(p) && !p.failedThisRun && !n.cfg.Variant.ForgetWithoutAttempt:
			defer_ = deferUntried
		}
		if defer_ != deferNone {
			if p.deferred != defer_ {
				p.deferred = defer_
				n.emit(Event{Kind: EvForgetDeferred, Peer: p.ID, Reason: deferReasons[defer_],
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
			n.store.Forget(k, reasonHorizon)
			n.tombs[k] = &tombMeta{at: n.elapsed, atWall: n.wall, hash: hashOf(a.Signed)}
		}
		n.trimTombstones()
		n.updateHosts(p.ID, false)
		n.emit(Event{Kind: EvForgot, Peer: p.ID, Reason: "gone-past-horizon",
			Facts: facts("gone_for", gone, "horizon", n.cfg.ForgetHorizon, "connected_servers", c, "quorum", q, "failures", p.Failures, "seqnum", seq)})
		n.ready.StateChanged = true
		n.gcPeer(p.ID)
	}
}

// forgetNow forgets id at the operator's request.
func (n *Node) forgetNow(id announce.NodeID) {
	p, ok := n.peers[id]
	if !ok || id == n.id || p.records == 0 {
		n.emit(Event{Kind: EvRejected, Peer: id, Reason: "forget-unknown", Facts: facts("why", "no records held of it")})
		return
	}
	var seq int64
	for _, a := range n.recordsOf(id) {
		seq = max(seq, a.Seqnum)
		k := records.Key{Service: a.ServiceName, ID: a.ID}
		n.dropMeta(k)
		n.store.Forget(k, reasonOperator)
		n.tombs[k] = &tombMeta{at: n.elapsed, atWall: n.wall, hash: hashOf(a.Signed)}
	}
	n.trimTombstones()
	n.updateHosts(id, false)
	n.emit(Event{Kind: EvForgot, Peer: id, Reason: "operator", Facts: facts("connected", p.connected, "seqnum", seq)})
	n.ready.StateChanged = true
	if !p.connected {
		n.gcPeer(id)
	}
}

// forgetByTimestamp is the seed's first proposal: delete records whose
// publisher's timestamp is older than H by this node's wall clock, once
// TimestampGrace has passed since start-up. No tombstone is kept.
func (n *Node) forgetByTimestamp() {
	if n.elapsed.Sub(n.started) < n.cfg.Variant.TimestampGrace {
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
		if tm != nil && n.elapsed.Sub(tm.at) < n.cfg.TombstoneTTL {
			continue
		}
		n.dropTombstone(t.Key, "ttl")
	}
}

func (n *Node) dropTombstone(k records.Key, why string, fs ...Fact) {
	n.store.DropTombstone(k)
	delete(n.tombs, k)
	n.unindex(k)
	n.emit(Event{Kind: EvTombstoneExpired, Peer: k.ID, Service: k.Service, Reason: why, Facts: fs})
	n.ready.StateChanged = true
	n.gcPeer(k.ID)
}

// tombRank orders tombstones for eviction (R6), cheapest to lose first:
// a withdrawal of a key never held here (anyone can sign those for fresh
// keys), a withdrawal of a held one (its records had to pass the record
// caps first), a membership one (the revocation, kept for ever, refuses
// the records anyway), a horizon one (a replay would be held for up to H
// before R4 forgets it again), an operator's (nothing would redo it).
func tombRank(reason string) int {
	switch reason {
	case records.TombWithdrawnUnheld:
		return 0
	case records.TombWithdrawn:
		return 1
	case reasonHorizon:
		return 3
	case reasonOperator:
		return 4
	}
	return 2 // membership: revoked, not-member, ...
}

// trimTombstones keeps at most MaxTombstones, dropping the lowest rank
// first (tombRank), the oldest first within a rank. An operator's, horizon
// or membership tombstone goes only when no withdrawal's is left.
func (n *Node) trimTombstones() {
	for len(n.tombs) > n.cfg.MaxTombstones {
		var victim records.Key
		var vRank int
		var vAt Elapsed
		found := false
		for k, tm := range n.tombs {
			t, _ := n.store.Tombstone(k)
			r := tombRank(t.Reason)
			if !found || r < vRank || (r == vRank && (tm.at < vAt || (tm.at == vAt && keyLess(k, victim)))) {
				victim, vRank, vAt, found = k, r, tm.at, true
			}
		}
		t, _ := n.store.Tombstone(victim)
		n.dropTombstone(victim, "table-full", facts("was", t.Reason, "age", n.elapsed.Sub(vAt).Round(time.Second), "cap", n.cfg.MaxTombstones)...)
	}
}
