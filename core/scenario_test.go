package core_test

import (
	"bufio"
	"bytes"
	"cmp"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/diff"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/sim"
)

// Scenario scripts: one command per line, '#' starts a comment. A failed
// check fails the test with the script's line number; a mistake in the
// script (a bad number, an unknown host, an operator the command does not
// take) is always fatal. See testdata/scenarios/README.md for the commands.

var rewrite = flag.Bool("rewrite", false, "rewrite the scenarios' golden traces (testdata/scenarios/*.trace)")

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			out, err := runScenarioFile(f, nil, t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			if out.failed != "" {
				t.Fatal(out.failed)
			}
			checkGolden(t, strings.TrimSuffix(f, ".txt")+".trace", out.trace)
		})
	}
	traces, _ := filepath.Glob("testdata/scenarios/*.trace")
	for _, g := range traces {
		if !slices.Contains(files, strings.TrimSuffix(g, ".trace")+".txt") {
			t.Errorf("%s has no scenario: delete it", g)
		}
	}
}

// checkGolden compares a trace with its golden file, or rewrites the file
// under -rewrite.
func checkGolden(t *testing.T, golden, trace string) {
	t.Helper()
	if *rewrite {
		if err := os.WriteFile(golden, []byte(trace), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./core -run TestScenarios -rewrite writes it)", err)
	}
	if string(want) != trace {
		t.Errorf("trace differs from %s (-rewrite to accept):\n%s", golden, diff.Diff(golden, want, "got", []byte(trace)))
	}
}

// outcome is a completed run: the first failed check ("" if none) and the
// event trace.
type outcome struct {
	failed string
	trace  string
}

// scriptError is a mistake in a script, not a failed check.
type scriptError struct{ msg string }

func (e scriptError) Error() string { return e.msg }

type scenario struct {
	file, text string // the script and its current command
	line       int
	net        *sim.Net
	cfg        core.Config
	variant    func(*core.Config)
	logf       func(string, ...any)
	kinds      map[core.EventKind]bool
	junkNames  map[announce.NodeID]string
	bootstraps []bootstrapRef
	maxDials   map[string]int
	dialLog    map[string][]string
	traceHosts map[*sim.Host]bool      // nil: every host
	traceKinds map[core.EventKind]bool // nil: every kind but routine events
	trace      bytes.Buffer
	untraced   string      // the command whose events are not in the trace yet
	instant    []traceLine // the events of the last instant, not yet written
}

// bootstrapRef is a bootstrap name, checked to be a host at the end (it
// may be defined after the host that names it).
type bootstrapRef struct {
	name string
	line int
}

func runScenarioFile(file string, variant func(*core.Config), logf func(string, ...any)) (outcome, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return outcome{}, err
	}
	return runScenario(file, src, variant, logf)
}

// runScenario runs a script. A failed check ends it with out.failed set;
// a mistake in the script ends it with an error.
func runScenario(file string, src []byte, variant func(*core.Config), logf func(string, ...any)) (out outcome, err error) {
	kinds, err := eventKinds()
	if err != nil {
		return outcome{}, err
	}
	s := &scenario{file: file, net: sim.NewNet(1), cfg: core.TestConfig(), variant: variant, logf: logf,
		kinds: kinds, junkNames: map[announce.NodeID]string{}, maxDials: map[string]int{}, dialLog: map[string][]string{}}
	s.net.KeepEvents = true
	s.net.OnEvent = s.record
	s.net.OnDial = func(h *sim.Host, d core.Dial) {
		s.maxDials[h.Name] = max(s.maxDials[h.Name], h.Node.InFlight())
		if o, ok := s.net.HostByID(d.Peer); ok {
			s.dialLog[h.Name] = append(s.dialLog[h.Name], o.Name)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(scriptError)
			if !ok {
				panic(r)
			}
			err = e
		}
	}()
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		s.line++
		text, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		s.text = strings.Join(fields, " ")
		s.untraced = s.text
		if msg := s.exec(fields); msg != "" {
			return outcome{failed: fmt.Sprintf("%s:%d: %s: %s", file, s.line, s.text, msg)}, nil
		}
	}
	if err := sc.Err(); err != nil {
		return outcome{}, fmt.Errorf("%s: %v", file, err)
	}
	for _, b := range s.bootstraps {
		if _, ok := s.net.Host(b.name); !ok {
			return outcome{}, fmt.Errorf("%s:%d: bootstrap %q is not a host", file, b.line, b.name)
		}
	}
	s.flushTrace()
	return outcome{trace: s.trace.String()}, nil
}

