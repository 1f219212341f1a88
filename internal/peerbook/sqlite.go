package peerbook

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/records"
)

// busyTimeout is how long Open waits for another process to let go of
// the file.
var busyTimeout = 5 * time.Second

// SQLite is a Book in a SQLite file. It keeps a copy of the stored state
// in memory to work out what each Save changes.
type SQLite struct {
	path string
	mu   sync.Mutex
	db   *sql.DB
	st   map[string]*sql.Stmt
	last *state // what the file holds; nil: unknown, read it again
}

var _ Book = (*SQLite)(nil)

// OpenSQLite opens the book at path, creating it if the file does not
// exist (its directory must), and brings its schema up to date. It locks
// the file until Close. Errors wrap ErrNotPeerbook or ErrLocked, or are a
// *VersionError, or a *CorruptError for a damaged meta row.
func OpenSQLite(path string) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("peerbook: open: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("peerbook: open %s: %w", path, err)
	}
	dir := filepath.Dir(abs)
	if fi, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("peerbook: open %s: directory %s does not exist (%w)", path, dir, fs.ErrNotExist)
	} else if err != nil {
		return nil, fmt.Errorf("peerbook: open %s: %w", path, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("peerbook: open %s: %s is not a directory", path, dir)
	}
	fi, err := os.Stat(abs)
	if err == nil && fi.IsDir() {
		return nil, fmt.Errorf("peerbook: open %s: is a directory", path)
	}
	isNew := errors.Is(err, os.ErrNotExist)

	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "locking_mode(EXCLUSIVE)") // before WAL: no shared memory
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("peerbook: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	b := &SQLite{path: path, db: db}
	if err := b.init(isNew, dir); err != nil {
		db.Close()
		return nil, err
	}
	return b, nil
}

func (b *SQLite) init(isNew bool, dir string) error {
	var app, version, objects int
	err := b.db.QueryRow(`SELECT (SELECT application_id FROM pragma_application_id),
		(SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_schema)`).Scan(&app, &version, &objects)
	if err != nil {
		return b.openErr(err)
	}
	if app != appID && (app != 0 || version != 0 || objects != 0) {
		return fmt.Errorf("peerbook: open %s: %w: another program's SQLite database (application_id %#x, user_version %d, %d schema objects)",
			b.path, ErrNotPeerbook, app, version, objects)
	}
	var mode string
	if err := b.db.QueryRow(`PRAGMA journal_mode = WAL`).Scan(&mode); err != nil {
		return b.openErr(err)
	}
	if mode != "wal" {
		return fmt.Errorf("peerbook: open %s: journal mode is %q, not wal", b.path, mode)
	}
	if err := b.migrate(); err != nil {
		return err
	}
	if isNew {
		// Make the new file's directory entry durable too.
		if d, err := os.Open(dir); err == nil {
			d.Sync()
			d.Close()
		}
	}
	if err := b.prepareStmts(); err != nil {
		return b.openErr(err)
	}
	st, _, err := b.read()
	if err != nil {
		return err
	}
	b.last = st
	return nil
}

func (b *SQLite) openErr(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_NOTADB:
			return fmt.Errorf("peerbook: open %s: %w: not a SQLite database (%v)", b.path, ErrNotPeerbook, err)
		case sqlite3.SQLITE_BUSY:
			return fmt.Errorf("peerbook: open %s: %w (%v)", b.path, ErrLocked, err)
		}
	}
	return fmt.Errorf("peerbook: open %s: %w", b.path, err)
}

