package member

import "grapevine/announce"

// MaxDepth bounds the certificates in a chain, which bounds the work of
// verifying one.
const MaxDepth = 16

// Chain is a member's certificate chain: the founder's certificate first,
// the member's own last. ch[0].Issuer is the grid's founder and each
// certificate is issued by the previous one's subject.
type Chain []Cert

// ParseChain reads certificates' text forms (ParseCert). An error names
// the index of the first one refused.
func ParseChain(ss []string) (Chain, error) {
	if len(ss) > MaxDepth {
		return nil, errorf(ReasonTooDeep, MaxDepth, "%d certificates, at most %d", len(ss), MaxDepth)
	}
	ch := make(Chain, len(ss))
	for i, s := range ss {
		c, err := ParseCert(s)
		if err != nil {
			return nil, at(err, i)
		}
		ch[i] = c
	}
	return ch, nil
}

// certStrings returns the text forms of the certificates, in order.
func (ch Chain) certStrings() []string {
	out := make([]string, len(ch))
	for i, c := range ch {
		out[i] = c.String()
	}
	return out
}

// VerifyChain reports whether ch proves that subject belongs to grid. The
// founder (subject == grid) needs no chain. Otherwise the chain must start
// at the founder, link each certificate's subject to the next one's
// issuer, end at subject, stay within grid and MaxDepth, and carry valid
// signatures; and revoked (nil: nothing is revoked) must report none of
// its certificates. The checks run in that order, the cheap ones first;
// the error is an *Error naming the first certificate at fault.
//
// A chain is public: it proves membership of whoever holds subject's key,
// so the caller must also see subject prove that (the connection's
// handshake, a signed record).
func VerifyChain(grid, subject announce.NodeID, ch Chain, revoked func(issuer announce.NodeID, serial uint64) bool) error {
	if len(ch) == 0 {
		if subject == grid {
			return nil
		}
		return errorf(ReasonNotMember, -1, "%s has no certificate chain", subject.Short())
	}
	if len(ch) > MaxDepth {
		return errorf(ReasonTooDeep, MaxDepth, "%d certificates, at most %d", len(ch), MaxDepth)
	}
	for i, c := range ch {
		if c.Grid != grid {
			return errorf(ReasonWrongGrid, i, "certificate for grid %s, want %s", c.Grid.Short(), grid.Short())
		}
		want := grid
		if i > 0 {
			want = ch[i-1].Subject
		}
		if c.Issuer != want {
			return errorf(ReasonBrokenChain, i, "issued by %s, want %s", c.Issuer.Short(), want.Short())
		}
	}
	if last := ch[len(ch)-1]; last.Subject != subject {
		return errorf(ReasonWrongSubject, len(ch)-1, "chain ends at %s, want %s", last.Subject.Short(), subject.Short())
	}
	for i, c := range ch {
		if err := c.Verify(); err != nil {
			return at(err, i)
		}
	}
	if revoked != nil {
		for i, c := range ch {
			if revoked(c.Issuer, c.Serial) {
				return errorf(ReasonRevoked, i, "%s revoked certificate %d (for %s)", c.Issuer.Short(), c.Serial, c.Subject.Short())
			}
		}
	}
	return nil
}
