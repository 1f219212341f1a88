// Package cli implements the grapevine command, one file per subcommand.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the operation failed or the input is invalid
	exitUsage   = 2 // the command line is wrong
)

// Env is what a subcommand may use.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

type command struct {
	name    string
	args    string
	summary string
	run     func(env *Env, args []string) int
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// Main runs the grapevine command line and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c, ok := lookup(args[1:]); ok {
				return c.run(env, []string{"-h"})
			}
		}
		usage(env.Stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, ok := lookup(args)
	if !ok {
		fmt.Fprintf(env.Stderr, "grapevine: unknown command %q (try 'grapevine help')\n", strings.Join(args[:min(2, len(args))], " "))
		return exitUsage
	}
	return c.run(env, args[len(strings.Fields(c.name)):])
}

// lookup finds the longest command name that prefixes args ("ann verify").
func lookup(args []string) (*command, bool) {
	if len(args) >= 2 {
		if c, ok := commands[args[0]+" "+args[1]]; ok {
			return c, true
		}
	}
	c, ok := commands[args[0]]
	return c, ok
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Grapevine: decentralized server introduction for storage grids.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: grapevine COMMAND [ARGS]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := commands[n]
		fmt.Fprintf(w, "  %s %s\n      %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'grapevine help COMMAND' for a command's options.")
}

// parseFlags parses flags that may come before or after positional
// arguments. It returns the positional arguments, or an exit code when
// parsing stopped (help was asked for, or the command line is wrong).
func parseFlags(env *Env, c *command, fs *flag.FlagSet, args []string) ([]string, int, bool) {
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: grapevine %s %s\n\n%s\n", c.name, c.args, c.summary)
		var hasFlags bool
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(env.Stderr, "\nOptions:")
			fs.PrintDefaults()
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, 0, true
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), 0, true
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// usageError prints a one-line usage problem and returns exitUsage.
func usageError(env *Env, c *command, format string, args ...any) int {
	fmt.Fprintf(env.Stderr, "grapevine %s: %s\nUsage: grapevine %s %s\n", c.name, fmt.Sprintf(format, args...), c.name, c.args)
	return exitUsage
}

// fail prints an error and returns exitFailure. Errors may quote other
// nodes (a refused invite, the node's API), so they are escaped.
func fail(env *Env, c *command, err error) int {
	fmt.Fprintf(env.Stderr, "grapevine %s: %s\n", c.name, remoteLines(err.Error()))
	return exitFailure
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }
