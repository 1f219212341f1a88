package member_test

import (
	"bytes"
	"errors"
	"testing"

	"grapevine/announce"
	"grapevine/member"
)

// key returns the test key with seed n repeated.
func key(t testing.TB, n byte) announce.PrivateKey {
	t.Helper()
	k, err := announce.NewPrivateKey(bytes.Repeat([]byte{n}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// wantReason checks that err is an *member.Error with reason r at index i.
func wantReason(t *testing.T, err error, r member.Reason, i int) {
	t.Helper()
	var me *member.Error
	if !errors.As(err, &me) {
		t.Fatalf("error %v (%T), want *member.Error %s at %d", err, err, r, i)
	}
	if me.Reason != r || me.Index != i {
		t.Fatalf("error %v: reason %s at %d, want %s at %d", err, me.Reason, me.Index, r, i)
	}
	if !errors.Is(err, &member.Error{Reason: r}) {
		t.Fatalf("errors.Is(%v, %s) is false", err, r)
	}
}

// wantInviteReason checks that err is an *member.InviteError with reason r.
func wantInviteReason(t *testing.T, err error, r member.Reason) {
	t.Helper()
	var ie *member.InviteError
	if !errors.As(err, &ie) || ie.Reason != r {
		t.Fatalf("error %v (%T), want *member.InviteError %s", err, err, r)
	}
	if !errors.Is(err, &member.InviteError{Reason: r}) {
		t.Fatalf("errors.Is(%v, %s) is false", err, r)
	}
}

// flip returns s with the base32 character at i replaced by another that
// keeps the encoding canonical if i is not the last.
func flip(s string, i int) string {
	c := byte('a')
	if s[i] == 'a' {
		c = 'b'
	}
	return s[:i] + string(c) + s[i+1:]
}
