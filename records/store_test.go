package records_test

import (
	"crypto/ed25519"
	"errors"
	"testing"

	"grapevine/announce"
	"grapevine/internal/testkit"
	"grapevine/records"
)

func keyN(t testing.TB, n byte) announce.PrivateKey {
	t.Helper()
	seed := make([]byte, 32)
	seed[0] = n
	k, err := announce.NewPrivateKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rec(key announce.PrivateKey, seq int64, nick string) announce.Signed {
	return announce.Sign(key, announce.Build(key, announce.Template{
		Nickname: nick,
		Service:  announce.Service{Name: "storage"},
		Locators: []string{"gv://" + string(key.ID()) + "@127.0.0.1:7370"},
	}, seq))
}

func withdrawal(key announce.PrivateKey, seq int64) announce.Signed {
	return announce.Sign(key, announce.Build(key, announce.Template{
		Service: announce.Service{Name: "storage"}, Withdrawn: true,
	}, seq))
}

func mustAdmit(t *testing.T, s *records.Store, r announce.Signed, want records.Outcome) {
	t.Helper()
	res, err := s.Admit(r)
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	if res.Outcome != want {
		t.Fatalf("outcome %v, want %v", res.Outcome, want)
	}
}

func mustReject(t *testing.T, s *records.Store, r announce.Signed, want error) {
	t.Helper()
	_, err := s.Admit(r)
	if !errors.Is(err, want) {
		t.Fatalf("Admit: %v, want %v", err, want)
	}
}

func TestReplacementRules(t *testing.T) {
	k := keyN(t, 1)
	s := records.New()
	mustAdmit(t, s, rec(k, 5, "a"), records.Added)
	mustAdmit(t, s, rec(k, 5, "a"), records.Duplicate)
	mustReject(t, s, rec(k, 5, "b"), records.ErrConflict)
	mustReject(t, s, rec(k, 4, "a"), records.ErrStale)
	mustAdmit(t, s, rec(k, 6, "b"), records.Replaced)
	if a, _ := s.Get(records.Key{"storage", k.ID()}); a.Seqnum != 6 || a.Nickname() != "b" {
		t.Fatalf("held %d %q", a.Seqnum, a.Nickname())
	}
	if s.Len() != 1 {
		t.Fatalf("len %d", s.Len())
	}
}

// signRaw signs msg as it is, so the seqnum's spelling is exactly the test's.
func signRaw(key announce.PrivateKey, msg string) announce.Signed {
	sig := ed25519.Sign(ed25519.NewKeyFromSeed(key.Seed()), []byte(msg))
	return announce.Signed{Msg: msg, Sig: announce.V0Prefix + announce.EncodeBase32(sig), Key: string(key.ID())}
}

// A record without a valid seqnum (an integer in int64) is refused whether
// or not anything is held, so no tombstone is ever made that blocks nothing.
func TestSeqnumMissingOrInvalid(t *testing.T) {
	k := keyN(t, 2)
	body := func(seq string) string {
		if seq == "" {
			return `{"service-name": "storage"}`
		}
		return `{"service-name": "storage", "seqnum": ` + seq + `}`
	}
	for _, seq := range []string{"", "1.0", "1e2", "7.5", "9223372036854775808", "-9223372036854775809", "true", `"3"`, "null"} {
		s := records.New()
		_, err := s.Admit(signRaw(k, body(seq)))
		var re *records.RejectError
		if !errors.As(err, &re) || re.Reason != records.ReasonBadSeqnum || re.Detail == "" || s.Len() != 0 {
			t.Fatalf("seqnum %q, nothing held: %v", seq, err)
		}
		mustAdmit(t, s, rec(k, 1, "x"), records.Added)
		mustReject(t, s, signRaw(k, body(seq)), records.ErrBadSeqnum)
	}
	// Valid: any integer literal in int64, negative ones too (Tahoe's int).
	for _, seq := range []string{"0", "-1", "-0", "9223372036854775807"} {
		mustAdmit(t, records.New(), signRaw(k, body(seq)), records.Added)
	}
}

func TestTombstone(t *testing.T) {
	k := keyN(t, 3)
	key := records.Key{"storage", k.ID()}
	s := records.New()
	mustAdmit(t, s, rec(k, 10, "a"), records.Added)
	ts, ok := s.Forget(key, "gone 30 days")
	if !ok || ts.Seqnum != 10 || ts.Last.Msg == "" {
		t.Fatalf("Forget: %+v %v", ts, ok)
	}
	if _, ok := s.Forget(key, "again"); ok {
		t.Fatal("forgot twice")
	}
	mustReject(t, s, rec(k, 10, "a"), records.ErrTombstoned) // replay of the last record
	mustReject(t, s, rec(k, 3, "a"), records.ErrTombstoned)
	mustAdmit(t, s, rec(k, 11, "a"), records.Revived)
	if _, ok := s.Tombstone(key); ok {
		t.Fatal("tombstone survived revival")
	}
}

func TestWithdrawal(t *testing.T) {
	k := keyN(t, 4)
	key := records.Key{"storage", k.ID()}
	s := records.New()
	mustAdmit(t, s, rec(k, 1, "a"), records.Added)
	mustReject(t, s, withdrawal(k, 1), records.ErrConflict)
	mustAdmit(t, s, withdrawal(k, 2), records.Withdrawn)
	if _, ok := s.Get(key); ok {
		t.Fatal("withdrawn record still held")
	}
	ts, ok := s.Tombstone(key)
	if !ok || ts.Reason != "withdrawn" || ts.Seqnum != 2 {
		t.Fatalf("tombstone %+v", ts)
	}
	mustAdmit(t, s, withdrawal(k, 2), records.Duplicate)
	mustReject(t, s, rec(k, 1, "a"), records.ErrTombstoned)
	mustAdmit(t, s, rec(k, 3, "back"), records.Revived)

	// A withdrawal of a key never held still tombstones it, as unheld
	// (not passed on, evicted first), and stays so when withdrawn again.
	k2 := keyN(t, 5)
	key2 := records.Key{"storage", k2.ID()}
	mustAdmit(t, s, withdrawal(k2, 9), records.Withdrawn)
	mustReject(t, s, rec(k2, 8, "late"), records.ErrTombstoned)
	mustAdmit(t, s, withdrawal(k2, 10), records.Withdrawn)
	if ts, _ := s.Tombstone(key2); ts.Reason != records.TombWithdrawnUnheld || ts.Seqnum != 10 {
		t.Fatalf("unheld withdrawal: tombstone %+v", ts)
	}
	// A key held once (forgotten since) is withdrawn as held.
	mustAdmit(t, s, rec(k2, 11, "back"), records.Revived)
	s.Forget(key2, "operator")
	mustAdmit(t, s, withdrawal(k2, 12), records.Withdrawn)
	if ts, _ := s.Tombstone(key2); ts.Reason != records.TombWithdrawn {
		t.Fatalf("withdrawal after a forget: tombstone %+v", ts)
	}
}

func TestDuplicateNeedsNoSignatureCheck(t *testing.T) {
	k := keyN(t, 6)
	s := records.New()
	r := rec(k, 1, "a")
	mustAdmit(t, s, r, records.Added)
	if _, ok := s.Lookup(r); !ok {
		t.Fatal("exact copy not found by Lookup")
	}
	forged := r
	forged.Sig = rec(k, 2, "a").Sig // same msg, wrong signature
	if _, ok := s.Lookup(forged); ok {
		t.Fatal("Lookup matched a record with another signature")
	}
	mustReject(t, s, forged, announce.ErrBadSignature)
}

func TestInvalidRecordsLeaveStoreUnchanged(t *testing.T) {
	k := keyN(t, 7)
	s := records.New()
	good := rec(k, 1, "a")
	mustAdmit(t, s, good, records.Added)
	bad := rec(k, 2, "b")
	bad.Msg = bad.Msg[:len(bad.Msg)-1] + " }"
	mustReject(t, s, bad, announce.ErrBadSignature)
	if a, _ := s.Get(records.Key{"storage", k.ID()}); a.Signed != good {
		t.Fatal("held record changed")
	}
}

// The same rules on the records Tahoe's own code signed.
func TestTahoeVectorsInStore(t *testing.T) {
	byName := map[string]announce.Signed{}
	for _, v := range testkit.TahoeVectors(t) {
		byName[v.Name] = announce.Signed{Msg: v.Msg, Sig: v.Sig, Key: v.Key}
	}
	need := func(n string) announce.Signed {
		r, ok := byName[n]
		if !ok {
			t.Fatalf("vector %s missing", n)
		}
		return r
	}
	s := records.New()
	mustAdmit(t, s, need("alpha-seq1"), records.Added)
	mustAdmit(t, s, need("alpha-seq2"), records.Replaced)
	mustReject(t, s, need("alpha-seq2-equal"), records.ErrConflict)
	mustReject(t, s, need("alpha-seq1"), records.ErrStale)
	mustAdmit(t, s, need("beta-nurls-unicode"), records.Added)
	mustReject(t, s, need("alpha-seq1-tampered"), announce.ErrBadSignature)
	mustReject(t, s, need("alpha-seq1-v1-sig-prefix"), announce.ErrUnknownFormat)
	if s.Len() != 2 {
		t.Fatalf("len %d, want 2", s.Len())
	}
}
