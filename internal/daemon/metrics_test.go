package daemon

import (
	"bufio"
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"grapevine/internal/nodedir"
	"grapevine/internal/peerbook"
	"grapevine/internal/transport"
)

// scrape reads /metrics: the value of each sample by name and labels as
// written ("grapevine_dials_failed_total{reason=\"timeout\"}"), and the
// names that have HELP text.
func scrape(t *testing.T, d *Daemon) (map[string]float64, map[string]bool) {
	t.Helper()
	code, b := call(t, d, "GET", "/metrics", "", nil)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, b)
	}
	vals, help := map[string]float64{}, map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, text, _ := strings.Cut(rest, " ")
			help[name] = text != ""
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		vals[line[:i]] = v
	}
	return vals, help
}

// Metrics scraped from a running daemon agree with /v1/status read just
// before and just after.
func TestMetrics(t *testing.T) {
	net := transport.NewMemNetwork()
	// No refresh during the test: the forgotten server stays forgotten.
	rules := nodedir.Rules{Preset: "test", RefreshInterval: nodedir.Duration(time.Hour), LivenessWindow: nodedir.Duration(2 * time.Hour),
		ForgetHorizon: nodedir.Duration(4 * time.Hour), TombstoneTTL: nodedir.Duration(8 * time.Hour)}
	srv := apiNodeRules(t, "srv", rules, nodedir.Config{Services: []nodedir.ServiceConfig{{Name: "storage", FURL: "pb://x@tcp:127.0.0.1:1/s"}}})
	srvTr, err := net.EndpointWith(transport.Options{Key: srv.Key, ListenAddr: "mem:1"})
	if err != nil {
		t.Fatal(err)
	}
	sd, _ := run(t, Options{Dir: srv.Dir, Transport: srvTr, Book: peerbook.NewMemory()})
	other := apiNodeRules(t, "other", rules, nodedir.Config{Services: []nodedir.ServiceConfig{{Name: "storage", FURL: "pb://y@tcp:127.0.0.1:1/s"}}})
	otherTr, err := net.EndpointWith(transport.Options{Key: other.Key, ListenAddr: "mem:2"})
	if err != nil {
		t.Fatal(err)
	}
	od, _ := run(t, Options{Dir: other.Dir, Transport: otherTr, Book: peerbook.NewMemory()})
	cli := apiNode(t, "cli", "test", nodedir.Config{})
	cd, _ := run(t, Options{Dir: cli.Dir, Transport: net.Endpoint(cli.Key), Book: peerbook.NewMemory(),
		Bootstrap: append(sd.Locators(), od.Locators()...)})
	waitHolds(t, cd, srv.ID())
	waitHolds(t, cd, other.ID())
	if code, b := call(t, cd, "POST", "/v1/forget", token(t, cd), map[string]string{"id": string(other.ID())}); code != http.StatusOK {
		t.Fatalf("forget: %d %s", code, b)
	}

	var before, after Status
	getJSON(t, cd, "/v1/status", &before)
	m, help := scrape(t, cd)
	getJSON(t, cd, "/v1/status", &after)

	for name := range help {
		if !strings.HasPrefix(name, "grapevine_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("metric %s: want the grapevine_ prefix", name)
		}
		if !help[name] {
			t.Errorf("metric %s has no HELP text", name)
		}
	}
	same := func(name string, f func(Status) float64) {
		t.Helper()
		v, ok := m[name]
		if !ok {
			t.Errorf("%s missing", name)
			return
		}
		if v != f(before) || v != f(after) {
			t.Errorf("%s = %v; /v1/status says %v before and %v after", name, v, f(before), f(after))
		}
	}
	between := func(name string, f func(Status) float64) {
		t.Helper()
		v, ok := m[name]
		if !ok {
			t.Errorf("%s missing", name)
			return
		}
		if v < f(before) || v > f(after) {
			t.Errorf("%s = %v; /v1/status says %v before and %v after", name, v, f(before), f(after))
		}
	}
	same("grapevine_known_servers", func(s Status) float64 { return float64(s.Known) })
	same("grapevine_connected_servers", func(s Status) float64 { return float64(s.Connected) })
	same("grapevine_live_servers", func(s Status) float64 { return float64(summarize(s).Live) })
	same("grapevine_tombstoned_servers", func(s Status) float64 { return float64(summarize(s).Tombstoned) })
	same("grapevine_connected_peers", func(s Status) float64 { return float64(summarize(s).Peers) })
	same("grapevine_records", func(s Status) float64 { return float64(s.Records) })
	same("grapevine_tombstones", func(s Status) float64 { return float64(s.Tombstones) })
	same("grapevine_announcement_seqnum", func(s Status) float64 { return float64(s.Counter) })
	between("grapevine_sync_rounds_total", func(s Status) float64 { return float64(s.SyncRounds) })
	between("grapevine_elapsed_seconds", func(s Status) float64 { return s.ElapsedS })
	between(`grapevine_server_message_bytes{direction="received"}`, func(s Status) float64 { return float64(summarize(s).BytesIn) })
	between(`grapevine_server_message_bytes{direction="sent"}`, func(s Status) float64 { return float64(summarize(s).BytesOut) })

	// Known 2, one forgotten: 1 known, connected and live; 2 connected
	// peers (a forgotten server stays connected); 1 tombstoned.
	if m["grapevine_known_servers"] != 1 || m["grapevine_live_servers"] != 1 || m["grapevine_tombstoned_servers"] != 1 ||
		m["grapevine_connected_peers"] != 2 {
		t.Errorf("gauges: %v", m)
	}
	// Counters fed by events, checked against the events /v1/status kept.
	count := func(kind, reason string) float64 {
		n := 0
		for _, e := range after.Events {
			if e.Kind == kind && (reason == "" || e.Reason == reason) {
				n++
			}
		}
		return float64(n)
	}
	for name, want := range map[string]float64{
		`grapevine_records_accepted_total{reason="added"}`: count("accepted", "added"),
		"grapevine_dials_started_total":                    count("dial", ""),
		"grapevine_dials_connected_total":                  2,
		`grapevine_events_total{kind="forgot"}`:            1,
		`grapevine_events_total{kind="connected"}`:         count("connected", ""),
	} {
		if m[name] != want || want == 0 {
			t.Errorf("%s = %v, want %v (and not 0)", name, m[name], want)
		}
	}
	if _, ok := m["grapevine_transport_sent_bytes_total"]; ok {
		t.Error("the in-memory transport has no byte counts, yet they are exported")
	}
	sm, _ := scrape(t, sd)
	if sm["grapevine_inbound_connections_total"] != 1 || sm["grapevine_dials_started_total"] != 0 {
		t.Errorf("server: inbound %v dials %v, want 1 and 0", sm["grapevine_inbound_connections_total"], sm["grapevine_dials_started_total"])
	}
}
