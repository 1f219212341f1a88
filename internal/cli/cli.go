// Package cli implements the grapevine command, one file per subcommand.
//
// The grammar is "grapevine [GROUP] VERB [OPTIONS] ARGS": the commands
// about one running node are single verbs (run, status, invite, ...), and
// the others are grouped under a noun: node, ann, tahoe. Each command
// defines its flags once, on a flag.FlagSet; its usage line and help are
// built from that FlagSet.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
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

// runFunc runs a command with its positional arguments, its flags parsed.
type runFunc func(env *Env, c *command, pos []string) int

type command struct {
	name     string   // "run", or GROUP VERB: "ann verify"
	aliases  []string // earlier names, still accepted
	args     string   // the positional arguments, as usage shows them
	summary  string
	required []string // flags that must be given a non-empty value
	// setup defines the command's flags on fs and returns the run
	// function bound to their values.
	setup func(fs *flag.FlagSet) runFunc
}

// commands lists every command once, in the order help shows them.
var commands = []*command{
	{name: "node create", aliases: []string{"create-node"}, args: "DIR",
		summary: "Create a node directory: key pair, configuration, announcement counter.",
		setup:   withFlags(nodeCreateFlags, runNodeCreate)},
	{name: "node show", aliases: []string{"show-node"}, args: "DIR",
		summary: "Print a node's ID, nickname, locators and current signed announcements.",
		setup:   withFlags(jsonFlag("print JSON"), runNodeShow)},
	{name: "run", args: "DIR",
		summary: "Run the node in DIR until SIGINT or SIGTERM.",
		setup:   withFlags(runFlags, runRun)},
	{name: "join", args: "CODE [DIR]",
		summary: "Join a grid with an invite code: create the node (DIR, default ./grapevine-node), redeem the code with the inviter, then run it.",
		setup:   withFlags(joinFlags, runJoin)},
	{name: "invite", args: "DIR",
		summary: "Print an invite code to the grid of the running node in DIR.",
		setup:   withFlags(inviteFlags, runInvite)},
	{name: "members", args: "DIR",
		summary: "Show who invited whom in the grid, as the running node in DIR knows it.",
		setup:   noFlags(runMembers)},
	{name: "revoke", args: "DIR MEMBER-ID",
		summary: "Revoke the certificates the running node in DIR issued to a member; the member and everyone it invited are dropped across the grid.",
		setup:   noFlags(runRevoke)},
	{name: "status", args: "DIR",
		summary: "Summarize the running node in DIR: connected and known servers, records, tombstones, counter and recent events.",
		setup:   withFlags(statusFlags, runStatus)},
	{name: "servers", args: "DIR",
		summary: "List the servers the running node in DIR knows: live ones first, with connection status, RTT, uptime, seqnum and whether they are relayed.",
		setup:   withFlags(jsonFlag("print the JSON of GET /v1/servers (docs/api.md)"), runServers)},
	{name: "history", args: "DIR KEY",
		summary: "Show one server's connection history and the decisions about it, as the running node in DIR knows them. KEY is its v0- ID or an unambiguous prefix.",
		setup:   withFlags(jsonFlag("print the JSON of GET /v1/servers/KEY (docs/api.md)"), runHistory)},
	{name: "forget", args: "DIR KEY",
		summary: "Make the running node in DIR forget a server now: its records are dropped and tombstoned, so only a newer seqnum from it is taken back. KEY is its v0- ID or an unambiguous prefix.",
		setup:   noFlags(runForget)},
	{name: "ann verify", args: "[FILE|-]",
		summary: "Verify a signed announcement {\"msg\", \"sig\", \"key\"}; print it parsed, or why it is invalid.",
		setup:   noFlags(runAnnVerify)},
	{name: "ann import", args: "DIR FILE|-",
		summary: "Bring signed announcements into the node at DIR (running or not): one {msg, sig, key} object, an array of them, or one per line.",
		setup:   noFlags(runAnnImport)},
	{name: "tahoe setup", aliases: []string{"setup-tahoe"}, args: "TAHOE-DIR DIR",
		summary: "Create a Grapevine node beside a Tahoe-LAFS node and make it the Tahoe node's introducer (docs/tahoe.md).",
		setup:   withFlags(tahoeSetupFlags, runTahoeSetup)},
	{name: "tahoe import", aliases: []string{"import-tahoe"}, args: "DIR FILE|-",
		summary: "Keep the storage servers of a Tahoe introducer cache or servers.yaml as unsigned hints of the node at DIR (never trusted as records; see docs/tahoe.md).",
		setup:   noFlags(runTahoeImport)},
	{name: "tahoe export", aliases: []string{"export-tahoe-servers"}, args: "DIR",
		summary: "Write a Tahoe servers.yaml listing the live storage servers the running node at DIR knows, from their verified signed announcements.",
		setup:   withFlags(tahoeExportFlags, runTahoeExport)},
	{name: "demo",
		summary: "Run a small grid on loopback (1 relay, 3 servers, 3 clients, separate processes) and narrate a join, a departure and a restart, checking each; about 20 s.",
		setup:   withFlags(demoFlags, runDemo)},
	{name: "sim", args: "SCENARIO.yaml", required: []string{"out"},
		summary: "Run a simulation scenario (docs/sim.md) and write report.json, report.txt and SVG plots.",
		setup:   withFlags(simFlags, runSim)},
	{name: "study",
		summary: "Run every study scenario under every design and write docs/study.md with tables and plots; --at-scale writes its \"At scale\" section.",
		setup:   withFlags(studyFlags, runStudy)},
}

