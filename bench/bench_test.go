package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// A small comparison end to end: both systems converge at N=8, count
// their steady-state bytes and see two joins; the report states the
// targets.
func TestSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := Config{N: 8, Joins: 2, Quiet: 3 * time.Second, ExactQuiet: true, BuildJoinAll: true, Settle: time.Second, Seed: 1,
		JoinTimeout: 20 * time.Second, Converge: time.Minute, Dir: t.TempDir(), Logf: t.Logf}
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].System != "memberlist" || res[1].System != "grapevine" {
		t.Fatalf("results: %+v", res)
	}
	for _, r := range res {
		if r.N != 8 || r.Joins != 2 || r.Quiet != cfg.Quiet {
			t.Errorf("%s: %+v", r.System, r)
		}
		if r.Join.Count+r.Missed != 8+9 {
			t.Errorf("%s: %d join latencies and %d missed, want 17 in all", r.System, r.Join.Count, r.Missed)
		}
	}
	// memberlist probes every second; Grapevine's links are quiet for
	// their first 10 s (heartbeat) and 30 s (sync), so 3 s may hold nothing.
	if ml := res[0]; ml.Bytes == 0 || ml.Writes == 0 {
		t.Errorf("memberlist sent nothing in %v: %+v", cfg.Quiet, ml)
	}
	if gv := res[1]; gv.Missed > 0 || gv.Join.Max <= 0 || gv.Join.Max > 10*time.Second {
		t.Errorf("grapevine joins: %+v", gv)
	}
	var b bytes.Buffer
	Report{Command: "test", Machine: ThisMachine(), Bootstrap: 3, Settle: cfg.Settle, Results: res}.Markdown(&b)
	for _, want := range []string{"| 8 | memberlist |", "| 8 | grapevine |", "join p50: Grapevine ≤ memberlist", "B/node/s (ratio"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestSummarise(t *testing.T) {
	var xs []time.Duration
	for i := 10; i >= 1; i-- {
		xs = append(xs, time.Duration(i)*time.Millisecond)
	}
	d := summarise(xs)
	if d.Count != 10 || d.P50 != 5*time.Millisecond || d.P90 != 9*time.Millisecond || d.Max != 10*time.Millisecond {
		t.Errorf("summarise(1..10 ms) = %+v", d)
	}
	if d := summarise(nil); d != (Dist{}) {
		t.Errorf("summarise(nil) = %+v", d)
	}
}

func TestWindow(t *testing.T) {
	for _, c := range []struct{ quiet, round, want time.Duration }{
		{60 * time.Second, 30 * time.Second, 60 * time.Second},
		{60 * time.Second, 90 * time.Second, 90 * time.Second},
		{100 * time.Second, 30 * time.Second, 120 * time.Second},
		{0, 30 * time.Second, 30 * time.Second},
	} {
		if got := window(c.quiet, c.round); got != c.want {
			t.Errorf("window(%v, %v) = %v, want %v", c.quiet, c.round, got, c.want)
		}
	}
}

func TestMemberlistPushPull(t *testing.T) {
	for n, want := range map[int]time.Duration{8: 30 * time.Second, 32: 30 * time.Second, 33: 60 * time.Second,
		64: 60 * time.Second, 128: 90 * time.Second} {
		if got := MemberlistPushPull(n); got != want {
			t.Errorf("MemberlistPushPull(%d) = %v, want %v", n, got, want)
		}
	}
}