func (b *SQLite) migrate() error {
	tx, err := b.db.Begin()
	if err != nil {
		return b.openErr(err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return b.openErr(err)
	}
	if v > len(migrations) {
		return &VersionError{Path: b.path, File: v, Here: len(migrations)}
	}
	if v == len(migrations) {
		return nil
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.Exec(migrations[i]); err != nil {
			return fmt.Errorf("peerbook: open %s: migration to version %d: %w", b.path, i+1, err)
		}
	}
	if _, err := tx.Exec(fmt.Sprintf(`PRAGMA application_id = %d; PRAGMA user_version = %d`, appID, len(migrations))); err != nil {
		return b.openErr(err)
	}
	if err := tx.Commit(); err != nil {
		return b.openErr(err)
	}
	return nil
}

var stmts = map[string]string{
	"meta":    `UPDATE meta SET counter = max(counter, ?1), elapsed = ?2, wall = ?3 WHERE id = 1`,
	"counter": `UPDATE meta SET counter = ?1 WHERE id = 1 AND counter <= ?1`,
	"putRecord": `INSERT INTO records (id, service, msg, sig, key, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
		ON CONFLICT (id, service) DO UPDATE SET msg = ?3, sig = ?4, key = ?5, source = ?6`,
	"delRecord": `DELETE FROM records WHERE id = ?1 AND service = ?2`,
	"putTomb": `INSERT INTO tombstones (id, service, seqnum, has_seqnum, last_msg, last_sig, last_key, reason, at_e, at_wall)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
		ON CONFLICT (id, service) DO UPDATE SET seqnum = ?3, has_seqnum = ?4, last_msg = ?5, last_sig = ?6,
		last_key = ?7, reason = ?8, at_e = ?9, at_wall = ?10`,
	"delTomb": `DELETE FROM tombstones WHERE id = ?1 AND service = ?2`,
	"putPeer": `INSERT INTO peers (id, first_heard_e, first_heard_wall, last_good_e, last_connected_e,
		last_connected_wall, last_attempt_e, last_attempt_wall, last_attempt_failed, last_error, failures,
		intervals, srtt, rttvar, bytes_in, bytes_out, withdrawn)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
		ON CONFLICT (id) DO UPDATE SET first_heard_e = ?2, first_heard_wall = ?3, last_good_e = ?4,
		last_connected_e = ?5, last_connected_wall = ?6, last_attempt_e = ?7, last_attempt_wall = ?8,
		last_attempt_failed = ?9, last_error = ?10, failures = ?11, intervals = ?12, srtt = ?13,
		rttvar = ?14, bytes_in = ?15, bytes_out = ?16, withdrawn = ?17`,
	"delPeer":     `DELETE FROM peers WHERE id = ?1`,
	"delLocators": `DELETE FROM peer_locators WHERE peer_id = ?1`,
	"putLocator":  `INSERT INTO peer_locators (peer_id, pos, locator) VALUES (?1, ?2, ?3)`,
}

func (b *SQLite) prepareStmts() error {
	b.st = map[string]*sql.Stmt{}
	for name, q := range stmts {
		s, err := b.db.Prepare(q)
		if err != nil {
			return fmt.Errorf("statement %s: %w", name, err)
		}
		b.st[name] = s
	}
	return nil
}

// Load reads the stored state from the file.
func (b *SQLite) Load() (core.State, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.db == nil {
		return core.State{}, ErrClosed
	}
	st, bad, err := b.read()
	if err != nil {
		return core.State{}, err
	}
	b.last = st
	if len(bad) > 0 {
		return st.core(), &SkippedError{Rows: bad}
	}
	return st.core(), nil
}

// Save writes what differs between st and the stored state in one
// transaction.
func (b *SQLite) Save(st core.State) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(); err != nil {
		return err
	}
	next, err := prepare(st, b.last)
	if err != nil {
		return err
	}
	next.counter = max(next.counter, b.last.counter)
	if err := b.write(b.last, next); err != nil {
		b.failed()
		return fmt.Errorf("peerbook: save %s: %w", b.path, writeErr(err))
	}
	b.last = next
	return nil
}

// failed is called after a write that did not commit: the copy of the
// file is dropped (the next Save reads the file again and writes the whole
// difference), and a transaction SQLite may have left open after a failed
// COMMIT is rolled back, so the next one can begin.
func (b *SQLite) failed() {
	b.last = nil
	b.db.Exec(`ROLLBACK`) // fails harmlessly when no transaction is open
}

// writeErr makes SQLite's "database or disk is full" match ENOSPC, which
// is what it is, and say so first.
func writeErr(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL {
		return fmt.Errorf("%w (%w)", syscall.ENOSPC, err)
	}
	return err
}

