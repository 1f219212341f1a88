package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"

	"grapevine/daemon"
	"grapevine/internal/logsample"
	"grapevine/member"
)

func init() {
	register(&command{
		name:    "run",
		args:    "[--bootstrap LOCATOR]... [--log-format text|json] [--log-level info|debug] [--log-similar N] [--clock-offset-file FILE] DIR",
		summary: "Run the node in DIR until SIGINT or SIGTERM.",
		run:     runRun,
	})
}

func runRun(env *Env, args []string) int {
	c := commands["run"]
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	var boot listFlag
	fs.Var(&boot, "bootstrap", "a gv:// locator to dial at start, besides the configuration's (repeatable)")
	lf := addLogFlags(fs)
	offsetFile := fs.String("clock-offset-file", "", "testing: run on the system clock plus the duration in FILE (e.g. 8760h), re-read every second")
	pos, code, ok := parseFlags(env, c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(env, c, "want exactly one DIR, got %d arguments", len(pos))
	}
	log, err := lf.logger(env)
	if err != nil {
		return usageError(env, c, "%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	opt := daemon.Options{Dir: pos[0], Bootstrap: boot, Logger: log}
	if *offsetFile != "" {
		opt.Now = daemon.OffsetClock(*offsetFile, func(err error) { log.Warn("clock offset ignored", "err", err) })
	}
	err = daemon.Run(ctx, opt)
	lf.flush()
	if err != nil {
		return fail(env, c, err)
	}
	return exitOK
}

type logFlags struct {
	format, level *string
	similar       *int
	sampler       *logsample.Handler // set by logger
}

func addLogFlags(fs *flag.FlagSet) *logFlags {
	return &logFlags{
		format: fs.String("log-format", "text", "log format: text or json"),
		level:  fs.String("log-level", "info", "log level: debug, info, warn or error"),
		similar: fs.Int("log-similar", logsample.DefaultBurst, fmt.Sprintf("write at most this many similar log lines (same level, message, peer and reason) per %v, "+
			"then one line with how many were dropped; 0 writes every line", logsample.DefaultInterval)),
	}
}

// flush writes what the sampler still holds back.
func (f *logFlags) flush() {
	if f.sampler != nil {
		f.sampler.Flush()
	}
}

func (f *logFlags) logger(env *Env) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*f.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", *f.level)
	}
	hopts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch strings.ToLower(*f.format) {
	case "text":
		h = slog.NewTextHandler(env.Stderr, hopts)
	case "json":
		h = slog.NewJSONHandler(env.Stderr, hopts)
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", *f.format)
	}
	if *f.similar < 0 {
		return nil, fmt.Errorf("--log-similar %d: want 0 or more", *f.similar)
	}
	if *f.similar > 0 {
		f.sampler = logsample.New(h, logsample.Options{Burst: *f.similar})
		h = f.sampler
	}
	return slog.New(h), nil
}

// lastIssuer names who signed the last certificate of a chain.
func lastIssuer(chain []string) string {
	if len(chain) == 0 {
		return "nobody: the founder"
	}
	ch, err := member.ParseChain(chain)
	if err != nil || len(ch) == 0 {
		return "?"
	}
	return string(ch[len(ch)-1].Issuer)
}
