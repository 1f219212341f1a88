package member_test

import (
	"slices"
	"testing"

	"grapevine/announce"
	"grapevine/member"
)

// tree is a grid: founder F admits A and S (a sibling); A admits B, B
// admits C; S admits D.
type tree struct {
	f, a, b, c, s, d announce.PrivateKey
	grid             announce.NodeID
	chains           map[announce.NodeID]member.Chain
}

func newTree(t *testing.T) *tree {
	tr := &tree{f: key(t, 1), a: key(t, 2), b: key(t, 3), c: key(t, 4), s: key(t, 5), d: key(t, 6)}
	tr.grid = tr.f.ID()
	tr.chains = map[announce.NodeID]member.Chain{tr.grid: nil}
	admit := func(issuer, subject announce.PrivateKey, serial uint64) {
		ch := slices.Clone(tr.chains[issuer.ID()])
		tr.chains[subject.ID()] = append(ch, member.Issue(issuer, tr.grid, subject.ID(), serial))
	}
	admit(tr.f, tr.a, 1)
	admit(tr.f, tr.s, 2)
	admit(tr.a, tr.b, 1)
	admit(tr.b, tr.c, 1)
	admit(tr.s, tr.d, 1)
	return tr
}

func TestChainVerifies(t *testing.T) {
	tr := newTree(t)
	for id, ch := range tr.chains {
		if err := member.VerifyChain(tr.grid, id, ch, nil); err != nil {
			t.Errorf("%s: %v", id.Short(), err)
		}
		// Through the text form.
		parsed, err := member.ParseChain(ch.Strings())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(parsed, ch) {
			t.Fatalf("%s: ParseChain(Strings()) differs", id.Short())
		}
		if err := member.VerifyChain(tr.grid, id, parsed, member.NewRevocationSet(tr.grid, 10).Revoked); err != nil {
			t.Errorf("%s: %v", id.Short(), err)
		}
	}
	if n := len(tr.chains[tr.c.ID()]); n != 3 {
		t.Fatalf("C's chain has %d certificates", n)
	}
}

func TestRevocationCutsSubtree(t *testing.T) {
	tr := newTree(t)
	set := member.NewRevocationSet(tr.grid, 10)
	// F revokes A's certificate: A, B and C are out, S and D are not.
	r, err := member.Revoke(tr.f, tr.chains[tr.a.ID()][0])
	if err != nil {
		t.Fatal(err)
	}
	if added, err := set.Add(r); !added || err != nil {
		t.Fatalf("Add: %v %v", added, err)
	}
	for _, k := range []announce.PrivateKey{tr.a, tr.b, tr.c} {
		err := member.VerifyChain(tr.grid, k.ID(), tr.chains[k.ID()], set.Revoked)
		wantReason(t, err, member.ReasonRevoked, 0)
	}
	for _, k := range []announce.PrivateKey{tr.f, tr.s, tr.d} {
		if err := member.VerifyChain(tr.grid, k.ID(), tr.chains[k.ID()], set.Revoked); err != nil {
			t.Errorf("%s: %v", k.ID().Short(), err)
		}
	}

	// A revokes B's certificate: B and C are out at index 1, A stays.
	set = member.NewRevocationSet(tr.grid, 10)
	r, err = member.Revoke(tr.a, tr.chains[tr.b.ID()][1])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := set.Add(r); err != nil {
		t.Fatal(err)
	}
	wantReason(t, member.VerifyChain(tr.grid, tr.b.ID(), tr.chains[tr.b.ID()], set.Revoked), member.ReasonRevoked, 1)
	wantReason(t, member.VerifyChain(tr.grid, tr.c.ID(), tr.chains[tr.c.ID()], set.Revoked), member.ReasonRevoked, 1)
	if err := member.VerifyChain(tr.grid, tr.a.ID(), tr.chains[tr.a.ID()], set.Revoked); err != nil {
		t.Fatal(err)
	}
	// B, re-admitted by S with a new certificate, is back; C's old chain
	// still runs through the revoked certificate.
	bAgain := append(slices.Clone(tr.chains[tr.s.ID()]), member.Issue(tr.s, tr.grid, tr.b.ID(), 2))
	if err := member.VerifyChain(tr.grid, tr.b.ID(), bAgain, set.Revoked); err != nil {
		t.Fatal(err)
	}
	wantReason(t, member.VerifyChain(tr.grid, tr.c.ID(), tr.chains[tr.c.ID()], set.Revoked), member.ReasonRevoked, 1)
}

