package tahoe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"grapevine/announce"
	"grapevine/internal/atomicfile"
)

// HintsFile is where a node directory keeps its imported hints.
const HintsFile = "tahoe-hints.yaml"

// MaxHints bounds the hints a node directory keeps.
const MaxHints = MaxEntries

// Hint is an unsigned server entry imported from a Tahoe file: a key and
// what the file claimed about reaching it. It is not trusted: it is never
// held as a record, dialled, passed on or exported to Tahoe. It is shown
// beside what the node learns from signed announcements.
type Hint struct {
	Key      announce.NodeID `yaml:"key_s" json:"key_s"`
	Ann      Ann             `yaml:"ann" json:"ann"`
	Seqnum   int64           `yaml:"seqnum,omitempty" json:"seqnum,omitempty"` // as claimed; unsigned
	From     Format          `yaml:"from" json:"from"`                         // the kind of file it came from
	Source   string          `yaml:"source" json:"source"`                     // that file
	Imported time.Time       `yaml:"imported" json:"imported"`
}

// HintState is what became of a hint once the node learnt signed
// announcements.
type HintState string

const (
	// Unverified: the node holds no signed storage announcement from the
	// hint's key.
	Unverified HintState = "unverified"
	// Verified: it holds one, and it names the hint's FURL and NURLs.
	Verified HintState = "verified"
	// Superseded: it holds one that names other endpoints; the signed
	// announcement is what counts.
	Superseded HintState = "superseded"
)

// Label is the hint's state in a few words: "unverified (from Tahoe
// cache)", "verified", "superseded".
func (h Hint) Label(s HintState) string {
	if s != Unverified {
		return string(s)
	}
	if h.From == FormatServers {
		return "unverified (from Tahoe servers.yaml)"
	}
	return "unverified (from Tahoe cache)"
}

// Describe says what the state means, for users.
func (s HintState) Describe() string {
	switch s {
	case Verified:
		return "a signed announcement from this key is held and names the same FURL/NURLs"
	case Superseded:
		return "a signed announcement from this key is held and names other FURL/NURLs; the signed one is used"
	}
	return "not trusted: unsigned; kept as a hint; will be accepted only when a signed announcement from this key arrives"
}

// Check compares h with the signed announcement the node holds from the
// same key (nil if none).
func (h Hint) Check(signed *Ann) HintState {
	switch {
	case signed == nil:
		return Unverified
	case h.Ann.SameEndpoints(*signed):
		return Verified
	}
	return Superseded
}

// HintsFromFile turns a parsed file's storage entries into hints, skipping
// the node's own key. source names the file.
func HintsFromFile(f *File, self announce.NodeID, source string, now time.Time) []Hint {
	var out []Hint
	for _, e := range f.Entries {
		if e.Service != Service || e.Key == self {
			continue
		}
		out = append(out, Hint{Key: e.Key, Ann: e.Ann, Seqnum: e.Seqnum, From: f.Format, Source: source, Imported: now.UTC().Truncate(time.Second)})
	}
	return out
}

// Merge adds hints to held: a new hint for a key already held replaces
// the old one (the later import wins; unsigned seqnums are not compared).
// The result is ordered by key.
func Merge(held, add []Hint) (merged []Hint, added, replaced int) {
	byKey := map[announce.NodeID]int{}
	merged = slices.Clone(held)
	for i, h := range merged {
		byKey[h.Key] = i
	}
	for _, h := range add {
		if i, ok := byKey[h.Key]; ok {
			merged[i] = h
			replaced++
			continue
		}
		byKey[h.Key] = len(merged)
		merged = append(merged, h)
		added++
	}
	slices.SortFunc(merged, func(a, b Hint) int { return strings.Compare(string(a.Key), string(b.Key)) })
	return merged, added, replaced
}

type hintsDoc struct {
	Hints []Hint `yaml:"hints"`
}

const hintsHeader = `# Servers imported from Tahoe-LAFS files by 'grapevine tahoe import'.
# NOT TRUSTED: Tahoe keeps announcements without their signatures, so these
# are hints only. Grapevine never holds, dials, passes on or exports them;
# it uses a server only once a signed announcement from its key arrives,
# from the server itself or by gossip. See docs/tahoe.md.
`

// ReadHints reads dir's hints; no file is no hints.
func ReadHints(dir string) ([]Hint, error) {
	path := filepath.Join(dir, HintsFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	return ParseHints(path, data)
}

// ParseHints decodes a hints file strictly: unknown fields, bad keys and
// unreachable hints are errors.
func ParseHints(path string, data []byte) (hints []Hint, err error) {
	defer func() {
		if r := recover(); r != nil {
			hints, err = nil, &Error{File: path, Msg: fmt.Sprintf("not YAML: %v", r)}
		}
	}()
	if len(data) > MaxFileSize {
		return nil, &Error{File: path, Msg: fmt.Sprintf("%d bytes, limit %d", len(data), MaxFileSize)}
	}
	var doc hintsDoc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		p := &parser{file: path}
		p.yamlError(err)
		return nil, p.errs[0]
	}
	if len(doc.Hints) > MaxHints {
		return nil, &Error{File: path, Msg: fmt.Sprintf("%d hints, limit %d", len(doc.Hints), MaxHints)}
	}
	seen := map[announce.NodeID]bool{}
	for i, h := range doc.Hints {
		if _, err := announce.ParseNodeID(string(h.Key)); err != nil {
			return nil, &Error{File: path, Msg: fmt.Sprintf("hint %d: key_s: %v", i+1, err)}
		}
		if seen[h.Key] {
			return nil, &Error{File: path, Msg: fmt.Sprintf("hint %d: %s listed twice", i+1, h.Key)}
		}
		seen[h.Key] = true
		if h.From != FormatCache && h.From != FormatServers {
			return nil, &Error{File: path, Msg: fmt.Sprintf("hint %d: from: %q, want %q or %q", i+1, h.From, FormatCache, FormatServers)}
		}
		if !h.Ann.Reachable() {
			return nil, &Error{File: path, Msg: fmt.Sprintf("hint %d: %s: neither %s nor %s", i+1, h.Key, FieldFURL, FieldNURLs)}
		}
	}
	return doc.Hints, nil
}

// WriteHints replaces dir's hints file atomically.
func WriteHints(dir string, hints []Hint) error {
	if len(hints) > MaxHints {
		return fmt.Errorf("%d hints, limit %d", len(hints), MaxHints)
	}
	var b bytes.Buffer
	b.WriteString(hintsHeader)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(hintsDoc{Hints: hints}); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, HintsFile), b.Bytes(), 0o644)
}
