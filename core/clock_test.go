package core_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/sim"
)

// Issue #14: R5 under a clock stepped back and forth. With the simulator's
// day-scale timing (ticks of 10 min, MaxTickGap 30 min) a step of 25
// minutes looks like a late tick, so when forward steps counted and
// backward ones did not, a fluttering clock made the measure run 1.3-1.5
// times too fast, and a node forgot servers that had been away for less
// than H. Two clients on hosts without a monotonic clock (the case R5's
// rule must handle alone): c1's clock is stepped 25 minutes back or forth
// every 10 minutes, about the true time; c2's is stepped back more often
// than forward, so it drifts behind. s3 goes away on day 1. Each client's
// measure must stay within 3% of real time, keep s3 for 27 days and
// forget it by day 31. Under the rule before the issue (SetbackMemory 0)
// the same run must fail.
func TestClockFlutter(t *testing.T) {
	if problems := clockFlutter(t, sim.ScaleConfig().SetbackMemory); len(problems) > 0 {
		t.Errorf("with the setback memory: %v", problems)
	}
	problems := clockFlutter(t, 0)
	if len(problems) == 0 {
		t.Fatal("without the setback memory (SetbackMemory 0) the run passes: the test does not test it")
	}
	t.Logf("without the setback memory, as it should: %v", problems)
}

func clockFlutter(t *testing.T, memory time.Duration) (problems []string) {
	net := sim.NewNet(1)
	cfg := sim.ScaleConfig()
	cfg.SetbackMemory = memory
	add := func(role, name string, wallOnly bool, boot ...string) *sim.Host {
		id, c := sim.Role(role, name, sim.KeyFor(name, 1), cfg)
		c.Variant.NoMonotonicClock = wallOnly
		for _, b := range boot {
			id.Bootstrap = append(id.Bootstrap, announce.Locator{ID: sim.KeyFor(b, 1).ID(), Addr: "sim:1"})
		}
		return net.Add(name, id, c)
	}
	var servers []*sim.Host
	for i := range 4 {
		servers = append(servers, add("server", fmt.Sprintf("s%d", i), false, "c0"))
	}
	c0 := add("client", "c0", false)
	c1 := add("client", "c1", true, "s0")
	c2 := add("client", "c2", true, "s1")
	for _, h := range net.Hosts() {
		if err := net.Start(h); err != nil {
			t.Fatal(err)
		}
	}
	// Every 10 minutes, 3 minutes off the ticks: c1 steps 25 minutes back
	// or forth at random, staying within 50 minutes of the true time; c2
	// steps back 3 times in 5.
	rng := rand.New(rand.NewPCG(7, 7))
	const step = 25 * time.Minute
	var flutter func()
	flutter = func() {
		switch {
		case c1.Skew >= 2*step:
			c1.Skew -= step
		case c1.Skew <= -2*step, rng.IntN(2) == 0:
			c1.Skew += step
		default:
			c1.Skew -= step
		}
		if rng.IntN(5) < 3 {
			c2.Skew -= step
		} else {
			c2.Skew += step
		}
		net.At(net.Now.Add(10*time.Minute), flutter)
	}
	net.At(net.Now.Add(3*time.Minute), flutter)

	const day = 24 * time.Hour
	net.Run(day)
	s3 := servers[3]
	for _, c := range []*sim.Host{c0, c1, c2} {
		if !c.Node.Holds(s3.ID) {
			t.Fatalf("%s does not hold s3 on day 1", c.Name)
		}
	}
	net.Stop(s3)
	type mark struct {
		e    core.Elapsed
		real time.Time
	}
	marks := map[*sim.Host]mark{}
	for _, c := range []*sim.Host{c0, c1, c2} {
		marks[c] = mark{c.Node.Elapsed(), net.Now}
	}
	net.Run(27 * day)
	for _, c := range []*sim.Host{c0, c1, c2} {
		rate := float64(c.Node.Elapsed().Sub(marks[c].e)) / float64(net.Now.Sub(marks[c].real))
		t.Logf("memory %v: %s: measure ran at %.3f times real time over 27 days; clock off by %v", memory, c.Name, rate, c.Skew)
		if rate < 0.97 || rate > 1.03 {
			problems = append(problems, fmt.Sprintf("%s's measure ran at %.3f times real time", c.Name, rate))
		}
		if !c.Node.Holds(s3.ID) {
			problems = append(problems, fmt.Sprintf("%s forgot s3, away 27 days (H is 30)", c.Name))
		}
	}
	net.Run(4 * day)
	for _, c := range []*sim.Host{c0, c1, c2} {
		if c.Node.Holds(s3.ID) {
			problems = append(problems, fmt.Sprintf("%s still holds s3, away 31 days", c.Name))
		}
		for _, s := range servers[:3] {
			if !c.Node.Holds(s.ID) {
				problems = append(problems, fmt.Sprintf("%s forgot %s, which never left", c.Name, s.Name))
			}
		}
	}
	return problems
}

