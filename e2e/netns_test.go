package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"grapevine/client"
	"grapevine/client/apitype"
	"grapevine/internal/daemon"
)

// TestNetns runs grapevine processes in separate Linux network namespaces,
// on a routed LAN and behind a NAT, cuts part of the grid off with nftables
// drop rules, kills a server, and heals the partition. It checks R1 (a
// server unreachable for W is no longer passed on) and R4 (a dead server is
// forgotten after H by the well-connected nodes only; a node that is cut
// off forgets nothing) across real links.
//
// Topology (every address exists only inside the test's namespaces):
//
//	relay 10.77.1.2, s1 10.77.2.2, s2 10.77.3.2, s3 10.77.4.2, s4 10.77.5.2:
//	    each its own namespace, one veth each to the router namespace "r"
//	    (10.77.N.1), which forwards between them; default route via r.
//	nat: a NAT router, 10.77.200.2 on the LAN side (r is 10.77.200.1),
//	    masquerading its private subnets towards r and dropping unsolicited
//	    inbound traffic. r has no route to 192.168.0.0/16.
//	c1 192.168.71.2, c2 192.168.72.2, c3 192.168.73.2: clients, each its
//	    own namespace and subnet behind nat (nat is 192.168.7N.1).
//
// s1..s4 announce storage, the relay grapevine-relay; the clients announce
// a small service of their own so that they have records too: the servers
// must learn them over the connections the clients make, since nobody can
// dial a client.
//
// The partition cuts s3 (in r's forward chain) and c3 (in nat's) off from
// everything. A silently dropped link is noticed by the daemon's idle
// timeout (6 min, not scaled by the test preset); to keep the test short
// every node's namespace sets net.ipv4.tcp_retries2 = 3, so the kernel
// gives up on unacknowledged data after about 3 s instead, as a host with
// short TCP timeouts would.
func TestNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespaces, 8 processes and a partition longer than H")
	}
	if why := netnsUnavailable(t); why != "" {
		t.Skip("netns tests: skipped: " + why)
	}
	lab := newNetLab(t)
	began := time.Now()

	// The LAN, routed by r.
	lab.add("r")
	lab.sysctl("r", "net.ipv4.ip_forward", "1")
	lanNames := []string{"relay", "s1", "s2", "s3", "s4"}
	addrs := map[string]string{}
	for i, name := range lanNames {
		n := i + 1
		lab.add(name)
		lab.veth("r", fmt.Sprintf("h%d", n), fmt.Sprintf("10.77.%d.1/24", n), name, "eth0", fmt.Sprintf("10.77.%d.2/24", n))
		lab.ip(name, "route", "add", "default", "via", fmt.Sprintf("10.77.%d.1", n))
		addrs[name] = fmt.Sprintf("10.77.%d.2", n)
	}
	// The NAT router and the clients behind it.
	lab.add("nat")
	lab.sysctl("nat", "net.ipv4.ip_forward", "1")
	lab.veth("r", "nat0", "10.77.200.1/24", "nat", "up0", "10.77.200.2/24")
	lab.ip("nat", "route", "add", "default", "via", "10.77.200.1")
	lab.nft("nat", `
table ip gvt_nat {
	chain gvtpost {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "up0" masquerade
	}
	chain gvtfwd {
		type filter hook forward priority filter; policy accept;
		iifname "up0" ct state established,related accept
		iifname "up0" drop
	}
}
`)
	clientNames := []string{"c1", "c2", "c3"}
	for i, name := range clientNames {
		n := 71 + i
		lab.add(name)
		lab.veth("nat", name, fmt.Sprintf("192.168.%d.1/24", n), name, "eth0", fmt.Sprintf("192.168.%d.2/24", n))
		lab.ip(name, "route", "add", "default", "via", fmt.Sprintf("192.168.%d.1", n))
		addrs[name] = fmt.Sprintf("192.168.%d.2", n)
	}
	for _, name := range append(slices.Clone(lanNames), clientNames...) {
		lab.sysctl(name, "net.ipv4.tcp_retries2", "3")
	}
	t.Logf("%d namespaces set up in %v", len(lab.names), time.Since(began).Round(time.Millisecond))

	// The nodes.
	root := t.TempDir()
	relay := lab.start(root, "relay", addrs["relay"], []string{"--service", "grapevine-relay=gv://relay"})
	boot := relay.locator()
	var servers, clients []*nsNode
	for i, name := range lanNames[1:] {
		servers = append(servers, lab.start(root, name, addrs[name],
			[]string{"--service", fmt.Sprintf("storage=pb://s%d@tcp:%s:3457/swiss", i+1, addrs[name])}, boot))
	}
	clientsStart := time.Now()
	for _, name := range clientNames {
		clients = append(clients, lab.start(root, name, addrs[name],
			[]string{"--service", "gvt-client=gv://" + name}, boot))
	}
	s1, s2, s3, s4 := servers[0], servers[1], servers[2], servers[3]
	c1, c2, c3 := clients[0], clients[1], clients[2]
	all := append(append([]*nsNode{relay}, servers...), clients...)
	for _, n := range all {
		n.id() // every node is listening and has written its locator
		if !strings.HasSuffix(n.locator(), "@"+n.addr+":7370") {
			t.Fatalf("%s's locator %s is not at its namespace address %s:7370", n.name, n.locator(), n.addr)
		}
	}
	started := time.Now()

	// Everyone learns everyone: clients dial out through the NAT to the
	// relay, every server and each other; servers and the relay learn the
	// clients' records over the connections the clients made.
	took := waitFor(t, 30*time.Second, "every node to know every other, and every client to be connected to every node", func() (bool, string) {
		for _, n := range all {
			v, err := n.view()
			if err != nil {
				return false, n.name + ": " + err.Error()
			}
			for _, m := range all {
				if m == n {
					continue
				}
				s := v[m.id()]
				if len(s.Services) == 0 || !s.Live {
					return false, fmt.Sprintf("%s does not hold %s live: %+v", n.name, m.name, s)
				}
				if n.client() && !s.Connected {
					return false, fmt.Sprintf("client %s not connected to %s: %s", n.name, m.name, s.LastError)
				}
				if !n.client() && m.client() && !s.Connected {
					return false, fmt.Sprintf("%s has no connection from client %s", n.name, m.name)
				}
			}
		}
		return true, ""
	})
	t.Logf("every client connected to the relay, the 4 servers and the other clients across the NAT, and every node holding all 8 records live, %v after the first client started (%v after the last)",
		time.Since(clientsStart).Round(time.Millisecond), took.Round(time.Millisecond))

	// The NAT: clients dial out, nobody dials in.
	for _, from := range []*nsNode{relay, s1} {
		for _, c := range clients {
			conn, err := nsDial(from.ns, c.addr+":7370", 2*time.Second)
			if err == nil {
				conn.Close()
				t.Fatalf("%s dialled client %s at %s:7370 behind the NAT", from.name, c.name, c.addr)
			}
			if from == relay && c == c1 {
				t.Logf("dial from the LAN into the NAT refused as it should be: %v", err)
			}
		}
		conn, err := nsDial(from.ns, "10.77.200.2:7370", 2*time.Second)
		if err == nil {
			conn.Close()
			t.Fatalf("%s dialled the NAT's public address", from.name)
		}
		if from == relay {
			t.Logf("dial from the LAN to the NAT's own address refused: %v", err)
		}
	}
	for _, d := range []struct{ from, to *nsNode }{{c1, s1}, {c1, relay}, {c2, c1}} {
		conn, err := nsDial(d.from.ns, d.to.addr+":7370", 2*time.Second)
		if err != nil {
			t.Fatalf("%s cannot dial %s: %v", d.from.name, d.to.name, err)
		}
		conn.Close()
	}

	// Record counts before the partition.
	recordsBefore := map[string]int{}
	for _, n := range all {
		st, err := n.state()
		if err != nil {
			t.Fatal(err)
		}
		recordsBefore[n.name] = st.Records
		if st.Tombstones != 0 {
			t.Fatalf("%s has %d tombstones before anything left", n.name, st.Tombstones)
		}
	}

	// The partition: s3 and c3 cut off from everything, and s4 killed.
	sideA := []*nsNode{relay, s1, s2, c1, c2}
	isolated := []*nsNode{s3, c3}
	s4ID := s4.id()
	s4.kill()
	killed := time.Now()
	lab.partition(true)
	cut := time.Now()
	for _, n := range []*nsNode{relay, c1} {
		if s, err := n.server(s3.id()); err != nil || !s.Live {
			t.Fatalf("%s right after the cut: s3 %+v %v (want still relayed)", n.name, s, err)
		}
	}

	// R1: once the cut links have timed out, the side that keeps the relay
	// passes on neither the cut-off nodes nor the dead server, W after the
	// last seqnum it had of them (at the latest the cut), and the cut-off
	// nodes pass on nothing.
	waitFor(t, 20*time.Second, "the cut links to close on both sides", func() (bool, string) {
		for _, n := range all {
			if n == s4 {
				continue
			}
			v, err := n.view()
			if err != nil {
				return false, err.Error()
			}
			for _, m := range all {
				if s := v[m.id()]; s.Connected && (slices.Contains(isolated, n) || slices.Contains(isolated, m)) {
					return false, fmt.Sprintf("%s still connected to %s", n.name, m.name)
				}
			}
		}
		return true, ""
	})
	linksClosed := time.Now()
	t.Logf("the cut links closed on both sides %v after the cut (tcp_retries2 = 3)", linksClosed.Sub(cut).Round(time.Millisecond))
	relays := func(nodes, of []*nsNode) func() (bool, string) {
		return func() (bool, string) {
			for _, n := range nodes {
				v, err := n.view()
				if err != nil {
					return false, err.Error()
				}
				for _, m := range of {
					if s := v[m.id()]; m != n && s.Live {
						return false, fmt.Sprintf("%s still relays %s: %+v", n.name, m.name, s)
					}
				}
			}
			return true, ""
		}
	}
	r1By := cut.Add(W)
	if linksClosed.After(r1By) {
		r1By = linksClosed
	}
	r1By = r1By.Add(3 * time.Second)
	waitFor(t, time.Until(r1By), "side A to stop relaying s3, c3 and the dead s4 (R1)", relays(sideA, []*nsNode{s3, c3, s4}))
	t.Logf("R1: s3, c3 (cut off) and s4 (killed) relayed by none of relay, s1, s2, c1, c2 %v after the cut (W = %v)", time.Since(cut).Round(time.Millisecond), W)
	waitFor(t, time.Until(r1By), "the cut-off nodes to relay nothing (R1)", relays(isolated, all))
	t.Logf("R1: the cut-off s3 and c3 relay nobody %v after the cut", time.Since(cut).Round(time.Millisecond))

	// R4: the well-connected side forgets the dead server after H, and not
	// before. The relay and the clients were connected to it, so their last
	// good sighting of it is the kill; s1 and s2 only heard its refreshes,
	// the last up to one refresh interval (3 s) before it. Then they forget
	// the cut-off nodes too, H after their last good sighting: to them they
	// are gone.
	forgot := func(n, m *nsNode) (time.Time, error) {
		st, err := n.state()
		if err != nil {
			return time.Time{}, err
		}
		for _, f := range st.Forgotten {
			if f.ID == m.id() {
				return f.At, nil
			}
		}
		return time.Time{}, fmt.Errorf("%s has not forgotten %s", n.name, m.name)
	}
	forgetCheck := func(what string, of *nsNode, from, latest time.Time) {
		t.Helper()
		waitFor(t, time.Until(latest.Add(H+5*time.Second)), "side A to forget "+what, func() (bool, string) {
			for _, n := range sideA {
				if _, err := forgot(n, of); err != nil {
					return false, err.Error()
				}
			}
			return true, ""
		})
		var times []string
		for _, n := range sideA {
			at, _ := forgot(n, of)
			early := H - time.Second
			if !n.client() && n != relay {
				early -= 3 * time.Second
			}
			if at.Sub(from) < early || at.Sub(latest) > H+5*time.Second {
				t.Errorf("%s forgot %s %v after %s (H = %v)", n.name, of.name, at.Sub(from), what, H)
			}
			times = append(times, fmt.Sprintf("%s %.2fs", n.name, at.Sub(from).Seconds()))
		}
		t.Logf("R4: %s forgotten by the well-connected nodes: %s after %s (H = %v)", of.name, strings.Join(times, ", "), what, H)
	}
	forgetCheck("the kill", s4, killed, killed)
	forgetCheck("the cut", s3, cut, linksClosed)
	forgetCheck("the cut", c3, cut, linksClosed)

	// The cut-off nodes forget nothing, although nothing good came from
	// anyone for more than H: they have no connection, so fewer than Q.
	waitFor(t, time.Until(cut.Add(H+W+15*time.Second)), "every server the cut-off nodes hold to be past H", func() (bool, string) {
		for _, n := range isolated {
			v, err := n.view()
			if err != nil {
				return false, err.Error()
			}
			for _, m := range all {
				if s := v[m.id()]; m != n && s.LastGoodAgo <= (H+time.Second).Seconds() {
					return false, fmt.Sprintf("%s last heard good of %s %.1fs ago", n.name, m.name, s.LastGoodAgo)
				}
			}
		}
		return true, ""
	})
	for _, n := range isolated {
		st, err := n.state()
		if err != nil {
			t.Fatal(err)
		}
		if st.Tombstones != 0 || st.Records != recordsBefore[n.name] || st.Connected != 0 {
			t.Fatalf("cut-off %s: %d records (had %d), %d tombstones, %d connections; want nothing forgotten and no connection",
				n.name, st.Records, recordsBefore[n.name], st.Tombstones, st.Connected)
		}
		for _, s := range st.Servers {
			if len(s.Services) == 0 || s.Tombstoned != "" {
				t.Fatalf("cut-off %s dropped %s: %+v", n.name, s.Nickname, s)
			}
		}
		deferred := n.deferredForgets()
		if n.client() && deferred[s4ID] != "not-enough-connections" {
			t.Fatalf("cut-off %s logged no forget-deferred (not-enough-connections) for s4: %v", n.name, deferred)
		}
		t.Logf("R4: cut-off %s forgot nothing %v after the cut and %v after s4's kill: %d records, 0 tombstones, 0 connections, every peer last good > H ago; %d forgets deferred (%v)",
			n.name, time.Since(cut).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond), st.Records, len(deferred), deferredReasons(deferred))
	}

	// Heal. Everything reconverges: the cut-off nodes' newer seqnums revive
	// them where they were forgotten, every client is connected to every
	// live node again, and s4 is forgotten everywhere, now also by the
	// nodes that were cut off (they are healthy again), and comes back
	// nowhere.
	lab.partition(false)
	healed := time.Now()
	live := []*nsNode{relay, s1, s2, s3, c1, c2, c3}
	took = waitFor(t, 45*time.Second, "the grid to reconverge after the heal", func() (bool, string) {
		for _, n := range live {
			v, err := n.view()
			if err != nil {
				return false, n.name + ": " + err.Error()
			}
			if s := v[s4ID]; len(s.Services) > 0 && s.Tombstoned == "" && slices.Contains(sideA, n) {
				t.Errorf("s4 came back at %s after it was forgotten: %+v", n.name, s)
			}
			for _, m := range live {
				if m == n {
					continue
				}
				s := v[m.id()]
				if len(s.Services) == 0 || !s.Live || s.Tombstoned != "" {
					return false, fmt.Sprintf("%s does not hold %s live: %+v", n.name, m.name, s)
				}
				if (n.client() || m.client() || (n == relay && !m.client())) && !s.Connected {
					return false, fmt.Sprintf("%s not connected to %s: %s", n.name, m.name, s.LastError)
				}
			}
			if s, ok := v[s4ID]; ok && (len(s.Services) > 0 || s.Live) {
				return false, fmt.Sprintf("%s still holds s4: %+v", n.name, s)
			}
		}
		return true, ""
	})
	t.Logf("reconverged %v after the heal: every client connected to relay, s1, s2, s3 and the other clients; s4 forgotten everywhere", took.Round(time.Millisecond))
	for _, n := range isolated {
		st, err := n.state()
		if err != nil {
			t.Fatal(err)
		}
		var at time.Time
		for _, f := range st.Forgotten {
			if f.ID == s4ID {
				at = f.At
			}
		}
		if at.Before(healed) {
			t.Fatalf("%s forgot s4 at %v, before the heal at %v", n.name, at, healed)
		}
		t.Logf("R4: %s forgot s4 %v after the heal, once it was connected again", n.name, at.Sub(healed).Round(time.Millisecond))
	}
	t.Logf("whole test %v, namespaces included; the nodes ran %v", time.Since(began).Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
}

