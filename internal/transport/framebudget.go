package transport

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"grapevine/wire"
)

// evictGrace is how long a reader short of budget waits before it
// evicts: frames that are arriving finish and free theirs meanwhile.
const evictGrace = 250 * time.Millisecond

// frameBudget is Options.FrameBudget: the bytes of frame buffers held by
// all connections' readers, from a frame's first byte until it is handed
// to the core. It never exceeds limit. A reader that needs more than is
// left waits; after evictGrace it evicts the connection whose unfinished
// frame holds the most, if that is more than the reader holds (ties
// broken by connection age, so equal holders cannot wait on each other
// for ever); with none to evict it waits on, until its deadline.
type frameBudget struct {
	limit int64

	mu       sync.Mutex
	used     int64
	peak     int64
	evicted  uint64
	seq      uint64
	partial  map[*conn]struct{} // connections in the middle of a frame
	freed    chan struct{}      // closed and replaced when budget frees
	draining int64              // held by evicted connections not yet gone
}

// frameHold is a connection's share of the budget; the budget's mu guards it.
type frameHold struct {
	held    int64
	seq     uint64 // order of first use, for ties
	evicted bool
}

func newFrameBudget(limit int) *frameBudget {
	return &frameBudget{limit: int64(limit), partial: map[*conn]struct{}{}, freed: make(chan struct{})}
}

// FrameBufferStats describes the frame budget of a transport.
type FrameBufferStats struct {
	Limit   int64  // Options.FrameBudget
	Held    int64  // bytes held now
	Peak    int64  // the most ever held at once
	Evicted uint64 // connections closed to free budget
}

func (b *frameBudget) stats() FrameBufferStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return FrameBufferStats{Limit: b.limit, Held: b.used, Peak: b.peak, Evicted: b.evicted}
}

// FrameBuffers returns the state of the transport's frame budget.
func (t *TCP) FrameBuffers() FrameBufferStats { return t.e.frames.stats() }

var errFrameBudget = errors.New("transport: no frame budget within the read deadline")

// acquire adds n bytes to c's holding for an unfinished frame, evicting
// or waiting as needed; it fails if c closes or deadline passes.
func (b *frameBudget) acquire(c *conn, n int64, deadline time.Time) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	graceEnd := time.Now().Add(evictGrace)
	for {
		b.mu.Lock()
		h := &c.hold
		if h.evicted {
			b.mu.Unlock()
			return net.ErrClosed
		}
		if h.seq == 0 {
			b.seq++
			h.seq = b.seq
		}
		b.partial[c] = struct{}{}
		if b.used+n <= b.limit {
			b.used += n
			h.held += n
			b.peak = max(b.peak, b.used)
			b.mu.Unlock()
			return nil
		}
		var victim *conn
		var victimHeld int64
		evictable := !time.Now().Before(graceEnd)
		if evictable && b.used-b.draining+n > b.limit {
			victim = b.largestOther(c)
			if victim != nil {
				victim.hold.evicted = true
				victimHeld = victim.hold.held
				b.draining += victimHeld
				b.evicted++
			}
		}
		freed := b.freed
		b.mu.Unlock()
		if victim != nil {
			c.e.log.Warn("connection dropped for frame budget", "peer", victim.peer.Short(), "addr", victim.addr,
				"reason", ReasonFrameBudget, "held", victimHeld, "for_peer", c.peer.Short(), "frame_budget", b.limit)
			victim.close(ReasonFrameBudget, nil)
			continue
		}
		if !time.Now().Before(deadline) {
			return errFrameBudget
		}
		wake := deadline
		if !evictable {
			wake = graceEnd
		}
		if timer == nil {
			timer = time.NewTimer(time.Until(wake))
		} else {
			timer.Reset(time.Until(wake))
		}
		select {
		case <-freed:
		case <-c.done:
			return net.ErrClosed
		case <-timer.C:
		}
	}
}

// largestOther returns the unfinished frame's connection other than c
// that holds more than c, the most of all, or nil. The caller holds mu.
func (b *frameBudget) largestOther(c *conn) *conn {
	var best *conn
	for x := range b.partial {
		if x == c || x.hold.evicted || !b.above(x, c) {
			continue
		}
		if best == nil || b.above(x, best) {
			best = x
		}
	}
	return best
}

// above orders holdings: more bytes, then the newer connection.
func (b *frameBudget) above(x, y *conn) bool {
	if x.hold.held != y.hold.held {
		return x.hold.held > y.hold.held
	}
	return x.hold.seq > y.hold.seq
}

// finished marks c's frame as read in full: it keeps its budget but can
// no longer be evicted for it.
func (b *frameBudget) finished(c *conn) {
	b.mu.Lock()
	delete(b.partial, c)
	b.mu.Unlock()
}

// give returns n of c's bytes.
func (b *frameBudget) give(c *conn, n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	c.hold.held -= n
	b.used -= n
	if c.hold.evicted {
		b.draining -= n
	}
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// release returns all of c's bytes.
func (b *frameBudget) release(c *conn) {
	b.mu.Lock()
	n := c.hold.held
	delete(b.partial, c)
	b.mu.Unlock()
	b.give(c, n)
}

// readFrame reads one frame with wire's reader, holding budget for its
// buffer as it grows. The caller releases it.
func (c *conn) readFrame(r io.Reader, deadline time.Time) ([]byte, error) {
	fb := c.e.frames
	b, err := wire.ReadFrameGrowing(r, c.e.opts.MaxFrame, func(from, to int) error {
		if err := fb.acquire(c, int64(to), deadline); err != nil {
			return err
		}
		fb.give(c, int64(from))
		return nil
	})
	if err != nil {
		return nil, err
	}
	fb.finished(c)
	return b, nil
}
