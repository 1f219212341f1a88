// Package daemon runs a node: it drives the protocol core (package core)
// with the real clock, an authenticated transport and a persistent peer
// book. It is the only layer with goroutines.
//
// One goroutine owns the core. It waits for a transport input, a tick or a
// status query, applies it with Step, and acts on Ready in the order the
// core documents: persist the counter, persist the state, then send, dial
// and log. Nothing leaves the node before what it depends on is on disk.
package daemon

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/nodedir"
	"grapevine/peerbook"
	"grapevine/transport"
	"grapevine/wire"
)

// Files the daemon keeps in the node directory.
const (
	BookFile = "peerbook.sqlite" // the peer book
	LockFile = "grapevine.lock"  // held while a daemon runs
	RunDir   = "run"             // what a running daemon publishes about itself
	// RunDir/locators: the node's gv:// locators, one per line, written once
	// the gossip endpoint listens. RunDir/status: the status address.
	LocatorsFile = "locators"
	StatusFile   = "status"
)

// Options configures Run. Only Dir is required.
type Options struct {
	Dir string
	// Bootstrap adds gv:// locators to the configuration's.
	Bootstrap []string
	Logger    *slog.Logger
	// Transport and Book replace the TLS transport and the SQLite peer
	// book (tests). Run closes only what it opened.
	Transport transport.Transport
	Book      peerbook.Book
	// Now replaces time.Now (tests).
	Now func() time.Time
	// OnReady is called once the node is listening.
	OnReady func(*Daemon)
}

// Daemon is a running node.
type Daemon struct {
	opt      Options
	log      *slog.Logger
	dir      *nodedir.Node
	cfg      core.Config
	node     *core.Node
	tr       transport.Transport
	book     peerbook.Book
	locators []string
	status   string
	queries  chan func(*core.Node)

	templates []announce.Template // from the configuration
	policy    *policy             // nil: an open grid
	invites   *inviteStore
	ownRevs   []string // revocations this node signed

	token   string   // the API token (auth.go)
	metrics *metrics // counters fed by logEvent (metrics.go)
}

// services is what the node announces: its configured services and, in a
// closed grid, the revocations it signed.
func (d *Daemon) services() []announce.Template {
	out := slices.Clone(d.templates)
	if d.policy != nil {
		if t, ok := revocationTemplate(d.ownRevs, d.dir.Config.Nickname, d.locators); ok {
			out = append(out, t)
		}
	}
	return out
}

// Locators returns the node's gv:// locators.
func (d *Daemon) Locators() []string { return slices.Clone(d.locators) }

// StatusAddr returns the status endpoint's address, or "".
func (d *Daemon) StatusAddr() string { return d.status }

// ID returns the node's ID.
func (d *Daemon) ID() announce.NodeID { return d.dir.ID() }

