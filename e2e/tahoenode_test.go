package e2e

// A harness for running real, unmodified Tahoe-LAFS nodes (introducers,
// storage servers, clients) in end-to-end tests, and TestTahoeHarness,
// which proves it against a real Tahoe introducer.
//
// Facts about Tahoe-LAFS 1.20 this harness relies on (read from
// ../shared/tahoe-lafs/src/allmydata and checked by running it):
//
//   - A node directory is tahoe.cfg, private/ (0700) and an empty-ish
//     tahoe-client.tac or tahoe-introducer.tac, whose name alone tells
//     `tahoe run` the node type. Keys, node.pubkey, permutation-seed,
//     private/introducer.furl, private/storage.furl are made at first run.
//   - private/introducers.yaml is {introducers: {PETNAME: {furl: FURL}}};
//     every petname is a separate introducer connection with its own cache
//     private/introducer_PETNAME_cache.yaml. An empty introducers.yaml is an
//     error at start; no introducers means no file. [client]introducer.furl
//     in tahoe.cfg is still honoured (deprecated) as petname "default", and
//     is an error together with a "default" petname in introducers.yaml.
//   - The cache is a YAML list of {ann: {...}, key_s: v0-...}, rewritten
//     whenever a new or newer (higher seqnum) announcement arrives, and read
//     only when the first connection to that introducer fails.
//   - GET /?t=json on a client-type node: {"introducers": {"statuses":
//     [summary...]}, "servers": [{"nodeid", "connection_status",
//     "available_space", "nickname", "version", "last_received_data"}]}.
//     It exposes no permutation seed and no "connected" flag: connected is
//     connection_status "connected" (HTTP storage protocol, the default when
//     the announcement has NURLs) or "Connected to HINT via tcp" (Foolscap).
//     Not connected reads "failure: ..." / "unstarted" (HTTP) or "Trying to
//     connect" / "Reconnecting in N seconds ..." (Foolscap).
//   - A tub.port that cannot be bound is not an error: Foolscap logs it to
//     its own log and the node runs without listening. So the harness
//     waits for Twisted's "Listener starting on PORT" line.
//   - Shares live in STORAGEDIR/shares/SI[:2]/SI/SHNUM, SI the lower-case
//     RFC 4648 base32 (no padding) storage index.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// ---------------------------------------------------------------------------
// The tahoe executable.

var (
	tahoeOnce    sync.Once
	tahoeExe     string
	tahoeVersion string
	tahoeErr     error
)

// tahoeCommand returns the tahoe executable: $GRAPEVINE_TAHOE, else
// <repo root>/../shared/tahoe-lafs/bin/tahoe. It skips the test (fails it
// if $CI is set) when `tahoe --version` does not run. The check is made once
// per test binary.
func tahoeCommand(t *testing.T) string {
	t.Helper()
	tahoeOnce.Do(func() {
		exe := os.Getenv("GRAPEVINE_TAHOE")
		if exe == "" {
			root, err := tahoeRepoRoot()
			if err != nil {
				tahoeErr = err
				return
			}
			exe = filepath.Join(root, "..", "shared", "tahoe-lafs", "bin", "tahoe")
		} else if !strings.ContainsRune(exe, filepath.Separator) {
			if p, err := exec.LookPath(exe); err == nil {
				exe = p
			}
		}
		if abs, err := filepath.Abs(exe); err == nil {
			exe = abs
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, exe, "--version").CombinedOutput()
		if err != nil {
			tahoeErr = fmt.Errorf("%s --version: %v %s", exe, err, strings.TrimSpace(tahoeTail(string(out), 600)))
			return
		}
		tahoeExe = exe
		tahoeVersion = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	})
	if tahoeErr != nil {
		msg := fmt.Sprintf("real Tahoe-LAFS is not runnable: %v\n"+
			"get it with ../shared/tahoe-lafs/install-debian-deps (as root, once), "+
			"or set GRAPEVINE_TAHOE to a tahoe executable", tahoeErr)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return tahoeExe
}

// tahoeRepoRoot walks up from the working directory to the go.mod of
// module grapevine.
func tahoeRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if mod, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			for _, line := range strings.Split(string(mod), "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == "module" && f[1] == "grapevine" {
					return dir, nil
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of module grapevine above the working directory")
		}
		dir = parent
	}
}

// ---------------------------------------------------------------------------
// Ports.

var (
	portMu    sync.Mutex
	portsUsed = map[int]bool{}
)

