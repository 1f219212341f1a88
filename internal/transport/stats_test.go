package transport

import (
	"testing"
	"time"

	"grapevine/core"
	"grapevine/wire"
)

// Stats counts the bytes under TLS: what one side writes the other reads,
// and a frame costs its length plus one TLS 1.3 record's overhead.
func TestStats(t *testing.T) {
	quiet := func(o *Options) { o.HeartbeatInterval = time.Hour } // only the first ping
	a := startTCP(t, testKey(t, 1), quiet)
	b := startTCP(t, testKey(t, 2), quiet)
	ta, tb := a.tr.(*TCP), b.tr.(*TCP)
	if s := ta.Stats(); s != (Stats{}) {
		t.Fatalf("before any connection: %+v", s)
	}
	connect(t, a, b)
	a.rec.next(t, "the first pong at a", isRTT(b.id))
	b.rec.next(t, "the first pong at b", isRTT(a.id))
	settled := func() bool {
		sa, sb := ta.Stats(), tb.Stats()
		return sa.BytesOut == sb.BytesIn && sb.BytesOut == sa.BytesIn
	}
	eventually(t, "both sides' counts agree", settled)
	before := ta.Stats()
	// A TLS 1.3 handshake with certificates both ways, then a ping and a
	// pong each way.
	if before.BytesOut < 500 || before.BytesIn < 500 || before.Writes < 3 {
		t.Fatalf("after the handshake and heartbeats: %+v", before)
	}

	m := core.SyncReq{Epoch: 1, Cursor: 2}
	f, err := wire.EncodeFrame(m)
	if err != nil {
		t.Fatal(err)
	}
	a.tr.Send(b.id, m)
	b.rec.next(t, "the message", isReceived(a.id, m))
	eventually(t, "both sides' counts agree after the message", settled)
	after := ta.Stats()
	// One record: 5-byte header, the frame, 1 content-type byte, 16-byte tag.
	if got, want := after.BytesOut-before.BytesOut, uint64(len(f)+22); got != want {
		t.Errorf("the message cost %d bytes on the wire, want %d (frame %d + TLS record 22)", got, want, len(f))
	}
	if got := after.Writes - before.Writes; got != 1 {
		t.Errorf("the message took %d writes, want 1", got)
	}
	if after.BytesIn != before.BytesIn {
		t.Errorf("a read %d bytes while only sending", after.BytesIn-before.BytesIn)
	}

	a.tr.Close()
	if s := ta.Stats(); s.BytesOut < after.BytesOut {
		t.Errorf("Stats after Close went back: %+v < %+v", s, after)
	}
}