// SaveCounter stores c durably, refusing a value below the stored one.
func (b *SQLite) SaveCounter(c int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(); err != nil {
		return err
	}
	if c < b.last.counter {
		return fmt.Errorf("%w: stored %d, got %d", ErrCounterBackwards, b.last.counter, c)
	}
	if c == b.last.counter {
		return nil
	}
	res, err := b.st["counter"].Exec(c)
	if err != nil {
		b.failed()
		return fmt.Errorf("peerbook: save counter %s: %w", b.path, writeErr(err))
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		b.last = nil
		return fmt.Errorf("%w: the file holds a higher counter than %d", ErrCounterBackwards, c)
	}
	b.last.counter = c
	return nil
}

// Close closes the file. Later calls fail with ErrClosed.
func (b *SQLite) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.db == nil {
		return nil
	}
	for _, s := range b.st {
		s.Close()
	}
	err := b.db.Close()
	b.db = nil
	return err
}

// ready checks the book is open and its copy of the file is current.
func (b *SQLite) ready() error {
	if b.db == nil {
		return ErrClosed
	}
	if b.last == nil {
		st, _, err := b.read()
		if err != nil {
			return err
		}
		b.last = st
	}
	return nil
}

func (b *SQLite) write(prev, next *state) (err error) {
	tx, err := b.db.Begin()
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	exec := func(name string, args ...any) {
		if err == nil {
			_, err = tx.Stmt(b.st[name]).Exec(args...)
		}
	}
	if next.counter != prev.counter || next.elapsed != prev.elapsed || next.wall != prev.wall {
		exec("meta", next.counter, int64(next.elapsed), wallValue(next.wall))
	}
	for k, r := range next.recs {
		if old, ok := prev.recs[k]; !ok || old != r {
			exec("putRecord", string(k.ID), k.Service, []byte(r.Signed.Msg), r.Signed.Sig, r.Signed.Key, string(r.Source))
		}
	}
	for k := range prev.recs {
		if _, ok := next.recs[k]; !ok {
			exec("delRecord", string(k.ID), k.Service)
		}
	}
	for k, t := range next.tombs {
		if old, ok := prev.tombs[k]; !ok || old != t {
			exec("putTomb", string(k.ID), k.Service, t.Seqnum, boolValue(t.HasSeqnum), []byte(t.Last.Msg), t.Last.Sig,
				t.Last.Key, t.Reason, int64(t.At), wallValue(t.AtWall))
		}
	}
	for k := range prev.tombs {
		if _, ok := next.tombs[k]; !ok {
			exec("delTomb", string(k.ID), k.Service)
		}
	}
	for id, h := range next.peers {
		old, ok := prev.peers[id]
		if ok && equalHistory(old, h) {
			continue
		}
		exec("putPeer", string(id), int64(h.FirstHeard), wallValue(h.FirstHeardWall), int64(h.LastGood),
			int64(h.LastConnected), wallValue(h.LastConnectedWall), int64(h.LastAttempt), wallValue(h.LastAttemptWall),
			boolValue(h.LastAttemptFailed), h.LastError, int64(h.Failures), encodeIntervals(h.Intervals),
			int64(h.SRTT), int64(h.RTTVar), int64(h.BytesIn), int64(h.BytesOut), boolValue(h.Withdrawn))
		if !ok || !slices.Equal(old.Locators, h.Locators) {
			if ok {
				exec("delLocators", string(id))
			}
			for i, l := range h.Locators {
				exec("putLocator", string(id), i, l)
			}
		}
	}
	for id := range prev.peers {
		if _, ok := next.peers[id]; !ok {
			exec("delPeer", string(id))
		}
	}
	if err != nil {
		return err
	}
	return tx.Commit()
}

func wallValue(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Format(time.RFC3339Nano)
}

func boolValue(v bool) int64 {
	if v {
		return 1
	}
	return 0
}

func encodeIntervals(iv []core.Interval) string {
	pairs := make([][2]int64, len(iv))
	for i, v := range iv {
		pairs[i] = [2]int64{int64(v.Start), int64(v.End)}
	}
	out, _ := json.Marshal(pairs) // cannot fail
	return string(out)
}

