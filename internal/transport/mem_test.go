package transport

import (
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/records"
	"grapevine/wire"
)

// In a synctest bubble the memory network runs on the fake clock:
// heartbeats and timeouts take no real time, and the bubble checks that
// Close leaves no goroutine behind.

func memPair(t *testing.T, hub *MemNetwork, modB func(*Options)) (a, b *node) {
	nw := func(t *testing.T, opts Options) Transport {
		tr, err := hub.EndpointWith(opts)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	a = start(t, nw, testKey(t, 1), nil)
	b = start(t, nw, testKey(t, 2), modB)
	return a, b
}

func TestMemHeartbeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := NewMemNetwork()
		a, b := memPair(t, hub, nil)
		if a.tr.Addr() != "mem:1" || b.tr.Addr() != "mem:2" {
			t.Fatalf("addresses %s, %s", a.tr.Addr(), b.tr.Addr())
		}
		connect(t, a, b)
		time.Sleep(3*DefaultHeartbeat + 5*time.Second) // three heartbeats, past one idle timeout
		synctest.Wait()
		for _, c := range []struct {
			n       *node
			peer    announce.NodeID
			samples int
		}{{a, b.id, 4}, {b, a.id, 1}} {
			// The dialler pings at start and on each quiet heartbeat; the
			// other side only at start, yet nobody times out.
			if n := c.n.rec.count(isRTT(c.peer)); n != c.samples {
				t.Errorf("%d RTT samples, want %d", n, c.samples)
			}
			if n := c.n.rec.count(isDisconnected(c.peer)); n != 0 {
				t.Errorf("disconnected: %v", c.n.rec.all())
			}
		}
		a.tr.Close()
		b.tr.Close()
	})
}

// silentPeer attaches a connection from a made-up peer to tr whose far
// end is read (if read) but never written.
func silentPeer(t *testing.T, tr Transport, id announce.NodeID, read bool) net.Conn {
	m := tr.(*memEndpoint)
	far, near := memPipe("mem:99", tr.Addr())
	if !m.accept(near, id, "mem:99") {
		t.Fatal("endpoint closed")
	}
	if read {
		go io.Copy(io.Discard, far)
	}
	return far
}

func TestMemIdleAndWriteTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := NewMemNetwork()
		a, _ := memPair(t, hub, nil)
		quiet, stuck := testKey(t, 5).ID(), testKey(t, 6).ID()
		far1 := silentPeer(t, a.tr, quiet, true)
		far2 := silentPeer(t, a.tr, stuck, false)
		start := time.Now()
		a.rec.next(t, "Connected", isConnected(quiet))
		a.rec.next(t, "Connected", isConnected(stuck))
		d := a.rec.next(t, "Disconnected", isDisconnected(stuck)).(core.Disconnected)
		if d.Err != ReasonWriteTimeout || time.Since(start) != DefaultWriteTimeout {
			t.Errorf("a peer that reads nothing: %q after %v", d.Err, time.Since(start))
		}
		d = a.rec.next(t, "Disconnected", isDisconnected(quiet)).(core.Disconnected)
		if d.Err != ReasonIdle || time.Since(start) != 3*DefaultHeartbeat {
			t.Errorf("a peer that says nothing: %q after %v", d.Err, time.Since(start))
		}
		far1.Close()
		far2.Close()
		a.tr.Close()
	})
}

// A peer that does not keep up is disconnected once SendQueue frames wait.
func TestMemSendQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := NewMemNetwork()
		a := start(t, func(t *testing.T, o Options) Transport {
			o.SendQueue = 4
			tr, _ := hub.EndpointWith(o)
			return tr
		}, testKey(t, 1), nil)
		bKey := testKey(t, 2)
		b := hub.Endpoint(bKey) // nobody reads its inputs
		a.tr.Dial(bKey.ID(), []string{locator(bKey, b)}, time.Second)
		a.rec.next(t, "Connected", isConnected(bKey.ID()))
		for i := range 2000 {
			a.tr.Send(bKey.ID(), core.SyncReq{Epoch: uint64(i)})
			synctest.Wait()
		}
		d := a.rec.next(t, "Disconnected", isDisconnected(bKey.ID())).(core.Disconnected)
		if d.Err != ReasonQueueFull {
			t.Fatalf("Disconnected %q, want %q", d.Err, ReasonQueueFull)
		}
		if n := len(b.Inputs()); n != InputQueue {
			t.Fatalf("b holds %d inputs, want a full queue of %d", n, InputQueue)
		}
		b.Close()
		a.tr.Close()
	})
}

func TestMemAddresses(t *testing.T) {
	hub := NewMemNetwork()
	k := testKey(t, 1)
	a := hub.Endpoint(k)
	defer a.Close()
	if _, err := hub.EndpointWith(Options{Key: k, ListenAddr: a.Addr()}); err == nil {
		t.Fatal("address in use: no error")
	}
	for _, bad := range []string{"mem:0", "mem:x", "mem:01", "tcp:1", "mem:70000"} {
		if _, err := hub.EndpointWith(Options{Key: k, ListenAddr: bad}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	b, err := hub.EndpointWith(Options{Key: testKey(t, 2), ListenAddr: "mem:7"})
	if err != nil || b.Addr() != "mem:7" {
		t.Fatal(b, err)
	}
	// A restarted node takes its address back.
	b.Close()
	b2, err := hub.EndpointWith(Options{Key: testKey(t, 2), ListenAddr: "mem:7"})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if _, err := announce.ParseLocator(locator(testKey(t, 2), b2)); err != nil {
		t.Fatal(err)
	}
	if hub.Endpoint(testKey(t, 3)).Addr() != "mem:2" {
		t.Fatal("next free address is not mem:2")
	}
}

// A peer that does not keep up is disconnected once SendQueueBytes wait,
// however few the frames.
func TestMemSendQueueBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := NewMemNetwork()
		a := start(t, func(t *testing.T, o Options) Transport {
			o.MaxFrame = 64 << 10
			o.SendQueueBytes = 64 << 10
			tr, _ := hub.EndpointWith(o)
			return tr
		}, testKey(t, 1), nil)
		bKey := testKey(t, 2)
		b := hub.Endpoint(bKey) // nobody reads its inputs
		a.tr.Dial(bKey.ID(), []string{locator(bKey, b)}, time.Second)
		a.rec.next(t, "Connected", isConnected(bKey.ID()))
		big := core.Fetch{}
		for i := range 1000 {
			big.Keys = append(big.Keys, records.Key{Service: "storage", ID: testKey(t, byte(i%4+3)).ID()})
		}
		sent := 0
		for a.rec.count(isDisconnected(bKey.ID())) == 0 && sent < 200 {
			a.tr.Send(bKey.ID(), big)
			sent++
			synctest.Wait()
		}
		d := a.rec.next(t, "Disconnected", isDisconnected(bKey.ID())).(core.Disconnected)
		if d.Err != ReasonQueueFull || sent >= 200 {
			t.Fatalf("Disconnected %q after %d frames of %d bytes, want %q well before 200", d.Err, sent, wire.Size(big), ReasonQueueFull)
		}
		b.Close()
		a.tr.Close()
	})
}
