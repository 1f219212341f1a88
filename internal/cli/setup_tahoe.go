package cli

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"grapevine/internal/atomicfile"
	"grapevine/internal/daemon"
	"grapevine/internal/nodedir"
)

// IntroducersBackup is the suffix of the copy tahoe setup keeps of the
// Tahoe node's introducers.yaml.
const IntroducersBackup = ".before-grapevine"

// tahoeIntroducers is Tahoe's private/introducers.yaml.
type tahoeIntroducers struct {
	Introducers map[string]struct {
		FURL string `yaml:"furl"`
	} `yaml:"introducers"`
}

type tahoeSetupOpts struct {
	node                 *nodeFlags
	introListen, petname *string
	replace              *bool
}

func tahoeSetupFlags(fs *flag.FlagSet) tahoeSetupOpts {
	return tahoeSetupOpts{
		node:        addNodeFlags(fs),
		introListen: fs.String("introducer-listen", "", "the `HOST:PORT` of the Foolscap introducer endpoint (default: 127.0.0.1 and a free port, fixed from now on)"),
		petname:     fs.String("petname", nodedir.DefaultTahoePetname, "this introducer's `NAME` in the Tahoe node's private/introducers.yaml"),
		replace:     fs.Bool("replace-introducers", false, "drop the Tahoe node's other introducers (default: keep them, so both run side by side)"),
	}
}

func runTahoeSetup(env *Env, c *command, o tahoeSetupOpts, pos []string) int {
	if len(pos) != 2 {
		return usageError(env, c, "want TAHOE-DIR and DIR, got %d arguments", len(pos))
	}
	tahoeDir, err := filepath.Abs(pos[0])
	if err != nil {
		return fail(env, c, err)
	}
	tcfg, err := readTahoeCfg(filepath.Join(tahoeDir, "tahoe.cfg"))
	if err != nil {
		return fail(env, c, fmt.Errorf("%s is not a Tahoe-LAFS node directory: %w", tahoeDir, err))
	}
	introPath := filepath.Join(tahoeDir, "private", "introducers.yaml")
	old, err := readIntroducers(introPath)
	if err != nil {
		return fail(env, c, err)
	}
	cfg, err := o.node.config()
	if err != nil {
		return usageError(env, c, "%v", err)
	}
	if cfg.Nickname == "" {
		cfg.Nickname = tcfg["node.nickname"]
	}
	storage := strings.EqualFold(tcfg["storage.enabled"], "true")
	if storage && len(cfg.Services) == 0 {
		// Hosting needs a record to carry the hosts list, and clients must
		// be able to reach the host: run it as a relay.
		cfg.Role = "relay"
	}
	if *o.introListen == "" {
		port, err := freePort()
		if err != nil {
			return fail(env, c, err)
		}
		*o.introListen = net.JoinHostPort("127.0.0.1", port)
	}
	cfg.Introducer = nodedir.IntroducerConfig{Listen: *o.introListen}
	cfg.Tahoe = nodedir.TahoeConfig{NodeDir: tahoeDir}
	if *o.petname != nodedir.DefaultTahoePetname {
		cfg.Tahoe.Petname = *o.petname
	}
	if _, ok := old.Introducers[*o.petname]; ok {
		return fail(env, c, fmt.Errorf("%s already has an introducer named %q: pick another --petname, or undo the earlier setup first", introPath, *o.petname))
	}
	n, err := nodedir.Create(pos[1], nodedir.Options{Config: cfg})
	if err != nil {
		return fail(env, c, err)
	}
	furl, err := daemon.PrepareIntroducer(n.Dir, cfg.Introducer)
	if err != nil {
		os.RemoveAll(n.Dir)
		return fail(env, c, err)
	}
	backup, err := pointTahoeAt(introPath, old, *o.petname, furl, *o.replace)
	if err != nil {
		os.RemoveAll(n.Dir)
		return fail(env, c, err)
	}

	fmt.Fprintf(env.Stdout, "Created node %s in %s beside the Tahoe node %s\n", n.ID(), n.Dir, tahoeDir)
	printLocators(env, n)
	fmt.Fprintf(env.Stdout, "Introducer FURL: %s (also in %s)\n", furl, filepath.Join(n.Dir, "private", daemon.IntroducerFURL))
	if *o.replace {
		fmt.Fprintf(env.Stdout, "Pointed %s at it, as its only introducer %q\n", introPath, *o.petname)
	} else {
		fmt.Fprintf(env.Stdout, "Added it to %s as introducer %q, beside %d other(s)\n", introPath, *o.petname, len(old.Introducers))
	}
	if storage {
		fmt.Fprintf(env.Stdout, "The Tahoe node is a storage server: this node hosts it (role relay), keeping it live on the grid while it is connected\n")
	}
	if tcfg["client.introducer.furl"] != "" {
		fmt.Fprintf(env.Stderr, "warning: %s sets [client] introducer.furl, which Tahoe-LAFS 1.20 ignores; private/introducers.yaml is what counts\n", filepath.Join(tahoeDir, "tahoe.cfg"))
	}
	fmt.Fprintf(env.Stdout, "\nNext:\n  grapevine run %s\n  restart the Tahoe node (tahoe run %s) so that it reads private/introducers.yaml\n", n.Dir, tahoeDir)
	fmt.Fprintf(env.Stdout, "To undo: stop both, then\n")
	if backup != "" {
		fmt.Fprintf(env.Stdout, "  mv %s %s\n", backup, introPath)
	} else {
		fmt.Fprintf(env.Stdout, "  rm %s\n", introPath)
	}
	fmt.Fprintf(env.Stdout, "  rm -f %s\n  rm -r %s\n", daemon.TahoeCachePath(tahoeDir, *o.petname), n.Dir)
	return exitOK
}

