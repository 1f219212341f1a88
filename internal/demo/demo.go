// Package demo runs a small Grapevine grid on loopback and narrates what
// the protocol does, checking each claim against the nodes' status
// endpoints. It is what 'grapevine demo' runs.
//
// The grid is one relay, storage servers and clients, each a separate
// 'grapevine run' process with its own node directory, TLS endpoint,
// SQLite peer book and status endpoint, on the test rules with durations
// of seconds (Timings). The steps:
//
//  1. a new server joins, and every client learns it (the time is shown);
//  2. a server leaves without a word (SIGKILL): it is still relayed just
//     after, no node relays it once W has passed, and every node forgets
//     it after H;
//  3. meanwhile a client restarts and dials the servers it knows most
//     recently seen first, the departed one last (read from its log).
//
// A step that does not happen in time is an error. The nodes are stopped
// with SIGTERM at the end (or on cancellation), and the temporary
// directory is removed unless the caller gave one.
package demo

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"grapevine/client"
	"grapevine/client/apitype"
	"grapevine/internal/daemon"
	"grapevine/internal/nodedir"
)

// Timings are the protocol durations the demo's nodes run with.
type Timings struct {
	Refresh time.Duration // R2: records re-signed this often
	W       time.Duration // R1: liveness window
	H       time.Duration // R4: forget horizon
	T       time.Duration // tombstone TTL
}

var (
	// DefaultTimings are the end-to-end tests' rules: the demo takes
	// about 20 s, H and a little more.
	DefaultTimings = Timings{Refresh: 3 * time.Second, W: 6 * time.Second, H: 20 * time.Second, T: 40 * time.Second}
	// QuickTimings halve them (--quick): about 11 s.
	QuickTimings = Timings{Refresh: 1500 * time.Millisecond, W: 3 * time.Second, H: 10 * time.Second, T: 20 * time.Second}
)

// DefaultLimit bounds a whole run (without Keep).
const DefaultLimit = 2 * time.Minute

// Options configures Run. Bin is required.
type Options struct {
	// Bin is the grapevine binary the nodes run (os.Executable() for the
	// CLI).
	Bin string
	// Dir holds the node directories and their logs, and is kept. Empty:
	// a temporary directory, removed at the end unless a step failed.
	Dir string
	// Keep leaves the grid running after the steps until ctx is done.
	Keep    bool
	Timings Timings // zero: DefaultTimings
	// Limit bounds the steps; zero: DefaultLimit.
	Limit time.Duration
	Out   io.Writer
}

// Run runs the demo. It returns an error if a step did not happen in
// time, or if ctx was cancelled before the steps were done.
func Run(ctx context.Context, opt Options) (err error) {
	if opt.Timings == (Timings{}) {
		opt.Timings = DefaultTimings
	}
	if opt.Limit == 0 {
		opt.Limit = DefaultLimit
	}
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	root, temp := opt.Dir, opt.Dir == ""
	if temp {
		if root, err = os.MkdirTemp("", "grapevine-demo-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	g := &grid{opt: opt, root: root, t: opt.Timings, start: time.Now()}
	defer func() {
		g.stopAll()
		switch {
		case temp && err == nil:
			os.RemoveAll(root)
		case err != nil:
			fmt.Fprintf(opt.Out, "The node directories and logs are kept in %s\n", root)
		}
	}()
	steps, cancel := context.WithTimeout(ctx, opt.Limit)
	defer cancel()
	if err := g.run(steps); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", context.Cause(ctx))
		}
		return err
	}
	fmt.Fprintf(opt.Out, "\nEvery step happened in time: %s in all.\n", g.since())
	if opt.Keep {
		fmt.Fprintf(opt.Out, "The grid keeps running (--keep). Status page: %s/  Ctrl-C stops it.\n", g.clients[0].status)
		<-ctx.Done()
		fmt.Fprintln(opt.Out)
	}
	return nil
}

