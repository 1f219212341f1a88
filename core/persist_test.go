package core_test

import (
	"testing"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/sim"
	"grapevine/records"
)

// ownItems returns the seqnums of the node's own records in msgs to peer:
// digest items and fetched records.
func ownItems(t *testing.T, n *core.Node, msgs []core.Envelope) (digests []core.Digest, seqs []int64) {
	t.Helper()
	for _, m := range msgs {
		switch m := m.Msg.(type) {
		case core.Digest:
			digests = append(digests, m)
			for _, it := range m.Items {
				if it.ID == n.ID() {
					seqs = append(seqs, it.Seqnum)
				}
			}
		case core.Records:
			seqs = append(seqs, ownSeqs(n, m.Recs)...)
		case core.Own: // a push of own records: a digest, for the cursor
			digests = append(digests, core.Digest{Epoch: m.Epoch, From: m.From, To: m.To})
			seqs = append(seqs, ownSeqs(n, m.Recs)...)
		}
	}
	return digests, seqs
}

func ownSeqs(n *core.Node, recs []announce.Signed) (seqs []int64) {
	for _, s := range recs {
		if a, err := announce.ParseUnverified(s); err == nil && a.ID == n.ID() {
			seqs = append(seqs, a.Seqnum)
		}
	}
	return seqs
}

// Until the driver acknowledges the counter (Persisted), the core sends
// no own record above it: not in pushes, digests or fetch answers, and no
// digest moves a neighbour's cursor past it. The acknowledgement pushes
// it to the neighbour, after the cursor it was given.
func TestPersistBeforeSend(t *testing.T) {
	n := newNode(t, "srv", core.TestConfig(), "storage")
	nb := sim.KeyFor("neighbour", 7).ID()
	key := records.Key{Service: "storage", ID: n.ID()}
	n.Step(t0, core.Connected{Peer: nb, Inbound: true})
	if r := n.Ready(); r.Counter != 1 {
		t.Fatalf("start: counter %d to persist, want 1", r.Counter)
	}
	n.Step(t0, core.Persisted{Counter: 1})
	n.Ready()
	n.Step(t0, core.Received{From: nb, Msg: core.SyncReq{}})
	ds, seqs := ownItems(t, n, n.Ready().Messages)
	if len(ds) != 1 || len(seqs) != 1 || seqs[0] != 1 {
		t.Fatalf("digest after the counter was acknowledged: %+v, want own seqnum 1", ds)
	}
	epoch, cursor := ds[0].Epoch, ds[0].To

	// Re-signed at 2; the driver's write fails, so it never acknowledges.
	svc := announce.Template{Service: announce.Service{Name: "storage"}, Locators: []string{sim.Locator(n.ID())}}
	n.Step(t0, core.SetServices{Services: []announce.Template{svc}})
	r := n.Ready()
	if r.Counter != 2 || n.Durable() != 1 {
		t.Fatalf("re-sign: counter %d to persist, durable %d; want 2 and 1", r.Counter, n.Durable())
	}
	if _, seqs := ownItems(t, n, r.Messages); len(seqs) > 0 {
		t.Fatalf("own seqnums %v pushed before the counter is on disk", seqs)
	}
	for i := range 3 {
		n.Step(t0, core.Received{From: nb, Msg: core.SyncReq{Epoch: epoch, Cursor: cursor}})
		n.Step(t0, core.Received{From: nb, Msg: core.Fetch{Keys: []records.Key{key}}})
		ds, seqs := ownItems(t, n, n.Ready().Messages)
		if len(seqs) > 0 {
			t.Fatalf("round %d: own records sent above the counter on disk: %v", i, seqs)
		}
		for _, d := range ds {
			if d.To > cursor {
				t.Fatalf("round %d: a digest moved the cursor from %d to %d past a held-back record", i, cursor, d.To)
			}
		}
	}
	if got := n.LiveRecords("storage"); len(got) != 0 || len(n.PassedOn(10)) != 0 {
		t.Fatalf("LiveRecords or PassedOn give the own record above the counter on disk: %d", len(got))
	}

	// Acknowledged: pushed at once, after the cursor.
	n.Step(t0, core.Persisted{Counter: 2})
	r = n.Ready()
	ds, seqs = ownItems(t, n, r.Messages)
	if len(seqs) != 1 || seqs[0] != 2 || ds[0].From != cursor || ds[0].To <= cursor {
		t.Fatalf("after the acknowledgement: %+v, want a push of own seqnum 2 after cursor %d", ds, cursor)
	}
	if r.StateChanged || r.Counter != 0 {
		t.Fatalf("Persisted changed the state (%v) or signed (%d)", r.StateChanged, r.Counter)
	}
	if len(n.LiveRecords("storage")) != 1 || len(n.PassedOn(10)) != 1 {
		t.Fatal("the acknowledged own record is not passed on")
	}
}
