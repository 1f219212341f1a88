package sim

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Events run by time, then in the order they were scheduled, also after
// the queue gave back the room of a burst.
func TestEventOrder(t *testing.T) {
	n := NewNet(1)
	rng := rand.New(rand.NewPCG(1, 2))
	type ev struct {
		at time.Duration
		i  int
	}
	var want []ev
	var got []int
	schedule := func(count int, from, span time.Duration) {
		for range count {
			i := len(want)
			at := from + time.Duration(rng.Int64N(int64(span/time.Millisecond)))*time.Millisecond
			want = append(want, ev{at, i})
			n.At(Epoch.Add(at), func() { got = append(got, i) })
		}
	}
	schedule(200000, 0, time.Second)
	n.Run(900 * time.Millisecond)
	if cap(n.q) > 100000 || len(n.free) > 0 {
		t.Errorf("after the burst: queue room %d, %d free event slots", cap(n.q), len(n.free))
	}
	schedule(50000, 900*time.Millisecond, 200*time.Millisecond)
	n.Run(time.Second)
	slices.SortStableFunc(want, func(a, b ev) int { return cmp.Compare(a.at, b.at) })
	if len(got) != len(want) {
		t.Fatalf("%d events ran, want %d", len(got), len(want))
	}
	for k, e := range want {
		if got[k] != e.i {
			t.Fatalf("event %d: got #%d, want #%d (at %v)", k, got[k], e.i, e.at)
		}
	}
}