// read loads the file in one transaction. Rows that do not decode are
// returned in bad; a damaged meta row is an error.
func (b *SQLite) read() (st *state, bad []*CorruptError, err error) {
	tx, err := b.db.Begin()
	if err != nil {
		return nil, nil, fmt.Errorf("peerbook: load %s: %w", b.path, err)
	}
	defer tx.Rollback()
	st = newState(0, 0, 0)
	// each runs query and hands every row, decoded as any, to f.
	each := func(query string, f func(d *decoder)) error {
		rows, err := tx.Query(query)
		if err != nil {
			return err
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		for rows.Next() {
			d := &decoder{vals: make([]any, len(cols)), cols: cols}
			ptrs := make([]any, len(cols))
			for i := range ptrs {
				ptrs[i] = &d.vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			f(d)
		}
		return rows.Err()
	}

	metaRows, metaProblem := 0, ""
	err = each(`SELECT counter, elapsed, wall FROM meta`, func(d *decoder) {
		metaRows++
		st.counter, st.elapsed, st.wall = d.int(0), core.Elapsed(d.int(1)), d.wall(2)
		metaProblem = d.problem
	})
	if err == nil && metaRows != 1 {
		metaProblem = fmt.Sprintf("%d rows, want 1", metaRows)
	}
	if err == nil && metaProblem != "" {
		err = &CorruptError{Table: "meta", Key: "1", Problem: metaProblem}
	}
	if err != nil {
		return nil, nil, wrapLoad(b.path, err)
	}

	err = each(`SELECT id, service, msg, sig, key, source FROM records`, func(d *decoder) {
		k := records.Key{ID: announce.NodeID(d.text(0)), Service: d.text(1)}
		r := core.StoredRecord{
			Signed: announce.Signed{Msg: string(d.blob(2)), Sig: d.text(3), Key: d.text(4)},
			Source: announce.NodeID(d.text(5)),
		}
		if d.problem == "" {
			if got, err := st.key(r.Signed, nil); err != nil {
				d.fail("msg", "%v", err)
			} else if got != k {
				d.fail("msg", "a record for %s", got)
			}
		}
		if d.problem != "" {
			bad = append(bad, &CorruptError{Table: "records", Key: k.String(), Problem: d.problem})
			return
		}
		st.recs[k] = r
	})
	if err != nil {
		return nil, nil, wrapLoad(b.path, err)
	}

	err = each(`SELECT id, service, seqnum, has_seqnum, last_msg, last_sig, last_key, reason, at_e, at_wall
		FROM tombstones`, func(d *decoder) {
		t := core.StoredTombstone{Tombstone: records.Tombstone{
			Key:       records.Key{ID: announce.NodeID(d.text(0)), Service: d.text(1)},
			Seqnum:    d.int(2),
			HasSeqnum: d.bool(3),
			Last:      announce.Signed{Msg: string(d.blob(4)), Sig: d.text(5), Key: d.text(6)},
			Reason:    d.text(7),
		}, At: core.Elapsed(d.int(8)), AtWall: d.wall(9)}
		if d.problem == "" {
			if err := checkTombstone(t.Tombstone, func(s announce.Signed) (records.Key, error) { return st.key(s, nil) }); err != nil {
				d.fail("last_msg", "%v", err)
			}
		}
		if d.problem != "" {
			bad = append(bad, &CorruptError{Table: "tombstones", Key: t.Key.String(), Problem: d.problem})
			return
		}
		st.tombs[t.Key] = t
	})
	if err != nil {
		return nil, nil, wrapLoad(b.path, err)
	}

	err = each(`SELECT id, first_heard_e, first_heard_wall, last_good_e, last_connected_e, last_connected_wall,
		last_attempt_e, last_attempt_wall, last_attempt_failed, last_error, failures, intervals, srtt, rttvar,
		bytes_in, bytes_out, withdrawn FROM peers`, func(d *decoder) {
		h := core.History{
			ID:                announce.NodeID(d.text(0)),
			FirstHeard:        core.Elapsed(d.int(1)),
			FirstHeardWall:    d.wall(2),
			LastGood:          core.Elapsed(d.int(3)),
			LastConnected:     core.Elapsed(d.int(4)),
			LastConnectedWall: d.wall(5),
			LastAttempt:       core.Elapsed(d.int(6)),
			LastAttemptWall:   d.wall(7),
			LastAttemptFailed: d.bool(8),
			LastError:         d.text(9),
			Failures:          int(d.int(10)),
			Intervals:         d.intervals(11),
			SRTT:              time.Duration(d.int(12)),
			RTTVar:            time.Duration(d.int(13)),
			BytesIn:           uint64(d.int(14)),
			BytesOut:          uint64(d.int(15)),
			Withdrawn:         d.bool(16),
		}
		if d.problem != "" {
			bad = append(bad, &CorruptError{Table: "peers", Key: string(h.ID), Problem: d.problem})
			return
		}
		st.peers[h.ID] = h
	})
	if err != nil {
		return nil, nil, wrapLoad(b.path, err)
	}

	broken := map[announce.NodeID]bool{}
	err = each(`SELECT peer_id, pos, locator FROM peer_locators ORDER BY peer_id, pos`, func(d *decoder) {
		id, pos, loc := announce.NodeID(d.text(0)), d.int(1), d.text(2)
		h, ok := st.peers[id]
		if !ok || broken[id] {
			return // the peer's own row is damaged and reported
		}
		if d.problem == "" && pos != int64(len(h.Locators)) {
			d.fail("pos", "%d, want %d", pos, len(h.Locators))
		}
		if d.problem != "" {
			broken[id] = true
			delete(st.peers, id)
			bad = append(bad, &CorruptError{Table: "peer_locators", Key: fmt.Sprintf("%s/%d", id, pos), Problem: d.problem})
			return
		}
		h.Locators = append(h.Locators, loc)
		st.peers[id] = h
	})
	if err != nil {
		return nil, nil, wrapLoad(b.path, err)
	}
	return st, bad, nil
}

func wrapLoad(path string, err error) error {
	var ce *CorruptError
	if errors.As(err, &ce) {
		return err
	}
	return fmt.Errorf("peerbook: load %s: %w", path, err)
}

// decoder reads one row's columns, remembering the first problem.
type decoder struct {
	vals    []any
	cols    []string
	problem string
}

func (d *decoder) fail(col, format string, args ...any) {
	if d.problem == "" {
		d.problem = col + ": " + fmt.Sprintf(format, args...)
	}
}

func (d *decoder) text(i int) string {
	s, ok := d.vals[i].(string)
	if !ok {
		d.fail(d.cols[i], "want text, have %T", d.vals[i])
	}
	return s
}

func (d *decoder) blob(i int) []byte {
	switch v := d.vals[i].(type) {
	case []byte:
		return v
	case nil:
		return nil // SQLite may return an empty blob as NULL
	}
	d.fail(d.cols[i], "want a blob, have %T", d.vals[i])
	return nil
}

func (d *decoder) int(i int) int64 {
	n, ok := d.vals[i].(int64)
	if !ok {
		d.fail(d.cols[i], "want an integer, have %T", d.vals[i])
	}
	return n
}

func (d *decoder) bool(i int) bool {
	n := d.int(i)
	if n != 0 && n != 1 {
		d.fail(d.cols[i], "%d is not 0 or 1", n)
	}
	return n == 1
}

func (d *decoder) wall(i int) time.Time {
	if d.vals[i] == nil {
		return time.Time{}
	}
	s := d.text(i)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		d.fail(d.cols[i], "%v", err)
		return time.Time{}
	}
	if t, err = canonTime(t); err != nil {
		d.fail(d.cols[i], "%v", err)
	}
	return t
}

func (d *decoder) intervals(i int) []core.Interval {
	var pairs [][]int64
	if err := json.Unmarshal([]byte(d.text(i)), &pairs); err != nil {
		d.fail(d.cols[i], "%v", err)
		return nil
	}
	var out []core.Interval
	for _, p := range pairs {
		if len(p) != 2 {
			d.fail(d.cols[i], "an interval of %d numbers", len(p))
			return nil
		}
		out = append(out, core.Interval{Start: core.Elapsed(p[0]), End: core.Elapsed(p[1])})
	}
	return out
}
