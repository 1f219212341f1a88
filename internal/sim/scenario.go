package sim

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"grapevine/core"
)

// Scenario is a simulation set-up read from a YAML file (docs/sim.md).
type Scenario struct {
	Name        string       `yaml:"name"`
	Description string       `yaml:"description"`
	Duration    Dur          `yaml:"duration"`
	Warmup      Dur          `yaml:"warmup"`
	Sample      Dur          `yaml:"sample"`
	Seed        uint64       `yaml:"seed"`
	Population  Population   `yaml:"population"`
	Network     NetworkSpec  `yaml:"network"`
	Config      ConfigFields `yaml:"config"`
	Events      []Event      `yaml:"events"`
}

// Population says who is in the grid at the start.
type Population struct {
	Servers   int     `yaml:"servers"`
	Clients   int     `yaml:"clients"`
	Relays    int     `yaml:"relays"`
	ClientNAT float64 `yaml:"client_nat"` // share of clients that cannot be dialled
	ServerNAT float64 `yaml:"server_nat"` // share of servers that cannot be dialled
}

// NetworkSpec sets latency and loss.
type NetworkSpec struct {
	Latency Dur     `yaml:"latency"`
	Jitter  Dur     `yaml:"jitter"`
	Loss    float64 `yaml:"loss"`
	// HalfOpen limits connection attempts in progress per host, as some
	// operating systems do (0: no limit).
	HalfOpen int `yaml:"half_open"`
}

// ConfigFields overrides core.Config fields by name, e.g. SyncInterval: 1h.
type ConfigFields map[string]string

// Event is one timeline entry. Which fields apply depends on Action:
//
//	join-servers     Count new servers join (Every: repeat)
//	join-clients     Count new clients join (Every: repeat)
//	depart-servers   Count or Fraction of servers leave for good, silently
//	leave-servers    ... leave and say so (R7)
//	kill-servers     Count or Fraction of servers become blackholes (dials hang), for good
//	offline-servers  Count or Fraction of servers go off for For, then come back with their state
//	offline-clients  Count or Fraction of clients go off for For, then come back with their state
//	restart-clients  Count clients restart at once; Wipe loses their state
//	skew             Fraction of all nodes get their clock moved by By (half forward, half back)
//	partition        Fraction of the nodes not already cut off are cut off from the rest for
//	                 For, in Groups groups (default 1) that are cut off from each other too
type Event struct {
	At       Dur     `yaml:"at"`
	Action   string  `yaml:"action"`
	Count    int     `yaml:"count"`
	Fraction float64 `yaml:"fraction"`
	For      Dur     `yaml:"for"`
	By       Dur     `yaml:"by"`
	Every    Dur     `yaml:"every"`
	Until    Dur     `yaml:"until"`
	Wipe     bool    `yaml:"wipe"`
	Groups   int     `yaml:"groups"`
}

var actions = map[string]bool{
	"join-servers": true, "join-clients": true, "depart-servers": true, "leave-servers": true,
	"kill-servers": true, "offline-servers": true, "offline-clients": true, "restart-clients": true,
	"skew": true, "partition": true,
}

// needsFor are the actions that undo themselves after For.
var needsFor = map[string]bool{"offline-servers": true, "offline-clients": true, "partition": true}

// Dur is a duration that also accepts days ("30d", "1d12h").
type Dur time.Duration

func (d *Dur) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Dur(v)
	return nil
}

// ParseDuration reads Go durations, with days ("d") allowed as the first
// unit: "90s", "36h", "30d", "1.5d", "1d3h", "2d12h30m".
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("bad duration %q (want e.g. 90s, 36h, 30d, 1d3h)", s)
	body, neg := s, false
	if rest, ok := strings.CutPrefix(body, "-"); ok {
		body, neg = rest, true
	} else {
		body = strings.TrimPrefix(body, "+")
	}
	var d time.Duration
	if day, rest, ok := strings.Cut(body, "d"); ok {
		if day == "" || strings.ContainsAny(day, "+-") {
			return 0, bad
		}
		f, err := strconv.ParseFloat(day, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || f*24 > float64(math.MaxInt64/int64(time.Hour)) {
			return 0, bad
		}
		d = time.Duration(f * 24 * float64(time.Hour))
		body = rest
		if body == "" {
			if neg {
				d = -d
			}
			return d, nil
		}
	}
	if body == "" || strings.ContainsAny(body, "+-") {
		return 0, bad
	}
	v, err := time.ParseDuration(body)
	if err != nil {
		return 0, bad
	}
	d += v
	if neg {
		d = -d
	}
	return d, nil
}

