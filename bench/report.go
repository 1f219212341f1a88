package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"

	"grapevine/core"
	"grapevine/internal/transport"
)

// Machine describes where the comparison ran.
type Machine struct {
	CPU   string // model name from /proc/cpuinfo
	Cores int
	Go    string
}

// ThisMachine reads the CPU model from /proc/cpuinfo.
func ThisMachine() Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// Report is a finished comparison.
type Report struct {
	Command   string
	Machine   Machine
	Bootstrap int
	Settle    time.Duration
	Heartbeat time.Duration // 0: the transport's default
	Results   []Result      // memberlist, grapevine for each N
}

func ms(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// joinMaxBound is the pooled maximum, or the timeout if some node never
// learnt of a join (the true maximum is then at least that).
func joinMaxBound(r Result) (time.Duration, string) {
	if r.Missed > 0 {
		return r.JoinLimit, "≥ " + ms(r.JoinLimit)
	}
	return r.Join.Max, ms(r.Join.Max)
}

// Markdown writes the report.
func (rep Report) Markdown(w io.Writer) {
	lan := memberlist.DefaultLANConfig()
	dc := core.DefaultConfig()
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("Command: `%s`", rep.Command)
	p("")
	p("Machine: %s, %d cores, %s. Both systems run in this one process, one after the other, on 127.0.0.1.", rep.Machine.CPU, rep.Machine.Cores, rep.Machine.Go)
	p("")
	p("| | memberlist v0.7.0, `DefaultLANConfig` | Grapevine, production rules |")
	p("|---|---|---|")
	hb, hbNote := transport.DefaultHeartbeat, "the transport's default, as `grapevine run` uses it"
	if rep.Heartbeat > 0 {
		hb, hbNote = rep.Heartbeat, fmt.Sprintf("**not the default** (%v)", transport.DefaultHeartbeat)
	}
	p("| liveness | probe one member every %v (timeout %v) | one transport ping each way when a link comes up, then from the dialling side on a link quiet for %v, %s; idle timeout %v |",
		lan.ProbeInterval, lan.ProbeTimeout, hb, hbNote, 3*hb)
	p("| dissemination | gossip every %v to %d random members, while there is news | on a change, digests pushed at once to at most %d neighbours and to the others at the next tick (1 s); they fetch and pass on |",
		lan.GossipInterval, lan.GossipNodes, dc.PushFanout)
	p("| anti-entropy | full-state push/pull with one random member every %v, scaled with N (%v at 64, %v at 128) | each neighbour asked for changes since its cursor every %v (SyncInterval) |",
		lan.PushPullInterval, MemberlistPushPull(64), MemberlistPushPull(128), GrapevineSync)
	p("| topology | any member talks to any, over UDP; push/pull over TCP | persistent TLS 1.3 links: each node of the initial cluster bootstraps to k = %d random earlier nodes, each announces `storage` (so dials only those); a joining node bootstraps to 1 random member |", rep.Bootstrap)
	p("| security | none (no `SecretKey`) | mutual TLS 1.3, signed records verified by every node |")
	p("| joins | `Join` through one random member; clock stops at each member's `NotifyJoin` | new daemon bootstraps to one random member; clock starts when it listens and stops at each member's `accepted` event for its record |")
	p("")
	p("Steady state: %v after convergence, then the bytes every node wrote to its sockets over the quiet window (memberlist: UDP payloads plus TCP stream bytes; Grapevine: bytes written on the TCP connections under TLS, so TLS record overhead included). IP, UDP and TCP headers are not counted. Each system's window is the requested one rounded up to a whole number of its longest round (memberlist's scaled push/pull; Grapevine's sync or heartbeat), because nodes started together keep their rounds in step and a shorter window can miss a round altogether.", rep.Settle)
	p("")
	p("| N | system | converged in | join p50 | join p90 | join max | joins (node-joins missed) | quiet window | bytes/node/s | writes/node/s |")
	p("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rep.Results {
		_, maxs := joinMaxBound(r)
		bytes, writes := fmt.Sprintf("%.1f", r.BytesPerNodeSec()), fmt.Sprintf("%.2f", r.WritesPerNodeSec())
		if r.System == "memberlist" {
			bytes += fmt.Sprintf(" (UDP %.1f, TCP %.1f)", float64(r.UDPBytes)/float64(r.N)/r.Quiet.Seconds(), float64(r.TCPBytes)/float64(r.N)/r.Quiet.Seconds())
		}
		p50, p90 := ms(r.Join.P50), ms(r.Join.P90)
		if r.Join.Count == 0 {
			p50, p90, maxs = "-", "-", "-"
		}
		p("| %d | %s | %s | %s | %s | %s | %d (%d) | %v | %s | %s |", r.N, r.System, ms(r.Converge), p50, p90, maxs,
			r.Joins, r.Missed, r.Quiet, bytes, writes)
	}
	p("")
	p("Per join, time until the last existing node knew (\"-\": some never did within the limit):")
	p("")
	for _, r := range rep.Results {
		var s []string
		for _, d := range r.JoinMax {
			s = append(s, ms(d))
		}
		p("- N=%d %s (limit %v): %s", r.N, r.System, r.JoinLimit, strings.Join(s, ", "))
	}
	p("")
	p("Targets (docs/benchmarks.md, \"Grapevine vs memberlist\"):")
	p("")
	p("| N | join p50: Grapevine ≤ memberlist | join max: Grapevine ≤ memberlist / 5 | steady bytes: Grapevine ≤ memberlist / 10 |")
	p("|---:|---|---|---|")
	for i := 0; i+1 < len(rep.Results); i += 2 {
		ml, gv := rep.Results[i], rep.Results[i+1]
		if ml.System != "memberlist" || gv.System != "grapevine" {
			break
		}
		t := rep.Targets(ml, gv)
		p("| %d | %s | %s | %s |", ml.N, t[0], t[1], t[2])
	}
	var notes []string
	for _, r := range rep.Results {
		notes = append(notes, r.Notes...)
	}
	if len(notes) > 0 {
		p("")
		p("Notes:")
		p("")
		for _, n := range notes {
			p("- %s", n)
		}
	}
}

// Targets states each target for one size: the figures and met or
// missed.
func (rep Report) Targets(ml, gv Result) [3]string {
	verdict := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**missed**"
	}
	var t [3]string
	gvOK := gv.Joins > 0 && gv.Missed == 0
	t[0] = fmt.Sprintf("%s vs %s: %s", ms(gv.Join.P50), ms(ml.Join.P50), verdict(gvOK && gv.Join.P50 <= ml.Join.P50))
	mlMax, mlMaxS := joinMaxBound(ml)
	gvMax, gvMaxS := joinMaxBound(gv)
	t[1] = fmt.Sprintf("%s vs %s / 5 = %s: %s", gvMaxS, mlMaxS, ms(mlMax/5), verdict(gvOK && gvMax <= mlMax/5))
	a, b := gv.BytesPerNodeSec(), ml.BytesPerNodeSec()
	t[2] = fmt.Sprintf("%.1f vs %.1f / 10 = %.1f B/node/s (ratio 1/%.1f): %s", a, b, b/10, b/a, verdict(a <= b/10))
	return t
}
