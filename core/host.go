package core

// Hosting: servers that cannot sign fresh seqnums or take gossip
// connections (Tahoe-LAFS nodes publishing through a local Foolscap
// introducer endpoint) are kept live by the Grapevine node beside them.
// docs/design.md §9 gives the rules and the trust argument.

import (
	"slices"

	"grapevine/announce"
	"grapevine/records"
)

// FieldHosts lists, in a host's own records, the servers it hosts now.
const FieldHosts = "grapevine-hosts"

// MaxHosted bounds the servers one host may vouch for; the rest of a
// longer list is ignored.
const MaxHosted = 16

// Publish: a local publisher (a Tahoe node on the introducer endpoint)
// handed over a signed record. It is admitted like an import; if it is
// held afterwards its server counts as hosted here until Unpublished,
// unless NotServer says why the publisher is not that server (then the
// record is only admitted).
type Publish struct {
	Rec       announce.Signed
	NotServer string
}

// Unpublished: the last local publisher connection for ID is gone.
type Unpublished struct {
	ID announce.NodeID
}

func (Publish) isInput()     {}
func (Unpublished) isInput() {}

func (n *Node) onPublish(s announce.Signed, why string) {
	if s.Key == string(n.id) {
		n.emit(Event{Kind: EvRejected, Peer: n.id, Reason: "own-key",
			Facts: facts("why", "a local publisher signed with this node's key; Grapevine never shares a key with Tahoe")})
		return
	}
	n.admit(s, "")
	held, ok := n.store.Lookup(s)
	if !ok {
		return
	}
	if why != "" {
		n.emit(Event{Kind: EvUnhosted, Peer: held.ID, Service: held.ServiceName, Reason: "publisher-not-server", Facts: facts("why", why)})
		return
	}
	p := n.peer(held.ID)
	if p.hostedHere {
		return
	}
	if len(n.hostedList()) >= MaxHosted {
		n.emit(Event{Kind: EvOverCap, Peer: held.ID, Reason: "hosted-cap", Facts: facts("cap", MaxHosted)})
		return
	}
	p.hostedHere = true
	p.LastGood = n.elapsed
	n.emit(Event{Kind: EvHosted, Peer: held.ID, Service: held.ServiceName, Reason: "publisher-connected", Facts: facts("seqnum", held.Seqnum)})
	n.reindex(held.ID)
	n.republishHosts()
}

func (n *Node) onUnpublished(id announce.NodeID) {
	p, ok := n.peers[id]
	if !ok || !p.hostedHere {
		return
	}
	p.hostedHere = false
	p.fresh = false
	p.LastGood = n.elapsed
	n.emit(Event{Kind: EvUnhosted, Peer: id, Reason: "publisher-gone"})
	n.republishHosts()
	n.gcPeer(id)
}

