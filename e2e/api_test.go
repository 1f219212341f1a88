package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"grapevine/client"
	"grapevine/client/apitype"
	"grapevine/internal/daemon"
)

// TestControl runs the commands that talk to a running node (servers,
// status, history, forget) against real processes, and checks the token
// and /metrics over TCP.
func TestControl(t *testing.T) {
	root := t.TempDir()
	srv := start(t, "srv", create(t, root, "srv", "--service", "storage=pb://srv@tcp:127.0.0.1:1/swiss"))
	cli := start(t, "cli", create(t, root, "cli"), srv.locator())
	id := srv.id()
	waitFor(t, 20*time.Second, "cli to connect to srv and hold its record", func() (bool, string) {
		s, ok, err := cli.server(id)
		return err == nil && ok && s.Connected && len(s.Services) > 0, "not yet"
	})

	fi, err := os.Stat(filepath.Join(cli.dir, daemon.TokenFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}

	run := func(want int, args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != want {
			t.Fatalf("grapevine %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
		}
		t.Logf("$ grapevine %s\n%s", strings.Join(args, " "), out)
		return string(out)
	}
	has := func(out string, subs ...string) {
		t.Helper()
		for _, s := range subs {
			if !strings.Contains(out, s) {
				t.Errorf("output lacks %q:\n%s", s, out)
			}
		}
	}
	short := strings.TrimPrefix(id, "v0-")[:8]

	out := run(0, "servers", cli.dir)
	has(out, "Connected to 1 of 1 known servers", "NICKNAME", "srv", short, "storage", "Connected for", "yes")
	var l apitype.ServerList
	if err := json.Unmarshal([]byte(run(0, "servers", "--json", cli.dir)), &l); err != nil || len(l.Servers) != 1 || l.Servers[0].ID != id {
		t.Fatalf("servers --json: %v %+v", err, l)
	}

	out = run(0, "status", cli.dir)
	has(out, "Node v0-", "(cli)", "Grid: open", "Connected to 1 of 1 known servers", "Records: 1 held, 0 tombstones", "Recent events", "connected "+short)
	var st apitype.Status
	if err := json.Unmarshal([]byte(run(0, "status", "--json", cli.dir)), &st); err != nil || st.Known != 1 || st.ID != cli.id() {
		t.Fatalf("status --json: %v %+v", err, st)
	}

	out = run(0, "history", cli.dir, short[:4])
	has(out, "Server "+id+" (srv)", "Services: storage", "Status: Connected for", "Connected (1 spans", "- now", "Events about it", "connected "+short)
	run(1, "history", cli.dir, "zzzzzzzz")
	run(2, "history", cli.dir)

	// Without the token the node refuses to forget.
	if _, err := cli.api().Forget(context.Background(), id); !errors.Is(err, client.ErrUnauthorized) || !strings.Contains(err.Error(), daemon.TokenFile) {
		t.Fatalf("forget without the token: %v", err)
	}
	before, _, _ := cli.server(id)
	out = run(0, "forget", cli.dir, short)
	has(out, "forgot "+id+" (srv)", "tombstone: storage seqnum", "reason operator")
	// srv republishes every 3 s and may be back already: only the event is
	// certain.
	has(run(0, "status", cli.dir), "forgot "+short+" reason=operator")
	// It is still connected, and its next seqnum brings it back.
	waitFor(t, 20*time.Second, "srv's next seqnum to be taken back", func() (bool, string) {
		s, ok, err := cli.server(id)
		return err == nil && ok && len(s.Services) > 0 && s.Seqnum > before.Seqnum, "not yet"
	})
	has(run(0, "history", cli.dir, short), "forgot "+short+" reason=operator", "accepted "+short+"/storage")

	// /metrics over TCP: the transport counts bytes.
	resp, err := http.Get(cli.status + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	vals := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.LastIndexByte(line, ' '); i > 0 && !strings.HasPrefix(line, "#") {
			vals[line[:i]], _ = strconv.ParseFloat(line[i+1:], 64)
		}
	}
	if vals["grapevine_transport_sent_bytes_total"] <= 0 || vals["grapevine_transport_received_bytes_total"] <= 0 ||
		vals["grapevine_known_servers"] != 1 || vals[`grapevine_events_total{kind="forgot"}`] != 1 {
		t.Fatalf("metrics:\n%s", b)
	}
}
