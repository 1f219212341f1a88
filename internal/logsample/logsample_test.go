package logsample

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock with one scheduled function at a time.
type fakeClock struct {
	now   time.Time
	at    time.Time
	fired func()
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) AfterFunc(d time.Duration, f func()) {
	c.at, c.fired = c.now.Add(d), f
}

// advance moves the clock and runs the scheduled function if it is due.
func (c *fakeClock) advance(d time.Duration) {
	c.now = c.now.Add(d)
	if f := c.fired; f != nil && !c.now.Before(c.at) {
		c.fired = nil
		f()
	}
}

func newTest(opt Options) (*slog.Logger, *Handler, *fakeClock, *bytes.Buffer) {
	var buf bytes.Buffer
	c := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	opt.Now, opt.AfterFunc = c.Now, c.AfterFunc
	h := New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), opt)
	return slog.New(h), h, c, &buf
}

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		out = append(out, m)
	}
	buf.Reset()
	return out
}

// A connect-and-close flood: 40,000 lines of one kind (the address
// changes, the peer and reason do not) in one interval come out as Burst
// lines and one summary with the exact number dropped.
func TestFloodIsSummarized(t *testing.T) {
	log, _, c, buf := newTest(Options{})
	const n = 40000
	for i := range n {
		log.Info("handshake refused", "addr", fmt.Sprintf("192.0.2.1:%d", 1024+i%60000), "peer", "", "reason", "eof")
		c.advance(DefaultInterval / (2 * n))
	}
	got := lines(t, buf)
	if len(got) != DefaultBurst {
		t.Fatalf("%d lines passed during the flood, want %d", len(got), DefaultBurst)
	}
	c.advance(DefaultInterval)
	got = lines(t, buf)
	if len(got) != 1 {
		t.Fatalf("%d lines after the window, want one summary: %v", len(got), got)
	}
	s := got[0]
	want := fmt.Sprintf("suppressed %d similar lines", n-DefaultBurst)
	of, _ := s["of"].(map[string]any)
	if s["msg"] != want || s["suppressed"] != float64(n-DefaultBurst) || s["level"] != "INFO" ||
		of["msg"] != "handshake refused" || of["reason"] != "eof" {
		t.Errorf("summary %v, want %q of handshake refused, reason eof", s, want)
	}
	// The next window starts afresh.
	log.Info("handshake refused", "addr", "192.0.2.1:1", "peer", "", "reason", "eof")
	if got := lines(t, buf); len(got) != 1 || got[0]["msg"] != "handshake refused" {
		t.Errorf("after the summary: %v", got)
	}
}

// The first line of every kind passes: other peers, reasons, messages,
// levels and components are other kinds.
func TestFirstOfEachKindPasses(t *testing.T) {
	log, _, _, buf := newTest(Options{Burst: 1})
	intro := log.With("component", "introducer")
	const peers = 1000
	for i := range peers {
		log.Info("disconnected", "peer", fmt.Sprintf("p%d", i), "reason", "eof")
	}
	for _, l := range []*slog.Logger{log, intro} {
		l.Info("disconnected", "peer", "p0", "reason", "closed")
		l.Warn("disconnected", "peer", "p0", "reason", "eof")
		l.Info("connected", "peer", "p0")
	}
	intro.Info("disconnected", "peer", "p0", "reason", "eof")
	if got := lines(t, buf); len(got) != peers+7 {
		t.Errorf("%d lines passed, want %d: one of each kind", len(got), peers+7)
	}
	log.Info("disconnected", "peer", "p0", "reason", "eof")
	if got := lines(t, buf); len(got) != 0 {
		t.Errorf("a repeat passed beyond the burst of 1: %v", got)
	}
}

// A summary is written when the next line of its kind comes after the
// window (before that line), and at shutdown by Flush.
func TestSummaryBeforeNextLineAndAtFlush(t *testing.T) {
	log, h, c, buf := newTest(Options{Burst: 2, Interval: time.Second})
	for range 5 {
		log.Warn("still read-only", "reason", "disk-full")
	}
	c.now = c.now.Add(2 * time.Second) // the scheduled flush has not run
	log.Warn("still read-only", "reason", "disk-full")
	got := lines(t, buf)
	if len(got) != 4 || got[2]["msg"] != "suppressed 3 similar lines" || got[3]["msg"] != "still read-only" {
		t.Fatalf("got %v", got)
	}
	for range 4 {
		log.Warn("still read-only", "reason", "disk-full")
	}
	h.Flush()
	got = lines(t, buf)
	if len(got) != 2 || got[1]["msg"] != "suppressed 3 similar lines" || got[1]["level"] != "WARN" {
		t.Fatalf("at Flush: %v", got)
	}
	h.Flush()
	if got := lines(t, buf); len(got) != 0 {
		t.Errorf("a second Flush wrote %v", got)
	}
}

// Lines in a group do not make kinds; attributes given with With do.
func TestKeysFromWithAndGroups(t *testing.T) {
	log, _, _, buf := newTest(Options{Burst: 1})
	log.With("peer", "a").Info("x")
	log.With("peer", "b").Info("x")
	g := log.WithGroup("g")
	g.Info("y", "peer", "a")
	g.Info("y", "peer", "b")
	if got := lines(t, buf); len(got) != 3 {
		t.Errorf("%d lines, want 3: %v", len(got), got)
	}
}

// Lines from many goroutines are counted exactly.
func TestConcurrent(t *testing.T) {
	log, h, _, buf := newTest(Options{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				log.Info("disconnected", "peer", "p", "reason", "eof", "n", g*1000+i)
			}
		})
	}
	wg.Wait()
	h.Flush()
	got := lines(t, buf)
	if len(got) != DefaultBurst+1 || got[DefaultBurst]["suppressed"] != float64(8000-DefaultBurst) {
		t.Errorf("%d lines, last %v", len(got), got[len(got)-1])
	}
}
