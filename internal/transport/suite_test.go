package transport

import (
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/records"
)

// network makes transports that can reach each other.
type network func(t *testing.T, opts Options) Transport

// networks are the implementations the shared suite runs against. Each
// call makes a fresh network.
var networks = map[string]func() network{
	"tcp": func() network {
		return func(t *testing.T, opts Options) Transport {
			if opts.ListenAddr == "" {
				opts.ListenAddr = "127.0.0.1:0"
			}
			tr, err := Listen(opts)
			if err != nil {
				t.Fatal(err)
			}
			return tr
		}
	},
	"mem": func() network {
		hub := NewMemNetwork()
		return func(t *testing.T, opts Options) Transport {
			tr, err := hub.EndpointWith(opts)
			if err != nil {
				t.Fatal(err)
			}
			return tr
		}
	},
}

// node is a transport under test with its recorder.
type node struct {
	key announce.PrivateKey
	id  announce.NodeID
	tr  Transport
	rec *recorder
}

func (n *node) loc() string { return locator(n.key, n.tr) }

func start(t *testing.T, nw network, key announce.PrivateKey, mod func(*Options)) *node {
	t.Helper()
	rec := newRecorder()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", key.ID().Short())
	opts := Options{Key: key, OnReject: rec.onReject, Logger: log}
	if mod != nil {
		mod(&opts)
	}
	tr := nw(t, opts)
	rec.drain(tr)
	t.Cleanup(func() { tr.Close() })
	return &node{key: key, id: key.ID(), tr: tr, rec: rec}
}

// connect dials b from a and waits for both sides to see it.
func connect(t *testing.T, a, b *node) {
	t.Helper()
	a.tr.Dial(b.id, []string{b.loc()}, 5*time.Second)
	if c := a.rec.next(t, "Connected at the dialler", isConnected(b.id)).(core.Connected); c.Inbound {
		t.Fatal("the dialler's connection is inbound")
	}
	if c := b.rec.next(t, "Connected at the dialled", isConnected(a.id)).(core.Connected); !c.Inbound {
		t.Fatal("the dialled side's connection is outbound")
	}
}

func suite(t *testing.T, f func(t *testing.T, nw func() network)) {
	for name, nw := range networks {
		t.Run(name, func(t *testing.T) { f(t, nw) })
	}
}

func TestExchange(t *testing.T) {
	suite(t, func(t *testing.T, mk func() network) {
		nw := mk()
		a := start(t, nw, testKey(t, 1), nil)
		b := start(t, nw, testKey(t, 2), nil)
		connect(t, a, b)
		for _, m := range messages(t) {
			a.tr.Send(b.id, m)
			b.tr.Send(a.id, m)
		}
		for _, m := range messages(t) {
			b.rec.next(t, "message from a", isReceived(a.id, m))
			a.rec.next(t, "message from b", isReceived(b.id, m))
		}
		// The first ping goes out at once.
		if rtt := a.rec.next(t, "RTT sample", isRTT(b.id)).(core.RTTSample).RTT; rtt < 0 || rtt > waitLimit {
			t.Errorf("rtt %v", rtt)
		}
		b.rec.next(t, "RTT sample", isRTT(a.id))
		// A message that cannot be encoded is dropped; the connection stays.
		a.tr.Send(b.id, core.Fetch{Keys: []records.Key{{Service: "s", ID: "bad"}}})
		a.tr.Send(b.id, core.SyncReq{Epoch: 1})
		b.rec.next(t, "message after a dropped one", isReceived(a.id, core.SyncReq{Epoch: 1}))
		// Sends to a peer that is not connected are dropped.
		a.tr.Send(testKey(t, 3).ID(), core.SyncReq{})
		// Dialling a connected peer reports Connected again.
		a.tr.Dial(b.id, []string{b.loc()}, time.Second)
		a.rec.next(t, "Connected again", isConnected(b.id))
		if n := a.rec.count(isDisconnected(b.id)) + b.rec.count(isDisconnected(a.id)); n != 0 {
			t.Fatalf("%d disconnections", n)
		}
		if _, n := connState(a.tr, b.id); n != 1 {
			t.Fatalf("%d connections", n)
		}
	})
}

