package tahoe

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"grapevine/announce"
	"grapevine/internal/testkit"
)

const (
	alphaKey = "v0-vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq"
	betaKey  = "v0-3w6vakoc4pwhygjat7wlkgsxixkpehcpceatv2kpii5zjhw4b57q"
)

func cacheFile(t testing.TB) (string, []byte) {
	t.Helper()
	path := testkit.Testdata(t, "tahoe", "introducer_default_cache.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, data
}

// The cache Tahoe wrote parses into its two storage servers, the
// non-ASCII nickname and the NURL list intact.
func TestParseTahoeCache(t *testing.T) {
	path, data := cacheFile(t)
	f, err := Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if f.Format != FormatCache || len(f.Entries) != 2 {
		t.Fatalf("format %q, %d entries; want the cache's 2", f.Format, len(f.Entries))
	}
	want := []Entry{
		{Key: alphaKey, Service: "storage", Seqnum: 2, HasSeqnum: true, Line: 1, Ann: Ann{
			Nickname:        "storage-alpha",
			FURL:            "pb://u33m4y7klhz3bypswqkozwetvabelhxt@tcp:192.0.2.11:51298/eiu2i7p6d6mm4ihmss7ieou5hac3wn6b",
			PermutationSeed: "vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq"}},
		{Key: betaKey, Service: "storage", Seqnum: 17, HasSeqnum: true, Line: 13, Ann: Ann{
			Nickname:        "sérveur-β",
			FURL:            "pb://onug64tu@tcp:198.51.100.7:4000/swissnumber",
			NURLs:           []string{"pb://onug64tu@tcp:198.51.100.7:4001/swissnumber#v=1"},
			PermutationSeed: "3w6vakoc4pwhygjat7wlkgsxixkpehcpceatv2kpii5zjhw4b57q"}},
	}
	if !reflect.DeepEqual(f.Entries, want) {
		t.Fatalf("entries\n got %+v\nwant %+v", f.Entries, want)
	}
}

// What the cache says about each server is what Tahoe signed: AnnOf on
// the verified vectors gives the cache's entries.
func TestAnnOfMatchesCache(t *testing.T) {
	path, data := cacheFile(t)
	f, err := Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]testkit.TahoeVector{}
	for _, v := range testkit.TahoeVectors(t) {
		byName[v.Name] = v
	}
	for i, name := range []string{"alpha-seq2", "beta-nurls-unicode"} {
		v := byName[name]
		a, err := announce.Verify(announce.Signed{Msg: v.Msg, Sig: v.Sig, Key: v.Key})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := AnnOf(a)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, f.Entries[i].Ann) {
			t.Errorf("%s: AnnOf %+v, cache %+v", name, got, f.Entries[i].Ann)
		}
		h := Hint{Key: f.Entries[i].Key, Ann: f.Entries[i].Ann}
		if s := h.Check(&got); s != Verified {
			t.Errorf("%s: hint state %q, want verified", name, s)
		}
	}
	// alpha-seq1 names an older FURL: the cache's hint is superseded by it.
	a, err := announce.Verify(announce.Signed{Msg: byName["alpha-seq1"].Msg, Sig: byName["alpha-seq1"].Sig, Key: alphaKey})
	if err != nil {
		t.Fatal(err)
	}
	old, _ := AnnOf(a)
	if s := (Hint{Ann: f.Entries[0].Ann}).Check(&old); s != Superseded {
		t.Errorf("hint against a record with another FURL: %q, want superseded", s)
	}
	if s := (Hint{Ann: f.Entries[0].Ann}).Check(nil); s != Unverified {
		t.Errorf("hint with no record: %q, want unverified", s)
	}
}

const serversYAML = `# Tahoe's static servers
storage:
  v0-vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq:
    ann:
      nickname: alpha
      anonymous-storage-FURL: pb://u33m@tcp:192.0.2.11:51298/swiss
  v0-3w6vakoc4pwhygjat7wlkgsxixkpehcpceatv2kpii5zjhw4b57q:
    ann:
      anonymous-storage-NURLs: ["pb://x@tcp:198.51.100.7:4001/s#v=1"]
      some-future-field: {ignored: true}
    connections:
      tcp: tor
`

