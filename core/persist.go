package core

// Persist before send: the core holds back its own records until the
// driver acknowledges that the counter they carry is on disk.

import (
	"cmp"
	"maps"
	"slices"

	"grapevine/announce"
	"grapevine/records"
)

// Persisted: the driver wrote the announcement counter up to Counter
// durably. Own records with a seqnum above the last acknowledged counter
// never leave the node; this releases them. A driver whose write failed
// does not send it, and the node keeps them to itself.
type Persisted struct {
	Counter int64
}

func (Persisted) isInput() {}

// Durable returns the counter the driver last acknowledged (Persisted),
// or the one restored from State.
func (n *Node) Durable() int64 { return n.durable }

// unpersisted reports whether k is an own key whose held record or
// withdrawal carries a seqnum above the acknowledged counter.
func (n *Node) unpersisted(k records.Key) bool {
	if k.ID != n.id {
		return false
	}
	if a, ok := n.store.Get(k); ok {
		return a.Seqnum > n.durable
	}
	if t, ok := n.store.Tombstone(k); ok {
		return t.Seqnum > n.durable
	}
	return false
}

// holdBack keeps an unpersisted own key out of the change index, so no
// digest lists it and no neighbour's cursor passes it; onPersisted
// indexes it, after every cursor.
func (n *Node) holdBack(k records.Key) bool {
	if !n.unpersisted(k) {
		return false
	}
	n.unindex(k)
	if n.heldOwn == nil {
		n.heldOwn = map[records.Key]struct{}{}
	}
	n.heldOwn[k] = struct{}{}
	return true
}

func (n *Node) onPersisted(c int64) {
	c = min(c, n.counter) // never ahead of what was signed
	if c <= n.durable {
		return
	}
	n.durable = c
	keys := slices.SortedFunc(maps.Keys(n.heldOwn), func(a, b records.Key) int { return cmp.Compare(a.Service, b.Service) })
	changed := n.ready.StateChanged
	for _, k := range keys {
		if n.unpersisted(k) {
			continue
		}
		delete(n.heldOwn, k)
		if _, ok := n.item(k, ""); ok {
			n.index(k)
		}
	}
	n.ready.StateChanged = changed // the index is not persisted
}

// PassedOn returns up to limit held records the node passes on now (R1),
// its own only once durable, ordered by ID.
func (n *Node) PassedOn(limit int) []announce.Signed {
	var out []announce.Signed
	for _, a := range n.store.Records() {
		if len(out) == limit {
			break
		}
		if n.live(a.ID) && !n.unpersisted(records.Key{Service: a.ServiceName, ID: a.ID}) {
			out = append(out, a.Signed)
		}
	}
	return out
}
