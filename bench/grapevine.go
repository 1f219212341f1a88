package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/daemon"
	"grapevine/internal/nodedir"
	"grapevine/internal/peerbook"
	"grapevine/internal/transport"
)

// GrapevineSync is the anti-entropy round: Grapevine's default, as
// `grapevine run` uses it.
var GrapevineSync = core.DefaultConfig().SyncInterval

// gvHandler is a node's logger: it timestamps the first "accepted" event
// for each peer (the core's decision to hold a new record) and counts
// disconnections and failed dials; everything else is dropped.
type gvHandler struct {
	accepted *seen
	churn    *counter
}

func (h gvHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h gvHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h gvHandler) WithGroup(string) slog.Handler                { return h }

func (h gvHandler) Handle(_ context.Context, r slog.Record) error {
	switch r.Message {
	case "accepted":
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "peer" {
				h.accepted.mark(a.Value.String(), r.Time)
				return false
			}
			return true
		})
	case "disconnected", "dial-failed":
		h.churn.add(1)
	}
	return nil
}

type gvNode struct {
	name     string
	id       announce.NodeID
	locator  string
	readyAt  time.Time
	tr       *transport.TCP
	accepted *seen
	churn    *counter
	d        *daemon.Daemon
	cancel   context.CancelFunc
	done     chan error
}

