package e2e

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"grapevine/announce"
	"grapevine/internal/tahoe"
	"grapevine/internal/testkit"
)

// TestTahoeRoundTrip: a Tahoe client's introducer cache is imported into
// a Grapevine client as unsigned hints; the servers it names run
// Grapevine with their Tahoe keys, and the client learns their signed
// records from them; tahoe export then writes a servers.yaml that
// Tahoe's own YAML loader reads back as exactly the running servers, the
// cache's entries among them. --watch drops a server that leaves.
func TestTahoeRoundTrip(t *testing.T) {
	root := t.TempDir()
	cachePath := testkit.Testdata(t, "tahoe", "introducer_default_cache.yaml")
	data, err := os.ReadFile(cachePath)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := tahoe.Parse(cachePath, data)
	if err != nil || len(cache.Entries) != 2 {
		t.Fatalf("the shared cache: %v", err)
	}
	keys := map[announce.NodeID]testkit.TahoeVector{}
	for _, v := range testkit.TahoeVectors(t) {
		if v.Privkey != "" {
			keys[announce.NodeID(v.Key)] = v
		}
	}

	relay := start(t, "relay", create(t, root, "relay", "--relay"))
	boot := relay.locator()

	// The cache's servers, running Grapevine with their Tahoe keys and the
	// FURLs and NURLs the cache has for them.
	want := map[string]tahoe.Ann{}
	servers := map[string]*proc{}
	for i, e := range cache.Entries {
		name := fmt.Sprintf("tahoe%d", i)
		args := []string{"--nickname", e.Ann.Nickname}
		for _, u := range append([]string{e.Ann.FURL}, e.Ann.NURLs...) {
			args = append(args, "--service", "storage="+u)
		}
		dir := create(t, root, name, args...)
		v, ok := keys[e.Key]
		if !ok {
			t.Fatalf("no Tahoe key for %s", e.Key)
		}
		writeKey(t, dir, v)
		servers[name] = start(t, name, dir, boot)
		if id := servers[name].id(); id != string(e.Key) {
			t.Fatalf("%s runs as %s, want the cache's %s", name, id, e.Key)
		}
		// Grapevine announces Tahoe's seed for the key (the cache's are
		// hand-built).
		a := e.Ann
		pub, _ := e.Key.PublicKey()
		a.PermutationSeed = announce.TahoePermutationSeed(pub)
		want[string(e.Key)] = a
	}
	// And one server the cache does not know.
	gamma := start(t, "gamma", create(t, root, "gamma", "--service", "storage=pb://gamma@tcp:127.0.0.1:9/swiss"), boot)
	gammaKey, _ := announce.ParsePublicKeyFile(readFile(t, filepath.Join(gamma.dir, "node.pubkey")))
	gammaPub, _ := gammaKey.PublicKey()
	want[gamma.id()] = tahoe.Ann{Nickname: "gamma", FURL: "pb://gamma@tcp:127.0.0.1:9/swiss", PermutationSeed: announce.TahoePermutationSeed(gammaPub)}

	// The client imports the cache, and a servers.yaml naming a server
	// nobody runs, before it runs: hints only.
	clientDir := create(t, root, "client")
	out, err := gv(t, "tahoe", "import", clientDir, cachePath)
	if err != nil || strings.Count(out, "unverified (from Tahoe cache): not trusted: unsigned; kept as a hint; will be accepted only when a signed announcement from this key arrives") != 2 {
		t.Fatalf("tahoe import: %v\n%s", err, out)
	}
	ghostPub, _, _ := ed25519.GenerateKey(nil)
	ghost := string(announce.IDOf(ghostPub))
	ghostFile := filepath.Join(root, "servers.yaml")
	writeFile(t, ghostFile, "storage:\n  "+ghost+":\n    ann: {nickname: ghost, anonymous-storage-FURL: 'pb://ghost@tcp:192.0.2.1:1/x'}\n")
	if out, err := gv(t, "tahoe", "import", clientDir, ghostFile); err != nil {
		t.Fatalf("tahoe import servers.yaml: %v\n%s", err, out)
	}
	client := start(t, "client", clientDir, boot)
	waitFor(t, 30*time.Second, "the client to learn every server", func() (bool, string) {
		for id := range want {
			s, ok, err := client.server(id)
			if err != nil || !ok || !s.Live || !s.Connected || len(s.Services) != 1 {
				return false, fmt.Sprintf("%s: %+v %v", id, s, err)
			}
		}
		return true, ""
	})
	if s, ok, _ := client.server(ghost); ok {
		t.Fatalf("the client knows the ghost from a hint: %+v", s)
	}

	// The hints the signed records confirm are verified; the ghost's not.
	view, err := client.api().TahoeServers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]tahoe.HintState{}
	for _, h := range view.Hints {
		states[string(h.Key)] = h.State
	}
	if len(states) != 3 || states[string(cache.Entries[0].Key)] != tahoe.Verified || states[string(cache.Entries[1].Key)] != tahoe.Verified || states[ghost] != tahoe.Unverified {
		t.Fatalf("hint states %v", states)
	}
	if out, err := gv(t, "tahoe", "import", clientDir, cachePath); err != nil || strings.Count(out, "    verified: a signed announcement from this key is held") != 2 {
		t.Fatalf("tahoe import into the running client: %v\n%s", err, out)
	}

	// Export, and read the file as Tahoe does.
	serversYAML := filepath.Join(root, "tahoe-client", "private", "servers.yaml")
	os.MkdirAll(filepath.Dir(serversYAML), 0o700)
	out, err = gv(t, "tahoe", "export", "--out", serversYAML, clientDir)
	if err != nil || !strings.Contains(out, "wrote 3 live storage servers to "+serversYAML) ||
		!strings.Contains(out, "not written, unverified (from Tahoe servers.yaml): "+ghost+" ghost") {
		t.Fatalf("tahoe export: %v\n%s", err, out)
	}
	written, _ := os.ReadFile(serversYAML)
	t.Logf("servers.yaml:\n%s", written)
	if got := readServersYAML(t, serversYAML); !reflect.DeepEqual(got, want) {
		t.Fatalf("servers.yaml holds\n%+v\nwant the running servers\n%+v", got, want)
	}
	for _, e := range cache.Entries {
		got, cached := want[string(e.Key)], e.Ann
		got.PermutationSeed, cached.PermutationSeed = "", ""
		if !reflect.DeepEqual(got, cached) {
			t.Fatalf("%s: exported %+v, the cache had %+v", e.Key, want[string(e.Key)], e.Ann)
		}
	}
	if got := tahoeLoad(t, serversYAML); got != nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("Python's yaml.safe_load reads\n%+v\nwant\n%+v", got, want)
	}

	// --watch: a server killed is dropped once it is no longer live.
	watched := filepath.Join(root, "watched.yaml")
	wlog := filepath.Join(root, "watch.log")
	logf, err := os.Create(wlog)
	if err != nil {
		t.Fatal(err)
	}
	w := exec.Command(bin, "tahoe", "export", "--watch", "--interval", "300ms", "--out", watched, clientDir)
	w.Stderr = logf
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	t.Cleanup(func() {
		if w.ProcessState == nil {
			w.Process.Kill()
			w.Wait()
		}
	})
	waitFor(t, 10*time.Second, "the watched file to list 3 servers", func() (bool, string) {
		n, err := countServers(watched)
		return n == 3, fmt.Sprint(n, err)
	})
	gammaID := gamma.id()
	gamma.kill()
	killed := time.Now()
	waitFor(t, W+10*time.Second, "the watched file to drop gamma", func() (bool, string) {
		n, err := countServers(watched)
		return n == 2, fmt.Sprint(n, err)
	})
	t.Logf("gamma left the watched servers.yaml %v after the kill (W = %v)", time.Since(killed).Round(100*time.Millisecond), W)
	if b, _ := os.ReadFile(watched); strings.Contains(string(b), gammaID) {
		t.Fatalf("gamma still in %s:\n%s", watched, b)
	}
	w.Process.Signal(syscall.SIGTERM)
	if err := w.Wait(); err != nil {
		t.Fatalf("watch after SIGTERM: %v", err)
	}
	if b, _ := os.ReadFile(wlog); !strings.Contains(string(b), "wrote 2 live storage servers to "+watched+": -gamma") {
		t.Fatalf("watch log:\n%s", b)
	}
}

