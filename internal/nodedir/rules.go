package nodedir

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"grapevine/core"
)

// Rules overrides the protocol's defaults (core.DefaultConfig). A zero
// field keeps the preset's value.
type Rules struct {
	// Preset is "production" (the default) or "test": seconds instead of
	// days, for local trials and end-to-end tests.
	Preset           string   `yaml:"preset,omitempty"`
	TickInterval     Duration `yaml:"tick_interval,omitempty"`
	SyncInterval     Duration `yaml:"sync_interval,omitempty"`
	LivenessWindow   Duration `yaml:"liveness_window,omitempty"`
	RefreshInterval  Duration `yaml:"refresh_interval,omitempty"`
	ForgetHorizon    Duration `yaml:"forget_horizon,omitempty"`
	TombstoneTTL     Duration `yaml:"tombstone_ttl,omitempty"`
	MaxDialsInFlight int      `yaml:"max_dials_in_flight,omitempty"`
}

// Duration is a YAML duration in Go's syntax, plus "d" for days ("30d").
type Duration time.Duration

// UnmarshalYAML parses "90s", "72h", "30d".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses Go durations and whole or fractional days ("30d").
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		f, err := strconv.ParseFloat(days, 64)
		if err != nil || f < 0 || f > 100*365 {
			return 0, fmt.Errorf("duration %q: want e.g. 30d, 72h or 90s", s)
		}
		return time.Duration(f * float64(24*time.Hour)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("duration %q: want e.g. 30d, 72h or 90s", s)
	}
	return v, nil
}

// CoreConfig returns the protocol configuration the rules select.
func (c *Config) CoreConfig() (core.Config, error) {
	r := c.Rules
	var cc core.Config
	switch r.Preset {
	case "", "production":
		cc = core.DefaultConfig()
	case "test":
		cc = core.TestConfig()
	default:
		return cc, bad("rules.preset", "%q: want production or test", r.Preset)
	}
	set := func(dst *time.Duration, v Duration) {
		if v > 0 {
			*dst = time.Duration(v)
		}
	}
	set(&cc.TickInterval, r.TickInterval)
	if cc.MaxTickGap < 10*cc.TickInterval {
		cc.MaxTickGap = 10 * cc.TickInterval
	}
	set(&cc.SyncInterval, r.SyncInterval)
	set(&cc.LivenessWindow, r.LivenessWindow)
	if cc.FirstSightWindow > cc.LivenessWindow {
		cc.FirstSightWindow = cc.LivenessWindow
	}
	set(&cc.RefreshInterval, r.RefreshInterval)
	set(&cc.ForgetHorizon, r.ForgetHorizon)
	set(&cc.TombstoneTTL, r.TombstoneTTL)
	if r.MaxDialsInFlight < 0 {
		return cc, bad("rules.max_dials_in_flight", "must be at least 1")
	}
	if r.MaxDialsInFlight > 0 {
		cc.MaxDialsInFlight = r.MaxDialsInFlight
	}
	// A storage server needs no connections to other servers: it dials
	// only its bootstrap nodes, and clients come to it.
	for _, svc := range c.Services {
		if svc.Name == "storage" {
			cc.DialServers = false
		}
	}
	if err := cc.Validate(); err != nil {
		return cc, bad("rules", "%s", strings.TrimPrefix(err.Error(), "core config: "))
	}
	return cc, nil
}

// MarshalYAML writes the duration in Go's syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
