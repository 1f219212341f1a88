package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/wire"
)

// connector opens an authenticated connection to loc.ID at loc.Addr. It
// reports refused handshakes itself.
type connector func(ctx context.Context, loc announce.Locator) (*conn, error)

// engine is what the TCP and memory transports share: the peer table,
// dials, the per-connection reader and writer, heartbeats and the
// ordering of inputs.
type engine struct {
	self    announce.NodeID
	opts    Options
	log     *slog.Logger
	connect connector
	inputs  chan core.Input
	frames  *frameBudget
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once

	// emitMu is held while an input is decided and sent, so that inputs
	// about one peer leave in the order their causes happened. It is taken
	// before mu, never while holding it.
	emitMu sync.Mutex

	mu     sync.Mutex
	closed bool
	peers  map[announce.NodeID]*slot // peers with a connection
	dials  map[announce.NodeID]*dialing
}

// slot holds a peer's connections: at most one in each direction, and
// the one in use.
type slot struct {
	conns [2]*conn // [0] dialled by us, [1] inbound
	cur   *conn
}

func dir(c *conn) int {
	if c.inbound {
		return 1
	}
	return 0
}

// current returns the peer's connection in use, or nil. The caller holds mu.
func (e *engine) current(peer announce.NodeID) *conn {
	if s := e.peers[peer]; s != nil {
		return s.cur
	}
	return nil
}

// spare reports whether c is attached but not in use.
func (e *engine) spare(c *conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.attached(c) && e.peers[c.peer].cur != c
}

// attached reports whether c is one of its peer's connections. The caller
// holds mu.
func (e *engine) attached(c *conn) bool {
	s := e.peers[c.peer]
	return s != nil && s.conns[dir(c)] == c
}

type dialing struct {
	cancel    context.CancelFunc
	cancelled bool // by CancelDial: report nothing
}

func newEngine(opts Options, connect connector) *engine {
	ctx, cancel := context.WithCancel(context.Background())
	return &engine{
		self:    opts.Key.ID(),
		opts:    opts,
		log:     opts.Logger,
		connect: connect,
		inputs:  make(chan core.Input, InputQueue),
		frames:  newFrameBudget(opts.FrameBudget),
		ctx:     ctx,
		cancel:  cancel,
		peers:   map[announce.NodeID]*slot{},
		dials:   map[announce.NodeID]*dialing{},
	}
}

// send delivers an input; the caller holds emitMu. After Close it drops it.
func (e *engine) send(in core.Input) {
	select {
	case e.inputs <- in:
	case <-e.ctx.Done():
	}
}

// sendFrom delivers an input about c's peer if c is still attached.
func (e *engine) sendFrom(c *conn, in core.Input) {
	e.emitMu.Lock()
	defer e.emitMu.Unlock()
	e.mu.Lock()
	ok := e.attached(c)
	e.mu.Unlock()
	if ok {
		e.send(in)
	}
}

// goSend delivers an input from a new goroutine, for methods that must
// not block. The caller holds mu, with closed false.
func (e *engine) goSend(f func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
}

func (e *engine) reject(r Rejection) {
	if e.opts.OnReject != nil {
		e.opts.OnReject(r)
		return
	}
	e.log.Info("handshake refused", "addr", r.Addr, "peer", r.Peer.Short(), "inbound", r.Inbound, "reason", r.Reason, "err", r.Err)
}

// Dial implements Transport.
func (e *engine) Dial(peer announce.NodeID, locators []string, timeout time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	if c := e.current(peer); c != nil {
		e.goSend(func() { e.sendFrom(c, core.Connected{Peer: peer, Inbound: c.inbound}) })
		return
	}
	if e.dials[peer] != nil {
		return // the dial in flight will report
	}
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	ctx, cancel := context.WithTimeout(e.ctx, timeout)
	d := &dialing{cancel: cancel}
	e.dials[peer] = d
	e.wg.Add(1)
	go e.dial(ctx, d, peer, slices.Clone(locators))
}