// freeLoopbackPort returns a TCP port in 20000-29999 that 127.0.0.1 could
// listen on just now and that this process has not handed out before.
// Tahoe wants fixed ports below the ephemeral range. Safe for concurrent
// use.
func freeLoopbackPort(t testing.TB) int {
	t.Helper()
	p, err := pickLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func pickLoopbackPort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for _, i := range mrand.Perm(10000) {
		port := 20000 + i
		if portsUsed[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		portsUsed[port] = true
		return port, nil
	}
	return 0, errors.New("no free loopback port in 20000-29999")
}

// ---------------------------------------------------------------------------
// Nodes.

// tahoeNode is one real Tahoe-LAFS node directory and, while it runs, its
// `tahoe run` process.
type tahoeNode struct {
	t       *testing.T
	name    string
	dir     string
	kind    string // "introducer", "storage" or "client"
	webPort int
	tubPort int // 0: tub.port = disabled (clients)

	mu      sync.Mutex
	cfg     map[string]map[string]string // tahoe.cfg: section -> key -> value
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	waitErr error
	logOff  int64 // where the current run's output starts in logPath
	started bool  // ever got to ready: ports are then fixed
	runs    int
}

// tahoeServer is one storage server as a client's /?t=json reports it.
type tahoeServer struct {
	ID             string   // "v0-..."
	Nickname       string   // from the announcement
	Connected      bool     // Status says connected
	Status         string   // connection_status summary, verbatim
	Version        *string  // application-version; nil until first connected
	AvailableSpace *int64   // nil until known
	LastReceived   *float64 // Unix time of the last data received, or nil
	// PermutationSeed is the announcement's permutation-seed-base32 when
	// the JSON exposes it. Tahoe 1.20's does not: always nil. The client's
	// copy is in its introducer cache (see cachedAnnouncements).
	PermutationSeed *string
}

func (s tahoeServer) String() string {
	return fmt.Sprintf("%s (%s) connected=%v %.120q", s.ID, s.Nickname, s.Connected, s.Status)
}

// tahoeWelcome is a client-type node's /?t=json.
type tahoeWelcome struct {
	Introducers []string // one connection summary per introducer
	Servers     []tahoeServer
}

// tahoeAnnouncement is one storage announcement from an introducer cache.
type tahoeAnnouncement struct {
	Key             string // key_s: "v0-..."
	Nickname        string
	FURL            string // anonymous-storage-FURL
	NURLs           []string
	PermutationSeed string // permutation-seed-base32
	Seqnum          int64
	Ann             map[string]any // everything
}

// tahoeCheck is the web API's check result (POST /uri/CAP?t=check&output=JSON).
type tahoeCheck struct {
	StorageIndex string `json:"storage-index"`
	Summary      string `json:"summary"`
	Results      struct {
		Healthy           bool                `json:"healthy"`
		Recoverable       bool                `json:"recoverable"`
		CountHappiness    int                 `json:"count-happiness"`
		CountSharesGood   int                 `json:"count-shares-good"`
		CountSharesNeeded int                 `json:"count-shares-needed"`
		CountGoodHosts    int                 `json:"count-good-share-hosts"`
		ServersResponding []string            `json:"servers-responding"`
		ShareMap          map[string][]string `json:"sharemap"` // shnum -> server ids
	} `json:"results"`
}

// newTahoeIntroducer makes a real Tahoe introducer in root/name, with tub
// and web ports on 127.0.0.1. Its FURL is n.furl() once started.
func newTahoeIntroducer(t *testing.T, root, name string) *tahoeNode {
	t.Helper()
	n := newTahoeDir(t, root, name, "introducer", true)
	n.writeConfig()
	return n
}

// newTahoeStorage makes a Tahoe storage server in root/name (storage
// enabled, no reserved space, nickname name, tub and web ports on
// 127.0.0.1) that uses introducers (petname -> FURL).
func newTahoeStorage(t *testing.T, root, name string, introducers map[string]string) *tahoeNode {
	t.Helper()
	n := newTahoeDir(t, root, name, "storage", true)
	n.cfg["storage"] = map[string]string{"enabled": "true", "reserved_space": "0"}
	n.writeConfig()
	n.setIntroducers(introducers)
	return n
}

// newTahoeClient makes a Tahoe client in root/name (storage disabled, tub
// disabled, web port on 127.0.0.1) that uploads with the given encoding
// and uses introducers (petname -> FURL).
func newTahoeClient(t *testing.T, root, name string, introducers map[string]string, needed, happy, total int) *tahoeNode {
	t.Helper()
	n := newTahoeDir(t, root, name, "client", false)
	n.cfg["client"] = map[string]string{
		"shares.needed": fmt.Sprint(needed),
		"shares.happy":  fmt.Sprint(happy),
		"shares.total":  fmt.Sprint(total),
	}
	n.cfg["storage"] = map[string]string{"enabled": "false"}
	n.writeConfig()
	n.setIntroducers(introducers)
	return n
}

func newTahoeDir(t *testing.T, root, name, kind string, tub bool) *tahoeNode {
	t.Helper()
	tahoeCommand(t)
	n := &tahoeNode{t: t, name: name, dir: filepath.Join(root, name), kind: kind}
	if err := os.MkdirAll(filepath.Join(n.dir, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(n.dir, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	tac := "tahoe-client.tac"
	if kind == "introducer" {
		tac = "tahoe-introducer.tac"
	}
	// What `tahoe create-*` writes: only the name matters to `tahoe run`.
	writeFile(t, filepath.Join(n.dir, tac), "\nimport sys\n"+
		"print(\"Nodes created by Tahoe-LAFS v1.11.0 or later cannot be run by\")\n"+
		"print(\"releases of Tahoe-LAFS before v1.10.0.\")\nsys.exit(1)\n")
	n.webPort = freeLoopbackPort(t)
	if tub {
		n.tubPort = freeLoopbackPort(t)
	}
	n.cfg = map[string]map[string]string{"node": {
		"nickname":          name,
		"reveal-IP-address": "true",
		"web.static":        "public_html",
	}}
	n.setPorts()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("--- tahoe %s %s (%s), last lines of %s:\n%s", n.kind, n.name, n.dir, n.logPath(), n.logTail(25))
		}
	})
	return n
}

func (n *tahoeNode) setPorts() {
	node := n.cfg["node"]
	node["web.port"] = fmt.Sprintf("tcp:%d:interface=127.0.0.1", n.webPort)
	if n.tubPort != 0 {
		node["tub.port"] = fmt.Sprintf("tcp:%d:interface=127.0.0.1", n.tubPort)
		node["tub.location"] = fmt.Sprintf("tcp:127.0.0.1:%d", n.tubPort)
	} else {
		node["tub.port"] = "disabled"
		node["tub.location"] = "disabled"
	}
}

// setConfig sets one tahoe.cfg item (e.g. "client", "force_foolscap",
// "true") and rewrites tahoe.cfg. Tahoe reads it at start only.
func (n *tahoeNode) setConfig(section, key, value string) {
	n.mu.Lock()
	if n.cfg[section] == nil {
		n.cfg[section] = map[string]string{}
	}
	n.cfg[section][key] = value
	n.mu.Unlock()
	n.writeConfig()
}

func (n *tahoeNode) writeConfig() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := os.WriteFile(filepath.Join(n.dir, "tahoe.cfg"), []byte(n.configText()), 0o644); err != nil {
		n.t.Error(err)
	}
}

