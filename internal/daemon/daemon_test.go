package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/nodedir"
	"grapevine/internal/peerbook"
	"grapevine/internal/transport"
)

// testNode creates a node directory with test rules and the caller's
// overrides of them.
func testNode(t testing.TB, name string, cfg nodedir.Config) *nodedir.Node {
	t.Helper()
	cfg.Nickname = name
	cfg.Listen = "127.0.0.1:0"
	cfg.Rules.Preset = "test"
	n, err := nodedir.Create(filepath.Join(t.TempDir(), name), nodedir.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type running struct {
	d    chan *Daemon
	done chan error
	stop context.CancelFunc
}

func run(t testing.TB, opt Options) (*Daemon, *running) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: make(chan *Daemon, 1), done: make(chan error, 1), stop: cancel}
	opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	opt.OnReady = func(d *Daemon) { r.d <- d }
	opt.applied = make(chan struct{}, 1)
	go func() { r.done <- Run(ctx, opt) }()
	select {
	case d := <-r.d:
		t.Cleanup(func() { cancel(); <-r.done })
		return d, r
	case err := <-r.done:
		t.Fatalf("Run: %v", err)
	}
	return nil, nil
}

// waitFor checks cond now and each time wake fires, and fails if it
// does not hold within 10 s (of the fake clock, in a synctest bubble).
func waitFor(t testing.TB, wake <-chan struct{}, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		ok, why := cond()
		if ok {
			return
		}
		select {
		case <-wake:
		case <-deadline.C:
			t.Fatalf("waited 10 s for %s: %s", what, why)
		}
	}
}

// eventually waits for cond, checked again each time d has applied
// inputs: whatever cond reads of d changes only then.
func eventually(t testing.TB, d *Daemon, what string, cond func() (bool, string)) {
	t.Helper()
	if d.opt.applied == nil {
		t.Fatal("eventually: the daemon was not started by run")
	}
	waitFor(t, d.opt.applied, what, cond)
}

// noIntroducer is a configuration without the introducer endpoint, whose
// TCP listener would keep a synctest bubble's clock from advancing.
var noIntroducer = nodedir.IntroducerConfig{Listen: "off"}

