// Package testkit loads the shared test vectors for tests.
package testkit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// SharedDir returns ../shared relative to the repository root.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "cmd", "grapevine")); err == nil {
				return filepath.Join(dir, "..", "shared")
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root not found")
		}
		dir = parent
	}
}

// TahoeVector is one entry of shared/testdata/tahoe/announcements.json.
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
// signing code. It fails the test if there are none.
func TahoeVectors(t testing.TB) []TahoeVector {
	t.Helper()
	path := filepath.Join(SharedDir(t), "testdata", "tahoe", "announcements.json")
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
