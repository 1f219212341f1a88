package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestClockJumps sets a server's and a client's clocks a year forward,
// back, and a year behind, while they run and across restarts. Nobody
// forgets anything, the server's seqnum only grows everywhere, and the
// elapsed-time measure (R5) counts at most MaxTickGap (1 s here) per jump.
func TestClockJumps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes for about a minute")
	}
	const year = 365 * 24 * time.Hour
	root := t.TempDir()
	relay := start(t, "relay", create(t, root, "relay", "--service", "grapevine-relay=gv://relay"))
	boot := relay.locator()
	other := start(t, "server1", create(t, root, "server1", "--service", "storage=pb://s1@tcp:127.0.0.1:1/swiss"), boot)

	offsets := map[string]string{
		"server0": filepath.Join(root, "server0.offset"),
		"client":  filepath.Join(root, "client.offset"),
	}
	shifted := func(name string, args ...string) *proc {
		dir := filepath.Join(root, name)
		if _, err := os.Stat(dir); err != nil {
			create(t, root, name, args...)
		}
		return startArgs(t, name, dir, []string{"--clock-offset-file", offsets[name]}, boot)
	}
	setOffset := func(name string, d time.Duration) {
		if err := os.WriteFile(offsets[name], []byte(d.String()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setOffset("server0", 0)
	setOffset("client", 0)
	server := shifted("server0", "--service", "storage=pb://s0@tcp:127.0.0.1:1/swiss")
	client := shifted("client")
	sid, oid := server.id(), other.id()
	nodes := func() []*proc { return []*proc{relay, other, server, client} }

	waitFor(t, 30*time.Second, "the client to connect to both servers", func() (bool, string) {
		a, _, err := client.server(sid)
		b, _, _ := client.server(oid)
		return err == nil && a.Connected && b.Connected, fmt.Sprintf("%+v %+v %v", a, b, err)
	})

	// seen[observer] is the highest seqnum of server0 it has shown.
	seen := map[string]int64{}
	check := func(phase string) {
		t.Helper()
		for _, n := range nodes() {
			st, err := n.state()
			if err != nil {
				t.Fatalf("%s: %s: %v", phase, n.name, err)
			}
			if st.Tombstones != 0 || len(st.Forgotten) != 0 {
				t.Fatalf("%s: %s forgot %+v", phase, n.name, st.Forgotten)
			}
			seq := st.Counter
			if n != server {
				s, ok, _ := n.server(sid)
				if !ok || len(s.Services) == 0 {
					t.Fatalf("%s: %s no longer holds server0", phase, n.name)
				}
				seq = s.Seqnum
			}
			if seq < seen[n.name] {
				t.Fatalf("%s: %s shows server0 at seqnum %d after %d", phase, n.name, seq, seen[n.name])
			}
			seen[n.name] = seq
		}
	}
	// run lets a phase go on for d, checking every second, and returns
	// how far each shifted node's elapsed-time measure moved against the
	// real time that passed.
	type mark struct {
		real time.Time
		e    float64
	}
	markNow := func() map[*proc]mark {
		t.Helper()
		marks := map[*proc]mark{}
		for _, n := range []*proc{server, client} {
			st, err := n.state()
			if err != nil {
				t.Fatal(err)
			}
			marks[n] = mark{time.Now(), st.ElapsedS}
		}
		return marks
	}
	run := func(phase string, marks map[*proc]mark, d time.Duration) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); {
			check(phase)
			time.Sleep(time.Second)
		}
		check(phase)
		for n, m := range marks {
			st, err := n.state()
			if err != nil {
				t.Fatal(err)
			}
			real, e := time.Since(m.real).Seconds(), st.ElapsedS-m.e
			// A jump may count up to MaxTickGap (1 s); status reads lag a tick.
			if e > real+2.5 || e < real-2.5 {
				t.Fatalf("%s: %s elapsed-time measure moved %.1f s in %.1f s of real time", phase, n.name, e, real)
			}
			t.Logf("%s: %s: elapsed +%.1f s in %.1f s real; clock reads %s", phase, n.name, e, real, st.Now.Format(time.DateOnly))
		}
	}
	wantClock := func(n *proc, off time.Duration) {
		t.Helper()
		waitFor(t, 5*time.Second, n.name+"'s clock to read the offset", func() (bool, string) {
			st, err := n.state()
			if err != nil {
				return false, err.Error()
			}
			skew := st.Now.Sub(time.Now().Add(off))
			return skew.Abs() < 10*time.Second, fmt.Sprintf("clock %v, want about now %+v", st.Now, off)
		})
	}

	check("before")
	first := seen["server0"]
	run("steady", markNow(), 4*time.Second)
	for _, off := range []time.Duration{year, 0, -year} {
		phase := fmt.Sprintf("running, clock %+v", off)
		marks := markNow()
		setOffset("server0", off)
		setOffset("client", off)
		wantClock(server, off)
		wantClock(client, off)
		run(phase, marks, 8*time.Second)
		want := "backwards" // from a year ahead to now, or from now to a year behind
		if off > 0 {
			want = "jump-or-suspend"
		}
		explained := false
		for _, l := range server.logLines() {
			explained = explained || l["kind"] == "clock" && l["reason"] == want
		}
		if !explained {
			t.Fatalf("%s: server0 logged no clock event %q", phase, want)
		}
	}
	for _, off := range []time.Duration{year, -year, 0} {
		phase := fmt.Sprintf("restarted, clock %+v", off)
		stopped := markNow()
		server.stop()
		client.stop()
		setOffset("server0", off)
		setOffset("client", off)
		server = shifted("server0")
		client = shifted("client")
		wantClock(server, off)
		wantClock(client, off)
		for _, n := range []*proc{server, client} {
			st, err := n.state()
			if err != nil {
				t.Fatal(err)
			}
			for old, m := range stopped {
				if old.name == n.name && (st.ElapsedS < m.e || st.ElapsedS > m.e+2.5) {
					t.Fatalf("%s: %s's elapsed-time measure was %.1f s at the stop and is %.1f s after the restart", phase, n.name, m.e, st.ElapsedS)
				}
			}
		}
		check(phase)
		run(phase, markNow(), 8*time.Second)
	}

	before := seen["client"]
	waitFor(t, 20*time.Second, "server0's newer records to reach everyone", func() (bool, string) {
		for _, n := range []*proc{relay, other, client} {
			s, _, err := n.server(sid)
			if err != nil || s.Seqnum <= before || !s.Live {
				return false, fmt.Sprintf("%s: %+v %v", n.name, s, err)
			}
		}
		return true, ""
	})
	check("after")
	t.Logf("server0's seqnum went from %d to %d with no step back anywhere", first, seen["server0"])
}
