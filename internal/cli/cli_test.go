package cli

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var flagInUsage = regexp.MustCompile(`--([a-z][a-z-]*)`)

// help returns what 'grapevine help NAME' prints: the usage line (its
// wrapped lines joined) and the rest.
func help(t *testing.T, name string) (usage, rest string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := Main(append([]string{"help"}, strings.Fields(name)...), nil, &stdout, &stderr); code != exitOK {
		t.Fatalf("help %s: exit %d\n%s", name, code, stderr.String())
	}
	head, rest, _ := strings.Cut(stderr.String(), "\n\n")
	if !strings.HasPrefix(head, "Usage: grapevine "+name+" ") && head != "Usage: grapevine "+name {
		t.Fatalf("help %s starts %q", name, head)
	}
	return strings.Join(strings.Fields(head), " "), rest
}

// Every command's help names exactly the flags it parses: each flag in the
// usage line is defined, with the values the parser takes, and each
// defined flag is in the usage line and the options.
func TestHelpMatchesFlags(t *testing.T) {
	for _, c := range commands {
		usage, rest := help(t, c.name)
		fs, _ := c.flagSet()
		named := map[string]bool{}
		for _, m := range flagInUsage.FindAllStringSubmatch(usage, -1) {
			named[m[1]] = true
			f := fs.Lookup(m[1])
			if f == nil {
				t.Errorf("%s: usage names --%s, which it does not parse", c.name, m[1])
				continue
			}
			p := placeholder(f)
			if !strings.Contains(usage, "--"+f.Name+strings.TrimSuffix(" "+p, " ")) {
				t.Errorf("%s: usage shows --%s without its value %q: %s", c.name, f.Name, p, usage)
			}
			if ch, ok := f.Value.(*choice); ok {
				for _, v := range strings.Split(p, "|") {
					if err := fs.Set(f.Name, v); err != nil {
						t.Errorf("%s: --%s %s is in the usage but refused: %v", c.name, f.Name, v, err)
					}
				}
				if err := fs.Set(f.Name, "no-such-value"); err == nil || !strings.Contains(err.Error(), strings.Join(ch.allowed, ", ")) {
					t.Errorf("%s: --%s no-such-value: %v, want the allowed values named", c.name, f.Name, err)
				}
			}
		}
		fs.VisitAll(func(f *flag.Flag) {
			if !named[f.Name] {
				t.Errorf("%s: --%s is parsed but not in the usage: %s", c.name, f.Name, usage)
			}
			if !regexp.MustCompile(`(?m)^  --` + f.Name + `( |$)`).MatchString(rest) {
				t.Errorf("%s: --%s is not among the options:\n%s", c.name, f.Name, rest)
			}
			// Every value has a name: a back-quoted word of the usage, not
			// the flag package's type name.
			_, isChoice := f.Value.(*choice)
			if p := placeholder(f); !isChoice && p != "" && p == strings.ToLower(p) {
				t.Errorf("%s: --%s has no placeholder (shows %q); back-quote one in its usage", c.name, f.Name, p)
			}
		})
		for _, r := range c.required {
			if fs.Lookup(r) == nil {
				t.Errorf("%s: requires --%s, which it does not define", c.name, r)
			}
		}
	}
}

// Names and aliases are unique; a group noun is never a command itself;
// every alias runs its command.
func TestCommandNames(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range commands {
		for _, n := range append([]string{c.name}, c.aliases...) {
			if seen[n] {
				t.Errorf("%q names two commands", n)
			}
			seen[n] = true
			if len(strings.Fields(n)) > 2 {
				t.Errorf("%q: more than GROUP VERB", n)
			}
			got, words, ok := lookup(append(strings.Fields(n), "DIR"))
			if !ok || got != c || words != len(strings.Fields(n)) {
				t.Errorf("%q finds %v (%d words), want %s", n, got, words, c.name)
			}
		}
	}
	for _, c := range commands {
		if isGroup(c.name) {
			t.Errorf("%q is both a command and a group", c.name)
		}
	}
}

