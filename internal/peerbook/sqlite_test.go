package peerbook

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/records"
)

var big struct {
	once  sync.Once
	state core.State
	alt   map[announce.NodeID]core.StoredRecord // another version of each record
}

// bigState is a node's state with n records (n <= 1000), a peer for every
// fifth and a tombstone for every tenth; altOf gives another version of a
// record.
func bigState(n int) core.State {
	big.once.Do(func() {
		g := newGen(42)
		big.alt = map[announce.NodeID]core.StoredRecord{}
		st := core.State{Counter: 1000, Elapsed: core.Elapsed(time.Hour), Wall: time.Unix(1.7e9, 0).UTC()}
		for i := range 1000 {
			k := testKey(10000 + i)
			st.Records = append(st.Records, core.StoredRecord{Signed: signed(k, "storage", 7, fmt.Sprintf("storage-%03d", i), false), Source: testKey(10000 + i/3).ID()})
			big.alt[k.ID()] = (core.StoredRecord{Signed: signed(k, "storage", 8, fmt.Sprintf("storage-%03d", i), false), Source: testKey(10000 + i/3).ID()})
			if i%5 == 0 {
				h := g.history(10000 + i)
				st.Peers = append(st.Peers, h)
			}
			if i%10 == 0 {
				k := testKey(20000 + i)
				st.Tombstones = append(st.Tombstones, core.StoredTombstone{
					Tombstone: records.Tombstone{Key: records.Key{Service: "storage", ID: k.ID()}, Seqnum: 3, HasSeqnum: true,
						Last: signed(k, "storage", 3, "gone", true), Reason: "withdrawn"},
					At: core.Elapsed(time.Minute), AtWall: time.Unix(1.7e9, 5).UTC()})
			}
		}
		big.state = sortState(st)
	})
	st := cloneState(big.state)
	st.Records = st.Records[:n]
	return st
}

func altOf(r core.StoredRecord) core.StoredRecord { return big.alt[announce.NodeID(r.Signed.Key)] }

