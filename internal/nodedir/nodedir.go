// Package nodedir creates and opens a node directory:
//
//	DIR/grapevine.yaml          configuration (see Config)
//	DIR/node.pubkey             pub-v0-<base32>, Tahoe's format
//	DIR/private/node.privkey    priv-v0-<base32 seed>, Tahoe's format, mode 0600
//	DIR/announcement-seqnum     the announcement counter, as in Tahoe
//
// The counter is written atomically (temporary file, fsync, rename, fsync of
// the directory) before any announcement carrying its value is returned.
package nodedir

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"grapevine/announce"
	"grapevine/internal/atomicfile"
)

// File names inside a node directory.
const (
	PrivKeyFile = "private/node.privkey"
	PubKeyFile  = "node.pubkey"
	CounterFile = "announcement-seqnum"
)

// FileError is a problem with one file of the node directory.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// ErrExists is returned by Create for a directory that is not empty.
var ErrExists = errors.New("already exists and is not empty; refusing to touch it")

// Node is an opened node directory.
type Node struct {
	Dir     string
	Key     announce.PrivateKey
	Config  *Config
	counter int64
}

// Options for Create.
type Options struct {
	Config Config
	// Rand supplies the key seed; crypto/rand if nil.
	Rand io.Reader
}

// Create makes a node directory at dir and publishes the first
// announcements (seqnum 1). It builds everything in a temporary directory
// beside dir and renames it into place, so a failure leaves nothing behind.
func Create(dir string, opt Options) (*Node, error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, &FileError{Path: dir, Err: ErrExists}
	} else if err == nil {
		if err := os.Remove(dir); err != nil {
			return nil, &FileError{Path: dir, Err: err}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, &FileError{Path: dir, Err: err}
	}
	cfg := opt.Config
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	_, pk, err := ed25519.GenerateKey(opt.Rand)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	key, _ := announce.NewPrivateKey(pk.Seed())

	parent := filepath.Dir(filepath.Clean(dir))
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".creating-")
	if err != nil {
		return nil, &FileError{Path: parent, Err: err}
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, &FileError{Path: tmp, Err: err}
	}
	if err := os.Mkdir(filepath.Join(tmp, "private"), 0o700); err != nil {
		return nil, &FileError{Path: tmp, Err: err}
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{PrivKeyFile, []byte(key.String() + "\n"), 0o600},
		{PubKeyFile, []byte(key.PublicKeyFile() + "\n"), 0o644},
		{ConfigFile, cfg.Encode(), 0o644},
		{CounterFile, []byte("0\n"), 0o644},
	}
	for _, f := range files {
		p := filepath.Join(tmp, f.name)
		if err := atomicfile.WriteNew(p, f.data, f.mode); err != nil {
			return nil, &FileError{Path: p, Err: err}
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, &FileError{Path: dir, Err: err}
	}
	if err := syncDir(parent); err != nil {
		return nil, err
	}
	n, err := Open(dir)
	if err != nil {
		return nil, err
	}
	if _, err := n.Publish(); err != nil {
		return nil, err
	}
	return n, nil
}

// Open reads a node directory.
func Open(dir string) (*Node, error) {
	n := &Node{Dir: dir}
	read := func(name string, limit int64) (string, error) {
		p := filepath.Join(dir, name)
		f, err := os.Open(p)
		if err != nil {
			return "", &FileError{Path: p, Err: err}
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, limit+1))
		if err != nil {
			return "", &FileError{Path: p, Err: err}
		}
		if int64(len(b)) > limit {
			return "", &FileError{Path: p, Err: fmt.Errorf("larger than %d bytes", limit)}
		}
		return string(b), nil
	}
	text, err := read(PrivKeyFile, 1024)
	if err != nil {
		return nil, err
	}
	if n.Key, err = announce.ParsePrivateKey(text); err != nil {
		return nil, &FileError{Path: filepath.Join(dir, PrivKeyFile), Err: err}
	}
	if text, err = read(PubKeyFile, 1024); err == nil {
		id, err := announce.ParsePublicKeyFile(text)
		if err != nil {
			return nil, &FileError{Path: filepath.Join(dir, PubKeyFile), Err: err}
		}
		if id != n.Key.ID() {
			return nil, &FileError{Path: filepath.Join(dir, PubKeyFile), Err: errors.New("does not match private/node.privkey")}
		}
	}
	if text, err = read(ConfigFile, MaxConfigSize); err != nil {
		return nil, err
	}
	if n.Config, err = ParseConfig(filepath.Join(dir, ConfigFile), []byte(text)); err != nil {
		return nil, err
	}
	if text, err = read(CounterFile, 64); err != nil {
		return nil, err
	}
	c, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
	if err != nil || c < 0 {
		return nil, &FileError{Path: filepath.Join(dir, CounterFile), Err: fmt.Errorf("want a non-negative integer, got %q", strings.TrimSpace(text))}
	}
	n.counter = c
	return n, nil
}

