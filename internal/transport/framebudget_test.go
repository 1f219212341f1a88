package transport

import (
	"crypto/tls"
	"encoding/binary"
	"runtime"
	"sync"
	"testing"
	"time"

	"grapevine/wire"
)

// Frame memory: 100 connections each send all but
// the last byte of a 2 MiB frame and stall. The frame bytes held stay
// within FrameBudget at every moment, the live heap with them, and an
// honest peer's messages still get through.
func TestFrameBudget(t *testing.T) {
	const conns = 100
	raiseFileLimit(t, 4*conns)
	b := startTCP(t, testKey(t, 2), nil) // defaults: MaxFrame 2 MiB, FrameBudget 32 MiB
	a := startTCP(t, testKey(t, 1), nil)
	tb := b.tr.(*TCP)
	connect(t, a, b)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	frame := make([]byte, wire.FrameHeader+wire.MaxFrame-1) // one byte short
	binary.BigEndian.PutUint32(frame, wire.MaxFrame)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var cs []*tls.Conn
	defer func() {
		mu.Lock()
		for _, c := range cs {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for i := range conns {
		key := testKey(t, byte(10+i))
		c, err := tls.Dial("tcp", b.tr.Addr(), &tls.Config{NextProtos: []string{ALPN}, Certificates: []tls.Certificate{edCert(t, key)}, InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		cs = append(cs, c)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Write(frame) // blocks once the node stops reading it
		}()
	}
	// Sample what the node holds until it has settled.
	var peakSampled int64
	last, still := int64(-1), time.Now()
	for deadline := time.Now().Add(time.Minute); time.Since(still) < time.Second && time.Now().Before(deadline); {
		st := tb.FrameBuffers()
		peakSampled = max(peakSampled, st.Held)
		if st.Held != last {
			last, still = st.Held, time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}

	// An honest neighbour's messages still arrive.
	for _, m := range messages(t) {
		a.tr.Send(b.id, m)
	}
	b.rec.next(t, "an honest message", isReceived(a.id, messages(t)[3]))

	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	st := tb.FrameBuffers()
	t.Logf("%d connections × an unfinished %d MiB frame: held %d MiB now, peak %.1f MiB (sampled %.1f), budget %d MiB, %d connections evicted; live heap grew %.1f MiB",
		conns, wire.MaxFrame>>20, st.Held>>20, float64(st.Peak)/(1<<20), float64(peakSampled)/(1<<20), st.Limit>>20, st.Evicted, float64(grew)/(1<<20))
	if st.Peak > st.Limit || peakSampled > st.Limit {
		t.Errorf("held up to %d (sampled %d) bytes, over the budget %d", st.Peak, peakSampled, st.Limit)
	}
	// Per connection the node also keeps its TLS and bufio buffers, some
	// 100 KiB; without the budget the frames alone would be 200 MiB.
	if slack := int64(conns * 200 << 10); grew > st.Limit+slack {
		t.Errorf("live heap grew %d MiB, over the budget %d MiB + %d MiB", grew>>20, st.Limit>>20, slack>>20)
	}
}