func TestKeyMismatch(t *testing.T) {
	suite(t, func(t *testing.T, mk func() network) {
		nw := mk()
		a := start(t, nw, testKey(t, 1), nil)
		b := start(t, nw, testKey(t, 2), nil)
		c := testKey(t, 3).ID()
		wrong := announce.Locator{ID: c, Addr: b.tr.Addr()}.String()
		a.tr.Dial(c, []string{wrong}, 5*time.Second)
		df := a.rec.next(t, "DialFailed", isDialFailed(c)).(core.DialFailed)
		if df.Err != ReasonKeyMismatch {
			t.Fatalf("DialFailed %q, want %q", df.Err, ReasonKeyMismatch)
		}
		rj := a.rec.rejection(t, func(r Rejection) bool { return r.Reason == ReasonKeyMismatch })
		var km *KeyMismatchError
		if !errors.As(rj.Err, &km) || km.Want != c || km.Got != b.id || km.Addr != b.tr.Addr() || rj.Peer != b.id || rj.Inbound {
			t.Fatalf("rejection %+v (%v)", rj, rj.Err)
		}
		if !strings.Contains(km.Error(), string(c)) {
			t.Fatalf("error text %q", km.Error())
		}
		// The next locator is tried: the right one connects.
		a.tr.Dial(b.id, []string{announce.Locator{ID: b.id, Addr: a.tr.Addr()}.String(), b.loc()}, 5*time.Second)
		a.rec.next(t, "Connected", isConnected(b.id))
	})
}

func TestDialFailures(t *testing.T) {
	suite(t, func(t *testing.T, mk func() network) {
		nw := mk()
		a := start(t, nw, testKey(t, 1), nil)
		b := start(t, nw, testKey(t, 2), nil)
		closed := start(t, nw, testKey(t, 3), nil)
		closedLoc := closed.loc()
		closed.tr.Close()
		for _, c := range []struct {
			peer announce.NodeID
			locs []string
			want string
		}{
			{b.id, nil, ReasonNoLocator},
			{b.id, []string{"gv://nonsense"}, ReasonBadLocator},
			{b.id, []string{locator(testKey(t, 4), b.tr)}, ReasonBadLocator}, // a locator for another key
			{closed.id, []string{closedLoc}, ReasonRefused},
			{a.id, []string{a.loc()}, ReasonSelf},
		} {
			a.tr.Dial(c.peer, c.locs, 5*time.Second)
			if df := a.rec.next(t, "DialFailed", isDialFailed(c.peer)).(core.DialFailed); df.Err != c.want {
				t.Errorf("dial %v: %q, want %q", c.locs, df.Err, c.want)
			}
		}
	})
}

func TestFrameTooLarge(t *testing.T) {
	suite(t, func(t *testing.T, mk func() network) {
		nw := mk()
		a := start(t, nw, testKey(t, 1), nil)
		b := start(t, nw, testKey(t, 2), func(o *Options) { o.MaxFrame = 1000 })
		connect(t, a, b)
		big := core.Records{Recs: []announce.Signed{{Msg: strings.Repeat("x", 2000)}}}
		a.tr.Send(b.id, big)
		if d := b.rec.next(t, "Disconnected", isDisconnected(a.id)).(core.Disconnected); d.Err != ReasonFrameTooLarge {
			t.Fatalf("receiver: %q, want %q", d.Err, ReasonFrameTooLarge)
		}
		a.rec.next(t, "Disconnected at the sender", isDisconnected(b.id))
		// b does not send what it would refuse: the message is dropped.
		connect(t, a, b)
		b.tr.Send(a.id, big)
		b.tr.Send(a.id, core.SyncReq{Cursor: 5})
		a.rec.next(t, "the message after", isReceived(b.id, core.SyncReq{Cursor: 5}))
		if a.rec.count(isReceived(b.id, big)) != 0 {
			t.Fatal("b sent a frame over its MaxFrame")
		}
	})
}

func TestSimultaneousDial(t *testing.T) {
	suite(t, func(t *testing.T, mk func() network) {
		for i := range 10 {
			nw := mk()
			a := start(t, nw, testKey(t, byte(2*i+1)), nil)
			b := start(t, nw, testKey(t, byte(2*i+2)), nil)
			done := make(chan struct{})
			go func() { a.tr.Dial(b.id, []string{b.loc()}, 5*time.Second); close(done) }()
			b.tr.Dial(a.id, []string{a.loc()}, 5*time.Second)
			<-done
			a.rec.next(t, "Connected", isConnected(b.id))
			b.rec.next(t, "Connected", isConnected(a.id))
			// Settled: one connection each side, the same one.
			eventually(t, "one connection", func() bool {
				ca, na := connState(a.tr, b.id)
				cb, nb := connState(b.tr, a.id)
				return na == 1 && nb == 1 && ca != nil && cb != nil && ca.inbound != cb.inbound
			})
			// And it carries messages; each side ends up connected once.
			a.tr.Send(b.id, core.SyncReq{Epoch: uint64(i)})
			b.rec.next(t, "message", isReceived(a.id, core.SyncReq{Epoch: uint64(i)}))
			for _, n := range []*node{a, b} {
				other := a.id
				if n == a {
					other = b.id
				}
				var last core.Input
				for _, in := range n.rec.all() {
					if isConnected(other)(in) || isDisconnected(other)(in) {
						last = in
					}
				}
				if _, ok := last.(core.Connected); !ok || n.rec.count(isDisconnected(other)) > 1 {
					t.Fatalf("round %d: inputs %v", i, n.rec.all())
				}
			}
			a.tr.Close()
			b.tr.Close()
		}
	})
}