// --log-level takes exactly the levels its help lists, and slog knows each.
func TestLogLevels(t *testing.T) {
	for _, lv := range append(slices.Clone(logLevels), "WARN") {
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		lf := addLogFlags(fs)
		if err := fs.Parse([]string{"--log-level", lv}); err != nil {
			t.Fatal(err)
		}
		if _, err := lf.logger(&Env{Stderr: &bytes.Buffer{}}); err != nil {
			t.Errorf("--log-level %s: %v", lv, err)
		}
	}
	var stderr bytes.Buffer
	if code := Main([]string{"run", "--log-level", "loud", "node"}, nil, &stderr, &stderr); code != exitUsage ||
		!strings.Contains(stderr.String(), `invalid value "loud" for flag -log-level: want one of debug, info, warn, error`) {
		t.Errorf("exit %d:\n%s", code, stderr.String())
	}
}

// FILE or - is read one way, bounded, its errors naming the input.
func TestReadInput(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "in.json")
	if err := os.WriteFile(file, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := &Env{Stdin: strings.NewReader("stdin data")}
	if in, err := readInput(env, "-", 100); err != nil || in.name != "stdin" || !in.stdin || string(in.data) != "stdin data" {
		t.Errorf("-: %+v, %v", in, err)
	}
	if in, err := readInput(env, file, 5); err != nil || in.name != file || in.stdin || string(in.data) != "12345" {
		t.Errorf("file: %+v, %v", in, err)
	}
	var tl *tooLargeError
	if _, err := readInput(env, file, 4); !errors.As(err, &tl) || err.Error() != file+": larger than 4 bytes" {
		t.Errorf("over the bound: %v", err)
	}
	missing := filepath.Join(dir, "missing")
	if _, err := readInput(env, missing, 4); err == nil || err.Error() != missing+": no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
}

// docCommand finds "grapevine COMMAND ..." in a line of a code block or a
// `code span` of the documentation.
var docCommand = regexp.MustCompile("grapevine ([a-z][a-z-]*(?: [a-z][a-z-]*)?)([^`#]*)")

// The usage shown in README.md and docs/ names only flags the command
// parses, and an enumerated flag's values as the parser takes them.
func TestDocsUsage(t *testing.T) {
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md")
	checked := 0
	for _, file := range files {
		if filepath.Base(file) == "study.md" { // generated
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		fenced := false
		for i, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				fenced = !fenced
				continue
			}
			spans := []string{line}
			if !fenced {
				spans = nil
				parts := strings.Split(strings.ReplaceAll(line, `\|`, "|"), "`")
				for j := 1; j < len(parts); j += 2 {
					spans = append(spans, parts[j])
				}
			}
			for _, span := range spans {
				for _, m := range docCommand.FindAllStringSubmatch(span, -1) {
					c, n, ok := lookup(strings.Fields(m[1]))
					if !ok {
						continue
					}
					rest := strings.Join(strings.Fields(m[1])[n:], " ") + m[2]
					checked++
					checkDocFlags(t, file, i+1, c, rest)
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d usage lines found in the documentation", checked)
	}
}

func checkDocFlags(t *testing.T, file string, line int, c *command, text string) {
	t.Helper()
	fs, _ := c.flagSet()
	words := strings.Fields(text)
	for i, w := range words {
		m := flagInUsage.FindStringSubmatch(w)
		if m == nil || !strings.HasPrefix(strings.TrimLeft(w, "["), "--") {
			continue
		}
		f := fs.Lookup(m[1])
		if f == nil {
			t.Errorf("%s:%d: grapevine %s has no --%s", file, line, c.name, m[1])
			continue
		}
		ch, ok := f.Value.(*choice)
		if !ok || i+1 >= len(words) {
			continue
		}
		// A list of values must be the parser's; one lower-case value must
		// be one of them (an upper-case word is a placeholder).
		v, all := strings.Trim(words[i+1], "[]"), strings.Join(ch.allowed, "|")
		if strings.HasPrefix(v, "$") { // a shell variable
			continue
		}
		if strings.Contains(v, "|") && v != all || !strings.Contains(v, "|") && v == strings.ToLower(v) && fs.Set(f.Name, v) != nil {
			t.Errorf("%s:%d: --%s %s, but it takes %s", file, line, f.Name, v, all)
		}
	}
}

// The study writes the flags it was given into the document, but --quiet.
func TestStudyFlagsGiven(t *testing.T) {
	fs := flag.NewFlagSet("study", flag.ContinueOnError)
	o := studyFlags(fs)
	if err := fs.Parse([]string{"--at-scale", "--servers", "100", "--quiet", "--clients=900"}); err != nil {
		t.Fatal(err)
	}
	if got, want := flagsGiven(o.fs, "quiet"), " --at-scale --clients 900 --servers 100"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
