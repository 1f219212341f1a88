package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/client/apitype"
	"grapevine/core"
	"grapevine/internal/nodedir"
	"grapevine/internal/peerbook"
	"grapevine/internal/transport"
	"grapevine/wire"
)

// fullBook is a peer book whose writes fail with ENOSPC while full is set,
// as SQLite's do on a full disk.
type fullBook struct {
	peerbook.Book
	full atomic.Bool
}

func (b *fullBook) Save(st core.State) error {
	if b.full.Load() {
		return fmt.Errorf("peerbook: save /test/peerbook.sqlite: %w", syscall.ENOSPC)
	}
	return b.Book.Save(st)
}

func (b *fullBook) SaveCounter(c int64) error {
	if b.full.Load() {
		return fmt.Errorf("peerbook: save counter /test/peerbook.sqlite: %w", syscall.ENOSPC)
	}
	return b.Book.SaveCounter(c)
}

// watchTransport checks every message a node sends: no record or digest
// item of its own may carry a seqnum above the counter on disk, read from
// the counter file at the moment of sending.
type watchTransport struct {
	transport.Transport
	id      announce.NodeID
	counter func() int64 // the counter file's value now

	mu      sync.Mutex
	over    []string // what was sent above the counter on disk
	maxSent int64
}

func (w *watchTransport) Send(peer announce.NodeID, m core.Msg) {
	var seqs []int64
	var recs []announce.Signed
	switch m := m.(type) {
	case core.Records:
		recs = m.Recs
	case wire.RedeemReply:
		recs = m.Records
	case core.Digest:
		for _, it := range m.Items {
			if it.ID == w.id {
				seqs = append(seqs, it.Seqnum)
			}
		}
	}
	for _, s := range recs {
		if s.Key == string(w.id) {
			a, err := announce.ParseUnverified(s)
			if err != nil {
				panic(err) // our own record always parses
			}
			seqs = append(seqs, a.Seqnum)
		}
	}
	if len(seqs) > 0 {
		disk := w.counter()
		w.mu.Lock()
		for _, q := range seqs {
			w.maxSent = max(w.maxSent, q)
			if q > disk {
				w.over = append(w.over, fmt.Sprintf("%T with seqnum %d, counter on disk %d", m, q, disk))
			}
		}
		w.mu.Unlock()
	}
	w.Transport.Send(peer, m)
}

// syncBuffer is a log destination safe for the daemon's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runLogged is run with the daemon's log kept in logs.
func runLogged(t *testing.T, opt Options, logs *syncBuffer) *Daemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan *Daemon, 1), make(chan error, 1)
	opt.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opt.OnReady = func(d *Daemon) { ready <- d }
	opt.applied = make(chan struct{}, 1)
	go func() { done <- Run(ctx, opt) }()
	select {
	case d := <-ready:
		t.Cleanup(func() { cancel(); <-done })
		return d
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return nil
}