func (e *engine) dial(ctx context.Context, d *dialing, peer announce.NodeID, locators []string) {
	defer e.wg.Done()
	defer d.cancel()
	reason, detail := ReasonNoLocator, error(nil)
	var c *conn
	if peer == e.self {
		reason = ReasonSelf
		locators = nil
	}
	for _, s := range locators {
		if ctx.Err() != nil {
			break
		}
		loc, err := announce.ParseLocator(s)
		if err == nil && loc.ID != peer {
			err = fmt.Errorf("locator %s names another key than %s", s, peer)
		}
		if err != nil {
			reason, detail = ReasonBadLocator, err
			continue
		}
		c, err = e.connect(ctx, loc)
		if err == nil {
			break
		}
		reason, detail = dialReason(err), err
		e.log.Debug("dial attempt failed", "peer", peer.Short(), "addr", loc.Addr, "reason", reason, "err", err)
	}
	if c == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		reason = ReasonTimeout
	}
	if c != nil {
		e.serve(c, d)
		return
	}
	e.emitMu.Lock()
	defer e.emitMu.Unlock()
	e.mu.Lock()
	if e.dials[peer] == d {
		delete(e.dials, peer)
	}
	report := !d.cancelled && !e.closed && e.peers[peer] == nil
	e.mu.Unlock()
	if report {
		e.log.Info("dial failed", "peer", peer.Short(), "reason", reason, "err", detail)
		e.send(core.DialFailed{Peer: peer, Err: reason})
	}
}

// CancelDial implements Transport.
func (e *engine) CancelDial(peer announce.NodeID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if d := e.dials[peer]; d != nil {
		d.cancelled = true
		d.cancel()
		delete(e.dials, peer)
	}
}

// Send implements Transport.
func (e *engine) Send(peer announce.NodeID, m core.Msg) {
	e.mu.Lock()
	up := e.current(peer) != nil
	e.mu.Unlock()
	if !up || m == nil {
		return
	}
	f, err := wire.EncodeFrame(m)
	if err == nil && len(f)-wire.FrameHeader > e.opts.MaxFrame {
		err = fmt.Errorf("%d bytes, MaxFrame %d", len(f)-wire.FrameHeader, e.opts.MaxFrame)
	}
	if err != nil {
		e.log.Warn("message not sent", "peer", peer.Short(), "type", wire.TypeName(m.Type()), "err", err)
		return
	}
	// Queue under mu, so that a connection retired after a switch (which
	// happens under mu) has every frame queued on it before the switch.
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.current(peer)
	if c == nil {
		return
	}
	if c.queued.Add(int64(len(f))) > int64(e.opts.SendQueueBytes) {
		c.close(ReasonQueueFull, nil)
		return
	}
	if !c.sendq.push(f, e.opts.SendQueue) {
		c.close(ReasonQueueFull, nil)
	}
}

// Disconnect implements Transport.
func (e *engine) Disconnect(peer announce.NodeID) {
	e.mu.Lock()
	var cs [2]*conn
	if s := e.peers[peer]; s != nil {
		cs = s.conns
	}
	e.mu.Unlock()
	for _, c := range cs {
		if c != nil {
			c.close(ReasonLocal, nil)
		}
	}
}

// Inputs implements Transport.
func (e *engine) Inputs() <-chan core.Input { return e.inputs }

// shutdown closes every connection and dial, runs stop (closing the
// listener), waits for every goroutine, and closes Inputs.
func (e *engine) shutdown(stop func()) {
	e.once.Do(func() {
		e.mu.Lock()
		e.closed = true
		var conns []*conn
		for _, s := range e.peers {
			for _, c := range s.conns {
				if c != nil {
					conns = append(conns, c)
				}
			}
		}
		e.mu.Unlock()
		e.cancel()
		if stop != nil {
			stop()
		}
		for _, c := range conns {
			c.close("shutdown", nil)
			c.raw.Close()
		}
		e.wg.Wait()
		close(e.inputs)
	})
}

// serve runs an authenticated connection until it ends, in the goroutine
// that made it. d is the dial that made it, if any.
func (e *engine) serve(c *conn, d *dialing) {
	if !e.attach(c, d) {
		c.raw.Close()
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		c.writeLoop()
	}()
	err := c.readLoop()
	if errors.Is(err, io.EOF) && e.spare(c) {
		// The peer retired this duplicate: send what is queued on it too.
		c.retire()
		<-c.writerDone
	}
	c.close(readReason(err), err)
	<-c.writerDone
	c.nc.Close()
	e.detach(c)
}