// startGrapevine creates a node directory announcing "storage" with the
// production rules, and runs its daemon with a real TLS transport on
// 127.0.0.1 and an in-memory peer book.
func startGrapevine(ctx context.Context, root string, i int, boot []string, heartbeat time.Duration) (*gvNode, error) {
	name := fmt.Sprintf("gv-%03d", i)
	dir := filepath.Join(root, name)
	nd, err := nodedir.Create(dir, nodedir.Options{Config: nodedir.Config{
		Nickname:  name,
		Listen:    "127.0.0.1:0",
		Services:  []nodedir.ServiceConfig{{Name: "storage", FURL: "pb://" + name + "@tcp:127.0.0.1:9/swiss"}},
		Bootstrap: boot,
		Rules:     nodedir.Rules{Preset: "production", SyncInterval: nodedir.Duration(GrapevineSync)},
	}})
	if err != nil {
		return nil, err
	}
	tr, err := transport.Listen(transport.Options{Key: nd.Key, ListenAddr: "127.0.0.1:0", HeartbeatInterval: heartbeat})
	if err != nil {
		return nil, err
	}
	n := &gvNode{name: name, id: nd.ID(), tr: tr, accepted: newSeen(), churn: &counter{}, done: make(chan error, 1)}
	ready := make(chan struct{})
	var cctx context.Context
	cctx, n.cancel = context.WithCancel(ctx)
	go func() {
		n.done <- daemon.Run(cctx, daemon.Options{
			Dir:       dir,
			Logger:    slog.New(gvHandler{n.accepted, n.churn}),
			Transport: tr,
			Book:      peerbook.NewMemory(),
			OnReady: func(d *daemon.Daemon) {
				n.readyAt = time.Now()
				n.d = d
				close(ready)
			},
		})
	}()
	select {
	case <-ready:
	case err := <-n.done:
		n.cancel()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if locs := n.d.Locators(); len(locs) > 0 {
		n.locator = locs[0]
	} else {
		n.stop()
		return nil, fmt.Errorf("%s: no locator", name)
	}
	return n, nil
}

func (n *gvNode) stop() error {
	n.cancel()
	return <-n.done
}

// RunGrapevine measures Grapevine: every node announces "storage" (so
// dials only its bootstrap nodes) and bootstraps to cfg.Bootstrap random
// earlier nodes; a joining node bootstraps to one random member.
func RunGrapevine(ctx context.Context, cfg Config) (res Result, err error) {
	cfg = cfg.withDefaults()
	hb := cfg.Heartbeat
	if hb <= 0 {
		hb = transport.DefaultHeartbeat
	}
	round := GrapevineSync
	if hb > round {
		round = hb
	}
	res = Result{System: "grapevine", N: cfg.N, Quiet: cfg.window(round), JoinLimit: cfg.JoinTimeout}
	root := cfg.Dir
	if root == "" {
		if root, err = os.MkdirTemp("", "grapevine-bench-"); err != nil {
			return res, err
		}
		defer os.RemoveAll(root)
	}
	pick := newPicker(cfg.Seed, 2)
	var nodes []*gvNode
	defer func() {
		for _, n := range nodes {
			n.cancel()
		}
		for _, n := range nodes {
			if serr := <-n.done; serr != nil && err == nil && !errors.Is(serr, context.Canceled) {
				err = fmt.Errorf("daemon %s: %w", n.id.Short(), serr)
			}
		}
	}()

	start := time.Now()
	for i := range cfg.N {
		var boot []string
		for _, j := range pick.distinct(len(nodes), cfg.Bootstrap) {
			boot = append(boot, nodes[j].locator)
		}
		n, err := startGrapevine(ctx, root, i, boot, cfg.Heartbeat)
		if err != nil {
			return res, err
		}
		nodes = append(nodes, n)
	}
	converged := func() bool {
		for _, n := range nodes[:cfg.N] {
			if n.accepted.count() < cfg.N-1 {
				return false
			}
		}
		return true
	}
	if res.Converge, err = waitConverged(ctx, start, cfg.Converge, converged); err != nil {
		return res, err
	}
	cfg.Logf("grapevine N=%d: converged in %v; settling %v, then a quiet window of %v", cfg.N, res.Converge.Round(time.Millisecond), cfg.Settle, res.Quiet)

	// Steady state.
	if err := sleep(ctx, cfg.Settle); err != nil {
		return res, err
	}
	sum := func() (bytes, writes, churn uint64) {
		for _, n := range nodes {
			s := n.tr.Stats()
			bytes += s.BytesOut
			writes += s.Writes
			churn += n.churn.writes.Load()
		}
		return
	}
	b0, w0, c0 := sum()
	if err := sleep(ctx, res.Quiet); err != nil {
		return res, err
	}
	b1, w1, c1 := sum()
	res.Bytes, res.Writes, res.TCPBytes = b1-b0, w1-w0, b1-b0
	if c1 != c0 {
		res.Notes = append(res.Notes, fmt.Sprintf("grapevine N=%d: %d disconnections or failed dials during the quiet window", cfg.N, c1-c0))
	}
	cfg.Logf("grapevine N=%d: %.1f B/node/s", cfg.N, res.BytesPerNodeSec())

	// Joins.
	var lats []time.Duration
	for j := range cfg.Joins {
		existing := nodes
		peer := existing[pick.r.IntN(len(existing))]
		n, err := startGrapevine(ctx, root, cfg.N+j, []string{peer.locator}, cfg.Heartbeat)
		if err != nil {
			return res, err
		}
		nodes = append(nodes, n)
		at := waitAll(ctx, cfg.JoinTimeout, len(existing), func(i int) (time.Time, bool) {
			return existing[i].accepted.get(string(n.id))
		})
		l, missed := joinTimes(n.readyAt, at)
		lats = append(lats, l...)
		res.Missed += missed
		res.Joins++
		res.JoinMax = append(res.JoinMax, joinMax(l, missed))
		cfg.Logf("grapevine N=%d: join %d: %s", cfg.N, j+1, describeJoin(l, missed, len(existing)))
		for i, t := range at {
			if t.IsZero() || t.Sub(n.readyAt) > time.Second {
				cfg.Logf("grapevine N=%d: join %d: straggler %s", cfg.N, j+1, describeStraggler(ctx, existing, existing[i], peer, t.Sub(n.readyAt)))
			}
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	res.Join = summarise(lats)
	return res, nil
}

// describeStraggler says where a node that learnt of a join late sits in
// the graph: its links, and its neighbours' links.
func describeStraggler(ctx context.Context, nodes []*gvNode, x, boot *gvNode, lat time.Duration) string {
	byID := map[announce.NodeID]*gvNode{}
	for _, n := range nodes {
		byID[n.id] = n
	}
	links := func(n *gvNode) []announce.NodeID {
		var ids []announce.NodeID
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		n.d.Query(qctx, func(c *core.Node) {
			for _, si := range c.Servers() {
				if si.Connected {
					ids = append(ids, si.ID)
				}
			}
		})
		return ids
	}
	var nb []string
	for _, id := range links(x) {
		if m := byID[id]; m != nil {
			nb = append(nb, fmt.Sprintf("%s:%d", m.name, len(links(m))))
		} else {
			nb = append(nb, id.Short()+":new")
		}
	}
	return fmt.Sprintf("%s after %v (bootstrap of the new node: %v); neighbours and their link counts: %v",
		x.name, lat.Round(time.Millisecond), x == boot, nb)
}