func (s *scenario) fatalf(format string, args ...any) {
	panic(scriptError{fmt.Sprintf("%s:%d: %s: %s", s.file, s.line, s.text, fmt.Sprintf(format, args...))})
}

// routine events are traced only when a script names their kind: traffic,
// and outcomes every refresh repeats.
func routine(e core.Event) bool {
	switch e.Kind {
	case core.EvDial, core.EvDialFailed, core.EvConnected, core.EvDisconnected:
		return true
	case core.EvAccepted:
		return e.Reason == "replaced"
	case core.EvPublished:
		return e.Reason == "refresh"
	}
	return false
}

// traceLine is events of one host at one instant that differ only in
// peer. Facts are left out: they hold keys and counters that make a trace
// hard to read.
type traceLine struct {
	at              time.Duration
	host            string
	kind            core.EventKind
	service, reason string
	peers           []string
}

func (l traceLine) sameBut(o traceLine) bool {
	return l.at == o.at && l.host == o.host && l.kind == o.kind && l.service == o.service && l.reason == o.reason
}

func (l traceLine) String() string {
	out := fmt.Sprintf("%9.3fs %-5s %s", l.at.Seconds(), l.host, l.kind)
	if len(l.peers) > 0 {
		out += " " + joinNames(l.peers)
	}
	if l.service != "" {
		out += "/" + l.service
	}
	if l.reason != "" {
		out += " reason=" + l.reason
	}
	return out
}

// record adds an event to the trace, after the command it happened in. The
// events of one instant are grouped into lines in the order of their first
// event; a line lists its peers sorted.
func (s *scenario) record(h *sim.Host, e core.Event) {
	if s.traceHosts != nil && !s.traceHosts[h] || s.traceKinds == nil && routine(e) || s.traceKinds != nil && !s.traceKinds[e.Kind] {
		return
	}
	l := traceLine{at: s.net.Now.Sub(sim.Epoch), host: h.Name, kind: e.Kind, service: e.Service, reason: e.Reason}
	if e.Peer != "" {
		l.peers = []string{s.nameOf(e.Peer)}
	}
	if len(s.instant) > 0 && (s.untraced != "" || s.instant[0].at != l.at) {
		s.flushTrace()
	}
	if s.untraced != "" {
		fmt.Fprintf(&s.trace, "> %s\n", s.untraced)
		s.untraced = ""
	}
	for i := range s.instant {
		if s.instant[i].sameBut(l) {
			s.instant[i].peers = append(s.instant[i].peers, l.peers...)
			return
		}
	}
	s.instant = append(s.instant, l)
}

func (s *scenario) flushTrace() {
	for _, l := range s.instant {
		fmt.Fprintln(&s.trace, l)
	}
	s.instant = nil
}

// joinNames sorts names and writes them as a script would: s3,s4,s5 as s[3:6].
func joinNames(names []string) string {
	names = slices.Clone(names)
	slices.SortFunc(names, func(a, b string) int {
		pa, na, _ := splitNumber(a)
		pb, nb, _ := splitNumber(b)
		return cmp.Or(strings.Compare(pa, pb), cmp.Compare(na, nb), strings.Compare(a, b))
	})
	var out []string
	for i := 0; i < len(names); {
		prefix, n, ok := splitNumber(names[i])
		j := i + 1
		for ok && j < len(names) {
			p, m, numbered := splitNumber(names[j])
			if !numbered || p != prefix || m != n+(j-i) {
				break
			}
			j++
		}
		if j-i > 2 {
			out = append(out, fmt.Sprintf("%s[%d:%d]", prefix, n, n+(j-i)))
		} else {
			out = append(out, names[i:j]...)
		}
		i = j
	}
	return strings.Join(out, ",")
}

