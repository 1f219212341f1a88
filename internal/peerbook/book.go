package peerbook

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/records"
)

// Book persists a node's state. Implementations are safe for concurrent
// use; none keeps a reference to a State passed in or handed out.
type Book interface {
	// Load returns the stored state: an empty State (Counter 0) for a new
	// book. A *SkippedError comes with a usable state that lacks the rows
	// it names; any other error comes with a zero State.
	Load() (core.State, error)
	// Save replaces the stored state with st, atomically. It writes only
	// the difference. The stored counter becomes the higher of the two.
	// A state Load could not give back (a record that does not parse, two
	// entries with one key, a time outside years 0-9999) is refused whole.
	Save(st core.State) error
	// SaveCounter stores the counter durably before returning. A value
	// below the stored one is refused with ErrCounterBackwards.
	SaveCounter(c int64) error
	Close() error
}

var (
	// ErrClosed is returned by Load, Save and SaveCounter after Close.
	ErrClosed = errors.New("peerbook: closed")
	// ErrCounterBackwards is wrapped by SaveCounter's error for a value
	// below the stored counter.
	ErrCounterBackwards = errors.New("peerbook: counter would go down")
	// ErrNotPeerbook is wrapped when a file is not a SQLite database, or
	// is one that another program made.
	ErrNotPeerbook = errors.New("not a peerbook")
	// ErrLocked is wrapped when another process has the file open.
	ErrLocked = errors.New("in use by another process")
)

// VersionError refuses a file written by a newer schema.
type VersionError struct {
	Path       string
	File, Here int // the file's schema version and this program's
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("peerbook: %s has schema version %d, newer than this program's %d: run a newer grapevine", e.Path, e.File, e.Here)
}

// CorruptError is a stored row that cannot be decoded.
type CorruptError struct {
	Table   string
	Key     string // the row's primary key, as text
	Problem string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("peerbook: corrupt row in %s (%s): %s", e.Table, e.Key, e.Problem)
}

// SkippedError is Load's report of rows it left out. The state returned
// with it holds every other row.
type SkippedError struct {
	Rows []*CorruptError
}

func (e *SkippedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "peerbook: skipped %d corrupt row(s)", len(e.Rows))
	for i, r := range e.Rows {
		if i == 3 {
			fmt.Fprintf(&b, "; ...")
			break
		}
		fmt.Fprintf(&b, "; %s (%s): %s", r.Table, r.Key, r.Problem)
	}
	return b.String()
}

// Unwrap lets errors.As find each *CorruptError.
func (e *SkippedError) Unwrap() []error {
	out := make([]error, len(e.Rows))
	for i, r := range e.Rows {
		out[i] = r
	}
	return out
}

// state is a State in canonical form, keyed for diffing.
type state struct {
	counter int64
	elapsed core.Elapsed
	wall    time.Time
	recs    map[records.Key]core.StoredRecord
	tombs   map[records.Key]core.StoredTombstone
	peers   map[announce.NodeID]core.History
	// keys caches, by signature, the key of every signed record above, so
	// a Save parses only records it has not seen.
	keys map[string]signedKey
}

type signedKey struct {
	signed announce.Signed
	key    records.Key
}

func newState(nrec, ntomb, npeer int) *state {
	return &state{
		recs:  make(map[records.Key]core.StoredRecord, nrec),
		tombs: make(map[records.Key]core.StoredTombstone, ntomb),
		peers: make(map[announce.NodeID]core.History, npeer),
		keys:  make(map[string]signedKey, nrec+ntomb),
	}
}

// key returns the key of a signed record, from the cache in s or prev
// (which may be nil) or by parsing it, and caches it in s.
func (s *state) key(sig announce.Signed, prev *state) (records.Key, error) {
	if c, ok := s.keys[sig.Sig]; ok && c.signed == sig {
		return c.key, nil
	}
	var k records.Key
	if c, ok := prev.cached(sig); ok {
		k = c
	} else {
		a, err := announce.ParseUnverified(sig)
		if err != nil {
			return records.Key{}, err
		}
		k = records.Key{Service: a.ServiceName, ID: a.ID}
	}
	s.keys[sig.Sig] = signedKey{sig, k}
	return k, nil
}

func (s *state) cached(sig announce.Signed) (records.Key, bool) {
	if s == nil {
		return records.Key{}, false
	}
	c, ok := s.keys[sig.Sig]
	return c.key, ok && c.signed == sig
}

