package tahoe

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"grapevine/announce"
	"grapevine/internal/testkit"
)

func testKeyID(t *testing.T, n byte) announce.NodeID {
	t.Helper()
	k, err := announce.NewPrivateKey(bytes.Repeat([]byte{n}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k.ID()
}

func keysOf(ss []Server) []announce.NodeID {
	var out []announce.NodeID
	for _, s := range ss {
		out = append(out, s.Key)
	}
	return out
}

// One storage endpoint gets one ID in servers.yaml, whichever way the
// announcements say it is the same: the record Tahoe signed itself wins
// over Grapevine's, then the higher seqnum, then the lower key.
func TestOneIDPerEndpoint(t *testing.T) {
	k := make([]announce.NodeID, 6)
	for i := range k {
		k[i] = testKeyID(t, byte(i+1))
	}
	slices.Sort(k) // k[0] is the lowest key
	furl := func(tub string) Ann { return Ann{FURL: "pb://" + tub + "@tcp:192.0.2.1:1/swiss"} }
	nurls := func(us ...string) Ann { return Ann{NURLs: us} }
	c := func(key announce.NodeID, a Ann, seq int64, gv bool) Candidate {
		return Candidate{Server: Server{Key: key, Ann: a}, Seqnum: seq, HasSeqnum: true, Grapevine: gv}
	}
	for _, tc := range []struct {
		name     string
		in       []Candidate
		kept     []announce.NodeID
		dropped  []announce.NodeID // in key order
		same     string            // of the first dropped
		why      string            // of the first dropped
		unrelate bool              // every candidate is kept
	}{
		{
			name: "Tahoe's own record wins over a higher Grapevine seqnum",
			in:   []Candidate{c(k[1], furl("tubx"), 2, false), c(k[0], furl("tubx"), 90, true)},
			kept: []announce.NodeID{k[1]}, dropped: []announce.NodeID{k[0]},
			same: "FURL tub ID tubx", why: "it has no grapevine- fields, so the Tahoe node signed it itself",
		},
		{
			name: "FURL tub IDs compare in lower case; host, port and swissnum do not matter",
			in:   []Candidate{c(k[0], Ann{FURL: "pb://TUBX@tcp:192.0.2.1:1/a"}, 1, true), c(k[1], Ann{FURL: "pb://tubx@tor:x.onion:2/b"}, 2, true)},
			kept: []announce.NodeID{k[1]}, dropped: []announce.NodeID{k[0]},
			same: "FURL tub ID tubx", why: "the higher seqnum (2 > 1)",
		},
		{
			name: "a shared NURL, equal seqnums: the lower key",
			in:   []Candidate{c(k[3], nurls("pb://h@tcp:a:1/s#v=1"), 5, true), c(k[2], nurls("pb://h@tcp:a:1/s#v=1", "pb://i@tcp:b:1/s#v=1"), 5, true)},
			kept: []announce.NodeID{k[2]}, dropped: []announce.NodeID{k[3]},
			same: "NURL pb://h@tcp:a:1/s#v=1", why: "the lower key",
		},
		{
			name: "NURLs with the same tub part (TLS key hash) elsewhere",
			in:   []Candidate{c(k[0], nurls("pb://Hash_1@tcp:a:1/s#v=1"), 1, true), c(k[1], nurls("pb://Hash_1@tcp:b:9/t#v=1"), 1, false)},
			kept: []announce.NodeID{k[1]}, dropped: []announce.NodeID{k[0]},
			same: "NURL tub Hash_1", why: "no grapevine- fields",
		},
		{
			name: "a record without a seqnum loses",
			in: []Candidate{{Server: Server{Key: k[0], Ann: furl("t")}, Grapevine: true},
				c(k[1], furl("t"), -5, true)},
			kept: []announce.NodeID{k[1]}, dropped: []announce.NodeID{k[0]},
			same: "FURL tub ID t", why: "the higher seqnum (-5; the other has none)",
		},
		{
			name: "transitive: FURL with one, NURL with another",
			in: []Candidate{
				c(k[0], Ann{FURL: "pb://t@tcp:a:1/s", NURLs: []string{"pb://n1@tcp:a:2/s#v=1"}}, 7, true),
				c(k[1], furl("t"), 3, true),
				c(k[2], nurls("pb://n1@tcp:a:2/s#v=1"), 1, false),
			},
			kept: []announce.NodeID{k[2]}, dropped: []announce.NodeID{k[0], k[1]},
			same: "NURL pb://n1@tcp:a:2/s#v=1", why: "no grapevine- fields",
		},
		{
			name:     "distinct endpoints stay, even when a FURL's tub ID is spelt like another's NURL tub part",
			in:       []Candidate{c(k[0], furl("abc"), 1, true), c(k[1], nurls("pb://abc@tcp:a:1/s#v=1"), 1, true), c(k[2], furl("abd"), 1, false)},
			unrelate: true,
		},
		{
			name:     "one announcement naming its NURL tub twice is one server",
			in:       []Candidate{c(k[0], Ann{FURL: "pb://t@tcp:a:1/s", NURLs: []string{"pb://n@tcp:a:2/s#v=1", "pb://n@tcp:b:2/s#v=1"}}, 1, true)},
			unrelate: true,
		},
		{
			name: "FURLs without a tub ID are compared whole",
			in:   []Candidate{c(k[0], Ann{FURL: "pb://no-at/s"}, 1, true), c(k[1], Ann{FURL: "pb://no-at/s"}, 1, true), c(k[2], Ann{FURL: "pb://no-at/t"}, 1, true)},
			kept: []announce.NodeID{k[0], k[2]}, dropped: []announce.NodeID{k[1]},
			same: "FURL pb://no-at/s", why: "the lower key",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.unrelate {
				for _, c := range tc.in {
					tc.kept = append(tc.kept, c.Key)
				}
				slices.Sort(tc.kept)
			}
			// The result does not depend on the order of the candidates.
			r := rand.New(rand.NewPCG(1, 2))
			var first []Dropped
			for i := range 10 {
				in := slices.Clone(tc.in)
				if i > 0 {
					r.Shuffle(len(in), func(a, b int) { in[a], in[b] = in[b], in[a] })
				}
				kept, dropped := OneIDPerEndpoint(in)
				if got := keysOf(kept); !slices.Equal(got, tc.kept) {
					t.Fatalf("kept %v, want %v", got, tc.kept)
				}
				var got []announce.NodeID
				for _, d := range dropped {
					got = append(got, d.Server.Key)
				}
				if !slices.Equal(got, tc.dropped) {
					t.Fatalf("dropped %v, want %v", got, tc.dropped)
				}
				if i == 0 {
					first = dropped
				} else if !reflect.DeepEqual(dropped, first) {
					t.Fatalf("order %d: dropped\n%+v\nthe first order dropped\n%+v", i, dropped, first)
				}
			}
			if len(first) == 0 {
				return
			}
			if len(first) > 1 && first[1].Same != "FURL tub ID t as "+first[0].Server.Key.Short() {
				t.Errorf("joined through a third: same %q", first[1].Same)
			}
			d := first[0]
			if d.Kept.Key != tc.kept[0] || d.Same != tc.same || !strings.Contains(d.Why, tc.why) {
				t.Errorf("dropped %+v, want kept %s, same %q, why %q", d, tc.kept[0], tc.same, tc.why)
			}
			msg := d.String()
			for _, want := range []string{string(d.Server.Key), string(d.Kept.Key), tc.same, d.Why} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not name %q", msg, want)
				}
			}
		})
	}
}

