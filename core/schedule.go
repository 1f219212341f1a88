package core

import (
	"cmp"
	"slices"
)

// syncQueue holds links in the order their next anti-entropy round falls
// due. Every entry of one queue has the same interval and entries are
// added as time goes on, so it is first in, first out. A link is queued
// again at each round; entries that no longer match the link's last
// round (stamp) or whose link closed are dropped as they come up.
type syncQueue struct {
	q    []syncEntry
	head int
}

type syncEntry struct {
	due   Elapsed
	l     *link
	stamp uint32
}

func (s *syncQueue) push(e syncEntry) {
	if s.head > 64 && s.head > len(s.q)/2 {
		s.q = append(s.q[:0], s.q[s.head:]...)
		s.head = 0
	}
	s.q = append(s.q, e)
}

// due pops the links whose round is due at now onto out.
func (s *syncQueue) due(now Elapsed, out []*link) []*link {
	for s.head < len(s.q) && s.q[s.head].due <= now {
		e := s.q[s.head]
		s.q[s.head] = syncEntry{}
		s.head++
		if !e.l.closed && e.l.syncStamp == e.stamp {
			out = append(out, e.l)
		}
	}
	return out
}

// scheduleSync queues l's next round from its last one.
func (n *Node) scheduleSync(l *link) {
	l.syncStamp++
	if n.syncs(l) {
		n.syncQ.push(syncEntry{l.lastSync.Add(n.cfg.SyncInterval), l, l.syncStamp})
	} else {
		n.plainSyncQ.push(syncEntry{l.lastSync.Add(n.cfg.RefreshInterval), l, l.syncStamp})
	}
}

// dueSyncs returns the links whose round is due, sorted by ID.
func (n *Node) dueSyncs() []*link {
	due := n.syncQ.due(n.elapsed, nil)
	due = n.plainSyncQ.due(n.elapsed, due)
	slices.SortFunc(due, func(a, b *link) int { return cmp.Compare(a.id, b.id) })
	return due
}

// setGossip keeps glinks in step with gossips(l) after l's overlay flags
// changed, or l opened or closed.
func (n *Node) setGossip(l *link) {
	want := !l.closed && n.gossips(l)
	if want == l.inGlinks {
		return
	}
	l.inGlinks = want
	i, found := slices.BinarySearchFunc(n.glinks, l.id, linkCmp)
	switch {
	case want && !found:
		n.glinks = slices.Insert(n.glinks, i, l)
	case !want && found:
		n.glinks = slices.Delete(n.glinks, i, i+1)
	}
	if !want {
		l.heard = nil // a plain or closed link leaves nothing out
	}
}
