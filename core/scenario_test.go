package core_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/sim"
)

// Scenario scripts: one command per line, '#' starts a comment. A failed
// check fails the test with the script's line number. See
// testdata/scenarios/README.md for the commands.

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			runScenario(t, f, nil)
		})
	}
}

type scenario struct {
	t        *testing.T
	file     string
	line     int
	net      *sim.Net
	cfg      core.Config
	variant  func(*core.Config)
	maxDials map[string]int
	dialLog  map[string][]string
}

func runScenario(t *testing.T, file string, variant func(*core.Config)) (failed string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := &scenario{t: t, file: file, net: sim.NewNet(1), cfg: core.TestConfig(), variant: variant,
		maxDials: map[string]int{}, dialLog: map[string][]string{}}
	s.net.KeepEvents = true
	s.net.OnDial = func(h *sim.Host, d core.Dial) {
		s.maxDials[h.Name] = max(s.maxDials[h.Name], h.Node.InFlight())
		if o, ok := s.net.HostByID(d.Peer); ok {
			s.dialLog[h.Name] = append(s.dialLog[h.Name], o.Name)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		s.line++
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		if msg := s.exec(strings.Fields(line)); msg != "" {
			failed = fmt.Sprintf("%s:%d: %s: %s", file, s.line, line, msg)
			if variant == nil {
				t.Fatal(failed)
			}
			return failed
		}
	}
	return ""
}

func (s *scenario) fatalf(format string, args ...any) {
	s.t.Fatalf("%s:%d: %s", s.file, s.line, fmt.Sprintf(format, args...))
}

func parseDur(v string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		return time.Duration(n * 24 * float64(time.Hour)), err
	}
	return time.ParseDuration(v)
}

// hosts expands a name, a comma list, or a range like s[3:10].
func (s *scenario) hosts(arg string) []*sim.Host {
	var out []*sim.Host
	for _, part := range strings.Split(arg, ",") {
		if part == "all" {
			return s.net.Hosts()
		}
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			lo, hi, _ := strings.Cut(part[i+1:len(part)-1], ":")
			a, _ := strconv.Atoi(lo)
			b, _ := strconv.Atoi(hi)
			for j := a; j < b; j++ {
				out = append(out, s.host(part[:i]+strconv.Itoa(j)))
			}
			continue
		}
		out = append(out, s.host(part))
	}
	return out
}

func (s *scenario) host(name string) *sim.Host {
	h, ok := s.net.Host(name)
	if !ok {
		s.fatalf("no host %q", name)
	}
	return h
}

func (s *scenario) add(role, name string, opts []string) {
	id, cfg := sim.Role(role, name, sim.KeyFor(name, 1), s.cfg)
	var nat, hole bool
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "nat":
			nat = true
		case "blackhole":
			hole = true
		case "variant":
			for _, name := range strings.Split(v, ",") {
				setVariant(&cfg, name, s.fatalf)
			}
		case "bootstrap":
			for _, b := range expandNames(v) { // hosts may be defined later
				id.Bootstrap = append(id.Bootstrap, announce.Locator{ID: sim.KeyFor(b, 1).ID(), Addr: "sim:1"})
			}
		default:
			s.fatalf("unknown option %q", o)
		}
	}
	if s.variant != nil {
		s.variant(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		s.fatalf("%v", err)
	}
	h := s.net.Add(name, id, cfg)
	h.NAT, h.Blackholed = nat, hole
}

func (s *scenario) setConfig(kv string) {
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		s.fatalf("config wants KEY=VALUE")
	}
	f := reflect.ValueOf(&s.cfg).Elem().FieldByName(k)
	if !f.IsValid() {
		s.fatalf("no config field %s", k)
	}
	switch f.Kind() {
	case reflect.Int64:
		d, err := parseDur(v)
		if err != nil {
			s.fatalf("%v", err)
		}
		f.SetInt(int64(d))
	case reflect.Int:
		n, err := strconv.Atoi(v)
		if err != nil {
			s.fatalf("%v", err)
		}
		f.SetInt(int64(n))
	case reflect.Float64:
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			s.fatalf("%v", err)
		}
		f.SetFloat(x)
	case reflect.Bool:
		f.SetBool(v == "true")
	default:
		s.fatalf("cannot set %s", k)
	}
}

