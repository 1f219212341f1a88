package core

// Dissemination: digests, fetches, admission and bounds (R1, R6).

import (
	"cmp"
	"slices"
	"time"

	"grapevine/announce"
	"grapevine/records"
)

func (n *Node) send(l *link, m Msg) {
	l.p.BytesOut += uint64(n.cfg.MsgSize(m))
	n.ready.Messages = append(n.ready.Messages, Envelope{To: l.id, Msg: m})
}

func (n *Node) sendSyncReq(l *link) {
	n.syncRounds++
	l.lastSync = n.elapsed
	n.scheduleSync(l)
	n.send(l, SyncReq{Epoch: l.theirEpoch, Cursor: l.cursor, Neighbour: n.syncs(l)})
}

// digest lists relayable changes after from, leaving out records first
// learnt from the neighbour itself. Over a link that is not a gossip link
// only the two ends' own records go (the overlay).
func (n *Node) digest(from uint64, l *link) Digest {
	d := Digest{Epoch: n.epoch, From: from, To: n.ver}
	if !n.gossips(l) {
		return n.fillDigest(d, n.plainEntries(from, l.id), l)
	}
	i, _ := slices.BinarySearchFunc(n.log, from+1, func(e logEntry, v uint64) int { return cmp.Compare(e.ver, v) })
	return n.fillDigest(d, n.log[i:], l)
}

// plainEntries are the index entries after from of the two ends' own
// keys, in index order: what the log holds for a plain link, found
// without scanning it.
func (n *Node) plainEntries(from uint64, to announce.NodeID) []logEntry {
	var es []logEntry
	for _, id := range [2]announce.NodeID{n.id, to} {
		p, ok := n.peers[id]
		if !ok {
			continue
		}
		for _, svc := range p.indexed() {
			k := records.Key{Service: svc, ID: id}
			if v := n.verOf[k]; v > from {
				es = append(es, logEntry{v, k})
			}
		}
	}
	slices.SortFunc(es, func(a, b logEntry) int { return cmp.Compare(a.ver, b.ver) })
	return es
}

// fillDigest adds the entries of es relayable to l, in index order, up
// to the message bounds. A record l announced to this node is left out:
// l has it.
func (n *Node) fillDigest(d Digest, es []logEntry, l *link) Digest {
	size := n.emptyDigest
	items := n.itemBuf[:0]
	for _, e := range es {
		if n.verOf[e.key] != e.ver {
			continue
		}
		it, ok := n.item(e.key, l.id)
		if !ok || l.heard.has(it.Hash) {
			continue
		}
		it.Ver = e.ver
		grow := n.itemSize(it)
		if len(items) == n.cfg.MaxDigestItems || size+grow > MaxMsgBytes {
			d.To, d.More = items[len(items)-1].Ver, true
			break
		}
		items = append(items, it)
		size += grow
	}
	// Gathered in a buffer kept for the next digest, the items leave in
	// a slice of their own size.
	if len(items) > 0 {
		d.Items = slices.Clone(items)
	}
	clear(items)
	n.itemBuf = items[:0]
	return d
}

// itemSize is what it adds to a digest's encoding.
func (n *Node) itemSize(it Item) int { return n.cfg.ItemSize(it) }

// itemSizeByMsgSize is ItemSize worked out from MsgSize, for drivers
// that give only MsgSize: a digest of the item alone less an empty one.
func itemSizeByMsgSize(msgSize func(Msg) int) func(Item) int {
	var one [1]Item
	empty := msgSize(Digest{})
	return func(it Item) int {
		one[0] = it
		return msgSize(Digest{Items: one[:]}) - empty
	}
}

// item describes the record for k if it may be passed to neighbour to (R1).
func (n *Node) item(k records.Key, to announce.NodeID) (Item, bool) {
	if n.unpersisted(k) {
		return Item{}, false // not before the counter is on disk
	}
	if a, ok := n.store.Get(k); ok {
		m := n.meta[k]
		// A record is not sent back where it came from, except to its own
		// server: that is how a server that lost its counter learns it.
		// Not while the link it came over from its server is still up,
		// though: the server has it.
		if (to != "" && m.source == to && (k.ID != to || m.fromSigner)) || !n.live(k.ID) {
			return Item{}, false
		}
		return Item{Service: k.Service, ID: k.ID, Seqnum: a.Seqnum, Hash: m.hash}, true
	}
	if t, ok := n.store.Tombstone(k); ok {
		tm := n.tombs[k]
		if tm == nil || !tm.fresh || n.elapsed.Sub(tm.freshAt) >= n.cfg.LivenessWindow || t.Reason != records.TombWithdrawn {
			return Item{}, false
		}
		return Item{Service: k.Service, ID: k.ID, Seqnum: t.Seqnum, Hash: tm.hash}, true
	}
	return Item{}, false
}

