// Package testkit loads the repository's test vectors (testdata/ at the
// repository root) for tests.
package testkit

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Root returns the repository root: the nearest directory at or above the
// working directory whose go.mod declares the module grapevine.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if mod, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && isGrapevineModule(mod) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root (go.mod of module grapevine) not found above the working directory")
		}
		dir = parent
	}
}

func isGrapevineModule(mod []byte) bool {
	for line := range bytes.Lines(mod) {
		if f := bytes.Fields(line); len(f) == 2 && string(f[0]) == "module" && string(f[1]) == "grapevine" {
			return true
		}
	}
	return false
}

// Testdata returns the path of elem under the repository's testdata
// directory, e.g. Testdata(t, "tahoe", "introducer_default_cache.yaml").
// It fails the test if the file does not exist.
func Testdata(t testing.TB, elem ...string) string {
	t.Helper()
	path := filepath.Join(append([]string{Root(t), "testdata"}, elem...)...)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("test data: %v", err)
	}
	return path
}

// TahoeVector is one entry of testdata/tahoe/announcements.json.
type TahoeVector struct {
	Name    string          `json:"name"`
	Note    string          `json:"note"`
	Privkey string          `json:"node.privkey"`
	Pubkey  string          `json:"node.pubkey"`
	SeedHex string          `json:"raw_seed_hex"`
	AnnDict json.RawMessage `json:"ann_dict"`
	Msg     string          `json:"msg"`
	MsgHex  string          `json:"msg_hex"`
	Sig     string          `json:"sig"`
	Key     string          `json:"key"`
	Verify  string          `json:"verify"`
}

// TahoeVectors loads the announcement vectors produced by Tahoe-LAFS's own
// signing code (see testdata/tahoe/README.md: their permutation seeds are
// hand-built). It fails the test if there are none.
func TahoeVectors(t testing.TB) []TahoeVector {
	t.Helper()
	path := Testdata(t, "tahoe", "announcements.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading Tahoe vectors: %v", err)
	}
	var f struct {
		Vectors []TahoeVector `json:"vectors"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(f.Vectors) == 0 {
		t.Fatalf("%s: no vectors found", path)
	}
	return f.Vectors
}

// DirNames lists the names in dir, sorted.
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}
