package member_test

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"grapevine/announce"
	"grapevine/member"
)

func TestRevocationRoundTrip(t *testing.T) {
	tr := newTree(t)
	c := tr.chains[tr.b.ID()][1]
	r, err := member.Revoke(tr.a, c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Grid != tr.grid || r.Issuer != tr.a.ID() || r.Serial != c.Serial || r.Subject != tr.b.ID() {
		t.Fatalf("Revoke: %+v", r)
	}
	s := r.String()
	if len(s) != member.RevocationTextLen || !strings.HasPrefix(s, member.RevocationPrefix) {
		t.Fatalf("String: %d characters", len(s))
	}
	got, err := member.ParseRevocation(s)
	if err != nil {
		t.Fatal(err)
	}
	if got != r {
		t.Fatalf("round trip: %+v, want %+v", got, r)
	}
}

func TestRevokeErrors(t *testing.T) {
	tr := newTree(t)
	c := tr.chains[tr.b.ID()][1] // issued by A
	_, err := member.Revoke(tr.f, c)
	wantReason(t, err, member.ReasonNotIssuer, -1)
	_, err = member.Revoke(tr.b, c)
	wantReason(t, err, member.ReasonNotIssuer, -1)
	_, err = member.Revoke(announce.PrivateKey{}, c)
	wantReason(t, err, member.ReasonMalformed, -1)
	bad := c
	bad.Subject = "v0-junk"
	_, err = member.Revoke(tr.a, bad)
	wantReason(t, err, member.ReasonMalformed, -1)
}

func TestParseRevocationErrors(t *testing.T) {
	tr := newTree(t)
	r, err := member.Revoke(tr.f, tr.chains[tr.a.ID()][0])
	if err != nil {
		t.Fatal(err)
	}
	good := r.String()
	body := strings.TrimPrefix(good, member.RevocationPrefix)
	reencode := func(edit func(b []byte)) string {
		b, err := announce.DecodeBase32(body)
		if err != nil {
			t.Fatal(err)
		}
		edit(b)
		return member.RevocationPrefix + announce.EncodeBase32(b)
	}
	// A certificate with the same fields in the same place is no revocation.
	cert := tr.chains[tr.a.ID()][0].String()
	tests := []struct {
		name string
		in   string
		want member.Reason
	}{
		{"empty", "", member.ReasonMalformed},
		{"certificate", cert, member.ReasonMalformed},
		{"certificate relabelled", member.RevocationPrefix + strings.TrimPrefix(cert, member.CertPrefix), member.ReasonBadSignature},
		{"upper case", strings.ToUpper(good), member.ReasonMalformed},
		{"truncated", good[:len(good)-1], member.ReasonMalformed},
		{"extra", good + "a", member.ReasonMalformed},
		{"non-canonical", good[:len(good)-1] + "7", member.ReasonMalformed},
		{"line break", good[:30] + "\r" + good[31:], member.ReasonMalformed},
		{"version 2", reencode(func(b []byte) { b[0] = 2 }), member.ReasonMalformed},
		{"other serial", reencode(func(b []byte) { binary.BigEndian.PutUint64(b[65:], 2) }), member.ReasonBadSignature},
		{"other subject", reencode(func(b []byte) { b[80] ^= 4 }), member.ReasonBadSignature},
		{"bad signature", reencode(func(b []byte) { b[168] ^= 1 }), member.ReasonBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := member.ParseRevocation(tt.in)
			wantReason(t, err, tt.want, -1)
			if got != (member.Revocation{}) {
				t.Fatal("returned a revocation with the error")
			}
		})
	}
	if s := (member.Revocation{Grid: "x"}).String(); s != member.RevocationPrefix+"?" {
		t.Fatalf("String of an invalid revocation: %q", s)
	}
}

func TestRevocationSet(t *testing.T) {
	tr := newTree(t)
	other := key(t, 9)
	set := member.NewRevocationSet(tr.grid, 3)
	if set.Len() != 0 || len(set.Strings()) != 0 || set.Revoked(tr.f.ID(), 1) {
		t.Fatal("new set not empty")
	}
	var nilSet *member.RevocationSet
	if nilSet.Revoked(tr.f.ID(), 1) {
		t.Fatal("nil set revokes")
	}
	revoke := func(k announce.PrivateKey, c member.Cert) member.Revocation {
		r, err := member.Revoke(k, c)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	rA := revoke(tr.f, tr.chains[tr.a.ID()][0])
	rS := revoke(tr.f, tr.chains[tr.s.ID()][0])
	rB := revoke(tr.a, tr.chains[tr.b.ID()][1])
	rC := revoke(tr.b, tr.chains[tr.c.ID()][2])
	for _, r := range []member.Revocation{rB, rA, rS} {
		if added, err := set.Add(r); !added || err != nil {
			t.Fatalf("Add: %v %v", added, err)
		}
	}
	if added, err := set.Add(rA); added || err != nil {
		t.Fatalf("Add again: %v %v", added, err)
	}
	if set.Len() != 3 || !set.Revoked(tr.f.ID(), 1) || !set.Revoked(tr.a.ID(), 1) || set.Revoked(tr.b.ID(), 1) || set.Revoked(tr.f.ID(), 3) {
		t.Fatal("Revoked disagrees with what was added")
	}
	_, err := set.Add(rC)
	wantReason(t, err, member.ReasonFull, -1)
	if set.Len() != 3 || set.Revoked(tr.b.ID(), 1) {
		t.Fatal("a full set took a revocation")
	}

	// Refusals.
	forged := rC
	forged.Serial = 77
	_, err = member.NewRevocationSet(tr.grid, 10).Add(forged)
	wantReason(t, err, member.ReasonBadSignature, -1)
	_, err = member.NewRevocationSet(tr.grid, 10).Add(member.Revocation{Grid: tr.grid, Issuer: "v0-x"})
	wantReason(t, err, member.ReasonMalformed, -1)
	otherR := revoke(other, member.Issue(other, other.ID(), tr.a.ID(), 1))
	_, err = member.NewRevocationSet(tr.grid, 10).Add(otherR)
	wantReason(t, err, member.ReasonWrongGrid, -1)
	_, err = member.NewRevocationSet(tr.grid, 0).Add(rA)
	wantReason(t, err, member.ReasonFull, -1)

	// Strings: sorted, parseable, and the same whatever the order of Add.
	ss := set.Strings()
	if !slices.IsSorted(ss) || len(ss) != 3 {
		t.Fatalf("Strings: %q", ss)
	}
	again := member.NewRevocationSet(tr.grid, 3)
	for _, s := range slices.Backward(ss) {
		r, err := member.ParseRevocation(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := again.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(again.Strings(), ss) {
		t.Fatal("Strings depends on the order of Add")
	}

	// Two different revocations of one certificate (another subject named):
	// both orders keep the same one.
	r1 := revoke(tr.f, tr.chains[tr.a.ID()][0])
	r2 := revoke(tr.f, member.Issue(tr.f, tr.grid, tr.d.ID(), 1)) // serial 1 reused
	if r1 == r2 {
		t.Fatal("revocations equal")
	}
	s1, s2 := member.NewRevocationSet(tr.grid, 5), member.NewRevocationSet(tr.grid, 5)
	a1, _ := s1.Add(r1)
	b1, _ := s1.Add(r2)
	a2, _ := s2.Add(r2)
	b2, _ := s2.Add(r1)
	if !slices.Equal(s1.Strings(), s2.Strings()) || s1.Len() != 1 || !a1 || !a2 || b1 == b2 {
		t.Fatalf("sets diverge: %v %v %v %v", a1, b1, a2, b2)
	}
}
