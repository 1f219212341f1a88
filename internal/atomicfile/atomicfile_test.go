package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"grapevine/internal/testkit"
)

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	for i, perm := range []os.FileMode{0o600, 0o644, 0o640} {
		data := strings.Repeat("x", i*1000)
		if err := WriteFile(path, []byte(data), perm); err != nil {
			t.Fatal(err)
		}
		if got := readString(t, path); got != data {
			t.Fatalf("write %d: %d bytes, want %d", i, len(got), len(data))
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != perm {
			t.Errorf("mode %v, want %v", st.Mode().Perm(), perm)
		}
		if n := testkit.DirNames(t, dir); !slices.Equal(n, []string{"state"}) {
			t.Errorf("directory holds %q, want only the file", n)
		}
	}
}

// A symlink where the old code put its temporary file (path + ".tmp"), or
// at the target of WriteNew, is never written through.
func TestSymlinksNotFollowed(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "state")
	for _, name := range []string{"state.tmp", ".state.tmp", ".state.tmp-"} {
		if err := os.Symlink(victim, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteFile(path, []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "new")); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(filepath.Join(dir, "new"), []byte("new\n"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("WriteNew over a symlink: %v, want ErrExist", err)
	}
	if got := readString(t, victim); got != "precious\n" {
		t.Errorf("the symlink's target was written: %q", got)
	}
	if got := readString(t, path); got != "new\n" {
		t.Errorf("state: %q", got)
	}
}

// A failure at any step before the rename leaves the old file as it was
// and no temporary file; the file is synced before the rename and the
// directory after it.
func TestFailureKeepsOldFile(t *testing.T) {
	defer func() { testStep = nil }()
	var steps []string
	testStep = func(name string) error { steps = append(steps, name); return nil }
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	if err := WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := []string{"create", "write", "chmod", "sync", "close", "rename", "syncdir"}
	if !slices.Equal(steps, want) {
		t.Fatalf("steps %q, want %q", steps, want)
	}
	injected := errors.New("injected")
	for _, at := range want[:len(want)-1] {
		for _, write := range []func(string, []byte, os.FileMode) error{WriteFile, WriteNew} {
			testStep = func(name string) error {
				if name == at {
					return injected
				}
				return nil
			}
			err := write(path, []byte(strings.Repeat("new\n", 1000)), 0o600)
			if !errors.Is(err, injected) {
				t.Fatalf("failing at %s: %v", at, err)
			}
			if got := readString(t, path); got != "old\n" {
				t.Fatalf("failing at %s: the file holds %d bytes, not the old ones", at, len(got))
			}
			if n := testkit.DirNames(t, dir); !slices.Equal(n, []string{"state"}) {
				t.Fatalf("failing at %s: directory holds %q", at, n)
			}
		}
	}
}

// A real write failure (the file size limit, EFBIG) leaves the old file
// and no temporary one.
func TestWriteErrorKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	if err := WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skip(err)
	}
	lim := old
	lim.Cur = 4096
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skip(err)
	}
	err := WriteFile(path, make([]byte, 64<<10), 0o644)
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); rerr != nil {
		t.Fatal(rerr)
	}
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("writing past the size limit: %v, want EFBIG", err)
	}
	if got := readString(t, path); got != "old\n" {
		t.Errorf("the file holds %d bytes, not the old ones", len(got))
	}
	if n := testkit.DirNames(t, dir); !slices.Equal(n, []string{"state"}) {
		t.Errorf("directory holds %q", n)
	}
}

func TestWriteNew(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "id.pem")
	if err := WriteNew(path, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(path, []byte("second\n"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second WriteNew: %v, want ErrExist", err)
	}
	if got := readString(t, path); got != "first\n" {
		t.Errorf("file: %q", got)
	}
	if n := testkit.DirNames(t, dir); !slices.Equal(n, []string{"id.pem"}) {
		t.Errorf("directory holds %q", n)
	}
}
