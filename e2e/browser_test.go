package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"grapevine/client/apitype"
)

// TestStatusPageInBrowser runs two real nodes, opens the status page of
// one in headless Chromium, and checks the DOM the browser built against
// /v1/status fetched just before and just after: the heading, the peer's
// row, and every raw value in the data-* attributes. It also takes a
// phone-size and a desktop screenshot, written to $GRAPEVINE_SCREENSHOTS
// (a temporary directory if unset).
//
// Without Chromium the test is skipped, unless CI or
// GRAPEVINE_REQUIRE_BROWSER is set, when it fails. GRAPEVINE_CHROMIUM
// names the browser binary if it is not on PATH as chromium.
func TestStatusPageInBrowser(t *testing.T) {
	chrome := findBrowser(t)
	shots := os.Getenv("GRAPEVINE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	alice := start(t, "alice", createWithStatus(t, root, "alice", "--service", "storage=pb://alice@tcp:127.0.0.1:9000/swiss"))
	bob := start(t, "bob", createWithStatus(t, root, "bob", "--bootstrap", alice.locator()))
	aliceID, bobID := alice.id(), bob.id()
	waitFor(t, 30*time.Second, "bob to connect to alice and learn her record", func() (bool, string) {
		s, ok, err := bob.server(aliceID)
		return err == nil && ok && s.Connected && s.Live && len(s.Services) == 1 && s.SRTTms > 0, fmt.Sprintf("%+v %v", s, err)
	})

	// Bob's page: connected to alice, its only server.
	before, page, after := snapshot(t, chrome, bob)
	h1 := page.byID("summary")
	if h1 == nil || h1.text() != "Connected to 1 of 1 known servers" {
		t.Fatalf("heading %q, want %q", h1.text(), "Connected to 1 of 1 known servers")
	}
	checkSummary(t, page, before, after)
	row := checkRow(t, page, aliceID, before, after)
	if got := row.find("class", "nick").text(); got != "alice" {
		t.Errorf("alice's row names %q", got)
	}
	if got := row.find("class", "phrase").text(); !regexp.MustCompile(`^Connected since \d+ (s|min) ago$`).MatchString(got) {
		t.Errorf("alice's connection: %q, want Connected since N s ago", got)
	}
	checkEvents(t, page, before, after)
	if page.byID("forgotten").find("class", "tombstone") != nil || !strings.Contains(page.byID("forgotten").text(), "Nothing forgotten.") {
		t.Errorf("forgotten section: %q", page.byID("forgotten").text())
	}

	// Alice's page: bob is a peer with no records, so not a known server.
	_, apage, _ := snapshot(t, chrome, alice)
	if got := apage.byID("summary").text(); got != "Connected to 0 of 0 known servers" {
		t.Errorf("alice's heading %q", got)
	}
	if r := apage.find("data-id", bobID); r == nil || !strings.Contains(r.text(), "none held") {
		t.Errorf("alice's page has no row for bob with no services")
	}

	// A server bob learns of but cannot reach: carol never runs. Alice
	// gets her record by import; bob learns it from alice and fails to
	// dial her.
	carol := createWithStatus(t, root, "carol", "--location", "127.0.0.1:1", "--service", "storage=pb://carol@tcp:127.0.0.1:9001/swiss")
	out, err := exec.Command(bin, "node", "show", "--json", carol).Output()
	if err != nil {
		t.Fatal(err)
	}
	var shown struct {
		ID   string            `json:"id"`
		Anns []json.RawMessage `json:"announcements"`
	}
	if err := json.Unmarshal(out, &shown); err != nil || shown.ID == "" || len(shown.Anns) == 0 {
		t.Fatalf("node show --json: %v\n%s", err, out)
	}
	annFile := filepath.Join(root, "carol.json")
	anns, _ := json.Marshal(shown.Anns)
	if err := os.WriteFile(annFile, anns, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "ann", "import", alice.dir, annFile).CombinedOutput(); err != nil {
		t.Fatalf("ann import: %v\n%s", err, out)
	}
	carolID := shown.ID
	waitFor(t, 30*time.Second, "bob to fail to reach carol", func() (bool, string) {
		s, ok, err := bob.server(carolID)
		return err == nil && ok && s.Failures > 0 && !s.Dialing && s.NextDialInS > 1, fmt.Sprintf("%+v %v", s, err)
	})
	before, page, after = snapshot(t, chrome, bob)
	if got := page.byID("summary").text(); got != "Connected to 1 of 2 known servers" {
		t.Errorf("heading %q, want Connected to 1 of 2 known servers", got)
	}
	checkSummary(t, page, before, after)
	checkRow(t, page, aliceID, before, after)
	crow := checkRow(t, page, carolID, before, after)
	conn := crow.find("class", "conn")
	phrase := crow.find("class", "phrase").text()
	switch {
	case conn.attr("data-dialing") == "true":
		if phrase != "Trying to connect" {
			t.Errorf("carol, dialing: %q", phrase)
		}
	default:
		// The phrase is the raw values, formatted: seconds to the next
		// attempt rounded up, since the last rounded down.
		next, _ := strconv.ParseFloat(conn.attr("data-next-dial-in-s"), 64)
		last, _ := strconv.ParseFloat(conn.attr("data-last-attempt-ago-s"), 64)
		want := fmt.Sprintf("Reconnecting in %d s (last attempt %d s ago)", int(math.Ceil(next)), int(math.Floor(last)))
		if next >= 59 || phrase != want {
			t.Errorf("carol: %q, want %q", phrase, want)
		}
	}
	if !strings.Contains(conn.text(), "last error:") {
		t.Errorf("carol's connection cell has no last error: %q", conn.text())
	}
	checkEvents(t, page, before, after)

	// Screenshots: a phone and a desktop.
	url := bob.status + "/"
	for _, s := range []struct {
		name string
		w, h int
	}{{"status-phone.png", 412, 900}, {"status-desktop.png", 1280, 900}} {
		file := filepath.Join(shots, s.name)
		os.Remove(file)
		runBrowser(t, chrome, "--screenshot="+file, fmt.Sprintf("--window-size=%d,%d", s.w, s.h), url)
		checkPNG(t, file, s.w, s.h)
	}
	t.Logf("screenshots in %s", shots)
}

// createWithStatus creates a node with default rules and a status
// endpoint, as the README does.
func createWithStatus(t *testing.T, root, name string, args ...string) string {
	t.Helper()
	dir := filepath.Join(root, name)
	a := append([]string{"node", "create", "--nickname", name, "--listen", "127.0.0.1:0", "--status", "127.0.0.1:0"}, args...)
	if out, err := exec.Command(bin, append(a, dir)...).CombinedOutput(); err != nil {
		t.Fatalf("node create %s: %v\n%s", name, err, out)
	}
	return dir
}

// findBrowser returns the Chromium binary, or skips the test (fails it
// when a browser is required).
func findBrowser(t *testing.T) string {
	t.Helper()
	names := []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell"}
	if b := os.Getenv("GRAPEVINE_CHROMIUM"); b != "" {
		names = []string{b}
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("no headless browser (looked for %s); on Debian: apt-get install -y chromium", strings.Join(names, ", "))
	if truthy(os.Getenv("CI")) || truthy(os.Getenv("GRAPEVINE_REQUIRE_BROWSER")) {
		t.Fatal(msg + " (required: CI or GRAPEVINE_REQUIRE_BROWSER is set)")
	}
	t.Skip(msg)
	return ""
}

func truthy(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	return s != "" && s != "0" && s != "false" && s != "no"
}

// runBrowser runs headless Chromium once and returns its standard output.
// Chromium is kept off the network beyond the page: no background
// requests, updates, sync or crash reports.
func runBrowser(t *testing.T, chrome string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=" + t.TempDir(),
		"--no-first-run", "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-default-apps", "--disable-extensions", "--disable-breakpad", "--disable-domain-reliability",
		"--disable-dev-shm-usage", "--mute-audio"}
	cmd := exec.CommandContext(ctx, chrome, append(base, args...)...)
	// Chromium starts helper processes: stop them all on a timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", chrome, strings.Join(args, " "), err, tailOf(stderr.String(), 20))
	}
	t.Logf("chromium %s: %v", args[0], time.Since(began).Round(time.Millisecond))
	return stdout.String()
}

