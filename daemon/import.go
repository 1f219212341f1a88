package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/nodedir"
	"grapevine/peerbook"
)

// MaxImport bounds the records one import may carry.
const MaxImport = 4096

// Import admits records into the node at dir: through the running daemon's
// status endpoint if one holds the directory, else straight into its peer
// book. It returns the core's decision on each record.
func Import(ctx context.Context, dir string, recs []announce.Signed, now time.Time) ([]core.Event, error) {
	if len(recs) > MaxImport {
		return nil, fmt.Errorf("%d records, limit %d per import", len(recs), MaxImport)
	}
	unlock, err := Lock(dir)
	var le *LockedError
	if errors.As(err, &le) {
		return importOnline(ctx, dir, recs, le)
	}
	if err != nil {
		return nil, err
	}
	defer unlock()
	nd, err := nodedir.Open(dir)
	if err != nil {
		return nil, err
	}
	cfg, err := nd.Config.CoreConfig()
	if err != nil {
		return nil, err
	}
	var pol *policy
	if nd.Config.Grid != "" {
		if pol, err = loadPolicy(dir, announce.NodeID(nd.Config.Grid)); err != nil {
			return nil, err
		}
		cfg.Membership = pol
	}
	book, err := peerbook.OpenSQLite(filepath.Join(dir, BookFile))
	if err != nil {
		return nil, err
	}
	defer book.Close()
	st, err := book.Load()
	if err != nil {
		return nil, err
	}
	st.Counter = max(st.Counter, nd.Counter())
	// Own records are re-signed here only if an imported one forces the
	// counter on; the daemon publishes at start anyway.
	n, err := core.New(cfg, core.Identity{Key: nd.Key, Services: nd.Config.Templates(nd.ID())}, st, rand.New(rand.NewPCG(uint64(now.UnixNano()), 1)))
	if err != nil {
		return nil, err
	}
	n.Step(now, core.Import{Recs: recs})
	r := n.Ready()
	if err := persist(nd, book, n, r); err != nil {
		return nil, err
	}
	if err := pol.save(dir); err != nil {
		return nil, err
	}
	return r.Events, nil
}

func importOnline(ctx context.Context, dir string, recs []announce.Signed, le *LockedError) ([]core.Event, error) {
	b, err := os.ReadFile(filepath.Join(dir, RunDir, StatusFile))
	if err != nil {
		return nil, fmt.Errorf("%w; it has no status endpoint to import through (set status in grapevine.yaml)", le)
	}
	url := strings.TrimSpace(string(b)) + "/v1/import"
	body, _ := json.Marshal(recs)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	Authorize(req, dir)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("importing through the running daemon: %w", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("importing through the running daemon: %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	var evs []core.Event
	if err := json.Unmarshal(data, &evs); err != nil {
		return nil, fmt.Errorf("importing through the running daemon: bad reply: %w", err)
	}
	return evs, nil
}