func TestVerifyChainErrors(t *testing.T) {
	tr := newTree(t)
	other := key(t, 9) // founder of another grid, where A is also a member
	otherA := member.Issue(other, other.ID(), tr.a.ID(), 1)
	chB, chC := tr.chains[tr.b.ID()], tr.chains[tr.c.ID()]
	with := func(ch member.Chain, i int, edit func(*member.Cert)) member.Chain {
		ch = slices.Clone(ch)
		edit(&ch[i])
		return ch
	}
	deep := func(n int) (member.Chain, announce.NodeID) {
		var ch member.Chain
		issuer := tr.f
		for i := range n {
			next := key(t, byte(100+i))
			ch = append(ch, member.Issue(issuer, tr.grid, next.ID(), uint64(i)))
			issuer = next
		}
		return ch, issuer.ID()
	}
	revokedAt := func(k announce.PrivateKey, serial uint64) func(announce.NodeID, uint64) bool {
		return func(id announce.NodeID, s uint64) bool { return id == k.ID() && s == serial }
	}
	deep17, end17 := deep(17)
	tests := []struct {
		name    string
		grid    announce.NodeID
		subject announce.NodeID
		ch      member.Chain
		revoked func(announce.NodeID, uint64) bool
		want    member.Reason
		index   int
	}{
		{"no chain", tr.grid, tr.a.ID(), nil, nil, member.ReasonNotMember, -1},
		{"empty chain", tr.grid, tr.a.ID(), member.Chain{}, nil, member.ReasonNotMember, -1},
		{"chain of another grid", tr.grid, tr.a.ID(), member.Chain{otherA}, nil, member.ReasonWrongGrid, 0},
		{"chain checked against another grid", other.ID(), tr.b.ID(), chB, nil, member.ReasonWrongGrid, 0},
		{"other grid in the middle", tr.grid, tr.c.ID(),
			with(chC, 1, func(c *member.Cert) { *c = member.Issue(tr.a, other.ID(), tr.b.ID(), 1) }), nil, member.ReasonWrongGrid, 1},
		{"not from the founder", tr.grid, tr.c.ID(), chC[1:], nil, member.ReasonBrokenChain, 0},
		{"gap", tr.grid, tr.c.ID(), member.Chain{chC[0], chC[2]}, nil, member.ReasonBrokenChain, 1},
		{"spliced", tr.grid, tr.d.ID(), member.Chain{chB[0], tr.chains[tr.d.ID()][1]}, nil, member.ReasonBrokenChain, 1},
		{"B's chain for C", tr.grid, tr.c.ID(), chB, nil, member.ReasonWrongSubject, 1},
		{"C's chain for B", tr.grid, tr.b.ID(), chC, nil, member.ReasonWrongSubject, 2},
		{"founder's certificate for someone else", tr.grid, tr.s.ID(), chB[:1], nil, member.ReasonWrongSubject, 0},
		{"too deep", tr.grid, end17, deep17, nil, member.ReasonTooDeep, member.MaxDepth},
		{"forged serial", tr.grid, tr.c.ID(), with(chC, 1, func(c *member.Cert) { c.Serial++ }), nil, member.ReasonBadSignature, 1},
		{"forged signature", tr.grid, tr.c.ID(), with(chC, 2, func(c *member.Cert) { c.Sig[0] ^= 1 }), nil, member.ReasonBadSignature, 2},
		{"no signature", tr.grid, tr.a.ID(), member.Chain{{Grid: tr.grid, Issuer: tr.grid, Subject: tr.a.ID()}}, nil, member.ReasonBadSignature, 0},
		{"subject not a node ID", tr.grid, "v0-junk", member.Chain{{Grid: tr.grid, Issuer: tr.grid, Subject: "v0-junk"}}, nil, member.ReasonMalformed, 0},
		{"issuer not a node ID", tr.grid, tr.b.ID(),
			member.Chain{{Grid: tr.grid, Issuer: tr.grid, Subject: "x"}, {Grid: tr.grid, Issuer: "x", Subject: tr.b.ID()}}, nil, member.ReasonMalformed, 0},
		{"grid not a node ID", "g", tr.a.ID(), member.Chain{{Grid: "g", Issuer: "g", Subject: tr.a.ID()}}, nil, member.ReasonMalformed, 0},
		{"revoked leaf", tr.grid, tr.c.ID(), chC, revokedAt(tr.b, 1), member.ReasonRevoked, 2},
		{"revoked root", tr.grid, tr.c.ID(), chC, revokedAt(tr.f, 1), member.ReasonRevoked, 0},
		{"founder's chain through a revoked certificate", tr.grid, tr.grid,
			member.Chain{chB[0], member.Issue(tr.a, tr.grid, tr.grid, 9)}, revokedAt(tr.f, 1), member.ReasonRevoked, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := member.VerifyChain(tt.grid, tt.subject, tt.ch, tt.revoked)
			wantReason(t, err, tt.want, tt.index)
		})
	}

	// Exactly MaxDepth is fine.
	ch, end := deep(member.MaxDepth)
	if err := member.VerifyChain(tr.grid, end, ch, nil); err != nil {
		t.Fatal(err)
	}
	// A revocation of an unrelated certificate changes nothing.
	if err := member.VerifyChain(tr.grid, tr.c.ID(), chC, revokedAt(tr.s, 1)); err != nil {
		t.Fatal(err)
	}
}

func TestParseChainErrors(t *testing.T) {
	tr := newTree(t)
	ss := tr.chains[tr.c.ID()].Strings()
	ss[2] = flip(ss[2], 50)
	_, err := member.ParseChain(ss)
	wantReason(t, err, member.ReasonBadSignature, 2)
	ss[2] = "gvc1-"
	_, err = member.ParseChain(ss)
	wantReason(t, err, member.ReasonMalformed, 2)
	_, err = member.ParseChain(make([]string, member.MaxDepth+1))
	wantReason(t, err, member.ReasonTooDeep, member.MaxDepth)
	ch, err := member.ParseChain(nil)
	if err != nil || len(ch) != 0 {
		t.Fatalf("ParseChain(nil): %v %v", ch, err)
	}
}
