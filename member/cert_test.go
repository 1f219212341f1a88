package member_test

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"grapevine/announce"
	"grapevine/member"
)

func TestCertRoundTrip(t *testing.T) {
	founder, alice := key(t, 1), key(t, 2)
	for _, serial := range []uint64{0, 1, 1 << 40, ^uint64(0)} {
		c := member.Issue(founder, founder.ID(), alice.ID(), serial)
		if c.Grid != founder.ID() || c.Issuer != founder.ID() || c.Subject != alice.ID() || c.Serial != serial {
			t.Fatalf("Issue: %+v", c)
		}
		s := c.String()
		if len(s) != member.CertTextLen || !strings.HasPrefix(s, member.CertPrefix) {
			t.Fatalf("String: %d characters %q", len(s), s[:10])
		}
		got, err := member.ParseCert(s)
		if err != nil {
			t.Fatal(err)
		}
		if got != c {
			t.Fatalf("round trip: %+v, want %+v", got, c)
		}
		if err := c.Verify(); err != nil {
			t.Fatal(err)
		}
	}
	// Signing is deterministic: the same certificate twice is the same text.
	if a, b := member.Issue(founder, founder.ID(), alice.ID(), 7), member.Issue(founder, founder.ID(), alice.ID(), 7); a != b {
		t.Fatal("Issue is not deterministic")
	}
}

// rawCert returns the binary form of a certificate's text form.
func rawCert(t *testing.T, s string) []byte {
	t.Helper()
	b, err := announce.DecodeBase32(strings.TrimPrefix(s, member.CertPrefix))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseCertErrors(t *testing.T) {
	founder, alice := key(t, 1), key(t, 2)
	good := member.Issue(founder, founder.ID(), alice.ID(), 5).String()
	body := strings.TrimPrefix(good, member.CertPrefix)
	reencode := func(edit func(b []byte)) string {
		b := rawCert(t, good)
		edit(b)
		return member.CertPrefix + announce.EncodeBase32(b)
	}
	tests := []struct {
		name string
		in   string
		want member.Reason
	}{
		{"empty", "", member.ReasonMalformed},
		{"no prefix", body, member.ReasonMalformed},
		{"revocation prefix", member.RevocationPrefix + body, member.ReasonMalformed},
		{"upper case", strings.ToUpper(good), member.ReasonMalformed},
		{"upper case body", member.CertPrefix + strings.ToUpper(body), member.ReasonMalformed},
		{"truncated", good[:len(good)-1], member.ReasonMalformed},
		{"extra character", good + "a", member.ReasonMalformed},
		{"padding", good[:len(good)-1] + "=", member.ReasonMalformed},
		{"non-canonical last character", good[:len(good)-1] + "7", member.ReasonMalformed},
		{"line break", good[:100] + "\n" + good[101:], member.ReasonMalformed},
		{"line break inserted", good[:100] + "\n" + good[100:len(good)-1], member.ReasonMalformed},
		{"space", good[:100] + " " + good[101:], member.ReasonMalformed},
		{"version 0", reencode(func(b []byte) { b[0] = 0 }), member.ReasonMalformed},
		{"version 2", reencode(func(b []byte) { b[0] = 2 }), member.ReasonMalformed},
		{"other subject", reencode(func(b []byte) { b[70] ^= 1 }), member.ReasonBadSignature},
		{"other serial", reencode(func(b []byte) { binary.BigEndian.PutUint64(b[97:], 6) }), member.ReasonBadSignature},
		{"other grid", reencode(func(b []byte) { b[1] ^= 0x80 }), member.ReasonBadSignature},
		{"bad signature", reencode(func(b []byte) { b[120] ^= 1 }), member.ReasonBadSignature},
		{"changed character", flip(good, 60), member.ReasonBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := member.ParseCert(tt.in)
			wantReason(t, err, tt.want, -1)
			if c != (member.Cert{}) {
				t.Fatalf("returned %+v with the error", c)
			}
		})
	}
}

func TestCertInvalidFields(t *testing.T) {
	founder, alice := key(t, 1), key(t, 2)
	c := member.Issue(founder, founder.ID(), alice.ID(), 5)
	for _, bad := range []func(*member.Cert){
		func(c *member.Cert) { c.Grid = "v0-nope" },
		func(c *member.Cert) { c.Issuer = "" },
		func(c *member.Cert) { c.Subject = announce.NodeID(alice.PublicKeyFile()) },
	} {
		d := c
		bad(&d)
		wantReason(t, d.Verify(), member.ReasonMalformed, -1)
		if s := d.String(); s != member.CertPrefix+"?" {
			t.Fatalf("String of an invalid cert: %q", s)
		}
		_, err := member.ParseCert(d.String())
		wantReason(t, err, member.ReasonMalformed, -1)
	}
	for _, f := range []func(){
		func() { member.Issue(founder, "v0-nope", alice.ID(), 1) },
		func() { member.Issue(founder, founder.ID(), "", 1) },
		func() { member.Issue(announce.PrivateKey{}, founder.ID(), alice.ID(), 1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("Issue with invalid arguments did not panic")
				}
			}()
			f()
		}()
	}
}

func TestErrorStrings(t *testing.T) {
	founder, alice := key(t, 1), key(t, 2)
	err := member.VerifyChain(founder.ID(), alice.ID(), nil, nil)
	if got := err.Error(); !strings.HasPrefix(got, "member: not-member: ") {
		t.Fatalf("not-member: %q", got)
	}
	c := member.Issue(alice, founder.ID(), alice.ID(), 1)
	err = member.VerifyChain(founder.ID(), alice.ID(), member.Chain{c}, nil)
	if got := err.Error(); !strings.HasPrefix(got, "member: broken-chain at certificate 0: issued by ") {
		t.Fatalf("broken-chain: %q", got)
	}
	if !errors.Is(err, member.ErrBrokenChain) || errors.Is(err, member.ErrRevoked) {
		t.Fatal("errors.Is does not match on the reason")
	}
}
