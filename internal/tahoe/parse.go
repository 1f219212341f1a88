package tahoe

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"grapevine/announce"
)

// Bounds on what Parse reads. A Tahoe announcement is about 500 bytes, so
// the size bound holds thousands of servers.
const (
	MaxFileSize = 8 << 20
	MaxEntries  = 10000
	// MaxFieldSize bounds one string field (a nickname, a FURL).
	MaxFieldSize = 4096
	// MaxNURLs bounds anonymous-storage-NURLs.
	MaxNURLs = 64
)

// Format is which of Tahoe's files a File was.
type Format string

const (
	FormatCache   Format = "introducer cache" // introducer_*_cache.yaml
	FormatServers Format = "servers.yaml"     // static servers
)

// Entry is one server of a Tahoe file.
type Entry struct {
	Key announce.NodeID // key_s
	// Service is the entry's service-name; servers.yaml lists only
	// storage servers and has none, so it is Service there.
	Service string
	Ann     Ann
	// Seqnum is the seqnum the entry claims, if it has one. Unsigned, so
	// it proves nothing; it is shown, not compared.
	Seqnum    int64
	HasSeqnum bool
	Line      int
}

// File is a parsed Tahoe file.
type File struct {
	Name    string
	Format  Format
	Entries []Entry
}

// Parse reads an introducer cache or a servers.yaml; name is used in
// errors. It returns Errors listing every problem it found (and no File)
// if the file is not entirely well-formed.
func Parse(name string, data []byte) (f *File, err error) {
	p := &parser{file: name}
	defer func() {
		// The YAML library is not ours: a panic in it is a bad file.
		if r := recover(); r != nil {
			f, err = nil, Errors{{File: name, Msg: fmt.Sprintf("not YAML: %v", r)}}
		}
	}()
	f = p.parse(data)
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
		return nil, p.errs
	}
	return f, nil
}

type parser struct {
	file string
	errs Errors
}

func (p *parser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns yaml's "yaml: line N: msg" into an *Error with a line.
func (p *parser) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.errorf(line, "not YAML: %s", m[2])
		return
	}
	p.errorf(0, "not YAML: %s", msg)
}

const wantShape = "want a Tahoe introducer cache (a list of {ann, key_s}) or servers.yaml (storage: {KEY: {ann: ...}})"

func (p *parser) parse(data []byte) *File {
	if len(data) > MaxFileSize {
		p.errorf(0, "%d bytes, limit %d", len(data), MaxFileSize)
		return nil
	}
	if !utf8.Valid(data) {
		p.errorf(0, "not UTF-8 text")
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(0, "empty: %s", wantShape)
		} else {
			p.yamlError(err)
		}
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		p.errorf(next.Line, "a second YAML document: Tahoe's files hold one")
		return nil
	} else if !errors.Is(err, io.EOF) {
		p.yamlError(err)
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) != 1 {
			p.errorf(root.Line, "empty: %s", wantShape)
			return nil
		}
		root = root.Content[0]
	}
	f := &File{Name: p.file}
	switch root.Kind {
	case yaml.SequenceNode:
		f.Format = FormatCache
		p.cache(f, root)
	case yaml.MappingNode:
		f.Format = FormatServers
		p.servers(f, root)
	default:
		if root.ShortTag() == "!!null" {
			p.errorf(root.Line, "empty: %s", wantShape)
		} else {
			p.errorf(root.Line, "a %s: %s", kindName(root), wantShape)
		}
		return nil
	}
	p.checkDuplicates(f)
	return f
}

