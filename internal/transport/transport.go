package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/wire"
)

// Transport carries core messages between authenticated nodes and reports what happens as core inputs.
//
// Inputs about a peer come in order: Connected, then its Received and
// RTTSample inputs, then Disconnected (one per connection lost, whatever
// the cause, Disconnect included). A Dial ends in Connected or DialFailed
// unless cancelled; a Dial for a connected peer repeats Connected at once,
// one for a peer already being dialled is ignored. Dial tries the
// locators in order until one connects or the timeout passes. Methods
// never block on the Inputs channel and are safe for concurrent use;
// after Close they do nothing.
type Transport interface {
	Dial(peer announce.NodeID, locators []string, timeout time.Duration) // result arrives as core.Connected or core.DialFailed
	CancelDial(peer announce.NodeID)
	Send(peer announce.NodeID, m core.Msg) // queued; if not connected, dropped (the core resyncs)
	Disconnect(peer announce.NodeID)
	Inputs() <-chan core.Input // Connected, Disconnected, DialFailed, Received, RTTSample
	Addr() string              // the listening address, host:port
	Close() error
}

// Reasons: the Err of DialFailed and Disconnected inputs, and
// Rejection.Reason. They are stable words for logs, events and metrics.
const (
	// Dials and handshakes.
	ReasonRefused        = "refused"         // nothing listens at the address
	ReasonUnreachable    = "unreachable"     // no route, bad host, other dial errors
	ReasonTimeout        = "timeout"         // the dial or handshake ran out of time
	ReasonBadLocator     = "bad-locator"     // not a gv:// locator for the peer dialled
	ReasonNoLocator      = "no-locator"      // Dial was given no locators
	ReasonKeyMismatch    = "key-mismatch"    // the address answered with another key
	ReasonBadCertificate = "bad-certificate" // not one self-signed ed25519 certificate
	ReasonProtocol       = "protocol-version"
	ReasonSelf           = "self"      // the peer has our own key
	ReasonHandshake      = "handshake" // any other TLS failure
	// Inbound connections refused or cut before the handshake ends.
	ReasonTooManyInbound    = "too-many-inbound"    // MaxInbound connections were open
	ReasonTooManyHandshakes = "too-many-handshakes" // MaxHandshakes were in progress, none evictable
	ReasonAddressBusy       = "address-busy"        // MaxHandshakesPerAddress from its address were in progress
	ReasonEvicted           = "evicted"             // its slot went to a connection from a less busy address
	ReasonHelloTimeout      = "hello-timeout"       // no whole ClientHello within HelloTimeout
	// Connections.
	ReasonClosed        = "closed"          // the peer closed it
	ReasonReset         = "reset"           // a read or write failed
	ReasonIdle          = "idle-timeout"    // nothing read for IdleTimeout
	ReasonWriteTimeout  = "write-timeout"   // a frame took over WriteTimeout to write
	ReasonQueueFull     = "send-queue-full" // SendQueue frames were waiting
	ReasonFrameTooLarge = "frame-too-large" // the peer sent a frame over MaxFrame
	ReasonBadMessage    = "bad-message"     // the peer sent bytes wire.Decode refused
	ReasonFrameBudget   = "frame-budget"    // closed to free FrameBudget, or waited for it too long
	ReasonLocal         = "local"           // Disconnect was called
)

// Rejection describes a refused handshake, inbound or outbound.
type Rejection struct {
	Addr    string          // the remote address
	Peer    announce.NodeID // the key the remote proved, if it got that far
	Inbound bool
	Reason  string // ReasonKeyMismatch, ReasonBadCertificate, ReasonProtocol, ReasonSelf, ReasonTimeout, ReasonHandshake, or for inbound ones also ReasonHelloTimeout, ReasonEvicted, ReasonTooMany*, ReasonAddressBusy
	Err     error  // *KeyMismatchError, *AuthError, or the TLS error; nil if refused before the handshake
}

// KeyMismatchError: a dialled address proved a key other than the one
// its locator names.
type KeyMismatchError struct {
	Want, Got announce.NodeID
	Addr      string
}

func (e *KeyMismatchError) Error() string {
	return fmt.Sprintf("transport: %s presented key %s, the locator wants %s", e.Addr, e.Got, e.Want)
}

