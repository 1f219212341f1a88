package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os/signal"
	"syscall"

	"grapevine/internal/daemon"
	"grapevine/internal/logsample"
	"grapevine/member"
)

type runOpts struct {
	bootstrap  *listFlag
	log        *logFlags
	offsetFile *string
}

func runFlags(fs *flag.FlagSet) runOpts {
	o := runOpts{bootstrap: new(listFlag), log: addLogFlags(fs)}
	fs.Var(o.bootstrap, "bootstrap", "a gv:// `LOCATOR` to dial at start, besides the configuration's (repeatable)")
	o.offsetFile = fs.String("clock-offset-file", "", "testing: run on the system clock plus the duration in `FILE` (e.g. 8760h), re-read every second")
	return o
}

func runRun(env *Env, c *command, o runOpts, pos []string) int {
	if len(pos) != 1 {
		return usageError(env, c, "want exactly one DIR, got %d arguments", len(pos))
	}
	log, err := o.log.logger(env)
	if err != nil {
		return usageError(env, c, "%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	opt := daemon.Options{Dir: pos[0], Bootstrap: *o.bootstrap, Logger: log}
	if *o.offsetFile != "" {
		opt.Now = daemon.OffsetClock(*o.offsetFile, func(err error) { log.Warn("clock offset ignored", "err", err) })
	}
	err = daemon.Run(ctx, opt)
	o.log.flush()
	if err != nil {
		return fail(env, c, err)
	}
	return exitOK
}

// logLevels are the values of --log-level, as slog.Level parses them.
var logLevels = []string{"debug", "info", "warn", "error"}

type logFlags struct {
	format, level *choice
	similar       *int
	sampler       *logsample.Handler // set by logger
}

// addLogFlags defines the log flags run and join share.
func addLogFlags(fs *flag.FlagSet) *logFlags {
	f := &logFlags{format: newChoice("text", "text", "json"), level: newChoice("info", logLevels...)}
	fs.Var(f.format, "log-format", "log format")
	fs.Var(f.level, "log-level", "the least severe level logged")
	f.similar = fs.Int("log-similar", logsample.DefaultBurst, fmt.Sprintf("write at most `N` similar log lines (same level, message, peer and reason) per %v, "+
		"then one line with how many were dropped; 0 writes every line", logsample.DefaultInterval))
	return f
}

// flush writes what the sampler still holds back.
func (f *logFlags) flush() {
	if f.sampler != nil {
		f.sampler.Flush()
	}
}

func (f *logFlags) logger(env *Env) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(f.level.value)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", f.level.value, err)
	}
	hopts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler = slog.NewTextHandler(env.Stderr, hopts)
	if f.format.value == "json" {
		h = slog.NewJSONHandler(env.Stderr, hopts)
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