// splitNumber splits s12 into s and 12.
func splitNumber(name string) (string, int, bool) {
	prefix := strings.TrimRight(name, "0123456789")
	n, err := strconv.Atoi(name[len(prefix):])
	return prefix, n, err == nil && prefix != ""
}

func (s *scenario) nameOf(id announce.NodeID) string {
	if h, ok := s.net.HostByID(id); ok {
		return h.Name
	}
	if name, ok := s.junkNames[id]; ok {
		return name
	}
	return id.Short()
}

// eventKinds reads the EventKind constants from events.go, so that an
// event check cannot name a kind that never happens.
func eventKinds() (map[core.EventKind]bool, error) {
	f, err := parser.ParseFile(token.NewFileSet(), "events.go", nil, 0)
	if err != nil {
		return nil, err
	}
	kinds := map[core.EventKind]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		if typ, ok := spec.Type.(*ast.Ident); ok && typ.Name == "EventKind" {
			for _, v := range spec.Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					k, _ := strconv.Unquote(lit.Value)
					kinds[core.EventKind(k)] = true
				}
			}
		}
		return true
	})
	if len(kinds) == 0 {
		return nil, fmt.Errorf("no EventKind constants in events.go")
	}
	return kinds, nil
}

// A command declares its arguments in usage: a word in brackets is
// optional, a word ending in "..." repeats, and OP is a comparison
// operator from ops. Only commands with neg take a leading '!'.
type command struct {
	usage string
	neg   bool
	ops   []string
	run   func(*scenario, call) string
}

type call struct {
	name string
	args []string
	neg  bool
	op   string
}

var comparisons = []string{"<", "<=", "==", "!=", ">=", ">"}

var commands = map[string]command{
	"config":        {usage: "KEY=VALUE...", run: (*scenario).config},
	"trace":         {usage: "HOSTS [KINDS]", run: (*scenario).traceEvents},
	"server":        {usage: "NAMES [OPTION]...", run: (*scenario).define},
	"client":        {usage: "NAMES [OPTION]...", run: (*scenario).define},
	"relay":         {usage: "NAMES [OPTION]...", run: (*scenario).define},
	"junk":          {usage: "NAME COUNT [OPTION]...", run: (*scenario).junk},
	"start":         {usage: "HOSTS", run: (*scenario).start},
	"stop":          {usage: "HOSTS", run: (*scenario).stop},
	"wipe":          {usage: "HOSTS", run: (*scenario).wipe},
	"run":           {usage: "DURATION", run: (*scenario).run},
	"skew":          {usage: "HOSTS ±DURATION", run: (*scenario).skew},
	"leave":         {usage: "HOSTS", run: (*scenario).leave},
	"partition":     {usage: "HOSTS HOSTS [HOSTS]...", run: (*scenario).partition},
	"heal":          {usage: "", run: func(s *scenario, _ call) string { s.net.Heal(); return "" }},
	"holds":         {usage: "HOSTS HOSTS", neg: true, run: (*scenario).pairs},
	"relays":        {usage: "HOSTS HOSTS", neg: true, run: (*scenario).pairs},
	"tombstoned":    {usage: "HOSTS HOSTS", neg: true, run: (*scenario).pairs},
	"connected":     {usage: "HOSTS HOSTS", neg: true, run: (*scenario).pairs},
	"event":         {usage: "HOSTS KIND [PEER] [reason=R]", neg: true, run: (*scenario).event},
	"dump-events":   {usage: "HOST", run: (*scenario).dumpEvents},
	"clear-events":  {usage: "", run: (*scenario).clearEvents},
	"counter":       {usage: "HOST OP N", ops: comparisons, run: (*scenario).counter},
	"seqnum":        {usage: "HOST SERVER OP N", ops: comparisons, run: (*scenario).seqnum},
	"current":       {usage: "HOST SERVER", neg: true, run: (*scenario).current},
	"sources":       {usage: "HOST SRC OP N", ops: comparisons, run: (*scenario).sources},
	"records":       {usage: "HOST OP N", ops: comparisons, run: (*scenario).records},
	"max-dials":     {usage: "HOST N", run: (*scenario).maxDialsCheck},
	"dialed-before": {usage: "HOST HOSTS HOSTS", run: (*scenario).dialedBefore},
}