// configText renders n.cfg; the caller holds n.mu.
func (n *tahoeNode) configText() string {
	order := []string{"node", "client", "storage", "helper"}
	var rest []string
	for s := range n.cfg {
		if !slices.Contains(order, s) {
			rest = append(rest, s)
		}
	}
	sort.Strings(rest)
	var b strings.Builder
	b.WriteString("# Written by grapevine's e2e Tahoe harness.\n")
	for _, s := range append(order, rest...) {
		items, ok := n.cfg[s]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "\n[%s]\n", s)
		keys := make([]string, 0, len(items))
		for k := range items {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s = %s\n", k, items[k])
		}
	}
	return b.String()
}

// setIntroducers rewrites private/introducers.yaml to hold exactly
// introducers (petname -> FURL); none removes the file (Tahoe refuses an
// empty one). A running node must be restarted to see it.
func (n *tahoeNode) setIntroducers(introducers map[string]string) {
	n.t.Helper()
	path := filepath.Join(n.dir, "private", "introducers.yaml")
	if len(introducers) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			n.t.Fatal(err)
		}
		return
	}
	type intro struct {
		FURL string `yaml:"furl"`
	}
	doc := struct {
		Introducers map[string]intro `yaml:"introducers"`
	}{map[string]intro{}}
	for pet, furl := range introducers {
		doc.Introducers[pet] = intro{furl}
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		n.t.Fatal(err)
	}
	writeFile(n.t, path, string(b))
}

func (n *tahoeNode) logPath() string { return filepath.Join(n.dir, "harness-run.log") }

// logTail returns the last lines of the node's `tahoe run` output (all
// runs, appended).
func (n *tahoeNode) logTail(lines int) string {
	b, _ := os.ReadFile(n.logPath())
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// runLog is the current run's output so far.
func (n *tahoeNode) runLog() string {
	n.mu.Lock()
	off := n.logOff
	n.mu.Unlock()
	f, err := os.Open(n.logPath())
	if err != nil {
		return ""
	}
	defer f.Close()
	f.Seek(off, io.SeekStart)
	b, _ := io.ReadAll(f)
	return string(b)
}

func (n *tahoeNode) webURL() string { return fmt.Sprintf("http://127.0.0.1:%d", n.webPort) }

// running reports whether the node's process is alive.
func (n *tahoeNode) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// start runs `tahoe run --allow-stdin-close DIR`, output appended to
// harness-run.log in the node directory, and waits until the node serves
// its web port and listens on its tub port (and, for an introducer, has
// written its FURL). On its first start a node whose ports were taken
// meanwhile by another process gets new ones.
func (n *tahoeNode) start() {
	n.t.Helper()
	if err := n.startErr(); err != nil {
		n.t.Fatal(err)
	}
}

// errPortTaken: the node could not listen on one of its ports.
var errPortTaken = errors.New("port taken")

// startErr is start without t.Fatal: safe from any goroutine.
func (n *tahoeNode) startErr() error {
	if n.running() {
		return fmt.Errorf("tahoe %s: start while running", n.name)
	}
	for attempt := 0; ; attempt++ {
		err := n.launch()
		if err == nil {
			err = n.waitReady(2 * time.Minute)
		}
		if err == nil {
			n.mu.Lock()
			n.started = true
			n.mu.Unlock()
			return nil
		}
		n.kill()
		n.mu.Lock()
		fixed := n.started
		n.mu.Unlock()
		if !errors.Is(err, errPortTaken) || fixed || attempt == 3 {
			return fmt.Errorf("tahoe %s (%s): %w\n%s", n.name, n.dir, err, tahoeTail(n.runLog(), 3000))
		}
		// Never yet up: nobody knows these ports, take new ones.
		n.t.Logf("tahoe %s: %v; retrying on new ports", n.name, err)
		web, err := pickLoopbackPort()
		if err != nil {
			return err
		}
		n.mu.Lock()
		n.webPort = web
		n.mu.Unlock()
		if n.tubPort != 0 {
			tub, err := pickLoopbackPort()
			if err != nil {
				return err
			}
			n.mu.Lock()
			n.tubPort = tub
			n.mu.Unlock()
		}
		n.mu.Lock()
		n.setPorts()
		n.mu.Unlock()
		n.writeConfig()
	}
}

func (n *tahoeNode) launch() error {
	exe := tahoeExe
	if exe == "" {
		return errors.New("tahoeCommand not called")
	}
	// A pid file left by a process we killed: it is dead (we waited for
	// it), and a recycled PID would make Tahoe refuse to start.
	os.Remove(filepath.Join(n.dir, "running.process"))
	logf, err := os.OpenFile(n.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	n.mu.Lock()
	n.runs++
	fmt.Fprintf(logf, "=== harness: run %d at %s\n", n.runs, time.Now().Format(time.RFC3339Nano))
	n.logOff, _ = logf.Seek(0, io.SeekEnd)
	cmd := exec.Command(exe, "run", "--allow-stdin-close", n.dir)
	cmd.Dir = n.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	// A fixed hash seed: Tahoe's upload places shares by iterating a
	// Python set of server IDs, so with a random seed each client process
	// may place one file differently (TestTahoeMove compares placements).
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "PYTHONHASHSEED=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		n.mu.Unlock()
		return err
	}
	exited := make(chan struct{})
	n.cmd, n.exited, n.waitErr = cmd, exited, nil
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		n.waitErr = err
		n.mu.Unlock()
		close(exited)
	}()
	return nil
}

