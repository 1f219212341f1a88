package daemon

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/nodedir"
	"grapevine/internal/peerbook"
	"grapevine/internal/transport"
)

// countingBook counts the state saves.
type countingBook struct {
	peerbook.Book
	saves atomic.Int64
}

func (b *countingBook) Save(st core.State) error {
	b.saves.Add(1)
	return b.Book.Save(st)
}

// A client that fails to dial many unreachable servers writes their
// history at most once a SaveInterval, not once per failed dial, and
// the history reaches the peer book within a SaveInterval and a tick.
// The bubble's fake clock makes the count of saves exact.
func TestHistorySavesCoalesced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := transport.NewMemNetwork()
		cli := testNode(t, "cli", nodedir.Config{Introducer: noIntroducer})
		book := &countingBook{Book: peerbook.NewMemory()}
		d, _ := run(t, Options{Dir: cli.Dir, Transport: memEndpoint(t, mem, cli.Key, ""), Book: book})

		var recs []announce.Signed
		var ids []announce.NodeID
		for i := range 200 {
			k := testKeyN(t, i)
			ids = append(ids, k.ID())
			recs = append(recs, announce.Sign(k, announce.Build(k, announce.Template{
				Service:  announce.Service{Name: "storage"},
				Locators: []string{"gv://" + string(k.ID()) + "@mem:" + strconv.Itoa(60000+i)}, // nothing listens
			}, 1)))
		}
		var startSaves int64
		var start time.Time
		var err error
		d.Query(context.Background(), func(*core.Node) {
			startSaves, start = book.saves.Load(), time.Now()
			_, err = d.stepEvents(core.Import{Recs: recs})
		})
		if err != nil {
			t.Fatal(err)
		}
		failed := 0
		eventually(t, d, "200 failed dials", func() (bool, string) {
			failed = 0
			d.Query(context.Background(), func(n *core.Node) {
				for _, id := range ids {
					if s, ok := n.Server(id); ok && s.Failures > 0 {
						failed++
					}
				}
			})
			return failed == len(ids), strconv.Itoa(failed)
		})
		allFailed := time.Now()
		stored := 0
		eventually(t, d, "the failures to reach the peer book", func() (bool, string) {
			st, err := book.Load()
			if err != nil {
				t.Fatal(err)
			}
			stored = 0
			for _, h := range st.Peers {
				if h.Failures > 0 {
					stored++
				}
			}
			return stored == len(ids), fmt.Sprintf("the peer book has failures for %d of %d servers", stored, len(ids))
		})
		if late := time.Since(allFailed); late > SaveInterval+200*time.Millisecond {
			t.Fatalf("the last history write came %v after the last failure, want at most %v", late, SaveInterval+200*time.Millisecond)
		}
		saves, took := book.saves.Load()-startSaves, time.Since(start)
		// One for the import, one per interval, and the tick that finds it due.
		if max := 2 + int64(took/SaveInterval) + 1; saves > max {
			t.Fatalf("%d saves for %d failed dials in %v; want at most %d", saves, failed, took.Round(time.Millisecond), max)
		}
		t.Logf("%d failed dials, %d saves in %v", failed, saves, took.Round(time.Millisecond))
	})
}

func testKeyN(t *testing.T, i int) announce.PrivateKey {
	t.Helper()
	seed := make([]byte, 32)
	seed[0], seed[1], seed[31] = byte(i), byte(i>>8), 0x5a
	k, err := announce.NewPrivateKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
