package e2e

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/internal/daemon"
	"grapevine/internal/foolscap"
)

// TestTahoeAnnounceLatency: a publisher on one Grapevine node's
// introducer endpoint, a real Tahoe client beside another node two hops
// away. Each of 20 publishes (a new seqnum) is timed until the Tahoe
// client has written it to its introducer cache, which it does as it
// takes announce_v2. docs/benchmarks.md records the numbers.
func TestTahoeAnnounceLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("real Tahoe processes; skipped with -short")
	}
	tahoeCommand(t)
	root := t.TempDir()
	relay := start(t, "relay", create(t, root, "relay", "--relay"))
	// The publisher's host announces an address nobody can reach, so the
	// far node hears of its records through the relay only: two hops.
	host := start(t, "host", create(t, root, "host", "--location", "127.0.0.1:9"), relay.locator())
	far := besideTahoe(t, root, newTahoeClient(t, root, "c0", nil, 1, 1, 1), relay.locator())

	tub, err := foolscap.NewTub()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	intro, err := foolscap.Dial(ctx, tub, daemon.ReadIntroducerFURL(host.dir), foolscap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	key, _ := announce.NewPrivateKey(priv.Seed())
	canary := &foolscap.Methods{Funcs: map[string]foolscap.MethodFunc{}}
	publish := func(intro *foolscap.RemoteRef, seq int64) {
		body := announce.Obj(
			announce.Member{Key: "version", Value: announce.Int(0)},
			announce.Member{Key: "nickname", Value: announce.Str("bench")},
			announce.Member{Key: "service-name", Value: announce.Str("storage")},
			announce.Member{Key: "anonymous-storage-FURL", Value: announce.Str("pb://" + tub.ID() + "@tcp:127.0.0.1:9/x")},
			announce.Member{Key: "seqnum", Value: announce.Int(seq)},
		)
		s := announce.Sign(key, body)
		ann := foolscap.Tuple{[]byte(s.Msg), []byte(s.Sig), []byte(s.Key)}
		if _, err := intro.Call(ctx, "publish_v2", ann, canary); err != nil {
			t.Fatalf("publish_v2 seqnum %d: %v", seq, err)
		}
	}
	id := string(key.ID())
	seq := int64(0)
	// measure times 20 publishes through intro until node's cache for
	// petname holds each.
	measure := func(intro *foolscap.RemoteRef, node *tahoeNode, petname string) []time.Duration {
		cached := func() int64 {
			anns, err := node.cachedAnnouncements(petname)
			if err != nil {
				return -1
			}
			return anns[id].Seqnum
		}
		seq++
		publish(intro, seq)
		waitFor(t, 30*time.Second, "the first publish to reach "+node.name, func() (bool, string) {
			return cached() == seq, fmt.Sprint(cached())
		})
		var took []time.Duration
		for range 20 {
			seq++
			start := time.Now()
			publish(intro, seq)
			for cached() < seq {
				if time.Since(start) > 10*time.Second {
					t.Fatalf("seqnum %d not at %s after 10 s", seq, node.name)
				}
				time.Sleep(2 * time.Millisecond)
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		return took
	}
	gvTook := measure(intro, far.tahoe, "grapevine")
	if s, _, _ := far.gv.server(host.id()); s.Connected {
		t.Fatal("the far node is connected to the host: one hop, not two")
	}

	// The baseline, in the same run: Tahoe's own introducer, one hop.
	tin := newTahoeIntroducer(t, root, "introducer")
	tin.start()
	c1 := newTahoeClient(t, root, "c1", map[string]string{"default": tin.furl()}, 1, 1, 1)
	c1.start()
	tintro, err := foolscap.Dial(ctx, tub, tin.furl(), foolscap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tahoeTook := measure(tintro, c1, "default")
	for _, r := range []struct {
		what string
		took []time.Duration
	}{{"Grapevine, two hops", gvTook}, {"Tahoe introducer, one hop (baseline)", tahoeTook}} {
		t.Logf("publish -> announce_v2 in a Tahoe client's cache, %s, %d publishes: p50 %v, max %v",
			r.what, len(r.took), r.took[len(r.took)/2].Round(time.Millisecond), r.took[len(r.took)-1].Round(time.Millisecond))
	}
	if gvTook[len(gvTook)-1] > 5*time.Second {
		t.Fatalf("a publish took %v to reach the Tahoe client", gvTook[len(gvTook)-1])
	}
}