// hostedList returns the servers hosted here, sorted.
func (n *Node) hostedList() []announce.NodeID {
	var out []announce.NodeID
	for id, p := range n.peers {
		if p.hostedHere {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Hosted returns the servers hosted here now.
func (n *Node) Hosted() []announce.NodeID { return n.hostedList() }

// HostsOf returns the hosts whose held records vouch for id.
func (n *Node) HostsOf(id announce.NodeID) []announce.NodeID {
	var out []announce.NodeID
	for h := range n.hostedBy[id] {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// ServiceHost is the record a node that announces no service signs while
// it hosts servers: it carries the hosts list and the node's locators.
const ServiceHost = "grapevine-host"

// templates is what the node signs now: its services, or while it hosts
// and has none, a ServiceHost record.
func (n *Node) templates() []announce.Template {
	if len(n.svcs) > 0 || n.leaving || len(n.hostedList()) == 0 {
		return n.svcs
	}
	return []announce.Template{{Nickname: n.nick, Service: announce.Service{Name: ServiceHost}, Locators: n.locs}}
}

// republishHosts re-signs own records so that they carry the new list.
func (n *Node) republishHosts() {
	if n.leaving {
		return
	}
	n.withdrawMissing()
	n.publish("hosted-changed")
}

// hostsField is what publish adds to each own record.
func (n *Node) hostsField() (announce.Member, bool) {
	ids := n.hostedList()
	if len(ids) == 0 {
		return announce.Member{}, false
	}
	vs := make([]announce.Value, len(ids))
	for i, id := range ids {
		vs[i] = announce.Str(string(id))
	}
	return announce.Member{Key: FieldHosts, Value: announce.List(vs...)}, true
}

// hostsIn reads a record's hosts list: well-formed v0- IDs other than the
// host's own, at most MaxHosted.
func hostsIn(a *announce.Announcement) []announce.NodeID {
	v, ok := a.Body.Get(FieldHosts)
	if !ok || a.Withdrawn() {
		return nil
	}
	var out []announce.NodeID
	for _, it := range v.Items {
		if it.Kind != announce.String || announce.NodeID(it.Str) == a.ID {
			continue
		}
		id, err := announce.ParseNodeID(it.Str)
		if err != nil || slices.Contains(out, id) {
			continue
		}
		if out = append(out, id); len(out) == MaxHosted {
			break
		}
	}
	return out
}

// updateHosts recomputes what host h vouches for from its held records.
// fresh says a new seqnum of h was just admitted: every server it lists
// was seen good now.
func (n *Node) updateHosts(h announce.NodeID, fresh bool) {
	if h == n.id {
		return
	}
	var now []announce.NodeID
	for _, a := range n.recordsOf(h) {
		for _, id := range hostsIn(a) {
			if !slices.Contains(now, id) {
				now = append(now, id)
			}
		}
	}
	old := n.hostsOf[h]
	for _, id := range old {
		if slices.Contains(now, id) {
			continue
		}
		delete(n.hostedBy[id], h)
		if len(n.hostedBy[id]) == 0 {
			delete(n.hostedBy, id)
		}
		if p, ok := n.peers[id]; ok && p.records > 0 {
			// The host's word ends its freshness too: its own record is
			// old, and a first sighting of it must not outlive the vouch.
			p.fresh = false
			if n.liveDirect(h) {
				p.LastGood = max(p.LastGood, n.elapsed)
			}
			n.emit(Event{Kind: EvUnhosted, Peer: id, Reason: "host-stopped-vouching", Facts: facts("host", h.Short())})
		}
	}
	if len(now) == 0 {
		delete(n.hostsOf, h)
	} else {
		n.hostsOf[h] = now
	}
	for _, id := range now {
		if n.hostedBy[id] == nil {
			n.hostedBy[id] = map[announce.NodeID]struct{}{}
		}
		_, had := n.hostedBy[id][h]
		n.hostedBy[id][h] = struct{}{}
		p, ok := n.peers[id]
		if !ok || p.records == 0 {
			continue
		}
		if fresh {
			p.LastGood = n.elapsed
		}
		if !had {
			n.reindex(id)
		}
	}
}

// liveViaHost: a host that is itself live (not through hosting) vouches
// for id.
func (n *Node) liveViaHost(id announce.NodeID) bool {
	for h := range n.hostedBy[id] {
		if n.liveDirect(h) {
			return true
		}
	}
	return false
}

// hosted: id is kept live by hosting, here or elsewhere.
func (n *Node) hosted(p *peer) bool {
	return p.hostedHere || len(n.hostedBy[p.ID]) > 0
}

// reindex puts id's records back in the index so that neighbours see them
// now that it became live.
func (n *Node) reindex(id announce.NodeID) {
	for _, a := range n.recordsOf(id) {
		n.index(records.Key{Service: a.ServiceName, ID: a.ID})
	}
}

// reindexHostedBy does so for every server h vouches for (h became live).
func (n *Node) reindexHostedBy(h announce.NodeID) {
	for _, id := range n.hostsOf[h] {
		n.reindex(id)
	}
}

// LiveRecords returns the held records of service whose servers are live
// (R1): what the node passes on, its own included once durable, ordered
// by ID.
func (n *Node) LiveRecords(service string) []announce.Signed {
	var out []announce.Signed
	for _, a := range n.store.Records() {
		if a.ServiceName == service && !a.Withdrawn() && n.live(a.ID) && !n.unpersisted(records.Key{Service: service, ID: a.ID}) {
			out = append(out, a.Signed)
		}
	}
	return out
}