// readTahoeCfg reads the INI keys tahoe setup needs, as "section.key".
func readTahoeCfg(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && strings.HasSuffix(line, "]"):
			section = strings.TrimSpace(line[1 : len(line)-1])
		default:
			if k, v, ok := strings.Cut(line, "="); ok {
				out[section+"."+strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	return out, sc.Err()
}

func readIntroducers(path string) (tahoeIntroducers, error) {
	var t tahoeIntroducers
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return t, err
	}
	if err := yaml.Unmarshal(data, &t); err != nil {
		return t, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// pointTahoeAt writes introducers.yaml with this introducer added (or
// alone), after copying the old file to IntroducersBackup. It returns
// the backup's path, "" if there was no file.
func pointTahoeAt(path string, old tahoeIntroducers, petname, furl string, replace bool) (string, error) {
	backup := ""
	if data, err := os.ReadFile(path); err == nil {
		backup = path + IntroducersBackup
		if err := atomicfile.WriteNew(backup, data, 0o600); errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("%s exists: an earlier setup's backup; restore or remove it first", backup)
		} else if err != nil {
			return "", err
		}
	}
	type entry struct {
		FURL string `yaml:"furl"`
	}
	out := struct {
		Introducers map[string]entry `yaml:"introducers"`
	}{Introducers: map[string]entry{}}
	if !replace {
		for name, e := range old.Introducers {
			out.Introducers[name] = entry{e.FURL}
		}
	}
	out.Introducers[petname] = entry{furl}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return "", err
	}
	enc.Close()
	data := buf.Bytes()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		if backup != "" {
			os.Remove(backup)
		}
		return "", err
	}
	return backup, nil
}

// freePort picks a free loopback port below Linux's ephemeral range, so
// that no outgoing connection takes it while the node is stopped.
func freePort() (string, error) {
	start := int(os.Getpid()*7919) % 12000
	for i := range 12000 {
		port := fmt.Sprint(20000 + (start+i*37)%12000)
		if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port)); err == nil {
			ln.Close()
			return port, nil
		}
	}
	return "", errors.New("no free port in 20000-31999")
}
