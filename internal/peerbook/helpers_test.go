package peerbook

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/records"
)

var keyPool struct {
	sync.Mutex
	keys map[int]announce.PrivateKey
}

// testKey returns the n-th deterministic signing key.
func testKey(n int) announce.PrivateKey {
	keyPool.Lock()
	defer keyPool.Unlock()
	if k, ok := keyPool.keys[n]; ok {
		return k
	}
	seed := make([]byte, 32)
	copy(seed, "peerbook-test-key")
	binary.BigEndian.PutUint64(seed[24:], uint64(n))
	k, err := announce.NewPrivateKey(seed)
	if err != nil {
		panic(err)
	}
	if keyPool.keys == nil {
		keyPool.keys = map[int]announce.PrivateKey{}
	}
	keyPool.keys[n] = k
	return k
}

// signed is a real announcement of service by k.
func signed(k announce.PrivateKey, service string, seq int64, nick string, withdrawn bool) announce.Signed {
	return announce.Sign(k, announce.Build(k, announce.Template{
		Nickname: nick,
		Service: announce.Service{Name: service, Fields: []announce.Member{
			{Key: "anonymous-storage-FURL", Value: announce.Str("pb://" + announce.EncodeBase32(k.Public()[:20]) + "@tcp:192.0.2.1:51298/x")},
		}},
		Locators:  []string{"gv://" + string(k.ID()) + "@192.0.2.1:7370"},
		Withdrawn: withdrawn,
	}, seq))
}

// unsequenced is an old-Tahoe announcement without a seqnum.
func unsequenced(k announce.PrivateKey, service string) announce.Signed {
	return announce.Sign(k, announce.Obj(
		announce.Member{Key: "service-name", Value: announce.Str(service)},
		announce.Member{Key: "nickname", Value: announce.Str("old tahoe ☃")},
	))
}

var oddStrings = []string{"", "plain", "ünïcødé ☃ 🚀", "nul\x00byte", "bad utf8 \xff\xfe", "line\nbreak", "'quote\" ; DROP TABLE peers; --"}

// gen makes random states from a seed.
type gen struct {
	rng *rand.Rand
}

func newGen(seed uint64) *gen { return &gen{rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))} }

func (g *gen) wall() time.Time {
	switch g.rng.IntN(8) {
	case 0:
		return time.Time{}
	case 1:
		return time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC) // just after the zero time
	case 2:
		return time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	}
	return time.Unix(g.rng.Int64N(4e9), g.rng.Int64N(1e9)).UTC()
}

// at is dur as a reading of the elapsed-time measure.
func (g *gen) at() core.Elapsed { return core.Elapsed(g.dur()) }

func (g *gen) dur() time.Duration {
	switch g.rng.IntN(6) {
	case 0:
		return -1
	case 1:
		return 0
	case 2:
		return math.MaxInt64
	}
	return time.Duration(g.rng.Int64N(int64(1000 * time.Hour)))
}

func (g *gen) odd() string { return oddStrings[g.rng.IntN(len(oddStrings))] }

func (g *gen) record(key int) core.StoredRecord {
	k := testKey(key)
	var s announce.Signed
	switch g.rng.IntN(6) {
	case 0:
		s = unsequenced(k, "storage")
	default:
		s = signed(k, "storage", g.rng.Int64N(1000)+1, fmt.Sprintf("node-%d %s", key, g.odd()), false)
	}
	src := testKey(g.rng.IntN(100)).ID()
	if g.rng.IntN(5) == 0 {
		src = announce.NodeID(g.odd())
	}
	return core.StoredRecord{Signed: s, Source: src}
}

func (g *gen) tombstone(key int) core.StoredTombstone {
	k := testKey(key)
	service := "storage"
	if g.rng.IntN(3) == 0 {
		service = "introducer"
	}
	t := core.StoredTombstone{
		Tombstone: records.Tombstone{Key: records.Key{Service: service, ID: k.ID()}, Reason: g.odd()},
		At:        g.at(),
		AtWall:    g.wall(),
	}
	if g.rng.IntN(4) != 0 {
		t.Seqnum, t.HasSeqnum = g.rng.Int64N(1000)+1, true
		t.Last = signed(k, service, t.Seqnum, "gone", g.rng.IntN(2) == 0)
	} else if g.rng.IntN(2) == 0 {
		t.Seqnum = -5 // meaningless without HasSeqnum, kept anyway
	}
	return t
}