// Query runs f on the loop goroutine with the core, and waits for it. It
// returns false if the daemon stopped first.
func (d *Daemon) Query(ctx context.Context, f func(*core.Node)) bool {
	done := make(chan struct{})
	select {
	case d.queries <- func(n *core.Node) { f(n); close(done) }:
	case <-ctx.Done():
		return false
	}
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// Run opens the node directory, runs the node until ctx is done, and shuts
// down cleanly.
func Run(ctx context.Context, opt Options) (err error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	dir, err := nodedir.Open(opt.Dir)
	if err != nil {
		return err
	}
	unlock, err := Lock(opt.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	d := &Daemon{opt: opt, log: log, dir: dir, queries: make(chan func(*core.Node))}
	if d.token, err = ensureToken(opt.Dir); err != nil {
		return err
	}
	d.metrics = d.newMetrics()
	if d.cfg, err = dir.Config.CoreConfig(); err != nil {
		return err
	}

	d.book = opt.Book
	if d.book == nil {
		if d.book, err = peerbook.OpenSQLite(filepath.Join(opt.Dir, BookFile)); err != nil {
			return err
		}
		defer func() {
			if cerr := d.book.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}
	st, err := d.book.Load()
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(opt.Dir, BookFile), err)
	}
	st.Counter = max(st.Counter, dir.Counter())

	var boot []announce.Locator
	for i, s := range append(slices.Clone(dir.Config.Bootstrap), opt.Bootstrap...) {
		l, err := announce.ParseLocator(s)
		if err != nil {
			return fmt.Errorf("bootstrap %d: %w", i+1, err)
		}
		boot = append(boot, l)
	}

	d.tr = opt.Transport
	if d.tr == nil {
		tcp, err := transport.Listen(transport.Options{Key: dir.Key, ListenAddr: dir.Config.Listen, Logger: log})
		if err != nil {
			return fmt.Errorf("listen on %s: %w", dir.Config.Listen, err)
		}
		d.tr = tcp
		defer d.tr.Close()
	}

	location := dir.Config.Location
	if len(location) == 0 {
		if l, ok := nodedir.DefaultLocation(d.tr.Addr()); ok {
			location = []string{l}
		} else {
			log.Warn("no location configured and the listen address names no host: other nodes cannot dial this one",
				"listen", d.tr.Addr())
		}
	}
	cfgCopy := *dir.Config
	cfgCopy.Location = location
	d.locators = cfgCopy.Locators(dir.ID())

	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return err
	}
	rng := rand.New(rand.NewChaCha8(seed))
	d.templates = cfgCopy.Templates(dir.ID())
	if dir.Config.Grid != "" {
		if d.policy, err = loadPolicy(opt.Dir, announce.NodeID(dir.Config.Grid)); err != nil {
			return err
		}
		d.cfg.Membership = d.policy
		d.ownRevs = ownRevocations(dir.ID(), d.policy.set)
		if d.invites, err = loadInvites(opt.Dir); err != nil {
			return err
		}
	}
	d.node, err = core.New(d.cfg, core.Identity{Key: dir.Key, Services: d.services(), Bootstrap: boot}, st, rng)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(opt.Dir, BookFile), err)
	}

	if err := os.MkdirAll(filepath.Join(opt.Dir, RunDir), 0o755); err != nil {
		return err
	}
	if err := writeLines(filepath.Join(opt.Dir, RunDir, LocatorsFile), d.locators); err != nil {
		return err
	}
	if dir.Config.Status != "" {
		ln, err := net.Listen("tcp", dir.Config.Status)
		if err != nil {
			return fmt.Errorf("status listener: %w", err)
		}
		d.status = ln.Addr().String()
		srv := &http.Server{Handler: d.handler(), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		if err := writeLines(filepath.Join(opt.Dir, RunDir, StatusFile), []string{"http://" + d.status}); err != nil {
			return err
		}
	}
	log.Info("started", "id", string(dir.ID()), "listen", d.tr.Addr(), "locators", d.locators,
		"status", d.status, "records", len(st.Records), "peers", len(st.Peers), "counter", st.Counter)
	if opt.OnReady != nil {
		opt.OnReady(d)
	}
	err = d.loop(ctx)
	if serr := d.save(); serr != nil && err == nil {
		err = serr
	}
	log.Info("stopped", "reason", context.Cause(ctx))
	return err
}

// maxBatch bounds the inputs applied before their effects are persisted
// together: under load one save covers many inputs.
const maxBatch = 64

func (d *Daemon) loop(ctx context.Context) error {
	tick := time.NewTicker(d.cfg.TickInterval)
	defer tick.Stop()
	if err := d.step(core.Tick{}); err != nil {
		return err
	}
	for {
		var batch []core.Input
		select {
		case <-ctx.Done():
			return nil
		case i, ok := <-d.tr.Inputs():
			if !ok {
				return errors.New("transport closed")
			}
			batch = append(batch, i)
		drain:
			for len(batch) < maxBatch {
				select {
				case i, ok := <-d.tr.Inputs():
					if !ok {
						break drain
					}
					batch = append(batch, i)
				default:
					break drain
				}
			}
		case <-tick.C:
			batch = append(batch, core.Tick{})
		case q := <-d.queries:
			q(d.node)
			continue
		}
		if _, err := d.apply(batch...); err != nil {
			return err
		}
	}
}