func writeKey(t *testing.T, dir string, v testkit.TahoeVector) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "private", "node.privkey"), v.Privkey+"\n")
	writeFile(t, filepath.Join(dir, "node.pubkey"), v.Pubkey+"\n")
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readServersYAML reads a servers.yaml with a generic YAML decoder, the
// way Tahoe does: storage -> key_s -> ann -> fields.
func readServersYAML(t *testing.T, path string) map[string]tahoe.Ann {
	t.Helper()
	var doc struct {
		Storage map[string]struct {
			Ann map[string]any `yaml:"ann"`
		} `yaml:"storage"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, path)), &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]tahoe.Ann{}
	for key, s := range doc.Storage {
		a := tahoe.Ann{}
		a.Nickname, _ = s.Ann["nickname"].(string)
		a.FURL, _ = s.Ann["anonymous-storage-FURL"].(string)
		a.PermutationSeed, _ = s.Ann["permutation-seed-base32"].(string)
		if l, ok := s.Ann["anonymous-storage-NURLs"].([]any); ok {
			for _, u := range l {
				a.NURLs = append(a.NURLs, u.(string))
			}
		}
		out[key] = a
	}
	return out
}

// tahoeLoad reads servers.yaml with Python's yaml.safe_load and the
// lookups Tahoe's storage client makes (nil if Python or PyYAML is
// missing).
func tahoeLoad(t *testing.T, path string) map[string]tahoe.Ann {
	t.Helper()
	const script = `
import json, sys, yaml
with open(sys.argv[1], "rb") as f:
    servers = (yaml.safe_load(f) or {}).get("storage", {})
out = {}
for server_id, server in servers.items():
    ann = server["ann"]
    assert server_id.startswith("v0-"), server_id
    out[server_id] = {
        "nickname": ann.get("nickname", ""),
        "furl": ann.get("anonymous-storage-FURL", ""),
        "nurls": list(ann.get("anonymous-storage-NURLs", [])),
        "seed": ann.get("permutation-seed-base32", ""),
    }
json.dump(out, sys.stdout)
`
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Log("no python3: servers.yaml not read with PyYAML")
		return nil
	}
	if exec.Command(py, "-c", "import yaml").Run() != nil {
		t.Log("no PyYAML: servers.yaml not read with it")
		return nil
	}
	b, err := exec.Command(py, "-c", script, path).Output()
	if err != nil {
		t.Fatalf("python3 reading %s: %v", path, err)
	}
	var raw map[string]struct {
		Nickname, FURL, Seed string
		NURLs                []string
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]tahoe.Ann{}
	for k, v := range raw {
		a := tahoe.Ann{Nickname: v.Nickname, FURL: v.FURL, PermutationSeed: v.Seed}
		if len(v.NURLs) > 0 {
			a.NURLs = v.NURLs
		}
		out[k] = a
	}
	return out
}

// countServers counts the key_s lines of a servers.yaml; -1 if it is
// missing.
func countServers(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return -1, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "  v0-") {
			n++
		}
	}
	return n, sc.Err()
}