func tailOf(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// snapshot fetches p's /v1/status, the DOM of its page as Chromium
// rendered it, and /v1/status again. If anything the checks compare
// exactly changed between the two fetches, it tries again.
func snapshot(t *testing.T, chrome string, p *proc) (apitype.Status, *elem, apitype.Status) {
	t.Helper()
	for try := 1; ; try++ {
		before, err := p.state()
		if err != nil {
			t.Fatal(err)
		}
		dom := runBrowser(t, chrome, "--dump-dom", p.status+"/")
		after, err := p.state()
		if err != nil {
			t.Fatal(err)
		}
		page, err := parseDOM(dom)
		if err != nil {
			t.Fatalf("parsing the DOM: %v\n%s", err, dom)
		}
		if page.byID("summary") == nil {
			t.Fatalf("%s's page has no summary heading:\n%s", p.name, dom)
		}
		b, a := stableParts(before), stableParts(after)
		if b == a || try == 5 {
			return before, page, after
		}
		t.Logf("%s's status changed while the browser read the page; again\n%s\n%s", p.name, b, a)
	}
}

// stableParts is what the checks require to be equal in the JSON and on
// the page: everything but the times and what follows from them.
func stableParts(st apitype.Status) string {
	type server struct {
		ID, Nickname, Tombstoned            string
		Services                            []string
		Seqnum                              int64
		Connected, Dialing, Live, Withdrawn bool
		Failures                            int
		SRTTms                              float64
	}
	var ss []server
	for _, s := range st.Servers {
		ss = append(ss, server{s.ID, s.Nickname, s.Tombstoned, s.Services, s.Seqnum, s.Connected, s.Dialing, s.Live, s.Withdrawn, s.Failures, s.SRTTms})
	}
	b, _ := json.Marshal([]any{st.ID, st.Counter, st.Records, st.Tombstones, st.Known, st.Connected, len(st.Forgotten), ss})
	return string(b)
}

// checkSummary compares the node-wide numbers.
func checkSummary(t *testing.T, page *elem, before, after apitype.Status) {
	t.Helper()
	h1 := page.byID("summary")
	same(t, "connected_servers", h1.attr("data-connected-servers"), before.Connected, after.Connected)
	same(t, "known_servers", h1.attr("data-known-servers"), before.Known, after.Known)
	for attr, v := range map[string][2]any{
		"data-records":    {before.Records, after.Records},
		"data-tombstones": {before.Tombstones, after.Tombstones},
		"data-counter":    {before.Counter, after.Counter},
		"data-node-id":    {before.ID, after.ID},
	} {
		e := page.find(attr, "")
		if e == nil {
			t.Errorf("no %s on the page", attr)
			continue
		}
		got := e.attr(attr)
		if attr == "data-node-id" {
			got = strconv.Quote(got)
		}
		same(t, attr, got, v[0], v[1])
	}
	elapsed := num(t, "elapsed_s", page.find("data-elapsed-s", "").attr("data-elapsed-s"))
	if elapsed < before.ElapsedS || elapsed > after.ElapsedS {
		t.Errorf("page's elapsed_s %v not between the JSON's %v and %v", elapsed, before.ElapsedS, after.ElapsedS)
	}
	rounds := num(t, "sync_rounds", page.find("data-sync-rounds", "").attr("data-sync-rounds"))
	if rounds < float64(before.SyncRounds) || rounds > float64(after.SyncRounds) {
		t.Errorf("page's sync_rounds %v not between %d and %d", rounds, before.SyncRounds, after.SyncRounds)
	}
}

// checkRow compares a server's row with its entry in the two JSON
// documents and returns the row. Values that did not change between the
// two fetches (snapshot sees to it) must be equal; a moment that moved
// ("ago" values) must lie between the two; an uptime between the two.
func checkRow(t *testing.T, page *elem, id string, before, after apitype.Status) *elem {
	t.Helper()
	b, ok1 := serverOf(before, id)
	a, ok2 := serverOf(after, id)
	row := page.find("data-id", id)
	if !ok1 || !ok2 || row == nil || row.tag != "tr" {
		t.Fatalf("server %s: in JSON before %v, after %v; row on the page %v", id, ok1, ok2, row != nil)
	}
	v := row.dataAttrs()
	name := b.Nickname
	js := func(x any) string { j, _ := json.Marshal(x); return string(j) }
	same(t, name+" seqnum", v["data-seqnum"], b.Seqnum, a.Seqnum)
	same(t, name+" services", v["data-services"], b.Services, a.Services)
	same(t, name+" live", v["data-live"], b.Live, a.Live)
	same(t, name+" connected", v["data-connected"], b.Connected, a.Connected)
	same(t, name+" failures", v["data-failures"], b.Failures, a.Failures)
	same(t, name+" dialing", v["data-dialing"], b.Dialing, a.Dialing)
	same(t, name+" srtt_ms", v["data-srtt-ms"], b.SRTTms, a.SRTTms)
	same(t, name+" nickname", strconv.Quote(v["data-nickname"]), b.Nickname, a.Nickname)
	if got := row.find("data-seqnum", "").text(); got != v["data-seqnum"] {
		t.Errorf("%s: seqnum shown %q, raw %q", name, got, v["data-seqnum"])
	}
	if got := row.find("data-services", "").text(); !strings.HasPrefix(got, strings.Join(b.Services, ", ")) {
		t.Errorf("%s: services shown %q, want %v", name, got, b.Services)
	}
	pageE := num(t, "elapsed_s", page.find("data-elapsed-s", "").attr("data-elapsed-s"))
	for _, f := range []struct {
		attr      string
		b, a      float64
		monotonic bool // the moment only moves forward
	}{
		{"data-last-attempt-ago-s", b.LastAttemptAgo, a.LastAttemptAgo, true},
		{"data-last-connected-ago-s", b.LastConnectedAgo, a.LastConnectedAgo, true},
		{"data-last-received-ago-s", b.LastReceivedAgo, a.LastReceivedAgo, true},
		{"data-last-fresh-ago-s", b.LastFreshAgo, a.LastFreshAgo, true},
	} {
		got := num(t, f.attr, v[f.attr])
		if f.b < 0 && f.a < 0 {
			if got != -1 {
				t.Errorf("%s %s = %v, JSON -1 before and after", name, f.attr, got)
			}
			continue
		}
		// On the elapsed-time measure, when it happened.
		at, atB, atA := pageE-got, before.ElapsedS-f.b, after.ElapsedS-f.a
		const eps = 1e-6
		if got < 0 || (f.b >= 0 && at < atB-eps) || at > atA+eps {
			t.Errorf("%s %s = %v (at %v), JSON %v (at %v) before and %v (at %v) after", name, f.attr, got, at, f.b, atB, f.a, atA)
		}
	}
	for _, u := range []struct {
		attr string
		b, a *float64
	}{{"data-uptime-1d", b.Uptime1d, a.Uptime1d}, {"data-uptime-7d", b.Uptime7d, a.Uptime7d}, {"data-uptime-30d", b.Uptime30d, a.Uptime30d}} {
		raw := v[u.attr]
		if u.b == nil || u.a == nil || *u.b == *u.a {
			if raw != js(u.b) && raw != js(u.a) {
				t.Errorf("%s %s = %s, JSON %s before, %s after", name, u.attr, raw, js(u.b), js(u.a))
			}
			continue
		}
		got := num(t, u.attr, raw)
		if got < min(*u.b, *u.a)-1e-12 || got > max(*u.b, *u.a)+1e-12 {
			t.Errorf("%s %s = %v, not between %v and %v", name, u.attr, got, *u.b, *u.a)
		}
	}
	// Connected since: the JSON derives it as the wall clock at the query
	// minus the time since the connection on the elapsed measure, which
	// advances only at the core's steps (a tick a second at least), so
	// each fetch puts it up to a tick later than it was. The page's must
	// be the same moment within that.
	if b.ConnectedSince != nil && a.ConnectedSince != nil {
		tm := row.find("class", "phrase").find("", "time")
		if tm == nil {
			t.Fatalf("%s: no <time> in the connection phrase", name)
		}
		const tick = 2500 * time.Millisecond // TickInterval and scheduling
		since, err := time.Parse(time.RFC3339Nano, tm.attr("datetime"))
		if err != nil || since.Sub(*b.ConnectedSince).Abs() > tick || since.Sub(*a.ConnectedSince).Abs() > tick {
			t.Errorf("%s: connected since %s (%v), JSON %v / %v", name, tm.attr("datetime"), err, b.ConnectedSince, a.ConnectedSince)
		}
		if tm.attr("title") == "" {
			t.Errorf("%s: the connection time has no absolute time in its title", name)
		}
	}
	return row
}

// checkEvents: newest first, each one in the JSON.
func checkEvents(t *testing.T, page *elem, before, after apitype.Status) {
	t.Helper()
	kinds := map[string]string{}
	for _, st := range []apitype.Status{before, after} {
		for _, e := range st.Events {
			kinds[strconv.FormatUint(e.Seq, 10)] = e.Kind
		}
	}
	rows := page.byID("events").findAll("class", "event")
	if len(rows) == 0 {
		t.Fatal("no events on the page")
	}
	last := uint64(math.MaxUint64)
	for _, r := range rows {
		seq, err := strconv.ParseUint(r.attr("data-seq"), 10, 64)
		if err != nil || seq >= last {
			t.Errorf("event seq %q after %d: not newest first", r.attr("data-seq"), last)
		}
		last = seq
		if k, ok := kinds[r.attr("data-seq")]; !ok || k != r.attr("data-kind") {
			t.Errorf("event %s %s: JSON has %q", r.attr("data-seq"), r.attr("data-kind"), k)
		}
	}
}

func serverOf(st apitype.Status, id string) (apitype.ServerStatus, bool) {
	for _, s := range st.Servers {
		if s.ID == id {
			return s, true
		}
	}
	return apitype.ServerStatus{}, false
}

// same checks that a raw attribute value is the JSON encoding of a value
// that was the same before and after.
func same(t *testing.T, what, raw string, b, a any) {
	t.Helper()
	jb, _ := json.Marshal(b)
	ja, _ := json.Marshal(a)
	if string(jb) != string(ja) {
		t.Errorf("%s changed between the two fetches: %s, %s (page %s)", what, jb, ja, raw)
		return
	}
	if raw != string(jb) {
		t.Errorf("%s: page %s, JSON %s", what, raw, jb)
	}
}

func num(t *testing.T, what, raw string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		t.Errorf("%s: %q is not a number", what, raw)
	}
	return f
}

