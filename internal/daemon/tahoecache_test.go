package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"grapevine/announce"
)

const cacheYAML = `- ann:
    anonymous-storage-FURL: pb://u33m4y7klhz3bypswqkozwetvabelhxt@tcp:192.0.2.11:51298/eiu2i7p6d6mm4ihmss7ieou5hac3wn6b
    nickname: storage-alpha
    seqnum: 2
    service-name: storage
  key_s: v0-vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq
- ann:
    anonymous-storage-FURL: pb://onug64tu@tcp:198.51.100.7:4000/swissnumber
    nickname: "s\xE9rveur-\u03B2"
    seqnum: 17
    service-name: storage
  key_s: v0-3w6vakoc4pwhygjat7wlkgsxixkpehcpceatv2kpii5zjhw4b57q
- ann: {}
  key_s: not-a-key
`

// Pruning drops exactly the refused keys and leaves the rest as Tahoe's
// YAML loader reads them.
func TestPruneTahoeCache(t *testing.T) {
	gone := announce.NodeID("v0-vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq")
	out, dropped, err := PruneTahoeCache([]byte(cacheYAML), func(id announce.NodeID) bool { return id != gone })
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 1 || dropped[0] != string(gone) {
		t.Fatalf("dropped %v", dropped)
	}
	var got []map[string]any
	if err := yaml.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got) != 2 || got[0]["key_s"] != "v0-3w6vakoc4pwhygjat7wlkgsxixkpehcpceatv2kpii5zjhw4b57q" || got[1]["key_s"] != "not-a-key" {
		t.Fatalf("kept %v", got)
	}
	if nick := got[0]["ann"].(map[string]any)["nickname"]; nick != "sérveur-β" {
		t.Fatalf("nickname %q", nick)
	}
	if out, dropped, err := PruneTahoeCache([]byte(cacheYAML), func(announce.NodeID) bool { return true }); out != nil || dropped != nil || err != nil {
		t.Fatal("nothing to drop must leave the file alone")
	}
	for _, bad := range []string{"a: b\n", "[unclosed\n"} {
		if _, _, err := PruneTahoeCache([]byte(bad), func(announce.NodeID) bool { return false }); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(cacheYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	if d, err := pruneTahoeCacheFile(path, func(id announce.NodeID) bool { return id != gone }); err != nil || len(d) != 1 {
		t.Fatal(d, err)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), string(gone)) {
		t.Fatal("file still names the forgotten key")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}
