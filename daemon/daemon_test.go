package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/nodedir"
	"grapevine/peerbook"
	"grapevine/transport"
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

// Two daemons on an in-memory network: the client learns the server, its
// state reaches the book, and a second Run on the same directory is
// refused while the first holds it.
func TestDaemonLearnsAndPersists(t *testing.T) {
	net := transport.NewMemNetwork()
	srv := testNode(t, "srv", nodedir.Config{Services: []nodedir.ServiceConfig{{Name: "storage", FURL: "pb://x@tcp:127.0.0.1:1/s"}}})
	srvTr, err := net.EndpointWith(transport.Options{Key: srv.Key, ListenAddr: "mem:1"})
	if err != nil {
		t.Fatal(err)
	}
	sd, _ := run(t, Options{Dir: srv.Dir, Transport: srvTr, Book: peerbook.NewMemory()})
	if len(sd.Locators()) != 1 || sd.Locators()[0] != (announce.Locator{ID: srv.ID(), Addr: "mem:1"}).String() {
		t.Fatalf("server locators %v", sd.Locators())
	}

	cli := testNode(t, "cli", nodedir.Config{})
	book := peerbook.NewMemory()
	cd, cr := run(t, Options{Dir: cli.Dir, Transport: net.Endpoint(cli.Key), Book: book, Bootstrap: sd.Locators()})
	deadline := time.Now().Add(10 * time.Second)
	for {
		var held bool
		cd.Query(context.Background(), func(n *core.Node) { held = n.Holds(srv.ID()) })
		if held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("client never held the server's record")
		}
		time.Sleep(10 * time.Millisecond)
	}

	err = Run(context.Background(), Options{Dir: cli.Dir, Transport: net.Endpoint(cli.Key), Book: peerbook.NewMemory()})
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