func (p *parser) cache(f *File, root *yaml.Node) {
	if len(root.Content) > MaxEntries {
		p.errorf(root.Line, "%d entries, limit %d", len(root.Content), MaxEntries)
		return
	}
	for i, item := range root.Content {
		where := fmt.Sprintf("entry %d", i+1)
		if item.Kind != yaml.MappingNode {
			p.errorf(item.Line, "%s: a %s, want a mapping with ann and key_s", where, kindName(item))
			continue
		}
		var annNode, keyNode *yaml.Node
		p.members(item, where, func(k string, kn, v *yaml.Node) {
			switch k {
			case "ann":
				annNode = v
			case "key_s":
				keyNode = v
			default:
				p.errorf(kn.Line, "%s: unknown key %q (a cache entry has ann and key_s)", where, k)
			}
		})
		if keyNode == nil {
			p.errorf(item.Line, "%s: no key_s", where)
			continue
		}
		if annNode == nil {
			p.errorf(item.Line, "%s: no ann", where)
			continue
		}
		e := Entry{Line: item.Line}
		var ok bool
		if e.Key, ok = p.key(keyNode, where+": key_s"); !ok {
			continue
		}
		if p.ann(&e, annNode, where+" ("+e.Key.Short()+")", true) {
			f.Entries = append(f.Entries, e)
		}
	}
}

func (p *parser) servers(f *File, root *yaml.Node) {
	var storage *yaml.Node
	p.members(root, "top level", func(k string, kn, v *yaml.Node) {
		if k == "storage" {
			storage = v
			return
		}
		p.errorf(kn.Line, "unknown key %q: servers.yaml has only storage", k)
	})
	if storage == nil {
		if len(p.errs) == 0 {
			p.errorf(root.Line, "no storage key: %s", wantShape)
		}
		return
	}
	if storage.ShortTag() == "!!null" {
		return // "storage:" with nothing under it: no servers
	}
	if storage.Kind != yaml.MappingNode {
		p.errorf(storage.Line, "storage: a %s, want a mapping from key_s to {ann: ...}", kindName(storage))
		return
	}
	if len(storage.Content)/2 > MaxEntries {
		p.errorf(storage.Line, "%d servers, limit %d", len(storage.Content)/2, MaxEntries)
		return
	}
	p.members(storage, "storage", func(k string, kn, v *yaml.Node) {
		e := Entry{Line: kn.Line, Service: Service}
		var ok bool
		if e.Key, ok = p.key(kn, "storage"); !ok {
			return
		}
		where := "storage." + e.Key.Short()
		if v.Kind != yaml.MappingNode {
			p.errorf(v.Line, "%s: a %s, want a mapping with ann", where, kindName(v))
			return
		}
		var annNode *yaml.Node
		p.members(v, where, func(k string, kn, v *yaml.Node) {
			switch k {
			case "ann":
				annNode = v
			case "connections":
				// Per-server connection handlers: not about who the
				// server is, and nothing Grapevine uses.
			default:
				p.errorf(kn.Line, "%s: unknown key %q (a server has ann and connections)", where, k)
			}
		})
		if annNode == nil {
			p.errorf(v.Line, "%s: no ann", where)
			return
		}
		if p.ann(&e, annNode, where, false) {
			f.Entries = append(f.Entries, e)
		}
	})
}

// members calls fn for each key of a mapping, refusing keys that are not
// strings and keys given twice.
func (p *parser) members(m *yaml.Node, where string, fn func(key string, keyNode, value *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		kn, v := m.Content[i], deref(m.Content[i+1])
		if kn.Kind != yaml.ScalarNode || kn.ShortTag() != "!!str" {
			p.errorf(kn.Line, "%s: a key that is not a string (%s)", where, kindName(kn))
			continue
		}
		if at, dup := seen[kn.Value]; dup {
			p.errorf(kn.Line, "%s: key %q given twice (also at line %d)", where, kn.Value, at)
			continue
		}
		seen[kn.Value] = kn.Line
		fn(kn.Value, kn, v)
	}
}

// deref follows one alias. Tahoe's safe_dump may write anchors for shared
// values; an alias inside what we read is looked at once, never expanded.
func deref(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func (p *parser) key(n *yaml.Node, where string) (announce.NodeID, bool) {
	s, ok := p.str(n, where)
	if !ok {
		return "", false
	}
	id, err := announce.ParseNodeID(s)
	if err != nil {
		p.errorf(n.Line, "%s: %s is not a server key: %v", where, Display(truncate(s)), err)
		return "", false
	}
	return id, true
}

func (p *parser) str(n *yaml.Node, where string) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		p.errorf(n.Line, "%s: a %s, want a string", where, kindName(n))
		return "", false
	}
	if len(n.Value) > MaxFieldSize {
		p.errorf(n.Line, "%s: %d bytes, limit %d", where, len(n.Value), MaxFieldSize)
		return "", false
	}
	return n.Value, true
}

