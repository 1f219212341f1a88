package cli

import (
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"grapevine/internal/sim"
)

type simOpts struct {
	design *choice
	seed   *uint64
	out    *string
	quiet  *bool
}

func simFlags(fs *flag.FlagSet) simOpts {
	o := simOpts{design: newChoice("all", append(sim.AllDesignNames(), "all")...)}
	fs.Var(o.design, "design", "the design to run, or all: "+strings.Join(sim.DesignNames(), ", "))
	o.seed = fs.Uint64("seed", 0, "random `SEED` (0: the scenario's)")
	o.out = fs.String("out", "", "write the reports into `DIR`")
	o.quiet = fs.Bool("quiet", false, "no progress bar")
	return o
}

func runSim(env *Env, c *command, o simOpts, pos []string) int {
	if len(pos) != 1 {
		return usageError(env, c, "want exactly one SCENARIO file, got %d", len(pos))
	}
	sc, err := sim.LoadScenario(pos[0])
	if err != nil {
		return fail(env, c, err)
	}
	designs := []string{o.design.value}
	if o.design.value == "all" {
		designs = sim.DesignNames()
	}
	var reps []*sim.Report
	for _, d := range designs {
		start := time.Now()
		opt := sim.Options{Design: d, Seed: *o.seed}
		if !*o.quiet {
			opt.Progress = progressBar(env, sc.Name+"/"+d)
		}
		rep, err := sim.Run(sc, opt)
		if err != nil {
			return fail(env, c, err)
		}
		if !*o.quiet {
			took := time.Since(start)
			fmt.Fprintf(env.Stderr, "\n%s/%s: %d nodes, %.0f days in %v; %d records delivered, %.0f per second\n", sc.Name, d, rep.Nodes, rep.DurationDays,
				took.Round(time.Millisecond), rep.Metrics.RecordsDelivered, float64(rep.Metrics.RecordsDelivered)/took.Seconds())
		}
		reps = append(reps, rep)
	}
	if err := sim.WriteReports(*o.out, sc, reps); err != nil {
		return fail(env, c, err)
	}
	fmt.Fprint(env.Stdout, sim.Table(sc, reps))
	fmt.Fprintf(env.Stdout, "\nReports in %s\n", filepath.Clean(*o.out))
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