// ScenarioError is a problem with a scenario file.
type ScenarioError struct {
	File string
	Msg  string
}

func (e *ScenarioError) Error() string { return e.File + ": " + e.Msg }

// LoadScenario reads and checks a scenario file.
func LoadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseScenario(path, data)
}

// ParseScenario decodes a scenario strictly: unknown fields are errors.
func ParseScenario(file string, data []byte) (*Scenario, error) {
	var sc Scenario
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&sc); err != nil {
		return nil, &ScenarioError{file, strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if err := sc.check(); err != nil {
		return nil, &ScenarioError{file, err.Error()}
	}
	return &sc, nil
}

func (sc *Scenario) check() error {
	if sc.Name == "" {
		return errors.New("name: missing")
	}
	if sc.Duration <= 0 {
		return errors.New("duration: missing or not positive")
	}
	if sc.Sample <= 0 {
		sc.Sample = Dur(time.Hour)
	}
	p := sc.Population
	if p.Servers < 1 || p.Clients < 1 {
		return errors.New("population: want at least one server and one client")
	}
	if p.Servers+p.Clients+p.Relays > 200000 {
		return errors.New("population: more than 200,000 nodes")
	}
	for _, f := range []float64{p.ClientNAT, p.ServerNAT, sc.Network.Loss} {
		if f < 0 || f > 1 {
			return errors.New("population/network: shares must be in [0, 1]")
		}
	}
	if _, err := sc.CoreConfig("grapevine"); err != nil {
		return err
	}
	for i, e := range sc.Events {
		if !actions[e.Action] {
			return fmt.Errorf("events[%d]: unknown action %q", i, e.Action)
		}
		if e.At < 0 || e.At > sc.Duration {
			return fmt.Errorf("events[%d]: at %v is outside the run", i, time.Duration(e.At))
		}
		if e.Fraction < 0 || e.Fraction > 1 || e.Count < 0 {
			return fmt.Errorf("events[%d]: count must be >= 0 and fraction in [0, 1]", i)
		}
		if needsFor[e.Action] && e.For <= 0 {
			return fmt.Errorf("events[%d]: %s needs a positive for", i, e.Action)
		}
		if e.Groups < 0 || (e.Groups > 0 && e.Action != "partition") {
			return fmt.Errorf("events[%d]: groups is for partition only, and at least 1", i)
		}
	}
	return nil
}

// CoreConfig returns the scale configuration with the scenario's
// overrides and a design applied.
func (sc *Scenario) CoreConfig(design string) (core.Config, error) {
	c := ScaleConfig()
	v := reflect.ValueOf(&c).Elem()
	for k, val := range sc.Config {
		f := v.FieldByName(k)
		if !f.IsValid() || k == "Variant" || k == "Verify" {
			return c, fmt.Errorf("config: no core.Config field %q", k)
		}
		switch f.Kind() {
		case reflect.Int64:
			d, err := ParseDuration(val)
			if err != nil {
				return c, fmt.Errorf("config: %s: %w", k, err)
			}
			f.SetInt(int64(d))
		case reflect.Int:
			n, err := strconv.Atoi(val)
			if err != nil {
				return c, fmt.Errorf("config: %s: %w", k, err)
			}
			f.SetInt(int64(n))
		case reflect.Float64:
			x, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return c, fmt.Errorf("config: %s: %w", k, err)
			}
			f.SetFloat(x)
		case reflect.Bool:
			b, err := strconv.ParseBool(val)
			if err != nil {
				return c, fmt.Errorf("config: %s: %w", k, err)
			}
			f.SetBool(b)
		default:
			return c, fmt.Errorf("config: %s cannot be set here", k)
		}
	}
	if err := ApplyDesign(&c, design); err != nil {
		return c, err
	}
	return c, c.Validate()
}
