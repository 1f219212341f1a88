package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"grapevine/internal/sim"
)

// The study at scale: these scenarios, designs and population.
var atScale = struct {
	scenarios        []string
	designs          string
	servers, clients int
}{[]string{"steady", "departures", "clock-skew", "nat"}, "grapevine,never-forget", 1000, 9000}

type studyOpts struct {
	fs                     *flag.FlagSet // to write the command line into the document
	dir, out, doc, designs *string
	seed                   *uint64
	quiet, scale           *bool
	workers                *int
	servers, clients       *int
}

func studyFlags(fs *flag.FlagSet) studyOpts {
	return studyOpts{
		fs:      fs,
		dir:     fs.String("scenarios", "internal/sim/scenarios/study", "read the scenario files in `DIR`"),
		out:     fs.String("out", "docs/study", "write per-scenario reports and plots into `DIR` (at scale: its at-scale/ subdirectory)"),
		doc:     fs.String("doc", "docs/study.md", "write the study document to `FILE`"),
		seed:    fs.Uint64("seed", 0, "random `SEED` for every run (0: each scenario's)"),
		quiet:   fs.Bool("quiet", false, "no progress bar"),
		workers: fs.Int("workers", 2, "`N` runs at once"),
		scale: fs.Bool("at-scale", false, fmt.Sprintf("run %s with %d servers and %d clients under %s, and write only the \"At scale\" section",
			strings.Join(atScale.scenarios, ", "), atScale.servers, atScale.clients, atScale.designs)),
		servers: fs.Int("servers", atScale.servers, "`N` servers in each scenario (with --at-scale)"),
		clients: fs.Int("clients", atScale.clients, "`N` clients in each scenario (with --at-scale)"),
		designs: fs.String("designs", atScale.designs, "run the comma-separated `LIST` of designs (with --at-scale)"),
	}
}

func runStudy(env *Env, c *command, o studyOpts, pos []string) int {
	if len(pos) != 0 {
		return usageError(env, c, "unexpected arguments %v", pos)
	}
	if *o.workers < 1 {
		return usageError(env, c, "--workers %d: want at least 1", *o.workers)
	}
	command := "go run ./cmd/grapevine study" + flagsGiven(o.fs, "quiet")
	plan, out := sim.StudyPlan{Seed: *o.seed, Workers: *o.workers}, *o.out
	if *o.scale {
		if *o.servers < 1 || *o.clients < 1 {
			return usageError(env, c, "--servers and --clients must be at least 1")
		}
		for _, n := range atScale.scenarios {
			plan.Files = append(plan.Files, filepath.Join(*o.dir, n+".yaml"))
		}
		plan.Designs = strings.Split(*o.designs, ",")
		plan.Servers, plan.Clients = *o.servers, *o.clients
		out = filepath.Join(out, "at-scale")
	} else {
		files, err := filepath.Glob(filepath.Join(*o.dir, "*.yaml"))
		if err != nil || len(files) == 0 {
			return fail(env, c, fmt.Errorf("no scenario files in %s", *o.dir))
		}
		plan.Files = files
	}
	start := time.Now()
	if !*o.quiet {
		var mu sync.Mutex
		if *o.workers == 1 {
			bars := map[string]func(time.Duration, time.Duration){}
			plan.Progress = func(label string, done, total time.Duration) {
				mu.Lock()
				defer mu.Unlock()
				if bars[label] == nil {
					if len(bars) > 0 {
						fmt.Fprintln(env.Stderr)
					}
					bars[label] = progressBar(env, label)
				}
				bars[label](done, total)
			}
		}
		plan.Done = func(label string, took time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			if *o.workers == 1 {
				fmt.Fprintln(env.Stderr)
			}
			fmt.Fprintf(env.Stderr, "%s done in %v\n", label, took.Round(time.Second))
		}
	}
	results, err := sim.RunStudy(plan, out)
	if err != nil {
		return fail(env, c, err)
	}
	old, err := os.ReadFile(*o.doc)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(env, c, err)
	}
	var md string
	if *o.scale {
		section := sim.AtScaleMarkdown(results, out, filepath.Dir(*o.doc), command, time.Since(start), *o.workers)
		md = sim.SpliceAtScale(string(old), "", section)
	} else {
		md = sim.SpliceAtScale(sim.StudyMarkdown(results, out, filepath.Dir(*o.doc), command, *o.seed), string(old), "")
	}
	if err := os.WriteFile(*o.doc, []byte(md), 0o644); err != nil {
		return fail(env, c, err)
	}
	fmt.Fprintf(env.Stdout, "\nWrote %s and %s/ (%d scenarios x %d designs) in %v\n", *o.doc, out, len(results), len(results[0].Reports), time.Since(start).Round(time.Second))
	return exitOK
}

// flagsGiven writes the flags given on the command line, but for skip,
// as " --name value" (" --name" for a true bool), ordered by name.
func flagsGiven(fs *flag.FlagSet, skip string) string {
	var b strings.Builder
	fs.Visit(func(f *flag.Flag) {
		switch bf, isBool := f.Value.(interface{ IsBoolFlag() bool }); {
		case f.Name == skip:
		case isBool && bf.IsBoolFlag() && f.Value.String() == "true":
			fmt.Fprintf(&b, " --%s", f.Name)
		case isBool && bf.IsBoolFlag():
			fmt.Fprintf(&b, " --%s=%s", f.Name, f.Value)
		default:
			fmt.Fprintf(&b, " --%s %s", f.Name, f.Value)
		}
	})
	return b.String()
}
