package cli

import (
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"grapevine/sim"
)

func init() {
	register(&command{
		name:    "sim",
		args:    "[--design D|all] [--seed S] --out DIR SCENARIO.yaml",
		summary: "Run a simulation scenario (docs/sim.md) and write report.json, report.txt and SVG plots.",
		run:     runSim,
	})
}

func runSim(env *Env, args []string) int {
	c := commands["sim"]
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	design := fs.String("design", "all", "design: "+strings.Join(sim.DesignNames(), ", ")+", or all")
	seed := fs.Uint64("seed", 0, "random seed (0: the scenario's)")
	out := fs.String("out", "", "directory for the reports (required)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	pos, code, ok := parseFlags(env, c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(env, c, "want exactly one SCENARIO file, got %d", len(pos))
	}
	if *out == "" {
		return usageError(env, c, "--out DIR is required")
	}
	sc, err := sim.LoadScenario(pos[0])
	if err != nil {
		return fail(env, c, err)
	}
	designs := []string{*design}
	if *design == "all" {
		designs = sim.DesignNames()
	} else if _, ok := sim.Designs[*design]; !ok {
		return usageError(env, c, "unknown design %q (have %s)", *design, strings.Join(sim.DesignNames(), ", "))
	}
	var reps []*sim.Report
	for _, d := range designs {
		start := time.Now()
		opt := sim.Options{Design: d, Seed: *seed}
		if !*quiet {
			opt.Progress = progressBar(env, sc.Name+"/"+d)
		}
		rep, err := sim.Run(sc, opt)
		if err != nil {
			return fail(env, c, err)
		}
		if !*quiet {
			took := time.Since(start)
			fmt.Fprintf(env.Stderr, "\n%s/%s: %d nodes, %.0f days in %v; %d records delivered, %.0f per second\n", sc.Name, d, rep.Nodes, rep.DurationDays,
				took.Round(time.Millisecond), rep.Metrics.RecordsDelivered, float64(rep.Metrics.RecordsDelivered)/took.Seconds())
		}
		reps = append(reps, rep)
	}
	if err := sim.WriteReports(*out, sc, reps); err != nil {
		return fail(env, c, err)
	}
	fmt.Fprint(env.Stdout, sim.Table(sc, reps))
	fmt.Fprintf(env.Stdout, "\nReports in %s\n", filepath.Clean(*out))
	return exitOK
}

// progressBar draws a one-line bar on stderr.
func progressBar(env *Env, label string) func(done, total time.Duration) {
	last := -1
	return func(done, total time.Duration) {
		pct := int(100 * done / total)
		if pct == last {
			return
		}
		last = pct
		const width = 30
		n := width * pct / 100
		fmt.Fprintf(env.Stderr, "\r%-28s [%s%s] %3d%% day %.0f", label, strings.Repeat("=", n), strings.Repeat(" ", width-n), pct, done.Hours()/24)
	}
}