// netLab owns the test's network namespaces.
type netLab struct {
	t      *testing.T
	prefix string
	names  []string // namespaces created, in order
}

// nsNode is a grapevine process in a namespace.
type nsNode struct {
	*proc
	ns, addr string
	hc       *http.Client
	cached   string // the node ID
}

func newNetLab(t *testing.T) *netLab {
	l := &netLab{t: t, prefix: fmt.Sprintf("gvt%d-", os.Getpid())}
	t.Cleanup(func() {
		for i := len(l.names) - 1; i >= 0; i-- {
			if out, err := exec.Command("ip", "netns", "del", l.names[i]).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v %s", l.names[i], err, out)
			}
		}
	})
	return l
}

// run runs a command, failing the test with its output if it fails.
func (l *netLab) run(args ...string) {
	l.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// add creates the namespace prefix+name with its loopback up.
func (l *netLab) add(name string) {
	l.t.Helper()
	ns := l.prefix + name
	l.run("ip", "netns", "add", ns)
	l.names = append(l.names, ns)
	l.ip(name, "link", "set", "lo", "up")
}

// ip runs ip(8) inside a namespace.
func (l *netLab) ip(name string, args ...string) {
	l.t.Helper()
	l.run(append([]string{"ip", "-n", l.prefix + name}, args...)...)
}

// veth links two namespaces with a veth pair created inside them (the
// host's own namespace is never touched) and brings both ends up.
func (l *netLab) veth(a, aIf, aAddr, b, bIf, bAddr string) {
	l.t.Helper()
	l.ip(a, "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", l.prefix+b)
	l.ip(a, "addr", "add", aAddr, "dev", aIf)
	l.ip(b, "addr", "add", bAddr, "dev", bIf)
	l.ip(a, "link", "set", aIf, "up")
	l.ip(b, "link", "set", bIf, "up")
}

// sysctl sets a per-namespace sysctl.
func (l *netLab) sysctl(name, key, value string) {
	l.t.Helper()
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	l.run("ip", "netns", "exec", l.prefix+name, "sh", "-c", fmt.Sprintf("echo %s > %s", value, path))
}

// nft loads a ruleset into a namespace.
func (l *netLab) nft(name, script string) {
	l.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.prefix+name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("nft in %s: %v\n%s\n%s", name, err, out, script)
	}
}

