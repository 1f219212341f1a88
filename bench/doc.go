// Package bench compares Grapevine with hashicorp/memberlist on loopback,
// in one process, under the same measurements:
//
//   - join propagation: once an N-node cluster has converged, a new node
//     joins through one random member; for every existing node, the time
//     from the new node's start until that node knows it. Memberlist's
//     clock stops at EventDelegate.NotifyJoin, Grapevine's at the
//     daemon's "accepted" event for the new node's record (read from the
//     node's own logger, so no daemon or core API is involved).
//   - steady-state traffic: the bytes each node writes to its sockets per
//     second over a quiet window after convergence. Memberlist's transport
//     is a memberlist.NetTransport wrapped to count UDP payloads and the
//     bytes written on its TCP streams; Grapevine's is the real TLS
//     transport, counting the bytes written on the TCP connection under
//     TLS (records, headers, handshakes: everything but IP and TCP
//     headers).
//
// Each system runs with its defaults: memberlist.DefaultLANConfig, and
// Grapevine's production rules with its default transport heartbeat.
// Run compares one cluster size; cmd/compare runs several and prints the
// Markdown report (see README.md).
package bench