// memEndpoint adds an endpoint at addr ("" for the next free one),
// closed when the test ends: a synctest bubble ends only once all its
// goroutines have.
func memEndpoint(t testing.TB, net *transport.MemNetwork, key announce.PrivateKey, addr string) transport.Transport {
	t.Helper()
	tr, err := net.EndpointWith(transport.Options{Key: key, ListenAddr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// Two daemons on an in-memory network: the client learns the server, its
// state reaches the book, and a second Run on the same directory is
// refused while the first holds it.
func TestDaemonLearnsAndPersists(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := transport.NewMemNetwork()
		srv := testNode(t, "srv", nodedir.Config{Introducer: noIntroducer,
			Services: []nodedir.ServiceConfig{{Name: "storage", FURL: "pb://x@tcp:127.0.0.1:1/s"}}})
		srvTr := memEndpoint(t, net, srv.Key, "mem:1")
		sd, _ := run(t, Options{Dir: srv.Dir, Transport: srvTr, Book: peerbook.NewMemory()})
		if len(sd.Locators()) != 1 || sd.Locators()[0] != (announce.Locator{ID: srv.ID(), Addr: "mem:1"}).String() {
			t.Fatalf("server locators %v", sd.Locators())
		}

		cli := testNode(t, "cli", nodedir.Config{Introducer: noIntroducer})
		book := peerbook.NewMemory()
		cd, cr := run(t, Options{Dir: cli.Dir, Transport: memEndpoint(t, net, cli.Key, ""), Book: book, Bootstrap: sd.Locators()})
		eventually(t, cd, "the client to hold the server's record", func() (bool, string) {
			var held bool
			cd.Query(context.Background(), func(n *core.Node) { held = n.Holds(srv.ID()) })
			return held, "not held"
		})

		err := Run(context.Background(), Options{Dir: cli.Dir, Transport: memEndpoint(t, net, cli.Key, ""), Book: peerbook.NewMemory()})
		var le *LockedError
		if !errors.As(err, &le) {
			t.Fatalf("second Run on one directory: %v, want *LockedError", err)
		}

		cr.stop()
		if err := <-cr.done; err != nil {
			t.Fatalf("clean stop: %v", err)
		}
		cr.done <- nil // for the cleanup
		st, err := book.Load()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range st.Records {
			found = found || r.Signed.Key == string(srv.ID())
		}
		if !found || st.Counter < 2 {
			t.Fatalf("book after stop: %d records, counter %d; want the server's record and counter >= 2", len(st.Records), st.Counter)
		}
	})
}

// The core steps on Options.Now, while the daemon's own intervals run on
// the monotonic clock: with the wall clock stood still, a failed dial's
// history is still saved within a SaveInterval and a tick.
func TestWallClockInjected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wall := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
		n := testNode(t, "n", nodedir.Config{Introducer: noIntroducer})
		book := &countingBook{Book: peerbook.NewMemory()}
		d, _ := run(t, Options{Dir: n.Dir, Transport: memEndpoint(t, transport.NewMemNetwork(), n.Key, ""), Book: book,
			Now: func() time.Time { return wall }})
		k := testKeyN(t, 1)
		rec := announce.Sign(k, announce.Build(k, announce.Template{Service: announce.Service{Name: "storage"},
			Locators: []string{"gv://" + string(k.ID()) + "@mem:60000"}}, 1)) // nothing listens
		var stepped time.Time
		var err error
		d.Query(context.Background(), func(n *core.Node) {
			_, err = d.stepEvents(core.Import{Recs: []announce.Signed{rec}})
			stepped = n.Wall()
		})
		if err != nil || !stepped.Equal(wall) {
			t.Fatalf("import: %v; the core stepped at %v, want %v", err, stepped, wall)
		}
		eventually(t, d, "the failed dial", func() (bool, string) {
			var s core.ServerInfo
			d.Query(context.Background(), func(n *core.Node) { s, _ = n.Server(k.ID()) })
			return s.Failures > 0, "no failure yet"
		})
		failedAt := time.Now()
		eventually(t, d, "the failure to reach the peer book", func() (bool, string) {
			st, err := book.Load()
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range st.Peers {
				if h.ID == k.ID() && h.Failures > 0 {
					return true, ""
				}
			}
			return false, "not saved"
		})
		if late := time.Since(failedAt); late > SaveInterval+200*time.Millisecond {
			t.Fatalf("saved %v after the failure, want at most %v", late, SaveInterval+200*time.Millisecond)
		}
	})
}

// Import into a stopped node writes the SQLite peer book; a bad record is
// refused with its reason and the good one kept.
func TestImportOffline(t *testing.T) {
	n := testNode(t, "n", nodedir.Config{})
	other := testNode(t, "o", nodedir.Config{Services: []nodedir.ServiceConfig{{Name: "storage", FURL: "pb://o@tcp:127.0.0.1:1/s"}}})
	good := other.Current()[0]
	bad := good
	bad.Msg = bad.Msg[:len(bad.Msg)-1] + " }"
	evs, err := Import(context.Background(), n.Dir, []announce.Signed{bad, good}, time.Unix(1e9, 0))
	if err != nil {
		t.Fatal(err)
	}
	var accepted, rejected int
	for _, e := range evs {
		switch e.Kind {
		case core.EvAccepted:
			accepted++
		case core.EvRejected:
			rejected++
			if e.Reason != "bad-signature" {
				t.Errorf("rejection reason %q, want bad-signature", e.Reason)
			}
		}
	}
	if accepted != 1 || rejected != 1 {
		t.Fatalf("accepted %d rejected %d: %v", accepted, rejected, evs)
	}
	book, err := peerbook.OpenSQLite(filepath.Join(n.Dir, BookFile))
	if err != nil {
		t.Fatal(err)
	}
	defer book.Close()
	st, err := book.Load()
	if err != nil || len(st.Records) != 1 || st.Records[0].Signed != good {
		t.Fatalf("book: %v %+v", err, st.Records)
	}
}
