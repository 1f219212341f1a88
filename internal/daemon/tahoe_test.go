package daemon

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"grapevine/announce"
	"grapevine/internal/nodedir"
	"grapevine/internal/peerbook"
	"grapevine/internal/tahoe"
	"grapevine/internal/testkit"
	"grapevine/internal/transport"
)

// A client with the Tahoe cache's hints learns the signed record of a
// server running with a cached key: its hint turns verified, the other
// stays unverified, and the view carries the signed record to export.
func TestTahoeView(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seed []byte
		for _, v := range testkit.TahoeVectors(t) {
			if v.Name == "alpha-seq2" {
				seed, _ = hex.DecodeString(v.SeedHex)
			}
		}
		const furl = "pb://u33m4y7klhz3bypswqkozwetvabelhxt@tcp:192.0.2.11:51298/eiu2i7p6d6mm4ihmss7ieou5hac3wn6b"
		srv, err := nodedir.Create(filepath.Join(t.TempDir(), "alpha"), nodedir.Options{Rand: bytes.NewReader(seed), Config: nodedir.Config{
			Nickname: "storage-alpha", Listen: "127.0.0.1:0", Rules: nodedir.Rules{Preset: "test"}, Introducer: noIntroducer,
			Services: []nodedir.ServiceConfig{{Name: "storage", FURL: furl}}}})
		if err != nil {
			t.Fatal(err)
		}
		if srv.ID() != "v0-vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq" {
			t.Fatalf("server key %s, want the vector's", srv.ID())
		}
		net := transport.NewMemNetwork()
		sd, _ := run(t, Options{Dir: srv.Dir, Transport: memEndpoint(t, net, srv.Key, "mem:1"), Book: peerbook.NewMemory()})

		cli := testNode(t, "cli", nodedir.Config{Introducer: noIntroducer})
		cache := testkit.Testdata(t, "tahoe", "introducer_default_cache.yaml")
		f, err := tahoe.Parse(cache, tahoeReadFile(t, cache))
		if err != nil {
			t.Fatal(err)
		}
		hints, _, _ := tahoe.Merge(nil, tahoe.HintsFromFile(f, cli.ID(), cache, time.Now()))
		if err := tahoe.WriteHints(cli.Dir, hints); err != nil {
			t.Fatal(err)
		}
		cd, _ := run(t, Options{Dir: cli.Dir, Transport: memEndpoint(t, net, cli.Key, ""), Book: peerbook.NewMemory(), Bootstrap: sd.Locators()})

		var v TahoeView
		eventually(t, cd, "the client to hold the server's live record", func() (bool, string) {
			var ok bool
			v, ok = cd.Tahoe(context.Background())
			if !ok {
				t.Fatal("daemon stopped")
			}
			return len(v.Servers) == 1 && v.Servers[0].Live, fmt.Sprintf("%+v", v)
		})
		a, err := announce.Verify(v.Servers[0].Record)
		if err != nil || string(a.ID) != v.Servers[0].ID || v.ID != string(cli.ID()) {
			t.Fatalf("record %v %+v", err, v.Servers[0])
		}
		if ann, err := tahoe.AnnOf(a); err != nil || ann.FURL != furl || ann.Nickname != "storage-alpha" {
			t.Fatalf("ann %+v %v", ann, err)
		}
		states := map[announce.NodeID]tahoe.HintState{}
		for _, h := range v.Hints {
			states[h.Key] = h.State
		}
		if states[srv.ID()] != tahoe.Verified || states["v0-3w6vakoc4pwhygjat7wlkgsxixkpehcpceatv2kpii5zjhw4b57q"] != tahoe.Unverified || v.HintsError != "" {
			t.Fatalf("hints %+v (%s)", v.Hints, v.HintsError)
		}

		// The server's own view lists itself.
		sv, _ := sd.Tahoe(context.Background())
		if len(sv.Servers) != 1 || !sv.Servers[0].Self || len(sv.Hints) != 0 {
			t.Fatalf("server's view %+v", sv)
		}
	})
}

func tahoeReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
