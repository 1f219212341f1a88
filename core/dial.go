package core

// Connections and dialing (R3).

import (
	"cmp"
	"math"
	"slices"
	"time"

	"grapevine/announce"
	"grapevine/records"
)

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
	p.connectedSince = n.elapsed
	p.LastConnected, p.LastConnectedWall = n.elapsed, n.wall
	p.LastGood = n.elapsed
	p.LastAttempt, p.LastAttemptWall = n.elapsed, n.wall
	p.LastAttemptFailed, p.LastError, p.Failures = false, "", 0
	p.deferred = deferNone
	// The neighbour asks for our index from its cursor; pushes start from
	// here.
	l := &link{id: in.Peer, p: p, inbound: in.Inbound, tokens: float64(n.cfg.RecordBurst), tokensAt: n.elapsed, vouchTokens: float64(n.cfg.FirstSightBudget), vouchAt: n.elapsed, sentTo: n.ver, scanned: n.ver}
	p.link = l
	i, _ := slices.BinarySearchFunc(n.linkList, in.Peer, linkCmp)
	n.linkList = slices.Insert(n.linkList, i, l)
	if !in.Inbound {
		n.outLinks++
	}
	n.setGossip(l)
	n.ready.StateChanged = true
	n.emit(Event{Kind: EvConnected, Peer: in.Peer, Facts: facts("inbound", in.Inbound)})
	n.chooseOnConnect(l)
	// Its records are live now: put them in the index so neighbours see them.
	for _, a := range n.recordsOf(in.Peer) {
		n.index(records.Key{Service: a.ServiceName, ID: a.ID})
	}
	n.reindexHostedBy(in.Peer)
	n.sendSyncReq(l)
}

func (n *Node) recordsOf(id announce.NodeID) []*announce.Announcement {
	var out []*announce.Announcement
	p, ok := n.peers[id]
	if !ok {
		return nil
	}
	for _, svc := range p.held() {
		if a, ok := n.store.Get(records.Key{Service: svc, ID: id}); ok {
			out = append(out, a)
		}
	}
	return out
}

func (n *Node) onDisconnected(id announce.NodeID, errText string) {
	p, ok := n.peers[id]
	if !ok || !p.connected {
		return
	}
	p.connected = false
	p.closeInterval(n.elapsed)
	p.LastGood = n.elapsed
	p.LastConnected, p.LastConnectedWall = n.elapsed, n.wall
	if l := p.link; l != nil {
		l.closed = true
		n.setGossip(l)
		if !l.inbound {
			n.outLinks--
		}
		if l.mine {
			n.mineLinks--
			defer n.chooseNeighbours()
		}
	}
	n.away[id] = struct{}{}
	p.link = nil
	for _, svc := range p.held() {
		if m := n.meta[records.Key{Service: svc, ID: id}]; m != nil {
			m.fromSigner = false // it may come back without them
		}
	}
	if i, found := slices.BinarySearchFunc(n.linkList, id, linkCmp); found {
		n.linkList = slices.Delete(n.linkList, i, i+1)
	}
	for k, f := range n.fetching {
		if f.from == id {
			delete(n.fetching, k)
		}
	}
	n.fetchDone()
	p.nextDial = n.elapsed.Add(n.jitter(n.cfg.BackoffBase))
	n.nextDial = min(n.nextDial, p.nextDial)
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
	p.nextDial = n.elapsed.Add(backoff)
	n.nextDial = min(n.nextDial, p.nextDial)
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

// dialTimeoutFor returns the connect timeout for a peer by ID.
func (n *Node) dialTimeoutFor(id announce.NodeID) time.Duration {
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
// servers whose last attempt failed last, at most K in flight. The
// candidates are sorted when something may have added one or changed the
// order (dialRescan, a backoff ending); a freed slot only takes the next
// of them, so a client dialling S servers sorts them once, not S times.
func (n *Node) scheduleDials() {
	limit := n.cfg.MaxDialsInFlight
	if n.cfg.Variant.NoDialOrder {
		limit = math.MaxInt
	}
	if n.inflight >= limit || (!n.dialDirty && n.elapsed < n.nextDial) {
		return
	}
	n.dialDirty = false
	if n.dialRescan || n.elapsed >= n.nextDial || len(n.dialQ) == 0 {
		n.dialRescan = false
		n.dialQ = n.dialCandidates()
	}
	for len(n.dialQ) > 0 {
		if n.inflight >= limit {
			n.dialDirty = true // more are waiting: check on the next input
			break
		}
		p := n.dialQ[0]
		n.dialQ[0] = nil
		n.dialQ = n.dialQ[1:]
		if n.peers[p.ID] != p || !n.wantsDial(p) || p.nextDial > n.elapsed {
			continue // connected, dialled, forgotten or backed off since the sort
		}
		n.startDial(p)
	}
	if len(n.dialQ) == 0 {
		n.dialQ = nil
	}
}

// dialCandidates returns the peers to dial now, in dial order, and sets
// nextDial to the end of the earliest backoff among the others.
func (n *Node) dialCandidates() []*peer {
	var cands []*peer
	next := Elapsed(math.MaxInt64)
	var pool []*peer
	if n.cfg.DialServers {
		pool = n.awayPeers()
	} else {
		for _, id := range n.bootIDs {
			pool = append(pool, n.peers[id])
		}
	}
	for _, p := range pool {
		if !n.wantsDial(p) {
			continue
		}
		if p.nextDial > n.elapsed {
			next = min(next, p.nextDial)
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
		return cmp.Or(cmp.Compare(b.LastConnected, a.LastConnected), cmp.Compare(a.ID, b.ID))
	})
	n.nextDial = next
	return cands
}

func (n *Node) startDial(p *peer) {
	p.dialing = true
	n.dialing[p.ID] = true
	p.dialDeadline = n.elapsed.Add(n.dialTimeout(p))
	p.LastAttempt, p.LastAttemptWall = n.elapsed, n.wall
	n.inflight++
	n.ready.Dials = append(n.ready.Dials, Dial{Peer: p.ID, Locators: slices.Clone(p.Locators), Timeout: n.dialTimeout(p)})
	last := "never"
	if p.LastConnected >= 0 {
		last = n.elapsed.Sub(p.LastConnected).Round(time.Second).String() + " ago"
	}
	n.emit(Event{Kind: EvDial, Peer: p.ID, Facts: facts("last_connected", last, "last_failed", p.LastAttemptFailed, "in_flight", n.inflight)})
}

// awayPeers returns the peers in away that are still neither connected nor
// without records (unless bootstraps), dropping the others from it. Every
// peer that may want a dial or be forgotten is among them.
func (n *Node) awayPeers() []*peer {
	var out []*peer
	for id := range n.away {
		p, ok := n.peers[id]
		if !ok || id == n.id || p.connected || (p.records == 0 && !p.bootstrap) {
			delete(n.away, id)
			continue
		}
		out = append(out, p)
	}
	return out
}
