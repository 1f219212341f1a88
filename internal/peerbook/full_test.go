package peerbook

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A Save that fails because the file cannot grow (SQLite's max_page_count
// stands in for a full disk: both are SQLITE_FULL) reports ENOSPC with the
// path, changes nothing, and does not leave the copy of the file behind:
// once there is room, the next Save writes the whole difference, including
// what the failed one carried.
func TestSaveWhenFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "book.sqlite")
	b, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	small := bigState(100)
	if err := b.Save(small); err != nil {
		t.Fatal(err)
	}
	var pages int
	if err := b.db.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}

	full := bigState(1000)
	full.Counter = small.Counter + 7
	err = b.Save(full)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("Save into a full file: %v; want ENOSPC naming %s", err, path)
	}
	got, err := b.Load()
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, small) // nothing of the failed Save is stored

	// A second failure straight after the first (no Load between them).
	if err := b.Save(full); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("second Save into a full file: %v", err)
	}

	// Room again: the same state, then one more change, are written whole.
	if _, err := b.db.Exec(`PRAGMA max_page_count = 1000000`); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(full); err != nil {
		t.Fatalf("Save with room again: %v", err)
	}
	next := cloneState(full)
	next.Records[0] = altOf(next.Records[0])
	if err := b.Save(next); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	got, err = b2.Load()
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, next)
}
