package cli

import (
	"fmt"
	"path/filepath"
	"time"

	"grapevine/client"
	"grapevine/client/apitype"
	"grapevine/internal/nodedir"
	"grapevine/internal/tahoe"
)

func runTahoeImport(env *Env, c *command, pos []string) int {
	if len(pos) != 2 {
		return usageError(env, c, "want DIR and FILE, got %d arguments", len(pos))
	}
	dir := pos[0]
	nd, err := nodedir.Open(dir)
	if err != nil {
		return fail(env, c, err)
	}
	in, err := readInput(env, pos[1], tahoe.MaxFileSize)
	if err != nil {
		return fail(env, c, err)
	}
	name := in.name
	file, err := tahoe.Parse(name, in.data)
	if err != nil {
		fmt.Fprintf(env.Stderr, "grapevine %s: %s\nnothing imported\n", c.name, remoteLines(err.Error()))
		return exitFailure
	}
	source := name
	if abs, err := filepath.Abs(name); err == nil && !in.stdin {
		source = abs
	}
	for _, e := range file.Entries {
		switch {
		case e.Service != tahoe.Service:
			fmt.Fprintf(env.Stdout, "skipped %s: service %s (only storage servers are imported)\n", remote(string(e.Key), cellRunes), remote(tahoe.Display(e.Service), cellRunes))
		case e.Key == nd.ID():
			fmt.Fprintf(env.Stdout, "skipped %s: this node's own key\n", e.Key)
		}
	}
	hints := tahoe.HintsFromFile(file, nd.ID(), source, time.Now())
	if len(hints) == 0 {
		return fail(env, c, fmt.Errorf("%s: no storage servers to import", name))
	}
	held, err := tahoe.ReadHints(dir)
	if err != nil {
		return fail(env, c, fmt.Errorf("%w (move it away to start afresh)", err))
	}
	merged, added, replaced := tahoe.Merge(held, hints)
	if err := tahoe.WriteHints(dir, merged); err != nil {
		return fail(env, c, err)
	}

	// A running node says which hints its signed records already confirm.
	states := map[string]apitype.TahoeHint{}
	view, err := callNode(dir, (*client.Client).TahoeServers)
	running := err == nil
	for _, h := range view.Hints {
		states[string(h.Key)] = h
	}
	for _, h := range hints {
		st, label := tahoe.Unverified, h.Label(tahoe.Unverified)
		if s, ok := states[string(h.Key)]; ok {
			st, label = s.State, s.Label
		}
		fmt.Fprintf(env.Stdout, "%s %s", remote(string(h.Key), cellRunes), remote(tahoe.Display(h.Ann.Nickname), cellRunes))
		if h.Seqnum > 0 {
			fmt.Fprintf(env.Stdout, " (seqnum %d, unsigned)", h.Seqnum)
		}
		fmt.Fprintln(env.Stdout)
		if h.Ann.FURL != "" {
			fmt.Fprintf(env.Stdout, "    FURL %s\n", remote(h.Ann.FURL, lineRunes))
		}
		for _, n := range h.Ann.NURLs {
			fmt.Fprintf(env.Stdout, "    NURL %s\n", remote(n, lineRunes))
		}
		fmt.Fprintf(env.Stdout, "    %s: %s\n", label, st.Describe())
	}
	fmt.Fprintf(env.Stdout, "%d storage servers read from %s (Tahoe %s); %d hints kept in %s (%d new, %d replaced)\n",
		len(hints), name, file.Format, len(merged), filepath.Join(dir, tahoe.HintsFile), added, replaced)
	fmt.Fprintln(env.Stdout, "Hints are never dialled, held, passed on or exported: Tahoe keeps no signatures and announces no gv:// locator.")
	if !running {
		fmt.Fprintf(env.Stdout, "The node is not running: once it runs, 'grapevine tahoe export %s' shows which hints its signed records confirm.\n", dir)
	}
	return exitOK
}
