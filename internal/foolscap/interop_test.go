package foolscap

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	riPublisher  = "RIIntroducerPublisherAndSubscriberService_v2.tahoe.allmydata.com"
	riSubscriber = "RIIntroducerSubscriberClient_v2.tahoe.allmydata.com"
)

// requirePython skips unless python3-foolscap is importable; with CI set a
// missing foolscap is a failure.
func requirePython(t *testing.T) {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import foolscap").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3-foolscap is required under CI: %v", err)
		}
		t.Skipf("python3-foolscap not available: %v", err)
	}
}

// testIntroducer mimics the introducer service shape Tahoe uses.
type testIntroducer struct {
	mu          sync.Mutex
	anns        []Tuple
	canaries    []*RemoteRef
	subscribers []*RemoteRef
	subInfo     Dict
	conns       []*Conn
	triggerErr  chan error
}

func newTestIntroducer() *testIntroducer {
	return &testIntroducer{triggerErr: make(chan error, 1)}
}

func (ti *testIntroducer) object() *Methods {
	return &Methods{Interface: riPublisher, Funcs: map[string]MethodFunc{
		"get_version": func(ctx context.Context, c *Call) (Value, error) {
			return Dict{
				{[]byte("http://allmydata.org/tahoe/protocols/introducer/v2"), Dict{}},
				{[]byte("application-version"), []byte("grapevine-test")},
			}, nil
		},
		"publish_v2": func(ctx context.Context, c *Call) (Value, error) {
			a, _ := c.Arg(0, "announcement")
			ann, ok := a.(Tuple)
			if !ok || len(ann) != 3 {
				return nil, fmt.Errorf("announcement is %T, want 3-tuple", a)
			}
			for _, x := range ann {
				if _, ok := x.([]byte); !ok {
					return nil, fmt.Errorf("announcement element is %T", x)
				}
			}
			canary, _ := c.Arg(1, "canary")
			cr, ok := canary.(*RemoteRef)
			if !ok {
				return nil, fmt.Errorf("canary is %T", canary)
			}
			switch string(ann[0].([]byte)) {
			case "bad":
				return nil, errors.New("bad announcement")
			case "trigger":
				ti.mu.Lock()
				subs := append([]*RemoteRef(nil), ti.subscribers...)
				ti.mu.Unlock()
				var err error = errors.New("no subscribers")
				for _, s := range subs {
					_, err = s.Call(ctx, "announce_v2", Set{Tuple{[]byte("boom"), []byte(""), []byte("")}})
				}
				ti.triggerErr <- err
				return nil, nil
			}
			ti.mu.Lock()
			ti.anns = append(ti.anns, ann)
			ti.canaries = append(ti.canaries, cr)
			ti.conns = append(ti.conns, c.Conn)
			ti.mu.Unlock()
			return nil, nil
		},
		"subscribe_v2": func(ctx context.Context, c *Call) (Value, error) {
			s, _ := c.Arg(0, "subscriber")
			sub, ok := s.(*RemoteRef)
			if !ok {
				return nil, fmt.Errorf("subscriber is %T", s)
			}
			name, _ := c.Arg(1, "service_name")
			if n, ok := name.([]byte); !ok || string(n) != "storage" {
				return nil, fmt.Errorf("service_name is %#v", name)
			}
			info, _ := c.Arg(2, "subscriber_info")
			d, ok := info.(Dict)
			if !ok {
				return nil, fmt.Errorf("subscriber_info is %T", info)
			}
			ti.mu.Lock()
			ti.subscribers = append(ti.subscribers, sub)
			ti.subInfo = d
			var set Set
			for _, a := range ti.anns {
				set = append(set, a)
			}
			ti.mu.Unlock()
			_, err := sub.Call(ctx, "announce_v2", set)
			return nil, err
		},
	}}
}

type pyEvent map[string]any

func startServer(t *testing.T, tub *Tub, obj Object, opts Options) (*Server, string) {
	t.Helper()
	srv := NewServer(tub, opts)
	name := NewSwissnum(nil)
	srv.Register(name, obj)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	return srv, FormatFURL(tub.ID(), []string{TCPHint("127.0.0.1", port)}, name)
}

// orderedTubs returns two fresh tubs, the client's ID sorting below the
// server's (cliLess) or above it: the master is the side with the larger ID.
func orderedTubs(t *testing.T, cliLess bool) (srv, cli *Tub) {
	t.Helper()
	a, err := NewTub()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewTub()
	if err != nil {
		t.Fatal(err)
	}
	if (b.ID() < a.ID()) == cliLess {
		return a, b
	}
	return b, a
}