func (n *tahoeNode) waitReady(d time.Duration) error {
	n.mu.Lock()
	exited, web, tub := n.exited, n.webPort, n.tubPort
	n.mu.Unlock()
	webLine := fmt.Sprintf("TahoeLAFSSite starting on %d", web)
	tubLine := fmt.Sprintf("Listener starting on %d\n", tub)
	deadline := time.Now().Add(d)
	runLine := "] client running\n"
	if n.kind == "introducer" {
		runLine = "] introducer running\n"
	}
	var webSeen, ranAt time.Time
	var why string
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			n.mu.Lock()
			err := n.waitErr
			n.mu.Unlock()
			if l := n.runLog(); strings.Contains(l, "Address already in use") || strings.Contains(l, "CannotListenError") {
				return fmt.Errorf("exited (%v): %w", err, errPortTaken)
			}
			return fmt.Errorf("exited before it was up: %v", err)
		default:
		}
		log := n.runLog()
		switch {
		case strings.Contains(log, "Address already in use") || strings.Contains(log, "CannotListenError"):
			return fmt.Errorf("cannot listen: %w", errPortTaken)
		case !strings.Contains(log, webLine):
			why = "web port not listening yet"
		case tub != 0 && !strings.Contains(log, tubLine):
			if webSeen.IsZero() {
				webSeen = time.Now()
			}
			why = "tub port not listening yet"
			// Foolscap swallows a failed listen: the line never comes.
			// It comes before Node.startService logs "<type> running".
			if ranAt.IsZero() && strings.Contains(log, runLine) {
				ranAt = time.Now()
			}
			if time.Since(webSeen) > 10*time.Second || !ranAt.IsZero() && time.Since(ranAt) > 2*time.Second {
				return fmt.Errorf("node running but no %q: %w", strings.TrimSpace(tubLine), errPortTaken)
			}
		default:
			code, _, err := tahoeHTTP(http.MethodGet, n.webURL()+"/", nil, 5*time.Second)
			if err != nil || code != http.StatusOK {
				why = fmt.Sprintf("GET /: %d %v", code, err)
				break
			}
			if n.kind == "introducer" {
				furl, _ := os.ReadFile(filepath.Join(n.dir, "private", "introducer.furl"))
				if !strings.Contains(string(furl), fmt.Sprintf("@tcp:127.0.0.1:%d/", tub)) {
					why = "no private/introducer.furl for this tub port yet"
					break
				}
			}
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not up after %v: %s", d, why)
}

// kill sends SIGKILL to the node's process group and waits for it.
func (n *tahoeNode) kill() {
	cmd, exited, alive := n.current()
	if alive {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Process.Kill()
		<-exited
	}
	os.Remove(filepath.Join(n.dir, "running.process"))
}

// current returns the node's process, its exit channel, and whether it
// is still running.
func (n *tahoeNode) current() (*exec.Cmd, chan struct{}, bool) {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return nil, nil, false
	}
	select {
	case <-exited:
		return cmd, exited, false
	default:
		return cmd, exited, true
	}
}

// stop asks the node to shut down (SIGTERM), waits up to 30 s, then kills
// it.
func (n *tahoeNode) stop() {
	n.t.Helper()
	cmd, exited, alive := n.current()
	if !alive {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		n.t.Logf("tahoe %s: still running 30 s after SIGTERM; killing it", n.name)
		n.kill()
	}
	os.Remove(filepath.Join(n.dir, "running.process"))
}

// restart is stop then start (same ports, keys and FURLs).
func (n *tahoeNode) restart() {
	n.t.Helper()
	n.stop()
	n.start()
}

