package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"grapevine/announce"
	"grapevine/client"
	"grapevine/client/apitype"
)

func runServers(env *Env, c *command, asJSON *bool, pos []string) int {
	if len(pos) != 1 {
		return usageError(env, c, "want exactly one DIR, got %d arguments", len(pos))
	}
	if *asJSON {
		return printJSON(env, c, pos[0], "/v1/servers")
	}
	l, err := callNode(pos[0], (*client.Client).Servers)
	if err != nil {
		return fail(env, c, err)
	}
	fmt.Fprintf(env.Stdout, "Connected to %d of %d known servers; %d live (relayed).\n", l.Connected, l.Known, l.Live)
	if len(l.Servers) == 0 {
		return exitOK
	}
	fmt.Fprintln(env.Stdout)
	printServerTable(env.Stdout, l.Servers, l.Now)
	return exitOK
}

// printJSON prints the node's JSON answer to a GET as it came.
func printJSON(env *Env, c *command, dir, path string) int {
	raw, err := callNode(dir, func(cl *client.Client, ctx context.Context) (json.RawMessage, error) {
		return cl.GetJSON(ctx, path)
	})
	if err != nil {
		return fail(env, c, err)
	}
	fmt.Fprintf(env.Stdout, "%s\n", safeJSON(bytes.TrimSpace(raw)))
	return exitOK
}

func printServerTable(w io.Writer, servers []apitype.ServerStatus, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NICKNAME\tID\tSERVICES\tSTATUS\tRTT\tUP 1D\tUP 7D\tUP 30D\tSEQNUM\tRELAYED")
	for _, s := range servers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", orDash(remote(s.Nickname, cellRunes)), shortID(s.ID),
			orDash(remote(strings.Join(s.Services, ","), cellRunes)), statusPhrase(s, now), rtt(s.SRTTms),
			percent(s.Uptime1d), percent(s.Uptime7d), percent(s.Uptime30d), seqnum(s), yesNo(s.Live && len(s.Services) > 0))
	}
	tw.Flush()
}

// statusPhrase says in words where the connection stands, as Tahoe's
// welcome page does.
func statusPhrase(s apitype.ServerStatus, now time.Time) string {
	switch {
	case s.Tombstoned != "" && len(s.Services) == 0:
		return "Forgotten (" + remote(s.Tombstoned, cellRunes) + ")"
	case s.Withdrawn:
		return "Withdrawn"
	case s.HostedHere:
		return "Publishing here (Tahoe, hosted)"
	case len(s.Hosts) > 0 && !s.Connected:
		hosts := make([]string, len(s.Hosts))
		for i, h := range s.Hosts {
			hosts[i] = shortID(h)
		}
		return "Hosted by " + strings.Join(hosts, ",")
	case s.Connected:
		if s.ConnectedSince != nil && !now.IsZero() {
			return "Connected for " + dur(now.Sub(*s.ConnectedSince).Seconds())
		}
		return "Connected"
	case s.Dialing:
		return "Trying to connect"
	case s.NextDialInS > 0:
		p := "Reconnecting in " + dur(s.NextDialInS)
		if s.LastAttemptAgo >= 0 {
			p += " (last attempt " + dur(s.LastAttemptAgo) + " ago"
			if s.LastError != "" {
				p += ": " + remote(s.LastError, cellRunes)
			}
			p += ")"
		}
		return p
	case s.LastConnectedAgo >= 0:
		return "Not connected (last " + dur(s.LastConnectedAgo) + " ago)"
	}
	return "Not connected (never)"
}

// dur prints seconds compactly: 45s, 5m10s, 3h12m, 2d4h.
func dur(sec float64) string {
	if sec < 0 || math.IsNaN(sec) {
		return "-"
	}
	s := int64(math.Round(sec))
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return trim0(fmt.Sprintf("%dm%ds", s/60, s%60))
	case s < 86400:
		return trim0(fmt.Sprintf("%dh%dm", s/3600, s%3600/60))
	}
	return trim0(fmt.Sprintf("%dd%dh", s/86400, s%86400/3600))
}

// trim0 drops a zero second unit: "5m0s" -> "5m".
func trim0(s string) string {
	for _, u := range []string{"0s", "0m", "0h"} {
		if strings.HasSuffix(s, u) && len(s) > len(u) && (s[len(s)-len(u)-1] < '0' || s[len(s)-len(u)-1] > '9') {
			return s[:len(s)-len(u)]
		}
	}
	return s
}

func rtt(ms float64) string {
	switch {
	case ms <= 0:
		return "-"
	case ms < 10:
		return fmt.Sprintf("%.1fms", ms)
	}
	return fmt.Sprintf("%.0fms", ms)
}

func percent(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100**p)
}

func seqnum(s apitype.ServerStatus) string {
	if len(s.Services) == 0 {
		return "-"
	}
	return fmt.Sprint(s.Seqnum)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// shortID is the short form of a node ID from the node's answer.
func shortID(id string) string { return remote(announce.NodeID(id).Short(), cellRunes) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
