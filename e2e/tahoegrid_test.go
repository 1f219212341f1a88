package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"grapevine/internal/daemon"
)

// tahoePair is a Tahoe node and the Grapevine node beside it.
type tahoePair struct {
	tahoe *tahoeNode
	gv    *proc
	gvDir string
}

// besideTahoe runs tahoe setup for tn (creating root/gv-NAME with the
// short rules), starts the Grapevine node, then the Tahoe node.
func besideTahoe(t *testing.T, root string, tn *tahoeNode, boot string, extra ...string) *tahoePair {
	t.Helper()
	p := &tahoePair{tahoe: tn, gvDir: filepath.Join(root, "gv-"+tn.name)}
	p.setup(t, boot, extra...)
	p.gv = start(t, "gv-"+tn.name, p.gvDir)
	tn.start()
	return p
}

func (p *tahoePair) setup(t *testing.T, boot string, extra ...string) {
	t.Helper()
	args := []string{"tahoe", "setup", "--nickname", "gv-" + p.tahoe.name, "--listen", "127.0.0.1:0", "--status", "127.0.0.1:0"}
	if boot != "" {
		args = append(args, "--bootstrap", boot)
	}
	args = append(append(args, extra...), p.tahoe.dir, p.gvDir)
	if out, err := gv(t, args...); err != nil {
		t.Fatalf("tahoe setup %s: %v\n%s", p.tahoe.name, err, out)
	}
	appendRules(t, p.gvDir)
}

func (p *tahoePair) furl() string { return daemon.ReadIntroducerFURL(p.gvDir) }

