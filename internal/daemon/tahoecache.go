package daemon

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"grapevine/announce"
	"grapevine/internal/atomicfile"
)

// TahoeCachePath is where a Tahoe node keeps what an introducer told it:
// NODEDIR/private/introducer_PETNAME_cache.yaml, a YAML list of
// {ann: {...}, key_s: v0-...}. Tahoe loads it at start and rewrites it,
// whole, whenever an announcement arrives.
func TahoeCachePath(nodeDir, petname string) string {
	return filepath.Join(nodeDir, "private", "introducer_"+petname+"_cache.yaml")
}

// maxTahoeCache bounds the cache file read.
const maxTahoeCache = 16 << 20

// PruneTahoeCache drops the entries of a Tahoe introducer cache whose key
// keep refuses, leaving the others as they are. It returns the new file
// and the dropped keys; out is nil when nothing was dropped. An entry
// without a readable key_s is kept: it is Tahoe's, not ours to judge.
func PruneTahoeCache(data []byte, keep func(announce.NodeID) bool) (out []byte, dropped []string, err error) {
	if len(data) > maxTahoeCache {
		return nil, nil, fmt.Errorf("%d bytes, limit %d", len(data), maxTahoeCache)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, nil, err
	}
	if root.Kind == 0 {
		return nil, nil, nil // empty file
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.SequenceNode {
		return nil, nil, fmt.Errorf("not a YAML list")
	}
	seq := root.Content[0]
	kept := seq.Content[:0:0]
	for _, item := range seq.Content {
		key := ""
		if item.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(item.Content); j += 2 {
				if item.Content[j].Value == "key_s" && item.Content[j+1].Kind == yaml.ScalarNode {
					key = item.Content[j+1].Value
				}
			}
		}
		if id, err := announce.ParseNodeID(key); err == nil && !keep(id) {
			dropped = append(dropped, key)
			continue
		}
		kept = append(kept, item)
	}
	if len(dropped) == 0 {
		return nil, nil, nil
	}
	seq.Content = kept
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, nil, err
	}
	return b.Bytes(), dropped, nil
}

// pruneTahoeCacheFile applies PruneTahoeCache to the file at path,
// replacing it atomically. A missing file is nothing to do.
func pruneTahoeCacheFile(path string, keep func(announce.NodeID) bool) ([]string, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out, dropped, err := PruneTahoeCache(data, keep)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if out == nil {
		return nil, nil
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := atomicfile.WriteFile(path, out, mode); err != nil {
		return nil, err
	}
	return dropped, nil
}
