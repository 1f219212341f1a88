package sim

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"grapevine/core"
)

// Designs are the introduction designs the simulator compares. Each is a
// configuration of the one core, not a separate model. Only Grapevine has
// graceful leave (R7); the others ignore withdrawals.
var Designs = map[string]func(*core.Config){
	// Tahoe today: everything held is passed on, nothing is ever forgotten,
	// announcements are published only at start, and every known server is
	// dialled at once, in no order (Foolscap has no pending-dial limit).
	"never-forget": func(c *core.Config) {
		c.Variant.NoDialOrder = true
		c.Variant.RelayAll = true
		c.Variant.NeverForget = true
		c.Variant.NoRefresh = true
		c.Variant.NoCounterRecovery = true
		c.Variant.IgnoreWithdrawals = true
	},
	// Timestamps, the first proposal in the design discussion: a
	// wall-clock timestamp in each announcement; receivers prune those
	// older than a month by their own clock, a few minutes after start-up;
	// refreshed periodically. Dialling as in Tahoe.
	"timestamp": func(c *core.Config) {
		c.Variant.NoDialOrder = true
		c.Variant.RelayAll = true
		c.Variant.NeverForget = true
		c.Variant.Timestamp = true
		c.Variant.IgnoreWithdrawals = true
	},
	// The design discussion's three rules as written: gossip only about
	// servers you are connected to now; dial the most recently seen first;
	// forget after a month on your clock without a connection, when
	// connected to many.
	"seed-rules": func(c *core.Config) {
		c.Variant.RelayConnectedOnly = true
		c.Variant.WallClockElapsed = true
		c.Variant.GoodOnlyByConnection = true
		c.Variant.ForgetWithoutAttempt = true
		c.Variant.IgnoreWithdrawals = true
	},
	// Grapevine's rules as built.
	"grapevine": func(c *core.Config) {},
	// Grapevine on hosts without a monotonic clock: the core is given the
	// wall clock alone, so every skew event reaches R5's rule within a run (the simulator otherwise gives the core a
	// monotonic reading as well, as time.Now gives the daemon). Not in the
	// study (DesignNames); picked by name.
	"grapevine-wall-clock": func(c *core.Config) { c.Variant.NoMonotonicClock = true },
	// Grapevine gossiping over every connection, as before the overlay
	// (GossipDegree 0): the baseline for the overlay's cost. Not in the
	// study; picked by name.
	"grapevine-all-links": func(c *core.Config) { c.GossipDegree = 0 },
}

// studyDesigns are the designs the study compares, in order.
var studyDesigns = []string{"never-forget", "timestamp", "seed-rules", "grapevine"}

// DesignNames returns the study's designs in a fixed order. The others in
// Designs (grapevine-wall-clock, grapevine-all-links) are run only when named.
func DesignNames() []string { return slices.Clone(studyDesigns) }

// AllDesignNames returns every design: the study's, then the others by
// name.
func AllDesignNames() []string {
	var extra []string
	for n := range Designs {
		if !slices.Contains(studyDesigns, n) {
			extra = append(extra, n)
		}
	}
	sort.Strings(extra)
	return append(DesignNames(), extra...)
}

// ApplyDesign configures c for a design.
func ApplyDesign(c *core.Config, design string) error {
	f, ok := Designs[design]
	if !ok {
		return fmt.Errorf("unknown design %q (have %v)", design, AllDesignNames())
	}
	f(c)
	return nil
}

// ScaleConfig is the core configuration for simulations over days and
// months: production rules and horizons, coarser ticks and rounds so that
// thousands of nodes fit in minutes of wall time.
func ScaleConfig() core.Config {
	c := core.DefaultConfig()
	c.TickInterval = 10 * time.Minute
	c.MaxTickGap = 30 * time.Minute
	c.SyncInterval = 6 * time.Hour
	c.BackoffBase = 10 * time.Minute
	c.FetchTimeout = 30 * time.Minute
	c.Variant.TimestampGrace = 10 * time.Minute
	c.NoRecentEvents = true // the runner reads events from Ready
	return c
}