// pushDigests sends each neighbour the changes it has not been sent: at
// once to PushFanout of them (eager), and to every neighbour still behind
// at the next tick (lazy), so a neighbour with no other link waits one
// tick, not a sync round.
func (n *Node) pushDigests() {
	lazy := n.lazyDue
	n.lazyDue = false
	if n.pushedVer == n.ver && !lazy {
		return
	}
	n.pushedVer = n.ver
	behind, plain := n.behindBuf[:0], n.plainBuf[:0]
	for _, l := range n.glinks {
		if l.scanned < n.ver {
			behind = append(behind, l)
		}
	}
	// Plain links carry their ends' own records only: those that changed
	// go at once; the others have nothing new (digest reads no further
	// than their ends' own keys, so they need no scan marker).
	switch {
	case n.ownChanged:
		for _, l := range n.linkList {
			if l.scanned < n.ver && !l.inGlinks {
				plain = append(plain, l)
			}
		}
	case len(n.plainDirty) > 0:
		slices.Sort(n.plainDirty)
		for _, id := range slices.Compact(n.plainDirty) {
			if l := n.linkOf(id); l != nil && l.scanned < n.ver && !l.inGlinks {
				plain = append(plain, l)
			}
		}
	}
	clear(n.plainDirty)
	n.ownChanged, n.plainDirty = false, n.plainDirty[:0]
	n.ready.Messages = slices.Grow(n.ready.Messages, len(behind)+len(plain))
	// The overlay already bounds the gossip links: they all get it now.
	if f := n.cfg.PushFanout; f > 0 && len(behind) > f && !lazy && n.cfg.GossipDegree == 0 {
		n.rng.Shuffle(len(behind), func(i, j int) { behind[i], behind[j] = behind[j], behind[i] })
		behind = behind[:f]
		slices.SortFunc(behind, func(a, b *link) int { return cmp.Compare(a.id, b.id) })
	}
	behind = append(behind, plain...)
	for _, l := range behind {
		// Entries after sentTo and up to scanned held nothing for this
		// neighbour, so the digest may claim them: its cursor stays
		// contiguous without empty digests being sent.
		d := n.digest(l.scanned, l)
		d.From = l.sentTo
		l.scanned = d.To
		if len(d.Items) == 0 {
			continue
		}
		if o, ok := n.own(l, d); ok {
			n.send(l, o)
		} else {
			n.send(l, d)
		}
		l.sentTo = d.To
	}
	clear(behind)
	clear(plain)
	n.behindBuf, n.plainBuf = behind[:0], plain[:0]
}

// own turns a plain link's digest that names only this node's own
// records into an Own push of them, within the fetch bounds.
func (n *Node) own(l *link, d Digest) (Own, bool) {
	if n.cfg.GossipDegree == 0 || l.inGlinks || d.More || len(d.Items) > n.cfg.MaxFetchItems {
		return Own{}, false
	}
	o := Own{Epoch: d.Epoch, From: d.From, To: d.To, Recs: make([]announce.Signed, 0, len(d.Items))}
	size := 0
	for _, it := range d.Items {
		if it.ID != n.id {
			return Own{}, false
		}
		k := it.Key()
		var s announce.Signed
		if a, ok := n.store.Get(k); ok {
			s = a.Signed
		} else if t, ok := n.store.Tombstone(k); ok {
			s = t.Last
		} else {
			return Own{}, false
		}
		if size += len(s.Msg) + len(s.Sig) + len(s.Key); size > MaxMsgBytes/2 {
			return Own{}, false
		}
		o.Recs = append(o.Recs, s)
	}
	return o, true
}

func (n *Node) onReceived(from announce.NodeID, m Msg) {
	l := n.linkOf(from)
	if l == nil {
		return // not connected: the driver delivered late
	}
	p := l.p
	p.BytesIn += uint64(n.cfg.MsgSize(m))
	p.lastRecv, p.lastRecvWall, p.received = n.elapsed, n.wall.UnixNano(), true
	switch m := m.(type) {
	case SyncReq:
		if l.theirs != m.Neighbour {
			l.theirs = m.Neighbour
			n.setGossip(l)
			n.emit(Event{Kind: EvOverlay, Peer: from, Reason: map[bool]string{true: "chosen-by-peer", false: "dropped-by-peer"}[m.Neighbour]})
		}
		cursor := m.Cursor
		if m.Epoch != n.epoch || cursor > n.ver {
			cursor = 0
		}
		d := n.digest(cursor, l)
		// Pushes continue from here: what lies beyond was pushed against
		// a cursor the neighbour no longer has.
		l.sentTo, l.scanned = d.To, d.To
		n.send(l, d)
	case Digest:
		n.onDigest(l, m)
	case Fetch:
		n.onFetch(l, m)
	case Records:
		n.onRecords(l, m)
	case Own:
		n.onOwn(l, m)
	}
}

// onOwn admits the sender's own records pushed whole, under the link's
// token bucket, and moves the cursor as a digest would. A record signed
// by another node was not the sender's to push: it is dropped.
func (n *Node) onOwn(l *link, m Own) {
	gap := n.covers(l, m.Epoch, m.From)
	n.refill(l)
	limited, foreign := 0, 0
	for _, s := range m.Recs {
		switch {
		case announce.NodeID(s.Key) != l.id:
			foreign++
		case l.tokens < 1 && !n.cfg.Variant.NoCaps:
			limited++
		default:
			l.tokens--
			n.admit(s, l.id)
		}
	}
	if foreign > 0 {
		n.emit(Event{Kind: EvUnsolicited, Peer: l.id, Reason: "not-own", Facts: facts("dropped", foreign)})
	}
	switch {
	case limited > 0:
		n.emit(Event{Kind: EvRateLimited, Peer: l.id, Reason: "token-bucket",
			Facts: facts("dropped", limited, "rate_per_s", n.cfg.RecordRate, "burst", n.cfg.RecordBurst)})
		n.moveCursor(l, l.cursor, m.To, false) // the next round asks from the cursor, which stays put
	case !gap:
		n.moveCursor(l, m.To, m.To, false)
	}
}

// covers takes in the sender's index epoch of a digest or push over l
// and reports a gap: it starts past the cursor (a lost or rate-limited
// earlier one), so its items are used but the cursor stays.
func (n *Node) covers(l *link, epoch, from uint64) (gap bool) {
	if epoch != l.theirEpoch {
		l.theirEpoch, l.cursor = epoch, 0
	}
	return from > l.cursor
}

// moveCursor moves l's cursor over (cursor, limit] of a digest or push that
// ends at to; short of to (out of tokens) it waits for the next round,
// and more asks again at once.
func (n *Node) moveCursor(l *link, limit, to uint64, more bool) {
	l.cursor = max(l.cursor, min(limit, to))
	switch {
	case limit < to:
		l.lastSync = n.elapsed
		n.scheduleSync(l)
	case more:
		n.sendSyncReq(l)
	}
}