// exec runs one command; a non-empty result is a failed check.
func (s *scenario) exec(f []string) string {
	cmd, args := f[0], f[1:]
	neg := strings.HasPrefix(cmd, "!")
	cmd = strings.TrimPrefix(cmd, "!")
	need := func(n int) {
		if len(args) < n {
			s.fatalf("%s wants %d arguments", cmd, n)
		}
	}
	switch cmd {
	case "config":
		for _, kv := range args {
			s.setConfig(kv)
		}
	case "server", "client", "relay":
		need(1)
		for _, name := range expandNames(args[0]) {
			s.add(cmd, name, args[1:])
		}
	case "junk":
		// junk NAME COUNT [options]: a client that offers COUNT validly
		// signed records under fresh keys to everyone, whatever R1 says.
		need(2)
		count, _ := strconv.Atoi(args[1])
		s.add("client", args[0], append(args[2:], "variant=RelayAll,NeverForget"))
		h := s.host(args[0])
		for i := range count {
			k := sim.KeyFor(fmt.Sprintf("%s-junk-%d", args[0], i), 1)
			rec := announce.Sign(k, announce.Build(k, announce.Template{Service: announce.Service{Name: "storage"},
				Locators: []string{sim.Locator(k.ID())}}, 1))
			h.Disk.Records = append(h.Disk.Records, core.StoredRecord{Signed: rec, Source: h.ID})
		}
	case "sources", "records":
		// sources HOST SRC <= N: records first learnt through SRC;
		// records HOST <= N: records held.
		h := s.host(args[0])
		var got int
		if cmd == "sources" {
			need(4)
			got = h.Node.Sources()[s.host(args[1]).ID]
			args = args[1:]
		} else {
			need(3)
			got = h.Node.RecordCount()
		}
		want, _ := strconv.Atoi(args[2])
		if got > want {
			return fmt.Sprintf("%s: %s %d, want <= %d", h.Name, cmd, got, want)
		}
	case "start":
		need(1)
		for _, h := range s.hosts(args[0]) {
			if !h.Up {
				if err := s.net.Start(h); err != nil {
					s.fatalf("start %s: %v", h.Name, err)
				}
			}
		}
	case "stop":
		need(1)
		for _, h := range s.hosts(args[0]) {
			s.net.Stop(h)
		}
	case "wipe":
		need(1)
		for _, h := range s.hosts(args[0]) {
			s.net.Wipe(h)
		}
	case "run":
		need(1)
		d, err := parseDur(args[0])
		if err != nil {
			s.fatalf("%v", err)
		}
		s.net.Run(d)
	case "skew":
		need(2)
		d, err := parseDur(strings.TrimPrefix(args[1], "+"))
		if err != nil {
			s.fatalf("%v", err)
		}
		for _, h := range s.hosts(args[0]) {
			h.Skew += d
		}
	case "leave":
		need(1)
		for _, h := range s.hosts(args[0]) {
			s.net.Input(h, core.Leave{})
		}
	case "partition":
		groups := map[*sim.Host]int{}
		for i, g := range args {
			for _, h := range s.hosts(g) {
				groups[h] = i + 1
			}
		}
		s.net.Partition(groups)
	case "heal":
		s.net.Heal()
	case "holds", "relays", "tombstoned", "connected":
		need(2)
		for _, h := range s.hosts(args[0]) {
			for _, o := range s.hosts(args[1]) {
				if h == o || !h.Up {
					continue
				}
				var got bool
				switch cmd {
				case "holds":
					got = h.Node.Holds(o.ID)
				case "relays":
					got = h.Node.Relays(o.ID)
				case "tombstoned":
					_, got = h.Node.Tombstoned(o.ID)
				case "connected":
					got = s.net.Connected(h, o)
				}
				if got == neg {
					return fmt.Sprintf("%s: %s %s is %v", h.Name, cmd, o.Name, got)
				}
			}
		}
	case "event":
		// event HOSTS KIND [PEER] [reason=R]: one of HOSTS emitted such an
		// event since the last 'clear-events' (with !: none did).
		need(2)
		hs := s.hosts(args[0])
		kind := core.EventKind(args[1])
		var peer *sim.Host
		reason := ""
		for _, a := range args[2:] {
			if r, ok := strings.CutPrefix(a, "reason="); ok {
				reason = r
			} else {
				peer = s.host(a)
			}
		}
		found := false
		for _, h := range hs {
			for _, e := range h.Events {
				if e.Kind == kind && (peer == nil || e.Peer == peer.ID) && (reason == "" || e.Reason == reason) {
					found = true
				}
			}
		}
		if found == neg {
			return fmt.Sprintf("%s: event %s found=%v", args[0], kind, found)
		}
	case "dump-events":
		for _, e := range s.host(args[0]).Events {
			s.t.Logf("%s %v %s", args[0], e.Elapsed, e)
		}
	case "clear-events":
		for _, h := range s.net.Hosts() {
			h.Events = nil
		}
		s.maxDials = map[string]int{}
		s.dialLog = map[string][]string{}
	case "counter":
		// counter HOST >= N
		need(3)
		h := s.host(args[0])
		want, _ := strconv.ParseInt(args[2], 10, 64)
		got := h.Node.Counter()
		ok := map[string]bool{">=": got >= want, "<=": got <= want, "==": got == want, ">": got > want}[args[1]]
		if !ok {
			return fmt.Sprintf("%s: counter %d, want %s %d", h.Name, got, args[1], want)
		}
	case "seqnum":
		// seqnum HOST SERVER >= N: the seqnum HOST holds for SERVER
		need(4)
		h, o := s.host(args[0]), s.host(args[1])
		si, _ := h.Node.Server(o.ID)
		want, _ := strconv.ParseInt(args[3], 10, 64)
		ok := map[string]bool{">=": si.Seqnum >= want, ">": si.Seqnum > want, "==": si.Seqnum == want}[args[2]]
		if !ok {
			return fmt.Sprintf("%s holds seqnum %d for %s, want %s %d", h.Name, si.Seqnum, o.Name, args[2], want)
		}
	case "current":
		// current HOST SERVER: HOST holds SERVER's current records.
		need(2)
		h, o := s.host(args[0]), s.host(args[1])
		si, _ := h.Node.Server(o.ID)
		if si.Seqnum != o.Node.Counter() {
			return fmt.Sprintf("%s holds seqnum %d for %s, whose counter is %d", h.Name, si.Seqnum, o.Name, o.Node.Counter())
		}
	case "max-dials":
		need(2)
		want, _ := strconv.Atoi(args[1])
		if got := s.maxDials[args[0]]; got > want {
			return fmt.Sprintf("%s had %d dials in flight, limit %d", args[0], got, want)
		}
	case "dialed-before":
		// dialed-before HOST A B: every dial of HOST to the A hosts started
		// before any dial to the B hosts (since the last clear-events).
		need(3)
		first := map[string]bool{}
		for _, h := range s.hosts(args[1]) {
			first[h.Name] = true
		}
		later := map[string]bool{}
		for _, h := range s.hosts(args[2]) {
			later[h.Name] = true
		}
		seenLater, missing := false, len(first)
		done := map[string]bool{}
		for _, name := range s.dialLog[args[0]] {
			switch {
			case later[name]:
				seenLater = true
			case first[name]:
				if seenLater {
					return fmt.Sprintf("%s dialled %s after a later-class host", args[0], name)
				}
				if !done[name] {
					done[name] = true
					missing--
				}
			}
		}
		if missing > 0 {
			return fmt.Sprintf("%s never dialled %d of the first class", args[0], missing)
		}
	default:
		s.fatalf("unknown command %q", cmd)
	}
	return ""
}

