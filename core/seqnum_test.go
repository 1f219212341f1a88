package core_test

import (
	"crypto/ed25519"
	"math/rand/v2"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/sim"
	"grapevine/records"
)

// seqnumRecord is a storage record of name's key whose seqnum is written
// as lit ("" leaves it out), signed as it is.
func seqnumRecord(name, lit string) (announce.NodeID, announce.Signed) {
	k := sim.KeyFor(name, 7)
	msg := `{"version": 0, "nickname": "` + name + `", "service-name": "storage", "anonymous-storage-FURL": "pb://x@tcp:127.0.0.1:1/x"`
	if lit != "" {
		msg += `, "seqnum": ` + lit
	}
	msg += "}"
	sig := ed25519.Sign(ed25519.NewKeyFromSeed(k.Seed()), []byte(msg))
	return k.ID(), announce.Signed{Msg: msg, Sig: announce.V0Prefix + announce.EncodeBase32(sig), Key: string(k.ID())}
}

// Issue #15, item 3: a record without a valid seqnum (missing, a float, a
// bool, outside int64) is refused with reason bad-seqnum, from gossip and
// from an import, so no tombstone is ever made that refuses nothing.
// Negative integers are valid, as in Tahoe.
func TestBadSeqnumRefused(t *testing.T) {
	bad := map[string]string{
		"missing": "", "one-point-oh": "1.0", "exponent": "1e2", "two-to-63": "9223372036854775808",
		"below-int64": "-9223372036854775809", "bool": "true", "string": `"5"`, "null": "null",
	}
	refused := func(evs []core.Event, id announce.NodeID) bool {
		for _, e := range evs {
			if e.Kind == core.EvRejected && e.Reason == "bad-seqnum" && e.Peer == id {
				why, _ := e.Fact("why")
				return why != ""
			}
		}
		return false
	}
	for form, lit := range bad {
		// Gossip: advertised, fetched, refused.
		n := newNode(t, "gossip", core.TestConfig())
		nb := sim.KeyFor("neighbour", 7).ID()
		n.Step(t0, core.Connected{Peer: nb, Inbound: true})
		n.Ready()
		id, rec := seqnumRecord("g-"+form, lit)
		n.Step(t0, core.Received{From: nb, Msg: core.Digest{Epoch: 1, To: 1, Items: []core.Item{{Service: "storage", ID: id, Seqnum: 7, Hash: 1, Ver: 1}}}})
		n.Ready()
		n.Step(t0, core.Received{From: nb, Msg: core.Records{Recs: []announce.Signed{rec}}})
		if evs := n.Ready().Events; n.Holds(id) || !refused(evs, id) {
			t.Fatalf("gossip, seqnum %s (%q): held %v; events %v", form, lit, n.Holds(id), evs)
		}

		// Import: refused, nothing to forget, and refused again.
		id, rec = seqnumRecord("i-"+form, lit)
		n.Step(t0, core.Import{Recs: []announce.Signed{rec}})
		if evs := n.Ready().Events; n.Holds(id) || !refused(evs, id) {
			t.Fatalf("import, seqnum %s (%q): held %v; events %v", form, lit, n.Holds(id), evs)
		}
		n.Step(t0, core.Forget{ID: id})
		n.Step(t0, core.Import{Recs: []announce.Signed{rec}})
		if evs := n.Ready().Events; n.Holds(id) || !refused(evs, id) {
			t.Fatalf("re-import, seqnum %s: held %v; events %v", form, n.Holds(id), evs)
		}

		// Nor does it replace a held record.
		id, good := seqnumRecord("h-"+form, "3")
		_, rec = seqnumRecord("h-"+form, lit)
		n.Step(t0, core.Import{Recs: []announce.Signed{good, rec}})
		if a, ok := n.Record(records.Key{Service: "storage", ID: id}); !ok || a.Signed != good || !refused(n.Ready().Events, id) {
			t.Fatalf("seqnum %s replaced a held record", form)
		}
	}

	// A refused record evicts nothing to make room for itself.
	cfg := core.TestConfig()
	cfg.MaxRecords = 1
	n := newNode(t, "full", cfg)
	held, good := seqnumRecord("held", "1")
	n.Step(t0, core.Import{Recs: []announce.Signed{good}})
	later := t0.Add(cfg.FirstSightWindow + time.Second) // no longer live: evictable
	n.Step(later, core.Tick{})
	id, rec := seqnumRecord("no-seqnum", "")
	n.Step(later, core.Import{Recs: []announce.Signed{rec}})
	if evs := n.Ready().Events; !n.Holds(held) || n.Holds(id) || hasEvent(evs, core.EvEvicted, "total-cap") {
		t.Fatalf("a bad-seqnum record evicted a held one: %v", evs)
	}

	// Valid: any integer in int64, negative ones too.
	for _, lit := range []string{"0", "-1", "-0", "9223372036854775807"} {
		id, rec := seqnumRecord("ok"+lit, lit)
		n := newNode(t, "valid", core.TestConfig())
		n.Step(t0, core.Import{Recs: []announce.Signed{rec}})
		if !n.Holds(id) {
			t.Fatalf("seqnum %s refused: %v", lit, n.Ready().Events)
		}
	}

	// A record held before the rule (in a peer book) is refused on load.
	_, old := seqnumRecord("stored", "")
	st := core.State{Records: []core.StoredRecord{{Signed: old, Source: "v0-somebody"}}}
	r, err := newCore(core.TestConfig(), core.Identity{Key: sim.KeyFor("restored", 7)}, st, randSource())
	if err != nil {
		t.Fatal(err)
	}
	if r.RecordCount() != 0 || !hasEvent(r.Ready().Events, core.EvRejected, "bad-seqnum") {
		t.Fatal("a stored record without a seqnum was loaded")
	}
}

func randSource() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }
