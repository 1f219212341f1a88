// Package foolscap speaks enough of Foolscap (the RPC protocol of
// Tahoe-LAFS, python3-foolscap 21.7) for a Tahoe node to use this process
// as its introducer: we accept connections, serve registered objects,
// receive the peer's Referenceables and call them back.
//
// # Identity
//
// A Tub is a private key plus self-signed certificate (RSA 2048, CN
// "newpb_thingy") stored as one PEM file: CERTIFICATE then PRIVATE KEY
// (PKCS#8), the layout foolscap writes; foolscap can load our file and we
// can load its. The tub ID is base32 (RFC 4648, lower case, unpadded) of
// SHA-1 of the certificate DER: 32 characters. A FURL is
// "pb://TUBID@tcp:HOST:PORT,tcp:HOST2:PORT2/NAME"; NAME (the swissnum) is
// base32 of 20 random bytes.
//
// # Negotiation
//
// The connecting side sends, in plain text:
//
//	GET /id/<target tub ID> HTTP/1.1\r\n
//	Host: <host:port>\r\n
//	Upgrade: TLS/1.0\r\n
//	Connection: Upgrade\r\n
//	\r\n
//
// The listener answers "HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.0,
// PB/1.0\r\nConnection: Upgrade\r\n\r\n", or "HTTP/1.1 500 Internal Server
// Error: <reason>\r\n\r\n" and hangs up (wrong tub ID, not a GET /id/).
// Both sides then start TLS: the listener is the TLS server and requires
// a client certificate. Any certificate is accepted; the peer's tub ID is
// the hash of its leaf certificate. Blocks are at most 4096 bytes.
//
// Over TLS each side sends a hello block: "key: value\r\n" lines, keys
// sorted and lower case, ended by an empty line. Ours:
//
//	banana-negotiation-range: 3 3
//	initial-vocab-table-range: 0 1
//	my-incarnation: <16 hex digits, random per Tub load>
//	my-tub-id: <our tub ID>
//	last-connection: <master incarnation> <seqnum>   (connecting side only; "none 0" if unknown)
//
// my-tub-id must equal the hash of the sender's certificate. The side
// with the larger tub ID (string comparison) is the master. It sends the
// decision block and both switch to Banana:
//
//	banana-decision-version: 3
//	current-connection: <master incarnation> <seqnum>
//	initial-vocab-table-index: 1 bb33     (index and vocabHash of the table)
//
// On failure a side sends "banana-decision-version: 1" and "error: <msg>"
// instead and hangs up. If the master already has a connection to the same
// tub it keeps the old one ("Duplicate connection") unless the offer shows
// the old one is stale: a different my-incarnation (peer restarted), a
// last-connection naming a previous incarnation of ours, or naming the
// current connection's seqnum; then the old connection is closed
// (ErrReplaced). The non-master drops its old connection when a decision
// arrives. The whole negotiation is bounded by Options.HandshakeTimeout.
//
// # Banana tokens
//
// A token is header digits, a type byte, then a body. Header digits are
// bytes below 0x80 forming a little-endian base-128 number (at most 64
// digits; 0 is written as one 0x00 byte). Type bytes:
//
//	0x81 INT      header = value, 0 <= value < 2**31
//	0x82 STRING   header = length, body = bytes (Python bytes)
//	0x83 NEG      header = -value, -2**31 <= value < 0
//	0x84 FLOAT    no header, body = 8-byte big-endian IEEE double
//	0x85 LONGINT  header = length, body = big-endian magnitude (>= 2**31)
//	0x86 LONGNEG  same, negated (< -2**31)
//	0x87 VOCAB    header = index into the vocab table (stands for a STRING)
//	0x88 OPEN     header = count of OPENs sent so far on the connection
//	0x89 CLOSE    header = the count of the matching OPEN
//	0x8A ABORT    sender gave up on the open sequence; discard it
//	0x8D ERROR    header = length, body = message; sender hangs up
//	0x8E PING     optional header echoed in the PONG
//	0x8F PONG
//
// (foolscap's banana.rst says 0x8B/0x8C for LONGINT/LONGNEG; the code,
// and therefore the wire, uses 0x85/0x86. 0x80 LIST is refused.)
//
// # Vocab
//
// Both directions start with initial vocab table 1 (or 0 = empty, if
// negotiated): none boolean reference dict list tuple set immutable-set
// unicode set-vocab add-vocab call arguments answer error my-reference
// your-reference their-reference copyable instance module class method
// function attrdict (indexes 0..24). Every byte string equal to a table
// word is sent as VOCAB, as foolscap does. We accept (set-vocab k v ...)
// and (add-vocab k v) at top level (at most Options.MaxVocab entries, 100
// bytes each) but never send them.
//
// # Sequences
//
// A sequence is OPEN, its opentype string(s), children, CLOSE. Values:
//
//	(none)                        nil
//	(boolean INT)                 bool
//	(unicode STRING)              string (UTF-8)
//	(decimal STRING)              Decimal
//	(list ...) (tuple ...)        List, Tuple
//	(set ...) (immutable-set ...) Set, FrozenSet
//	(dict k v k v ...)            Dict, wire order
//	(reference N)                 the earlier object whose OPEN had count N,
//	                              within one top-level message; references
//	                              to unfinished objects (cycles) are refused
//	(copyable NAME k v ...)       *Copyable, or *RemoteError for
//	                              NAME twisted.python.failure.Failure
//	(my-reference CLID [IFACE [FURL]]) a peer object: *RemoteRef. IFACE
//	                              and FURL come only the first time the
//	                              peer sends that CLID; negative CLIDs are
//	                              bound methods
//	(your-reference CLID)         one of our objects sent back: the Object
//	(their-reference GIFT FURL)   third-party reference: refused
//
// Top-level messages (PB):
//
//	(call REQID CLID METHOD (arguments NPOS pos... name value ...))
//	(answer REQID VALUE)
//	(error REQID (copyable twisted.python.failure.Failure
//	       value V type T traceback TB parents (list ...)))
//
// REQID 0 in a call means no answer is wanted. CLID 0 is the broker
// (RIBroker): getReferenceByName(name=bytes) returns a my-reference to a
// registered Object (KeyError failure if unknown), decref(clid, count)
// drops references the peer held, decgift is accepted and ignored.
// Keyword arguments are sent sorted by name. Python dicts arrive with keys
// sorted (foolscap's dict slicer sorts them); we send Dict in slice order.
// When we send an Object, the first my-reference carries its
// RemoteInterfaceName; CLIDs are allocated from 1 and freed by decref.
// When a *RemoteRef is released (Release or garbage collection) we call
// decref(clid=, count=) on the peer's broker with the number of times we
// received it.
//
// A Failure we send has value (<= 1000 bytes), type (<= 200), traceback
// and parents (each <= 200) in that order. A Go error becomes
// builtins.Exception; return *RemoteError to choose the type, or
// NewRemoteViolation for foolscap.tokens.Violation.
//
// # Errors and limits
//
// Protocol errors (ProtocolError: bad token, lost OPEN/CLOSE sync,
// breached limit) make us send an ERROR token and drop the connection.
// Semantic problems (Violation: unknown opentype, CLID or request ID,
// ABORT) discard the rest of that top-level message; an affected call gets
// a Violation failure unless the sender aborted it. Limits (Options):
// STRING body MaxTokenSize (640 KiB), LONGINT 1024 bytes, ERROR 1000
// bytes, MaxMessageSize bytes and MaxItems tokens per top-level message,
// MaxOpenDepth nesting, MaxVocab entries, MaxRemoteRefs peer objects,
// MaxPendingCalls queued inbound calls (more get an error answer),
// MaxConnections connections.
//
// # Calls and keepalive
//
// Inbound calls on one connection run one at a time, in arrival order
// (foolscap's ordering guarantee); answers to our own calls are read
// concurrently, so a handler may call back into the same peer. We PING
// after KeepaliveInterval without inbound data and drop the connection
// after IdleTimeout without any (ErrIdleTimeout); PINGs are answered with
// PONGs.
package foolscap
