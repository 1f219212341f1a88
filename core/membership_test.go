package core_test

import (
	"errors"
	"testing"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/sim"
)

// fakeMembers admits the IDs in members unless revoked; a revocations
// record lists revoked IDs.
type fakeMembers struct {
	members, revoked map[announce.NodeID]bool
}

func (f *fakeMembers) Check(a *announce.Announcement) (string, error) {
	switch {
	case f.revoked[a.ID]:
		return "revoked", errors.New("revoked")
	case !f.members[a.ID]:
		return "not-member", errors.New("no chain")
	}
	return "", nil
}

func (f *fakeMembers) Learn(a *announce.Announcement) bool {
	v, _ := a.Body.Get(core.FieldRevocations)
	changed := false
	for _, it := range v.Items {
		if id := announce.NodeID(it.Str); !f.revoked[id] {
			f.revoked[id], changed = true, true
		}
	}
	return changed
}

func TestMembership(t *testing.T) {
	cfg := core.TestConfig()
	alice, mallory, issuer := sim.KeyFor("alice", 7), sim.KeyFor("mallory", 7), sim.KeyFor("issuer", 7)
	fm := &fakeMembers{members: map[announce.NodeID]bool{alice.ID(): true, issuer.ID(): true}, revoked: map[announce.NodeID]bool{}}
	cfg.Membership = fm
	n := newNode(t, "member", cfg)
	rec := func(k announce.PrivateKey, svc string, seq int64, fields ...announce.Member) announce.Signed {
		return announce.Sign(k, announce.Build(k, announce.Template{Service: announce.Service{Name: svc, Fields: fields}}, seq))
	}
	n.Step(t0, core.Import{Recs: []announce.Signed{rec(alice, "storage", 1), rec(mallory, "storage", 1)}})
	r := n.Ready()
	if !n.Holds(alice.ID()) || n.Holds(mallory.ID()) || !hasEvent(r.Events, core.EvRejected, "not-member") {
		t.Fatalf("alice held %v, mallory held %v; events %v", n.Holds(alice.ID()), n.Holds(mallory.ID()), r.Events)
	}
	revs := announce.Member{Key: core.FieldRevocations, Value: announce.List(announce.Str(string(alice.ID())))}
	n.Step(t0, core.Import{Recs: []announce.Signed{rec(issuer, core.ServiceRevocations, 1, revs)}})
	r = n.Ready()
	if n.Holds(alice.ID()) || !hasEvent(r.Events, core.EvForgot, "revoked") {
		t.Fatalf("revoked alice still held %v; events %v", n.Holds(alice.ID()), r.Events)
	}
	if ts, ok := n.Tombstoned(alice.ID()); !ok || ts.Reason != "revoked" {
		t.Fatalf("tombstone %+v %v", ts, ok)
	}
	n.Step(t0, core.Import{Recs: []announce.Signed{rec(alice, "storage", 2)}})
	if n.Holds(alice.ID()) || !hasEvent(n.Ready().Events, core.EvRejected, "revoked") {
		t.Fatal("a revoked member's newer record was admitted")
	}
}