func (g *gen) history(key int) core.History {
	h := core.History{
		ID:                testKey(key).ID(),
		FirstHeard:        g.at(),
		FirstHeardWall:    g.wall(),
		LastGood:          g.at(),
		LastConnected:     g.at(),
		LastConnectedWall: g.wall(),
		LastAttempt:       g.at(),
		LastAttemptWall:   g.wall(),
		LastAttemptFailed: g.rng.IntN(2) == 0,
		LastError:         g.odd(),
		Failures:          g.rng.IntN(20),
		SRTT:              g.dur(),
		RTTVar:            g.dur(),
		BytesIn:           g.rng.Uint64(),
		BytesOut:          []uint64{0, 1, math.MaxUint64, 1 << 63}[g.rng.IntN(4)],
		Withdrawn:         g.rng.IntN(4) == 0,
	}
	for range g.rng.IntN(4) {
		h.Locators = append(h.Locators, fmt.Sprintf("gv://%s@192.0.2.%d:7370", h.ID, g.rng.IntN(250)), g.odd())
	}
	n := g.rng.IntN(4)
	if n == 3 {
		n = 64
	}
	for range n {
		s := g.at()
		h.Intervals = append(h.Intervals, core.Interval{Start: s, End: s.Add(time.Duration(g.rng.Int64N(1e12)))})
	}
	return h
}

// state returns a random state over keys 0..n-1 in canonical form.
func (g *gen) state(n int) core.State {
	st := core.State{Counter: g.rng.Int64N(1 << 40), Elapsed: g.at(), Wall: g.wall()}
	for i := range n {
		switch g.rng.IntN(4) {
		case 0, 1:
			st.Records = append(st.Records, g.record(i))
			if g.rng.IntN(4) == 0 { // a second service of the same node
				st.Records = append(st.Records, core.StoredRecord{Signed: signed(testKey(i), "introducer", 3, "intro", false), Source: testKey(i).ID()})
			}
		case 2:
			st.Tombstones = append(st.Tombstones, g.tombstone(i))
		}
		if g.rng.IntN(3) != 0 {
			st.Peers = append(st.Peers, g.history(i))
		}
	}
	return sortState(st)
}

// mutate changes st in place the way a running node does: a few records,
// tombstones and peers come, go or change.
func (g *gen) mutate(st core.State, keys int) core.State {
	st = cloneState(st)
	st.Counter += g.rng.Int64N(3)
	st.Elapsed = st.Elapsed.Add(time.Second)
	if g.rng.IntN(2) == 0 {
		st.Wall = g.wall()
	}
	for range g.rng.IntN(4) {
		switch i := g.rng.IntN(keys); g.rng.IntN(6) {
		case 0: // a record is replaced or added
			r := g.record(i)
			st.Records = slices.DeleteFunc(st.Records, func(x core.StoredRecord) bool {
				return x.Signed.Key == r.Signed.Key && keyOf(x.Signed).Service == "storage"
			})
			st.Records = append(st.Records, r)
		case 1: // a record goes
			if len(st.Records) > 0 {
				j := g.rng.IntN(len(st.Records))
				st.Records = slices.Delete(st.Records, j, j+1)
			}
		case 2: // a tombstone comes or changes
			t := g.tombstone(i)
			st.Tombstones = slices.DeleteFunc(st.Tombstones, func(x core.StoredTombstone) bool { return x.Key == t.Key })
			st.Tombstones = append(st.Tombstones, t)
		case 3: // a tombstone expires
			if len(st.Tombstones) > 0 {
				j := g.rng.IntN(len(st.Tombstones))
				st.Tombstones = slices.Delete(st.Tombstones, j, j+1)
			}
		case 4: // a peer changes or comes
			h := g.history(i)
			if j := slices.IndexFunc(st.Peers, func(x core.History) bool { return x.ID == h.ID }); j >= 0 && g.rng.IntN(2) == 0 {
				h = st.Peers[j]
				h.LastGood = h.LastGood.Add(time.Second)
				h.Intervals = append(h.Intervals, core.Interval{Start: 1, End: 2})
				if g.rng.IntN(2) == 0 {
					h.Locators = append(h.Locators, "gv://new")
				}
			}
			st.Peers = slices.DeleteFunc(st.Peers, func(x core.History) bool { return x.ID == h.ID })
			st.Peers = append(st.Peers, h)
		case 5: // a peer is forgotten
			if len(st.Peers) > 0 {
				j := g.rng.IntN(len(st.Peers))
				st.Peers = slices.Delete(st.Peers, j, j+1)
			}
		}
	}
	return sortState(st)
}

func keyOf(s announce.Signed) records.Key {
	a, err := announce.ParseUnverified(s)
	if err != nil {
		panic(err)
	}
	return records.Key{Service: a.ServiceName, ID: a.ID}
}

// sortState puts st in core.State's order, with nil for empty lists.
func sortState(st core.State) core.State {
	slices.SortFunc(st.Records, func(a, b core.StoredRecord) int {
		ka, kb := keyOf(a.Signed), keyOf(b.Signed)
		return cmp.Or(cmp.Compare(ka.ID, kb.ID), cmp.Compare(ka.Service, kb.Service))
	})
	slices.SortFunc(st.Tombstones, func(a, b core.StoredTombstone) int {
		return cmp.Or(cmp.Compare(a.Key.ID, b.Key.ID), cmp.Compare(a.Key.Service, b.Key.Service))
	})
	slices.SortFunc(st.Peers, func(a, b core.History) int { return cmp.Compare(a.ID, b.ID) })
	if len(st.Records) == 0 {
		st.Records = nil
	}
	if len(st.Tombstones) == 0 {
		st.Tombstones = nil
	}
	if len(st.Peers) == 0 {
		st.Peers = nil
	}
	for i := range st.Peers {
		if len(st.Peers[i].Locators) == 0 {
			st.Peers[i].Locators = nil
		}
		if len(st.Peers[i].Intervals) == 0 {
			st.Peers[i].Intervals = nil
		}
	}
	return st
}

func cloneState(st core.State) core.State {
	st.Records = slices.Clone(st.Records)
	st.Tombstones = slices.Clone(st.Tombstones)
	st.Peers = slices.Clone(st.Peers)
	for i := range st.Peers {
		st.Peers[i].Locators = slices.Clone(st.Peers[i].Locators)
		st.Peers[i].Intervals = slices.Clone(st.Peers[i].Intervals)
	}
	return st
}

// mustEqual fails with the first difference between two states.
func mustEqual(t testing.TB, got, want core.State) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	if got.Counter != want.Counter || got.Elapsed != want.Elapsed || got.Wall != want.Wall {
		t.Fatalf("meta: got (%d, %v, %#v), want (%d, %v, %#v)", got.Counter, got.Elapsed, got.Wall, want.Counter, want.Elapsed, want.Wall)
	}
	if len(got.Records) != len(want.Records) || len(got.Tombstones) != len(want.Tombstones) || len(got.Peers) != len(want.Peers) {
		t.Fatalf("lengths: got %d/%d/%d, want %d/%d/%d records/tombstones/peers",
			len(got.Records), len(got.Tombstones), len(got.Peers), len(want.Records), len(want.Tombstones), len(want.Peers))
	}
	for i := range got.Records {
		if got.Records[i] != want.Records[i] {
			t.Fatalf("Records[%d]:\n got %+v\nwant %+v", i, got.Records[i], want.Records[i])
		}
	}
	for i := range got.Tombstones {
		if !reflect.DeepEqual(got.Tombstones[i], want.Tombstones[i]) {
			t.Fatalf("Tombstones[%d]:\n got %#v\nwant %#v", i, got.Tombstones[i], want.Tombstones[i])
		}
	}
	for i := range got.Peers {
		if !reflect.DeepEqual(got.Peers[i], want.Peers[i]) {
			t.Fatalf("Peers[%d]:\n got %#v\nwant %#v", i, got.Peers[i], want.Peers[i])
		}
	}
	t.Fatalf("states differ (nil versus empty?):\n got %#v\nwant %#v", got, want)
}