// checkPNG checks that file is a w×h PNG with some content: more than a
// few colours, and not one colour nearly everywhere.
func checkPNG(t *testing.T, file string, w, h int) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("%s is %dx%d, want %dx%d", file, b.Dx(), b.Dy(), w, h)
	}
	colours, bg := histogram(img)
	if colours < 32 || bg > 0.97 {
		t.Errorf("%s looks blank: %d colours, the commonest on %.1f%% of it", file, colours, 100*bg)
	}
}

// histogram returns the number of distinct colours and the share of the
// commonest.
func histogram(img image.Image) (int, float64) {
	n := map[[4]uint32]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			n[[4]uint32{r, g, bl, a}]++
		}
	}
	top := 0
	for _, c := range n {
		top = max(top, c)
	}
	return len(n), float64(top) / float64(b.Dx()*b.Dy())
}

// elem is an element of the DOM Chromium printed.
type elem struct {
	tag   string
	attrs []xml.Attr
	kids  []*elem
	order []any // text (string) and *elem, in document order
}

var styleRE = regexp.MustCompile(`(?is)<style[^>]*>.*?</style>`)

// parseDOM reads Chromium's --dump-dom output: HTML as the browser
// serialized it, read by encoding/xml in its lenient HTML mode.
func parseDOM(s string) (*elem, error) {
	s = styleRE.ReplaceAllString(s, "<style></style>") // CSS is not markup
	d := xml.NewDecoder(strings.NewReader(s))
	d.Strict = false
	d.AutoClose = xml.HTMLAutoClose
	d.Entity = xml.HTMLEntity
	root := &elem{tag: "#document"}
	stack := []*elem{root}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		top := stack[len(stack)-1]
		switch tok := tok.(type) {
		case xml.StartElement:
			e := &elem{tag: strings.ToLower(tok.Name.Local), attrs: tok.Attr}
			top.kids = append(top.kids, e)
			top.order = append(top.order, e)
			stack = append(stack, e)
		case xml.EndElement:
			for i := len(stack) - 1; i > 0; i-- {
				if stack[i].tag == strings.ToLower(tok.Name.Local) {
					stack = stack[:i]
					break
				}
			}
		case xml.CharData:
			top.order = append(top.order, string(tok))
		}
	}
	return root, nil
}