// AuthError: the peer's certificate or protocol is unacceptable. Reason is
// ReasonBadCertificate, ReasonProtocol or ReasonSelf.
type AuthError struct {
	Reason string
	Detail string
}

func (e *AuthError) Error() string { return "transport: " + e.Reason + ": " + e.Detail }

// Options configure a transport. The zero value of each field but Key
// and ListenAddr means its default.
type Options struct {
	// Key is the node's key: the certificate's key, and the node ID peers
	// see.
	Key announce.PrivateKey

	// ListenAddr is the TCP address to listen on, host:port; port 0 picks
	// a free one. For a memory endpoint, "mem:N" asks for that address and
	// "" takes the next free one.
	ListenAddr string

	// HeartbeatInterval: each side pings once as the connection comes up;
	// after that the dialling side checks every HeartbeatInterval and pings
	// a link that was quiet (no frame written or read) for a whole
	// interval. The check after a ping finds it just under an interval
	// old, so an idle link carries one ping every 2 × HeartbeatInterval.
	// Each pong is an RTTSample. Default 2 min (a ping every 4 min when
	// idle, as foolscap's keepalive). Over a link to a grapevine/1 peer at
	// most 30 s, and IdleTimeout at most 90 s: its timings.
	HeartbeatInterval time.Duration

	// IdleTimeout: a connection on which no frame was read for this long
	// is closed. It must exceed HeartbeatInterval. Default
	// 3 × HeartbeatInterval (6 min).
	IdleTimeout time.Duration

	// kernelKeepAlive turns the kernel's TCP keepalive on at this period
	// (benchmarks only: the baseline). By default it is off; see
	// tcpKeepAlive.
	kernelKeepAlive time.Duration
	// readBuffer puts a buffer of this size under each connection's reads
	// (benchmarks only: the baseline). By default reads use TLS's own.
	readBuffer int

	// WriteTimeout bounds the writing of each frame. Default 10 s.
	WriteTimeout time.Duration

	// HandshakeTimeout bounds a TLS handshake, inbound or outbound.
	// Default 10 s.
	HandshakeTimeout time.Duration

	// HelloTimeout: an inbound connection whose whole TLS ClientHello has
	// not arrived this long after it was accepted is closed
	// (ReasonHelloTimeout). Default 2 s, at most HandshakeTimeout.
	HelloTimeout time.Duration

	// MaxHandshakes bounds concurrent inbound handshakes, and
	// MaxHandshakesPerAddress those from one address (an IPv4 address or
	// an IPv6 /64). Accepting never waits: a connection over either is
	// closed at once (ReasonTooManyHandshakes, ReasonAddressBusy), except
	// that when all MaxHandshakes are taken, one from an address with at
	// least two more in progress than the newcomer's is evicted
	// (ReasonEvicted, its oldest) to make room. Defaults 64 and 8.
	MaxHandshakes           int
	MaxHandshakesPerAddress int

	// MaxInbound bounds the inbound connections open at once, handshakes
	// included; one over it is closed as soon as it is accepted
	// (ReasonTooManyInbound). Outbound dials are bounded by the core (R3).
	// Default 1024.
	//
	// Refusals before a handshake starts go to OnReject; without it they
	// are logged at most once a second per reason, with a count.
	MaxInbound int

	// MaxFrame bounds a message read or sent, in bytes. Default and
	// upper limit wire.MaxFrame. A message over it is not sent (and
	// logged); a peer that sends one is disconnected.
	MaxFrame int

	// FrameBudget bounds, across all connections, the bytes of frames
	// being read or read and not yet handed to the core (one budget, not
	// one per connection). A frame's buffer takes budget as its bytes
	// arrive. A reader short of it stops reading (TCP pushes back on the
	// peer); after 250 ms it closes the connection whose unfinished frame
	// holds the most, if that is more than its own (ReasonFrameBudget),
	// else it waits on, at most IdleTimeout (then ReasonFrameBudget for
	// itself). Default 16 × MaxFrame (32 MiB), at least 2 × MaxFrame.
	FrameBudget int

	// ReadRate bounds, in bytes per second, what is read from one
	// connection, in bursts of ReadBurst: a faster peer is read more
	// slowly and TCP pushes back on it, so one neighbour cannot take the
	// node's CPU from the others. Defaults 4 MiB/s and 2 × MaxFrame; a
	// full sync of 4096 records of 1 KiB fits in one burst.
	ReadRate  float64
	ReadBurst int

	// SendQueue bounds the frames waiting to be written on one
	// connection, and SendQueueBytes their bytes. A connection whose queue
	// is full is closed: the peer is not reading, and the core resyncs
	// after reconnecting. Defaults 256 and 16 MiB.
	SendQueue      int
	SendQueueBytes int

	// Logger receives connection events (Info) and dropped messages
	// (Warn). Nil discards them.
	Logger *slog.Logger

	// OnReject, if set, is called for every refused handshake instead of
	// logging it. It is called from transport goroutines: it must be safe
	// for concurrent use and return quickly.
	OnReject func(Rejection)
}

