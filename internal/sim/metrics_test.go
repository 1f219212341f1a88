package sim_test

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"grapevine/internal/sim"
)

// scenario parses a scenario given inline.
func scenario(t *testing.T, yaml string) *sim.Scenario {
	t.Helper()
	sc, err := sim.ParseScenario(t.Name()+".yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func run(t *testing.T, sc *sim.Scenario, design string) *sim.Report {
	t.Helper()
	rep, err := sim.Run(sc, sim.Options{Design: design})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// tableRow returns the cells of the row of Table whose name starts with name.
func tableRow(t *testing.T, sc *sim.Scenario, reps []*sim.Report, name string) []string {
	t.Helper()
	for _, line := range strings.Split(sim.Table(sc, reps), "\n") {
		if strings.HasPrefix(line, "| "+name) {
			cells := strings.Split(strings.Trim(line, "| "), " | ")
			return cells[1:]
		}
	}
	t.Fatalf("no row %q in\n%s", name, sim.Table(sc, reps))
	return nil
}

// A scenario without restarts has no start-up time: "-", not "never";
// nor join times without joins.
func TestNotApplicableIsDash(t *testing.T) {
	sc := scenario(t, `
name: quiet
duration: 1d
population: {servers: 2, clients: 2}
`)
	reps := []*sim.Report{run(t, sc, "grapevine")}
	for _, row := range []string{"start-up connect", "new client connect", "join known by 50%", "join known by 100% (s, worst)"} {
		if got := tableRow(t, sc, reps, row); got[0] != "-" {
			t.Errorf("%s: %q, want -", row, got[0])
		}
	}
}

// A join no client could witness (the only client was off) is not timed
// as 0 s but reported apart.
func TestUnwitnessedJoin(t *testing.T) {
	sc := scenario(t, `
name: unwitnessed
duration: 4d
population: {servers: 2, clients: 1}
events:
  - {at: 1d, action: offline-clients, count: 1, for: 2d}
  - {at: 2d, action: join-servers, count: 1}
`)
	reps := []*sim.Report{run(t, sc, "grapevine")}
	m := reps[0].Metrics
	if m.JoinedServers != 1 || m.JoinsUnwitnessed != 1 || m.JoinsTimed != 0 || m.JoinP50Sec != -1 || m.JoinP100Sec != -1 {
		t.Errorf("joined %d, unwitnessed %d, timed %d, p50 %v, p100 %v; want 1, 1, 0, -1, -1",
			m.JoinedServers, m.JoinsUnwitnessed, m.JoinsTimed, m.JoinP50Sec, m.JoinP100Sec)
	}
	if got := tableRow(t, sc, reps, "join known by 100% (s, mean)"); got[0] != "-" {
		t.Errorf("join known by 100%%: %q, want -", got[0])
	}
	if got := tableRow(t, sc, reps, "joins not timed"); got[0] != "1 / 0" {
		t.Errorf("joins not timed: %q, want 1 / 0", got[0])
	}
}

// A server a departure removes at the moment it joins is not a join that
// failed to spread.
func TestJoinRemovedAtOnce(t *testing.T) {
	sc := scenario(t, `
name: removed
duration: 2d
population: {servers: 1, clients: 3}
events:
  - {at: 1d, action: join-servers, count: 1}
  - {at: 1d, action: depart-servers, fraction: 1}
`)
	m := run(t, sc, "grapevine").Metrics
	if m.JoinsRemovedAtOnce != 1 || m.JoinsNeverComplete != 0 || m.JoinsTimed != 0 {
		t.Errorf("removed at once %d, never complete %d, timed %d; want 1, 0, 0", m.JoinsRemovedAtOnce, m.JoinsNeverComplete, m.JoinsTimed)
	}
}

// Bytes per node per day is per day of a node running: clients that are
// off almost the whole run do not dilute it.
func TestBytesPerRunningNodeDay(t *testing.T) {
	base := `
name: bytes
duration: 6d
population: {servers: 6, clients: CLIENTS}
network: {latency: 30ms}
`
	a := run(t, scenario(t, strings.Replace(base, "CLIENTS", "6", 1)), "grapevine").Metrics
	// Six more clients, off from the second minute to past the end.
	b := run(t, scenario(t, strings.Replace(base, "CLIENTS", "12", 1)+`
events:
  - {at: 2m, action: offline-clients, count: 6, for: 30d}
`), "grapevine").Metrics
	want := 18*6 - 6*(6-2.0/24/60) // node-days up, to within the first minute's start-up
	if math.Abs(b.RunningNodeDays-want) > 12.0/24/60 {
		t.Errorf("running node-days %.4f, want %.4f", b.RunningNodeDays, want)
	}
	ratio := b.BytesPerNodePerDay / a.BytesPerNodePerDay
	t.Logf("bytes per node per day: %.0f with 6 clients, %.0f with 6 more that are off (ratio %.2f)", a.BytesPerNodePerDay, b.BytesPerNodePerDay, ratio)
	if ratio < 0.85 || ratio > 1.2 {
		t.Errorf("bytes per node per day %.0f vs %.0f: the clients that were off changed it by %.2fx", b.BytesPerNodePerDay, a.BytesPerNodePerDay, ratio)
	}
}

// Bytes by role: a server pays for each of its clients, a client's cost
// does not grow with the other clients, and the two add up to the whole.
func TestBytesByRole(t *testing.T) {
	base := `
name: roles
duration: 3d
population: {servers: 4, clients: CLIENTS}
network: {latency: 30ms}
`
	ms := map[int]sim.Metrics{}
	for _, clients := range []int{8, 24} {
		m := run(t, scenario(t, strings.Replace(base, "CLIENTS", strconv.Itoa(clients), 1)), "grapevine").Metrics
		ms[clients] = m
		// Every host runs the whole 3 days, to within start-up.
		whole := m.BytesPerNodePerDay * m.RunningNodeDays
		parts := (m.BytesPerServerPerDay*4 + m.BytesPerClientPerDay*float64(clients)) * m.RunningNodeDays / float64(4+clients)
		if m.BytesBusiestServerPerDay < m.BytesPerServerPerDay {
			t.Errorf("%d clients: the busiest server sent %.0f bytes a day, less than the mean %.0f", clients, m.BytesBusiestServerPerDay, m.BytesPerServerPerDay)
		}
		if m.BytesPerServerPerDay <= 0 || m.BytesPerClientPerDay <= 0 || math.Abs(parts-whole) > 0.01*whole {
			t.Errorf("%d clients: per server %.0f, per client %.0f, per node %.0f: the parts make %.0f bytes, the whole %.0f",
				clients, m.BytesPerServerPerDay, m.BytesPerClientPerDay, m.BytesPerNodePerDay, parts, whole)
		}
	}
	a, b := ms[8], ms[24]
	t.Logf("per server %.0f -> %.0f, per client %.0f -> %.0f bytes a day, from 8 to 24 clients",
		a.BytesPerServerPerDay, b.BytesPerServerPerDay, a.BytesPerClientPerDay, b.BytesPerClientPerDay)
	if r := b.BytesPerClientPerDay / a.BytesPerClientPerDay; r > 1.3 {
		t.Errorf("a client's bytes a day grew %.2fx with three times the clients", r)
	}
	if r := b.BytesPerServerPerDay / a.BytesPerServerPerDay; r < 1.5 {
		t.Errorf("a server's bytes a day grew only %.2fx with three times the clients", r)
	}
}

// "Departed still held at end" counts departures more than H old: one
// that left two days before the end may still be held by any design.
func TestStillHeldAtEndOnlyPastH(t *testing.T) {
	sc := scenario(t, `
name: held
duration: 36d
sample: 12h
population: {servers: 6, clients: 6}
events:
  - {at: 1d, action: depart-servers, count: 1}
  - {at: 34d, action: depart-servers, count: 1}
`)
	m := run(t, sc, "never-forget").Metrics
	if m.DepartedServers != 2 || m.StillHeldAtEnd != 1 {
		t.Errorf("never-forget: departed %d, still held at end %d; want 2, 1", m.DepartedServers, m.StillHeldAtEnd)
	}
}

// Holding by nodes that were off counts nodes that ran before the
// departure and came back, not servers that joined after it.
func TestHeldByReturnedNodesExcludesLaterJoins(t *testing.T) {
	sc := scenario(t, `
name: later
duration: 4d
sample: 12h
population: {servers: 4, clients: 4}
events:
  - {at: 1d, action: depart-servers, count: 1}
  - {at: 2d, action: join-servers, count: 2}
  - {at: 2d, action: join-clients, count: 2}
`)
	m := run(t, sc, "never-forget").Metrics
	if m.HeldByReturnedNodes != 0 || m.ZombieHeldNodeDays == 0 {
		t.Errorf("never-forget: node-days held by nodes that were off %.1f (want 0), held %.1f (want > 0)", m.HeldByReturnedNodes, m.ZombieHeldNodeDays)
	}
	// A client off across the departure does count.
	sc = scenario(t, `
name: returned
duration: 4d
sample: 12h
population: {servers: 4, clients: 4}
events:
  - {at: 12h, action: offline-clients, count: 1, for: 1d}
  - {at: 1d, action: depart-servers, count: 1}
`)
	if m := run(t, sc, "never-forget").Metrics; m.HeldByReturnedNodes == 0 {
		t.Errorf("never-forget: a client off across the departure holds it, yet node-days held by nodes that were off is 0")
	}
}

// Every design sees the scenario pick the same nodes for the same seed:
// which servers join behind NAT, depart, go offline; which nodes are cut
// off or skewed.
func TestSamePicksEveryDesign(t *testing.T) {
	sc := scenario(t, `
name: picks
duration: 12d
sample: 12h
population: {servers: 10, clients: 12, server_nat: 0.3, client_nat: 0.3}
network: {latency: 30ms, jitter: 20ms, loss: 0.01}
events:
  - {at: 1d, action: join-servers, count: 1, every: 1d, until: 10d}
  - {at: 1d, action: join-clients, count: 1, every: 2d, until: 10d}
  - {at: 2d, action: depart-servers, count: 1, every: 2d, until: 10d}
  - {at: 3d, action: offline-servers, count: 1, for: 2d}
  - {at: 3d, action: offline-clients, fraction: 0.2, for: 1d}
  - {at: 4d, action: partition, fraction: 0.3, for: 1d}
  - {at: 5d, action: restart-clients, count: 2}
  - {at: 6d, action: skew, fraction: 0.2, by: 1h}
  - {at: 7d, action: leave-servers, count: 1}
  - {at: 8d, action: kill-servers, count: 1}
`)
	var first []string
	for _, d := range sim.DesignNames() {
		var picks []string
		opt := sim.Options{Design: d, OnApply: func(at time.Duration, action string, hosts []string) {
			picks = append(picks, at.String()+" "+action+": "+strings.Join(hosts, " "))
		}}
		if _, err := sim.Run(sc, opt); err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = picks
			t.Logf("%s:\n%s", d, strings.Join(picks, "\n"))
			continue
		}
		if !slices.Equal(picks, first) {
			for i := range min(len(picks), len(first)) {
				if picks[i] != first[i] {
					t.Fatalf("%s picks differently from %s: %q, not %q", d, sim.DesignNames()[0], picks[i], first[i])
				}
			}
			t.Fatalf("%s: %d events, %s: %d", d, len(picks), sim.DesignNames()[0], len(first))
		}
	}
}

// A server away two weeks is forgotten nowhere and still known by every
// client when it comes back; one away 45 days (over H) is forgotten by
// every node and taken back, by its higher seqnum, as soon as it returns.
// Clients connect to either within their dial backoff (R3: a server that
// failed is retried at most an hour later).
func TestOfflineServers(t *testing.T) {
	if testing.Short() {
		t.Skip("60 simulated days")
	}
	sc := scenario(t, `
name: away
duration: 60d
sample: 1d
population: {servers: 6, clients: 8}
network: {latency: 30ms, jitter: 10ms}
events:
  - {at: 5d, action: offline-servers, count: 1, for: 14d}
  - {at: 6d, action: offline-servers, count: 1, for: 45d}
`)
	rep := run(t, sc, "grapevine")
	m := rep.Metrics
	if len(m.Returns) != 2 {
		t.Fatalf("returns: %+v", m.Returns)
	}
	short, long := m.Returns[0], m.Returns[1]
	t.Logf("14 days: %+v", short)
	t.Logf("45 days: %+v", long)
	cfg := sim.ScaleConfig()
	backoff := (cfg.BackoffMax + cfg.BackoffMax/4).Seconds()
	if !short.Returned || short.AwayDays != 14 || short.ForgottenBy != 0 || short.LostBy != 0 || short.KnownSec != 0 ||
		short.UsableSec < 0 || short.UsableSec > backoff {
		t.Errorf("14 days away: %+v; want forgotten by none, known by all on return, connected within %.0f s", short, backoff)
	}
	// The 5 other servers and the 8 clients forget it.
	if !long.Returned || long.AwayDays != 45 || long.ForgottenBy != 5+8 || long.LostBy != 8 || long.KnownSec < 0 || long.KnownSec > 60 ||
		long.UsableSec < 0 || long.UsableSec > backoff {
		t.Errorf("45 days away: %+v; want forgotten by 13 nodes, by all 8 clients, known by all again within a minute, connected within %.0f s", long, backoff)
	}
	if m.FalseForgets != 0 || m.Resurrections != 0 || m.CoverageAll != 1 {
		t.Errorf("false forgets %d, resurrections %d, coverage %.3f", m.FalseForgets, m.Resurrections, m.CoverageAll)
	}
	tab := sim.Table(sc, []*sim.Report{rep})
	for _, want := range []string{"off on day 5.0 for 14.0 days: forgotten by (nodes) | 0 |", "off on day 6.0 for 45.0 days: forgotten by (nodes) | 13 |"} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
	// Under never-forget nobody forgets either.
	for _, x := range run(t, sc, "never-forget").Metrics.Returns {
		if x.ForgottenBy != 0 || x.KnownSec != 0 {
			t.Errorf("never-forget: %+v", x)
		}
	}
}
