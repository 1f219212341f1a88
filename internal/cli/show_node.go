package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"grapevine/announce"
	"grapevine/internal/daemon"
	"grapevine/internal/nodedir"
)

type nodeInfo struct {
	ID       announce.NodeID `json:"id"`
	Nickname string          `json:"nickname"`
	Seqnum   int64           `json:"seqnum"`
	Locators []string        `json:"locators"`
	// IntroducerFURL: the Foolscap introducer endpoint's FURL, for
	// Tahoe-LAFS nodes; "" until the node first runs (or if it is off).
	IntroducerFURL string            `json:"introducer_furl"`
	Announcements  []announce.Signed `json:"announcements"`
}

func runNodeShow(env *Env, c *command, asJSON *bool, pos []string) int {
	if len(pos) != 1 {
		return usageError(env, c, "want exactly one DIR, got %d arguments", len(pos))
	}
	n, err := nodedir.Open(pos[0])
	if err != nil {
		return fail(env, c, err)
	}
	info := nodeInfo{
		ID:             n.ID(),
		Nickname:       n.Config.Nickname,
		Seqnum:         n.Counter(),
		Locators:       n.Config.Locators(n.ID()),
		IntroducerFURL: daemon.ReadIntroducerFURL(n.Dir),
		Announcements:  n.Current(),
	}
	if info.Announcements == nil {
		info.Announcements = []announce.Signed{}
	}
	if *asJSON {
		out, _ := json.MarshalIndent(info, "", "  ")
		fmt.Fprintf(env.Stdout, "%s\n", out)
		return exitOK
	}
	fmt.Fprintf(env.Stdout, "Node ID:   %s\n", info.ID)
	fmt.Fprintf(env.Stdout, "Nickname:  %s\n", info.Nickname)
	fmt.Fprintf(env.Stdout, "Seqnum:    %d\n", info.Seqnum)
	for _, l := range info.Locators {
		fmt.Fprintf(env.Stdout, "Locator:   %s\n", l)
	}
	switch {
	case info.IntroducerFURL != "":
		fmt.Fprintf(env.Stdout, "Introducer FURL (for Tahoe-LAFS): %s\n", info.IntroducerFURL)
	case n.Config.Introducer.Off():
		fmt.Fprintf(env.Stdout, "Introducer FURL: none (introducer.listen is off)\n")
	default:
		fmt.Fprintf(env.Stdout, "Introducer FURL: written to %s when the node first runs\n", filepath.Join(n.Dir, "private", daemon.IntroducerFURL))
	}
	fmt.Fprintf(env.Stdout, "Announcements: %d (one JSON object per line; 'grapevine ann verify' reads one)\n", len(info.Announcements))
	for _, s := range info.Announcements {
		line, _ := json.Marshal(s)
		fmt.Fprintf(env.Stdout, "%s\n", line)
	}
	return exitOK
}
