package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"grapevine/client"
	"grapevine/client/apitype"
	"grapevine/internal/daemon"
)

// Short protocol settings: W 6 s, refresh 3 s, H 20 s, T 40 s.
const rules = `
rules:
  preset: test
  refresh_interval: 3s
  liveness_window: 6s
  forget_horizon: 20s
  tombstone_ttl: 40s
`

const (
	W = 6 * time.Second
	H = 20 * time.Second
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "grapevine-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "grapevine")
	out, err := exec.Command("go", "build", "-o", bin, "grapevine/cmd/grapevine").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one grapevine process.
type proc struct {
	t      *testing.T
	name   string
	dir    string
	cmd    *exec.Cmd
	log    string
	status string
}

func create(t *testing.T, root, name string, args ...string) string {
	t.Helper()
	return createRules(t, root, name, rules, args...)
}

// createRules is create with rulesYAML instead of the short rules.
func createRules(t *testing.T, root, name, rulesYAML string, args ...string) string {
	t.Helper()
	dir := filepath.Join(root, name)
	a := append([]string{"node", "create", "--nickname", name, "--listen", "127.0.0.1:0"}, args...)
	if out, err := exec.Command(bin, append(a, dir)...).CombinedOutput(); err != nil {
		t.Fatalf("node create %s: %v\n%s", name, err, out)
	}
	f, err := os.OpenFile(filepath.Join(dir, "grapevine.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(rulesYAML); err != nil {
		t.Fatal(err)
	}
	return dir
}

func start(t *testing.T, name, dir string, boot ...string) *proc {
	t.Helper()
	return startArgs(t, name, dir, nil, boot...)
}

// startArgs is start with extra flags for grapevine run.
func startArgs(t *testing.T, name, dir string, extra []string, boot ...string) *proc {
	t.Helper()
	os.Remove(filepath.Join(dir, daemon.RunDir, daemon.StatusFile))
	os.Remove(filepath.Join(dir, daemon.RunDir, daemon.LocatorsFile))
	args := append([]string{"run", "--log-format", "json", "--log-level", "debug"}, extra...)
	for _, b := range boot {
		args = append(args, "--bootstrap", b)
	}
	p := &proc{t: t, name: name, dir: dir, log: filepath.Join(dir, fmt.Sprintf("log-%d.jsonl", time.Now().UnixNano()))}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, append(args, dir)...)
	p.cmd.Stderr = logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	t.Cleanup(func() { p.kill() })
	running = append(running, p)
	waitFor(t, 20*time.Second, name+" to start", func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(dir, daemon.RunDir, daemon.StatusFile))
		if err != nil {
			return false, err.Error()
		}
		p.status = strings.TrimSpace(string(b))
		return true, ""
	})
	return p
}

func (p *proc) locator() string {
	b, err := os.ReadFile(filepath.Join(p.dir, daemon.RunDir, daemon.LocatorsFile))
	if err != nil {
		p.t.Fatal(err)
	}
	return strings.Fields(string(b))[0]
}

func (p *proc) id() string {
	l := strings.TrimPrefix(p.locator(), "gv://")
	id, _, _ := strings.Cut(l, "@")
	return id
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			p.t.Fatalf("%s: exit after SIGTERM: %v\n%s", p.name, err, p.tail())
		}
	case <-time.After(15 * time.Second):
		p.t.Fatalf("%s: no exit 15 s after SIGTERM", p.name)
	}
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-6):], "\n")
}

// api is a client of p's status endpoint, without the token: reads only.
func (p *proc) api() *client.Client { return &client.Client{BaseURL: p.status} }

func (p *proc) state() (apitype.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.api().Status(ctx)
}

func (p *proc) server(id string) (apitype.ServerStatus, bool, error) {
	st, err := p.state()
	if err != nil {
		return apitype.ServerStatus{}, false, err
	}
	for _, s := range st.Servers {
		if s.ID == id {
			return s, true, nil
		}
	}
	return apitype.ServerStatus{}, false, nil
}

