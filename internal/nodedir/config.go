package nodedir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"grapevine/announce"
)

// ConfigFile is the name of the node's configuration file.
const ConfigFile = "grapevine.yaml"

// DefaultListen is where a new node's gossip endpoint listens.
const DefaultListen = "127.0.0.1:7370"

// MaxConfigSize bounds the configuration file.
const MaxConfigSize = 1 << 20

// Config is the node's configuration, read from grapevine.yaml.
type Config struct {
	// Nickname is shown to other nodes' operators. At most 128 bytes.
	Nickname string `yaml:"nickname"`
	// Listen is the host:port the gossip endpoint listens on.
	Listen string `yaml:"listen"`
	// Location lists the host:port addresses other nodes dial to reach this
	// one. They become the gv:// locators in the node's announcements.
	Location []string `yaml:"location"`
	// Services are what the node announces, one signed record each.
	Services []ServiceConfig `yaml:"services"`
	// Bootstrap lists gv:// locators of nodes to dial at start.
	Bootstrap []string `yaml:"bootstrap"`
	// Status is the host:port of the local status page and JSON API; empty
	// turns it off.
	Status string `yaml:"status,omitempty"`
	// StatusPublic serves the status endpoint's read-only requests (GET,
	// HEAD) to any client; otherwise only loopback clients, and those
	// that send the API token, are served. Requests that change the node
	// always need the token.
	StatusPublic bool `yaml:"status_public,omitempty"`
	// Rules overrides the protocol's defaults.
	Rules Rules `yaml:"rules,omitempty"`
	// Grid is the founder's node ID of a closed grid: only members'
	// records are held. Empty: an open grid.
	Grid string `yaml:"grid,omitempty"`
	// Membership is this node's certificate chain (gvc1-...), founder
	// first; empty for the founder.
	Membership []string `yaml:"membership,omitempty"`
	// Role is "relay" for a grid-control-only node (informational).
	Role string `yaml:"role,omitempty"`
	// Introducer is the Foolscap introducer endpoint Tahoe-LAFS nodes use.
	Introducer IntroducerConfig `yaml:"introducer,omitempty"`
	// Tahoe names the Tahoe-LAFS node beside this one, if any.
	Tahoe TahoeConfig `yaml:"tahoe,omitempty"`
}

// DefaultIntroducerListen: loopback, with the port of the FURL already
// written if there is one (so the FURL stays the same), else a free one.
const DefaultIntroducerListen = "127.0.0.1:0"

// IntroducerConfig configures the Foolscap introducer endpoint.
type IntroducerConfig struct {
	// Listen is host:port, DefaultIntroducerListen if empty, "off" for none.
	Listen string `yaml:"listen,omitempty"`
	// Location lists the host:port hints put in the FURL; the listen
	// address if empty.
	Location []string `yaml:"location,omitempty"`
}

// Off reports whether the endpoint is turned off.
func (c IntroducerConfig) Off() bool { return c.Listen == "off" }

// ListenAddr returns the address to listen on.
func (c IntroducerConfig) ListenAddr() string {
	if c.Listen == "" {
		return DefaultIntroducerListen
	}
	return c.Listen
}

// DefaultTahoePetname is the introducer's name in the Tahoe node's
// private/introducers.yaml.
const DefaultTahoePetname = "grapevine"

// TahoeConfig names the Tahoe-LAFS node beside this one.
type TahoeConfig struct {
	// NodeDir is the Tahoe node directory: its introducer cache is kept
	// free of servers this node has forgotten, and its key may never be
	// this node's.
	NodeDir string `yaml:"node_dir,omitempty"`
	// Petname is this introducer's name in the node's introducers.yaml.
	Petname string `yaml:"petname,omitempty"`
}

// PetnameOr returns the petname or its default.
func (c TahoeConfig) PetnameOr() string {
	if c.Petname == "" {
		return DefaultTahoePetname
	}
	return c.Petname
}