// partition cuts s3 off in the router's forward chain and c3 in the NAT's
// (drop, both ways), or removes those rules.
func (l *netLab) partition(on bool) {
	l.t.Helper()
	cuts := map[string]string{"r": "10.77.4.2", "nat": "192.168.73.2"}
	for ns, addr := range cuts {
		if !on {
			l.nft(ns, "delete table inet gvt_partition\n")
			continue
		}
		l.nft(ns, fmt.Sprintf(`
table inet gvt_partition {
	chain gvtfwd {
		type filter hook forward priority filter - 10; policy accept;
		ip saddr %[1]s drop
		ip daddr %[1]s drop
	}
}
`, addr))
	}
}

// start creates a node listening on addr:7370 and runs it inside its
// namespace.
func (l *netLab) start(root, name, addr string, args []string, boot ...string) *nsNode {
	t := l.t
	t.Helper()
	dir := filepath.Join(root, name)
	a := append([]string{"node", "create", "--nickname", name, "--listen", addr + ":7370", "--status", "127.0.0.1:0"}, args...)
	if out, err := exec.Command(bin, append(a, dir)...).CombinedOutput(); err != nil {
		t.Fatalf("node create %s: %v\n%s", name, err, out)
	}
	f, err := os.OpenFile(filepath.Join(dir, "grapevine.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(rules)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}

	ns := l.prefix + name
	run := []string{"netns", "exec", ns, bin, "run", "--log-format", "json", "--log-level", "debug"}
	for _, b := range boot {
		run = append(run, "--bootstrap", b)
	}
	p := &proc{t: t, name: name, dir: dir, log: filepath.Join(dir, "log.jsonl")}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	// ip netns exec execs the command, so the process is grapevine itself
	// and p.kill sends it SIGKILL.
	p.cmd = exec.Command("ip", append(run, dir)...)
	p.cmd.Stderr = logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	t.Cleanup(p.kill)
	running = append(running, p)
	n := &nsNode{proc: p, ns: ns, addr: addr}
	n.hc = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			d, ok := ctx.Deadline()
			if !ok {
				d = time.Now().Add(5 * time.Second)
			}
			return nsDial(ns, address, time.Until(d))
		},
	}}
	t.Cleanup(n.hc.CloseIdleConnections)
	waitFor(t, 20*time.Second, name+" to start in its namespace", func() (bool, string) {
		if p.cmd.ProcessState != nil {
			return false, "exited"
		}
		b, err := os.ReadFile(filepath.Join(dir, daemon.RunDir, daemon.StatusFile))
		if err != nil {
			return false, err.Error()
		}
		p.status = strings.TrimSpace(string(b))
		_, err = n.state()
		return err == nil, fmt.Sprint(err)
	})
	return n
}

