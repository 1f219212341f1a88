package sim_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"grapevine/internal/sim"
)

func runAll(t *testing.T, file string) map[string]*sim.Report {
	t.Helper()
	sc, err := sim.LoadScenario(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*sim.Report{}
	for _, d := range sim.DesignNames() {
		rep, err := sim.Run(sc, sim.Options{Design: d})
		if err != nil {
			t.Fatal(err)
		}
		out[d] = rep
	}
	return out
}

// Grapevine's invariants on a small grid with silent and announced
// departures, joins, a long-offline client and skewed clocks; and the other
// designs' failures, shown by the same metrics.
func TestInvariants(t *testing.T) {
	reps := runAll(t, "scenarios/ci-small.yaml")
	cfg := sim.ScaleConfig()
	g := reps["grapevine"].Metrics
	t.Logf("grapevine: %+v", g)
	if g.FalseForgets != 0 || g.Resurrections != 0 {
		t.Errorf("grapevine: %d false forgets, %d resurrections", g.FalseForgets, g.Resurrections)
	}
	bound := (cfg.ForgetHorizon + cfg.RefreshInterval).Hours() / 24
	if g.DepartedServers == 0 || g.ZombieLifetimeMaxDays < 0 || g.ZombieLifetimeMaxDays > bound {
		t.Errorf("grapevine: zombie lifetime %.2f days, bound %.2f (departed %d)", g.ZombieLifetimeMaxDays, bound, g.DepartedServers)
	}
	if g.StillHeldAtEnd != 0 || g.JoinsNeverComplete != 0 || g.CoverageAll != 1 {
		t.Errorf("grapevine: still held %d, joins never complete %d, coverage %.3f", g.StillHeldAtEnd, g.JoinsNeverComplete, g.CoverageAll)
	}
	if nf := reps["never-forget"].Metrics; nf.StillHeldAtEnd == 0 {
		t.Errorf("never-forget forgot its departed servers: %+v", nf)
	}
	if sr := reps["seed-rules"].Metrics; sr.CoverageAll == 1 && sr.FalseForgets == 0 {
		t.Errorf("seed-rules shows no failure here: %+v", sr)
	}
}

// The same scenario and seed give byte-identical reports.
func TestReproducible(t *testing.T) {
	sc, err := sim.LoadScenario("scenarios/ci-small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Duration = sim.Dur(10 * 24 * time.Hour)
	var outs [][]byte
	for range 2 {
		dir := t.TempDir()
		rep, err := sim.Run(sc, sim.Options{Design: "grapevine", Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		if err := sim.WriteReports(dir, sc, []*sim.Report{rep}); err != nil {
			t.Fatal(err)
		}
		var all []byte
		for _, f := range []string{"report.json", "report.txt", "coverage.svg", "departed-held.svg"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		outs = append(outs, all)
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Fatal("two runs with the same seed differ")
	}
	var reps []sim.Report
	if err := json.Unmarshal(outs[0][:bytes.Index(outs[0], []byte("\n]\n"))+3], &reps); err != nil || len(reps) != 1 {
		t.Fatalf("report.json: %v", err)
	}
}

func TestScenarioErrors(t *testing.T) {
	cases := map[string]string{
		"name: x\nduration: 1d\npopulation: {servers: 1, clients: 1}\nbogus: 1\n":                                                   "field bogus not found",
		"name: x\nduration: 1d\npopulation: {servers: 0, clients: 1}\n":                                                             "at least one server",
		"name: x\nduration: 1d\npopulation: {servers: 1, clients: 1}\nevents: [{at: 2d, action: skew}]\n":                           "outside the run",
		"name: x\nduration: 1d\npopulation: {servers: 1, clients: 1}\nevents: [{at: 1h, action: explode}]\n":                        "unknown action",
		"name: x\nduration: 1 day\npopulation: {servers: 1, clients: 1}\n":                                                          "bad duration",
		"name: x\nduration: 1d\npopulation: {servers: 1, clients: 1}\nconfig: {NoSuchField: 1}\n":                                   "no core.Config field",
		"name: x\nduration: 1d\npopulation: {servers: 1, clients: 1}\nconfig: {ForgetHorizon: 1h}\n":                                "ForgetHorizon",
		"name: x\nduration: 1d3x\npopulation: {servers: 1, clients: 1}\n":                                                           "bad duration",
		"name: x\nduration: 1d\npopulation: {servers: 1, clients: 1}\nevents: [{at: 1h, action: offline-servers, count: 1}]\n":      "needs a positive for",
		"name: x\nduration: 1d\npopulation: {servers: 1, clients: 1}\nevents: [{at: 1h, action: partition, fraction: 0.5}]\n":       "needs a positive for",
		"name: x\nduration: 1d\npopulation: {servers: 1, clients: 1}\nevents: [{at: 1h, action: skew, groups: 2}]\n":                "groups is for partition only",
		"name: x\nduration: 1d\npopulation: {servers: 1, clients: 1}\nevents: [{at: 1h, action: partition, for: 1h, groups: -1}]\n": "groups is for partition only",
	}
	for in, want := range cases {
		_, err := sim.ParseScenario("s.yaml", []byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
	files, _ := filepath.Glob("scenarios/study/*.yaml")
	if len(files) < 7 {
		t.Fatalf("%d study scenarios", len(files))
	}
	for _, f := range files {
		if _, err := sim.LoadScenario(f); err != nil {
			t.Error(err)
		}
	}
}

// Durations take days as their first unit, alone or with Go's units.
func TestParseDuration(t *testing.T) {
	const day = 24 * time.Hour
	good := map[string]time.Duration{
		"90s": 90 * time.Second, "36h": 36 * time.Hour, "30d": 30 * day, "1.5d": 36 * time.Hour,
		"1d3h": day + 3*time.Hour, "2d12h30m": 2*day + 12*time.Hour + 30*time.Minute, "1d90s": day + 90*time.Second,
		"0d": 0, "-1d3h": -(day + 3*time.Hour), " 7d ": 7 * day, "8760h": 8760 * time.Hour,
	}
	for in, want := range good {
		got, err := sim.ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1 day", "3h1d", "1d-3h", "1d+3h", "1dd", "d3h", "1d3", "1x", "--1d", "1e400d"} {
		if got, err := sim.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}
