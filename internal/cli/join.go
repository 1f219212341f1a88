package cli

import (
	"context"
	"flag"
	"fmt"
	"os/signal"
	"syscall"

	"grapevine/daemon"
)

func init() {
	register(&command{
		name:    "join",
		args:    "[--no-run] [node flags as for create-node] CODE [DIR]",
		summary: "Join a grid with an invite code: create the node (DIR, default ./grapevine-node), redeem the code with the inviter, then run it.",
		run:     runJoin,
	})
}

func runJoin(env *Env, args []string) int {
	c := commands["join"]
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	nf := addNodeFlags(fs)
	noRun := fs.Bool("no-run", false, "only set up the node directory")
	lf := addLogFlags(fs)
	pos, code, ok := parseFlags(env, c, fs, args)
	if !ok {
		return code
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageError(env, c, "want CODE and at most one DIR, got %d arguments", len(pos))
	}
	dir := daemon.DefaultJoinDir()
	if len(pos) == 2 {
		dir = pos[1]
	}
	cfg, err := nf.config()
	if err != nil {
		return usageError(env, c, "%v", err)
	}
	log, err := lf.logger(env)
	if err != nil {
		return usageError(env, c, "%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	n, err := daemon.Join(ctx, daemon.JoinOptions{Code: pos[0], Dir: dir, Config: cfg, Logger: log})
	if err != nil {
		return fail(env, c, err)
	}
	fmt.Fprintf(env.Stdout, "Joined grid %s as %s in %s (invited by %s)\n", n.Config.Grid, n.ID(), n.Dir, lastIssuer(n.Config.Membership))
	if *noRun {
		fmt.Fprintf(env.Stdout, "Start it with: grapevine run %s\n", n.Dir)
		return exitOK
	}
	if err := daemon.Run(ctx, daemon.Options{Dir: n.Dir, Logger: log}); err != nil {
		return fail(env, c, err)
	}
	return exitOK
}