// withFlags makes a command's setup from a function that defines its
// flags and returns their values, and a run function taking those values.
func withFlags[O any](flags func(*flag.FlagSet) O, run func(env *Env, c *command, o O, pos []string) int) func(*flag.FlagSet) runFunc {
	return func(fs *flag.FlagSet) runFunc {
		o := flags(fs)
		return func(env *Env, c *command, pos []string) int { return run(env, c, o, pos) }
	}
}

// noFlags is the setup of a command that takes only positional arguments.
func noFlags(run runFunc) func(*flag.FlagSet) runFunc {
	return func(*flag.FlagSet) runFunc { return run }
}

// jsonFlag defines the --json flag of the commands that can print JSON.
func jsonFlag(usage string) func(fs *flag.FlagSet) *bool {
	return func(fs *flag.FlagSet) *bool { return fs.Bool("json", false, usage) }
}

// flagSet returns the command's flags and the run function bound to them.
func (c *command) flagSet() (*flag.FlagSet, runFunc) {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	return fs, c.setup(fs)
}

// exec parses args and runs the command.
func (c *command) exec(env *Env, args []string) int {
	fs, run := c.flagSet()
	pos, code, ok := parseFlags(env, c, fs, args)
	if !ok {
		return code
	}
	for _, name := range c.required {
		if f := fs.Lookup(name); f.Value.String() == "" {
			return usageError(env, c, "--%s %s is required", name, placeholder(f))
		}
	}
	return run(env, c, pos)
}

// Main runs the grapevine command line and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c, _, ok := lookup(args[1:]); ok {
				return c.exec(env, []string{"-h"})
			}
			if isGroup(args[1]) {
				usage(env.Stdout, args[1])
				return exitOK
			}
		}
		usage(env.Stdout, "")
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, n, ok := lookup(args)
	if !ok {
		name := strings.Join(args[:min(2, len(args))], " ")
		if isGroup(args[0]) {
			fmt.Fprintf(env.Stderr, "grapevine: unknown command %q: %s takes %s (try 'grapevine help %s')\n",
				name, args[0], strings.Join(groupVerbs(args[0]), ", "), args[0])
			return exitUsage
		}
		fmt.Fprintf(env.Stderr, "grapevine: unknown command %q (try 'grapevine help')\n", name)
		return exitUsage
	}
	return c.exec(env, args[n:])
}

// lookup finds the command whose name or alias is the longest prefix of
// args ("ann verify"), and how many words of args it took.
func lookup(args []string) (*command, int, bool) {
	for n := min(2, len(args)); n >= 1; n-- {
		name := strings.Join(args[:n], " ")
		for _, c := range commands {
			if c.name == name || slices.Contains(c.aliases, name) {
				return c, n, true
			}
		}
	}
	return nil, 0, false
}

// isGroup reports whether word is the noun of a group of commands.
func isGroup(word string) bool { return len(groupVerbs(word)) > 0 }

// groupVerbs are the verbs of a group's commands: "tahoe" -> setup, import, export.
func groupVerbs(group string) []string {
	var verbs []string
	for _, c := range commands {
		if g, verb, ok := strings.Cut(c.name, " "); ok && g == group {
			verbs = append(verbs, verb)
		}
	}
	return verbs
}

