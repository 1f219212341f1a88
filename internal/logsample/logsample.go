// Package logsample keeps repeated log lines from flooding the log: a
// slog.Handler that passes at most Burst similar lines per Interval and
// then writes one line saying how many it dropped.
//
// Lines are similar when they have the same level, message and values of
// the KeyAttrs attributes (by default component, kind, peer and reason;
// given to the logger with With or on the line itself, outside any group).
// The first line of each kind in each interval always passes.
package logsample

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults.
const (
	DefaultBurst    = 50
	DefaultInterval = 5 * time.Second
	DefaultMaxKeys  = 10000
)

// DefaultKeyAttrs name the attributes that tell kinds of lines apart.
var DefaultKeyAttrs = []string{"component", "kind", "peer", "reason"}

// Options configure a Handler. Zero values take the defaults.
type Options struct {
	Burst    int           // similar lines passed per interval
	Interval time.Duration // the window, from the first line of a kind
	KeyAttrs []string
	// MaxKeys bounds the kinds tracked at once; lines of further kinds
	// pass unsampled until old windows end.
	MaxKeys int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// AfterFunc schedules the summaries of windows that end with no line
	// after them (default time.AfterFunc); tests pass a fake and call f.
	AfterFunc func(d time.Duration, f func())
}

// Handler samples the lines it passes to the next handler.
type Handler struct {
	next  slog.Handler
	st    *state
	attrs []slog.Attr // key attributes given with WithAttrs
	group bool        // a group is open: later attributes are not keys
}

type state struct {
	opt       Options
	mu        sync.Mutex
	kinds     map[string]*kind
	nextSweep time.Time // when Handle next drops ended windows
	pending   bool      // flushEnded is scheduled
}

// kind is one kind of line in its current window.
type kind struct {
	start   time.Time
	passed  int
	dropped int
	level   slog.Level
	msg     string
	attrs   []slog.Attr  // its key attributes, for the summary
	next    slog.Handler // where its lines went
}

// New returns a Handler that passes sampled lines to next.
func New(next slog.Handler, opt Options) *Handler {
	if opt.Burst <= 0 {
		opt.Burst = DefaultBurst
	}
	if opt.Interval <= 0 {
		opt.Interval = DefaultInterval
	}
	if opt.KeyAttrs == nil {
		opt.KeyAttrs = DefaultKeyAttrs
	}
	if opt.MaxKeys <= 0 {
		opt.MaxKeys = DefaultMaxKeys
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.AfterFunc == nil {
		opt.AfterFunc = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
	}
	return &Handler{next: next, st: &state{opt: opt, kinds: map[string]*kind{}}}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	if !h.group {
		c.attrs = slices.Clip(h.attrs)
		for _, a := range as {
			if slices.Contains(h.st.opt.KeyAttrs, a.Key) {
				c.attrs = append(c.attrs, a)
			}
		}
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.next = h.next.WithGroup(name)
	c.group = true
	return &c
}

// Handle implements slog.Handler: it passes r unless Burst lines like it
// passed in this interval, and first writes the summaries of windows that
// have ended.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	attrs := slices.Clone(h.attrs)
	if !h.group {
		r.Attrs(func(a slog.Attr) bool {
			if slices.Contains(h.st.opt.KeyAttrs, a.Key) {
				attrs = append(attrs, a)
			}
			return true
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d\x00%s", r.Level, r.Message)
	for _, a := range attrs {
		fmt.Fprintf(&b, "\x00%s=%s", a.Key, a.Value.Resolve())
	}
	key := b.String()

	st := h.st
	now := st.opt.Now()
	st.mu.Lock()
	var summaries []*kind
	if !now.Before(st.nextSweep) {
		summaries = st.sweep(now, false)
		st.nextSweep = now.Add(st.opt.Interval)
	}
	k := st.kinds[key]
	if k != nil && now.Sub(k.start) >= st.opt.Interval {
		if k.dropped > 0 {
			summaries = append(summaries, k)
		}
		delete(st.kinds, key)
		k = nil
	}
	pass := true
	switch {
	case k == nil && len(st.kinds) >= st.opt.MaxKeys:
		// untracked: passes
	case k == nil:
		st.kinds[key] = &kind{start: now, passed: 1, level: r.Level, msg: r.Message, attrs: attrs, next: h.next}
	case k.passed < st.opt.Burst:
		k.passed++
	default:
		k.dropped++
		k.next = h.next
		pass = false
		if !st.pending {
			st.pending = true
			st.opt.AfterFunc(k.start.Add(st.opt.Interval).Sub(now), st.flushEnded)
		}
	}
	st.mu.Unlock()
	for _, s := range summaries {
		s.emit(ctx, now)
	}
	if !pass {
		return nil
	}
	return h.next.Handle(ctx, r)
}

// sweep removes the kinds whose window has ended by now (all of them if
// all is set) and returns those that dropped lines, to be summarized.
func (st *state) sweep(now time.Time, all bool) []*kind {
	var out []*kind
	for key, k := range st.kinds {
		if all || now.Sub(k.start) >= st.opt.Interval {
			if k.dropped > 0 {
				out = append(out, k)
			}
			delete(st.kinds, key)
		}
	}
	return out
}

// flushEnded writes the summaries of the windows that have ended and
// schedules itself again while lines are being dropped.
func (st *state) flushEnded() {
	now := st.opt.Now()
	st.mu.Lock()
	st.pending = false
	var out []*kind
	var next time.Time
	for key, k := range st.kinds {
		end := k.start.Add(st.opt.Interval)
		switch {
		case !now.Before(end):
			if k.dropped > 0 {
				out = append(out, k)
			}
			delete(st.kinds, key)
		case k.dropped > 0 && (next.IsZero() || end.Before(next)):
			next = end
		}
	}
	if !next.IsZero() {
		st.pending = true
		st.opt.AfterFunc(next.Sub(now), st.flushEnded)
	}
	st.mu.Unlock()
	for _, k := range out {
		k.emit(context.Background(), now)
	}
}

// Flush writes the summaries of every window that dropped lines, ended or
// not (at shutdown).
func (h *Handler) Flush() {
	now := h.st.opt.Now()
	h.st.mu.Lock()
	out := h.st.sweep(now, true)
	h.st.mu.Unlock()
	for _, k := range out {
		k.emit(context.Background(), now)
	}
}

// emit writes the summary of k's window: "suppressed N similar lines",
// with the message and key attributes of the lines in a group "of".
func (k *kind) emit(ctx context.Context, now time.Time) {
	r := slog.NewRecord(now, k.level, fmt.Sprintf("suppressed %d similar lines", k.dropped), 0)
	of := []any{slog.String("msg", k.msg)}
	for _, a := range k.attrs {
		of = append(of, a)
	}
	r.AddAttrs(slog.Int("suppressed", k.dropped), slog.Group("of", of...), slog.Time("since", k.start))
	if k.next.Enabled(ctx, k.level) {
		k.next.Handle(ctx, r)
	}
}