func TestReconnect(t *testing.T) {
	suite(t, func(t *testing.T, mk func() network) {
		nw := mk()
		a := start(t, nw, testKey(t, 1), nil)
		bKey := testKey(t, 2)
		b := start(t, nw, bKey, nil)
		connect(t, a, b)
		// The remote side goes away.
		b.tr.Close()
		if d := a.rec.next(t, "Disconnected", isDisconnected(b.id)).(core.Disconnected); d.Err != ReasonClosed && d.Err != ReasonReset {
			t.Fatalf("Disconnected %q", d.Err)
		}
		// It comes back (same key, new address) and a dials it again.
		b2 := start(t, nw, bKey, nil)
		connect(t, a, b2)
		a.tr.Send(b.id, core.SyncReq{Epoch: 2})
		b2.rec.next(t, "message", isReceived(a.id, core.SyncReq{Epoch: 2}))
		// A local Disconnect, then a dial from the other side.
		a.tr.Disconnect(b.id)
		if d := a.rec.next(t, "Disconnected", isDisconnected(b.id)).(core.Disconnected); d.Err != ReasonLocal {
			t.Fatalf("Disconnected %q, want %q", d.Err, ReasonLocal)
		}
		b2.rec.next(t, "Disconnected", isDisconnected(a.id))
		connect(t, b2, a)
		b2.tr.Send(a.id, core.SyncReq{Epoch: 3})
		a.rec.next(t, "message", isReceived(b.id, core.SyncReq{Epoch: 3}))
	})
}

// Two connections, one dialled by each side, in either order: both sides
// keep the one dialled by the smaller ID, and report one Connected.
func TestDuplicateConnections(t *testing.T) {
	suite(t, func(t *testing.T, mk func() network) {
		for i := range 8 {
			nw := mk()
			a := start(t, nw, testKey(t, byte(2*i+1)), nil)
			b := start(t, nw, testKey(t, byte(2*i+2)), nil)
			first, second := a, b
			if i%2 == 1 {
				first, second = b, a
			}
			force(t, first, second)
			first.rec.next(t, "Connected", isConnected(second.id))
			second.rec.next(t, "Connected", isConnected(first.id))
			// Messages sent while the duplicate is sorted out all arrive.
			sent := make(chan struct{})
			go func() {
				defer close(sent)
				for j := range 200 {
					a.tr.Send(b.id, core.Fetch{Keys: []records.Key{{Service: strconv.Itoa(j), ID: a.id}}})
				}
			}()
			force(t, second, first)
			<-sent
			for j := range 200 {
				b.rec.next(t, "message "+strconv.Itoa(j), isReceived(a.id, core.Fetch{Keys: []records.Key{{Service: strconv.Itoa(j), ID: a.id}}}))
			}
			smaller := min(a.id, b.id)
			eventually(t, "the connection dialled by the smaller ID", func() bool {
				ca, na := connState(a.tr, b.id)
				cb, nb := connState(b.tr, a.id)
				return na == 1 && nb == 1 && ca != nil && cb != nil &&
					ca.inbound == (smaller == b.id) && cb.inbound == (smaller == a.id)
			})
			a.tr.Send(b.id, core.SyncReq{Epoch: 5})
			b.rec.next(t, "message", isReceived(a.id, core.SyncReq{Epoch: 5}))
			b.tr.Send(a.id, core.SyncReq{Epoch: 6})
			a.rec.next(t, "message", isReceived(b.id, core.SyncReq{Epoch: 6}))
			for _, n := range []*node{a, b} {
				if c, d := n.rec.count(func(in core.Input) bool { _, ok := in.(core.Connected); return ok }),
					n.rec.count(func(in core.Input) bool { _, ok := in.(core.Disconnected); return ok }); c != 1 || d != 0 {
					t.Fatalf("round %d: %d Connected, %d Disconnected: %v", i, c, d, n.rec.all())
				}
			}
			a.tr.Close()
			b.tr.Close()
		}
	})
}

// force opens a connection from a to b whatever the peer table says, as a
// dial racing another would.
func force(t *testing.T, a, b *node) {
	t.Helper()
	e := engineOf(a.tr)
	loc, err := announce.ParseLocator(b.loc())
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.connect(t.Context(), loc)
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		e.serve(c, nil)
	}()
}

// testWriter sends log lines to the test log, shown on failure or -v.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
