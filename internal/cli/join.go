package cli

import (
	"context"
	"flag"
	"fmt"
	"os/signal"
	"syscall"

	"grapevine/internal/daemon"
)

type joinOpts struct {
	node  *nodeFlags
	log   *logFlags
	noRun *bool
}

func joinFlags(fs *flag.FlagSet) joinOpts {
	return joinOpts{
		node:  addNodeFlags(fs),
		log:   addLogFlags(fs),
		noRun: fs.Bool("no-run", false, "only set up the node directory"),
	}
}

func runJoin(env *Env, c *command, o joinOpts, pos []string) int {
	if len(pos) < 1 || len(pos) > 2 {
		return usageError(env, c, "want CODE and at most one DIR, got %d arguments", len(pos))
	}
	dir := daemon.DefaultJoinDir()
	if len(pos) == 2 {
		dir = pos[1]
	}
	cfg, err := o.node.config()
	if err != nil {
		return usageError(env, c, "%v", err)
	}
	log, err := o.log.logger(env)
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
	if *o.noRun {
		fmt.Fprintf(env.Stdout, "Start it with: grapevine run %s\n", n.Dir)
		return exitOK
	}
	if err := daemon.Run(ctx, daemon.Options{Dir: n.Dir, Logger: log}); err != nil {
		return fail(env, c, err)
	}
	return exitOK
}
