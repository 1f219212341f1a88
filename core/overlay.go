package core

// The gossip overlay: a node gossips over a bounded set of links, not over
// every connection (docs/design.md, "Dissemination").

import (
	"slices"

	"grapevine/announce"
)

// gossips: third-party records go over l (either end chose it).
func (n *Node) gossips(l *link) bool {
	return n.cfg.GossipDegree == 0 || l.mine || l.theirs
}

// syncs: this node runs anti-entropy rounds over l at SyncInterval and
// tells the other end it gossips here (it chose l).
func (n *Node) syncs(l *link) bool {
	return n.cfg.GossipDegree == 0 || l.mine
}

// chooseOnConnect keeps the gossip links a uniform draw from the links
// this node dialled (reservoir sampling): the first GossipDegree are
// chosen as they connect, and the k-th after them replaces a random one
// with probability GossipDegree/k. Choosing only the first would pick the
// same few for every node (its bootstrap and the servers most recently
// seen, R3), and those would carry the overlay for the whole grid. Links a
// node dialled are the ones it can keep, behind NAT too.
//
// A link drawn to replace a neighbour first runs its opening round as a
// plain link, so that the swap costs a round of the two ends' own records
// rather than a full digest (swapIn, at the end of that round).
func (n *Node) chooseOnConnect(l *link) {
	d := n.cfg.GossipDegree
	if d == 0 || l.inbound {
		return
	}
	if n.mineLinks < d {
		n.choose(l, "chosen")
		return
	}
	l.swapIn = n.rng.IntN(n.outLinks) < d
}

// swapIn makes l, drawn by chooseOnConnect, a gossip link in place of a
// random one, once its opening round has ended.
func (n *Node) swapIn(l *link) {
	l.swapIn = false
	d := n.cfg.GossipDegree
	if l.closed || l.mine || d == 0 {
		return
	}
	if n.mineLinks >= d {
		var mine []*link
		for _, g := range n.glinks {
			if g.mine {
				mine = append(mine, g)
			}
		}
		if len(mine) == 0 {
			return
		}
		old := mine[n.rng.IntN(len(mine))]
		old.mine = false
		n.mineLinks--
		n.setGossip(old)
		n.emit(Event{Kind: EvOverlay, Peer: old.id, Reason: "replaced", Facts: facts("by", l.id.Short(), "dialled", n.outLinks, "degree", d)})
		n.sendSyncReq(old) // tells the other end; later rounds are plain
	}
	n.choose(l, "sampled") // the cursor stays where the opening round left it
	n.sendSyncReq(l)
}

// choose makes l one of the links this node gossips over. Pushes to it go
// on from the last push: as a plain link it was scanned up to there.
func (n *Node) choose(l *link, reason string) {
	l.mine = true
	n.mineLinks++
	l.scanned = max(l.scanned, n.pushedVer)
	n.setGossip(l)
	n.emit(Event{Kind: EvOverlay, Peer: l.id, Reason: reason, Facts: facts("neighbours", n.mineLinks, "degree", n.cfg.GossipDegree)})
}

// chooseNeighbours tops the gossip links up to GossipDegree from the
// other links this node dialled, at random, after a neighbour went. A
// promoted link starts a full sync round: what it skipped while it
// carried only its ends' own records is sent now.
func (n *Node) chooseNeighbours() {
	d := n.cfg.GossipDegree
	if d == 0 || n.mineLinks >= d || n.outLinks <= n.mineLinks {
		return // no dialled link left to choose
	}
	var cands []*link
	for _, l := range n.linkList {
		if !l.inbound && !l.mine {
			cands = append(cands, l)
		}
	}
	for n.mineLinks < d && len(cands) > 0 {
		i := n.rng.IntN(len(cands))
		l := cands[i]
		cands[i] = cands[len(cands)-1]
		cands = cands[:len(cands)-1]
		n.choose(l, "promoted")
		l.cursor = 0
		n.sendSyncReq(l)
	}
}

// gossipLinks counts the links this node gossips over: chosen by it, and
// in all.
func (n *Node) gossipLinks() (mine, all int) {
	return n.mineLinks, len(n.glinks)
}

// GossipsWith reports whether the node gossips over its link to id.
func (n *Node) GossipsWith(id announce.NodeID) bool {
	l := n.linkOf(id)
	return l != nil && n.gossips(l)
}

// notePlain records that id's records changed, for the plain links.
func (n *Node) notePlain(id announce.NodeID) {
	if n.cfg.GossipDegree == 0 {
		return
	}
	if id == n.id {
		n.ownChanged = true
		return
	}
	if l := n.linkOf(id); l != nil && !n.gossips(l) {
		n.plainDirty = append(n.plainDirty, id)
	}
}

// heardSets × heardWays bounds the announcements a gossip link
// remembers, 8 bytes each: a few relay delays' worth (PlainRelayDelay) of
// changes on a grid of hundreds of servers.
const (
	heardSets = 32
	heardWays = 4
)

// heardTable holds the hashes of items the other end of a gossip link
// announced, in a small set-associative table (the oldest of a set goes
// first). The other end has those records, so digests to it leave them
// out (Plumtree's rule: a change crosses a link about once, not once each
// way). A hash that falls out only costs a redundant item.
type heardTable struct {
	hash [heardSets][heardWays]uint64
	next [heardSets]uint8
}

// hear notes an item l's other end announced.
func (l *link) hear(h uint64) {
	if l.heard == nil {
		l.heard = new(heardTable)
	}
	t := l.heard
	s := h % heardSets
	if slices.Contains(t.hash[s][:], h) {
		return
	}
	t.hash[s][t.next[s]] = h
	t.next[s] = (t.next[s] + 1) % heardWays
}

func (t *heardTable) has(h uint64) bool {
	return t != nil && h != 0 && slices.Contains(t.hash[h%heardSets][:], h)
}