// A record Tahoe signed has no grapevine- fields; one Grapevine built has.
func TestCandidateOf(t *testing.T) {
	for _, v := range testkit.TahoeVectors(t) {
		if v.Verify != "ok" {
			continue
		}
		a, err := announce.Verify(announce.Signed{Msg: v.Msg, Sig: v.Sig, Key: v.Key})
		if err != nil {
			t.Fatal(err)
		}
		ann, _ := AnnOf(a)
		if c := CandidateOf(a, ann); c.Grapevine || c.Key != a.ID || !c.HasSeqnum || c.Seqnum != a.Seqnum || !reflect.DeepEqual(c.Ann, ann) {
			t.Errorf("%s: %+v", v.Name, c)
		}
	}
	key, _ := announce.NewPrivateKey(bytes.Repeat([]byte{9}, 32))
	for _, tmpl := range []announce.Template{
		{Service: announce.Service{Name: "storage"}},
		{Service: announce.Service{Name: "storage"}, Locators: []string{fmt.Sprintf("gv://%s@192.0.2.1:7370", key.ID())}},
	} {
		a, err := announce.Verify(announce.Sign(key, announce.Build(key, tmpl, 4)))
		if err != nil {
			t.Fatal(err)
		}
		if c := CandidateOf(a, Ann{}); !c.Grapevine || c.Seqnum != 4 {
			t.Errorf("Grapevine's record %+v", c)
		}
	}
}
