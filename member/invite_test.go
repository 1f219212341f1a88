package member_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"grapevine/announce"
	"grapevine/member"
)

// seeded returns a deterministic random source for secrets.
func seeded(n uint64) *rand.ChaCha8 {
	var seed [32]byte
	seed[0] = byte(n)
	return rand.NewChaCha8(seed)
}

func newInvite(t testing.TB, grid, inviter announce.NodeID, addr string, n uint64) member.Invite {
	t.Helper()
	inv, err := member.NewInvite(grid, inviter, addr, seeded(n))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// rawCode builds a code from payload bytes, with a correct checksum.
func rawCode(payload []byte) string {
	sum := sha256.Sum256(payload)
	return member.InvitePrefix + announce.EncodeBase32(append(bytes.Clone(payload), sum[:4]...))
}

// payload returns the binary form of inv without the checksum.
func payload(t *testing.T, inv member.Invite) []byte {
	t.Helper()
	b, err := announce.DecodeBase32(strings.ReplaceAll(strings.TrimPrefix(inv.Code(), member.InvitePrefix), "-", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b[:len(b)-4]
}

func TestInviteRoundTrip(t *testing.T) {
	founder, alice := key(t, 1), key(t, 2)
	for i, addr := range []string{"203.0.113.7:7370", "a:1", "[2001:db8::1]:7370", "node.example.org:65535", strings.Repeat("h", 250) + ":7370" /* 255 bytes */} {
		inv := newInvite(t, founder.ID(), alice.ID(), addr, uint64(i))
		if inv.Inviter != alice.ID() || inv.Addr != addr || !inv.Matches(founder.ID()) || inv.Matches(alice.ID()) || inv.Matches("junk") {
			t.Fatalf("NewInvite: %+v", inv)
		}
		code := inv.Code()
		if !strings.HasPrefix(code, member.InvitePrefix) {
			t.Fatalf("code %q", code)
		}
		groups := strings.Split(strings.TrimPrefix(code, member.InvitePrefix), "-")
		for j, g := range groups {
			if len(g) != 5 && (j != len(groups)-1 || len(g) == 0 || len(g) > 5) {
				t.Fatalf("group %d of %q: %q", j, code, g)
			}
		}
		chars := ((64+len(addr))*8 + 4) / 5 // base32 of 64 + n bytes
		wantLen := len(member.InvitePrefix) + chars + (chars-1)/5
		if len(code) != wantLen {
			t.Fatalf("code of %d characters, want %d", len(code), wantLen)
		}
		got, err := member.ParseInvite(code)
		if err != nil {
			t.Fatal(err)
		}
		if got != inv {
			t.Fatalf("round trip: %+v, want %+v", got, inv)
		}
	}
}

func TestSampleInvite(t *testing.T) {
	founder, alice := key(t, 1), key(t, 2)
	inv := newInvite(t, founder.ID(), alice.ID(), "203.0.113.7:7370", 1)
	code := inv.Code()
	if len(code) != 157 {
		t.Fatalf("code of %d characters, the package doc says 157", len(code))
	}
	t.Logf("sample invite code (%d characters): %s", len(code), code)
	t.Logf("its ID: %s", inv.ID())
}

func TestParseInviteLenient(t *testing.T) {
	founder, alice := key(t, 1), key(t, 2)
	inv := newInvite(t, founder.ID(), alice.ID(), "203.0.113.7:7370", 1)
	code := inv.Code()
	body := strings.TrimPrefix(code, member.InvitePrefix)
	bare := strings.ReplaceAll(body, "-", "")
	confused := strings.NewReplacer("o", "0", "l", "1", "b", "8").Replace(bare)
	if confused == bare {
		t.Fatal("the sample has none of o, l, b: pick another")
	}
	for _, s := range []string{
		code,
		strings.ToUpper(code),
		"  " + code + "\n",
		member.InvitePrefix + bare,
		"gv1" + bare,
		"GV1-" + strings.ToUpper(bare),
		member.InvitePrefix + strings.ReplaceAll(body, "-", " "),
		member.InvitePrefix + strings.ReplaceAll(body, "-", "\n"),
		member.InvitePrefix + strings.ReplaceAll(body, "-", "--"),
		member.InvitePrefix + confused,
		member.InvitePrefix + strings.ToUpper(confused),
		"gV1- " + bare[:40] + " - " + strings.ToUpper(bare[40:]),
	} {
		got, err := member.ParseInvite(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if got != inv {
			t.Fatalf("%q: parsed %+v, want %+v", s, got, inv)
		}
	}
}

func TestParseInviteErrors(t *testing.T) {
	founder, alice := key(t, 1), key(t, 2)
	inv := newInvite(t, founder.ID(), alice.ID(), "203.0.113.7:7370", 1)
	code := inv.Code()
	p := payload(t, inv)
	edit := func(f func(b []byte) []byte) string { return rawCode(f(bytes.Clone(p))) }
	withAddr := func(addr string) string {
		b := append(bytes.Clone(p[:43]), byte(len(addr)))
		b = append(b, addr...)
		return rawCode(append(b, inv.Secret[:]...))
	}
	cert := member.Issue(founder, founder.ID(), alice.ID(), 1).String()
	tests := []struct {
		name string
		in   string
		want member.Reason
	}{
		{"empty", "", member.ReasonNotAnInvite},
		{"prose", "hello world", member.ReasonNotAnInvite},
		{"no prefix", strings.TrimPrefix(code, member.InvitePrefix), member.ReasonNotAnInvite},
		{"another version", "gv2-" + strings.TrimPrefix(code, member.InvitePrefix), member.ReasonNotAnInvite},
		{"certificate", cert, member.ReasonNotAnInvite},
		{"locator", "gv://" + string(alice.ID()) + "@203.0.113.7:7370", member.ReasonNotAnInvite},
		{"format byte 2", edit(func(b []byte) []byte { b[0] = 2; return b }), member.ReasonNotAnInvite},
		{"format byte 0", edit(func(b []byte) []byte { b[0] = 0; return b }), member.ReasonNotAnInvite},
		{"far too long", member.InvitePrefix + strings.Repeat("a", 5000), member.ReasonNotAnInvite},
		{"prefix only", member.InvitePrefix, member.ReasonMistyped},
		{"checksum only", member.InvitePrefix + "aaaaaaa", member.ReasonMistyped},
		{"a 9", code[:20] + "9" + code[21:], member.ReasonMistyped},
		{"a punctuation mark", code[:20] + "." + code[21:], member.ReasonMistyped},
		{"non-ASCII", code[:20] + "é" + code[21:], member.ReasonMistyped},
		{"last character dropped", code[:len(code)-1], member.ReasonMistyped},
		{"last group dropped", code[:strings.LastIndexByte(code, '-')], member.ReasonMistyped},
		{"a character added", code + "a", member.ReasonMistyped},
		{"two swapped", code[:30] + code[31:32] + code[30:31] + code[32:], member.ReasonMistyped},
		{"checksum changed", member.InvitePrefix + announce.EncodeBase32(append(bytes.Clone(p), 1, 2, 3, 4)), member.ReasonMistyped},
		{"too short", rawCode(p[:20]), member.ReasonMalformed},
		{"just the version", rawCode([]byte{1}), member.ReasonMalformed},
		{"address longer than its bytes", edit(func(b []byte) []byte { b[43]++; return b }), member.ReasonMalformed},
		{"address shorter than its bytes", edit(func(b []byte) []byte { b[43]--; return b }), member.ReasonMalformed},
		{"trailing byte", edit(func(b []byte) []byte { return append(b, 0) }), member.ReasonMalformed},
		{"no address", withAddr(""), member.ReasonMalformed},
		{"no port", withAddr("203.0.113.7"), member.ReasonMalformed},
		{"port 0", withAddr("203.0.113.7:0"), member.ReasonMalformed},
		{"bad host", withAddr("a b:1"), member.ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := member.ParseInvite(tt.in)
			wantInviteReason(t, err, tt.want)
			if got != (member.Invite{}) {
				t.Fatal("returned an invite with the error")
			}
			if tt.want == member.ReasonMistyped && !strings.Contains(err.Error(), "check the code for typos") {
				t.Fatalf("message %q does not ask to check for typos", err)
			}
		})
	}
	// The cases above are built by rawCode, which does rebuild the code.
	if got, err := member.ParseInvite(rawCode(p)); err != nil || got != inv {
		t.Fatalf("rawCode does not rebuild the code: %v", err)
	}
}

// substitutes are the characters a typo can put in a code, all distinct
// after ParseInvite's mapping of 0, 1 and 8.
const substitutes = "abcdefghijklmnopqrstuvwxyz2345679"

// checkSubstitution checks that code with its character i replaced by c
// is refused as mistyped.
func checkSubstitution(t *testing.T, code string, i int, c byte) {
	t.Helper()
	typo := code[:i] + string(c) + code[i+1:]
	inv, err := member.ParseInvite(typo)
	var ie *member.InviteError
	if !errors.As(err, &ie) || ie.Reason != member.ReasonMistyped {
		t.Fatalf("%q (character %d changed to %q): %+v, %v; want mistyped", typo, i, c, inv, err)
	}
}

// Every single-character substitution of a few codes, and many random
// ones of many codes, is refused as mistyped.
func TestSubstitutionsAreMistyped(t *testing.T) {
	founder := key(t, 1)
	addrs := []string{"203.0.113.7:7370", "a:1", "[2001:db8::1]:7370", "storage-3.example.org:7370"}
	var codes []string
	for i := range 40 {
		codes = append(codes, newInvite(t, founder.ID(), key(t, byte(20+i)).ID(), addrs[i%len(addrs)], uint64(i)).Code())
	}
	n := 0
	for _, code := range codes[:4] { // exhaustively
		for i := len(member.InvitePrefix); i < len(code); i++ {
			if code[i] == '-' {
				continue
			}
			for _, c := range []byte(substitutes) {
				if c != code[i] {
					checkSubstitution(t, code, i, c)
					n++
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 { // at random
		code := codes[r.IntN(len(codes))]
		i := len(member.InvitePrefix) + r.IntN(len(code)-len(member.InvitePrefix))
		c := substitutes[r.IntN(len(substitutes))]
		if code[i] == '-' || c == code[i] {
			continue
		}
		checkSubstitution(t, code, i, c)
		n++
	}
	t.Logf("%d substitutions, all mistyped", n)
}

func TestNewInviteErrors(t *testing.T) {
	founder, alice := key(t, 1), key(t, 2)
	for _, tt := range []struct {
		name          string
		grid, inviter announce.NodeID
		addr          string
	}{
		{"bad grid", "v0-x", alice.ID(), "a:1"},
		{"bad inviter", founder.ID(), "", "a:1"},
		{"no port", founder.ID(), alice.ID(), "a"},
		{"port 0", founder.ID(), alice.ID(), "a:0"},
		{"address too long", founder.ID(), alice.ID(), strings.Repeat("h", 251) + ":7370"}, // 256 bytes
	} {
		_, err := member.NewInvite(tt.grid, tt.inviter, tt.addr, seeded(1))
		wantInviteReason(t, err, member.ReasonMalformed)
	}
	_, err := member.NewInvite(founder.ID(), alice.ID(), "a:1", bytes.NewReader(make([]byte, 15)))
	if err == nil || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("short random source: %v", err)
	}
	if c := (member.Invite{Inviter: alice.ID(), Addr: "nope"}).Code(); c != member.InvitePrefix+"?" {
		t.Fatalf("Code of an invalid invite: %q", c)
	}
	_, err = member.ParseInvite(member.InvitePrefix + "?")
	wantInviteReason(t, err, member.ReasonMistyped)
}

func TestSecrets(t *testing.T) {
	founder, alice := key(t, 1), key(t, 2)
	inv := newInvite(t, founder.ID(), alice.ID(), "a:1", 1)
	other := newInvite(t, founder.ID(), alice.ID(), "a:1", 2)
	if inv.Secret == other.Secret || inv.ID() == other.ID() {
		t.Fatal("two invites share a secret or ID")
	}
	id := inv.ID()
	if len(id) != 16 || id != member.SecretID(inv.Secret) || id != inv.ID() {
		t.Fatalf("ID %q", id)
	}
	if strings.Contains(inv.Code(), id) || strings.Contains(id, announce.EncodeBase32(inv.Secret[:4])) {
		t.Fatal("the ID shows the secret")
	}
	h := member.HashSecret(inv.Secret)
	if !member.SecretMatches(h, inv.Secret) || member.SecretMatches(h, other.Secret) {
		t.Fatal("SecretMatches")
	}
	if h == sha256.Sum256(inv.Secret[:]) {
		t.Fatal("HashSecret is a bare SHA-256")
	}
	// The invitee cannot learn the secret from the table: HashSecret and
	// ID differ.
	if announce.EncodeBase32(h[:10]) == id {
		t.Fatal("the ID is a prefix of the stored hash")
	}
}