// arity reads usage: the least and most arguments (most -1: no limit),
// and where OP is (-1: nowhere).
func (c command) arity() (least, most, opAt int) {
	opAt = -1
	words := strings.Fields(c.usage)
	for i, w := range words {
		if !strings.HasPrefix(w, "[") {
			least++
		}
		if strings.HasSuffix(w, "...") {
			most = -1
		} else if most >= 0 {
			most++
		}
		if w == "OP" {
			opAt = i
		}
	}
	return least, most, opAt
}

// isOperator tells a comparison-like word, so a stray one is reported as
// such rather than as an unknown host or a bad number.
func isOperator(w string) bool {
	return w != "" && strings.Trim(w, "<>=!") == ""
}

// exec runs one command; a non-empty result is a failed check.
func (s *scenario) exec(fields []string) string {
	name, neg := strings.CutPrefix(fields[0], "!")
	cmd, ok := commands[name]
	if !ok {
		s.fatalf("unknown command %q", name)
	}
	if neg && !cmd.neg {
		s.fatalf("unsupported: %s takes no '!'", name)
	}
	c := call{name: name, args: fields[1:], neg: neg}
	least, most, opAt := cmd.arity()
	for i, a := range c.args {
		if i != opAt && isOperator(a) {
			s.fatalf("unsupported operator %q: usage: %s %s", a, name, cmd.usage)
		}
	}
	if len(c.args) < least || most >= 0 && len(c.args) > most {
		s.fatalf("usage: %s %s", name, cmd.usage)
	}
	if opAt >= 0 {
		c.op = c.args[opAt]
		if !slices.Contains(cmd.ops, c.op) {
			s.fatalf("unsupported operator %q: %s takes %s", c.op, name, strings.Join(cmd.ops, " "))
		}
	}
	return cmd.run(s, c)
}

func parseDur(v string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q", v)
		}
		return time.Duration(n * 24 * float64(time.Hour)), nil
	}
	return time.ParseDuration(v)
}

func (s *scenario) duration(v string) time.Duration {
	d, err := parseDur(v)
	if err != nil {
		s.fatalf("%v", err)
	}
	return d
}

func (s *scenario) number(v string) int64 {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		s.fatalf("bad number %q", v)
	}
	return n
}

func compare(got int64, op string, want int64) bool {
	switch op {
	case "<":
		return got < want
	case "<=":
		return got <= want
	case "==":
		return got == want
	case "!=":
		return got != want
	case ">=":
		return got >= want
	case ">":
		return got > want
	}
	panic("unknown operator " + op)
}

// names expands a comma list of names and ranges like s[3:10] (s3..s9).
func (s *scenario) names(arg string) []string {
	var out []string
	for _, part := range strings.Split(arg, ",") {
		prefix, rng, isRange := strings.Cut(part, "[")
		if !isRange {
			if part == "" {
				s.fatalf("empty host name in %q", arg)
			}
			out = append(out, part)
			continue
		}
		body, closed := strings.CutSuffix(rng, "]")
		lo, hi, _ := strings.Cut(body, ":")
		a, errLo := strconv.Atoi(lo)
		b, errHi := strconv.Atoi(hi)
		if prefix == "" || !closed || errLo != nil || errHi != nil || a < 0 || a >= b {
			s.fatalf("bad host range %q: want NAME[LO:HI] with 0 <= LO < HI", part)
		}
		for j := a; j < b; j++ {
			out = append(out, prefix+strconv.Itoa(j))
		}
	}
	return out
}