func (n *nsNode) id() string {
	if n.cached == "" {
		n.cached = n.proc.id()
	}
	return n.cached
}

// client: a node that announces neither storage nor the relay.
func (n *nsNode) client() bool { return strings.HasPrefix(n.name, "c") }

// state reads GET /v1/status over the node's own loopback, inside its
// namespace.
func (n *nsNode) state() (apitype.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := (&client.Client{BaseURL: n.status, HTTPClient: n.hc}).Status(ctx)
	if err != nil {
		return st, fmt.Errorf("%s: %w", n.name, err)
	}
	return st, nil
}

// view returns what the node knows of each server, by ID.
func (n *nsNode) view() (map[string]apitype.ServerStatus, error) {
	st, err := n.state()
	if err != nil {
		return nil, err
	}
	v := map[string]apitype.ServerStatus{}
	for _, s := range st.Servers {
		v[s.ID] = s
	}
	return v, nil
}

func (n *nsNode) server(id string) (apitype.ServerStatus, error) {
	v, err := n.view()
	return v[id], err
}

// deferredForgets returns, per peer, the reason of the last forget-deferred
// event in the node's log.
func (n *nsNode) deferredForgets() map[string]string {
	out := map[string]string{}
	for _, l := range n.logLines() {
		if l["kind"] == "forget-deferred" {
			p, _ := l["peer"].(string)
			out[p], _ = l["reason"].(string)
		}
	}
	return out
}