// attach adds c to its peer's connections.
//
// A peer has at most one connection each way; a newer one replaces an
// older one the same way (its dialler gave up on the older). Of one each
// way, both sides use the one dialled by the smaller node ID. The side
// that dialled the loser retires it once a frame has arrived on the
// winner: the far side sends its first ping only after attaching the
// winner, so it never sees the peer disconnected. Retiring writes what is
// queued, then closes the write side; the far side, reading the end,
// does the same, and the connection ends with nothing lost. Until then
// what arrives on the loser is delivered, and each side falls back to it
// if the winner fails.
func (e *engine) attach(c *conn, d *dialing) bool {
	e.emitMu.Lock()
	defer e.emitMu.Unlock()
	e.mu.Lock()
	if d != nil && e.dials[c.peer] == d {
		delete(e.dials, c.peer)
	}
	if e.closed {
		e.mu.Unlock()
		return false
	}
	s := e.peers[c.peer]
	if s == nil {
		s = &slot{}
		e.peers[c.peer] = s
	}
	k := dir(c)
	prev := s.conns[k]
	s.conns[k] = c
	up := s.cur != nil
	winner, loser := c, s.conns[1-k]
	if loser != nil && c.inbound != (e.self > c.peer) { // c was not dialled by the smaller ID
		winner, loser = loser, c
	}
	s.cur = winner
	if loser != nil && !loser.inbound {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			select {
			case <-winner.first:
				loser.retire()
			case <-winner.done:
			case <-loser.done:
			}
		}()
	}
	e.mu.Unlock()
	if prev != nil {
		prev.close("replaced", nil)
	}
	if up {
		e.log.Info("another connection", "peer", c.peer.Short(), "addr", c.addr, "inbound", c.inbound, "in_use", winner == c)
		return true
	}
	e.log.Info("connected", "peer", c.peer.Short(), "addr", c.addr, "inbound", c.inbound)
	e.send(core.Connected{Peer: c.peer, Inbound: c.inbound})
	return true
}

// detach removes c; if it was the peer's last usable connection, the
// peer is disconnected.
func (e *engine) detach(c *conn) {
	e.emitMu.Lock()
	defer e.emitMu.Unlock()
	e.mu.Lock()
	s := e.peers[c.peer]
	k := dir(c)
	if s == nil || s.conns[k] != c {
		e.mu.Unlock()
		return // replaced
	}
	s.conns[k] = nil
	var drop *conn
	if s.cur == c {
		s.cur = s.conns[1-k]
		if s.cur != nil && s.cur.retired() {
			drop, s.cur, s.conns[1-k] = s.cur, nil, nil // it can no longer send
		}
	}
	gone := s.cur == nil
	if gone {
		delete(e.peers, c.peer)
	}
	e.mu.Unlock()
	if drop != nil {
		drop.close(c.reason, c.err)
	}
	if gone {
		e.log.Info("disconnected", "peer", c.peer.Short(), "addr", c.addr, "reason", c.reason, "err", c.err)
		e.send(core.Disconnected{Peer: c.peer, Err: c.reason})
	}
}

// conn is one authenticated connection.
type conn struct {
	e       *engine
	peer    announce.NodeID
	inbound bool
	// lastRead is when the last frame arrived (Unix ns), for the writer's
	// heartbeat.
	lastRead atomic.Int64
	addr     string   // the remote address
	nc       net.Conn // the framed stream: TLS, or a pipe
	raw      net.Conn // what nc runs on, for closing abruptly
	// The options' heartbeat and idle timeout, or a grapevine/1 peer's.
	heartbeat, idleTimeout time.Duration

	sendq      frameQueue
	queued     atomic.Int64 // bytes in sendq
	pongq      chan uint64
	done       chan struct{}
	writerDone chan struct{}
	first      chan struct{} // closed when the first frame has been read
	retiring   chan struct{} // closed by retire
	retireOnce sync.Once

	once   sync.Once
	reason string // why it closed; set before done is closed
	err    error

	pingMu    sync.Mutex
	pingNonce uint64
	pingAt    time.Time

	budget readBudget // only the read loop uses it
	hold   frameHold  // its share of the engine's frame budget
}

// readBudget is a token bucket of bytes (Options.ReadRate, ReadBurst).
type readBudget struct {
	rate, burst, tokens float64
	at                  time.Time
}

