package cli

import (
	"flag"
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"grapevine/daemon"
	"grapevine/nodedir"
)

func init() {
	register(&command{
		name:    "create-node",
		args:    "[--nickname N] [--service NAME=URL ...] [--listen HOST:PORT] [--location HOST:PORT ...] [--bootstrap LOCATOR ...] [--status HOST:PORT] DIR",
		summary: "Create a node directory: key pair, configuration, announcement counter.",
		run:     runCreateNode,
	})
}

func runCreateNode(env *Env, args []string) int {
	c := commands["create-node"]
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	nickname := fs.String("nickname", "", "nickname shown to other operators")
	listen := fs.String("listen", nodedir.DefaultListen, "host:port the gossip endpoint listens on")
	status := fs.String("status", "", "host:port of the local status page and JSON API (default: off)")
	var services, locations, bootstrap listFlag
	fs.Var(&services, "service", "announce a service: NAME=URL, e.g. storage=pb://... (a URL with #v= is a NURL; repeatable)")
	fs.Var(&locations, "location", "host:port others dial to reach this node (repeatable; default: the listen address if it names a host)")
	fs.Var(&bootstrap, "bootstrap", "gv://v0-KEY@HOST:PORT locator of a node to dial at start (repeatable)")
	pos, code, ok := parseFlags(env, c, fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(env, c, "want exactly one DIR, got %d arguments", len(pos))
	}
	cfg := nodedir.Config{Nickname: *nickname, Listen: *listen, Location: locations, Bootstrap: bootstrap, Status: *status}
	if len(cfg.Location) == 0 {
		loc, ok := nodedir.DefaultLocation(cfg.Listen)
		if !ok && !portZero(cfg.Listen) {
			return usageError(env, c, "--listen %s does not say how others reach this node: give --location HOST:PORT", cfg.Listen)
		}
		if ok {
			cfg.Location = []string{loc}
		}
	}
	for _, s := range services {
		name, url, ok := strings.Cut(s, "=")
		if !ok || name == "" || url == "" {
			return usageError(env, c, "--service %q: want NAME=URL", s)
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
			return usageError(env, c, "--service %s: two FURLs for one service", name)
		default:
			svc.FURL = url
		}
	}
	n, err := nodedir.Create(pos[0], nodedir.Options{Config: cfg})
	if err != nil {
		return fail(env, c, err)
	}
	fmt.Fprintf(env.Stdout, "Created node %s in %s\n", n.ID(), n.Dir)
	for _, l := range n.Config.Locators(n.ID()) {
		fmt.Fprintf(env.Stdout, "Locator: %s\n", l)
	}
	if len(n.Config.Location) == 0 {
		fmt.Fprintf(env.Stdout, "Locator: chosen when the node runs (listen port 0); see %s\n",
			filepath.Join(n.Dir, daemon.RunDir, daemon.LocatorsFile))
	}
	return exitOK
}

// portZero: a listen address on a named host whose port the system picks;
// the node's locator is then known only once it runs.
func portZero(listen string) bool {
	host, port, err := net.SplitHostPort(listen)
	ip := net.ParseIP(host)
	return err == nil && port == "0" && host != "" && (ip == nil || !ip.IsUnspecified())
}