// node is one grapevine process.
type node struct {
	name    string
	dir     string
	id      string
	locator string
	status  string // http://host:port
	log     string // the current run's log file
	runs    int
	started time.Time // when the current process was started

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

type grid struct {
	opt     Options
	root    string
	t       Timings
	start   time.Time
	relay   *node
	servers []*node
	clients []*node
	all     []*node
}

func (g *grid) since() string {
	return fmt.Sprintf("%.1fs", time.Since(g.start).Seconds())
}

func (g *grid) sayf(format string, args ...any) {
	fmt.Fprintf(g.opt.Out, "[%6s] %s\n", g.since(), fmt.Sprintf(format, args...))
}

func (g *grid) run(ctx context.Context) error {
	t := g.t
	fmt.Fprintf(g.opt.Out, "Grapevine demo: 1 relay, 3 storage servers and 3 clients on 127.0.0.1, each a separate 'grapevine run' process.\n")
	fmt.Fprintf(g.opt.Out, "Rules: the test preset with refresh %v, liveness window W %v, forget horizon H %v, tombstone TTL %v.\n", t.Refresh, t.W, t.H, t.T)
	fmt.Fprintf(g.opt.Out, "Node directories and logs: %s\n\n", g.root)

	var err error
	if g.relay, err = g.create(ctx, "relay", "relay", nil); err != nil {
		return err
	}
	boot := []string{g.relay.locator}
	for i := 1; i <= 2; i++ {
		s, err := g.create(ctx, fmt.Sprintf("server%d", i), "storage", boot)
		if err != nil {
			return err
		}
		g.servers = append(g.servers, s)
	}
	for i := 1; i <= 3; i++ {
		c, err := g.create(ctx, fmt.Sprintf("client%d", i), "", boot)
		if err != nil {
			return err
		}
		g.clients = append(g.clients, c)
	}
	fmt.Fprintf(g.opt.Out, "\nStatus page of client1: %s/\n(its JSON: %s/v1/status)\n\n", g.clients[0].status, g.clients[0].status)

	if _, err := g.waitFor(ctx, 30*time.Second, "every client to connect to server1 and server2", func() (bool, string) {
		return g.allClients(ctx, g.servers, connectedLive)
	}); err != nil {
		return err
	}
	g.sayf("every client is connected to server1 and server2: each learnt them from the relay and dialled them")

	// Step 1: a new server joins.
	fmt.Fprintf(g.opt.Out, "\nStep 1: a new storage server joins.\n")
	s3, err := g.create(ctx, "server3", "storage", boot)
	if err != nil {
		return err
	}
	g.servers = append(g.servers, s3)
	joined := s3.started
	took := map[string]time.Duration{}
	if _, err := g.waitFor(ctx, 30*time.Second, "every client to learn server3", func() (bool, string) {
		for _, c := range g.clients {
			if _, ok := took[c.name]; ok {
				continue
			}
			if ok, why := g.knows(ctx, c, s3, connectedLive); !ok {
				return false, why
			}
			took[c.name] = time.Since(joined)
		}
		return len(took) == len(g.clients), ""
	}); err != nil {
		return err
	}
	var parts []string
	var slowest time.Duration
	for _, c := range g.clients {
		parts = append(parts, fmt.Sprintf("%s %.2fs", c.name, took[c.name].Seconds()))
		slowest = max(slowest, took[c.name])
	}
	g.sayf("all 3 clients learnt server3 and connected to it within %.2fs of its process starting (%s)", slowest.Seconds(), strings.Join(parts, ", "))
	g.sayf("server3 dialled the relay, its only bootstrap; the relay verified its signed record and pushed it on; each client verified it and dialled server3")

	// Step 2: a server leaves without a word.
	dead := g.servers[0]
	fmt.Fprintf(g.opt.Out, "\nStep 2: %s leaves without a word (SIGKILL).\n", dead.name)
	dead.kill()
	killed := time.Now()
	g.sayf("%s killed", dead.name)
	if s, ok, err := g.server(ctx, g.relay, dead.id); err != nil || !ok || !s.Live {
		return fmt.Errorf("the relay right after the kill: held %v, live %v, %v; want it still held and relayed", ok, s.Live, err)
	}
	g.sayf("the relay still relays it: a server that just went quiet may only be slow (it is live for up to W = %v)", t.W)

	// Watch every other node from now on, while a client restarts.
	others := append([]*node{g.relay}, g.clients...)
	w := g.watch(ctx, dead, others, killed)

	// Step 3, while W runs: a client restarts.
	if err := g.restartClient(ctx, dead); err != nil {
		return err
	}

	fmt.Fprintf(g.opt.Out, "\nStep 2, continued: %s stays away.\n", dead.name)
	if _, err := g.waitUntil(ctx, killed.Add(t.W+5*time.Second), "every node to stop relaying "+dead.name, func() (bool, string) {
		return w.all(func(o *observed) bool { return o.unrelayed > 0 })
	}); err != nil {
		return err
	}
	g.sayf("no node relays %s any more: the last node stopped %.1fs after the kill (W = %v): %s", dead.name,
		w.last(func(o *observed) time.Duration { return o.unrelayed }).Seconds(), t.W, w.list(func(o *observed) time.Duration { return o.unrelayed }))
	if c := g.clients[0]; w.at(c.name, func(o *observed) time.Duration { return o.unrelayed }) < t.W {
		g.sayf("(%s stopped early because it restarted: a node passes on only records it has seen fresh, or connected, in this run)", c.name)
	}
	if _, err := g.waitUntil(ctx, killed.Add(t.H+t.W+15*time.Second), "every node to forget "+dead.name, func() (bool, string) {
		return w.all(func(o *observed) bool { return o.forgot > 0 })
	}); err != nil {
		return err
	}
	if first := w.first(func(o *observed) time.Duration { return o.forgot }); first < t.H-time.Second {
		return fmt.Errorf("a node forgot %s %.1fs after the kill, before H = %v", dead.name, first.Seconds(), t.H)
	}
	g.sayf("every node forgot %s: the last %.1fs after the kill (H = %v): %s", dead.name,
		w.last(func(o *observed) time.Duration { return o.forgot }).Seconds(), t.H, w.list(func(o *observed) time.Duration { return o.forgot }))
	g.sayf("each keeps a tombstone that refuses replays of its record for T = %v", t.T)
	return nil
}

// observed is when one node was first seen no longer relaying, and then
// having forgotten, the departed server (0: not yet).
type observed struct {
	name      string
	unrelayed time.Duration
	forgot    time.Duration
}

// watcher polls nodes in the background about one departed server.
type watcher struct {
	mu    sync.Mutex
	nodes []*observed
}

func (g *grid) watch(ctx context.Context, dead *node, nodes []*node, since time.Time) *watcher {
	w := &watcher{}
	for _, n := range nodes {
		w.nodes = append(w.nodes, &observed{name: n.name})
	}
	go func() {
		for {
			pending := false
			for i, n := range nodes {
				w.mu.Lock()
				o := *w.nodes[i]
				w.mu.Unlock()
				if o.forgot > 0 {
					continue
				}
				pending = true
				s, ok, err := g.server(ctx, n, dead.id)
				if err != nil {
					continue // restarting
				}
				at := time.Since(since)
				w.mu.Lock()
				if !ok || !s.Live {
					w.nodes[i].unrelayed = cmp.Or(w.nodes[i].unrelayed, at)
				}
				if ok && s.Tombstoned != "" && len(s.Services) == 0 {
					w.nodes[i].forgot = at
				}
				w.mu.Unlock()
			}
			if !pending {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *watcher) all(done func(*observed) bool) (bool, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range w.nodes {
		if !done(o) {
			return false, o.name + " not yet"
		}
	}
	return true, ""
}

func (w *watcher) last(at func(*observed) time.Duration) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var m time.Duration
	for _, o := range w.nodes {
		m = max(m, at(o))
	}
	return m
}

func (w *watcher) first(at func(*observed) time.Duration) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := time.Duration(math.MaxInt64)
	for _, o := range w.nodes {
		m = min(m, at(o))
	}
	return m
}

func (w *watcher) at(name string, at func(*observed) time.Duration) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range w.nodes {
		if o.name == name {
			return at(o)
		}
	}
	return 0
}

func (w *watcher) list(at func(*observed) time.Duration) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var parts []string
	for _, o := range w.nodes {
		parts = append(parts, fmt.Sprintf("%s %.1fs", o.name, at(o).Seconds()))
	}
	return strings.Join(parts, ", ")
}