func runPython(t *testing.T, furl, certFile, mode string, extra ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	args := append([]string{filepath.Join("testdata", "pyclient.py"), furl, certFile, mode}, extra...)
	cmd := exec.Command("/usr/bin/python3", args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return cmd, sc
}

func TestInteropPythonClient(t *testing.T) {
	requirePython(t)
	for _, goMaster := range []bool{true, false} {
		t.Run(fmt.Sprintf("goMaster=%v", goMaster), func(t *testing.T) {
			testInterop(t, goMaster)
		})
	}
}

func testInterop(t *testing.T, goMaster bool) {
	dir := t.TempDir()
	srvTub, cli := orderedTubs(t, goMaster)
	certFile := filepath.Join(dir, "client.pem")
	if err := os.WriteFile(certFile, cli.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	ti := newTestIntroducer()
	srv, furl := startServer(t, srvTub, ti.object(), Options{})
	plainName := NewSwissnum(nil)
	srv.Register(plainName, &Methods{Funcs: map[string]MethodFunc{}})
	f, _ := ParseFURL(furl)
	f.Name = plainName
	_, sc := runPython(t, furl, certFile, "full", f.String())

	events := map[string]pyEvent{}
	for sc.Scan() {
		var ev pyEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		name, _ := ev["event"].(string)
		if name == "fatal" {
			t.Fatalf("python client failed:\n%s", ev["text"])
		}
		events[name] = ev
		if name == "done" {
			break
		}
	}
	if _, ok := events["done"]; !ok {
		t.Fatalf("python client did not finish; events: %v", events)
	}
	if got := events["tubid"]["tubid"]; got != cli.ID() {
		t.Errorf("python loaded our PEM as tub %v, want %s", got, cli.ID())
	}
	if got := events["connected"]["iface"]; got != riPublisher {
		t.Errorf("interface name = %v", got)
	}
	ver, _ := json.Marshal(events["version"]["version"])
	if !strings.Contains(string(ver), `application-version`) || !strings.Contains(string(ver), "grapevine-test") {
		t.Errorf("version = %s", ver)
	}
	for _, e := range []string{"published", "subscribed", "published2", "trigger"} {
		if r, ok := events[e]["result"]; !ok || r != nil {
			t.Errorf("%s result = %v (present %v), want None", e, r, ok)
		}
	}
	anns, _ := json.Marshal(events["announce_v2"])
	if !strings.Contains(string(anns), `"types":["tuple"]`) || !strings.Contains(string(anns), "v0-sig") {
		t.Errorf("announce_v2 = %s", anns)
	}
	if ev := events["error"]; ev["ok"] != true || !strings.Contains(fmt.Sprint(ev["value"]), "bad announcement") {
		t.Errorf("error event = %v", ev)
	}
	if ev := events["unknown"]; ev["ok"] != true || !strings.Contains(fmt.Sprint(ev["text"]), "foolscap.tokens.Violation") ||
		!strings.Contains(fmt.Sprint(ev["text"]), "method 'no_such_method' not defined") {
		t.Errorf("unknown-method event = %v", ev)
	}
	if ev := events["badname"]; ev["ok"] != true || !strings.Contains(fmt.Sprint(ev["text"]), "KeyError") {
		t.Errorf("bad-name event = %v", ev)
	}

	// Go -> Python error propagation
	select {
	case err := <-ti.triggerErr:
		var re *RemoteError
		if !errors.As(err, &re) || !re.Check("builtins.ValueError") || !strings.Contains(re.Value, "subscriber exploded") {
			t.Errorf("announce_v2 error = %#v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("trigger never ran")
	}

	ti.mu.Lock()
	defer ti.mu.Unlock()
	if len(ti.anns) != 2 || len(ti.canaries) != 2 || len(ti.subscribers) != 1 {
		t.Fatalf("anns=%d canaries=%d subscribers=%d", len(ti.anns), len(ti.canaries), len(ti.subscribers))
	}
	if ti.canaries[0] != ti.canaries[1] {
		t.Errorf("the same canary sent twice gave different RemoteRefs")
	}
	if ti.canaries[0].InterfaceName() != "" {
		t.Errorf("canary interface = %q", ti.canaries[0].InterfaceName())
	}
	if got := ti.subscribers[0].InterfaceName(); got != riSubscriber {
		t.Errorf("subscriber interface = %q", got)
	}
	if u := ti.subscribers[0].URL(); !strings.HasPrefix(u, "pb://"+cli.ID()+"@tcp:127.0.0.1:9/") {
		t.Errorf("subscriber URL = %q", u)
	}
	if v, ok := ti.subInfo.Get([]byte("nickname")); !ok || v != "n\u00efck" {
		t.Errorf("nickname = %#v", v)
	}
	if v, ok := ti.subInfo.Get([]byte("version")); !ok || v != int64(0) {
		t.Errorf("version = %#v", v)
	}
	if c := ti.conns[0]; c.PeerTubID() != cli.ID() {
		t.Errorf("peer tub id %s, want %s", c.PeerTubID(), cli.ID())
	}
}

func TestInteropKilledClientClosesConn(t *testing.T) {
	requirePython(t)
	dir := t.TempDir()
	srvTub, err := NewTub()
	if err != nil {
		t.Fatal(err)
	}
	cli, _ := NewTub()
	certFile := filepath.Join(dir, "client.pem")
	os.WriteFile(certFile, cli.PEM(), 0o600)
	ti := newTestIntroducer()
	// long keepalive: the kernel's FIN/RST must be what ends the connection
	_, furl := startServer(t, srvTub, ti.object(), Options{KeepaliveInterval: time.Hour, IdleTimeout: time.Hour})
	cmd, sc := runPython(t, furl, certFile, "hang")
	ready := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "READY") {
			ready = true
			break
		}
		if strings.Contains(sc.Text(), "fatal") {
			t.Fatal(sc.Text())
		}
	}
	if !ready {
		t.Fatal("python client never became ready")
	}
	ti.mu.Lock()
	conn := ti.conns[0]
	ti.mu.Unlock()
	select {
	case <-conn.Done():
		t.Fatal("connection closed before the kill")
	default:
	}
	cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-conn.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Conn.Done not closed after SIGKILL")
	}
	if conn.Err() == nil {
		t.Error("Err() is nil after close")
	}
}