func (n *Node) onDigest(l *link, d Digest) {
	gap := n.covers(l, d.Epoch, d.From)
	n.refill(l)
	var want []records.Key
	limit := d.To
	for _, it := range d.Items {
		if l.inGlinks {
			l.hear(it.Hash)
		}
		if !n.wants(it, l.id) {
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
		n.fetching[it.Key()] = &fetchState{from: l.id, seqnum: it.Seqnum, deadline: n.elapsed.Add(n.cfg.FetchTimeout)}
		n.fetchPeak = max(n.fetchPeak, len(n.fetching))
	}
	for len(want) > 0 {
		chunk := want[:min(len(want), n.cfg.MaxFetchItems)]
		want = want[len(chunk):]
		l.pending += len(chunk)
		l.asked = append(l.asked, len(chunk))
		n.send(l, Fetch{Keys: chunk})
	}
	if !gap {
		n.moveCursor(l, limit, d.To, d.More)
	}
	if l.swapIn && !d.More {
		n.swapIn(l)
	}
}

// wants decides from an item alone whether fetching it could change
// anything. An item a tombstone refuses is explained (noteTombstoned).
func (n *Node) wants(it Item, from announce.NodeID) bool {
	k := it.Key()
	if it.ID == n.id {
		held, ok := n.meta[k]
		if it.Seqnum > n.counter || (it.Seqnum == n.counter && (!ok || held.hash != it.Hash)) {
			return true
		}
		if t, ok := n.store.Tombstone(k); ok {
			n.noteTombstoned(k, t, it, from)
		}
		return false
	}
	// A key is held or tombstoned, never both (records.Store).
	if a, ok := n.store.Get(k); ok {
		if n.meta[k].hash == it.Hash {
			return false
		}
		return !a.HasSeqnum || it.Seqnum > a.Seqnum
	}
	if t, ok := n.store.Tombstone(k); ok {
		if !t.HasSeqnum || it.Seqnum > t.Seqnum {
			return true
		}
		n.noteTombstoned(k, t, it, from)
		return false
	}
	return true
}

// noteTombstoned explains, once per key and seqnum, that a neighbour offered
// a record the tombstone t refuses.
func (n *Node) noteTombstoned(k records.Key, t *records.Tombstone, it Item, from announce.NodeID) {
	tm := n.tombs[k]
	if tm == nil || tm.refused >= it.Seqnum+1 {
		return
	}
	if t.HasSeqnum && it.Seqnum == t.Seqnum && tm.hash == it.Hash && records.IsWithdrawal(t.Reason) {
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
	n.send(l, out)
}

func (n *Node) refill(l *link) {
	dt := n.elapsed.Sub(l.tokensAt)
	l.tokensAt = n.elapsed
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
		n.fetchDone()
	}
	// Before makeRoom: a record refused anyway must not evict another.
	if err := records.CheckSeqnum(a); err != nil {
		n.emit(Event{Kind: EvRejected, Peer: a.ID, Service: a.ServiceName, Reason: string(records.ReasonBadSeqnum),
			Facts: facts("why", a.SeqnumProblem, "from", from.Short())})
		return
	}
	if a.ID == n.id {
		n.observeOwn(a, from)
		return
	}
	if a.Withdrawn() && n.cfg.Variant.IgnoreWithdrawals {
		return
	}
	if !n.checkMember(a, from) {
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
	if res.Outcome.Changed() {
		n.learnMembership(a)
	}
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
		first := res.Outcome == records.Added && p.records == 0 && p.LastConnected < 0 && !p.connected && k.ID != n.id
		p.fresh, p.freshAt, p.firstSight = true, n.elapsed, first
		if first {
			p.vouched = n.vouch(from, k)
		}
		switch {
		case n.cfg.Variant.GoodOnlyByConnection:
		case first:
			p.LastGood = n.elapsed.Add(-n.cfg.LivenessWindow)
		default:
			p.LastGood = n.elapsed
		}
	}
	switch res.Outcome {
	case records.Withdrawn:
		p.Withdrawn = true
		tm := &tombMeta{at: n.elapsed, atWall: n.wall, hash: hashOf(a.Signed)}
		n.tombs[k] = tm
		// Only the withdrawal of a key held here is passed on (for W): one
		// of a key never held costs its signer nothing (R6).
		why := "not-held"
		if t, _ := n.store.Tombstone(k); t.Reason == records.TombWithdrawn {
			why = "announced"
			tm.fresh, tm.freshAt = true, n.elapsed
			tm.ver = n.index(k)
		} else {
			n.unindex(k)
		}
		if k.ID != n.id {
			n.emit(Event{Kind: EvWithdrawn, Peer: k.ID, Service: k.Service, Reason: why,
				Facts: facts("seqnum", a.Seqnum, "from", from.Short(), "passed_on", tm.fresh)})
		}
		n.trimTombstones()
		if p.dialing {
			n.endDial(p)
			n.ready.CancelDials = append(n.ready.CancelDials, k.ID)
		}
	default:
		delete(n.tombs, k)
		n.setMeta(k, &recMeta{source: from, hash: hashOf(a.Signed), fromSigner: from == k.ID})
		if n.relayLater(from) {
			n.plainHeld = append(n.plainHeld, plainHeld{k, n.elapsed.Add(n.cfg.PlainRelayDelay)})
		} else {
			n.meta[k].indexed = n.index(k) != 0
		}
		n.perSrc[from]++
		p.records++
		if !p.connected {
			n.away[k.ID] = struct{}{}
		}
		if p.records == 1 || p.Withdrawn {
			n.dialDirty, n.dialRescan = true, true
		}
		p.Withdrawn = false
		if locs := a.Locators(); len(locs) > 0 {
			if len(p.Locators) == 0 {
				n.dialRescan = true
			}
			p.Locators = locs
		}
		// A new seqnum is the server's own proof of life (R3): a dial
		// waiting out a backoff is due now, so a server back from
		// maintenance is used at once, not an hour later.
		if k.ID != n.id && !p.connected && !p.dialing && p.nextDial > n.elapsed {
			p.nextDial = n.elapsed
			n.dialDirty, n.dialRescan = true, true
		}
		if k.ID != n.id {
			n.emit(Event{Kind: EvAccepted, Peer: k.ID, Service: k.Service, Reason: res.Outcome.String(),
				Facts: facts("seqnum", a.Seqnum, "from", from.Short())})
		}
	}
	n.updateHosts(k.ID, res.Outcome != records.Withdrawn)
	if res.Outcome != records.Withdrawn && n.hosted(p) && !p.hostedHere && n.liveViaHost(k.ID) {
		p.LastGood = n.elapsed
	}
	n.ready.StateChanged = true
}

func (n *Node) dropMeta(k records.Key) {
	m, ok := n.meta[k]
	if !ok {
		return
	}
	delete(n.meta, k)
	if p, ok := n.peers[k.ID]; ok {
		p.editKeys().held = dropSvc(p.held(), k.Service)
	}
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
		if p.LastConnected >= 0 && n.elapsed.Sub(p.LastConnected) < n.cfg.LivenessWindow {
			continue
		}
		c := n.perSrc[m.source]
		better := best == nil || c > bestCount ||
			(c == bestCount && (p.LastGood < best.LastGood || (p.LastGood == best.LastGood && keyLess(k, victim))))
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
	n.updateHosts(victim.ID, false)
	n.emit(Event{Kind: EvEvicted, Peer: victim.ID, Service: victim.Service, Reason: why,
		Facts: facts("source", src.Short(), "last_good_ago", n.elapsed.Sub(best.LastGood).Round(time.Second))})
	n.gcPeer(victim.ID)
	return true
}

func keyLess(a, b records.Key) bool {
	return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Service, b.Service)) < 0
}