// restartClient stops client1 cleanly once it has seen the dead server's
// connection drop, starts it again, and shows the order of its dials.
func (g *grid) restartClient(ctx context.Context, dead *node) error {
	c := g.clients[0]
	fmt.Fprintf(g.opt.Out, "\nStep 3, meanwhile: %s restarts.\n", c.name)
	if _, err := g.waitFor(ctx, 15*time.Second, c.name+" to see "+dead.name+"'s connection drop", func() (bool, string) {
		s, _, err := g.server(ctx, c, dead.id)
		return err == nil && !s.Connected, fmt.Sprintf("connected %v %v", s.Connected, err)
	}); err != nil {
		return err
	}
	// A second for the others to be seen more recently than the dead one.
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := c.stop(15 * time.Second); err != nil {
		return err
	}
	g.sayf("%s stopped (SIGTERM) and started again from its peer book", c.name)
	if err := g.startNode(ctx, c); err != nil {
		return err
	}
	live := g.servers[1:]
	if _, err := g.waitFor(ctx, 30*time.Second, "the restarted "+c.name+" to reconnect", func() (bool, string) {
		return g.allOf(ctx, c, live, connectedLive)
	}); err != nil {
		return err
	}
	names := map[string]string{}
	for _, s := range g.servers {
		names[s.id] = s.name
	}
	type dial struct{ name, last, failed string }
	var order []dial
	seen := map[string]bool{}
	for _, l := range logLines(c.log) {
		p, _ := l["peer"].(string)
		if l["kind"] != "dial" || names[p] == "" || seen[p] {
			continue
		}
		seen[p] = true
		order = append(order, dial{names[p], fmt.Sprint(l["last_connected"]), fmt.Sprint(l["last_failed"])})
	}
	g.sayf("%s reconnected; it dialled the servers it knows, most recently seen first:", c.name)
	for i, d := range order {
		note := "last connected " + d.last
		if d.failed == "true" {
			note += ", last attempt failed"
		}
		fmt.Fprintf(g.opt.Out, "           %d. %-8s %s\n", i+1, d.name, note)
	}
	if len(order) != len(g.servers) || order[len(order)-1].name != dead.name {
		return fmt.Errorf("%s's first dials %v: want every server, %s (gone, seen least recently) last", c.name, order, dead.name)
	}
	return nil
}