// expandNames turns s[0:3] into s0 s1 s2.
func expandNames(arg string) []string {
	i := strings.IndexByte(arg, '[')
	if i < 0 || !strings.HasSuffix(arg, "]") {
		return strings.Split(arg, ",")
	}
	lo, hi, _ := strings.Cut(arg[i+1:len(arg)-1], ":")
	a, _ := strconv.Atoi(lo)
	b, _ := strconv.Atoi(hi)
	var out []string
	for j := a; j < b; j++ {
		out = append(out, arg[:i]+strconv.Itoa(j))
	}
	return out
}

func setVariant(cfg *core.Config, name string, fatalf func(string, ...any)) {
	f := reflect.ValueOf(&cfg.Variant).Elem().FieldByName(name)
	if !f.IsValid() || f.Kind() != reflect.Bool {
		fatalf("no variant %q", name)
		return
	}
	f.SetBool(true)
}

// ablations reads the "# ablate: V1 V2" header: the variants under which
// the scenario must fail.
func ablations(t *testing.T, file string) []string {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "# ablate:"); ok {
			out = append(out, strings.Fields(rest)...)
		}
	}
	return out
}

// ruleVariants maps each rule to the variants that remove it.
var ruleVariants = map[string][]string{
	"R1":              {"RelayAll", "NoConfirmResign"},
	"R2":              {"NoRefresh"},
	"R3":              {"NoDialOrder"},
	"R4":              {"NeverForget", "ForgetWhenIsolated", "NoTombstones"},
	"R5":              {"WallClockElapsed"},
	"R6":              {"NoCaps"},
	"R7":              {"IgnoreWithdrawals"},
	"seqnum recovery": {"NoCounterRecovery"},
}

// TestRulesMatter runs every scenario once more with each variant its
// header names, and requires it to fail: a rule whose removal no test
// notices is not tested. Every variant of every rule must be named by at
// least one scenario.
func TestRulesMatter(t *testing.T) {
	if testing.Short() {
		t.Skip("ablation runs in full mode only")
	}
	files, _ := filepath.Glob("testdata/scenarios/*.txt")
	covered := map[string]bool{}
	for _, f := range files {
		for _, v := range ablations(t, f) {
			covered[v] = true
			t.Run(strings.TrimSuffix(filepath.Base(f), ".txt")+"/"+v, func(t *testing.T) {
				failed := runScenario(t, f, func(c *core.Config) { setVariant(c, v, t.Fatalf) })
				if failed == "" {
					t.Fatalf("scenario passed with %s: the rule it removes is not tested here", v)
				}
				t.Logf("fails as it should: %s", failed)
			})
		}
	}
	for rule, vs := range ruleVariants {
		for _, v := range vs {
			if !covered[v] {
				t.Errorf("%s: no scenario fails without it (variant %s)", rule, v)
			}
		}
	}
}
