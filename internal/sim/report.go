package sim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"grapevine/internal/sim/plot"
)

// WriteReports writes report.json, report.txt and the SVG plots for the
// reports of one scenario (one per design) into dir.
func WriteReports(dir string, sc *Scenario, reps []*Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(reps, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.txt"), []byte(Table(sc, reps)), 0o644); err != nil {
		return err
	}
	for _, c := range Charts(sc, reps) {
		if err := c.chart.WriteFile(filepath.Join(dir, c.file)); err != nil {
			return err
		}
	}
	return nil
}

type namedChart struct {
	file  string
	chart plot.Chart
}

// Charts returns the plots for a scenario's reports.
func Charts(sc *Scenario, reps []*Report) []namedChart {
	series := func(get func(*Report) []float64) []plot.Series {
		var out []plot.Series
		for _, r := range reps {
			s := plot.Series{Name: r.Design}
			for i, y := range get(r) {
				s.Points = append(s.Points, plot.Point{X: r.Series.TimeDays[i], Y: y})
			}
			out = append(out, s)
		}
		return out
	}
	return []namedChart{
		{"coverage.svg", plot.Chart{Title: sc.Name + ": servers that joined (over an hour ago), known by clients",
			XLabel: "day", YLabel: "share of (client, joined server) pairs", YMin: 0, YMax: 1,
			Series: series(func(r *Report) []float64 { return r.Series.CoverageJoined })}},
		{"departed-held.svg", plot.Chart{Title: sc.Name + ": departed servers still held",
			XLabel: "day", YLabel: "(node, departed server) pairs",
			Series: series(func(r *Report) []float64 { return r.Series.HeldDeparted })}},
		{"departed-relayed.svg", plot.Chart{Title: sc.Name + ": departed servers still passed on",
			XLabel: "day", YLabel: "(node, departed server) pairs",
			Series: series(func(r *Report) []float64 { return r.Series.RelayedDeparted })}},
	}
}