func TestParseServersYAML(t *testing.T) {
	f, err := Parse("servers.yaml", []byte(serversYAML))
	if err != nil {
		t.Fatal(err)
	}
	if f.Format != FormatServers || len(f.Entries) != 2 {
		t.Fatalf("%+v", f)
	}
	if e := f.Entries[0]; e.Key != alphaKey || e.Service != Service || e.Ann.Nickname != "alpha" || e.Line != 3 || e.HasSeqnum {
		t.Errorf("first entry %+v", e)
	}
	if e := f.Entries[1]; e.Key != betaKey || len(e.Ann.NURLs) != 1 || e.Ann.FURL != "" {
		t.Errorf("second entry %+v", e)
	}
	for _, empty := range []string{"storage:\n", "storage: {}\n"} {
		f, err := Parse("s.yaml", []byte(empty))
		if err != nil || len(f.Entries) != 0 {
			t.Errorf("%q: %+v %v, want no servers", empty, f, err)
		}
	}
}

// Every malformed file is refused with the file and line of the problem,
// and nothing from it is returned.
func TestParseErrors(t *testing.T) {
	entry := func(key, ann string) string {
		return "- key_s: " + key + "\n  ann:\n" + ann
	}
	good := "    service-name: storage\n    anonymous-storage-FURL: pb://a@tcp:h:1/s\n"
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "f.yaml: empty: want a Tahoe introducer cache"},
		{"comment only", "# nothing\n", "f.yaml: empty"},
		{"scalar", "hello\n", "f.yaml:1: a string: want a Tahoe"},
		{"syntax", "- ann: {\n", "f.yaml:1: not YAML"},
		{"tabs", "storage:\n\tx: 1\n", "f.yaml:2: not YAML"},
		{"two documents", "[]\n---\n[]\n", "f.yaml:2: a second YAML document"},
		{"grapevine.yaml", "nickname: x\nlisten: 127.0.0.1:1\n", `f.yaml:1: unknown key "nickname": servers.yaml has only storage`},
		{"no storage", "{}\n", "f.yaml:1: no storage key"},
		{"storage list", "storage: []\n", "f.yaml:1: storage: a list, want a mapping"},
		{"entry not mapping", "- 3\n", "f.yaml:1: entry 1: a number, want a mapping"},
		{"no key", "- ann: {service-name: storage}\n", "f.yaml:1: entry 1: no key_s"},
		{"no ann", "- key_s: " + alphaKey + "\n", "f.yaml:1: entry 1: no ann"},
		{"unknown entry key", entry(alphaKey, good) + "  sig: v0-x\n", `f.yaml:5: entry 1: unknown key "sig"`},
		{"bad key", entry("v0-nothex", good), "f.yaml:1: entry 1: key_s: v0-nothex is not a server key"},
		{"numeric key", "- key_s: 12\n  ann: {}\n", "f.yaml:1: entry 1: key_s: a number, want a string"},
		{"ann list", "- key_s: " + alphaKey + "\n  ann: []\n", "f.yaml:2: entry 1 (vhhmjyjp): ann is a list"},
		{"no service", entry(alphaKey, "    anonymous-storage-FURL: pb://a@tcp:h:1/s\n"), "f.yaml:3: entry 1 (vhhmjyjp): no service-name"},
		{"unreachable", entry(alphaKey, "    service-name: storage\n    nickname: x\n"), "f.yaml:3: entry 1 (vhhmjyjp): neither anonymous-storage-FURL nor anonymous-storage-NURLs"},
		{"furl not url", entry(alphaKey, "    service-name: storage\n    anonymous-storage-FURL: http://x\n"), "f.yaml:4: entry 1 (vhhmjyjp): anonymous-storage-FURL: http://x is not a pb:// URL"},
		{"nickname number", entry(alphaKey, good+"    nickname: 12\n"), "f.yaml:5: entry 1 (vhhmjyjp): nickname: a number, want a string"},
		{"nurls string", entry(alphaKey, good+"    anonymous-storage-NURLs: pb://x\n"), "f.yaml:5: entry 1 (vhhmjyjp): anonymous-storage-NURLs: a string, want a list"},
		{"seqnum string", entry(alphaKey, good+"    seqnum: '2'\n"), "f.yaml:5: entry 1 (vhhmjyjp): seqnum: a string, want an integer"},
		{"seqnum huge", entry(alphaKey, good+"    seqnum: 99999999999999999999\n"), "seqnum: 99999999999999999999 is not a seqnum"},
		{"seed", entry(alphaKey, good+"    permutation-seed-base32: '!!'\n"), "permutation-seed-base32: !! is not base32"},
		{"repeated field", entry(alphaKey, good+"    nickname: a\n    nickname: b\n"), `f.yaml:6: entry 1 (vhhmjyjp): ann: key "nickname" given twice (also at line 5)`},
		{"duplicate server", entry(alphaKey, good) + entry(alphaKey, good), "f.yaml:5: " + alphaKey + " is listed twice for storage (also at line 1)"},
		{"servers no ann", "storage:\n  " + alphaKey + ": {}\n", "f.yaml:2: storage.vhhmjyjp: no ann"},
		{"servers bad key", "storage:\n  bob: {ann: {anonymous-storage-FURL: 'pb://x'}}\n", "f.yaml:2: storage: bob is not a server key"},
		{"not utf8", "- key_s: \xff\n", "f.yaml: not UTF-8"},
		{"too big", strings.Repeat("#", MaxFileSize+1), "bytes, limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("f.yaml", []byte(tc.in))
			if err == nil {
				t.Fatalf("parsed %+v, want an error", f)
			}
			if f != nil {
				t.Errorf("returned a file with the error")
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %T %v, want Errors", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// Every problem is listed, not only the first.
func TestParseListsEveryProblem(t *testing.T) {
	in := "- key_s: v0-a\n  ann: {}\n- 3\n- key_s: " + alphaKey + "\n  ann: {service-name: storage}\n"
	_, err := Parse("f.yaml", []byte(in))
	var es Errors
	if !errors.As(err, &es) || len(es) != 3 {
		t.Fatalf("%v: want 3 problems", err)
	}
	if es[0].Line != 1 || es[1].Line != 3 || es[2].Line != 5 {
		t.Fatalf("lines %d %d %d, want 1 3 5", es[0].Line, es[1].Line, es[2].Line)
	}
}

// A servers.yaml written by EncodeServers parses back to the same servers,
// also through yaml's generic decoder (the shape Tahoe's safe_load sees).
func TestEncodeServersRoundTrip(t *testing.T) {
	servers := []Server{
		{Key: betaKey, Ann: Ann{Nickname: "sérveur-β: \"quoted\"\n", FURL: "pb://b@tcp:h:2/s", NURLs: []string{"pb://b@tcp:h:3/s#v=1"}, PermutationSeed: "3w6vakoc4pwhygjat7wlkgsxixkpehcpceatv2kpii5zjhw4b57q"}},
		{Key: alphaKey, Ann: Ann{Nickname: "alpha", FURL: "pb://a@tcp:h:1/s"}},
	}
	out, err := EncodeServers(servers, []string{"written by a test", "line two\nwith a newline"}, []string{"the end"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "# written by a test\n# line two with a newline\nstorage:\n  "+betaKey+":\n    ann:\n      nickname: |\n") {
		t.Fatalf("output:\n%s", out)
	}
	f, err := Parse("servers.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(f.Entries) != 2 || f.Entries[1].Key != alphaKey || !reflect.DeepEqual(f.Entries[0].Ann, servers[0].Ann) {
		t.Fatalf("parsed back %+v\n%s", f.Entries, out)
	}
	var generic map[string]map[string]map[string]map[string]any
	if err := yaml.Unmarshal(out, &generic); err != nil {
		t.Fatal(err)
	}
	if generic["storage"][alphaKey]["ann"]["anonymous-storage-FURL"] != "pb://a@tcp:h:1/s" {
		t.Fatalf("generic decode: %v", generic)
	}
	again, _ := EncodeServers([]Server{servers[1], servers[0]}, []string{"written by a test", "line two\nwith a newline"}, []string{"the end"})
	if string(again) != string(out) {
		t.Fatal("output depends on the order of the servers")
	}
	empty, _ := EncodeServers(nil, nil, nil)
	if string(empty) != "storage: {}\n" {
		t.Fatalf("no servers: %q", empty)
	}
}

func TestHintsStore(t *testing.T) {
	dir := t.TempDir()
	if hs, err := ReadHints(dir); err != nil || hs != nil {
		t.Fatalf("no file: %v %v", hs, err)
	}
	path, data := cacheFile(t)
	f, err := Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	hints := HintsFromFile(f, betaKey, path, now) // beta is "this node": skipped
	if len(hints) != 1 || hints[0].Key != alphaKey || hints[0].From != FormatCache || hints[0].Seqnum != 2 {
		t.Fatalf("hints %+v", hints)
	}
	merged, added, replaced := Merge(nil, HintsFromFile(f, "", path, now))
	if added != 2 || replaced != 0 {
		t.Fatalf("added %d replaced %d", added, replaced)
	}
	if err := WriteHints(dir, merged); err != nil {
		t.Fatal(err)
	}
	back, err := ReadHints(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, merged) {
		t.Fatalf("read back\n%+v\nwant\n%+v", back, merged)
	}
	text, _ := os.ReadFile(filepath.Join(dir, HintsFile))
	if !strings.Contains(string(text), "NOT TRUSTED") {
		t.Fatalf("hints file has no warning:\n%s", text)
	}
	sf, err := Parse("servers.yaml", []byte(serversYAML))
	if err != nil {
		t.Fatal(err)
	}
	merged, added, replaced = Merge(back, HintsFromFile(sf, "", "servers.yaml", now.Add(time.Hour)))
	if added != 0 || replaced != 2 || len(merged) != 2 || merged[1].Ann.Nickname != "alpha" || merged[1].From != FormatServers {
		t.Fatalf("re-import: added %d replaced %d %+v", added, replaced, merged)
	}
	if l := merged[1].Label(Unverified); l != "unverified (from Tahoe servers.yaml)" {
		t.Errorf("label %q", l)
	}
	if l := back[0].Label(Unverified); l != "unverified (from Tahoe cache)" {
		t.Errorf("label %q", l)
	}

	for _, bad := range []string{
		"hints: [{key_s: v0-x, ann: {anonymous-storage-FURL: 'pb://x'}, from: servers.yaml}]",
		"hints: [{key_s: " + alphaKey + ", ann: {nickname: x}, from: servers.yaml}]",
		"hints: [{key_s: " + alphaKey + ", ann: {anonymous-storage-FURL: 'pb://x'}, from: elsewhere}]",
		"hints: [{key_s: " + alphaKey + ", ann: {anonymous-storage-FURL: 'pb://x'}, from: servers.yaml, extra: 1}]",
		"hints: {}",
	} {
		if hs, err := ParseHints("h.yaml", []byte(bad)); err == nil {
			t.Errorf("%s: parsed %+v, want an error", bad, hs)
		}
	}
}

func TestDisplay(t *testing.T) {
	for in, want := range map[string]string{
		"storage-alpha": "storage-alpha",
		"sérveur-β":     "sérveur-β",
		"":              `""`,
		"a\x1b[2Jb":     `"a\x1b[2Jb"`,
		"two\nlines":    `"two\nlines"`,
	} {
		if got := Display(in); got != want {
			t.Errorf("Display(%q) = %s, want %s", in, got, want)
		}
	}
}

// Parse never panics and never returns both a file and an error; what it
// accepts, EncodeServers writes and Parse reads back the same.
func FuzzParse(f *testing.F) {
	_, data := cacheFile(f)
	f.Add(data)
	f.Add([]byte(serversYAML))
	f.Add([]byte("- &a {key_s: " + alphaKey + ", ann: *a}\n"))
	f.Add([]byte("storage: {" + alphaKey + ": {ann: {anonymous-storage-FURL: &u 'pb://x', anonymous-storage-NURLs: [*u, *u]}}}\n"))
	f.Add([]byte("- [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.yaml", data)
		if (file == nil) == (err == nil) {
			t.Fatalf("file %v, err %v", file, err)
		}
		if err != nil {
			return
		}
		var servers []Server
		for _, e := range file.Entries {
			if e.Service == Service {
				servers = append(servers, Server{Key: e.Key, Ann: e.Ann})
			}
		}
		out, err := EncodeServers(servers, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse("again.yaml", out)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out)
		}
		if len(back.Entries) != len(servers) {
			t.Fatalf("%d servers written, %d read back", len(servers), len(back.Entries))
		}
	})
}
