package cli

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"grapevine/sim"
)

func init() {
	register(&command{
		name:    "study",
		args:    "[--scenarios DIR] [--out DIR] [--doc FILE] [--seed S]",
		summary: "Run every study scenario under every design and write docs/study.md with tables and plots.",
		run:     runStudy,
	})
}

func runStudy(env *Env, args []string) int {
	c := commands["study"]
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	dir := fs.String("scenarios", "sim/scenarios/study", "directory of scenario files")
	out := fs.String("out", "docs/study", "directory for per-scenario reports and plots")
	doc := fs.String("doc", "docs/study.md", "the study document to write")
	seed := fs.Uint64("seed", 0, "random seed for every run (0: each scenario's)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	pos, code, ok := parseFlags(env, c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(env, c, "unexpected arguments %v", pos)
	}
	files, err := filepath.Glob(filepath.Join(*dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fail(env, c, fmt.Errorf("no scenario files in %s", *dir))
	}
	start := time.Now()
	var progress func(string, time.Duration, time.Duration)
	if !*quiet {
		bars := map[string]func(time.Duration, time.Duration){}
		progress = func(label string, done, total time.Duration) {
			if bars[label] == nil {
				if len(bars) > 0 {
					fmt.Fprintln(env.Stderr)
				}
				bars[label] = progressBar(env, label)
			}
			bars[label](done, total)
		}
	}
	results, err := sim.RunStudy(files, *out, *seed, progress)
	if err != nil {
		return fail(env, c, err)
	}
	command := "go run ./cmd/grapevine study"
	for _, a := range args {
		if a != "--quiet" && a != "-quiet" {
			command += " " + a
		}
	}
	md := sim.StudyMarkdown(results, *out, filepath.Dir(*doc), command, *seed)
	if err := os.WriteFile(*doc, []byte(md), 0o644); err != nil {
		return fail(env, c, err)
	}
	fmt.Fprintf(env.Stdout, "\nWrote %s and %s/ (%d scenarios x %d designs) in %v\n", *doc, *out, len(results), len(sim.DesignNames()), time.Since(start).Round(time.Second))
	return exitOK
}