func totalChanges(t testing.TB, b *SQLite) int {
	var n int
	if err := b.db.QueryRow(`SELECT total_changes()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSQLiteSaveWritesOnlyChanges(t *testing.T) {
	b := openTemp(t)
	x := bigState(1000)
	mustSave(t, b, x)
	step := func(what string, want int, f func(st *core.State)) {
		t.Helper()
		f(&x)
		x = sortState(x)
		before := totalChanges(t, b)
		mustSave(t, b, x)
		if got := totalChanges(t, b) - before; got != want {
			t.Errorf("%s: %d rows written, want %d", what, got, want)
		}
	}
	step("nothing", 0, func(st *core.State) {})
	step("one record", 1, func(st *core.State) { st.Records[500] = altOf(st.Records[500]) })
	step("one record and the clock", 2, func(st *core.State) { st.Records[7] = altOf(st.Records[7]); st.Elapsed = st.Elapsed.Add(time.Second) })
	step("one record gone", 1, func(st *core.State) { st.Records = slices.Delete(st.Records, 3, 4) })
	step("one peer", 1, func(st *core.State) { st.Peers[4].BytesIn++ })
	step("one peer's locators", 1+2+3, func(st *core.State) {
		st.Peers[4].Locators = []string{"a", "b", "c"}
		if n := len(big.state.Peers[4].Locators); n != 2 {
			t.Fatalf("peer 4 has %d locators, the count below assumes 2", n)
		}
	})
	step("a peer gone, with its 3 locators", 1+3, func(st *core.State) { st.Peers = slices.Delete(st.Peers, 4, 5) })
	step("a tombstone", 1, func(st *core.State) { st.Tombstones[2].At++ })
	if t.Failed() {
		return
	}
	mustEqual(t, mustLoad(t, b), x)
}

func TestSQLiteReopenAfterChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "book.db")
	b := mustOpen(t, path)
	g := newGen(21)
	x := g.state(50)
	mustSave(t, b, x)
	for range 10 {
		b.Close()
		b = mustOpen(t, path)
		mustEqual(t, mustLoad(t, b), x)
		// The copy read at open is what the next Save diffs against.
		x = g.mutate(x, 60)
		x = g.mutate(x, 60)
		mustSave(t, b, x)
	}
	b.Close()
	mustEqual(t, mustLoad(t, mustOpen(t, path)), x)
}

// rawDB opens path without the book, for tests to look or tamper. Close
// it before opening the book: the book locks the file.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func rawExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// rawExecClose runs q on path and closes the file.
func rawExecClose(t *testing.T, path, q string) {
	t.Helper()
	db := rawDB(t, path)
	rawExec(t, db, q)
	db.Close()
}

func TestSQLiteOpenErrors(t *testing.T) {
	dir := t.TempDir()

	_, err := OpenSQLite(filepath.Join(dir, "missing", "book.db"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("parent missing: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the missing directory was created")
	}

	if _, err := OpenSQLite(dir); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("a directory: %v", err)
	}

	junk := filepath.Join(dir, "junk")
	content := bytes.Repeat([]byte("this is not a database\n"), 500)
	os.WriteFile(junk, content, 0o600)
	_, err = OpenSQLite(junk)
	if !errors.Is(err, ErrNotPeerbook) {
		t.Errorf("junk file: %v", err)
	}
	if got, _ := os.ReadFile(junk); !bytes.Equal(got, content) {
		t.Errorf("the junk file was changed")
	}

	other := filepath.Join(dir, "other.db")
	db := rawDB(t, other)
	rawExec(t, db, `CREATE TABLE t (x)`)
	db.Close()
	_, err = OpenSQLite(other)
	if !errors.Is(err, ErrNotPeerbook) {
		t.Errorf("another program's database: %v", err)
	}
	var mode string
	rawDB(t, other).QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	if mode != "delete" {
		t.Errorf("another program's database was switched to journal mode %q", mode)
	}

	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	if b, err := OpenSQLite(empty); err != nil {
		t.Errorf("an empty file: %v", err)
	} else {
		b.Close()
	}

	odd := filepath.Join(dir, "odd ?#% name.db")
	b, err := OpenSQLite(odd)
	if err != nil {
		t.Fatalf("odd name: %v", err)
	}
	b.Close()
	if _, err := os.Stat(odd); err != nil {
		t.Errorf("odd name: %v", err)
	}
}

func TestSQLiteNewerVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "book.db")
	b := mustOpen(t, path)
	mustSave(t, b, newGen(1).state(10))
	b.Close()
	rawExecClose(t, path, fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations)+1))
	_, err := OpenSQLite(path)
	var ve *VersionError
	if !errors.As(err, &ve) || ve.File != len(migrations)+1 || ve.Here != len(migrations) {
		t.Fatalf("newer file: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, fmt.Sprint(ve.File)) || !strings.Contains(msg, fmt.Sprint(ve.Here)) {
		t.Errorf("message does not name both versions: %s", msg)
	}
}

func TestSQLiteMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "book.db")
	b := mustOpen(t, path)
	x := newGen(2).state(10)
	mustSave(t, b, x)
	b.Close()
	var app, v int
	db := rawDB(t, path)
	db.QueryRow(`SELECT (SELECT application_id FROM pragma_application_id), (SELECT user_version FROM pragma_user_version)`).Scan(&app, &v)
	if app != appID || v != len(migrations) {
		t.Fatalf("application_id %#x, user_version %d", app, v)
	}
	db.Close()

	saved := migrations
	t.Cleanup(func() { migrations = saved })

	// A failing migration changes nothing.
	migrations = append(slices.Clone(saved), `CREATE TABLE extra (x INTEGER); CREATE TABLE records (x)`)
	if _, err := OpenSQLite(path); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("migration to version %d", len(saved)+1)) {
		t.Fatalf("failing migration: %v", err)
	}
	migrations = saved
	b = mustOpen(t, path)
	mustEqual(t, mustLoad(t, b), x)
	b.Close()

	// A new one is applied once, and the data stays.
	migrations = append(slices.Clone(saved), `ALTER TABLE peers ADD COLUMN note TEXT NOT NULL DEFAULT ''`)
	for range 2 {
		b := mustOpen(t, path)
		mustEqual(t, mustLoad(t, b), x)
		b.Close()
	}
	db = rawDB(t, path)
	db.QueryRow(`PRAGMA user_version`).Scan(&v)
	if v != len(saved)+1 {
		t.Fatalf("user_version %d after the new migration", v)
	}
}

func TestSQLiteLocked(t *testing.T) {
	saved := busyTimeout
	busyTimeout = 50 * time.Millisecond
	t.Cleanup(func() { busyTimeout = saved })
	path := filepath.Join(t.TempDir(), "book.db")
	b := mustOpen(t, path)
	if _, err := OpenSQLite(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	b.Close()
	mustOpen(t, path).Close()
}

func TestSQLiteCorruptRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "book.db")
	b := mustOpen(t, path)
	x := newGen(3).state(60)
	mustSave(t, b, x)
	b.Close()

	// Damage some rows behind the book's back.
	var victimPeer core.History
	for _, h := range x.Peers {
		if len(h.Locators) >= 2 && h.ID != x.Peers[0].ID && h.ID != x.Peers[1].ID {
			victimPeer = h
			break
		}
	}
	if victimPeer.ID == "" {
		t.Fatal("no peer with two locators; pick another seed")
	}
	rk := keyOf(x.Records[0].Signed)
	rk1 := keyOf(x.Records[1].Signed)
	tk, tk1 := x.Tombstones[0].Key, x.Tombstones[1].Key
	db := rawDB(t, path)
	rawExec(t, db, `UPDATE records SET msg = x'7b6e6f' WHERE id = ? AND service = ?`, rk.ID, rk.Service)
	rawExec(t, db, `UPDATE records SET service = 'elsewhere' WHERE id = ? AND service = ?`, rk1.ID, rk1.Service)
	rawExec(t, db, `UPDATE tombstones SET at_wall = 'yesterday' WHERE id = ? AND service = ?`, tk.ID, tk.Service)
	rawExec(t, db, `UPDATE tombstones SET has_seqnum = 7 WHERE id = ? AND service = ?`, tk1.ID, tk1.Service)
	rawExec(t, db, `UPDATE peers SET intervals = '[[1,2,3]]' WHERE id = ?`, x.Peers[0].ID)
	rawExec(t, db, `UPDATE peers SET last_attempt_failed = 2 WHERE id = ?`, x.Peers[1].ID)
	rawExec(t, db, `DELETE FROM peer_locators WHERE peer_id = ? AND pos = 0`, victimPeer.ID)
	db.Close()

	want := map[string]string{
		"records/" + rk.String(): "msg",
		"records/" + records.Key{Service: "elsewhere", ID: rk1.ID}.String(): "msg: a record for " + rk1.String(),
		"tombstones/" + tk.String():                                         "at_wall",
		"tombstones/" + tk1.String():                                        "has_seqnum: 7 is not 0 or 1",
		"peers/" + string(x.Peers[0].ID):                                    "intervals",
		"peers/" + string(x.Peers[1].ID):                                    "last_attempt_failed",
		"peer_locators/" + string(victimPeer.ID) + "/1":                     "pos: 1, want 0",
	}
	good := cloneState(x)
	good.Records = good.Records[2:]
	good.Tombstones = good.Tombstones[2:]
	good.Peers = slices.DeleteFunc(good.Peers, func(h core.History) bool {
		return h.ID == x.Peers[0].ID || h.ID == x.Peers[1].ID || h.ID == victimPeer.ID
	})
	check := func(b *SQLite, want map[string]string, good core.State) {
		t.Helper()
		st, err := b.Load()
		var se *SkippedError
		if !errors.As(err, &se) {
			t.Fatalf("Load: %v, want a *SkippedError", err)
		}
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Errorf("errors.As finds no *CorruptError in %v", err)
		}
		got := map[string]string{}
		for _, r := range se.Rows {
			got[r.Table+"/"+r.Key] = r.Problem
		}
		for k, p := range want {
			if !strings.HasPrefix(got[k], p) {
				t.Errorf("%s: problem %q, want %q...", k, got[k], p)
			}
		}
		if len(got) != len(want) {
			t.Errorf("reported %v, want %d rows", got, len(want))
		}
		mustEqual(t, st, good)
	}
	b = mustOpen(t, path)
	check(b, want, good)

	// Saving what was loaded keeps the damaged rows for inspection.
	good.Counter++
	mustSave(t, b, good)
	check(b, want, good)
	b.Close()
	b = mustOpen(t, path)
	check(b, want, good)

	// Saving the key again replaces the damaged row.
	good.Records = append(good.Records, x.Records[0])
	good = sortState(good)
	mustSave(t, b, good)
	delete(want, "records/"+rk.String())
	check(b, want, good)
}

func TestSQLiteCorruptMeta(t *testing.T) {
	for name, damage := range map[string]string{
		"wall":    `UPDATE meta SET wall = 'noon'`,
		"missing": `DELETE FROM meta`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "book.db")
			b := mustOpen(t, path)
			mustSave(t, b, newGen(1).state(5))
			b.Close()
			rawExecClose(t, path, damage)
			_, err := OpenSQLite(path)
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Table != "meta" {
				t.Fatalf("open: %v, want a *CorruptError for meta", err)
			}
		})
	}
}

// Empty blobs, NUL bytes and invalid UTF-8 in signed fields come back as
// they went in.
func TestSQLiteExactBytes(t *testing.T) {
	b := openTemp(t)
	k := testKey(1)
	rec := signed(k, "storage", 1, "x", false)
	rec.Sig = "v0-\x00\xff not base32"
	x := core.State{
		Records: []core.StoredRecord{{Signed: rec, Source: "\x00\xff"}},
		Tombstones: []core.StoredTombstone{{Tombstone: records.Tombstone{
			Key: records.Key{Service: "\x00", ID: announce.NodeID("\xff")}, Reason: "\x00"}}},
		Peers: []core.History{{ID: "\x00nul", Locators: []string{"", "\x00", "\xff\xfe"}, LastError: "\x00"}},
	}
	mustSave(t, b, x)
	mustEqual(t, mustLoad(t, b), x)
}