// create makes a node directory and starts the node. role is "relay",
// "storage" or "" (a client).
func (g *grid) create(ctx context.Context, name, role string, boot []string) (*node, error) {
	cfg := nodedir.Config{
		Nickname:  name,
		Listen:    "127.0.0.1:0",
		Status:    "127.0.0.1:0",
		Bootstrap: boot,
		Rules: nodedir.Rules{Preset: "test", RefreshInterval: nodedir.Duration(g.t.Refresh),
			LivenessWindow: nodedir.Duration(g.t.W), ForgetHorizon: nodedir.Duration(g.t.H), TombstoneTTL: nodedir.Duration(g.t.T)},
	}
	switch role {
	case "relay":
		cfg.Role = "relay"
	case "storage":
		// A FURL nobody listens on: the demo is about introduction, not
		// storage.
		cfg.Services = []nodedir.ServiceConfig{{Name: "storage", FURL: "pb://" + name + "@tcp:127.0.0.1:1/demo"}}
	}
	dir := filepath.Join(g.root, name)
	nd, err := nodedir.Create(dir, nodedir.Options{Config: cfg})
	if err != nil {
		return nil, err
	}
	n := &node{name: name, dir: dir, id: string(nd.ID())}
	if err := g.startNode(ctx, n); err != nil {
		return nil, err
	}
	g.all = append(g.all, n)
	what := "client"
	switch role {
	case "relay":
		what = "relay"
	case "storage":
		what = "storage server, FURL " + cfg.Services[0].FURL
	}
	_, addr, _ := strings.Cut(n.locator, "@")
	g.sayf("%-8s started: %s; gossip endpoint %s", name, what, addr)
	return n, nil
}

// startNode starts n's process and waits until it listens.
func (g *grid) startNode(ctx context.Context, n *node) error {
	run := filepath.Join(n.dir, daemon.RunDir)
	os.Remove(filepath.Join(run, daemon.StatusFile))
	os.Remove(filepath.Join(run, daemon.LocatorsFile))
	n.runs++
	n.log = filepath.Join(n.dir, fmt.Sprintf("log-%d.jsonl", n.runs))
	logf, err := os.Create(n.log)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(g.opt.Bin, "run", "--log-format", "json", "--log-level", "debug", n.dir)
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	n.started = time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", n.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	n.status, n.locator = "", ""
	_, err = g.waitFor(ctx, 20*time.Second, n.name+" to listen", func() (bool, string) {
		select {
		case <-done:
			return true, "" // it exited: see below
		default:
		}
		st, err1 := os.ReadFile(filepath.Join(run, daemon.StatusFile))
		loc, err2 := os.ReadFile(filepath.Join(run, daemon.LocatorsFile))
		if err1 != nil || err2 != nil || len(strings.Fields(string(loc))) == 0 {
			return false, "no status endpoint yet"
		}
		n.status = strings.TrimSpace(string(st))
		n.locator = strings.Fields(string(loc))[0]
		return true, ""
	})
	if err == nil && n.status == "" {
		return fmt.Errorf("%s exited at start (%v): %s", n.name, cmd.ProcessState, tail(n.log))
	}
	return err
}

