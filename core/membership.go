package core

// Membership (docs/grid.md): in a closed grid only members' records are held.

import (
	"grapevine/announce"
	"grapevine/records"
)

// ServiceRevocations names the record in which a member publishes the
// revocations it has signed. Its body field FieldRevocations lists them.
const (
	ServiceRevocations = "grapevine-revocations"
	FieldRevocations   = "grapevine-revocations"
)

// Membership decides who belongs to the grid. Config.Membership nil is an
// open grid: every validly signed record is a candidate.
type Membership interface {
	// Check returns "" if a's publisher is a member, else a stable reason
	// word and the detail.
	Check(a *announce.Announcement) (reason string, detail error)
	// Learn takes in what a verified record says about membership (its
	// revocations) and reports whether membership changed.
	Learn(a *announce.Announcement) bool
}

// checkMember applies Config.Membership to a verified record from a
// neighbour. It reports whether the record may be admitted.
func (n *Node) checkMember(a *announce.Announcement, from announce.NodeID) bool {
	m := n.cfg.Membership
	if m == nil || a.ID == n.id {
		return true
	}
	reason, err := m.Check(a)
	if reason == "" {
		return true
	}
	n.emit(Event{Kind: EvRejected, Peer: a.ID, Service: a.ServiceName, Reason: reason, Facts: facts("from", from.Short(), "error", err)})
	return false
}

// learnMembership feeds a newly held record to Config.Membership; if
// membership changed, records of publishers that no longer belong are
// forgotten, with a tombstone so their replays are refused.
func (n *Node) learnMembership(a *announce.Announcement) {
	m := n.cfg.Membership
	if m == nil || a.ServiceName != ServiceRevocations || !m.Learn(a) {
		return
	}
	for _, held := range n.store.Records() {
		if held.ID == n.id {
			continue
		}
		reason, err := m.Check(held)
		if reason == "" {
			continue
		}
		k := records.Key{Service: held.ServiceName, ID: held.ID}
		n.dropMeta(k)
		n.store.Forget(k, reason)
		n.tombs[k] = &tombMeta{at: n.elapsed, atWall: n.wall, hash: hashOf(held.Signed)}
		n.updateHosts(held.ID, false)
		n.emit(Event{Kind: EvForgot, Peer: held.ID, Service: held.ServiceName, Reason: reason,
			Facts: facts("error", err, "seqnum", held.Seqnum, "by", a.ID.Short())})
		n.ready.StateChanged = true
	}
	n.trimTombstones()
}