// step applies one input and acts on the outputs.
func (d *Daemon) step(in core.Input) error {
	_, err := d.apply(in)
	return err
}

func (d *Daemon) stepEvents(in core.Input) ([]core.Event, error) { return d.apply(in) }

// apply steps the core through ins, persists once what they changed, and
// only then sends, dials and logs, in the order the core produced them.
func (d *Daemon) apply(ins ...core.Input) ([]core.Event, error) {
	readies := make([]core.Ready, 0, len(ins))
	var merged core.Ready
	for _, in := range ins {
		if r, ok := in.(core.Received); ok {
			if m, ok := r.Msg.(wire.Redeem); ok {
				d.tr.Send(r.From, d.redeem(r.From, m.Secret))
				continue
			}
		}
		d.node.Step(d.opt.Now(), in)
		r := d.node.Ready()
		merged.Counter = max(merged.Counter, r.Counter)
		merged.StateChanged = merged.StateChanged || r.StateChanged
		readies = append(readies, r)
	}
	if err := persist(d.dir, d.book, d.node, merged); err != nil {
		return nil, err
	}
	if err := d.policy.save(d.opt.Dir); err != nil {
		return nil, err
	}
	var events []core.Event
	for _, r := range readies {
		for _, m := range r.Messages {
			d.tr.Send(m.To, m.Msg)
		}
		for _, id := range r.CancelDials {
			d.tr.CancelDial(id)
		}
		for _, dl := range r.Dials {
			d.tr.Dial(dl.Peer, dl.Locators, dl.Timeout)
		}
		for _, e := range r.Events {
			d.logEvent(e)
		}
		events = append(events, r.Events...)
	}
	return events, nil
}

// persist does the first two steps of acting on Ready: the counter, then
// the state.
func persist(dir *nodedir.Node, book peerbook.Book, n *core.Node, r core.Ready) error {
	if r.Counter > 0 {
		if err := dir.StoreCounter(r.Counter); err != nil {
			return fmt.Errorf("persisting the announcement counter: %w", err)
		}
		if err := book.SaveCounter(r.Counter); err != nil {
			return fmt.Errorf("persisting the announcement counter: %w", err)
		}
	}
	if r.StateChanged {
		if err := book.Save(n.State()); err != nil {
			return fmt.Errorf("persisting the peer book: %w", err)
		}
	}
	return nil
}

func (d *Daemon) save() error {
	if err := d.book.Save(d.node.State()); err != nil {
		return fmt.Errorf("persisting the peer book: %w", err)
	}
	return nil
}

// logEvent writes an explain event: decisions to forget, reject, skip or
// limit at Info, routine ones at Debug.
func (d *Daemon) logEvent(e core.Event) {
	d.metrics.observe(e)
	level := slog.LevelInfo
	switch e.Kind {
	case core.EvDial:
		level = slog.LevelDebug
	}
	attrs := []any{"kind", string(e.Kind), "seq", e.Seq}
	if e.Peer != "" {
		attrs = append(attrs, "peer", string(e.Peer))
	}
	if e.Service != "" {
		attrs = append(attrs, "service", e.Service)
	}
	if e.Reason != "" {
		attrs = append(attrs, "reason", e.Reason)
	}
	for _, f := range e.Facts {
		attrs = append(attrs, f.Name, f.Value)
	}
	d.log.Log(context.Background(), level, string(e.Kind), attrs...)
}

// writeLines replaces path with lines atomically.
func writeLines(path string, lines []string) error {
	var b []byte
	for _, l := range lines {
		b = append(append(b, l...), '\n')
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
