package daemon

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"grapevine/internal/nodedir"
	"grapevine/internal/peerbook"
	"grapevine/internal/transport"
)

var pageOut = flag.String("page-out", "", "write the test status page to this file (to look at it)")

func fp(f float64) *float64 { return &f }

// testStatus is a node with one server of each connection state, a
// forgotten one, and a few events.
func testStatus() Status {
	now := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	at := func(ago time.Duration) *time.Time { t := now.Add(-ago); return &t }
	return Status{ID: "v0-nodenodenodenodenodenodenodenodenodenodenodenodenode", Nickname: "bob",
		Locators: []string{"gv://v0-node@127.0.0.1:7371"}, Now: now, Counter: 3, ElapsedS: 4000.25,
		Records: 4, Tombstones: 1, InFlight: 1, SyncRounds: 17, Known: 4, Connected: 1,
		Servers: []ServerStatus{
			{ID: "v0-aliceaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Nickname: "alice", Services: []string{"storage"}, Seqnum: 7,
				Connected: true, ConnectedSince: at(185 * time.Second), LastAttemptAgo: 190, LastAttempt: at(190 * time.Second),
				LastConnectedAgo: 185, LastConnected: at(185 * time.Second), LastReceivedAgo: 2.5, LastReceived: at(2500 * time.Millisecond),
				LastGoodAgo: 0, LastFreshAgo: 3700, Live: true, SRTTms: 1.23456, Uptime1d: fp(0.995), Uptime7d: fp(1), Uptime30d: nil},
			{ID: "v0-carolcccccccccccccccccccccccccccccccccccccccccccccc", Nickname: "carol", Services: []string{"storage"}, Seqnum: 2,
				Dialing: true, LastAttemptAgo: 0.2, LastConnectedAgo: -1, LastReceivedAgo: -1, LastFreshAgo: -1, Live: true},
			{ID: "v0-davedddddddddddddddddddddddddddddddddddddddddddddd", Nickname: "dave", Services: []string{"storage", "helper"}, Seqnum: 5,
				NextDialInS: 4.2, LastAttemptAgo: 3.9, LastAttempt: at(3900 * time.Millisecond), LastConnectedAgo: 7300, LastReceivedAgo: -1,
				LastFreshAgo: -1, Failures: 2, LastError: "dial tcp 127.0.0.1:1: connection refused", Uptime1d: fp(0.25)},
			{ID: "v0-eveeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", Nickname: `<script>alert("eve")</script>`, Services: []string{"storage"}, Seqnum: 1,
				LastAttemptAgo: -1, LastConnectedAgo: 200000, LastReceivedAgo: -1, LastFreshAgo: -1},
		},
		Forgotten: []ForgottenEntry{{ID: "v0-frankffffffffffffffffffffffffffffffffffffffffffff", Service: "storage", Seqnum: 9, Reason: "horizon",
			At: *at(90 * time.Minute), AgoS: 5400}},
		Events: []EventStatus{
			{Seq: 1, Wall: *at(time.Hour), AgoS: 3600, Kind: "accepted", Peer: "v0-aliceaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Service: "storage", Reason: "added"},
			{Seq: 2, Wall: *at(4 * time.Second), AgoS: 4, Kind: "dial-failed", Peer: "v0-davedddddddddddddddddddddddddddddddddddddddddddddd",
				Reason: "connection refused", Facts: map[string]string{"retry_in": "8s", "failures": "2"}},
		},
	}
}

func render(t *testing.T, st Status, events int) string {
	t.Helper()
	var b bytes.Buffer
	if err := renderPage(&b, st, events); err != nil {
		t.Fatal(err)
	}
	if *pageOut != "" {
		os.WriteFile(*pageOut, b.Bytes(), 0o644)
	}
	return b.String()
}

var (
	tagRE   = regexp.MustCompile(`<[^>]*>`)
	spaceRE = regexp.MustCompile(`\s+`)
)

// text is the visible text of an HTML fragment, spaces collapsed.
func text(h string) string {
	return strings.TrimSpace(spaceRE.ReplaceAllString(tagRE.ReplaceAllString(h, " "), " "))
}

// row returns the HTML of the server row of id.
func row(t *testing.T, page, id string) string {
	t.Helper()
	i := strings.Index(page, `<tr id="server-`+id+`"`)
	if i < 0 {
		t.Fatalf("no row for %s", id)
	}
	j := strings.Index(page[i:], "</tr>")
	return page[i : i+j]
}

// phrase returns the visible connection phrase of a row.
func phrase(t *testing.T, r string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<span class="phrase">(.*?)</span>`).FindStringSubmatch(r)
	if m == nil {
		t.Fatalf("no phrase in %s", r)
	}
	return strings.ReplaceAll(text(strings.ReplaceAll(m[1], "<", " <")), " )", ")")
}

func TestPageConnectionPhrases(t *testing.T) {
	st := testStatus()
	page := render(t, st, -1)
	for _, c := range []struct{ id, want string }{
		{st.Servers[0].ID, "Connected since 3 min ago"},
		{st.Servers[1].ID, "Trying to connect"},
		{st.Servers[2].ID, "Reconnecting in 5 s (last attempt 3 s ago)"},
		{st.Servers[3].ID, "Not connected (last connected 2 d ago)"},
	} {
		if got := phrase(t, row(t, page, c.id)); got != c.want {
			t.Errorf("%s: phrase %q, want %q", c.id[:8], got, c.want)
		}
	}
	alice := row(t, page, st.Servers[0].ID)
	for _, want := range []string{
		// the connection time: relative, with the absolute time on hover
		// and in <time datetime>
		`<time datetime="2026-03-14T15:06:21Z" title="2026-03-14 15:06:21 UTC">3 min ago</time>`,
		`data-seqnum="7">7<`, `data-srtt-ms="1.23456">1.2 ms<`, `data-uptime-1d="0.995">99.5 %<`,
		`data-uptime-7d="1">100.0 %<`, `data-uptime-30d="null">–<`, `data-services="[&#34;storage&#34;]"`,
		`data-live="true"`, `data-last-fresh-ago-s="3700"`, `fresh <time datetime="2026-03-14T14:07:46Z" title="2026-03-14 14:07:46 UTC">1 h ago</time>`,
		`data-last-received-ago-s="2.5"><time datetime="2026-03-14T15:09:23.5Z" title="2026-03-14 15:09:23 UTC">2 s ago</time>`,
		`title="v0-aliceaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"><code>aliceaaa</code>`,
	} {
		if !strings.Contains(alice, want) {
			t.Errorf("alice's row lacks %s:\n%s", want, alice)
		}
	}
	dave := row(t, page, st.Servers[2].ID)
	for _, want := range []string{"2 failed · last error: dial tcp 127.0.0.1:1: connection refused", `data-next-dial-in-s="4.2"`,
		`<time datetime="2026-03-14T15:09:30.2Z" title="2026-03-14 15:09:30 UTC">in 5 s</time>`, `data-uptime-1d="0.25">25.0 %<`, `storage, helper`} {
		if !strings.Contains(dave, want) {
			t.Errorf("dave's row lacks %s:\n%s", want, dave)
		}
	}
	for _, want := range []string{
		`Connected to 1 of 4 known servers</h1>`, `data-connected-servers="1" data-known-servers="4"`,
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`data-elapsed-s="4000.25"`, `>1 h</dd>`,
		// forgotten, with when and why
		`data-reason="horizon">horizon</td>`, `data-ago-s="5400"><time datetime="2026-03-14T13:39:26Z" title="2026-03-14 13:39:26 UTC">1 h ago</time>`,
		// a remote nickname is escaped
		`&lt;script&gt;alert(&#34;eve&#34;)&lt;/script&gt;`,
		`<small>failures=2 retry_in=8s</small>`,
		// events name known servers
		`dave <code title="v0-davedddddddddddddddddddddddddddddddddddddddddddddd">davedddd</code>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("page has a <script>")
	}
	// Events newest first.
	if i, j := strings.Index(page, `data-seq="2"`), strings.Index(page, `data-seq="1"`); i < 0 || j < 0 || i > j {
		t.Errorf("events not newest first: seq 2 at %d, seq 1 at %d", i, j)
	}
}

func TestPageEventLimit(t *testing.T) {
	st := testStatus()
	page := render(t, st, 1)
	if !strings.Contains(page, `data-seq="2"`) || strings.Contains(page, `data-seq="1"`) {
		t.Error("with a limit of 1 the page should show only the newest event")
	}
	if !strings.Contains(page, `the last 1 of 2 (<a href="?events=all">show all</a>)`) {
		t.Error("the page does not say that events were left out")
	}
	st.Servers, st.Forgotten, st.Events, st.Known, st.Connected = nil, nil, nil, 0, 0
	page = render(t, st, -1)
	for _, want := range []string{"Connected to 0 of 0 known servers", "No servers known yet.", "Nothing forgotten.", "No events yet."} {
		if !strings.Contains(page, want) {
			t.Errorf("empty page lacks %q", want)
		}
	}
}

func TestRelativeTimes(t *testing.T) {
	for _, c := range []struct {
		s         float64
		ago, in   string
		spanOfAgo string
	}{
		{0, "0 s ago", "in 0 s", "0 s"},
		{0.4, "0 s ago", "in 1 s", "0 s"},
		{4.2, "4 s ago", "in 5 s", "4 s"},
		{59.9, "59 s ago", "in 1 min", "59 s"},
		{60, "1 min ago", "in 1 min", "1 min"},
		{185, "3 min ago", "in 3 min", "3 min"},
		{3599, "59 min ago", "in 59 min", "59 min"},
		{3600, "1 h ago", "in 1 h", "1 h"},
		{47*3600 + 3599, "47 h ago", "in 47 h", "47 h"},
		{48 * 3600, "2 d ago", "in 2 d", "2 d"},
		{30 * 86400, "30 d ago", "in 30 d", "30 d"},
	} {
		if got := agoText(c.s); got != c.ago {
			t.Errorf("agoText(%v) = %q, want %q", c.s, got, c.ago)
		}
		if got := inText(c.s); got != c.in {
			t.Errorf("inText(%v) = %q, want %q", c.s, got, c.in)
		}
		if got := span(c.s); got != c.spanOfAgo {
			t.Errorf("span(%v) = %q, want %q", c.s, got, c.spanOfAgo)
		}
	}
	now := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	if w := whenAgo(now, -1, nil); w.OK || w.Text != "never" {
		t.Errorf("whenAgo(-1) = %+v, want never", w)
	}
	w := whenAgo(now, 90, nil)
	if w.Text != "1 min ago" || w.ISO != "2026-03-14T15:07:56Z" || w.Abs != "2026-03-14 15:07:56 UTC" {
		t.Errorf("whenAgo(90) = %+v", w)
	}
	// A wall time in the status wins over one derived from now.
	wall := now.Add(-100 * time.Second)
	if w := whenAgo(now, 90, &wall); w.ISO != "2026-03-14T15:07:46Z" || w.Text != "1 min ago" {
		t.Errorf("whenAgo(90, wall) = %+v", w)
	}
	if got, want := percent(fp(0.12345)), "12.3 %"; got != want {
		t.Errorf("percent = %q, want %q", got, want)
	}
	if got, want := millis(0), "–"; got != want {
		t.Errorf("millis(0) = %q, want %q", got, want)
	}
}

// GET / on a running daemon: the page, from the same status as the JSON.
func TestPageHandler(t *testing.T) {
	n := testNode(t, "solo", nodedir.Config{})
	d, _ := run(t, Options{Dir: n.Dir, Transport: transport.NewMemNetwork().Endpoint(n.Key), Book: peerbook.NewMemory()})
	get := func(path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.RemoteAddr = "127.0.0.1:5555"
		req.Host = "localhost"
		w := httptest.NewRecorder()
		d.handler().ServeHTTP(w, req)
		return w
	}
	w := get("/")
	body := w.Body.String()
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: %d %q\n%s", w.Code, w.Header().Get("Content-Type"), body)
	}
	if !strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("no restrictive CSP: %q", w.Header().Get("Content-Security-Policy"))
	}
	var st Status
	if err := json.Unmarshal(get("/v1/status").Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Connected to 0 of 0 known servers</h1>", `data-node-id="` + st.ID + `"`,
		`data-counter="` + rawJSON(st.Counter) + `"`, "<strong data-nickname=\"solo\">solo</strong>"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if w := get("/nothing-here"); w.Code != http.StatusNotFound {
		t.Errorf("GET /nothing-here: %d, want 404", w.Code)
	}
}