// ServiceConfig is one announced service. For "storage", FURL becomes
// Tahoe's anonymous-storage-FURL and NURLs anonymous-storage-NURLs.
type ServiceConfig struct {
	Name  string   `yaml:"name"`
	FURL  string   `yaml:"furl,omitempty"`
	NURLs []string `yaml:"nurls,omitempty"`
}

// ConfigError is a problem with the configuration file, with where it is.
type ConfigError struct {
	File  string
	Line  int    // 0 if unknown
	Field string // e.g. services[1].name
	Msg   string
}

func (e *ConfigError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
	}
	return loc + ": " + e.Msg
}

var serviceNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)

var petnameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ParseConfig decodes and validates a configuration. Unknown fields are
// errors, so a typo is not silently ignored.
func ParseConfig(file string, data []byte) (*Config, error) {
	if len(data) > MaxConfigSize {
		return nil, &ConfigError{File: file, Msg: fmt.Sprintf("%d bytes, limit %d", len(data), MaxConfigSize)}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, errEOF) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			msg = te.Errors[0]
		}
		return nil, yamlError(file, msg)
	}
	if err := c.validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.File = file
			ce.Line = lineOf(&root, ce.Field)
		}
		return nil, err
	}
	return &c, nil
}

// yaml returns io.EOF for an empty document; validation then reports what
// is missing.
var errEOF = io.EOF

var yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)
var unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type \S+$`)

// yamlError turns yaml's "line N: msg" into a ConfigError with a line.
func yamlError(file, msg string) *ConfigError {
	e := &ConfigError{File: file, Msg: msg}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	}
	if m := unknownFieldRE.FindStringSubmatch(e.Msg); m != nil {
		e.Field, e.Msg = m[1], "unknown field (see docs/config.md)"
	}
	return e
}

func bad(field, format string, args ...any) error {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (c *Config) validate() error {
	if len(c.Nickname) > 128 {
		return bad("nickname", "%d bytes, limit 128", len(c.Nickname))
	}
	if !utf8.ValidString(c.Nickname) || strings.IndexFunc(c.Nickname, unicode.IsControl) >= 0 {
		return bad("nickname", "must be printable UTF-8 text")
	}
	if c.Listen == "" {
		return bad("listen", "missing: the host:port to listen on, e.g. %s", DefaultListen)
	}
	if err := announce.CheckHostPort(c.Listen, true); err != nil {
		return bad("listen", "%v", err)
	}
	if len(c.Location) > 16 {
		return bad("location", "%d entries, limit 16", len(c.Location))
	}
	for i, l := range c.Location {
		if err := announce.CheckHostPort(l, false); err != nil {
			return bad(fmt.Sprintf("location[%d]", i), "%v", err)
		}
	}
	seen := map[string]bool{}
	if len(c.Services) > 16 {
		return bad("services", "%d entries, limit 16", len(c.Services))
	}
	for i, s := range c.Services {
		f := fmt.Sprintf("services[%d]", i)
		if !serviceNameRE.MatchString(s.Name) {
			return bad(f+".name", "%q: want lower-case letters, digits and '-', starting with a letter", s.Name)
		}
		if seen[s.Name] {
			return bad(f+".name", "service %q is listed twice", s.Name)
		}
		seen[s.Name] = true
		if s.FURL != "" && !strings.Contains(s.FURL, "://") {
			return bad(f+".furl", "%q is not a URL", s.FURL)
		}
		for j, n := range s.NURLs {
			if !strings.Contains(n, "://") {
				return bad(fmt.Sprintf("%s.nurls[%d]", f, j), "%q is not a URL", n)
			}
		}
	}
	for i, b := range c.Bootstrap {
		if _, err := announce.ParseLocator(b); err != nil {
			return bad(fmt.Sprintf("bootstrap[%d]", i), "%v", err)
		}
	}
	if c.Grid != "" {
		if _, err := announce.ParseNodeID(c.Grid); err != nil {
			return bad("grid", "%v", err)
		}
	} else if len(c.Membership) > 0 {
		return bad("membership", "a certificate chain needs a grid")
	}
	if len(c.Membership) > 16 {
		return bad("membership", "%d certificates, limit 16", len(c.Membership))
	}
	switch c.Role {
	case "", "relay":
	default:
		return bad("role", "%q: want relay or nothing", c.Role)
	}
	if c.Status != "" {
		if err := announce.CheckHostPort(c.Status, true); err != nil {
			return bad("status", "%v", err)
		}
	}
	if !c.Introducer.Off() {
		if err := announce.CheckHostPort(c.Introducer.ListenAddr(), true); err != nil {
			return bad("introducer.listen", "%v (or off)", err)
		}
	}
	if len(c.Introducer.Location) > 16 {
		return bad("introducer.location", "%d entries, limit 16", len(c.Introducer.Location))
	}
	for i, l := range c.Introducer.Location {
		if err := announce.CheckHostPort(l, false); err != nil {
			return bad(fmt.Sprintf("introducer.location[%d]", i), "%v", err)
		}
	}
	if c.Tahoe.Petname != "" && !petnameRE.MatchString(c.Tahoe.Petname) {
		return bad("tahoe.petname", "%q: want letters, digits, '-' and '_'", c.Tahoe.Petname)
	}
	_, err := c.CoreConfig()
	return err
}

// lineOf finds the line of a field path such as services[1].name.
func lineOf(root *yaml.Node, field string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, part := range strings.Split(field, ".") {
		name, idx, hasIdx := part, 0, false
		if i := strings.IndexByte(part, '['); i >= 0 {
			name = part[:i]
			idx, _ = strconv.Atoi(strings.TrimSuffix(part[i+1:], "]"))
			hasIdx = true
		}
		next := (*yaml.Node)(nil)
		if n.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == name {
					next, line = n.Content[j+1], n.Content[j].Line
				}
			}
		}
		if next == nil {
			return line
		}
		n = next
		if hasIdx {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

// Locators returns the node's gv:// locators.
func (c *Config) Locators(id announce.NodeID) []string {
	out := make([]string, len(c.Location))
	for i, l := range c.Location {
		out[i] = announce.Locator{ID: id, Addr: l}.String()
	}
	return out
}

// Templates returns what the node announces, one template per service.
func (c *Config) Templates(id announce.NodeID) []announce.Template {
	var out []announce.Template
	for _, s := range c.Services {
		svc := announce.Service{Name: s.Name}
		if len(s.NURLs) > 0 {
			items := make([]announce.Value, len(s.NURLs))
			for i, n := range s.NURLs {
				items[i] = announce.Str(n)
			}
			svc.Fields = append(svc.Fields, announce.Member{Key: "anonymous-" + s.Name + "-NURLs", Value: announce.List(items...)})
		}
		if s.FURL != "" {
			svc.Fields = append(svc.Fields, announce.Member{Key: "anonymous-" + s.Name + "-FURL", Value: announce.Str(s.FURL)})
		}
		if len(c.Membership) > 0 {
			items := make([]announce.Value, len(c.Membership))
			for i, m := range c.Membership {
				items[i] = announce.Str(m)
			}
			svc.Fields = append(svc.Fields, announce.Member{Key: announce.FieldMembership, Value: announce.List(items...)})
		}
		out = append(out, announce.Template{Nickname: c.Nickname, Service: svc, Locators: c.Locators(id)})
	}
	return out
}

// DefaultLocation is the location used when none is given: the listen
// address, if it names a host and a fixed port.
func DefaultLocation(listen string) (string, bool) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "0" {
		return "", false
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "", false
	}
	return listen, true
}

// Encode renders the configuration with a comment for each field.
func (c *Config) Encode() []byte {
	var b bytes.Buffer
	q := func(s string) string { j, _ := json.Marshal(s); return string(j) }
	list := func(xs []string) string {
		if len(xs) == 0 {
			return " []"
		}
		var s string
		for _, x := range xs {
			s += "\n  - " + q(x)
		}
		return s
	}
	fmt.Fprintf(&b, "# Grapevine node configuration. See docs/config.md.\n\n")
	fmt.Fprintf(&b, "# Shown to other nodes' operators (at most 128 bytes).\nnickname: %s\n\n", q(c.Nickname))
	fmt.Fprintf(&b, "# host:port the gossip endpoint listens on.\nlisten: %s\n\n", q(c.Listen))
	fmt.Fprintf(&b, "# host:port addresses other nodes dial to reach this one; they become\n# the gv:// locators in this node's announcements.\nlocation:%s\n\n", list(c.Location))
	fmt.Fprintf(&b, "# What this node announces, one signed record per service. For a\n# storage server: name: storage, furl: pb://... and/or nurls: [pb://...#v=1].\nservices:")
	if len(c.Services) == 0 {
		b.WriteString(" []\n")
	} else {
		b.WriteString("\n")
		for _, s := range c.Services {
			fmt.Fprintf(&b, "  - name: %s\n", q(s.Name))
			if s.FURL != "" {
				fmt.Fprintf(&b, "    furl: %s\n", q(s.FURL))
			}
			if len(s.NURLs) > 0 {
				b.WriteString("    nurls:")
				for _, n := range s.NURLs {
					fmt.Fprintf(&b, "\n      - %s", q(n))
				}
				b.WriteString("\n")
			}
		}
	}
	fmt.Fprintf(&b, "\n# gv://v0-KEY@HOST:PORT locators of nodes to dial at start.\nbootstrap:%s\n", list(c.Bootstrap))
	if c.Status != "" {
		fmt.Fprintf(&b, "\n# host:port of the local status page and JSON API.\nstatus: %s\n", q(c.Status))
	}
	if c.StatusPublic {
		fmt.Fprintf(&b, "\n# Serve the status page, JSON reads and metrics to non-loopback clients too.\nstatus_public: true\n")
	}
	if c.Role != "" {
		fmt.Fprintf(&b, "\n# relay: a grid-control-only node.\nrole: %s\n", q(c.Role))
	}
	if c.Grid != "" {
		fmt.Fprintf(&b, "\n# The grid: its founder's node ID. Only members' records are held.\ngrid: %s\n", q(c.Grid))
		fmt.Fprintf(&b, "\n# This node's certificate chain, founder first (empty for the founder).\nmembership:%s\n", list(c.Membership))
	}
	if c.Introducer.Listen != "" || len(c.Introducer.Location) > 0 {
		fmt.Fprintf(&b, "\n# The Foolscap introducer endpoint for Tahoe-LAFS nodes (off: none).\nintroducer:\n")
		if c.Introducer.Listen != "" {
			fmt.Fprintf(&b, "  listen: %s\n", q(c.Introducer.Listen))
		}
		if len(c.Introducer.Location) > 0 {
			fmt.Fprintf(&b, "  location:%s\n", strings.ReplaceAll(list(c.Introducer.Location), "\n  -", "\n    -"))
		}
	}
	if c.Tahoe.NodeDir != "" {
		fmt.Fprintf(&b, "\n# The Tahoe-LAFS node beside this one.\ntahoe:\n  node_dir: %s\n", q(c.Tahoe.NodeDir))
		if c.Tahoe.Petname != "" {
			fmt.Fprintf(&b, "  petname: %s\n", q(c.Tahoe.Petname))
		}
	}
	if c.Rules != (Rules{}) {
		r, _ := yaml.Marshal(struct {
			Rules Rules `yaml:"rules"`
		}{c.Rules})
		fmt.Fprintf(&b, "\n# Protocol rules; see docs/config.md.\n%s", r)
	}
	return b.Bytes()
}
