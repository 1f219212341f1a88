package transport

import (
	"bytes"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/records"
)

func testKey(t testing.TB, n byte) announce.PrivateKey {
	t.Helper()
	k, err := announce.NewPrivateKey(bytes.Repeat([]byte{n}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// recorder collects a transport's inputs and rejections.
type recorder struct {
	mu     sync.Mutex
	ins    []core.Input
	used   []bool
	rejs   []Rejection
	wake   chan struct{}
	closed bool
}

func newRecorder() *recorder { return &recorder{wake: make(chan struct{})} }

// drain reads tr's inputs until the channel closes.
func (r *recorder) drain(tr Transport) {
	go func() {
		for in := range tr.Inputs() {
			r.mu.Lock()
			r.ins = append(r.ins, in)
			r.used = append(r.used, false)
			close(r.wake)
			r.wake = make(chan struct{})
			r.mu.Unlock()
		}
		r.mu.Lock()
		r.closed = true
		close(r.wake)
		r.wake = make(chan struct{})
		r.mu.Unlock()
	}()
}

func (r *recorder) onReject(rj Rejection) {
	r.mu.Lock()
	r.rejs = append(r.rejs, rj)
	close(r.wake)
	r.wake = make(chan struct{})
	r.mu.Unlock()
}

// waitLimit outlasts the default idle timeout, which synctest tests wait
// out in virtual time.
const waitLimit = 2 * 3 * DefaultHeartbeat

// next returns the first unused input matching pred, waiting for it.
func (r *recorder) next(t testing.TB, what string, pred func(core.Input) bool) core.Input {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		r.mu.Lock()
		for i, in := range r.ins {
			if !r.used[i] && pred(in) {
				r.used[i] = true
				r.mu.Unlock()
				return in
			}
		}
		wake, closed := r.wake, r.closed
		r.mu.Unlock()
		if closed {
			t.Fatalf("inputs closed while waiting for %s; got %v", what, r.all())
		}
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("no %s within %v; got %v", what, waitLimit, r.all())
		}
	}
}

func (r *recorder) rejection(t testing.TB, pred func(Rejection) bool) Rejection {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		r.mu.Lock()
		for _, rj := range r.rejs {
			if pred(rj) {
				r.mu.Unlock()
				return rj
			}
		}
		wake := r.wake
		rejs := fmt.Sprint(r.rejs)
		r.mu.Unlock()
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("no matching rejection within %v; got %s", waitLimit, rejs)
		}
	}
}

func (r *recorder) all() []core.Input {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]core.Input(nil), r.ins...)
}

// count counts inputs matching pred.
func (r *recorder) count(pred func(core.Input) bool) int {
	n := 0
	for _, in := range r.all() {
		if pred(in) {
			n++
		}
	}
	return n
}

func isConnected(peer announce.NodeID) func(core.Input) bool {
	return func(in core.Input) bool { c, ok := in.(core.Connected); return ok && c.Peer == peer }
}

func isDisconnected(peer announce.NodeID) func(core.Input) bool {
	return func(in core.Input) bool { c, ok := in.(core.Disconnected); return ok && c.Peer == peer }
}

func isDialFailed(peer announce.NodeID) func(core.Input) bool {
	return func(in core.Input) bool { c, ok := in.(core.DialFailed); return ok && c.Peer == peer }
}

func isRTT(peer announce.NodeID) func(core.Input) bool {
	return func(in core.Input) bool { c, ok := in.(core.RTTSample); return ok && c.Peer == peer }
}

func isReceived(from announce.NodeID, m core.Msg) func(core.Input) bool {
	return func(in core.Input) bool {
		c, ok := in.(core.Received)
		return ok && c.From == from && reflect.DeepEqual(c.Msg, m)
	}
}

// eventually polls cond until it holds or the limit passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitLimit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func locator(key announce.PrivateKey, tr Transport) string {
	return announce.Locator{ID: key.ID(), Addr: tr.Addr()}.String()
}

// messages returns one message of every core type.
func messages(t testing.TB) []core.Msg {
	k := testKey(t, 9)
	rec := announce.Sign(k, announce.Build(k, announce.Template{Nickname: "n", Service: announce.Service{Name: "storage"}}, 3))
	return []core.Msg{
		core.SyncReq{Epoch: 7, Cursor: 11},
		core.Digest{Epoch: 7, From: 1, To: 2, More: true, Items: []core.Item{{Service: "storage", ID: k.ID(), Seqnum: 3, Hash: 99, Ver: 2}}},
		core.Fetch{Keys: []records.Key{{Service: "storage", ID: k.ID()}}},
		core.Records{Recs: []announce.Signed{rec}},
	}
}

func engineOf(tr Transport) *engine {
	switch tr := tr.(type) {
	case *TCP:
		return tr.e
	case *memEndpoint:
		return tr.e
	}
	panic("unknown transport")
}

// connState returns the peer's connection in use and how many
// connections the transport has.
func connState(tr Transport, peer announce.NodeID) (*conn, int) {
	e := engineOf(tr)
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range e.peers {
		for _, c := range s.conns {
			if c != nil {
				n++
			}
		}
	}
	return e.current(peer), n
}
