package core

import (
	"time"

	"grapevine/announce"
)

// Accessors for the tests only.

func (n *Node) DialTimeout(id announce.NodeID) time.Duration { return n.dialTimeoutFor(id) }
func (n *Node) GossipLinks() (mine, all int)                 { return n.gossipLinks() }
func (n *Node) Sources() map[announce.NodeID]int             { return n.sources() }
