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

// MaxImportBody bounds the body of one POST /v1/import: 16 MiB holds 4096
// records of 4 KiB (a Tahoe announcement is about 1 KiB). Import sends a
// larger one in several requests.
const MaxImportBody = 16 << 20

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

// As makes the status endpoint answer it with 413.
func (e *ImportLimitError) As(target any) bool {
	if ae, ok := target.(**apiError); ok {
		*ae = &apiError{http.StatusRequestEntityTooLarge, e.Error()}
		return true
	}
	return false
}

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
		return errorf(http.StatusBadRequest, "want a JSON array of {msg, sig, key}: %v", err)
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
	var evs []core.Event
	for done := 0; done < len(recs); {
		body, n := importBatch(recs[done:])
		got, err := postImport(ctx, dir, url, body)
		if err != nil {
			if done > 0 {
				err = fmt.Errorf("%w (the first %d records were imported)", err, done)
			}
			return nil, err
		}
		evs = append(evs, got...)
		done += n
	}
	return evs, nil
}

// importBatch encodes the first records of recs whose JSON fits in
// MaxImportBody (at least one), and says how many.
func importBatch(recs []announce.Signed) ([]byte, int) {
	body := []byte{'['}
	n := 0
	for _, r := range recs {
		b, _ := json.Marshal(r)
		if n > 0 && len(body)+len(b)+2 > MaxImportBody {
			break
		}
		if n > 0 {
			body = append(body, ',')
		}
		body = append(body, b...)
		n++
	}
	return append(body, ']'), n
}

func postImport(ctx context.Context, dir, url string, body []byte) ([]core.Event, error) {
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