// Defaults.
const (
	DefaultHeartbeat      = 2 * time.Minute
	DefaultWriteTimeout   = 10 * time.Second
	DefaultHandshake      = 10 * time.Second
	DefaultHello          = 2 * time.Second
	DefaultMaxHandshakes  = 64
	DefaultMaxPerAddress  = 8
	DefaultMaxInbound     = 1024
	DefaultSendQueue      = 256
	DefaultReadRate       = 4 << 20
	DefaultSendQueueBytes = 16 << 20
	// DefaultDialTimeout applies to a Dial whose timeout is not positive.
	DefaultDialTimeout = 20 * time.Second
	// InputQueue is the buffer of the Inputs channel. It is small on
	// purpose: a frame from one neighbour waits behind at most this many
	// (and one per other connection), so a flooding neighbour delays the
	// others little, and decoded frames waiting in memory stay few.
	InputQueue = 16
)

// tcpKeepAlive is the KeepAlive of the transport's dialer and listener:
// off. The heartbeat and IdleTimeout already find a dead peer, and Go's
// default (a probe from each end after every 15 s of quiet) sent an idle
// link nearly three times the packets the heartbeat does, for nothing
// (docs/benchmarks.md, "Idle links").
func (o Options) tcpKeepAlive() time.Duration {
	if o.kernelKeepAlive > 0 {
		return o.kernelKeepAlive
	}
	return -1
}

func (o Options) withDefaults() (Options, error) {
	if !o.Key.Valid() {
		return o, errors.New("transport: Options.Key is not set")
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeat
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 3 * o.HeartbeatInterval
	}
	if o.IdleTimeout <= o.HeartbeatInterval {
		return o, fmt.Errorf("transport: IdleTimeout %v must exceed HeartbeatInterval %v", o.IdleTimeout, o.HeartbeatInterval)
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshake
	}
	if o.HelloTimeout <= 0 {
		o.HelloTimeout = DefaultHello
	}
	o.HelloTimeout = min(o.HelloTimeout, o.HandshakeTimeout)
	if o.MaxHandshakes <= 0 {
		o.MaxHandshakes = DefaultMaxHandshakes
	}
	if o.MaxHandshakesPerAddress <= 0 {
		o.MaxHandshakesPerAddress = DefaultMaxPerAddress
	}
	if o.MaxInbound <= 0 {
		o.MaxInbound = DefaultMaxInbound
	}
	if o.MaxFrame <= 0 || o.MaxFrame > wire.MaxFrame {
		o.MaxFrame = wire.MaxFrame
	}
	if o.FrameBudget <= 0 {
		o.FrameBudget = 16 * o.MaxFrame
	}
	o.FrameBudget = max(o.FrameBudget, 2*o.MaxFrame)
	if o.SendQueue <= 0 {
		o.SendQueue = DefaultSendQueue
	}
	if o.SendQueueBytes < o.MaxFrame {
		o.SendQueueBytes = max(DefaultSendQueueBytes, o.MaxFrame)
	}
	if o.ReadRate <= 0 {
		o.ReadRate = DefaultReadRate
	}
	if o.ReadBurst < o.MaxFrame {
		o.ReadBurst = 2 * o.MaxFrame
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