// startTahoeNodes starts nodes in parallel and fails t if any fails.
func startTahoeNodes(t *testing.T, nodes ...*tahoeNode) {
	t.Helper()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.startErr()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// furl is an introducer's FURL (private/introducer.furl), once started.
func (n *tahoeNode) furl() string {
	n.t.Helper()
	return strings.TrimSpace(readFile(n.t, filepath.Join(n.dir, "private", "introducer.furl")))
}

// nodeID is the node's server id: node.pubkey "pub-v0-X" as "v0-X".
func (n *tahoeNode) nodeID() string {
	n.t.Helper()
	pub := strings.TrimSpace(readFile(n.t, filepath.Join(n.dir, "node.pubkey")))
	if !strings.HasPrefix(pub, "pub-v0-") {
		n.t.Fatalf("%s: node.pubkey %q", n.name, pub)
	}
	return strings.TrimPrefix(pub, "pub-")
}

// permutationSeed is the storage server's permutation-seed file, the
// permutation-seed-base32 it announces. For a fresh server Tahoe 1.20
// writes base32(the ASCII of the key's base32), 84 characters — not the
// raw-key base32 its storage client falls back to when an announcement
// has no seed.
func (n *tahoeNode) permutationSeed() string {
	n.t.Helper()
	return strings.TrimSpace(readFile(n.t, filepath.Join(n.dir, "permutation-seed")))
}

// storageDir is where a storage server keeps storage/shares.
func (n *tahoeNode) storageDir() string { return filepath.Join(n.dir, "storage") }

// shareFiles lists the share files this server holds for storage index
// si (base32), as storage/shares/si[:2]/si/SHNUM.
func (n *tahoeNode) shareFiles(si string) []string {
	if len(si) < 2 {
		return nil
	}
	dir := filepath.Join(n.storageDir(), "shares", si[:2], si)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// countShares counts the shares server holds of cap's file.
func countShares(t *testing.T, server *tahoeNode, cap string) int {
	t.Helper()
	si, err := tahoeStorageIndex(cap)
	if err != nil {
		t.Fatal(err)
	}
	return len(server.shareFiles(si))
}

// ---------------------------------------------------------------------------
// Web API.

var tahoeClient = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

func tahoeHTTP(method, u string, body []byte, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return 0, nil, err
	}
	resp, err := tahoeClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// call does one web API request and fails t unless it answers 2xx.
func (n *tahoeNode) call(t *testing.T, method, path string, body []byte) []byte {
	t.Helper()
	code, b, err := tahoeHTTP(method, n.webURL()+path, body, 2*time.Minute)
	if err != nil {
		t.Fatalf("tahoe %s: %s %s: %v", n.name, method, path, err)
	}
	if code/100 != 2 {
		t.Fatalf("tahoe %s: %s %s: HTTP %d\n%s", n.name, method, path, code, tahoeTail(string(b), 2000))
	}
	return b
}

func capPath(cap string) string { return "/uri/" + url.PathEscape(cap) }

// put uploads data as an unlinked file (PUT /uri) and returns its cap.
// extraArgs are query parameters, e.g. "format=MDMF" for a mutable file.
func (n *tahoeNode) put(t *testing.T, data []byte, extraArgs ...string) string {
	t.Helper()
	path := "/uri"
	if len(extraArgs) > 0 {
		path += "?" + strings.Join(extraArgs, "&")
	}
	return strings.TrimSpace(string(n.call(t, http.MethodPut, path, data)))
}

// get downloads cap's contents (GET /uri/CAP).
func (n *tahoeNode) get(t *testing.T, cap string) []byte {
	t.Helper()
	return n.call(t, http.MethodGet, capPath(cap), nil)
}

// mkdir makes a new unlinked mutable directory and returns its write cap
// (URI:DIR2:...).
func (n *tahoeNode) mkdir(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(string(n.call(t, http.MethodPost, "/uri?t=mkdir", nil)))
}

// putInDir writes data as dircap/name (replacing any) and returns the
// file's cap.
func (n *tahoeNode) putInDir(t *testing.T, dircap, name string, data []byte) string {
	t.Helper()
	return strings.TrimSpace(string(n.call(t, http.MethodPut, capPath(dircap)+"/"+url.PathEscape(name), data)))
}

// getFromDir reads dircap/name.
func (n *tahoeNode) getFromDir(t *testing.T, dircap, name string) []byte {
	t.Helper()
	return n.call(t, http.MethodGet, capPath(dircap)+"/"+url.PathEscape(name), nil)
}

// dirList lists a directory: child name -> the child's read-write cap (or
// read-only cap when it has none).
func (n *tahoeNode) dirList(t *testing.T, dircap string) map[string]string {
	t.Helper()
	var node []json.RawMessage // ["dirnode", {...}]
	if err := json.Unmarshal(n.call(t, http.MethodGet, capPath(dircap)+"?t=json", nil), &node); err != nil || len(node) != 2 {
		t.Fatalf("tahoe %s: directory JSON: %v", n.name, err)
	}
	var d struct {
		Children map[string][]json.RawMessage `json:"children"`
	}
	if err := json.Unmarshal(node[1], &d); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for name, kid := range d.Children {
		var c struct {
			RW string `json:"rw_uri"`
			RO string `json:"ro_uri"`
		}
		if len(kid) == 2 {
			json.Unmarshal(kid[1], &c)
		}
		out[name] = c.RW
		if c.RW == "" {
			out[name] = c.RO
		}
	}
	return out
}

// check asks the node to check cap's shares on the grid.
func (n *tahoeNode) check(t *testing.T, cap string) tahoeCheck {
	t.Helper()
	var c tahoeCheck
	if err := json.Unmarshal(n.call(t, http.MethodPost, capPath(cap)+"?t=check&output=JSON", nil), &c); err != nil {
		t.Fatalf("tahoe %s: check JSON: %v", n.name, err)
	}
	return c
}

// welcome reads a client-type node's /?t=json.
func (n *tahoeNode) welcome() (tahoeWelcome, error) {
	var w tahoeWelcome
	code, b, err := tahoeHTTP(http.MethodGet, n.webURL()+"/?t=json", nil, 10*time.Second)
	if err != nil {
		return w, err
	}
	if code != http.StatusOK {
		return w, fmt.Errorf("GET /?t=json: HTTP %d: %s", code, tahoeTail(string(b), 500))
	}
	var raw struct {
		Introducers struct {
			Statuses []string `json:"statuses"`
		} `json:"introducers"`
		Servers []struct {
			NodeID          string   `json:"nodeid"`
			Status          string   `json:"connection_status"`
			AvailableSpace  *int64   `json:"available_space"`
			Nickname        string   `json:"nickname"`
			Version         *string  `json:"version"`
			LastReceived    *float64 `json:"last_received_data"`
			PermutationSeed *string  `json:"permutation-seed-base32"` // absent in 1.20
		} `json:"servers"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return w, fmt.Errorf("GET /?t=json: %v", err)
	}
	w.Introducers = raw.Introducers.Statuses
	for _, s := range raw.Servers {
		w.Servers = append(w.Servers, tahoeServer{
			ID:              s.NodeID,
			Nickname:        s.Nickname,
			Connected:       tahoeConnected(s.Status),
			Status:          s.Status,
			Version:         s.Version,
			AvailableSpace:  s.AvailableSpace,
			LastReceived:    s.LastReceived,
			PermutationSeed: s.PermutationSeed,
		})
	}
	return w, nil
}

// tahoeConnected reads a connection_status summary: "connected" (HTTP
// storage), "Connected to HINT via HANDLER" / "Connected via listener"
// (Foolscap).
func tahoeConnected(summary string) bool {
	return strings.HasPrefix(strings.ToLower(summary), "connected")
}

// servers lists the storage servers the node knows (from introducers,
// servers.yaml or its cache), connected or not.
func (n *tahoeNode) servers() ([]tahoeServer, error) {
	w, err := n.welcome()
	return w.Servers, err
}

// server is servers() for one id.
func (n *tahoeNode) server(id string) (tahoeServer, bool, error) {
	ss, err := n.servers()
	for _, s := range ss {
		if s.ID == id {
			return s, true, err
		}
	}
	return tahoeServer{}, false, err
}

// waitServers waits until cond holds for the node's servers.
func (n *tahoeNode) waitServers(t *testing.T, d time.Duration, what string, cond func([]tahoeServer) (bool, string)) time.Duration {
	t.Helper()
	return waitFor(t, d, fmt.Sprintf("tahoe %s: %s", n.name, what), func() (bool, string) {
		ss, err := n.servers()
		if err != nil {
			return false, err.Error()
		}
		return cond(ss)
	})
}

// waitConnected waits until the node is connected to every server in ids.
func (n *tahoeNode) waitConnected(t *testing.T, ids []string, d time.Duration) time.Duration {
	t.Helper()
	return n.waitServers(t, d, fmt.Sprintf("connected to %d servers", len(ids)), func(ss []tahoeServer) (bool, string) {
		return serversIn(ss, ids, true)
	})
}

// waitNotConnected waits until the node knows every server in ids but is
// connected to none of them.
func (n *tahoeNode) waitNotConnected(t *testing.T, ids []string, d time.Duration) time.Duration {
	t.Helper()
	return n.waitServers(t, d, fmt.Sprintf("not connected to %d servers", len(ids)), func(ss []tahoeServer) (bool, string) {
		return serversIn(ss, ids, false)
	})
}

func serversIn(ss []tahoeServer, ids []string, connected bool) (bool, string) {
	byID := map[string]tahoeServer{}
	for _, s := range ss {
		byID[s.ID] = s
	}
	for _, id := range ids {
		s, ok := byID[id]
		if !ok {
			return false, fmt.Sprintf("%s unknown; knows %v", id, ss)
		}
		if s.Connected != connected {
			return false, fmt.Sprintf("%s: %.200s", id, s.Status)
		}
	}
	return true, ""
}

// cachedAnnouncements reads the node's cache for introducer petname
// (private/introducer_PETNAME_cache.yaml): the storage announcements it
// received from that introducer, by server id. Missing file: empty map.
func (n *tahoeNode) cachedAnnouncements(petname string) (map[string]tahoeAnnouncement, error) {
	out := map[string]tahoeAnnouncement{}
	b, err := os.ReadFile(filepath.Join(n.dir, "private", "introducer_"+petname+"_cache.yaml"))
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	var entries []struct {
		Ann  map[string]any `yaml:"ann"`
		KeyS string         `yaml:"key_s"`
	}
	if err := yaml.Unmarshal(b, &entries); err != nil {
		return nil, err
	}
	for _, e := range entries {
		a := tahoeAnnouncement{Key: e.KeyS, Ann: e.Ann}
		a.Nickname, _ = e.Ann["nickname"].(string)
		a.FURL, _ = e.Ann["anonymous-storage-FURL"].(string)
		a.PermutationSeed, _ = e.Ann["permutation-seed-base32"].(string)
		if l, ok := e.Ann["anonymous-storage-NURLs"].([]any); ok {
			for _, u := range l {
				if s, ok := u.(string); ok {
					a.NURLs = append(a.NURLs, s)
				}
			}
		}
		switch v := e.Ann["seqnum"].(type) {
		case int:
			a.Seqnum = int64(v)
		case int64:
			a.Seqnum = v
		}
		out[e.KeyS] = a
	}
	return out, nil
}

// introducerSummary reads an introducer's /?t=json: subscriptions and
// announcements per service name.
func (n *tahoeNode) introducerSummary() (subscriptions, announcements map[string]int, err error) {
	code, b, err := tahoeHTTP(http.MethodGet, n.webURL()+"/?t=json", nil, 10*time.Second)
	if err != nil {
		return nil, nil, err
	}
	if code != http.StatusOK {
		return nil, nil, fmt.Errorf("HTTP %d", code)
	}
	var s struct {
		Subs map[string]int `json:"subscription_summary"`
		Anns map[string]int `json:"announcement_summary"`
	}
	err = json.Unmarshal(b, &s)
	return s.Subs, s.Anns, err
}

// ---------------------------------------------------------------------------
// Storage indexes.

var tahoeB32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// tahoeTaggedHash is Tahoe's tagged SHA-256d: sha256(sha256(netstring(tag)
// + val)), truncated to n bytes.
func tahoeTaggedHash(tag string, val []byte, n int) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s,", len(tag), tag)
	h.Write(val)
	h2 := sha256.Sum256(h.Sum(nil))
	return h2[:n]
}

// tahoeStorageIndex derives the base32 storage index of a file or
// directory cap (CHK, SSK, MDMF, their read-only and verify caps, and
// DIR2 over any of them), as uri.py does. LIT caps have none.
func tahoeStorageIndex(cap string) (string, error) {
	f := strings.Split(cap, ":")
	if len(f) < 3 || f[0] != "URI" {
		return "", fmt.Errorf("not a cap: %q", cap)
	}
	kind := f[1]
	if kind == "DIR2" {
		kind = "SSK"
	} else if strings.HasPrefix(kind, "DIR2-") {
		kind = strings.TrimPrefix(kind, "DIR2-")
		if kind == "RO" || kind == "Verifier" {
			kind = "SSK-" + kind
		}
	}
	key, err := tahoeB32.DecodeString(f[2])
	if err != nil || len(key) != 16 {
		return "", fmt.Errorf("cap %q: bad key field: %v", cap, err)
	}
	var si []byte
	switch kind {
	case "CHK":
		si = tahoeTaggedHash("allmydata_immutable_key_to_storage_index_v1", key, 16)
	case "SSK", "MDMF":
		readkey := tahoeTaggedHash("allmydata_mutable_writekey_to_readkey_v1", key, 16)
		si = tahoeTaggedHash("allmydata_mutable_readkey_to_storage_index_v1", readkey, 16)
	case "SSK-RO", "MDMF-RO":
		si = tahoeTaggedHash("allmydata_mutable_readkey_to_storage_index_v1", key, 16)
	case "CHK-Verifier", "SSK-Verifier", "MDMF-Verifier":
		si = key
	default:
		return "", fmt.Errorf("cap %q: no storage index for %s", cap, f[1])
	}
	return tahoeB32.EncodeToString(si), nil
}

// ---------------------------------------------------------------------------
// The baseline: the harness against a real Tahoe introducer.

// TestTahoeHarness runs a real Tahoe grid — introducer, three storage
// servers, one 2-of-3 client (happy 3) — through the harness: the client
// connects to every server, immutable and mutable data round-trip, each
// server holds one share of each, the client's view of each server's
// permutation seed is the server's, and killed, stopped and restarted
// servers show up as such in the client's /?t=json.
func TestTahoeHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 5 Tahoe-LAFS processes")
	}
	tahoeCommand(t)
	t.Logf("using %s (%s)", tahoeExe, tahoeVersion)
	began := time.Now()
	phase := began
	lap := func(what string) {
		t.Logf("%-34s %5.1f s (total %5.1f s)", what, time.Since(phase).Seconds(), time.Since(began).Seconds())
		phase = time.Now()
	}
	root := t.TempDir()

	intro := newTahoeIntroducer(t, root, "introducer")
	intro.start()
	furl := intro.furl()
	if !strings.HasPrefix(furl, "pb://") || !strings.Contains(furl, fmt.Sprintf("@tcp:127.0.0.1:%d/", intro.tubPort)) {
		t.Fatalf("introducer FURL %q", furl)
	}
	lap("introducer up")

	intros := map[string]string{"default": furl}
	var servers []*tahoeNode
	for i := range 3 {
		servers = append(servers, newTahoeStorage(t, root, fmt.Sprintf("storage%d", i), intros))
	}
	client := newTahoeClient(t, root, "client", intros, 2, 3, 3)
	startTahoeNodes(t, append(slices.Clone(servers), client)...)
	lap("3 servers and client up")

	var ids []string
	nick := map[string]string{}
	for _, s := range servers {
		id := s.nodeID()
		ids = append(ids, id)
		nick[id] = s.name
	}
	client.waitConnected(t, ids, 60*time.Second)
	lap("client connected to all 3")
	w, err := client.welcome()
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Introducers) != 1 || !tahoeConnected(w.Introducers[0]) {
		t.Fatalf("client's introducers: %q", w.Introducers)
	}
	if len(w.Servers) != 3 {
		t.Fatalf("client knows %d servers, want 3: %+v", len(w.Servers), w.Servers)
	}
	for _, s := range w.Servers {
		if s.Nickname != nick[s.ID] || s.Version == nil || !strings.Contains(*s.Version, "1.20") {
			t.Fatalf("client's view of %s: %+v", s.ID, s)
		}
	}
	waitFor(t, 30*time.Second, "the introducer to hold 3 storage announcements", func() (bool, string) {
		subs, anns, err := intro.introducerSummary()
		return err == nil && anns["storage"] == 3 && subs["storage"] == 4, fmt.Sprint(subs, anns, err)
	})

	// Permutation seeds: /?t=json does not show them; the client's
	// introducer cache holds what it was announced.
	cache, err := client.cachedAnnouncements("default")
	if err != nil {
		t.Fatal(err)
	}
	if len(cache) != 3 {
		t.Fatalf("client's introducer cache has %d announcements, want 3", len(cache))
	}
	for i, s := range servers {
		seed := s.permutationSeed()
		a, ok := cache[ids[i]]
		if !ok || a.PermutationSeed != seed || a.Nickname != s.name || len(a.NURLs) != 1 ||
			!strings.Contains(a.FURL, fmt.Sprintf("@tcp:127.0.0.1:%d/", s.tubPort)) {
			t.Fatalf("%s: cached announcement %+v; its permutation-seed is %q", s.name, a, seed)
		}
		if srv, _, _ := client.server(ids[i]); srv.PermutationSeed != nil && *srv.PermutationSeed != seed {
			t.Fatalf("%s: client reports seed %q, server has %q", s.name, *srv.PermutationSeed, seed)
		}
	}

	// Immutable: 2-of-3, happy 3, on 3 servers: one share each.
	data := make([]byte, 100_000)
	rand.Read(data)
	cap := client.put(t, data)
	lap("100 KB immutable put")
	if !strings.HasPrefix(cap, "URI:CHK:") || !strings.HasSuffix(cap, ":2:3:100000") {
		t.Fatalf("put returned %q", cap)
	}
	if got := client.get(t, cap); !bytes.Equal(got, data) {
		t.Fatalf("get returned %d bytes, not the %d put", len(got), len(data))
	}
	lap("immutable get")
	si, err := tahoeStorageIndex(cap)
	if err != nil {
		t.Fatal(err)
	}
	chk := client.check(t, cap)
	if chk.StorageIndex != si || !chk.Results.Healthy || chk.Results.CountSharesGood != 3 || chk.Results.CountGoodHosts != 3 {
		t.Fatalf("check of %s (storage index %s): %+v", cap, si, chk)
	}
	for i, s := range servers {
		if n := countShares(t, s, cap); n != 1 {
			t.Fatalf("%s holds %d shares of %s, want 1", s.name, n, si)
		}
		var holders []string
		for _, h := range chk.Results.ShareMap {
			holders = append(holders, h...)
		}
		if !slices.Contains(holders, ids[i]) {
			t.Fatalf("check's sharemap %v lacks %s", chk.Results.ShareMap, s.name)
		}
	}

	// Mutable directory: write, read, overwrite, read.
	dir := client.mkdir(t)
	if !strings.HasPrefix(dir, "URI:DIR2:") {
		t.Fatalf("mkdir returned %q", dir)
	}
	first := []byte(strings.Repeat("first version of the file, long enough not to be a LIT cap\n", 20))
	fcap := client.putInDir(t, dir, "hello.txt", first)
	if got := client.getFromDir(t, dir, "hello.txt"); !bytes.Equal(got, first) {
		t.Fatalf("getFromDir: %q", tahoeTail(string(got), 200))
	}
	if l := client.dirList(t, dir); len(l) != 1 || l["hello.txt"] != fcap {
		t.Fatalf("directory lists %v, want hello.txt -> %s", l, fcap)
	}
	second := append(slices.Clone(first), "and a second line\n"...)
	client.putInDir(t, dir, "hello.txt", second)
	if got := client.getFromDir(t, dir, "hello.txt"); !bytes.Equal(got, second) {
		t.Fatalf("getFromDir after overwrite: %q", tahoeTail(string(got), 200))
	}
	dsi, err := tahoeStorageIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c := client.check(t, dir); c.StorageIndex != dsi || !c.Results.Healthy {
		t.Fatalf("check of the directory (storage index %s): %+v", dsi, c)
	}
	total := 0
	for _, s := range servers {
		total += countShares(t, s, dir)
	}
	if total != 3 {
		t.Fatalf("the directory has %d shares on the servers, want 3", total)
	}
	lap("mutable directory write/read")

	// A killed server is reported not connected; the other two still are,
	// and 2-of-3 data is still readable.
	servers[2].kill()
	client.waitNotConnected(t, ids[2:], 30*time.Second)
	lap("killed server seen disconnected")
	if s, _, _ := client.server(ids[2]); s.Nickname != "storage2" {
		t.Fatalf("the killed server: %+v", s)
	}
	if ok, why := serversInNow(client, ids[:2], true); !ok {
		t.Fatalf("after killing storage2: %s", why)
	}
	if got := client.get(t, cap); !bytes.Equal(got, data) {
		t.Fatal("get with one of three servers down returned other bytes")
	}

	// Back after a SIGKILL (stale pid file), and a clean restart.
	servers[2].start()
	client.waitConnected(t, ids, 60*time.Second)
	lap("killed server back")
	servers[0].restart()
	client.waitConnected(t, ids, 60*time.Second)
	lap("server restarted")
	if n := countShares(t, servers[0], cap); n != 1 {
		t.Fatalf("storage0 holds %d shares after restart", n)
	}
	if got := client.get(t, cap); !bytes.Equal(got, data) {
		t.Fatal("get after the restarts returned other bytes")
	}

	// introducers.yaml with two petnames: both connect, each cache fills.
	intro2 := newTahoeIntroducer(t, root, "introducer2")
	intro2.start()
	client.setIntroducers(map[string]string{"default": furl, "second": intro2.furl()})
	client.restart()
	waitFor(t, 30*time.Second, "the client to connect to both introducers", func() (bool, string) {
		w, err := client.welcome()
		return err == nil && len(w.Introducers) == 2 && tahoeConnected(w.Introducers[0]) && tahoeConnected(w.Introducers[1]),
			fmt.Sprint(w.Introducers, err)
	})
	client.waitConnected(t, ids, 60*time.Second)
	lap("client on two introducers")
	total = 0
	for _, s := range servers {
		total += countShares(t, s, cap)
	}
	if total != 3 {
		t.Fatalf("%d shares of the immutable file after the restarts, want 3", total)
	}
}

// tahoeTail is the last n bytes of s.
func tahoeTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// serversInNow is serversIn on the node's current /?t=json.
func serversInNow(n *tahoeNode, ids []string, connected bool) (bool, string) {
	ss, err := n.servers()
	if err != nil {
		return false, err.Error()
	}
	return serversIn(ss, ids, connected)
}