func readCounter(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// A node whose peer book and counter file cannot be written keeps
// running read-only: status, metrics and the page say so and why, imports
// and forgets get 503, it still passes on what it holds, and no seqnum of
// its own above the counter on disk ever leaves it. Once the disk takes
// writes again it leaves read-only mode by itself, saves, and sends what
// it held back.
func TestReadOnly(t *testing.T) {
	mem := transport.NewMemNetwork()
	// No refresh during the test: only the recovery rule moves the counter.
	rules := nodedir.Rules{Preset: "test", RefreshInterval: nodedir.Duration(time.Hour),
		LivenessWindow: nodedir.Duration(time.Hour), ForgetHorizon: nodedir.Duration(4 * time.Hour), TombstoneTTL: nodedir.Duration(8 * time.Hour)}
	storage := func(name string) nodedir.Config {
		return nodedir.Config{Services: []nodedir.ServiceConfig{{Name: "storage", FURL: "pb://" + name + "@tcp:127.0.0.1:1/s"}}}
	}
	srv := apiNodeRules(t, "srv", rules, storage("srv"))
	away := srv.Dir + ".away"
	t.Cleanup(func() { os.Rename(away, srv.Dir) })
	counterFile := func() int64 {
		for _, dir := range []string{srv.Dir, away} {
			if c, err := readCounter(filepath.Join(dir, nodedir.CounterFile)); err == nil {
				return c
			}
		}
		t.Error("no counter file")
		return 0
	}
	inner, err := mem.EndpointWith(transport.Options{Key: srv.Key, ListenAddr: "mem:1"})
	if err != nil {
		t.Fatal(err)
	}
	tr := &watchTransport{Transport: inner, id: srv.ID(), counter: counterFile}
	store := peerbook.NewMemory()
	book := &fullBook{Book: store}
	logs := &syncBuffer{}
	d := runLogged(t, Options{Dir: srv.Dir, Transport: tr, Book: book, retryEvery: time.Millisecond}, logs)
	tok := token(t, d)

	other := apiNodeRules(t, "other", rules, storage("other"))
	od, _ := run(t, Options{Dir: other.Dir, Transport: mem.Endpoint(other.Key), Book: peerbook.NewMemory(), Bootstrap: d.Locators()})
	cli := apiNodeRules(t, "cli", rules, nodedir.Config{})
	cd, _ := run(t, Options{Dir: cli.Dir, Transport: mem.Endpoint(cli.Key), Book: peerbook.NewMemory(), Bootstrap: d.Locators()})
	waitHolds(t, d, other.ID())
	waitHolds(t, cd, srv.ID())

	status := func() Status {
		var st Status
		getJSON(t, d, "/v1/status", &st)
		return st
	}
	if st := status(); st.ReadOnly || st.ReadOnlyReason != "" || st.ReadOnlySince != nil {
		t.Fatalf("writable node's status: read_only %v %q %v", st.ReadOnly, st.ReadOnlyReason, st.ReadOnlySince)
	}

	// The disk fills: the peer book refuses writes. The next write is an
	// import: it is not acknowledged, and the node turns read-only.
	book.full.Store(true)
	fresh := testRecord(t, 1)
	code, body := call(t, d, "POST", "/v1/import", tok, []announce.Signed{fresh})
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "no space left on device") {
		t.Fatalf("import into a full disk: %d %s", code, body)
	}
	if st := status(); !st.ReadOnly || st.ReadOnlySince == nil || !strings.Contains(st.ReadOnlyReason, "peer book not writable") ||
		!strings.Contains(st.ReadOnlyReason, "no space left on device") {
		t.Fatalf("status after a failed save: read_only %v %q", st.ReadOnly, st.ReadOnlyReason)
	}
	// And the counter file cannot be written either: own seqnums above it
	// are signed in memory from now on, and must stay there. The other
	// server pushes a record of srv's key at a higher seqnum (as after a
	// lost counter), so srv jumps past it (recovery rule) in memory.
	if err := os.Rename(srv.Dir, away); err != nil {
		t.Fatal(err)
	}
	onDisk := counterFile()
	ahead := announce.Sign(srv.Key, announce.Build(srv.Key, announce.Template{Nickname: "srv", Service: announce.Service{Name: "storage"}}, onDisk+5))
	if code, body := call(t, od, "POST", "/v1/import", token(t, od), []announce.Signed{ahead}); code != http.StatusOK {
		t.Fatalf("import into the other server: %d %s", code, body)
	}
	var recovered int64
	eventually(t, d, "srv to jump past the pushed seqnum", func() (bool, string) {
		d.Query(context.Background(), func(n *core.Node) { recovered = n.Counter() })
		return recovered > onDisk+5, fmt.Sprintf("counter %d, on disk %d", recovered, onDisk)
	})
	var durable int64
	d.Query(context.Background(), func(n *core.Node) { durable = n.Durable() })
	if durable >= recovered {
		t.Fatalf("the core was told seqnum %d is on disk (on disk %d): no own record is held back, the check below proves nothing", durable, onDisk)
	}

	// Writes are refused with 503 and why.
	fresh2 := testRecord(t, 2)
	code, body = call(t, d, "POST", "/v1/import", tok, []announce.Signed{fresh2})
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "node is read-only") {
		t.Fatalf("import while read-only: %d %s", code, body)
	}
	code, body = call(t, d, "POST", "/v1/forget", tok, map[string]string{"id": string(other.ID())})
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "node is read-only") {
		t.Fatalf("forget while read-only: %d %s", code, body)
	}
	_, err = Import(context.Background(), away, []announce.Signed{fresh2}, time.Now())
	if !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "importing through the running daemon: 503 Service Unavailable: node is read-only: ") {
		t.Fatalf("ann import through a read-only daemon: %v, want ErrReadOnly", err)
	}

	// Reads are served: the API, the metrics, the page with its banner.
	var l ServerList
	getJSON(t, d, "/v1/servers", &l)
	if _, ok := findServer(Status{Servers: l.Servers}, other.ID()); !ok {
		t.Fatalf("servers while read-only: %+v", l)
	}
	if m, _ := scrape(t, d); m["grapevine_read_only"] != 1 {
		t.Fatalf("grapevine_read_only = %v, want 1", m["grapevine_read_only"])
	}
	if code, page := call(t, d, "GET", "/", "", nil); code != http.StatusOK || !bytes.Contains(page, []byte(`id="read-only"`)) ||
		!bytes.Contains(page, []byte("not writable")) {
		t.Fatalf("page while read-only: %d, no banner", code)
	}
	// And it passes on what it holds: a newcomer learns the other server.
	late := apiNodeRules(t, "late", rules, nodedir.Config{})
	ld, _ := run(t, Options{Dir: late.Dir, Transport: mem.Endpoint(late.Key), Book: peerbook.NewMemory(), Bootstrap: d.Locators()})
	eventually(t, ld, "a newcomer to learn the other server through the read-only node", func() (bool, string) {
		var held bool
		ld.Query(context.Background(), func(n *core.Node) { held = n.Holds(other.ID()) })
		return held, "not held"
	})

	// Space returns: the node leaves read-only mode, saves everything, and
	// the record it held back reaches the client.
	if err := os.Rename(away, srv.Dir); err != nil {
		t.Fatal(err)
	}
	book.full.Store(false)
	eventually(t, d, "read_only to clear", func() (bool, string) {
		st := status()
		return !st.ReadOnly && st.ReadOnlyReason == "" && st.ReadOnlySince == nil, st.ReadOnlyReason
	})
	eventually(t, cd, "the client to hold srv's record held back while read-only", func() (bool, string) {
		var s core.ServerInfo
		cd.Query(context.Background(), func(n *core.Node) { s, _ = n.Server(srv.ID()) })
		return s.Seqnum >= recovered, fmt.Sprintf("client holds seqnum %d, srv signed %d while read-only", s.Seqnum, recovered)
	})
	code, body = call(t, d, "POST", "/v1/import", tok, []announce.Signed{fresh2})
	if code != http.StatusOK || !strings.Contains(string(body), `"accepted"`) {
		t.Fatalf("import after recovery: %d %s", code, body)
	}
	// Everything is on disk: the acknowledged import, the one refused when
	// the disk filled (it was held in memory), the counter.
	saved, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	kept := map[announce.Signed]bool{}
	for _, r := range saved.Records {
		kept[r.Signed] = true
	}
	if !kept[fresh] || !kept[fresh2] || saved.Counter < recovered {
		t.Fatalf("book after recovery: records kept %v %v, counter %d (want at least %d)", kept[fresh], kept[fresh2], saved.Counter, recovered)
	}
	if m, _ := scrape(t, d); m["grapevine_read_only"] != 0 {
		t.Fatalf("grapevine_read_only = %v after recovery, want 0", m["grapevine_read_only"])
	}

	tr.mu.Lock()
	over, maxSent := tr.over, tr.maxSent
	tr.mu.Unlock()
	if len(over) > 0 {
		t.Fatalf("sent own seqnums above the counter on disk: %v", over)
	}
	if maxSent < recovered {
		t.Fatalf("highest own seqnum sent %d: the record held back while read-only (%d) never left", maxSent, recovered)
	}

	// The log: one Error line on entering, naming the file and the OS
	// error, and one Info line on leaving.
	var entered, left int
	for _, line := range strings.Split(logs.String(), "\n") {
		switch {
		case strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, "running read-only"):
			entered++
			if !strings.Contains(line, `"file":"`) || !strings.Contains(line, "no space left on device") {
				t.Errorf("entering line lacks the file or the OS error: %s", line)
			}
		case strings.Contains(line, `"level":"INFO"`) && strings.Contains(line, "leaving read-only mode"):
			left++
		}
	}
	if entered != 1 || left != 1 {
		t.Fatalf("log: %d lines entering read-only mode and %d leaving, want 1 and 1:\n%s", entered, left, logs)
	}
}

