package sim

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// StudyResult is one scenario of a study.
type StudyResult struct {
	File     string
	Scenario *Scenario
	Reports  []*Report
}

// StudyPlan says what a study runs.
type StudyPlan struct {
	Files   []string
	Designs []string // nil: DesignNames()
	// Servers and Clients, when above 0, replace every scenario's
	// population counts (the study at scale); events and shares stay.
	Servers, Clients int
	Seed             uint64 // 0: each scenario's
	Workers          int    // runs at once; below 1: one
	// Progress, if set, is called with each run's virtual time done; Done
	// when a run ends. Both may be called from several goroutines at once.
	Progress func(label string, done, total time.Duration)
	Done     func(label string, took time.Duration)
}

func (p StudyPlan) designs() []string {
	if len(p.Designs) == 0 {
		return DesignNames()
	}
	return p.Designs
}

// RunStudy runs every scenario of the plan under every design and writes
// each scenario's reports under outDir/<name>/.
func RunStudy(p StudyPlan, outDir string) ([]StudyResult, error) {
	files := slices.Sorted(slices.Values(p.Files))
	designs := p.designs()
	for _, d := range designs {
		if _, ok := Designs[d]; !ok {
			return nil, fmt.Errorf("unknown design %q (known: %s)", d, strings.Join(AllDesignNames(), ", "))
		}
	}
	out := make([]StudyResult, len(files))
	type job struct{ scenario, design int }
	var jobs []job
	for i, f := range files {
		sc, err := LoadScenario(f)
		if err != nil {
			return nil, err
		}
		if p.Servers > 0 {
			sc.Population.Servers = p.Servers
		}
		if p.Clients > 0 {
			sc.Population.Clients = p.Clients
		}
		out[i] = StudyResult{File: f, Scenario: sc, Reports: make([]*Report, len(designs))}
		for j := range designs {
			jobs = append(jobs, job{i, j})
		}
	}
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	slots := make(chan struct{}, max(1, p.Workers))
	for k, jb := range jobs {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			res, d := &out[jb.scenario], designs[jb.design]
			label := res.Scenario.Name + "/" + d
			opt := Options{Design: d, Seed: p.Seed}
			if p.Progress != nil {
				opt.Progress = func(done, total time.Duration) { p.Progress(label, done, total) }
			}
			start := time.Now()
			rep, err := Run(res.Scenario, opt)
			if err != nil {
				errs[k] = fmt.Errorf("%s: %w", res.File, err)
				return
			}
			res.Reports[jb.design] = rep
			if p.Done != nil {
				p.Done(label, time.Since(start))
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, res := range out {
		if err := WriteReports(filepath.Join(outDir, res.Scenario.Name), res.Scenario, res.Reports); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Findings says in plain words what each design gets wrong in a run, from
// its metrics alone.
func Findings(sc *Scenario, reps []*Report) []string {
	cfg, _ := sc.CoreConfig("grapevine")
	bound := (cfg.ForgetHorizon + cfg.RefreshInterval).Hours() / 24
	var out []string
	for _, r := range reps {
		m := r.Metrics
		var bad []string
		if m.FalseForgets > 0 {
			bad = append(bad, fmt.Sprintf("deleted live servers %d times", m.FalseForgets))
		}
		if m.Resurrections > 0 {
			bad = append(bad, fmt.Sprintf("took back deleted servers without a new seqnum %d times", m.Resurrections))
		}
		if m.StillHeldAtEnd > 0 && r.DurationDays-m.FirstDepartureDay > bound {
			bad = append(bad, fmt.Sprintf("still held at the end %d of the %d departed servers (gone more than H before)", m.StillHeldAtEnd, m.DepartedServers))
		} else if m.ZombieLifetimeMaxDays > bound {
			bad = append(bad, fmt.Sprintf("held a departed server for %.1f days (H + one refresh is %.0f)", m.ZombieLifetimeMaxDays, bound))
		}
		if m.DepartedServers > 0 && m.ZombieRelayedNodeDays > 0 && m.ZombieRelayedNodeDays >= 0.5*m.ZombieHeldNodeDays {
			bad = append(bad, fmt.Sprintf("kept passing departed servers on (%.0f node-days)", m.ZombieRelayedNodeDays))
		}
		if m.JoinsNeverComplete > 0 {
			bad = append(bad, fmt.Sprintf("never got %d of %d new servers to every client", m.JoinsNeverComplete, m.JoinedServers))
		}
		if m.CoverageAll < 1 {
			bad = append(bad, fmt.Sprintf("left %.0f%% of clients not knowing every live server", 100*(1-m.CoverageAll)))
		}
		switch {
		case m.Restarts > 0 && m.StartupConnectSec < 0:
			bad = append(bad, "left a restarted client not knowing, or not connected to, some live server")
		case m.Restarts > 0 && m.StartupConnectSec > 60:
			bad = append(bad, fmt.Sprintf("took %.0f s after a restart to know and connect to every live server", m.StartupConnectSec))
		}
		switch {
		case m.ClientJoins > 0 && m.ClientJoinConnectSec < 0:
			bad = append(bad, "left a new client not knowing, or not connected to, some live server")
		case m.ClientJoins > 0 && m.ClientJoinConnectSec > 60:
			bad = append(bad, fmt.Sprintf("took %.0f s for a new client to know and connect to every live server", m.ClientJoinConnectSec))
		}
		for _, x := range m.Returns {
			switch {
			case x.ForgottenBy > 0 && x.AwayDays*24 < cfg.ForgetHorizon.Hours():
				bad = append(bad, fmt.Sprintf("forgot %s, away only %.0f days, on %d nodes", x.Server, x.AwayDays, x.ForgottenBy))
			case x.Returned && x.KnownSec < 0:
				bad = append(bad, fmt.Sprintf("never got %s, back after %.0f days, to every client", x.Server, x.AwayDays))
			case x.Returned && !x.NAT && x.UsableSec < 0:
				bad = append(bad, fmt.Sprintf("left a client unconnected to %s, back after %.0f days", x.Server, x.AwayDays))
			case x.Returned && !x.NAT && x.UsableSec > 60:
				bad = append(bad, fmt.Sprintf("took %.0f s after %s came back (away %.0f days) until every client was connected to it", x.UsableSec, x.Server, x.AwayDays))
			}
		}
		if len(bad) == 0 {
			out = append(out, fmt.Sprintf("**%s**: nothing wrong by these measures.", r.Design))
		} else {
			out = append(out, fmt.Sprintf("**%s** %s.", r.Design, joinWords(bad)))
		}
	}
	return out
}

func joinWords(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], "; ") + "; and " + s[len(s)-1]
}

// StudyMarkdown renders docs/study.md.
func StudyMarkdown(results []StudyResult, outDir, docDir, command string, seed uint64) string {
	var b strings.Builder
	b.WriteString("# The forgetting study\n\n")
	b.WriteString("Generated by `" + command + "`; do not edit by hand. Each scenario runs the\n")
	b.WriteString("same protocol core under four designs (`internal/sim/designs.go`):\n")
	b.WriteString("`never-forget` (Tahoe today), `timestamp` (the design discussion's first\n")
	b.WriteString("proposal), `seed-rules` (the discussion's three rules as written) and\n")
	b.WriteString("`grapevine` (the rules as built; see design.md). Scenario files are in\n")
	b.WriteString("`internal/sim/scenarios/study/`; their format is in [sim.md](sim.md).\n")
	b.WriteString("Metrics are defined in `internal/sim/run.go`.\n\n")
	if seed != 0 {
		fmt.Fprintf(&b, "Seed: %d for every run.\n\n", seed)
	}
	b.WriteString("## Summary over all scenarios\n\n")
	b.WriteString(summary(results))
	b.WriteString(scenarioSections(results, outDir, docDir, "##"))
	return b.String()
}

// AtScaleMarker starts the "At scale" section of docs/study.md, which
// `study --at-scale` writes and a plain `study` keeps.
const AtScaleMarker = "<!-- at-scale: written by study --at-scale -->"

// AtScaleMarkdown renders the "At scale" section of docs/study.md.
func AtScaleMarkdown(results []StudyResult, outDir, docDir, command string, took time.Duration, workers int) string {
	var b strings.Builder
	b.WriteString(AtScaleMarker + "\n## At scale\n\n")
	if len(results) > 0 {
		p := results[0].Scenario.Population
		fmt.Fprintf(&b, "The scenarios above with %d servers and %d clients, under %s.\n", p.Servers, p.Clients, strings.Join(designsOf(results), " and "))
	}
	b.WriteString("Generated by `" + command + "`")
	runs := "runs"
	if workers <= 1 {
		runs = "run"
	}
	fmt.Fprintf(&b, " in %s of wall time, %d %s at a time.\n\n", took.Round(time.Second), max(1, workers), runs)
	b.WriteString(summary(results))
	b.WriteString(scenarioSections(results, outDir, docDir, "###"))
	return b.String()
}

// SpliceAtScale returns doc with its "At scale" section replaced by
// section; an empty section keeps the one doc has.
func SpliceAtScale(doc, old, section string) string {
	if section == "" {
		if i := strings.Index(old, AtScaleMarker); i >= 0 {
			section = old[i:]
		}
	}
	if i := strings.Index(doc, AtScaleMarker); i >= 0 {
		doc = doc[:i]
	}
	if section == "" {
		return doc
	}
	return strings.TrimRight(doc, "\n") + "\n\n" + section
}

func designsOf(results []StudyResult) []string {
	var out []string
	for _, res := range results {
		for _, r := range res.Reports {
			if !slices.Contains(out, r.Design) {
				out = append(out, r.Design)
			}
		}
	}
	return out
}

func scenarioSections(results []StudyResult, outDir, docDir, h string) string {
	var b strings.Builder
	for _, res := range results {
		sc := res.Scenario
		fmt.Fprintf(&b, "%s %s\n\n", h, sc.Name)
		b.WriteString("What goes wrong:\n\n")
		for _, f := range Findings(sc, res.Reports) {
			b.WriteString("- " + f + "\n")
		}
		b.WriteString("\n")
		t := Table(sc, res.Reports)
		b.WriteString(t[strings.Index(t, "\n")+1:])
		rel, _ := filepath.Rel(docDir, filepath.Join(outDir, sc.Name))
		rel = filepath.ToSlash(rel)
		for _, c := range Charts(sc, res.Reports) {
			fmt.Fprintf(&b, "\n![%s](%s/%s)\n", c.chart.Title, rel, c.file)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// summary totals each design's failures over all scenarios.
func summary(results []StudyResult) string {
	type tot struct {
		falseForgets, resurrections, joinsNever int
		zombieMax, relayedDays                  float64
		coverageMin                             float64
	}
	t := map[string]*tot{}
	designs := designsOf(results)
	for _, d := range designs {
		t[d] = &tot{coverageMin: 1}
	}
	for _, res := range results {
		for _, r := range res.Reports {
			x, m := t[r.Design], r.Metrics
			x.falseForgets += m.FalseForgets
			x.resurrections += m.Resurrections
			x.joinsNever += m.JoinsNeverComplete
			x.zombieMax = max(x.zombieMax, m.ZombieLifetimeMaxDays)
			x.relayedDays += m.ZombieRelayedNodeDays
			x.coverageMin = min(x.coverageMin, m.CoverageAll)
		}
	}
	var b strings.Builder
	b.WriteString("| design | false forgets | resurrections | longest zombie (days) | zombie node-days relayed | joins never known by all | lowest share of clients knowing every live server |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|\n")
	for _, d := range designs {
		x := t[d]
		fmt.Fprintf(&b, "| %s | %d | %d | %.1f | %.0f | %d | %.3f |\n", d, x.falseForgets, x.resurrections, x.zombieMax, x.relayedDays, x.joinsNever, x.coverageMin)
	}
	b.WriteString("\nA zombie's life is counted on nodes that ran throughout; nodes that were off count time\n")
	b.WriteString("by their own running clock (R5), and their holding is shown apart in each table.\n\n")
	return b.String()
}
