package cli

import (
	"context"
	"flag"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"

	"grapevine/daemon"
)

func init() {
	register(&command{
		name:    "run",
		args:    "[--bootstrap LOCATOR]... [--log-format text|json] [--log-level info|debug] DIR",
		summary: "Run the node in DIR until SIGINT or SIGTERM.",
		run:     runRun,
	})
}

func runRun(env *Env, args []string) int {
	c := commands["run"]
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	var boot listFlag
	fs.Var(&boot, "bootstrap", "a gv:// locator to dial at start, besides the configuration's (repeatable)")
	format := fs.String("log-format", "text", "log format: text or json")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	pos, code, ok := parseFlags(env, c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(env, c, "want exactly one DIR, got %d arguments", len(pos))
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return usageError(env, c, "--log-level %q: want debug, info, warn or error", *level)
	}
	hopts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch strings.ToLower(*format) {
	case "text":
		h = slog.NewTextHandler(env.Stderr, hopts)
	case "json":
		h = slog.NewJSONHandler(env.Stderr, hopts)
	default:
		return usageError(env, c, "--log-format %q: want text or json", *format)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, daemon.Options{Dir: pos[0], Bootstrap: boot, Logger: slog.New(h)}); err != nil {
		return fail(env, c, err)
	}
	return exitOK
}
