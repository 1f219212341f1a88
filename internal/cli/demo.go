package cli

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"grapevine/internal/demo"
)

type demoOpts struct {
	keep, quick *bool
	dir         *string
}

func demoFlags(fs *flag.FlagSet) demoOpts {
	return demoOpts{
		keep:  fs.Bool("keep", false, "after the steps, keep the grid running until Ctrl-C"),
		quick: fs.Bool("quick", false, "halve the protocol durations (W 3s, H 10s): about 11 s"),
		dir:   fs.String("dir", "", "put the node directories and logs in `DIR` and keep them (default: a temporary directory, removed at the end)"),
	}
}

func runDemo(env *Env, c *command, o demoOpts, pos []string) int {
	if len(pos) != 0 {
		return usageError(env, c, "no arguments expected, got %d", len(pos))
	}
	bin, err := os.Executable()
	if err != nil {
		return fail(env, c, err)
	}
	opt := demo.Options{Bin: bin, Dir: *o.dir, Keep: *o.keep, Out: env.Stdout}
	if *o.quick {
		opt.Timings = demo.QuickTimings
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := demo.Run(ctx, opt); err != nil {
		return fail(env, c, err)
	}
	return exitOK
}