func deferredReasons(d map[string]string) map[string]int {
	out := map[string]int{}
	for _, r := range d {
		out[r]++
	}
	return out
}

// nsDial opens a TCP connection from inside network namespace ns. The
// socket is made on a thread moved into ns; the thread is never handed
// back to the scheduler (the goroutine exits locked, so the runtime ends
// it), and the connection keeps its namespace.
func nsDial(ns, address string, timeout time.Duration) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if _, _, e := syscall.Syscall(sysSetns[runtime.GOARCH], f.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
			ch <- result{nil, fmt.Errorf("setns %s: %w", ns, e)}
			return
		}
		c, err := net.DialTimeout("tcp", address, timeout)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// sysSetns is setns(2)'s system call number (package syscall lacks it on
// amd64, and golang.org/x/sys is not a direct dependency).
var sysSetns = map[string]uintptr{
	"386": 346, "amd64": 308, "arm": 375, "arm64": 268, "loong64": 268, "riscv64": 268,
	"mips": 4344, "mipsle": 4344, "mips64": 5303, "mips64le": 5303,
	"ppc64": 350, "ppc64le": 350, "s390x": 339,
}

// netnsUnavailable says why this machine cannot run TestNetns, or "".
// Under CI as root, a missing ip or nft fails the test rather than skip
// it: .ci/run installs them wherever namespaces work.
func netnsUnavailable(t *testing.T) string {
	if sysSetns[runtime.GOARCH] == 0 {
		return "setns(2) number unknown on " + runtime.GOARCH
	}
	if os.Geteuid() != 0 {
		return "not root: network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN"
	}
	ci := os.Getenv("CI") != ""
	if _, err := exec.LookPath("ip"); err != nil {
		if ci {
			t.Fatal("CI as root: no ip command (iproute2); .ci/run should have installed it")
		}
		return "no ip command (iproute2)"
	}
	removeStaleNamespaces()
	probe := fmt.Sprintf("gvt%d-probe", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		return fmt.Sprintf("ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
	}
	defer exec.Command("ip", "netns", "del", probe).Run()
	if _, err := exec.LookPath("nft"); err != nil {
		if ci {
			t.Fatal("CI as root with network namespaces: no nft command; .ci/run should have installed nftables")
		}
		return "no nft command (apt-get install nftables)"
	}
	if out, err := exec.Command("ip", "netns", "exec", probe, "nft", "list", "ruleset").CombinedOutput(); err != nil {
		return fmt.Sprintf("nft in a namespace: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return ""
}

// removeStaleNamespaces deletes namespaces left by earlier runs of this
// test that died before their cleanup (gvtPID-*, PID no longer running).
func removeStaleNamespaces() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	re := regexp.MustCompile(`^gvt(\d+)-\S+`)
	for _, line := range strings.Split(string(out), "\n") {
		m := re.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			exec.Command("ip", "netns", "del", m[0]).Run()
		}
	}
}
