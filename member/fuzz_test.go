package member_test

import (
	"errors"
	"strings"
	"testing"

	"grapevine/member"
)

// FuzzParseCert: ParseCert never panics, refuses only with an *Error, and
// what it accepts is exactly its own String.
func FuzzParseCert(f *testing.F) {
	founder, alice := key(f, 1), key(f, 2)
	good := member.Issue(founder, founder.ID(), alice.ID(), 3).String()
	for _, s := range []string{
		good,
		member.Issue(alice, founder.ID(), founder.ID(), ^uint64(0)).String(),
		"", member.CertPrefix, member.CertPrefix + "?",
		good[:len(good)-1], good + "a", strings.ToUpper(good), good[:len(good)-1] + "7",
		good[:40] + "\n" + good[41:],
		member.RevocationPrefix + strings.TrimPrefix(good, member.CertPrefix),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := member.ParseCert(s)
		if err != nil {
			var me *member.Error
			if !errors.As(err, &me) || me.Reason == "" || me.Index != -1 || c != (member.Cert{}) {
				t.Fatalf("ParseCert returned %+v, %v (%T)", c, err, err)
			}
			return
		}
		if c.String() != s {
			t.Fatalf("accepted %q, which String spells %q", s, c.String())
		}
		again, err := member.ParseCert(c.String())
		if err != nil || again != c {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
		if err := c.Verify(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseRevocation: as FuzzParseCert, for revocations.
func FuzzParseRevocation(f *testing.F) {
	founder, alice := key(f, 1), key(f, 2)
	r, err := member.Revoke(founder, member.Issue(founder, founder.ID(), alice.ID(), 3))
	if err != nil {
		f.Fatal(err)
	}
	good := r.String()
	for _, s := range []string{
		good,
		"", member.RevocationPrefix, member.RevocationPrefix + "?",
		good[:len(good)-1], good + "a", strings.ToUpper(good), good[:len(good)-1] + "7",
		good[:40] + "\r\n" + good[42:],
		member.CertPrefix + strings.TrimPrefix(good, member.RevocationPrefix),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := member.ParseRevocation(s)
		if err != nil {
			var me *member.Error
			if !errors.As(err, &me) || me.Reason == "" || me.Index != -1 || r != (member.Revocation{}) {
				t.Fatalf("ParseRevocation returned %+v, %v (%T)", r, err, err)
			}
			return
		}
		if r.String() != s {
			t.Fatalf("accepted %q, which String spells %q", s, r.String())
		}
		again, err := member.ParseRevocation(r.String())
		if err != nil || again != r {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}

// FuzzParseInvite: ParseInvite never panics, refuses only with an
// *InviteError of a known reason, and what it accepts has a code that
// parses back to the same invite.
func FuzzParseInvite(f *testing.F) {
	founder, alice := key(f, 1), key(f, 2)
	for i, addr := range []string{"203.0.113.7:7370", "a:1", "[::1]:7370"} {
		code := newInvite(f, founder.ID(), alice.ID(), addr, uint64(i)).Code()
		body := strings.TrimPrefix(code, member.InvitePrefix)
		f.Add(code)
		f.Add(strings.ToUpper(code))
		f.Add("gv1" + strings.ReplaceAll(body, "-", ""))
		f.Add(member.InvitePrefix + strings.ReplaceAll(body, "-", " "))
		f.Add(code[:len(code)-1])
		f.Add(code[:20] + "9" + code[21:])
	}
	for _, s := range []string{"", "gv1-", "gv1-aaaaaaa", "gv2-abcde", "gvc1-", "gv1-?", " gv1 - a "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := member.ParseInvite(s)
		if err != nil {
			var ie *member.InviteError
			if !errors.As(err, &ie) || inv != (member.Invite{}) {
				t.Fatalf("ParseInvite returned %+v, %v (%T)", inv, err, err)
			}
			switch ie.Reason {
			case member.ReasonNotAnInvite, member.ReasonMistyped, member.ReasonMalformed:
			default:
				t.Fatalf("reason %q", ie.Reason)
			}
			return
		}
		code := inv.Code()
		again, err := member.ParseInvite(code)
		if err != nil || again != inv {
			t.Fatalf("round trip of %q: %+v, %v", code, again, err)
		}
		if again.Code() != code {
			t.Fatal("Code is not stable")
		}
	})
}