// ID returns the node ID.
func (n *Node) ID() announce.NodeID { return n.Key.ID() }

// Counter returns the last seqnum this node has used.
func (n *Node) Counter() int64 { return n.counter }

// Current returns the node's announcements signed at the current counter.
// Signing is deterministic, so these are the bytes last published (unless
// the configuration changed since).
func (n *Node) Current() []announce.Signed { return n.sign(n.counter) }

func (n *Node) sign(seq int64) []announce.Signed {
	var out []announce.Signed
	for _, t := range n.Config.Templates(n.ID()) {
		out = append(out, announce.Sign(n.Key, announce.Build(n.Key, t, seq)))
	}
	return out
}

// Publish moves the counter on by one, persists it, and only then returns
// the announcements signed with it.
func (n *Node) Publish() ([]announce.Signed, error) {
	if err := n.storeCounter(n.counter + 1); err != nil {
		return nil, err
	}
	return n.sign(n.counter), nil
}

// ObserveOwn applies the recovery rule to a record heard from the network.
// If it is validly signed by this node's key and beats or conflicts with
// what the node publishes (the counter was lost or rolled back), the counter
// jumps past it, is persisted, and the node re-signs: the new records are
// returned. Otherwise nil.
func (n *Node) ObserveOwn(s announce.Signed) ([]announce.Signed, error) {
	if s.Key != string(n.ID()) {
		return nil, nil
	}
	a, err := announce.Verify(s)
	if err != nil {
		return nil, err
	}
	var ours announce.Signed
	for _, c := range n.Current() {
		if k, _ := announce.ParseUnverified(c); k != nil && k.ServiceName == a.ServiceName {
			ours = c
		}
	}
	next, jump := announce.RecoverSeqnum(n.counter, a, ours)
	if !jump {
		return nil, nil
	}
	if err := n.storeCounter(next); err != nil {
		return nil, err
	}
	return n.sign(next), nil
}

// StoreCounter persists the counter (the daemon calls it before anything
// carrying v leaves the node). It refuses to go down.
func (n *Node) StoreCounter(v int64) error {
	if v < n.counter {
		return fmt.Errorf("announcement counter may not go down from %d to %d", n.counter, v)
	}
	if v == n.counter {
		return nil
	}
	return n.storeCounter(v)
}

func (n *Node) storeCounter(v int64) error {
	p := filepath.Join(n.Dir, CounterFile)
	if err := writeFileAtomic(p, []byte(strconv.FormatInt(v, 10)+"\n"), 0o644); err != nil {
		return err
	}
	n.counter = v
	return nil
}

// writeFileAtomic replaces path with data durably (atomicfile).
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := atomicfile.WriteFile(path, data, mode); err != nil {
		return &FileError{Path: path, Err: err}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return &FileError{Path: dir, Err: err}
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return &FileError{Path: dir, Err: err}
	}
	return nil
}

// SaveConfig validates c and replaces grapevine.yaml with it atomically.
func (n *Node) SaveConfig(c *Config) error {
	if err := c.validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.File = filepath.Join(n.Dir, ConfigFile)
		}
		return err
	}
	if err := writeFileAtomic(filepath.Join(n.Dir, ConfigFile), c.Encode(), 0o644); err != nil {
		return err
	}
	n.Config = c
	return nil
}
