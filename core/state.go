package core

import (
	"slices"
	"time"

	"grapevine/announce"
	"grapevine/records"
)

// StoredRecord is a held record as persisted.
type StoredRecord struct {
	Signed announce.Signed
	Source announce.NodeID // the neighbour it was first fetched from
}

// StoredTombstone is a tombstone as persisted.
type StoredTombstone struct {
	records.Tombstone
	At     Elapsed
	AtWall time.Time
}

// State is what a node persists: enough to restart without forgetting or
// resurrecting anything. Records keep their signatures so they are verified
// again on load and can be passed on.
type State struct {
	Counter    int64
	Elapsed    Elapsed
	Wall       time.Time // the local clock at Elapsed
	Records    []StoredRecord
	Tombstones []StoredTombstone
	Peers      []History
}

// State returns a snapshot for persistence, in a deterministic order.
func (n *Node) State() State {
	st := State{Counter: n.counter, Elapsed: n.elapsed, Wall: n.wall}
	for _, a := range n.store.Records() {
		k := records.Key{Service: a.ServiceName, ID: a.ID}
		st.Records = append(st.Records, StoredRecord{Signed: a.Signed, Source: n.meta[k].source})
	}
	for _, t := range n.store.Tombstones() {
		st.Tombstones = append(st.Tombstones, StoredTombstone{Tombstone: *t, At: n.tombs[t.Key].at, AtWall: n.tombs[t.Key].atWall})
	}
	for _, id := range n.sortedPeers(func(*peer) bool { return true }) {
		h := n.peers[id].History
		h.Locators = slices.Clone(h.Locators)
		h.Intervals = slices.Clone(h.Intervals)
		if p := n.peers[id]; p.connected {
			// Count the open interval as ending now; a restart closes it.
			h.Intervals = append(h.Intervals, Interval{p.connectedSince, n.elapsed})
			h.LastGood = n.elapsed
			h.LastConnected, h.LastConnectedWall = n.elapsed, n.wall
		}
		st.Peers = append(st.Peers, h)
	}
	return st
}

func (n *Node) restore(st State) error {
	n.counter, n.durable = st.Counter, st.Counter
	n.elapsed = st.Elapsed
	n.savedWall = st.Wall
	n.started = st.Elapsed
	n.lastForget = st.Elapsed
	for _, h := range st.Peers {
		p := &peer{History: h}
		p.Locators = slices.Clone(h.Locators)
		p.Intervals = slices.Clone(h.Intervals)
		n.peers[h.ID] = p
	}
	for _, r := range st.Records {
		a, err := n.verify(r.Signed)
		if err != nil {
			n.emit(Event{Kind: EvRejected, Peer: announce.NodeID(r.Signed.Key), Reason: "stored-record-invalid", Facts: facts("error", err)})
			continue
		}
		if m := n.cfg.Membership; m != nil && a.ID != n.id {
			if reason, err := m.Check(a); reason != "" {
				n.emit(Event{Kind: EvRejected, Peer: a.ID, Service: a.ServiceName, Reason: reason, Facts: facts("from", "peer book", "error", err)})
				continue
			}
		}
		res, err := n.store.AdmitVerified(a)
		if re, ok := err.(*records.RejectError); ok { // bad-seqnum: held before the rule
			n.emit(Event{Kind: EvRejected, Peer: a.ID, Service: a.ServiceName, Reason: string(re.Reason), Facts: facts("from", "peer book", "why", re.Detail)})
		}
		if err != nil || !res.Outcome.Changed() {
			continue
		}
		if m := n.cfg.Membership; m != nil && a.ServiceName == ServiceRevocations {
			m.Learn(a)
		}
		if a.ID == n.id && a.HasSeqnum && a.Seqnum > n.counter {
			n.counter, n.durable = a.Seqnum, a.Seqnum // on disk
		}
		k := res.Key
		p := n.peer(k.ID)
		n.setMeta(k, &recMeta{source: r.Source, hash: hashOf(a.Signed)})
		n.meta[k].indexed = n.index(k) != 0
		n.perSrc[r.Source]++
		p.records++
	}
	for id, p := range n.peers {
		if p.records > 0 {
			n.away[id] = struct{}{}
			n.updateHosts(id, false)
		}
	}
	for _, t := range st.Tombstones {
		n.store.RestoreTombstone(t.Tombstone)
		n.tombs[t.Key] = &tombMeta{at: t.At, atWall: t.AtWall, hash: hashOf(t.Last)}
		if t.Key.ID == n.id && t.HasSeqnum && t.Seqnum > n.counter {
			n.counter = t.Seqnum
		}
	}
	n.durable = n.counter
	n.ready.StateChanged = false
	return nil
}

