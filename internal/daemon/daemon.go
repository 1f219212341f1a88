// Package daemon runs a node: it drives the protocol core (package core)
// with the real clock, an authenticated transport and a persistent peer
// book. The I/O layers (daemon, transport, foolscap) run goroutines; the
// protocol layers (core, records, announce, member, wire) have none, read
// no clock and do no I/O (internal/layering checks that).
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
	"os"
	"path/filepath"
	"slices"
	"time"

	"grapevine/announce"
	"grapevine/client/apitype"
	"grapevine/core"
	"grapevine/internal/atomicfile"
	"grapevine/internal/nodedir"
	"grapevine/internal/peerbook"
	"grapevine/internal/transport"
	"grapevine/wire"
)

// Files the daemon keeps in the node directory.
const (
	BookFile = "peerbook.sqlite" // the peer book
	LockFile = "grapevine.lock"  // held while a daemon runs
	RunDir   = apitype.RunDir    // what a running daemon publishes about itself
	// RunDir/locators: the node's gv:// locators, one per line, written once
	// the gossip endpoint listens. RunDir/status: the status address.
	LocatorsFile = "locators"
	StatusFile   = apitype.StatusFile
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
	// Now is the wall clock (default time.Now): see clock.
	Now func() time.Time
	// OnReady is called once the node is listening.
	OnReady func(*Daemon)

	// retryEvery replaces ReadOnlyRetry (tests).
	retryEvery time.Duration
	// reserveFor replaces ReserveTimeout, statusLimits the status
	// endpoint's defaults (tests).
	reserveFor   time.Duration
	statusLimits statusLimits
	// applied, if set, is signalled without blocking after each apply
	// (tests wait on it instead of sleeping).
	applied chan struct{}
	// coreConfig, if set, adjusts the core's configuration (benchmarks).
	coreConfig func(*core.Config)
}

// Daemon is a running node.
type Daemon struct {
	opt      Options
	clock    clock
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
	desk      *inviteDesk // decides on redeems (invites.go)
	intro     *introducer // the Foolscap introducer endpoint; nil if off
	ownRevs   []string    // revocations this node signed

	// Rate-limited redeems not yet logged, and when the last line was.
	redeemsQuiet  int
	redeemsLogged time.Time

	unsaved bool      // gossip or history changed since the last save
	savedAt time.Time // the last save of the state (monotonic)

	token    string   // the API token (auth.go)
	warnings []string // shown in /v1/status, on the page and by status
	metrics  *metrics // counters fed by logEvent (metrics.go)

	// Read-only mode (see apply): ro is the write that failed, nil while
	// the node can write.
	ro        *PersistError
	roSince   time.Time
	lastRetry time.Time // monotonic
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
	d := &Daemon{opt: opt, clock: clock{now: opt.Now}, log: log, dir: dir, queries: make(chan func(*core.Node))}
	if d.token, err = ensureToken(opt.Dir); err != nil {
		return err
	}
	d.metrics = d.newMetrics()
	if d.cfg, err = dir.Config.CoreConfig(); err != nil {
		return err
	}
	d.cfg.MsgSize, d.cfg.ItemSize = wire.Size, wire.ItemSize
	if opt.coreConfig != nil {
		opt.coreConfig(&d.cfg)
	}

	d.book = opt.Book
	bookWas := "given"
	if d.book == nil {
		bookWas = bookFileState(filepath.Join(opt.Dir, BookFile))
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
	if lost := bookLost(st, dir.Counter(), bookWas, len(dir.Config.Bootstrap)+len(opt.Bootstrap)); lost != "" {
		d.warnings = append(d.warnings, lost)
		log.Warn(lost, "file", filepath.Join(opt.Dir, BookFile), "counter", dir.Counter())
	}
	st.Counter = max(st.Counter, dir.Counter())
	if opt.retryEvery <= 0 {
		d.opt.retryEvery = ReadOnlyRetry
	}

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
	if seed := tahoeSeed(dir.Config.Tahoe.NodeDir); seed != "" {
		for i := range d.templates {
			if d.templates[i].Service.Name == "storage" {
				d.templates[i].PermutationSeed = seed
			}
		}
	}
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
	if err := checkTahoeKey(dir); err != nil {
		return err
	}
	d.node, err = core.New(d.cfg, core.Identity{Key: dir.Key, Services: d.services(), Bootstrap: boot,
		Nickname: dir.Config.Nickname, Locators: d.locators}, st, rng)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(opt.Dir, BookFile), err)
	}
	d.desk = &inviteDesk{store: d.invites, pol: d.policy, key: dir.Key, chain: dir.Config.Membership,
		records: d.node.PassedOn, reserveFor: d.reserveFor()}

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
		srv := d.statusServer()
		go srv.Serve(limitConns(ln, d.statusLimits().conns))
		defer srv.Close()
		if err := writeLines(filepath.Join(opt.Dir, RunDir, StatusFile), []string{"http://" + d.status}); err != nil {
			return err
		}
	}
	if d.intro, err = d.startIntroducer(ctx); err != nil {
		return err
	}
	defer d.intro.close()
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
	tick := d.clock.ticker(d.cfg.TickInterval)
	defer tick.Stop()
	d.apply(core.Tick{}) // a failed write is read-only mode, not an exit
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
		d.apply(batch...) // errors are read-only mode, logged by apply
	}
}

