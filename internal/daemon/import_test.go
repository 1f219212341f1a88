package daemon

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"grapevine/announce"
	"grapevine/internal/nodedir"
	"grapevine/internal/peerbook"
	"grapevine/internal/transport"
)

// endlessRecords is a JSON array of records with a msg of size bytes
// that never ends; read counts the bytes taken from it.
type endlessRecords struct {
	rec     string
	started bool
	read    int64
	pending string
}

func newEndless(size int) *endlessRecords {
	return &endlessRecords{rec: `{"msg":"` + strings.Repeat("m", size) + `","sig":"s","key":"k"},`}
}

func (e *endlessRecords) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if e.pending == "" {
			e.pending = e.rec
			if !e.started {
				e.pending, e.started = "["+e.pending, true
			}
		}
		c := copy(p[n:], e.pending)
		e.pending = e.pending[c:]
		n += c
	}
	e.read += int64(n)
	return n, nil
}

// hugeRecord is one record whose msg never ends.
type hugeRecord struct {
	read int64
}

func (h *hugeRecord) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	if h.read == 0 {
		copy(p, `[{"msg":"`)
	}
	h.read += int64(len(p))
	return len(p), nil
}

// The tester's 64 MB import: the limits hold while the body streams, so
// an endless body is refused after MaxImport records, MaxImportBody bytes
// or one record over maxRecordJSON with 413 and a message naming the
// limit, having read and allocated little beyond that.
func TestImportLimitsStream(t *testing.T) {
	n := apiNode(t, "imp", "test", nodedir.Config{})
	d, _ := run(t, Options{Dir: n.Dir, Transport: transport.NewMemNetwork().Endpoint(n.Key), Book: peerbook.NewMemory()})
	h := d.handler()
	tok := token(t, d)
	post := func(body io.Reader) (*httptest.ResponseRecorder, uint64) {
		req := httptest.NewRequest("POST", "/v1/import", body)
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		h.ServeHTTP(w, req)
		runtime.ReadMemStats(&after)
		return w, after.TotalAlloc - before.TotalAlloc
	}

	many := newEndless(1)
	w, alloc := post(many)
	t.Logf("endless small records: %d %q after %d bytes read, %d KiB allocated", w.Code, strings.TrimSpace(w.Body.String()), many.read, alloc>>10)
	if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "more than 4096 records") {
		t.Errorf("endless records: %d %q, want 413 naming the limit of 4096", w.Code, w.Body.String())
	}
	perRecord := int64(len(`{"msg":"m","sig":"s","key":"k"},`))
	if limit := (MaxImport+1)*perRecord + 64<<10; many.read > limit {
		t.Errorf("read %d bytes before refusing, want at most %d (4097 records)", many.read, limit)
	}
	if alloc > 16<<20 {
		t.Errorf("allocated %d MiB refusing 4097 small records", alloc>>20)
	}

	big := newEndless(16 << 10)
	w, alloc = post(big)
	t.Logf("endless 16 KiB records: %d %q after %d bytes read, %d MiB allocated", w.Code, strings.TrimSpace(w.Body.String()), big.read, alloc>>20)
	if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "16 MiB") {
		t.Errorf("endless big records: %d %q, want 413 naming the limit of 16 MiB", w.Code, w.Body.String())
	}
	if big.read > MaxImportBody+1 {
		t.Errorf("read %d bytes before refusing, want at most the %d-byte limit", big.read, MaxImportBody)
	}
	if alloc > 2*MaxImportBody {
		t.Errorf("allocated %d MiB refusing a body over %d MiB", alloc>>20, MaxImportBody>>20)
	}

	huge := &hugeRecord{}
	w, alloc = post(huge)
	t.Logf("one endless record: %d %q after %d bytes read, %d KiB allocated", w.Code, strings.TrimSpace(w.Body.String()), huge.read, alloc>>10)
	if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "limit per record") {
		t.Errorf("endless record: %d %q, want 413 naming the limit per record", w.Code, w.Body.String())
	}
	if huge.read > maxRecordJSON+4<<10 {
		t.Errorf("read %d bytes before refusing, want at most the %d-byte record limit and a little", huge.read, maxRecordJSON)
	}
	if alloc > 8*maxRecordJSON {
		t.Errorf("allocated %d KiB refusing a record over %d KiB", alloc>>10, maxRecordJSON>>10)
	}

	_, err := decodeImport(strings.NewReader(`[` + strings.Repeat(`{"msg":"m","sig":"s","key":"k"},`, MaxImport) + `{}]`))
	var le *ImportLimitError
	if !errors.As(err, &le) || le.What != "records" || le.Limit != MaxImport {
		t.Errorf("decodeImport of %d records: %v, want an *ImportLimitError for records", MaxImport+1, err)
	}
	recs, err := decodeImport(strings.NewReader(`[{"msg":"m","sig":"s","key":"k"}]`))
	if err != nil || len(recs) != 1 || recs[0] != (announce.Signed{Msg: "m", Sig: "s", Key: "k"}) {
		t.Errorf("decodeImport of one record: %v %v", recs, err)
	}
	for _, bad := range []string{`{}`, `[1]`, `[{}] x`, `[{}`, ``} {
		if _, err := decodeImport(strings.NewReader(bad)); err == nil || errors.As(err, &le) {
			t.Errorf("decodeImport(%q): %v, want a 400", bad, err)
		}
	}
}
