package cli

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"grapevine/demo"
)

func init() {
	register(&command{
		name:    "demo",
		args:    "[--keep] [--quick] [--dir DIR]",
		summary: "Run a small grid on loopback (1 relay, 3 servers, 3 clients, separate processes) and narrate a join, a departure and a restart, checking each; about 20 s.",
		run:     runDemo,
	})
}

func runDemo(env *Env, args []string) int {
	c := commands["demo"]
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	keep := fs.Bool("keep", false, "after the steps, keep the grid running until Ctrl-C")
	quick := fs.Bool("quick", false, "halve the protocol durations (W 3s, H 10s): about 11 s")
	dir := fs.String("dir", "", "put the node directories and logs in DIR and keep them (default: a temporary directory, removed at the end)")
	pos, code, ok := parseFlags(env, c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageError(env, c, "no arguments expected, got %d", len(pos))
	}
	bin, err := os.Executable()
	if err != nil {
		return fail(env, c, err)
	}
	opt := demo.Options{Bin: bin, Dir: *dir, Keep: *keep, Out: env.Stdout}
	if *quick {
		opt.Timings = demo.QuickTimings
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := demo.Run(ctx, opt); err != nil {
		return fail(env, c, err)
	}
	return exitOK
}
