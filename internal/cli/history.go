package cli

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"grapevine/client"
	"grapevine/client/apitype"
)

func runHistory(env *Env, c *command, asJSON *bool, pos []string) int {
	if len(pos) != 2 {
		return usageError(env, c, "want DIR and KEY, got %d arguments", len(pos))
	}
	if *asJSON {
		return printJSON(env, c, pos[0], "/v1/servers/"+url.PathEscape(pos[1]))
	}
	h, err := callNode(pos[0], func(cl *client.Client, ctx context.Context) (apitype.ServerHistory, error) {
		return cl.History(ctx, pos[1])
	})
	if err != nil {
		return fail(env, c, err)
	}
	w, s := env.Stdout, h.Server
	name := ""
	if s.Nickname != "" {
		name = " (" + remote(s.Nickname, cellRunes) + ")"
	}
	fmt.Fprintf(w, "Server %s%s\n", remote(s.ID, cellRunes), name)
	if len(s.Services) > 0 {
		fmt.Fprintf(w, "Services: %s, seqnum %d; relayed: %s\n", remote(strings.Join(s.Services, ", "), lineRunes), s.Seqnum, yesNo(s.Live))
	} else {
		fmt.Fprintln(w, "Services: none held")
	}
	if s.Tombstoned != "" {
		fmt.Fprintf(w, "Forgotten: %s\n", remote(s.Tombstoned, lineRunes))
	}
	fmt.Fprintf(w, "Status: %s\n", statusPhrase(s, h.Now))
	for _, l := range h.Locators {
		fmt.Fprintf(w, "Locator: %s\n", remote(l, lineRunes))
	}
	fmt.Fprintf(w, "First heard: %s ago (%s)\n", dur(h.FirstHeardAgoS), stamp(h.FirstHeard))
	fmt.Fprintf(w, "Last good sighting: %s\n", agoText(s.LastGoodAgo))
	if s.Connected {
		fmt.Fprintln(w, "Last connected: now")
	} else {
		fmt.Fprintf(w, "Last connected: %s\n", agoText(s.LastConnectedAgo))
	}
	attempt := agoText(s.LastAttemptAgo)
	if s.LastAttemptAgo >= 0 && s.LastError != "" {
		attempt += ", failed: " + remote(s.LastError, lineRunes)
	}
	fmt.Fprintf(w, "Last attempt: %s; consecutive failures: %d\n", attempt, s.Failures)
	if s.NextDialInS > 0 {
		fmt.Fprintf(w, "Next attempt: in %s\n", dur(s.NextDialInS))
	}
	fmt.Fprintf(w, "RTT: %s; uptime 1d %s, 7d %s, 30d %s\n", rtt(s.SRTTms), percent(s.Uptime1d), percent(s.Uptime7d), percent(s.Uptime30d))
	fmt.Fprintf(w, "Message bytes: %d in, %d out\n", s.BytesIn, s.BytesOut)

	fmt.Fprintf(w, "\nConnected (%d spans, oldest first):\n", len(h.Intervals))
	if len(h.Intervals) == 0 {
		fmt.Fprintln(w, "  never")
	}
	for _, iv := range h.Intervals {
		end := "now"
		if !iv.Open && iv.End != nil {
			end = stamp(*iv.End)
		}
		fmt.Fprintf(w, "  %s - %s  %s\n", stamp(iv.Start), end, dur(iv.DurationS))
	}
	if len(h.Forgotten) > 0 {
		fmt.Fprintln(w, "\nTombstones:")
	}
	for _, f := range h.Forgotten {
		fmt.Fprintf(w, "  %s seqnum %d: %s, %s ago\n", remote(f.Service, cellRunes), f.Seqnum, remote(f.Reason, cellRunes), dur(f.AgoS))
	}
	fmt.Fprintf(w, "\nEvents about it (%d recent, oldest first):\n", len(h.Events))
	if len(h.Events) == 0 {
		fmt.Fprintln(w, "  none kept")
	}
	printEvents(w, h.Events)
	return exitOK
}

func agoText(s float64) string {
	if s < 0 {
		return "never"
	}
	return dur(s) + " ago"
}

// stamp prints a wall time to the second in the local zone.
func stamp(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }
