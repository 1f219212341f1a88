package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"grapevine/announce"
	"grapevine/client"
	"grapevine/client/apitype"
	"grapevine/internal/atomicfile"
	"grapevine/internal/nodedir"
	"grapevine/internal/tahoe"
)

type tahoeExportOpts struct {
	out      *string
	watch    *bool
	interval *time.Duration
}

func tahoeExportFlags(fs *flag.FlagSet) tahoeExportOpts {
	return tahoeExportOpts{
		out:      fs.String("out", "", "write to `FILE` atomically (temporary file and rename); default standard output"),
		watch:    fs.Bool("watch", false, "keep running and rewrite FILE whenever the servers change, until SIGINT or SIGTERM (needs --out)"),
		interval: fs.Duration("interval", 3*time.Second, "with --watch, ask the node every `DURATION`"),
	}
}

func runTahoeExport(env *Env, c *command, o tahoeExportOpts, pos []string) int {
	if len(pos) != 1 {
		return usageError(env, c, "want exactly one DIR, got %d arguments", len(pos))
	}
	if *o.watch && *o.out == "" {
		return usageError(env, c, "--watch rewrites a file: give it with --out")
	}
	if *o.interval < 100*time.Millisecond {
		return usageError(env, c, "--interval %v: at least 100ms", *o.interval)
	}
	dir := pos[0]
	if _, err := os.Stat(filepath.Join(dir, nodedir.ConfigFile)); err != nil {
		return fail(env, c, fmt.Errorf("%s is not a node directory: %w", dir, err))
	}
	if !*o.watch {
		ex, err := tahoeExportOnce(dir)
		if err != nil {
			return fail(env, c, err)
		}
		if *o.out == "" {
			env.Stdout.Write(ex.data)
		} else if err := atomicfile.WriteFile(*o.out, ex.data, 0o644); err != nil {
			return fail(env, c, err)
		}
		ex.report(env, *o.out)
		return exitOK
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	last, _ := os.ReadFile(*o.out)
	var prev *tahoeExport
	lastErr := ""
	for {
		ex, err := tahoeExportOnce(dir)
		switch {
		case err != nil:
			if err.Error() != lastErr {
				fmt.Fprintf(env.Stderr, "%s %s; %s is left as it is\n", tahoeStamp(), remote(err.Error(), lineRunes), *o.out)
			}
			lastErr = err.Error()
		case !bytes.Equal(ex.data, last):
			if err := atomicfile.WriteFile(*o.out, ex.data, 0o644); err != nil {
				return fail(env, c, err)
			}
			last, lastErr = ex.data, ""
			fmt.Fprintf(env.Stderr, "%s wrote %d live storage servers to %s%s\n", tahoeStamp(), len(ex.servers), *o.out, ex.diff(prev))
			for _, d := range ex.newDuplicates(prev) {
				fmt.Fprintf(env.Stderr, "%s not written, duplicate: %s\n", tahoeStamp(), remote(d.String(), lineRunes))
			}
			prev = ex
		default:
			if lastErr != "" {
				fmt.Fprintf(env.Stderr, "%s the node answers again; %s is up to date\n", tahoeStamp(), *o.out)
			}
			lastErr = ""
			if prev == nil {
				prev = ex
				fmt.Fprintf(env.Stderr, "%s %s is up to date: %d live storage servers\n", tahoeStamp(), *o.out, len(ex.servers))
				for _, d := range ex.duplicates {
					fmt.Fprintf(env.Stderr, "%s not written, duplicate: %s\n", tahoeStamp(), remote(d.String(), lineRunes))
				}
			}
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(env.Stderr, "%s stopped\n", tahoeStamp())
			return exitOK
		case <-time.After(*o.interval):
		}
	}
}

func tahoeStamp() string { return time.Now().Format("15:04:05") }

// tahoeExport is one servers.yaml and what went into it.
type tahoeExport struct {
	data       []byte
	servers    []tahoe.Server
	unverified []apitype.TahoeHint
	skipped    []string // held records that failed verification
	// duplicates are the records left out because another one names the
	// same storage endpoint (tahoe.OneIDPerEndpoint).
	duplicates []tahoe.Dropped
}

// tahoeExportOnce asks the node for its storage servers and renders them.
func tahoeExportOnce(dir string) (*tahoeExport, error) {
	v, err := callNode(dir, (*client.Client).TahoeServers)
	if err != nil {
		return nil, err
	}
	return tahoeExportOf(v, dir)
}

// tahoeExportOf renders the servers.yaml of what the node at dir answered:
// the live servers whose records verify, one per storage endpoint.
func tahoeExportOf(v apitype.TahoeView, dir string) (*tahoeExport, error) {
	ex := &tahoeExport{}
	var candidates []tahoe.Candidate
	for _, s := range v.Servers {
		if !s.Live {
			continue
		}
		a, err := announce.Verify(s.Record)
		if err == nil && (string(a.ID) != s.ID || a.ServiceName != tahoe.Service) {
			err = errors.New("record is not this server's storage announcement")
		}
		var ann tahoe.Ann
		if err == nil {
			ann, err = tahoe.AnnOf(a)
		}
		if err != nil {
			ex.skipped = append(ex.skipped, fmt.Sprintf("%s: %v", s.ID, err))
			continue
		}
		candidates = append(candidates, tahoe.CandidateOf(a, ann))
	}
	// A Grapevine node beside a Tahoe server may announce the same FURL
	// under its own key: Tahoe must not see one server under two IDs.
	ex.servers, ex.duplicates = tahoe.OneIDPerEndpoint(candidates)
	var footer []string
	for _, d := range ex.duplicates {
		footer = append(footer, "not listed, duplicate: "+d.String())
	}
	for _, h := range v.Hints {
		if h.State == tahoe.Unverified {
			ex.unverified = append(ex.unverified, h)
			footer = append(footer, fmt.Sprintf("not listed, %s: %s %s", h.Label, h.Key, tahoe.Display(h.Ann.Nickname)))
		}
	}
	header := []string{
		"Tahoe-LAFS static storage servers, written by 'grapevine tahoe export'",
		"from the verified signed announcements of the live storage servers",
		"known to the Grapevine node " + v.ID + " (" + dir + ").",
		"Tahoe reads it as NODE/private/servers.yaml.",
	}
	var err error
	if ex.data, err = tahoe.EncodeServers(ex.servers, header, footer); err != nil {
		return nil, err
	}
	return ex, nil
}

func (ex *tahoeExport) report(env *Env, out string) {
	where := out
	if where == "" {
		where = "standard output"
	}
	fmt.Fprintf(env.Stderr, "wrote %d live storage servers to %s\n", len(ex.servers), where)
	for _, s := range ex.servers {
		fmt.Fprintf(env.Stderr, "  %s %s\n", remote(string(s.Key), cellRunes), remote(tahoe.Display(s.Ann.Nickname), cellRunes))
	}
	for _, s := range ex.skipped {
		fmt.Fprintf(env.Stderr, "skipped %s\n", remote(s, lineRunes))
	}
	for _, d := range ex.duplicates {
		fmt.Fprintf(env.Stderr, "not written, duplicate: %s\n", remote(d.String(), lineRunes))
	}
	for _, h := range ex.unverified {
		fmt.Fprintf(env.Stderr, "not written, %s: %s %s\n", h.Label, remote(string(h.Key), cellRunes), remote(tahoe.Display(h.Ann.Nickname), cellRunes))
	}
}

// diff names the servers added and removed since prev.
func (ex *tahoeExport) diff(prev *tahoeExport) string {
	if prev == nil {
		return ""
	}
	had := map[announce.NodeID]bool{}
	for _, s := range prev.servers {
		had[s.Key] = true
	}
	var parts []string
	for _, s := range ex.servers {
		if !had[s.Key] {
			parts = append(parts, "+"+remote(tahoe.Display(s.Ann.Nickname), cellRunes)+" "+s.Key.Short())
		}
		delete(had, s.Key)
	}
	for _, s := range prev.servers {
		if had[s.Key] {
			parts = append(parts, "-"+remote(tahoe.Display(s.Ann.Nickname), cellRunes)+" "+s.Key.Short())
		}
	}
	if len(parts) == 0 {
		return " (details changed)"
	}
	return ": " + strings.Join(parts, ", ")
}

// newDuplicates are the duplicates ex drops that prev did not drop for the
// same reason (all of them if prev is nil).
func (ex *tahoeExport) newDuplicates(prev *tahoeExport) []tahoe.Dropped {
	if prev == nil {
		return ex.duplicates
	}
	var out []tahoe.Dropped
	for _, d := range ex.duplicates {
		if !slices.ContainsFunc(prev.duplicates, func(p tahoe.Dropped) bool { return p.String() == d.String() }) {
			out = append(out, d)
		}
	}
	return out
}
