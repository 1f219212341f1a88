package core

import (
	"time"

	"grapevine/announce"
)

// Accessors for the tests only.

func (n *Node) DialTimeout(id announce.NodeID) time.Duration { return n.dialTimeoutFor(id) }
func (n *Node) GossipLinks() (mine, all int)                 { return n.gossipLinks() }
func (n *Node) Sources() map[announce.NodeID]int             { return n.sources() }

// Cursor is how far this node has seen id's index.
func (n *Node) Cursor(id announce.NodeID) uint64 {
	if l := n.linkOf(id); l != nil {
		return l.cursor
	}
	return 0
}

// HashOf is the digest hash of a signed record.
func HashOf(s announce.Signed) uint64 { return hashOf(s) }
