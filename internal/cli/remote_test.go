package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"grapevine/client/apitype"
	"grapevine/internal/daemon"
)

// hostile is a nickname (or any remote text) meant to act on the
// operator's terminal: clear the screen, return to the line's start,
// reverse the text that follows, hide a control in C1, and be 15 KB long.
var hostile = "evil\x1b[2J\rfake\u202eepyt\u0080\u009b31m\x7f\u2028x" + strings.Repeat("W", 15<<10) + "\xff"

func TestRemoteText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice"},
		{"", ""},
		{"a\x1b[2Jb", `a\x1b[2Jb`},
		{"a\rb\nc\td", `a\x0db\x0ac\x09d`},
		{"\u202eabc\u2066\u200b", `\u202eabc\u2066\u200b`},
		{"\u009b\u0085\x7f", `\x9b\x85\x7f`},
		{"ok\xffok", `ok\xffok`},
		{"\U000e0041", `\U000e0041`}, // a tag character
		{"café 日本", "café 日本"},
		{strings.Repeat("x", 64), strings.Repeat("x", 64)},
		{strings.Repeat("x", 65), strings.Repeat("x", 63) + "…"},
		{strings.Repeat("x", 60) + "\x1b\x1b", strings.Repeat("x", 60) + "…"},
	} {
		if got := remote(tc.in, cellRunes); got != tc.want {
			t.Errorf("remote(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := remote(hostile, cellRunes); utf8.RuneCountInString(got) != cellRunes || !strings.HasSuffix(got, "…") {
		t.Errorf("a 15 KB nickname becomes %d runes: %q", utf8.RuneCountInString(got), got)
	}
}

// inert fails if out holds anything a terminal would act on besides line
// ends, or a line longer than maxLine runes.
func inert(t *testing.T, what, out string, maxLine int) {
	t.Helper()
	for i, line := range strings.Split(out, "\n") {
		if !utf8.ValidString(line) {
			t.Errorf("%s line %d: invalid UTF-8: %q", what, i+1, line)
		}
		for _, r := range line {
			if unsafeRune(r) {
				t.Errorf("%s line %d: %U reaches the terminal: %q", what, i+1, r, line)
				break
			}
		}
		if n := utf8.RuneCountInString(line); n > maxLine {
			t.Errorf("%s line %d: %d runes", what, i+1, n)
		}
	}
}

// fakeNode serves answers as the node's status endpoint would and returns
// a node directory pointing at it.
func fakeNode(t *testing.T, answers map[string]any) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := answers[r.Method+" "+r.URL.Path]
		if !ok {
			http.Error(w, "refused: "+hostile, http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(a)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, daemon.RunDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, daemon.RunDir, daemon.StatusFile), []byte(srv.URL+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Every command that shows what other nodes said escapes it and cuts it
// short: a hostile nickname, service, error, locator or event fact.
func TestHostileRemoteText(t *testing.T) {
	now := time.Now()
	id := "v0-vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq"
	srv := apitype.ServerStatus{ID: id, Nickname: hostile, Services: []string{"storage", hostile}, LastError: hostile,
		Hosts: []string{hostile}, LastConnectedAgo: -1, LastAttemptAgo: 3, NextDialInS: 5, Tombstoned: hostile}
	ev := apitype.EventStatus{Kind: hostile, Peer: hostile, Service: hostile, Reason: hostile, Facts: map[string]string{hostile: hostile, "nickname": hostile}}
	dir := fakeNode(t, map[string]any{
		"GET /v1/servers": apitype.ServerList{Now: now, Known: 2, Servers: []apitype.ServerStatus{srv, {ID: id, Nickname: "plain", LastConnectedAgo: -1}}},
		"POST /v1/forget": apitype.ForgetResult{ID: id, Nickname: hostile, Forgotten: []apitype.ForgottenEntry{{Service: hostile, Reason: hostile}}},
		"GET /v1/servers/" + id: apitype.ServerHistory{Now: now, Server: srv, Locators: []string{"gv://" + id + "@" + hostile},
			Events: []apitype.EventStatus{ev}},
		"GET /v1/status": apitype.Status{ID: id, Nickname: hostile, Locators: []string{hostile}, Events: []apitype.EventStatus{ev}},
	})
	for _, tc := range []struct {
		args    []string
		maxLine int
	}{
		{[]string{"servers", dir}, 300},
		{[]string{"servers", "--json", dir}, 1 << 20},
		{[]string{"forget", dir, id}, 200},
		{[]string{"history", dir, id}, lineRunes + 100},
		{[]string{"status", dir}, lineRunes + 100},
		{[]string{"members", dir}, lineRunes + 100}, // refused with a hostile error
	} {
		var stdout, stderr bytes.Buffer
		Main(tc.args, strings.NewReader(""), &stdout, &stderr)
		what := strings.Join(tc.args[:len(tc.args)-1], " ")
		if stdout.Len()+stderr.Len() == 0 {
			t.Errorf("%s: no output", what)
		}
		inert(t, what+" (stdout)", stdout.String(), tc.maxLine)
		inert(t, what+" (stderr)", stderr.String(), tc.maxLine)
		if !strings.Contains(stdout.String()+stderr.String(), `\x1b[2J`) && !strings.Contains(stdout.String(), `\u001b[2J`) {
			t.Errorf("%s: the escape is not shown escaped:\n%s%s", what, stdout.String(), stderr.String())
		}
	}
	// The JSON stays the same value.
	var stdout bytes.Buffer
	Main([]string{"servers", "--json", dir}, strings.NewReader(""), &stdout, &bytes.Buffer{})
	var l apitype.ServerList
	if err := json.Unmarshal(stdout.Bytes(), &l); err != nil || len(l.Servers) != 2 || l.Servers[0].Nickname != strings.ToValidUTF8(hostile, "\ufffd") {
		t.Errorf("--json: %v; the nickname does not read back", err)
	}
}

// An error of several lines keeps its line breaks; each line is escaped.
func TestRemoteLines(t *testing.T) {
	if got, want := remoteLines("a.yaml:3: bad\na.yaml:6: \x1b[2J\n"), "a.yaml:3: bad\na.yaml:6: \\x1b[2J"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