// gcPeer drops the history of a peer nothing refers to any more.
func (n *Node) gcPeer(id announce.NodeID) {
	p, ok := n.peers[id]
	if !ok || p.records > 0 || p.connected || p.dialing || p.bootstrap || p.hostedHere {
		return
	}
	for k := range n.tombs {
		if k.ID == id {
			return
		}
	}
	delete(n.peers, id)
}

// vouch decides whether a dialling node passes on a server it has not
// reached, first heard of through from: operator imports always, a
// neighbour's first sightings up to FirstSightBudget per FirstSightWindow.
func (n *Node) vouch(from announce.NodeID, k records.Key) bool {
	if from == "" {
		return true
	}
	l := n.linkOf(from)
	if l == nil {
		return false
	}
	budget := float64(n.cfg.FirstSightBudget)
	l.vouchTokens = min(budget, l.vouchTokens+n.elapsed.Sub(l.vouchAt).Seconds()/n.cfg.FirstSightWindow.Seconds()*budget)
	l.vouchAt = n.elapsed
	if l.vouchTokens >= 1 {
		l.vouchTokens--
		l.vouchSpent = false
		return true
	}
	if !l.vouchSpent {
		l.vouchSpent = true
		n.emit(Event{Kind: EvRateLimited, Peer: k.ID, Service: k.Service, Reason: "first-sight-budget",
			Facts: facts("from", from.Short(), "budget", n.cfg.FirstSightBudget, "per", n.cfg.FirstSightWindow)})
	}
	return false
}

// relayLater: a record that came over a plain link (its server's own,
// straight from it) goes to the gossip links PlainRelayDelay later, at a
// tick, not at once. Its server pushes it into the overlay itself, which
// has usually delivered it to those neighbours by then, so a node linked
// to many servers (a client) does not become the hub every neighbour
// fetches their records from; and the held records go in one digest per
// neighbour.
func (n *Node) relayLater(from announce.NodeID) bool {
	if n.cfg.GossipDegree == 0 || from == "" || from == n.id {
		return false
	}
	l := n.linkOf(from)
	return l != nil && !l.inGlinks
}

type plainHeld struct {
	key records.Key
	due Elapsed
}

// indexHeld puts the records relayLater held back, and now due, in the
// index.
func (n *Node) indexHeld() {
	i := 0
	for ; i < len(n.plainHeld) && n.plainHeld[i].due <= n.elapsed; i++ {
		k := n.plainHeld[i].key
		if m := n.meta[k]; m != nil && !m.indexed {
			m.indexed = n.index(k) != 0
		}
	}
	n.plainHeld = append(n.plainHeld[:0], n.plainHeld[i:]...)
}
