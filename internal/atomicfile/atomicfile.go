// Package atomicfile writes the node's files so that after a crash or a
// power cut each holds its old content or its new content, whole.
//
// The data goes to a new temporary file beside the target, created with
// O_EXCL under a random name (so a symlink planted there is never
// followed), is given its mode and synced (data and mode), and then is
// renamed (or linked) over the target; then the directory is synced so
// that the rename itself is on disk. On any failure before the rename the temporary file is removed
// and the target is untouched.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// WriteFile replaces path with data, with mode perm exactly (the umask
// does not apply).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	if err := step("rename"); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// WriteNew creates path with data and mode perm, failing with an error
// that wraps fs.ErrExist if path exists (even as a dangling symlink): two
// processes creating the same file cannot overwrite each other.
func WriteNew(path string, data []byte, perm os.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := step("rename"); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		// a filesystem without hard links: check, then rename
		if _, serr := os.Lstat(path); serr == nil {
			return &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return syncDir(filepath.Dir(path))
}

// writeTemp writes data to a new temporary file beside path and syncs it;
// it returns the file's name, or an error and no file.
func writeTemp(path string, data []byte, perm os.FileMode) (string, error) {
	if err := step("create"); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	for _, s := range []struct {
		name string
		do   func() error
	}{
		{"write", func() error { _, err := f.Write(data); return err }},
		{"chmod", func() error { return f.Chmod(perm) }},
		{"sync", f.Sync},
	} {
		if err := step(s.name); err != nil {
			return fail(err)
		}
		if err := s.do(); err != nil {
			return fail(err)
		}
	}
	if err := step("close"); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// syncDir makes a rename in dir durable. Filesystems that cannot sync a
// directory (EINVAL) are taken as they are.
func syncDir(dir string) error {
	if err := step("syncdir"); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

// testStep, when a test sets it, is called before each step (create,
// write, chmod, sync, close, rename, syncdir); an error it returns is
// that step's failure.
var testStep func(name string) error

func step(name string) error {
	if testStep == nil {
		return nil
	}
	return testStep(name)
}