// prepare checks st and returns it in canonical form. prev supplies cached
// record keys; it is not changed.
func prepare(st core.State, prev *state) (*state, error) {
	n := newState(len(st.Records), len(st.Tombstones), len(st.Peers))
	n.counter, n.elapsed = st.Counter, st.Elapsed
	var err error
	if n.wall, err = canonTime(st.Wall); err != nil {
		return nil, fmt.Errorf("peerbook: save: Wall: %w", err)
	}
	lookup := func(sig announce.Signed) (records.Key, error) { return n.key(sig, prev) }
	for i, r := range st.Records {
		k, err := lookup(r.Signed)
		if err != nil {
			return nil, fmt.Errorf("peerbook: save: Records[%d]: %w", i, err)
		}
		if _, dup := n.recs[k]; dup {
			return nil, fmt.Errorf("peerbook: save: Records[%d]: a second record for %s", i, k)
		}
		n.recs[k] = r
	}
	for i, t := range st.Tombstones {
		if err := checkTombstone(t.Tombstone, lookup); err != nil {
			return nil, fmt.Errorf("peerbook: save: Tombstones[%d] (%s): %w", i, t.Key, err)
		}
		if _, dup := n.tombs[t.Key]; dup {
			return nil, fmt.Errorf("peerbook: save: Tombstones[%d]: a second tombstone for %s", i, t.Key)
		}
		if t.AtWall, err = canonTime(t.AtWall); err != nil {
			return nil, fmt.Errorf("peerbook: save: Tombstones[%d] (%s): AtWall: %w", i, t.Key, err)
		}
		n.tombs[t.Key] = t
	}
	for i, h := range st.Peers {
		if _, dup := n.peers[h.ID]; dup {
			return nil, fmt.Errorf("peerbook: save: Peers[%d]: a second history for %s", i, h.ID)
		}
		h, err := canonHistory(h)
		if err != nil {
			return nil, fmt.Errorf("peerbook: save: Peers[%d] (%s): %w", i, h.ID, err)
		}
		n.peers[h.ID] = h
	}
	return n, nil
}

// checkTombstone requires Last, when set, to be a record for the key.
func checkTombstone(t records.Tombstone, key func(announce.Signed) (records.Key, error)) error {
	if t.Last == (announce.Signed{}) {
		return nil
	}
	k, err := key(t.Last)
	if err != nil {
		return fmt.Errorf("last signed record: %w", err)
	}
	if k != t.Key {
		return fmt.Errorf("last signed record is for %s", k)
	}
	return nil
}

func canonHistory(h core.History) (core.History, error) {
	for _, f := range []*time.Time{&h.FirstHeardWall, &h.LastConnectedWall, &h.LastAttemptWall} {
		var err error
		if *f, err = canonTime(*f); err != nil {
			return h, err
		}
	}
	h.Locators = cloneOrNil(h.Locators)
	h.Intervals = cloneOrNil(h.Intervals)
	return h, nil
}

func cloneOrNil[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// canonTime returns t in UTC without a monotonic reading. Years outside
// 0-9999 have no RFC 3339 form and are refused.
func canonTime(t time.Time) (time.Time, error) {
	if t.IsZero() {
		return time.Time{}, nil
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, fmt.Errorf("time %v is outside years 0-9999", t)
	}
	return t, nil
}

// core returns a State that shares nothing mutable with s.
func (s *state) core() core.State {
	st := core.State{Counter: s.counter, Elapsed: s.elapsed, Wall: s.wall}
	for _, k := range sortedKeys(s.recs) {
		st.Records = append(st.Records, s.recs[k])
	}
	for _, k := range sortedKeys(s.tombs) {
		st.Tombstones = append(st.Tombstones, s.tombs[k])
	}
	ids := make([]announce.NodeID, 0, len(s.peers))
	for id := range s.peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		h := s.peers[id]
		h.Locators = slices.Clone(h.Locators)
		h.Intervals = slices.Clone(h.Intervals)
		st.Peers = append(st.Peers, h)
	}
	return st
}

func sortedKeys[V any](m map[records.Key]V) []records.Key {
	keys := make([]records.Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmpKey)
	return keys
}

// cmpKey orders keys as core.State does: by ID, then service.
func cmpKey(a, b records.Key) int {
	return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Service, b.Service))
}

func equalHistory(a, b core.History) bool {
	return a.ID == b.ID && slices.Equal(a.Locators, b.Locators) &&
		a.FirstHeard == b.FirstHeard && a.FirstHeardWall == b.FirstHeardWall &&
		a.LastGood == b.LastGood &&
		a.LastConnected == b.LastConnected && a.LastConnectedWall == b.LastConnectedWall &&
		a.LastAttempt == b.LastAttempt && a.LastAttemptWall == b.LastAttemptWall &&
		a.LastAttemptFailed == b.LastAttemptFailed && a.LastError == b.LastError &&
		a.Failures == b.Failures && slices.Equal(a.Intervals, b.Intervals) &&
		a.SRTT == b.SRTT && a.RTTVar == b.RTTVar &&
		a.BytesIn == b.BytesIn && a.BytesOut == b.BytesOut && a.Withdrawn == b.Withdrawn
}