// Table renders the metrics of a scenario's reports side by side.
func Table(sc *Scenario, reps []*Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Scenario %s: %d nodes, %.0f days", sc.Name, reps[0].Nodes, reps[0].DurationDays)
	fmt.Fprintf(&b, ", seed %d\n%s\n\n", reps[0].Seed, strings.TrimSpace(sc.Description))
	type row struct {
		name string
		get  func(Metrics) string
	}
	joins := func(get func(Metrics) float64) func(Metrics) string {
		return func(m Metrics) string { return secsIf(m.JoinsTimed > 0, get(m)) }
	}
	rows := []row{
		{"servers joined", func(m Metrics) string { return fmt.Sprint(m.JoinedServers) }},
		{"joins not timed: no client to see it / removed at once", func(m Metrics) string {
			return fmt.Sprintf("%d / %d", m.JoinsUnwitnessed, m.JoinsRemovedAtOnce)
		}},
		{"join known by 50% (s, mean)", joins(func(m Metrics) float64 { return m.JoinP50Sec })},
		{"join known by 99% (s, mean)", joins(func(m Metrics) float64 { return m.JoinP99Sec })},
		{"join known by 100% (s, mean)", joins(func(m Metrics) float64 { return m.JoinP100Sec })},
		{"join known by 100% (s, worst)", joins(func(m Metrics) float64 { return m.JoinP100MaxSec })},
		{"joins never known by all", func(m Metrics) string { return fmt.Sprint(m.JoinsNeverComplete) }},
		{"servers departed", func(m Metrics) string { return fmt.Sprint(m.DepartedServers) }},
		{"zombie node-days held", func(m Metrics) string { return fmt.Sprintf("%.1f", m.ZombieHeldNodeDays) }},
		{"zombie node-days relayed", func(m Metrics) string { return fmt.Sprintf("%.1f", m.ZombieRelayedNodeDays) }},
		{"zombie lifetime, longest (days)", func(m Metrics) string { return days1(m.ZombieLifetimeMaxDays) }},
		{"departed over H ago, still held at end", func(m Metrics) string { return fmt.Sprint(m.StillHeldAtEnd) }},
		{"zombie node-days on nodes that were off", func(m Metrics) string { return fmt.Sprintf("%.1f", m.HeldByReturnedNodes) }},
		{"false forgets", func(m Metrics) string { return fmt.Sprint(m.FalseForgets) }},
		{"resurrections", func(m Metrics) string { return fmt.Sprint(m.Resurrections) }},
		{"evictions", func(m Metrics) string { return fmt.Sprint(m.Evictions) }},
		{"bytes per node per day", func(m Metrics) string { return fmt.Sprintf("%.0f", m.BytesPerNodePerDay) }},
		{"bytes per server / client per day", func(m Metrics) string {
			return fmt.Sprintf("%.0f / %.0f", m.BytesPerServerPerDay, m.BytesPerClientPerDay)
		}},
		{"bytes per day, busiest server", func(m Metrics) string { return fmt.Sprintf("%.0f", m.BytesBusiestServerPerDay) }},
		{"records delivered", func(m Metrics) string { return fmt.Sprint(m.RecordsDelivered) }},
		{"start-up connect (s, worst)", func(m Metrics) string { return secsIf(m.Restarts > 0, m.StartupConnectSec) }},
		{"new client connect (s, worst)", func(m Metrics) string { return secsIf(m.ClientJoins > 0, m.ClientJoinConnectSec) }},
	}
	// One group of rows per server that went offline (the same servers
	// under every design: the scenario's picks do not depend on it).
	nret := 0
	for _, r := range reps {
		nret = max(nret, len(r.Metrics.Returns))
	}
	for i := range nret {
		var label string
		for _, r := range reps {
			if i < len(r.Metrics.Returns) {
				x := r.Metrics.Returns[i]
				label = fmt.Sprintf("%s, off on day %s for %s days", x.Server, days1(x.OffDay), days1(x.AwayDays))
				if !x.Returned {
					label = fmt.Sprintf("%s, off on day %s, not back", x.Server, days1(x.OffDay))
				}
				break
			}
		}
		ret := func(get func(Return) string) func(Metrics) string {
			return func(m Metrics) string {
				if i >= len(m.Returns) {
					return "-"
				}
				return get(m.Returns[i])
			}
		}
		rows = append(rows,
			row{label + ": forgotten by (nodes)", ret(func(x Return) string { return fmt.Sprint(x.ForgottenBy) })},
			row{"... clients not holding it on return", ret(func(x Return) string { return countIf(x.Returned, x.LostBy) })},
			row{"... known by every client again (s)", ret(func(x Return) string { return secsIf(x.Returned, x.KnownSec) })},
			row{"... and connected (s)", ret(func(x Return) string { return secsIf(x.Returned && !x.NAT, x.UsableSec) })},
		)
	}
	rows = append(rows,
		row{"clients knowing every live server", func(m Metrics) string { return fmt.Sprintf("%.3f", m.CoverageAll) }},
		row{"... every dialable live server", func(m Metrics) string { return fmt.Sprintf("%.3f", m.CoverageDialable) }},
	)
	fmt.Fprintf(&b, "| metric |")
	for _, r := range reps {
		fmt.Fprintf(&b, " %s |", r.Design)
	}
	fmt.Fprintf(&b, "\n|---|")
	for range reps {
		fmt.Fprintf(&b, "---:|")
	}
	b.WriteString("\n")
	for _, row := range rows {
		fmt.Fprintf(&b, "| %s |", row.name)
		for _, r := range reps {
			fmt.Fprintf(&b, " %s |", row.get(r.Metrics))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func secs(s float64) string {
	if s < 0 {
		return "never"
	}
	return fmt.Sprintf("%.1f", s)
}

// secsIf is secs when the measure applies, and "-" when it does not (no
// restart, no join, ...).
func secsIf(applies bool, s float64) string {
	if !applies {
		return "-"
	}
	return secs(s)
}

func countIf(applies bool, n int) string {
	if !applies {
		return "-"
	}
	return fmt.Sprint(n)
}

func days1(d float64) string {
	if d < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", d)
}