// take spends n bytes and returns how long to wait before reading on.
func (b *readBudget) take(n int, now time.Time) time.Duration {
	if b.at.IsZero() {
		b.tokens = b.burst
	} else {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.at).Seconds()*b.rate)
	}
	b.at = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// newConn makes a connection; legacy: the peer speaks grapevine/1, and
// the heartbeat keeps to its timings.
func (e *engine) newConn(nc, raw net.Conn, peer announce.NodeID, inbound bool, addr string, legacy bool) *conn {
	hb, idle := e.opts.HeartbeatInterval, e.opts.IdleTimeout
	if legacy {
		hb, idle = min(hb, legacyHeartbeat), min(idle, legacyIdle)
	}
	return &conn{
		e: e, peer: peer, inbound: inbound, addr: addr, nc: nc, raw: raw,
		heartbeat: hb, idleTimeout: idle,
		sendq:      frameQueue{ready: make(chan struct{}, 1)},
		pongq:      make(chan uint64, 1),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		first:      make(chan struct{}),
		retiring:   make(chan struct{}),
		budget:     readBudget{rate: e.opts.ReadRate, burst: float64(e.opts.ReadBurst)},
	}
}

// past is a deadline that has passed: setting it wakes blocked I/O.
var past = time.Unix(1, 0)

// close ends the connection for reason; the first reason wins.
func (c *conn) close(reason string, err error) {
	c.once.Do(func() {
		c.reason, c.err = reason, err
		close(c.done)
		c.nc.SetDeadline(past)
	})
}

func (c *conn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// readLoop reads frames until the connection fails or is closed.
func (c *conn) readLoop() error {
	e := c.e
	// No buffer of its own: TLS buffers a record, and an idle link (a
	// server has one per client) holds nothing more.
	var br io.Reader = c.nc
	if e.opts.readBuffer > 0 {
		br = bufio.NewReaderSize(c.nc, e.opts.readBuffer)
	}
	// A frame holds budget from its first byte until handed to the core.
	defer e.frames.release(c)
	for n := 0; ; n++ {
		e.frames.release(c)
		// Set the deadline, then check done: close sets its past deadline
		// after closing done, so one of the two stops the read.
		deadline := time.Now().Add(c.idleTimeout)
		c.nc.SetReadDeadline(deadline)
		if c.closed() {
			return nil
		}
		b, err := c.readFrame(br, deadline)
		if err != nil {
			return err
		}
		if wait := c.budget.take(len(b), time.Now()); wait > 0 {
			select {
			case <-time.After(wait):
			case <-c.done:
				return nil
			}
		}
		c.lastRead.Store(time.Now().UnixNano())
		if n == 0 {
			close(c.first)
		}
		m, err := wire.Decode(b)
		if err != nil {
			return err
		}
		switch m := m.(type) {
		case wire.Ping:
			select {
			case c.pongq <- m.Nonce:
			default: // a pong is already waiting
			}
		case wire.Pong:
			c.pingMu.Lock()
			ok := m.Nonce == c.pingNonce && !c.pingAt.IsZero()
			rtt := time.Since(c.pingAt)
			if ok {
				c.pingAt = time.Time{}
			}
			c.pingMu.Unlock()
			if ok {
				e.sendFrom(c, core.RTTSample{Peer: c.peer, RTT: rtt})
			}
		default:
			e.sendFrom(c, core.Received{From: c.peer, Msg: m})
		}
	}
}

func readReason(err error) string {
	var we *wire.Error
	var ne net.Error
	switch {
	case errors.As(err, &we) && we.Reason == wire.ReasonTooLarge:
		return ReasonFrameTooLarge
	case errors.Is(err, errFrameBudget):
		return ReasonFrameBudget
	case we != nil:
		return ReasonBadMessage
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return ReasonClosed
	case errors.As(err, &ne) && ne.Timeout():
		return ReasonIdle
	}
	return ReasonReset
}

// writeBuffers are the write buffers of links that are writing.
var writeBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}

