package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestTahoeMove moves a grid from a Tahoe introducer to Grapevine as
// docs/tahoe.md says: node by node, both introducers side by side, then
// the old one removed. A file stored before still reads back, the seeds
// are the servers' own, and an upload places its shares where the
// introducer grid placed the same file.
func TestTahoeMove(t *testing.T) {
	if testing.Short() {
		t.Skip("real Tahoe processes; skipped with -short")
	}
	tahoeCommand(t)
	root := t.TempDir()

	// The grid as it was: a Tahoe introducer, four servers, a 1-of-2
	// client, so that the permuted order decides which two servers hold
	// a file.
	intro := newTahoeIntroducer(t, root, "introducer")
	intro.start()
	old := map[string]string{"default": intro.furl()}
	var servers []*tahoeNode
	for i := range 4 {
		servers = append(servers, newTahoeStorage(t, root, fmt.Sprintf("s%d", i), old))
	}
	client := newTahoeClient(t, root, "c0", old, 1, 2, 2)
	startTahoeNodes(t, append(slices.Clone(servers), client)...)
	var ids []string
	for _, s := range servers {
		ids = append(ids, s.nodeID())
	}
	client.waitConnected(t, ids, 60*time.Second)
	before, err := client.cachedAnnouncements("default")
	if err != nil || len(before) != 4 {
		t.Fatalf("introducer cache: %d entries, %v", len(before), err)
	}
	seeds := map[string]string{}
	for id, a := range before {
		seeds[id] = a.PermutationSeed
	}
	dataA := make([]byte, 100<<10)
	rand.Read(dataA)
	capA := client.put(t, dataA)
	// Where the introducer grid places a file: upload, note the holders,
	// delete the shares, upload again (the same bytes give the same
	// storage index): the same holders, or the comparison means nothing.
	dataB := make([]byte, 100<<10)
	rand.Read(dataB)
	capB := client.put(t, dataB)
	placed := holders(t, servers, capB)
	dropShares(t, servers, capB)
	if again := holders(t, servers, client.put(t, dataB)); !slices.Equal(again, placed) || len(placed) != 2 {
		t.Fatalf("the introducer grid placed one file on %v, then on %v", placed, again)
	}
	dropShares(t, servers, capB)

	// Step 1, node by node: a Grapevine node beside each, added as a
	// second introducer; the Tahoe node restarted.
	var pairs []*tahoePair
	boot := ""
	for _, n := range append(slices.Clone(servers), client) {
		p := &tahoePair{tahoe: n, gvDir: root + "/gv-" + n.name}
		p.setup(t, boot)
		p.gv = start(t, "gv-"+n.name, p.gvDir)
		if boot == "" {
			boot = p.gv.locator()
		}
		n.restart()
		pairs = append(pairs, p)
	}
	client.waitConnected(t, ids, 60*time.Second)
	waitFor(t, 30*time.Second, "the client to hear every server through Grapevine", func() (bool, string) {
		gvAnns, err := client.cachedAnnouncements("grapevine")
		if err != nil {
			return false, err.Error()
		}
		for id, seed := range seeds {
			a, ok := gvAnns[id]
			if !ok {
				return false, id + " not yet"
			}
			if a.PermutationSeed != seed {
				t.Fatalf("%s: Grapevine delivered seed %q, the introducer %q", id, a.PermutationSeed, seed)
			}
		}
		return true, ""
	})

	// Step 2: the old introducer goes; each node keeps only Grapevine.
	intro.stop()
	for _, p := range pairs {
		p.tahoe.setIntroducers(map[string]string{"grapevine": p.furl()})
	}
	for _, p := range pairs {
		p.tahoe.restart()
	}
	client.waitConnected(t, ids, 60*time.Second)
	if got := client.get(t, capA); !bytes.Equal(got, dataA) {
		t.Fatal("the file stored before the move reads back differently")
	}
	if got := holders(t, servers, client.put(t, dataB)); !slices.Equal(got, placed) {
		t.Fatalf("after the move the file went to %v; the introducer grid put it on %v", got, placed)
	}
	t.Logf("moved: the old file reads back; a new upload went to %v, as with the introducer", placed)
}

// dropShares deletes every share of cap's file from the servers.
func dropShares(t *testing.T, servers []*tahoeNode, cap string) {
	t.Helper()
	si, err := tahoeStorageIndex(cap)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		if err := os.RemoveAll(filepath.Join(s.storageDir(), "shares", si[:2], si)); err != nil {
			t.Fatal(err)
		}
	}
}

// holders lists the servers holding shares of cap, by ID.
func holders(t *testing.T, servers []*tahoeNode, cap string) []string {
	t.Helper()
	var out []string
	for _, s := range servers {
		if countShares(t, s, cap) > 0 {
			out = append(out, s.nodeID())
		}
	}
	slices.Sort(out)
	return out
}