func (d *Daemon) stepEvents(in core.Input) ([]core.Event, error) { return d.apply(in) }

// apply steps the core through ins, persists once what they changed,
// acknowledges the counter on disk to the core (core.Persisted), and only
// then sends, dials and logs, in the order the core produced them.
//
// A failed write puts the node in read-only mode instead of stopping it
// (docs/design.md §7): it keeps running on what it holds, refuses
// operator writes (Import, Forget, SetServices) with a *ReadOnlyError,
// and tries a full save again every ReadOnlyRetry. The counter it could
// not write is not acknowledged, so the core sends no own record above
// the counter on disk. The error apply returns says the inputs' effects
// are not on disk.
func (d *Daemon) apply(ins ...core.Input) ([]core.Event, error) {
	if slices.ContainsFunc(ins, operatorWrite) {
		if err := d.writable(); err != nil {
			return nil, err
		}
	}
	readies := make([]core.Ready, 0, len(ins))
	var merged core.Ready
	tick := false
	for _, in := range ins {
		if d.joinInput(in) {
			continue
		}
		_, isTick := in.(core.Tick)
		tick = tick || isTick
		d.node.Step(d.clock.now(), in)
		r := d.node.Ready()
		merged.Counter = max(merged.Counter, r.Counter)
		merged.StateChanged = merged.StateChanged || r.StateChanged
		readies = append(readies, r)
	}
	// Only the counter and operator writes must be on disk before anything
	// leaves or is acknowledged; gossip and history ride along with the
	// next save, at most a SaveInterval later.
	if merged.StateChanged && merged.Counter == 0 && !slices.ContainsFunc(ins, operatorWrite) {
		d.unsaved, merged.StateChanged = true, false
	}
	if d.unsaved && d.clock.since(d.savedAt) >= SaveInterval {
		merged.StateChanged = true
	}
	var perr error
	if d.ro == nil {
		perr = d.write(merged)
	} else {
		perr = d.retry(tick)
	}
	if r, ok := d.acknowledge(); ok {
		readies = append(readies, r)
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
	d.intro.changed()
	if d.opt.applied != nil {
		select {
		case d.opt.applied <- struct{}{}:
		default:
		}
	}
	return events, perr
}

// acknowledge tells the core how far the counter is on disk (the counter
// file, the authority at start), so that it releases the own records it
// held back up to there. It returns the Ready that follows.
func (d *Daemon) acknowledge() (core.Ready, bool) {
	c := d.dir.Counter()
	if c <= d.node.Durable() {
		return core.Ready{}, false
	}
	d.node.Step(d.clock.now(), core.Persisted{Counter: c})
	r := d.node.Ready()
	if r.StateChanged {
		d.unsaved = true // gossip state: saved with the next save
	}
	return r, true
}

// SaveInterval: what gossip changed (records learnt from neighbours,
// forgets, connection history) is written at most this often, with the
// next save or at a tick. The counter and operator writes (import,
// forget, services) are written before anything depends on them. A crash
// loses at most this much gossip, which neighbours send again (a
// restarted node resyncs from the start). Without it, a neighbour's flood
// costs one fsync per record taken and per failed dial.
const SaveInterval = time.Second

// ReadOnlyRetry is how often a node in read-only mode tries to save again.
const ReadOnlyRetry = 2 * time.Second

// ErrReadOnly is matched (errors.Is) by a *ReadOnlyError; the status
// endpoint answers it with 503.
var ErrReadOnly = apitype.ErrReadOnly

// ReadOnlyError refuses, or reports as not persisted, a write made while
// the node cannot write its files.
type ReadOnlyError struct {
	Cause *PersistError
	Retry time.Duration
}

func (e *ReadOnlyError) Error() string {
	return fmt.Sprintf("node is read-only: %v; writes are refused until it can save again (it retries every %v)", e.Cause, e.Retry)
}

func (e *ReadOnlyError) Unwrap() []error { return []error{ErrReadOnly, e.Cause} }

// PersistError is a write of the node's state that failed.
type PersistError struct {
	What string // "announcement counter", "peer book" or "revocations"
	File string
	Err  error
}

func (e *PersistError) Error() string { return e.What + " not writable: " + e.Err.Error() }
func (e *PersistError) Unwrap() error { return e.Err }

// operatorWrite reports inputs an operator waits on: refused while
// read-only, since they would be acknowledged without being on disk.
func operatorWrite(in core.Input) bool {
	switch in.(type) {
	case core.Import, core.Forget, core.SetServices, core.Leave:
		return true
	}
	return false
}

// write persists r and the revocations. A failure enters read-only mode,
// a success leaves it.
func (d *Daemon) write(r core.Ready) error {
	err := persist(d.dir, d.book, d.node, r)
	if err == nil && r.StateChanged {
		d.unsaved, d.savedAt = false, d.clock.mono()
	}
	if err == nil {
		if perr := d.policy.save(d.opt.Dir); perr != nil {
			err = &PersistError{What: "revocations", File: filepath.Join(d.opt.Dir, RevocationsFile), Err: perr}
		}
	}
	var pe *PersistError
	if err != nil && !errors.As(err, &pe) {
		pe = &PersistError{What: "node state", File: d.opt.Dir, Err: err}
	}
	switch {
	case pe != nil && d.ro == nil:
		d.roSince, d.lastRetry = d.clock.now(), d.clock.mono()
		d.log.Error(pe.Error()+"; running read-only", "file", pe.File, "err", pe.Err.Error(), "retry_every", d.opt.retryEvery.String())
	case pe != nil && pe.Error() != d.ro.Error():
		d.log.Warn("still read-only: "+pe.Error(), "file", pe.File, "err", pe.Err.Error())
	case pe != nil:
		d.log.Debug("still read-only", "err", pe.Error())
	case d.ro != nil:
		d.log.Info("writable again: state saved; leaving read-only mode", "file", d.ro.File,
			"read_only_for", d.clock.now().Sub(d.roSince).Round(time.Millisecond).String())
		d.roSince = time.Time{}
	}
	d.ro = pe
	if pe != nil {
		return &ReadOnlyError{Cause: pe, Retry: d.opt.retryEvery}
	}
	return nil
}

// retry saves everything (the counter, the state, the revocations) if due
// and ReadOnlyRetry has passed since the last attempt. It returns nil
// once the node can write again.
func (d *Daemon) retry(due bool) error {
	if !due || d.clock.since(d.lastRetry) < d.opt.retryEvery {
		return &ReadOnlyError{Cause: d.ro, Retry: d.opt.retryEvery}
	}
	d.lastRetry = d.clock.mono()
	return d.write(core.Ready{Counter: d.node.Counter(), StateChanged: true})
}

// persist does the first two steps of acting on Ready: the counter, then
// the state. Its errors are *PersistError.
func persist(dir *nodedir.Node, book peerbook.Book, n *core.Node, r core.Ready) error {
	bookFile := filepath.Join(dir.Dir, BookFile)
	if r.Counter > 0 {
		if err := dir.StoreCounter(r.Counter); err != nil {
			return &PersistError{What: "announcement counter", File: filepath.Join(dir.Dir, nodedir.CounterFile), Err: err}
		}
		if err := book.SaveCounter(r.Counter); err != nil {
			return &PersistError{What: "peer book", File: bookFile, Err: err}
		}
	}
	if r.StateChanged {
		if err := book.Save(n.State()); err != nil {
			return &PersistError{What: "peer book", File: bookFile, Err: err}
		}
	}
	return nil
}

// save writes everything at shutdown: after read-only mode, it is the
// last chance for what changed since.
func (d *Daemon) save() error {
	wasReadOnly, since := d.ro != nil, d.roSince
	if err := d.write(core.Ready{Counter: d.node.Counter(), StateChanged: true}); err != nil {
		if wasReadOnly {
			return fmt.Errorf("stopping read-only: %w; what changed since %s is not saved", d.ro, since.Format(time.RFC3339))
		}
		return fmt.Errorf("stopping: %w", d.ro)
	}
	return nil
}

// writable returns nil if the node can write, trying a save first if it
// is read-only and the retry interval has passed; else a *ReadOnlyError.
// Handlers of writes call it on the loop before acting.
func (d *Daemon) writable() error {
	if d.ro == nil {
		return nil
	}
	return d.retry(true)
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

// writeLines replaces path with lines, durably (atomicfile).
func writeLines(path string, lines []string) error {
	var b []byte
	for _, l := range lines {
		b = append(append(b, l...), '\n')
	}
	return atomicfile.WriteFile(path, b, 0o644)
}