// writeLoop writes queued frames, pongs and pings until the connection
// closes or retires.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	e := c.e
	// The write buffer is borrowed for a burst of frames and given back
	// at the flush that empties the queue: an idle link holds none.
	var bw *bufio.Writer
	giveBack := func() {
		if bw != nil {
			bw.Reset(nil)
			writeBuffers.Put(bw)
			bw = nil
		}
	}
	defer giveBack()
	tick := time.NewTicker(c.heartbeat)
	defer tick.Stop()
	var nonce uint64
	ping := func() []byte {
		nonce++
		f, _ := wire.EncodeFrame(wire.Ping{Nonce: nonce})
		c.pingMu.Lock()
		c.pingNonce, c.pingAt = nonce, time.Now()
		c.pingMu.Unlock()
		return f
	}
	write := func(f []byte, flush bool) bool {
		// Set the deadline, then check done (see readLoop).
		c.nc.SetWriteDeadline(time.Now().Add(e.opts.WriteTimeout))
		if c.closed() {
			return false
		}
		if bw == nil {
			bw = writeBuffers.Get().(*bufio.Writer)
			bw.Reset(c.nc)
		}
		_, err := bw.Write(f)
		if err == nil && flush {
			if err = bw.Flush(); err == nil {
				giveBack()
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.close(ReasonWriteTimeout, err)
			} else {
				c.close(ReasonReset, err)
			}
			return false
		}
		return true
	}
	if !write(ping(), true) {
		return
	}
	lastWrite := time.Now()
	for {
		ok := true
		select {
		case <-c.done:
			return
		case <-c.sendq.ready:
			for ok {
				f, more, got := c.sendq.pop()
				if !got {
					break
				}
				c.queued.Add(-int64(len(f)))
				ok = write(f, !more)
				lastWrite = time.Now()
			}
		case n := <-c.pongq:
			f, _ := wire.EncodeFrame(wire.Pong{Nonce: n})
			ok = write(f, true)
			lastWrite = time.Now()
		case <-tick.C:
			// Only the dialling side pings, and only a link that was
			// quiet for a heartbeat in either direction: traffic already
			// shows both ends are alive.
			hb := c.heartbeat
			if !c.inbound && (time.Since(lastWrite) >= hb || time.Since(time.Unix(0, c.lastRead.Load())) >= hb) {
				ok = write(ping(), true)
				lastWrite = time.Now()
			}
		case <-c.retiring:
			// Write what is queued, then close our side; the reader runs
			// until the peer closes its side too.
			for ok {
				f, _, got := c.sendq.pop()
				if !got {
					break
				}
				ok = write(f, false)
			}
			if ok && write(nil, true) {
				if cw, can := c.nc.(interface{ CloseWrite() error }); can {
					cw.CloseWrite()
					return
				}
			}
			c.close("duplicate", nil)
			return
		}
		if !ok {
			return
		}
	}
}

// frameQueue holds the encoded frames waiting to be written. Its slice
// grows with what waits and is dropped when a burst has drained, so an
// idle link (a server has one per client) holds no queue.
type frameQueue struct {
	mu     sync.Mutex
	frames [][]byte
	head   int
	ready  chan struct{} // a frame was pushed since the writer last looked
}

// keptQueue is the capacity an empty queue keeps for the next frames.
const keptQueue = 4

// push queues f unless limit frames wait already.
func (q *frameQueue) push(f []byte, limit int) bool {
	q.mu.Lock()
	if len(q.frames)-q.head >= limit {
		q.mu.Unlock()
		return false
	}
	q.frames = append(q.frames, f)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// pop takes the oldest frame; more says whether others wait.
func (q *frameQueue) pop() (f []byte, more, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.frames) {
		return nil, false, false
	}
	f = q.frames[q.head]
	q.frames[q.head] = nil
	q.head++
	switch {
	case q.head == len(q.frames):
		q.head = 0
		if cap(q.frames) > keptQueue {
			q.frames = nil
		} else {
			q.frames = q.frames[:0]
		}
	case q.head >= keptQueue && 2*q.head >= len(q.frames):
		// A queue that never drains moves down, rather than growing
		// past what waits.
		n := copy(q.frames, q.frames[q.head:])
		clear(q.frames[n:])
		q.frames, q.head = q.frames[:n], 0
	}
	return f, q.head < len(q.frames), true
}

// retire stops the connection gracefully: see writeLoop.
func (c *conn) retire() { c.retireOnce.Do(func() { close(c.retiring) }) }

func (c *conn) retired() bool {
	select {
	case <-c.retiring:
		return true
	default:
		return false
	}
}
