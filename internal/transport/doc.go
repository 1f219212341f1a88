// Package transport carries core messages between nodes over
// authenticated connections, and reports what happens as core inputs.
//
// Transport is the interface the daemon drives. Listen returns the real
// one (mutual TLS 1.3 over TCP); NewMemNetwork an in-memory network whose
// endpoints exchange the same frames over in-memory pipes, for tests.
//
// # Security model
//
// A node is its ed25519 key; its ID is announce.IDOf(key). Each node
// presents a self-signed X.509 certificate for that key, both when
// dialling and when accepting, and each side requires one from the other.
// Only TLS 1.3 and the ALPN protocols "grapevine/2" and, from older nodes,
// "grapevine/1" are accepted (over the latter the heartbeat keeps the
// older timings). There is
// no CA, no host name, no certificate expiry: a peer is authenticated by
// proving, in the TLS 1.3 handshake, that it holds the private key of the
// one ed25519 certificate it presents, and that certificate must be
// signed by its own key. The peer's ID derives from that key.
//
// What is pinned: a dial to gv://v0-KEY@host:port succeeds only if the
// address proves KEY; anything else is refused with a *KeyMismatchError
// and the dial moves on to the next locator. Inbound connections are
// accepted from any key (the core decides what to make of a peer) except
// our own. The address itself is not authenticated. Refused handshakes go
// to Options.OnReject (or the log) with a reason.
//
// The channel is confidential and integrity-protected by TLS. Messages
// are not signed by the transport; the records inside them are signed by
// their publishers and verified by the core.
//
// # Connections
//
// There is one connection per peer in use. If both sides dial at once,
// both use the connection dialled by the smaller node ID; the side that
// dialled the other one closes it gracefully once the winner has carried
// a frame (so the far side has it too), and nothing is reported or lost.
// A newer connection dialled by the same side replaces an older one.
// Frames are those of package
// wire: a 4-byte length, then a message; a frame over Options.MaxFrame or
// bytes wire.Decode refuses end the connection. Frames being read, or read
// and not yet handed to the core, share one Options.FrameBudget across all
// connections. Each side pings once as
// the link comes up; then the dialling side pings a link quiet for a
// whole HeartbeatInterval, checked once an interval (so an idle link is
// pinged every 2 × HeartbeatInterval). Each pong is a core.RTTSample, and a connection
// with nothing read for IdleTimeout is closed. The kernel's TCP keepalive
// is off: the heartbeat does its work. Writes have a deadline per
// frame; a peer that lets SendQueue frames pile up is disconnected rather
// than buffered for. Disconnected, DialFailed and Rejection carry the
// Reason* words.
//
// Inbound handshakes: the accept loop never waits. A connection over
// MaxInbound, MaxHandshakes or MaxHandshakesPerAddress is closed at once
// (when all MaxHandshakes are taken, one from a much busier address may
// be evicted instead), and one whose ClientHello is not all in within
// HelloTimeout is closed then. Each refusal carries a Reason* word.
//
// Goroutines: one accept loop, one per inbound handshake (at most
// MaxHandshakes at once), one per dial, and a reader and a writer per
// connection. Close ends them all before closing Inputs.
package transport