// The same with production timing (ticks of 1 s, MaxTickGap 10 s) on a
// lone node fed wall-clock times only, as the daemon is on a host without
// a monotonic clock: the clock is 5 minutes fast for 20 s out of every 40.
// Each return of the clock used to count up to 10 s.
func TestClockFlutterProduction(t *testing.T) {
	run := func(memory time.Duration) float64 {
		cfg := core.DefaultConfig()
		cfg.SetbackMemory = memory
		n, err := newCore(cfg, core.Identity{Key: sim.KeyFor("lone", 1)}, core.State{}, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		const real = 24 * time.Hour
		for s := time.Duration(0); s <= real; s += time.Second {
			now := start.Add(s)
			if (s/(20*time.Second))%2 == 1 {
				now = now.Add(5 * time.Minute)
			}
			n.Step(now, core.Tick{})
			n.Ready()
		}
		return float64(n.Elapsed()) / float64(real)
	}
	if r := run(core.DefaultConfig().SetbackMemory); r < 0.99 || r > 1.01 {
		t.Errorf("measure ran at %.3f times real time, want 1 within 1%%", r)
	}
	if r := run(0); r < 1.1 {
		t.Errorf("without the setback memory the measure ran at %.3f times real time: the test does not test it", r)
	} else {
		t.Logf("without the setback memory, as it should: %.3f times real time", r)
	}
}

// The simulator gives the core a monotonic reading as well as the wall
// clock, as time.Now gives the daemon: steps of the wall clock then do
// not reach R5 at all, though the node shows and signs the wall clock.
func TestStepMono(t *testing.T) {
	for _, wallOnly := range []bool{false, true} {
		cfg := core.DefaultConfig()
		cfg.Variant.NoMonotonicClock = wallOnly
		n, err := newCore(cfg, core.Identity{Key: sim.KeyFor("lone", 1)}, core.State{}, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		var events []core.Event
		for s := time.Duration(0); s <= time.Hour; s += time.Second {
			wall := start.Add(s)
			if s >= 30*time.Minute {
				wall = wall.Add(8760 * time.Hour) // set a year ahead
			}
			n.StepMono(wall, s, core.Tick{})
			events = append(events, n.Ready().Events...)
		}
		if !n.Wall().Equal(start.Add(time.Hour + 8760*time.Hour)) {
			t.Errorf("wall only %v: node shows %v", wallOnly, n.Wall())
		}
		jumps := 0
		for _, e := range events {
			if e.Kind == core.EvClock {
				jumps++
			}
		}
		switch {
		case !wallOnly && (n.Elapsed() != core.Elapsed(time.Hour) || jumps != 0):
			t.Errorf("monotonic: elapsed %v, %d clock events; want 1h and none", n.Elapsed(), jumps)
		case wallOnly && (n.Elapsed() != core.Elapsed(time.Hour-time.Second+cfg.MaxTickGap) || jumps != 1):
			t.Errorf("wall clock only: elapsed %v, %d clock events; want 1h plus MaxTickGap less a tick, and one", n.Elapsed(), jumps)
		}
	}
}