// usage lists the commands, or those of one group, with their usage lines.
func usage(w io.Writer, group string) {
	fmt.Fprintln(w, "Grapevine: decentralized server introduction for storage grids.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: grapevine [GROUP] COMMAND [OPTIONS] ARGS")
	fmt.Fprintln(w)
	for _, c := range commands {
		if g, _, _ := strings.Cut(c.name, " "); group != "" && g != group {
			continue
		}
		fs, _ := c.flagSet()
		fmt.Fprintf(w, "%s\n%s\n", wrapWords(synopsis(c, fs), "  ", "          "), wrapWords(strings.Fields(c.summary), "      ", "      "))
		if len(c.aliases) > 0 {
			fmt.Fprintf(w, "      (old name: %s)\n", strings.Join(c.aliases, ", "))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'grapevine help COMMAND' for a command's options.")
}

// synopsis is the command's usage line as words, built from its flags:
// "ann import", "[--json]", "[--bootstrap LOCATOR]...", "DIR".
func synopsis(c *command, fs *flag.FlagSet) []string {
	words := []string{c.name}
	fs.VisitAll(func(f *flag.Flag) {
		w := "--" + f.Name
		if p := placeholder(f); p != "" {
			w += " " + p
		}
		if !slices.Contains(c.required, f.Name) {
			w = "[" + w + "]"
		}
		if _, ok := f.Value.(repeatable); ok {
			w += "..."
		}
		words = append(words, w)
	})
	if c.args != "" {
		words = append(words, c.args)
	}
	return words
}

// usageLine is the synopsis on one line, as usage errors print it.
func usageLine(c *command) string {
	fs, _ := c.flagSet()
	return "grapevine " + strings.Join(synopsis(c, fs), " ")
}

// placeholder names a flag's value: the allowed values of a choice, the
// back-quoted word of its usage (flag.UnquoteUsage), "" for a bool.
func placeholder(f *flag.Flag) string {
	if ch, ok := f.Value.(*choice); ok {
		return strings.Join(ch.allowed, "|")
	}
	name, _ := flag.UnquoteUsage(f)
	return name
}

// wrapWords joins words into lines of at most 80 columns where it can,
// the first line starting with first and the others with indent.
func wrapWords(words []string, first, indent string) string {
	const width = 80
	var b strings.Builder
	line := first
	for i, w := range words {
		if i > 1 && len(line)+1+len(w) > width { // the name and one word stay on the first line
			b.WriteString(line + "\n")
			line = indent + w
			continue
		}
		if i > 0 {
			line += " "
		}
		line += w
	}
	b.WriteString(line)
	return b.String()
}

// printHelp prints a command's usage line, summary and options.
func printHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s\n\n%s\n", wrapWords(synopsis(c, fs), "Usage: grapevine ", "           "), wrapWords(strings.Fields(c.summary), "", ""))
	var opts strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(&opts, "  --%s", f.Name)
		if p := placeholder(f); p != "" {
			fmt.Fprintf(&opts, " %s", p)
		}
		_, text := flag.UnquoteUsage(f)
		fmt.Fprintf(&opts, "\n        %s", text)
		switch {
		case slices.Contains(c.required, f.Name):
			opts.WriteString(" (required)")
		case !isZeroDefault(f.DefValue):
			if g, ok := f.Value.(flag.Getter); ok {
				if _, isString := g.Get().(string); isString {
					fmt.Fprintf(&opts, " (default %q)", f.DefValue)
					break
				}
			}
			fmt.Fprintf(&opts, " (default %s)", f.DefValue)
		}
		opts.WriteString("\n")
	})
	if opts.Len() > 0 {
		fmt.Fprintf(w, "\nOptions:\n%s", opts.String())
	}
	if len(c.aliases) > 0 {
		fmt.Fprintf(w, "\nOld name, still accepted: grapevine %s\n", strings.Join(c.aliases, ", grapevine "))
	}
}

// isZeroDefault: a default that help does not mention.
func isZeroDefault(v string) bool { return v == "" || v == "0" || v == "false" || v == "0s" }

// parseFlags parses flags that may come before or after positional
// arguments. It returns the positional arguments, or an exit code when
// parsing stopped (help was asked for, or the command line is wrong).
func parseFlags(env *Env, c *command, fs *flag.FlagSet, args []string) ([]string, int, bool) {
	fs.SetOutput(env.Stderr)
	fs.Usage = func() { printHelp(env.Stderr, c, fs) }
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
	fmt.Fprintf(env.Stderr, "grapevine %s: %s\nUsage: %s\n", c.name, fmt.Sprintf(format, args...), usageLine(c))
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
func (l *listFlag) repeatable()        {}

// repeatable is a flag that may be given more than once.
type repeatable interface{ repeatable() }

// choice is a flag whose value is one of a fixed list, in any case: help
// shows the list, and Set refuses anything else, naming it.
type choice struct {
	value   string
	allowed []string
}

func newChoice(def string, allowed ...string) *choice {
	return &choice{value: def, allowed: allowed}
}

func (ch *choice) String() string {
	if ch == nil {
		return ""
	}
	return ch.value
}

func (ch *choice) Set(s string) error {
	for _, a := range ch.allowed {
		if strings.EqualFold(s, a) {
			ch.value = a
			return nil
		}
	}
	return fmt.Errorf("want one of %s", strings.Join(ch.allowed, ", "))
}