// testRecord is a storage announcement from a fixed key of its own.
func testRecord(t *testing.T, n byte) announce.Signed {
	t.Helper()
	k, err := announce.NewPrivateKey(bytes.Repeat([]byte{n, 0x5a}, 16))
	if err != nil {
		t.Fatal(err)
	}
	return announce.Sign(k, announce.Build(k, announce.Template{Nickname: fmt.Sprintf("fresh-%d", n), Service: announce.Service{Name: "storage"}}, 1))
}

// A persist error names the file and keeps the OS error for errors.Is;
// a ReadOnlyError is ErrReadOnly, the OS error, and a 503 to handlers.
func TestReadOnlyErrors(t *testing.T) {
	pe := &PersistError{What: "peer book", File: "/n/peerbook.sqlite", Err: fmt.Errorf("peerbook: save /n/peerbook.sqlite: %w", syscall.ENOSPC)}
	err := error(&ReadOnlyError{Cause: pe, Retry: ReadOnlyRetry})
	if code := apitype.StatusCode(err); !errors.Is(err, ErrReadOnly) || !errors.Is(err, syscall.ENOSPC) || code != http.StatusServiceUnavailable {
		t.Fatalf("%v: Is(ErrReadOnly) %v, Is(ENOSPC) %v, status %d", err, errors.Is(err, ErrReadOnly), errors.Is(err, syscall.ENOSPC), code)
	}
	if want := "node is read-only: peer book not writable: peerbook: save /n/peerbook.sqlite: no space left on device;"; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("message %q, want it to start %q", err, want)
	}
}

// A node stopped while read-only tries a last save; if that fails too,
// Run says what was not saved, and why.
func TestReadOnlyAtShutdown(t *testing.T) {
	n := apiNode(t, "n", "test", nodedir.Config{})
	book := &fullBook{Book: peerbook.NewMemory()}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan *Daemon, 1), make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Dir: n.Dir, Transport: transport.NewMemNetwork().Endpoint(n.Key), Book: book,
			Logger: slog.New(slog.DiscardHandler), OnReady: func(d *Daemon) { ready <- d }})
	}()
	var d *Daemon
	select {
	case d = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	book.full.Store(true)
	if code, body := call(t, d, "POST", "/v1/import", token(t, d), []announce.Signed{testRecord(t, 3)}); code != http.StatusServiceUnavailable {
		t.Fatalf("import into a full disk: %d %s", code, body)
	}
	cancel()
	err := <-done
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "stopping read-only") || !strings.Contains(err.Error(), "not saved") {
		t.Fatalf("Run after a read-only stop: %v", err)
	}
}

// The page shows a banner with the reason and since when, only while the
// node is read-only.
func TestPageReadOnlyBanner(t *testing.T) {
	st := testStatus()
	if page := render(t, st, -1); strings.Contains(page, `id="read-only"`) || strings.Contains(page, "READ-ONLY") {
		t.Fatal("banner on a writable node's page")
	}
	since := st.Now.Add(-90 * time.Second)
	st.ReadOnly, st.ReadOnlyReason, st.ReadOnlySince = true, "peer book not writable: <x> no space left on device", &since
	page := render(t, st, -1)
	i := strings.Index(page, `<p id="read-only"`)
	if i < 0 || !strings.Contains(page, "<title>READ-ONLY · ") {
		t.Fatal("no read-only banner or title")
	}
	banner := page[i : i+strings.Index(page[i:], "</p>")]
	for _, want := range []string{`data-read-only="true"`, "Read-only since 1 min ago", "</time>:</strong>", "peer book not writable: &lt;x&gt; no space left on device",
		"leaves read-only mode by itself"} {
		if !strings.Contains(text(banner), want) && !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if i > strings.Index(page, `<h1 id="summary"`) {
		t.Error("banner below the headline")
	}
}