func (p *parser) url(n *yaml.Node, where string) (string, bool) {
	s, ok := p.str(n, where)
	if !ok {
		return "", false
	}
	if !strings.HasPrefix(s, "pb://") || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		p.errorf(n.Line, "%s: %s is not a pb:// URL", where, Display(truncate(s)))
		return "", false
	}
	return s, true
}

// ann reads an announcement dict into e. Unknown fields are ignored, as
// Tahoe ignores them; known ones must have their type. A cache entry must
// name its service.
func (p *parser) ann(e *Entry, n *yaml.Node, where string, cache bool) bool {
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "%s: ann is a %s, want a mapping", where, kindName(n))
		return false
	}
	before := len(p.errs)
	p.members(n, where+": ann", func(k string, kn, v *yaml.Node) {
		field := where + ": " + k
		switch k {
		case FieldNickname:
			e.Ann.Nickname, _ = p.str(v, field)
		case FieldServiceName:
			e.Service, _ = p.str(v, field)
		case FieldFURL:
			e.Ann.FURL, _ = p.url(v, field)
		case FieldNURLs:
			if v.Kind != yaml.SequenceNode {
				p.errorf(v.Line, "%s: a %s, want a list of pb:// URLs", field, kindName(v))
				return
			}
			if len(v.Content) > MaxNURLs {
				p.errorf(v.Line, "%s: %d URLs, limit %d", field, len(v.Content), MaxNURLs)
				return
			}
			for i, it := range v.Content {
				if u, ok := p.url(it, fmt.Sprintf("%s[%d]", field, i)); ok {
					e.Ann.NURLs = append(e.Ann.NURLs, u)
				}
			}
		case FieldPermutationSeed:
			s, ok := p.str(v, field)
			if !ok {
				return
			}
			if _, err := announce.DecodeBase32(s); err != nil || s == "" {
				p.errorf(v.Line, "%s: %s is not base32", field, Display(truncate(s)))
				return
			}
			e.Ann.PermutationSeed = s
		case FieldSeqnum:
			v = deref(v)
			digits := v.Value != "" && strings.Trim(v.Value, "0123456789") == ""
			if v.Kind != yaml.ScalarNode || !(v.ShortTag() == "!!int" || v.ShortTag() == "!!float" && digits) {
				p.errorf(v.Line, "%s: a %s, want an integer", field, kindName(v))
				return
			}
			seq, err := strconv.ParseInt(strings.ReplaceAll(v.Value, "_", ""), 0, 64)
			if err != nil || seq < 0 {
				p.errorf(v.Line, "%s: %s is not a seqnum", field, Display(truncate(v.Value)))
				return
			}
			e.Seqnum, e.HasSeqnum = seq, true
		}
	})
	if len(p.errs) > before {
		return false
	}
	if cache && e.Service == "" {
		p.errorf(n.Line, "%s: no %s", where, FieldServiceName)
		return false
	}
	if e.Service == Service && !e.Ann.Reachable() {
		p.errorf(n.Line, "%s: neither %s nor %s: nothing says how to reach the server", where, FieldFURL, FieldNURLs)
		return false
	}
	return true
}

// checkDuplicates refuses a key listed twice for one service.
func (p *parser) checkDuplicates(f *File) {
	seen := map[string]int{}
	for _, e := range f.Entries {
		k := e.Service + " " + string(e.Key)
		if at, dup := seen[k]; dup {
			p.errorf(e.Line, "%s is listed twice for %s (also at line %d)", e.Key, e.Service, at)
			continue
		}
		seen[k] = e.Line
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	case yaml.AliasNode:
		return "alias"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return "string"
		case "!!int", "!!float":
			return "number"
		case "!!bool":
			return "boolean"
		case "!!null":
			return "null"
		}
		return "scalar " + n.ShortTag()
	}
	return "document"
}

func truncate(s string) string {
	if len(s) <= 64 {
		return s
	}
	i := 61
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}