// kill sends SIGKILL and waits for the process to go.
func (n *node) kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// stop sends SIGTERM and waits for a clean exit, killing the process
// after d.
func (n *node) stop(d time.Duration) error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil // already gone (killed, or it failed)
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if !cmd.ProcessState.Success() {
			return fmt.Errorf("%s: exit after SIGTERM: %v: %s", n.name, cmd.ProcessState, tail(n.log))
		}
		return nil
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s: no exit %v after SIGTERM; killed", n.name, d)
	}
}

// stopAll stops every node that still runs, all at once.
func (g *grid) stopAll() {
	var wg sync.WaitGroup
	errs := make([]error, len(g.all))
	running := 0
	for i, n := range g.all {
		n.mu.Lock()
		alive := n.done != nil
		if alive {
			select {
			case <-n.done:
				alive = false
			default:
			}
		}
		n.mu.Unlock()
		if !alive {
			continue
		}
		running++
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = n.stop(10 * time.Second) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(g.opt.Out, "Stopping the nodes: %v\n", err)
	} else if running > 0 {
		fmt.Fprintf(g.opt.Out, "Stopped %d nodes cleanly (SIGTERM).\n", running)
	}
}

type serverCond func(s apitype.ServerStatus) bool

func connectedLive(s apitype.ServerStatus) bool { return s.Connected && s.Live && len(s.Services) > 0 }

func (g *grid) allClients(ctx context.Context, servers []*node, cond serverCond) (bool, string) {
	for _, c := range g.clients {
		if ok, why := g.allOf(ctx, c, servers, cond); !ok {
			return false, why
		}
	}
	return true, ""
}

func (g *grid) allOf(ctx context.Context, n *node, servers []*node, cond serverCond) (bool, string) {
	for _, s := range servers {
		if ok, why := g.knows(ctx, n, s, cond); !ok {
			return false, why
		}
	}
	return true, ""
}

func (g *grid) knows(ctx context.Context, n, server *node, cond serverCond) (bool, string) {
	s, ok, err := g.server(ctx, n, server.id)
	switch {
	case err != nil:
		return false, fmt.Sprintf("%s: %v", n.name, err)
	case !ok || !cond(s):
		return false, fmt.Sprintf("%s: %s connected %v, live %v, services %v", n.name, server.name, s.Connected, s.Live, s.Services)
	}
	return true, ""
}

// server returns what n's status endpoint says about the server id.
func (g *grid) server(ctx context.Context, n *node, id string) (apitype.ServerStatus, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := (&client.Client{BaseURL: n.status}).Status(ctx)
	if err != nil {
		return apitype.ServerStatus{}, false, err
	}
	for _, s := range st.Servers {
		if s.ID == id {
			return s, true, nil
		}
	}
	return apitype.ServerStatus{}, false, nil
}

// waitFor polls cond every 100 ms for at most d.
func (g *grid) waitFor(ctx context.Context, d time.Duration, what string, cond func() (bool, string)) (time.Duration, error) {
	return g.waitUntil(ctx, time.Now().Add(d), what, cond)
}

// waitUntil polls cond every 100 ms until the deadline.
func (g *grid) waitUntil(ctx context.Context, deadline time.Time, what string, cond func() (bool, string)) (time.Duration, error) {
	start := time.Now()
	var last string
	for {
		ok, why := cond()
		if ok {
			return time.Since(start), nil
		}
		last = why
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("waited %.1fs for %s: %s", time.Since(start).Seconds(), what, last)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for %s: %w (%s)", what, context.Cause(ctx), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logLines reads a JSON log.
func logLines(path string) []map[string]any {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// tail returns the last lines of a log.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-3):], "\n")
}