func (e *elem) attr(name string) string {
	if e == nil {
		return ""
	}
	for _, a := range e.attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (e *elem) has(name string) bool {
	for _, a := range e.attrs {
		if a.Name.Local == name {
			return true
		}
	}
	return false
}

// findAll returns the elements under e with attribute name (any value if
// value is ""; a class among the class names for "class"); with name ""
// the elements whose tag is value.
func (e *elem) findAll(name, value string) []*elem {
	var out []*elem
	if e == nil {
		return nil
	}
	var walk func(*elem)
	walk = func(x *elem) {
		for _, k := range x.kids {
			match := false
			switch {
			case name == "":
				match = k.tag == value
			case name == "class":
				match = contains(strings.Fields(k.attr("class")), value)
			case value == "":
				match = k.has(name)
			default:
				match = k.attr(name) == value
			}
			if match {
				out = append(out, k)
			}
			walk(k)
		}
	}
	walk(e)
	return out
}

func (e *elem) find(name, value string) *elem {
	if all := e.findAll(name, value); len(all) > 0 {
		return all[0]
	}
	return nil
}

func (e *elem) byID(id string) *elem { return e.find("id", id) }

// text is the element's text with spaces collapsed, as a reader sees it.
func (e *elem) text() string {
	if e == nil {
		return ""
	}
	var b strings.Builder
	var walk func(*elem)
	walk = func(x *elem) {
		if x.tag == "style" || x.tag == "script" {
			return
		}
		for _, o := range x.order {
			switch o := o.(type) {
			case string:
				b.WriteString(o)
			case *elem:
				if o.tag == "br" {
					b.WriteString(" ")
				}
				walk(o)
			}
		}
	}
	walk(e)
	return strings.Join(strings.Fields(b.String()), " ")
}

// dataAttrs merges the data-* attributes of e and everything under it.
func (e *elem) dataAttrs() map[string]string {
	out := map[string]string{}
	var walk func(*elem)
	walk = func(x *elem) {
		for _, a := range x.attrs {
			if strings.HasPrefix(a.Name.Local, "data-") && a.Name.Local != "data-label" {
				if _, ok := out[a.Name.Local]; !ok {
					out[a.Name.Local] = a.Value
				}
			}
		}
		for _, k := range x.kids {
			walk(k)
		}
	}
	walk(e)
	return out
}
