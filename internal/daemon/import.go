package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"time"

	"grapevine/announce"
	"grapevine/client"
	"grapevine/client/apitype"
	"grapevine/core"
	"grapevine/internal/nodedir"
	"grapevine/internal/peerbook"
	"grapevine/wire"
)

// MaxImport bounds the records one import may carry.
const MaxImport = apitype.MaxImport

// MaxImportBody bounds the body of one POST /v1/import. Import sends a
// larger one in several requests.
const MaxImportBody = apitype.MaxImportBody

// maxRecordJSON bounds one record of an import as JSON: a msg of
// announce.MaxMsgSize bytes all escaped as \u00XX, with room for the
// signature and key. Only it is buffered while a body is decoded.
const maxRecordJSON = 6*announce.MaxMsgSize + 4<<10

// ImportLimitError refuses an import over MaxImport records, a request
// body over MaxImportBody bytes or a record over maxRecordJSON, before the
// rest of the body is read. The status endpoint answers it with 413.
type ImportLimitError struct {
	What  string // "records", "bytes" (the body) or "record-bytes"
	Limit int64
}

func (e *ImportLimitError) Error() string {
	switch e.What {
	case "records":
		return fmt.Sprintf("import refused: more than %d records; the limit is %d per import", e.Limit, e.Limit)
	case "record-bytes":
		return fmt.Sprintf("import refused: a record is over %d bytes of JSON (%d KiB), the limit per record", e.Limit, e.Limit>>10)
	}
	return fmt.Sprintf("import refused: the body is over %d bytes (%d MiB), the limit per request; send fewer records at a time", e.Limit, e.Limit>>20)
}

// Unwrap makes the status endpoint answer it with 413.
func (e *ImportLimitError) Unwrap() error { return apitype.ErrImportLimit }

// decodeImport reads a JSON array of signed records one at a time,
// refusing with an *ImportLimitError the array at its record MaxImport+1,
// a record over maxRecordJSON and a body over the http.MaxBytesReader
// limit; other bad input with a 400.
func decodeImport(r io.Reader) ([]announce.Signed, error) {
	bad := func(err error) error {
		var mb *http.MaxBytesError
		switch {
		case errors.As(err, &mb):
			return &ImportLimitError{What: "bytes", Limit: mb.Limit}
		case errors.Is(err, errRecordTooLarge):
			return &ImportLimitError{What: "record-bytes", Limit: maxRecordJSON}
		}
		return errorf(apitype.ErrBadRequest, "want a JSON array of {msg, sig, key}: %v", err)
	}
	br := &budgetReader{r: r}
	dec := json.NewDecoder(br)
	br.left = maxRecordJSON
	tok, err := dec.Token()
	if err != nil {
		return nil, bad(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, bad(fmt.Errorf("the body starts with %v", tok))
	}
	var recs []announce.Signed
	for br.left = maxRecordJSON; dec.More(); br.left = maxRecordJSON {
		if len(recs) == MaxImport {
			return nil, &ImportLimitError{What: "records", Limit: MaxImport}
		}
		var s announce.Signed
		br.left = maxRecordJSON
		if err := dec.Decode(&s); err != nil {
			return nil, bad(fmt.Errorf("record %d: %w", len(recs)+1, err))
		}
		recs = append(recs, s)
	}
	if _, err := dec.Token(); err != nil { // the closing ]
		return nil, bad(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad(fmt.Errorf("data after the array (%v)", err))
	}
	return recs, nil
}

var errRecordTooLarge = errors.New("record too large")

// budgetReader reads at most left bytes, then fails: decodeImport resets
// it before each record, so that one record cannot make the decoder
// buffer more than maxRecordJSON.
type budgetReader struct {
	r    io.Reader
	left int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errRecordTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

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
	cfg.MsgSize, cfg.ItemSize = wire.Size, wire.ItemSize
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

// importOnline imports through the status endpoint of the daemon that
// holds dir, with its API token.
func importOnline(ctx context.Context, dir string, recs []announce.Signed, le *LockedError) ([]core.Event, error) {
	c, err := client.ForDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w; it has no status endpoint to import through (set status in grapevine.yaml)", le)
	}
	evs, err := c.Import(ctx, recs)
	if err != nil {
		var ae *client.Error
		if errors.As(err, &ae) {
			err = fmt.Errorf("%s: %w", ae.Status, err)
		}
		return nil, fmt.Errorf("importing through the running daemon: %w", err)
	}
	return evs, nil
}