// ServerInfo is what the node knows of one peer, for status pages and
// tests.
type ServerInfo struct {
	History
	Services       []string
	Seqnum         int64
	Connected      bool
	ConnectedSince Elapsed
	Dialing        bool
	NextDialIn     time.Duration
	Live           bool              // R1: its records are passed on
	HostedHere     bool              // a local publisher of it is connected
	Hosts          []announce.NodeID // hosts whose records vouch for it
	FreshAgo       time.Duration
	Fresh          bool
	// LastReceivedAgo: since the last message from it in this run;
	// Received false if none.
	LastReceivedAgo time.Duration
	Received        bool
	LastReceived    time.Time // the local clock then
}

// Servers returns every known peer, ordered by ID.
func (n *Node) Servers() []ServerInfo {
	var out []ServerInfo
	for _, id := range n.sortedPeers(func(*peer) bool { return true }) {
		out = append(out, n.info(n.peers[id]))
	}
	return out
}

// Server returns one peer.
func (n *Node) Server(id announce.NodeID) (ServerInfo, bool) {
	p, ok := n.peers[id]
	if !ok {
		return ServerInfo{}, false
	}
	return n.info(p), true
}

func (n *Node) info(p *peer) ServerInfo {
	si := ServerInfo{History: p.History, Connected: p.connected, ConnectedSince: p.connectedSince,
		Dialing: p.dialing, Live: n.live(p.ID), Fresh: p.fresh, HostedHere: p.hostedHere, Hosts: n.HostsOf(p.ID)}
	if p.fresh {
		si.FreshAgo = n.elapsed.Sub(p.freshAt)
	}
	if p.nextDial > n.elapsed {
		si.NextDialIn = p.nextDial.Sub(n.elapsed)
	}
	if p.received {
		si.Received, si.LastReceivedAgo, si.LastReceived = true, n.elapsed.Sub(p.lastRecv), time.Unix(0, p.lastRecvWall).In(n.wall.Location())
	}
	for _, a := range n.recordsOf(p.ID) {
		si.Services = append(si.Services, a.ServiceName)
		si.Seqnum = max(si.Seqnum, a.Seqnum)
	}
	return si
}

// Holds reports whether the node holds a record of id.
func (n *Node) Holds(id announce.NodeID) bool {
	p, ok := n.peers[id]
	return ok && p.records > 0
}

// Relays reports whether the node passes on records of id now (R1).
func (n *Node) Relays(id announce.NodeID) bool { return n.Holds(id) && n.live(id) }

// Tombstoned reports whether the node holds a tombstone for id.
func (n *Node) Tombstoned(id announce.NodeID) (StoredTombstone, bool) {
	for k, tm := range n.tombs {
		if k.ID == id {
			t, _ := n.store.Tombstone(k)
			return StoredTombstone{Tombstone: *t, At: tm.at, AtWall: tm.atWall}, true
		}
	}
	return StoredTombstone{}, false
}

// Record returns the held record for k.
func (n *Node) Record(k records.Key) (*announce.Announcement, bool) { return n.store.Get(k) }

// RecordCount returns the number of held records.
func (n *Node) RecordCount() int { return n.store.Len() }

// TombstoneCount returns the number of tombstones.
func (n *Node) TombstoneCount() int { return len(n.tombs) }

// SyncRounds counts the anti-entropy requests sent since start.
func (n *Node) SyncRounds() uint64 { return n.syncRounds }

// InFlight returns the number of dials in flight.
func (n *Node) InFlight() int { return n.inflight }

// sources returns how many held records were first learnt through each
// neighbour.
func (n *Node) sources() map[announce.NodeID]int {
	out := make(map[announce.NodeID]int, len(n.perSrc))
	for k, v := range n.perSrc {
		out[k] = v
	}
	return out
}
