package cli

import (
	"flag"
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"grapevine/internal/daemon"
	"grapevine/internal/nodedir"
)

// nodeFlags are the configuration flags node create, join and tahoe
// setup share.
type nodeFlags struct {
	nickname, listen, status     *string
	services, locations, bootstr listFlag
	relay                        *bool
}

func addNodeFlags(fs *flag.FlagSet) *nodeFlags {
	f := &nodeFlags{
		nickname: fs.String("nickname", "", "the `NAME` shown to other operators"),
		listen:   fs.String("listen", nodedir.DefaultListen, "the `HOST:PORT` the gossip endpoint listens on"),
		status:   fs.String("status", "127.0.0.1:0", "the `HOST:PORT` of the local status endpoint; the chosen address is written to DIR/run/status; \"\" turns it off"),
		relay:    fs.Bool("relay", false, "a relay: a grid-control-only node that announces no service and connects to servers"),
	}
	fs.Var(&f.services, "service", "announce a service: `NAME=URL`, e.g. storage=pb://... (a URL with #v= is a NURL; repeatable)")
	fs.Var(&f.locations, "location", "a `HOST:PORT` others dial to reach this node (repeatable; default: the listen address if it names a host)")
	fs.Var(&f.bootstr, "bootstrap", "the gv://v0-KEY@HOST:PORT `LOCATOR` of a node to dial at start (repeatable)")
	return f
}

// config builds the configuration, or says what is wrong with the flags.
func (f *nodeFlags) config() (nodedir.Config, error) {
	cfg := nodedir.Config{Nickname: *f.nickname, Listen: *f.listen, Location: f.locations, Bootstrap: f.bootstr, Status: *f.status}
	if *f.relay {
		if len(f.services) > 0 {
			return cfg, fmt.Errorf("--relay announces no service; drop --service")
		}
		cfg.Role = "relay"
	}
	if len(cfg.Location) == 0 {
		loc, ok := nodedir.DefaultLocation(cfg.Listen)
		if !ok && !portZero(cfg.Listen) {
			return cfg, fmt.Errorf("--listen %s does not say how others reach this node: give --location HOST:PORT", cfg.Listen)
		}
		if ok {
			cfg.Location = []string{loc}
		}
	}
	for _, s := range f.services {
		name, url, ok := strings.Cut(s, "=")
		if !ok || name == "" || url == "" {
			return cfg, fmt.Errorf("--service %q: want NAME=URL", s)
		}
		var svc *nodedir.ServiceConfig
		for i := range cfg.Services {
			if cfg.Services[i].Name == name {
				svc = &cfg.Services[i]
			}
		}
		if svc == nil {
			cfg.Services = append(cfg.Services, nodedir.ServiceConfig{Name: name})
			svc = &cfg.Services[len(cfg.Services)-1]
		}
		switch {
		case strings.Contains(url, "#v="):
			svc.NURLs = append(svc.NURLs, url)
		case svc.FURL != "":
			return cfg, fmt.Errorf("--service %s: two FURLs for one service", name)
		default:
			svc.FURL = url
		}
	}
	return cfg, nil
}

type nodeCreateOpts struct {
	node  *nodeFlags
	found *bool
}

func nodeCreateFlags(fs *flag.FlagSet) nodeCreateOpts {
	return nodeCreateOpts{
		node:  addNodeFlags(fs),
		found: fs.Bool("found-grid", false, "found a closed grid: this node's ID becomes the grid ID, and only members it (or its members) invite are admitted"),
	}
}

func runNodeCreate(env *Env, c *command, o nodeCreateOpts, pos []string) int {
	if len(pos) != 1 {
		return usageError(env, c, "want exactly one DIR, got %d arguments", len(pos))
	}
	cfg, err := o.node.config()
	if err != nil {
		return usageError(env, c, "%v", err)
	}
	n, err := nodedir.Create(pos[0], nodedir.Options{Config: cfg})
	if err != nil {
		return fail(env, c, err)
	}
	if *o.found {
		cfg.Grid = string(n.ID())
		if err := n.SaveConfig(&cfg); err != nil {
			return fail(env, c, err)
		}
	}
	fmt.Fprintf(env.Stdout, "Created node %s in %s\n", n.ID(), n.Dir)
	if *o.found {
		fmt.Fprintf(env.Stdout, "Founded grid %s; invite others with 'grapevine invite %s' while it runs\n", n.ID(), n.Dir)
	}
	printLocators(env, n)
	return exitOK
}

func printLocators(env *Env, n *nodedir.Node) {
	for _, l := range n.Config.Locators(n.ID()) {
		fmt.Fprintf(env.Stdout, "Locator: %s\n", l)
	}
	if len(n.Config.Location) == 0 {
		fmt.Fprintf(env.Stdout, "Locator: chosen when the node runs (listen port 0); see %s\n",
			filepath.Join(n.Dir, daemon.RunDir, daemon.LocatorsFile))
	}
}

// portZero: a listen address on a named host whose port the system picks;
// the node's locator is then known only once it runs.
func portZero(listen string) bool {
	host, port, err := net.SplitHostPort(listen)
	ip := net.ParseIP(host)
	return err == nil && port == "0" && host != "" && (ip == nil || !ip.IsUnspecified())
}
