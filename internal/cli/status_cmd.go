package cli

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"grapevine/client"
	"grapevine/client/apitype"
)

type statusOpts struct {
	json    *bool
	nEvents *int
}

func statusFlags(fs *flag.FlagSet) statusOpts {
	return statusOpts{
		json:    jsonFlag("print the JSON of GET /v1/status (docs/api.md)")(fs),
		nEvents: fs.Int("events", 10, "show the last `N` of the recent events"),
	}
}

func runStatus(env *Env, c *command, o statusOpts, pos []string) int {
	if len(pos) != 1 {
		return usageError(env, c, "want exactly one DIR, got %d arguments", len(pos))
	}
	if *o.json {
		return printJSON(env, c, pos[0], "/v1/status")
	}
	st, err := callNode(pos[0], (*client.Client).Status)
	if err != nil {
		return fail(env, c, err)
	}
	w := env.Stdout
	name := ""
	if st.Nickname != "" {
		name = " (" + remote(st.Nickname, cellRunes) + ")"
	}
	fmt.Fprintf(w, "Node %s%s\n", st.ID, name)
	if st.ReadOnly {
		since := ""
		if st.ReadOnlySince != nil {
			since = " since " + st.ReadOnlySince.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "READ-ONLY%s: %s\n  (imports and other writes are refused until the node can write again; see docs/run.md)\n", since, remote(st.ReadOnlyReason, lineRunes))
	}
	for _, warning := range st.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", remote(warning, lineRunes))
	}
	if st.Grid != "" {
		fmt.Fprintf(w, "Grid: closed, founded by %s\n", st.Grid)
	} else {
		fmt.Fprintln(w, "Grid: open")
	}
	for _, l := range st.Locators {
		fmt.Fprintf(w, "Locator: %s\n", remote(l, lineRunes))
	}
	if in := st.Introducer; in != nil {
		fmt.Fprintf(w, "Introducer FURL (for Tahoe-LAFS): %s\n", in.FURL)
		fmt.Fprintf(w, "Tahoe nodes: %d subscription(s); hosting %d server(s)", len(in.Subscribers), len(in.Hosted))
		for _, h := range in.Hosted {
			fmt.Fprintf(w, " %s", shortID(h))
		}
		fmt.Fprintln(w)
	}
	live := 0
	for _, s := range st.Servers {
		if s.Live && len(s.Services) > 0 {
			live++
		}
	}
	fmt.Fprintf(w, "Connected to %d of %d known servers; %d live (relayed)\n", st.Connected, st.Known, live)
	fmt.Fprintf(w, "Records: %d held, %d tombstones\n", st.Records, st.Tombstones)
	fmt.Fprintf(w, "Counter: %d (the last seqnum this node signed)\n", st.Counter)
	fmt.Fprintf(w, "Dials in flight: %d; sync rounds: %d; elapsed: %s\n", st.InFlight, st.SyncRounds, dur(st.ElapsedS))
	evs := st.Events
	if *o.nEvents >= 0 && len(evs) > *o.nEvents {
		evs = evs[len(evs)-*o.nEvents:]
	}
	if len(evs) > 0 {
		fmt.Fprintf(w, "\nRecent events (%d of the %d kept, oldest first):\n", len(evs), len(st.Events))
		printEvents(w, evs)
	}
	return exitOK
}

// printEvents prints explain events one a line: how long ago, kind, peer
// and service, reason, facts.
func printEvents(w io.Writer, evs []apitype.EventStatus) {
	for _, e := range evs {
		var b strings.Builder
		fmt.Fprintf(&b, "  %7s ago  %s", dur(e.AgoS), remote(e.Kind, cellRunes))
		if e.Peer != "" {
			fmt.Fprintf(&b, " %s", shortID(e.Peer))
			if e.Service != "" {
				fmt.Fprintf(&b, "/%s", remote(e.Service, cellRunes))
			}
		}
		if e.Reason != "" {
			fmt.Fprintf(&b, " reason=%s", remote(e.Reason, cellRunes))
		}
		keys := make([]string, 0, len(e.Facts))
		for k := range e.Facts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := remote(e.Facts[k], cellRunes)
			if strings.ContainsAny(v, " ") {
				v = `"` + v + `"`
			}
			fmt.Fprintf(&b, " %s=%s", remote(k, cellRunes), v)
		}
		fmt.Fprintln(w, b.String())
	}
}