// hosts expands names to defined hosts; "all" is every host.
func (s *scenario) hosts(arg string) []*sim.Host {
	var out []*sim.Host
	for _, name := range s.names(arg) {
		if name == "all" {
			out = append(out, s.net.Hosts()...)
			continue
		}
		out = append(out, s.host(name))
	}
	if len(out) == 0 {
		s.fatalf("no hosts in %q", arg)
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

// upHost is a host whose core a check reads.
func (s *scenario) upHost(name string) *sim.Host {
	h := s.host(name)
	if !h.Up {
		s.fatalf("%s is down", name)
	}
	return h
}

func (s *scenario) add(role, name string, opts []string) *sim.Host {
	if _, ok := s.net.Host(name); ok || name == "all" {
		s.fatalf("host %q defined twice", name)
	}
	id, cfg := sim.Role(role, name, sim.KeyFor(name, 1), s.cfg)
	var nat, hole bool
	for _, o := range opts {
		k, v, hasValue := strings.Cut(o, "=")
		switch {
		case k == "nat" && !hasValue:
			nat = true
		case k == "blackhole" && !hasValue:
			hole = true
		case k == "variant" && v != "":
			for _, name := range strings.Split(v, ",") {
				setVariant(&cfg, name, s.fatalf)
			}
		case k == "bootstrap" && v != "":
			for _, b := range s.names(v) { // hosts may be defined later
				s.bootstraps = append(s.bootstraps, bootstrapRef{b, s.line})
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
	return h
}

func (s *scenario) config(c call) string {
	for _, kv := range c.args {
		s.setConfig(kv)
	}
	return ""
}

func (s *scenario) setConfig(kv string) {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || v == "" {
		s.fatalf("config wants KEY=VALUE, got %q", kv)
	}
	f := reflect.ValueOf(&s.cfg).Elem().FieldByName(k)
	if !f.IsValid() {
		s.fatalf("no config field %s", k)
	}
	var err error
	switch {
	case f.Type() == reflect.TypeFor[time.Duration]():
		var d time.Duration
		d, err = parseDur(v)
		f.SetInt(int64(d))
	case f.Kind() == reflect.Int:
		var n int
		n, err = strconv.Atoi(v)
		f.SetInt(int64(n))
	case f.Kind() == reflect.Float64:
		var x float64
		x, err = strconv.ParseFloat(v, 64)
		f.SetFloat(x)
	case f.Kind() == reflect.Bool:
		var b bool
		b, err = strconv.ParseBool(v)
		f.SetBool(b)
	default:
		s.fatalf("cannot set %s", k)
	}
	if err != nil {
		s.fatalf("config %s: %v", k, err)
	}
}

// trace HOSTS [KINDS]: from now on trace only HOSTS' events, and with
// KINDS (a comma list) only those kinds, routine or not. trace none: stop.
func (s *scenario) traceEvents(c call) string {
	s.traceHosts, s.traceKinds = nil, nil
	switch c.args[0] {
	case "all":
	case "none":
		if len(c.args) > 1 {
			s.fatalf("trace none takes no KINDS")
		}
		s.traceHosts = map[*sim.Host]bool{}
	default:
		s.traceHosts = map[*sim.Host]bool{}
		for _, h := range s.hosts(c.args[0]) {
			s.traceHosts[h] = true
		}
	}
	if len(c.args) > 1 {
		s.traceKinds = map[core.EventKind]bool{}
		for _, k := range strings.Split(c.args[1], ",") {
			if !s.kinds[core.EventKind(k)] {
				s.fatalf("no event kind %q", k)
			}
			s.traceKinds[core.EventKind(k)] = true
		}
	}
	return ""
}

func (s *scenario) define(c call) string {
	for _, name := range s.names(c.args[0]) {
		s.add(c.name, name, c.args[1:])
	}
	return ""
}

// junk NAME COUNT: a client that offers COUNT validly signed records under
// fresh keys to everyone, whatever R1 says.
func (s *scenario) junk(c call) string {
	names := s.names(c.args[0])
	if len(names) != 1 {
		s.fatalf("junk defines one host, not %q", c.args[0])
	}
	count := s.number(c.args[1])
	if count < 1 {
		s.fatalf("junk wants a positive count")
	}
	h := s.add("client", names[0], append(c.args[2:], "variant=RelayAll,NeverForget"))
	for i := range count {
		name := fmt.Sprintf("%s-junk-%d", h.Name, i)
		k := sim.KeyFor(name, 1)
		s.junkNames[k.ID()] = name
		rec := announce.Sign(k, announce.Build(k, announce.Template{Service: announce.Service{Name: "storage"},
			Locators: []string{sim.Locator(k.ID())}}, 1))
		h.Disk.Records = append(h.Disk.Records, core.StoredRecord{Signed: rec, Source: h.ID})
	}
	return ""
}

func (s *scenario) start(c call) string {
	for _, h := range s.hosts(c.args[0]) {
		if !h.Up {
			if err := s.net.Start(h); err != nil {
				s.fatalf("start %s: %v", h.Name, err)
			}
		}
	}
	return ""
}

func (s *scenario) stop(c call) string {
	for _, h := range s.hosts(c.args[0]) {
		s.net.Stop(h)
	}
	return ""
}

func (s *scenario) wipe(c call) string {
	for _, h := range s.hosts(c.args[0]) {
		if h.Up {
			s.fatalf("wipe %s: stop it first", h.Name)
		}
		s.net.Wipe(h)
	}
	return ""
}

func (s *scenario) run(c call) string {
	d := s.duration(c.args[0])
	if d <= 0 {
		s.fatalf("run wants a positive duration")
	}
	s.net.Run(d)
	return ""
}

func (s *scenario) skew(c call) string {
	d := s.duration(strings.TrimPrefix(c.args[1], "+"))
	for _, h := range s.hosts(c.args[0]) {
		h.Skew += d
	}
	return ""
}

func (s *scenario) leave(c call) string {
	for _, h := range s.hosts(c.args[0]) {
		s.net.Input(h, core.Leave{})
	}
	return ""
}

func (s *scenario) partition(c call) string {
	groups := map[*sim.Host]int{}
	for i, g := range c.args {
		for _, h := range s.hosts(g) {
			if groups[h] != 0 {
				s.fatalf("%s is in two groups", h.Name)
			}
			groups[h] = i + 1
		}
	}
	s.net.Partition(groups)
	return ""
}

// pairs checks holds, relays, tombstoned or connected for every pair of
// distinct hosts whose first is up; at least one pair must be checked.
func (s *scenario) pairs(c call) string {
	checked := 0
	for _, h := range s.hosts(c.args[0]) {
		for _, o := range s.hosts(c.args[1]) {
			if h == o || !h.Up {
				continue
			}
			checked++
			var got bool
			switch c.name {
			case "holds":
				got = h.Node.Holds(o.ID)
			case "relays":
				got = h.Node.Relays(o.ID)
			case "tombstoned":
				_, got = h.Node.Tombstoned(o.ID)
			case "connected":
				got = s.net.Connected(h, o)
			}
			if got == c.neg {
				return fmt.Sprintf("%s: %s %s is %v", h.Name, c.name, o.Name, got)
			}
		}
	}
	if checked == 0 {
		s.fatalf("nothing checked: the hosts in %s are down or the same as %s", c.args[0], c.args[1])
	}
	return ""
}

// event HOSTS KIND [PEER] [reason=R]: one of HOSTS emitted such an event
// since the last clear-events (with !: none did).
func (s *scenario) event(c call) string {
	hs := s.hosts(c.args[0])
	kind := core.EventKind(c.args[1])
	if !s.kinds[kind] {
		s.fatalf("no event kind %q", kind)
	}
	var peer *sim.Host
	reason, hasReason := "", false
	for _, a := range c.args[2:] {
		if r, ok := strings.CutPrefix(a, "reason="); ok {
			if hasReason || r == "" {
				s.fatalf("one reason=R, not empty")
			}
			reason, hasReason = r, true
		} else {
			if peer != nil {
				s.fatalf("one PEER")
			}
			peer = s.host(a)
		}
	}
	found := false
	for _, h := range hs {
		for _, e := range h.Events {
			if e.Kind == kind && (peer == nil || e.Peer == peer.ID) && (!hasReason || e.Reason == reason) {
				found = true
			}
		}
	}
	if found == c.neg {
		return fmt.Sprintf("%s: event %s found=%v", c.args[0], kind, found)
	}
	return ""
}

func (s *scenario) dumpEvents(c call) string {
	h := s.host(c.args[0])
	for _, e := range h.Events {
		s.logf("%s %v %s (peer %s)", h.Name, e.Elapsed, e, s.nameOf(e.Peer))
	}
	return ""
}

func (s *scenario) clearEvents(call) string {
	for _, h := range s.net.Hosts() {
		h.Events = nil
	}
	s.maxDials = map[string]int{}
	s.dialLog = map[string][]string{}
	return ""
}

func (s *scenario) counter(c call) string {
	h := s.upHost(c.args[0])
	want, got := s.number(c.args[2]), h.Node.Counter()
	if !compare(got, c.op, want) {
		return fmt.Sprintf("%s: counter %d, want %s %d", h.Name, got, c.op, want)
	}
	return ""
}

// seqnum HOST SERVER OP N: the seqnum HOST holds for SERVER.
func (s *scenario) seqnum(c call) string {
	h, o := s.upHost(c.args[0]), s.host(c.args[1])
	want := s.number(c.args[3])
	si, ok := h.Node.Server(o.ID)
	if !ok {
		return fmt.Sprintf("%s holds no seqnum for %s", h.Name, o.Name)
	}
	if !compare(si.Seqnum, c.op, want) {
		return fmt.Sprintf("%s holds seqnum %d for %s, want %s %d", h.Name, si.Seqnum, o.Name, c.op, want)
	}
	return ""
}

// current HOST SERVER: HOST holds SERVER's current records.
func (s *scenario) current(c call) string {
	h, o := s.upHost(c.args[0]), s.upHost(c.args[1])
	si, held := h.Node.Server(o.ID)
	if isCurrent := held && si.Seqnum == o.Node.Counter(); isCurrent == c.neg {
		return fmt.Sprintf("%s holds seqnum %d for %s, whose counter is %d", h.Name, si.Seqnum, o.Name, o.Node.Counter())
	}
	return ""
}

// sources HOST SRC OP N: records first learnt through SRC.
func (s *scenario) sources(c call) string {
	h, src := s.upHost(c.args[0]), s.host(c.args[1])
	got, want := int64(h.Node.Sources()[src.ID]), s.number(c.args[3])
	if !compare(got, c.op, want) {
		return fmt.Sprintf("%s: %d records from %s, want %s %d", h.Name, got, src.Name, c.op, want)
	}
	return ""
}

// records HOST OP N: records held.
func (s *scenario) records(c call) string {
	h := s.upHost(c.args[0])
	got, want := int64(h.Node.RecordCount()), s.number(c.args[2])
	if !compare(got, c.op, want) {
		return fmt.Sprintf("%s: %d records, want %s %d", h.Name, got, c.op, want)
	}
	return ""
}

// max-dials HOST N: HOST never had more than N dials in flight.
func (s *scenario) maxDialsCheck(c call) string {
	h := s.host(c.args[0])
	want := s.number(c.args[1])
	if got := s.maxDials[h.Name]; int64(got) > want {
		return fmt.Sprintf("%s had %d dials in flight, limit %d", h.Name, got, want)
	}
	return ""
}

// dialed-before HOST A B: every dial of HOST to the A hosts started before
// any dial to the B hosts (since the last clear-events).
func (s *scenario) dialedBefore(c call) string {
	h := s.host(c.args[0])
	first := map[string]bool{}
	for _, o := range s.hosts(c.args[1]) {
		first[o.Name] = true
	}
	later := map[string]bool{}
	for _, o := range s.hosts(c.args[2]) {
		later[o.Name] = true
	}
	seenLater, missing := false, len(first)
	done := map[string]bool{}
	for _, name := range s.dialLog[h.Name] {
		switch {
		case later[name]:
			seenLater = true
		case first[name]:
			if seenLater {
				return fmt.Sprintf("%s dialled %s after a later-class host", h.Name, name)
			}
			if !done[name] {
				done[name] = true
				missing--
			}
		}
	}
	if missing > 0 {
		return fmt.Sprintf("%s never dialled %d of the first class", h.Name, missing)
	}
	return ""
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
				out, err := runScenarioFile(f, func(c *core.Config) { setVariant(c, v, t.Fatalf) }, t.Logf)
				if err != nil {
					t.Fatal(err)
				}
				if out.failed == "" {
					t.Fatalf("scenario passed with %s: the rule it removes is not tested here", v)
				}
				t.Logf("fails as it should: %s", out.failed)
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
