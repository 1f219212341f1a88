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

	"grapevine/sim"
)

func init() {
	register(&command{
		name:    "study",
		args:    "[--scenarios DIR] [--out DIR] [--doc FILE] [--seed S] [--workers N] [--at-scale [--servers N] [--clients N] [--designs LIST]]",
		summary: "Run every study scenario under every design and write docs/study.md with tables and plots; --at-scale writes its \"At scale\" section.",
		run:     runStudy,
	})
}

// The study at scale: these scenarios, designs and population.
var atScale = struct {
	scenarios        []string
	designs          string
	servers, clients int
}{[]string{"steady", "departures", "clock-skew", "nat"}, "grapevine,never-forget", 1000, 9000}

func runStudy(env *Env, args []string) int {
	c := commands["study"]
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	dir := fs.String("scenarios", "sim/scenarios/study", "directory of scenario files")
	out := fs.String("out", "docs/study", "directory for per-scenario reports and plots (at scale: its at-scale/ subdirectory)")
	doc := fs.String("doc", "docs/study.md", "the study document to write")
	seed := fs.Uint64("seed", 0, "random seed for every run (0: each scenario's)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	workers := fs.Int("workers", 2, "runs at once")
	scale := fs.Bool("at-scale", false, fmt.Sprintf("run %s with %d servers and %d clients under %s, and write only the \"At scale\" section",
		strings.Join(atScale.scenarios, ", "), atScale.servers, atScale.clients, atScale.designs))
	servers := fs.Int("servers", atScale.servers, "servers in each scenario (with --at-scale)")
	clients := fs.Int("clients", atScale.clients, "clients in each scenario (with --at-scale)")
	designs := fs.String("designs", atScale.designs, "comma-separated designs (with --at-scale)")
	pos, code, ok := parseFlags(env, c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(env, c, "unexpected arguments %v", pos)
	}
	if *workers < 1 {
		return usageError(env, c, "--workers %d: want at least 1", *workers)
	}
	plan := sim.StudyPlan{Seed: *seed, Workers: *workers}
	if *scale {
		if *servers < 1 || *clients < 1 {
			return usageError(env, c, "--servers and --clients must be at least 1")
		}
		for _, n := range atScale.scenarios {
			plan.Files = append(plan.Files, filepath.Join(*dir, n+".yaml"))
		}
		plan.Designs = strings.Split(*designs, ",")
		plan.Servers, plan.Clients = *servers, *clients
		*out = filepath.Join(*out, "at-scale")
	} else {
		files, err := filepath.Glob(filepath.Join(*dir, "*.yaml"))
		if err != nil || len(files) == 0 {
			return fail(env, c, fmt.Errorf("no scenario files in %s", *dir))
		}
		plan.Files = files
	}
	start := time.Now()
	if !*quiet {
		var mu sync.Mutex
		if *workers == 1 {
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
			if *workers == 1 {
				fmt.Fprintln(env.Stderr)
			}
			fmt.Fprintf(env.Stderr, "%s done in %v\n", label, took.Round(time.Second))
		}
	}
	results, err := sim.RunStudy(plan, *out)
	if err != nil {
		return fail(env, c, err)
	}
	command := "go run ./cmd/grapevine study"
	for _, a := range args {
		if a != "--quiet" && a != "-quiet" {
			command += " " + a
		}
	}
	old, err := os.ReadFile(*doc)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(env, c, err)
	}
	var md string
	if *scale {
		section := sim.AtScaleMarkdown(results, *out, filepath.Dir(*doc), command, time.Since(start), *workers)
		md = sim.SpliceAtScale(string(old), "", section)
	} else {
		md = sim.SpliceAtScale(sim.StudyMarkdown(results, *out, filepath.Dir(*doc), command, *seed), string(old), "")
	}
	if err := os.WriteFile(*doc, []byte(md), 0o644); err != nil {
		return fail(env, c, err)
	}
	fmt.Fprintf(env.Stdout, "\nWrote %s and %s/ (%d scenarios x %d designs) in %v\n", *doc, *out, len(results), len(results[0].Reports), time.Since(start).Round(time.Second))
	return exitOK
}
