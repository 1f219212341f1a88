package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Config is one comparison at one cluster size.
type Config struct {
	N     int           // nodes in the converged cluster
	Joins int           // new nodes joining, one after the other
	Quiet time.Duration // the steady-state window (see window)
	// ExactQuiet uses Quiet as it is, not rounded up to whole rounds
	// (short smoke tests).
	ExactQuiet bool
	// Settle is waited after convergence, before the quiet window, so
	// that the gossip of the build-up has drained. Default 10 s.
	Settle time.Duration
	// Bootstrap is how many random earlier nodes each Grapevine node of
	// the initial cluster bootstraps to (k). Default 3. Joining nodes
	// always bootstrap to one.
	Bootstrap int
	// JoinTimeout bounds the wait for one join to reach every node.
	// Default: three of memberlist's scaled push/pull intervals at this
	// size, plus 10 s.
	JoinTimeout time.Duration
	// Converge bounds the wait for the initial cluster. Default 5 min.
	Converge time.Duration
	Seed     uint64
	// Heartbeat overrides Grapevine's transport heartbeat (0: the
	// transport's default, which the daemon uses). For exploring only.
	Heartbeat time.Duration
	// BuildJoinAll builds memberlist's initial cluster by joining each
	// node through every member so far, so that it converges at once
	// instead of waiting for push/pull rounds when gossip misses a member
	// (short tests). Measured joins always go through one member.
	BuildJoinAll bool
	// OnlyGrapevine skips memberlist (for exploring; Run then returns
	// one result).
	OnlyGrapevine bool
	// Dir holds Grapevine's node directories; a temporary directory if "".
	Dir  string
	Logf func(format string, args ...any) // progress; nil is silent
}

func (c Config) withDefaults() Config {
	if c.Settle <= 0 {
		c.Settle = 10 * time.Second
	}
	if c.Bootstrap <= 0 {
		c.Bootstrap = 3
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = 3*MemberlistPushPull(c.N) + 10*time.Second
	}
	if c.Converge <= 0 {
		c.Converge = 5 * time.Minute
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return c
}

// window rounds the quiet window up to a whole number of round, the
// longest periodic exchange of a system, so that each node's rounds
// count once per round whatever their phase. Nodes started together
// keep their rounds in step: memberlist's push/pull at 128 nodes comes
// every 90 s within a 30 s band, and a 60 s window can miss it entirely.
func (c Config) window(round time.Duration) time.Duration {
	if c.ExactQuiet {
		return c.Quiet
	}
	return window(c.Quiet, round)
}

func window(quiet, round time.Duration) time.Duration {
	n := (quiet + round - 1) / round
	return max(n, 1) * round
}

// Result is what one system measured at one size.
type Result struct {
	System   string
	N        int
	Converge time.Duration // from the first node's start until all knew all

	// Join latencies pooled over all joins and all existing nodes that
	// learnt of the new node in time. Missed counts the (join, node)
	// pairs that had not by JoinTimeout.
	Join      Dist
	JoinMax   []time.Duration // per join: until the last existing node knew
	Joins     int
	Missed    int
	JoinLimit time.Duration

	// Steady state: bytes and write calls to sockets, all nodes, over
	// Quiet. Memberlist splits them into UDP and TCP.
	Quiet         time.Duration
	Bytes, Writes uint64
	UDPBytes      uint64
	TCPBytes      uint64
	Notes         []string
}

// BytesPerNodeSec is the steady-state bytes written per node per second.
func (r Result) BytesPerNodeSec() float64 {
	return float64(r.Bytes) / float64(r.N) / r.Quiet.Seconds()
}

// WritesPerNodeSec is the steady-state socket writes (about one packet
// or segment each) per node per second.
func (r Result) WritesPerNodeSec() float64 {
	return float64(r.Writes) / float64(r.N) / r.Quiet.Seconds()
}

// Run measures both systems at cfg.N, one after the other, memberlist
// first.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	cfg = cfg.withDefaults()
	var out []Result
	if !cfg.OnlyGrapevine {
		ml, err := RunMemberlist(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("memberlist, N=%d: %w", cfg.N, err)
		}
		out = append(out, ml)
	}
	gv, err := RunGrapevine(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("grapevine, N=%d: %w", cfg.N, err)
	}
	return append(out, gv), nil
}

// picker draws bootstrap nodes.
type picker struct{ r *rand.Rand }

func newPicker(seed uint64, salt uint64) picker {
	return picker{rand.New(rand.NewPCG(seed, salt))}
}

// distinct returns k distinct indices below n (all of them if n <= k).
func (p picker) distinct(n, k int) []int {
	perm := p.r.Perm(n)
	return perm[:min(n, k)]
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitConverged polls converged until it holds, and returns how long
// since start that took; an error if limit passes first.
func waitConverged(ctx context.Context, start time.Time, limit time.Duration, converged func() bool) (time.Duration, error) {
	for !converged() {
		if time.Since(start) > limit {
			return 0, fmt.Errorf("not converged after %v", limit)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// joinTimes turns one join's per-node arrival times into latencies from
// t0, and counts those missing.
func joinTimes(t0 time.Time, at []time.Time) (lat []time.Duration, missed int) {
	for _, t := range at {
		if t.IsZero() {
			missed++
			continue
		}
		lat = append(lat, max(t.Sub(t0), 0))
	}
	return lat, missed
}