// logLines returns the process's JSON log entries.
func (p *proc) logLines() []map[string]any {
	f, err := os.Open(p.log)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < d {
		ok, why := cond()
		if ok {
			return time.Since(start)
		}
		last = why
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("waited %v for %s: %s", d, what, last+dumpLogs())
	return 0
}

func TestGrid(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 17 processes")
	}
	root := t.TempDir()
	relay := start(t, "relay", create(t, root, "relay", "--service", "grapevine-relay=gv://relay"))
	boot := relay.locator()
	var servers, clients []*proc
	for i := range 5 {
		name := fmt.Sprintf("server%d", i)
		dir := create(t, root, name, "--service", fmt.Sprintf("storage=pb://s%d@tcp:127.0.0.1:1/swiss", i))
		servers = append(servers, start(t, name, dir, boot))
	}
	for i := range 10 {
		name := fmt.Sprintf("client%d", i)
		clients = append(clients, start(t, name, create(t, root, name), boot))
	}
	ids := map[string]string{}
	for _, s := range servers {
		ids[s.id()] = s.name
	}

	knowsAll := func(c *proc) (bool, string) {
		st, err := c.state()
		if err != nil {
			return false, err.Error()
		}
		seen := 0
		for _, s := range st.Servers {
			if _, ok := ids[s.ID]; ok && s.Connected && len(s.Services) > 0 {
				seen++
			}
		}
		return seen == len(servers), fmt.Sprintf("%s connected to %d of %d servers", c.name, seen, len(servers))
	}
	took := waitFor(t, 60*time.Second, "every client to learn every server", func() (bool, string) {
		for _, c := range clients {
			if ok, why := knowsAll(c); !ok {
				return false, why
			}
		}
		return true, ""
	})
	t.Logf("every client connected to every server after %v", took)

	// A server killed with SIGKILL: still relayed just after, no longer
	// after W, forgotten after H.
	dead := servers[0]
	deadID := dead.id()
	dead.kill()
	killed := time.Now()
	if s, ok, err := relay.server(deadID); err != nil || !ok || !s.Live {
		t.Fatalf("relay right after the kill: %+v %v %v (want held and live)", s, ok, err)
	}

	// Meanwhile a client restarts: its peer book is kept, and it dials the
	// most recently seen servers first, the dead one last.
	c0 := clients[0]
	waitFor(t, 10*time.Second, "client0 to see the dead server's connection drop", func() (bool, string) {
		s, _, err := c0.server(deadID)
		return err == nil && !s.Connected, fmt.Sprintf("%+v %v", s, err)
	})
	seen := time.Now()
	waitFor(t, 5*time.Second, "a second of client0 running on after it", func() (bool, string) {
		return time.Since(seen) > time.Second, ""
	})
	c0.stop()
	c0 = start(t, "client0", c0.dir)
	clients[0] = c0
	st, err := c0.state()
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, s := range st.Servers {
		if _, ok := ids[s.ID]; ok && len(s.Services) > 0 {
			held++
		}
	}
	if held != len(servers) {
		t.Fatalf("restarted client holds %d of %d servers' records from its peer book", held, len(servers))
	}
	waitFor(t, 30*time.Second, "the restarted client to reconnect", func() (bool, string) {
		st, err := c0.state()
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, s := range st.Servers {
			if s.Connected && ids[s.ID] != "" {
				n++
			}
		}
		return n == len(servers)-1, fmt.Sprintf("%d connected", n)
	})
	var order, dials []string
	for _, l := range c0.logLines() {
		if l["kind"] == "dial" {
			if p, _ := l["peer"].(string); ids[p] != "" && !contains(order, ids[p]) {
				order = append(order, ids[p])
				dials = append(dials, fmt.Sprintf("%s last_connected=%v last_failed=%v", ids[p], l["last_connected"], l["last_failed"]))
			}
		}
	}
	if len(order) != len(servers) || order[len(order)-1] != dead.name {
		t.Fatalf("restarted client's first dials: %v; want every server, %s (dead, seen least recently) last", dials, dead.name)
	}

	for _, n := range append([]*proc{relay}, clients...) {
		waitFor(t, time.Until(killed.Add(W+5*time.Second)), n.name+" to stop relaying the dead server", func() (bool, string) {
			s, ok, err := n.server(deadID)
			if err != nil {
				return false, err.Error()
			}
			return !ok || !s.Live, fmt.Sprintf("%+v", s)
		})
	}
	t.Logf("dead server no longer relayed anywhere %v after the kill (W = %v)", time.Since(killed).Round(time.Millisecond), W)
	for _, n := range append([]*proc{relay}, clients...) {
		waitFor(t, time.Until(killed.Add(H+W+10*time.Second)), n.name+" to forget the dead server", func() (bool, string) {
			s, ok, err := n.server(deadID)
			if err != nil {
				return false, err.Error()
			}
			forgot := ok && s.Tombstoned != "" && len(s.Services) == 0
			if forgot && time.Since(killed) < H-time.Second {
				t.Errorf("%s forgot the dead server %v after the kill, before H = %v", n.name, time.Since(killed), H)
			}
			return forgot, fmt.Sprintf("%+v", s)
		})
	}
	t.Logf("dead server forgotten everywhere %v after the kill (H = %v)", time.Since(killed).Round(time.Millisecond), H)

	// The SIGKILLed server's peer book opens, still holds what it knew, and
	// its next seqnum brings it back where it was forgotten.
	dead = start(t, "server0", dead.dir, boot)
	if st, err := dead.state(); err != nil || st.Records < len(servers) {
		t.Fatalf("server0 after kill -9: %v; records %d, want its own and the %d others' from its peer book", err, st.Records, len(servers)-1)
	}
	waitFor(t, 30*time.Second, "the returned server to be held again everywhere", func() (bool, string) {
		for _, n := range append([]*proc{relay}, clients...) {
			s, ok, err := n.server(deadID)
			if err != nil || !ok || len(s.Services) == 0 || s.Tombstoned != "" {
				return false, fmt.Sprintf("%s: %+v %v", n.name, s, err)
			}
		}
		return true, ""
	})

	// A server restarted from a wiped directory that keeps only its key:
	// its counter starts again at 0, the grid holds a higher seqnum, and
	// one exchange teaches it to jump past it.
	s1 := servers[1]
	s1ID := s1.id()
	before, _, err := clients[1].server(s1ID)
	if err != nil {
		t.Fatal(err)
	}
	s1.kill()
	wipeKeepingKey(t, s1.dir)
	s1 = start(t, "server1", s1.dir, boot)
	waitFor(t, 30*time.Second, "the wiped server's new records to be accepted", func() (bool, string) {
		for _, c := range clients {
			s, ok, err := c.server(s1ID)
			if err != nil || !ok || s.Seqnum <= before.Seqnum || !s.Live {
				return false, fmt.Sprintf("%s: %+v (held seqnum before the wipe %d)", c.name, s, before.Seqnum)
			}
		}
		return true, ""
	})
	recovered := false
	for _, l := range s1.logLines() {
		recovered = recovered || l["kind"] == "counter-recovered"
	}
	if !recovered {
		t.Fatalf("wiped server never logged counter-recovered:\n%s", s1.tail())
	}

	// A man in the middle: a locator naming server2's key at server3's
	// address. The dial is refused and the reason logged.
	mitmDir := create(t, root, "victim")
	victim := start(t, "victim", mitmDir, "gv://"+servers[2].id()+"@"+strings.SplitN(servers[3].locator(), "@", 2)[1])
	s2 := servers[2].id()
	waitFor(t, 20*time.Second, "the wrong key to be refused", func() (bool, string) {
		for _, l := range victim.logLines() {
			if l["kind"] == "dial-failed" && l["peer"] == s2 && strings.Contains(strings.ToLower(fmt.Sprint(l["reason"])), "key") {
				return true, ""
			}
		}
		return false, victim.tail()
	})
	if s, ok, _ := victim.server(servers[2].id()); ok && s.Connected {
		t.Fatal("victim connected to server2 through server3's address")
	}
}

var running []*proc

// dumpLogs returns the tails of the running processes' logs.
func dumpLogs() string {
	var b strings.Builder
	for _, p := range running {
		fmt.Fprintf(&b, "\n--- %s\n%s", p.name, p.tail())
	}
	return b.String()
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// wipeKeepingKey deletes everything in dir but the key and configuration,
// and resets the counter: a lost disk restored from a key backup.
func wipeKeepingKey(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch e.Name() {
		case "private", "node.pubkey", "grapevine.yaml":
		default:
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "announcement-seqnum"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