// TestTahoeGrid: three Tahoe storage servers and two Tahoe clients, each
// beside its own Grapevine node, with no Tahoe introducer anywhere.
func TestTahoeGrid(t *testing.T) {
	if testing.Short() {
		t.Skip("real Tahoe processes; skipped with -short")
	}
	tahoeCommand(t)
	root := t.TempDir()

	var servers []*tahoePair
	s0 := newTahoeStorage(t, root, "s0", nil)
	servers = append(servers, besideTahoe(t, root, s0, ""))
	boot := servers[0].gv.locator()
	var mu sync.Mutex
	var wg sync.WaitGroup
	clients := make([]*tahoePair, 2)
	for i := range 2 {
		tn := newTahoeStorage(t, root, fmt.Sprintf("s%d", i+1), nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := besideTahoe(t, root, tn, boot)
			mu.Lock()
			servers = append(servers, p)
			mu.Unlock()
		}()
	}
	for i := range 2 {
		tn := newTahoeClient(t, root, fmt.Sprintf("c%d", i), nil, 2, 3, 3)
		wg.Add(1)
		go func() { defer wg.Done(); clients[i] = besideTahoe(t, root, tn, boot) }()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	slices.SortFunc(servers, func(a, b *tahoePair) int { return strings.Compare(a.tahoe.name, b.tahoe.name) })
	ids := func(ps []*tahoePair) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.tahoe.nodeID())
		}
		return out
	}
	for _, c := range clients {
		took := c.tahoe.waitConnected(t, ids(servers), 60*time.Second)
		t.Logf("%s connected to the 3 servers %v after start", c.tahoe.name, took.Round(time.Millisecond))
	}

	// One ID per server: what the clients hold is the server's own record,
	// with the seed from its permutation-seed file.
	for _, c := range clients {
		anns, err := c.tahoe.cachedAnnouncements("grapevine")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range servers {
			a, ok := anns[s.tahoe.nodeID()]
			if !ok {
				t.Fatalf("%s's cache lacks %s", c.tahoe.name, s.tahoe.name)
			}
			if a.PermutationSeed != s.tahoe.permutationSeed() {
				t.Fatalf("%s holds seed %q for %s, its file says %q", c.tahoe.name, a.PermutationSeed, s.tahoe.name, s.tahoe.permutationSeed())
			}
		}
		if ws, err := c.tahoe.servers(); err != nil || len(ws) != len(servers) {
			t.Fatalf("%s lists %d servers (%v), want %d", c.tahoe.name, len(ws), err, len(servers))
		}
	}

	// An immutable file: identical bytes, exactly one share per server.
	data := make([]byte, 200<<10)
	rand.Read(data)
	capA := clients[0].tahoe.put(t, data)
	if got := clients[1].tahoe.get(t, capA); !bytes.Equal(got, data) {
		t.Fatal("immutable file read back differs")
	}
	for _, s := range servers {
		if n := countShares(t, s.tahoe, capA); n != 1 {
			t.Fatalf("%s holds %d shares of the file, want 1", s.tahoe.name, n)
		}
	}
	// A file in a mutable directory.
	dir := clients[0].tahoe.mkdir(t)
	clients[0].tahoe.putInDir(t, dir, "notes.txt", []byte("grapevine\n"))
	if got := clients[1].tahoe.getFromDir(t, dir, "notes.txt"); string(got) != "grapevine\n" {
		t.Fatalf("mutable directory read back %q", got)
	}

	// A fourth server, started later, is connected by both running
	// clients without a restart.
	s3 := besideTahoe(t, root, newTahoeStorage(t, root, "s3", nil), boot)
	for _, c := range clients {
		took := c.tahoe.waitConnected(t, []string{s3.tahoe.nodeID()}, 60*time.Second)
		t.Logf("%s connected to the late server %v after it started", c.tahoe.name, took.Round(time.Millisecond))
	}
	servers = append(servers, s3)
	// happy 4 needs all four: a client restarted with it uploads.
	c1 := clients[1].tahoe
	c1.stop()
	c1.setConfig("client", "shares.happy", "4")
	c1.setConfig("client", "shares.total", "4")
	c1.start()
	c1.waitConnected(t, ids(servers), 60*time.Second)
	capB := c1.put(t, data[:50<<10])
	for _, s := range servers {
		if n := countShares(t, s.tahoe, capB); n != 1 {
			t.Fatalf("happy 4: %s holds %d shares, want 1", s.tahoe.name, n)
		}
	}

	// A SIGKILLed storage server: no longer passed on within W, forgotten
	// after H; a client restarted after that does not list it.
	dead := servers[2]
	deadID := dead.tahoe.nodeID()
	dead.tahoe.kill()
	killed := time.Now()
	gvs := []*proc{}
	for _, p := range append(slices.Clone(servers), clients...) {
		gvs = append(gvs, p.gv)
	}
	waitFor(t, W+5*time.Second, "every Grapevine node to stop passing on the killed server", func() (bool, string) {
		for _, g := range gvs {
			s, ok, err := g.server(deadID)
			if err != nil {
				return false, err.Error()
			}
			if ok && s.Live {
				return false, g.name + " still passes it on"
			}
		}
		return true, ""
	})
	t.Logf("killed server no longer passed on by any Grapevine node %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	waitFor(t, H+W+20*time.Second, "every Grapevine node to forget the killed server", func() (bool, string) {
		for _, g := range gvs {
			s, ok, err := g.server(deadID)
			if err != nil {
				return false, err.Error()
			}
			if ok && s.Tombstoned == "" {
				return false, g.name + " still holds it"
			}
		}
		return true, ""
	})
	t.Logf("killed server forgotten by every Grapevine node %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	c0 := clients[0]
	waitFor(t, 10*time.Second, "c0's introducer cache to drop the forgotten server", func() (bool, string) {
		anns, err := c0.tahoe.cachedAnnouncements("grapevine")
		if err != nil {
			return false, err.Error()
		}
		_, still := anns[deadID]
		return !still, "still cached"
	})
	c0.tahoe.restart()
	var live []string
	for _, s := range servers {
		if s != dead {
			live = append(live, s.tahoe.nodeID())
		}
	}
	c0.tahoe.waitConnected(t, live, 60*time.Second)
	if _, listed, err := c0.tahoe.server(deadID); err != nil || listed {
		t.Fatalf("restarted client lists the forgotten server (%v)", err)
	}
	// With its Grapevine node down, the restarted client falls back to the
	// cache: the forgotten server is not in it either.
	c0.gv.stop()
	c0.tahoe.restart()
	waitFor(t, 30*time.Second, "the client to load its cache", func() (bool, string) {
		ss, err := c0.tahoe.servers()
		return err == nil && len(ss) == len(live), fmt.Sprint(len(ss), " servers ", err)
	})
	if _, listed, _ := c0.tahoe.server(deadID); listed {
		t.Fatal("the cache brought the forgotten server back")
	}
	if _, err := os.Stat(daemon.TahoeCachePath(c0.tahoe.dir, "grapevine")); err != nil {
		t.Fatal(err)
	}
}
