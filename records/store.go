// Package records holds the announcements a node knows, by (service-name,
// node ID), with Tahoe's replacement rules and tombstones. It is pure and in
// memory; the protocol core and the peer book build on it.
//
// Rules, in the order Admit applies them:
//
//   - An exact copy of a held record (same msg, sig and key) is a duplicate
//     and is recognised without a signature check.
//   - Anything else is verified (signature over the raw bytes, then parsed).
//   - A record whose parsed content equals the held one is a duplicate.
//   - A record without a valid seqnum (a JSON integer in int64) is refused
//     (bad-seqnum): a tombstone could not refuse its replay.
//   - When a record is held, a new one must carry a seqnum strictly greater
//     to replace it. An equal seqnum with different content is a conflict
//     (a possible replay); a lower one is stale.
//   - A forgotten key leaves a tombstone with its last seqnum and signed
//     record: records at or below that seqnum are refused, a higher one
//     revives the key.
//   - A record that says it is withdrawn replaces the held one as a
//     tombstone at once. A withdrawal of a key not held here (nor once held:
//     no tombstone but an unheld withdrawal's) leaves a WithdrawnUnheld
//     tombstone, which the core does not pass on and evicts first.
package records

import (
	"cmp"
	"fmt"
	"slices"

	"grapevine/announce"
)

// Key identifies a record: Tahoe indexes announcements by (service, key).
type Key struct {
	Service string
	ID      announce.NodeID
}

func (k Key) String() string { return k.Service + "/" + string(k.ID) }

// Outcome says what Admit did with an acceptable record.
type Outcome uint8

const (
	Duplicate Outcome = iota // already held; nothing changed
	Added                    // a new key
	Replaced                 // a higher seqnum replaced the held record
	Revived                  // a higher seqnum than the tombstone's
	Withdrawn                // a withdrawal: the key is now tombstoned
)

var outcomeNames = [...]string{"duplicate", "added", "replaced", "revived", "withdrawn"}

func (o Outcome) String() string { return outcomeNames[o] }

// Changed reports whether the store changed.
func (o Outcome) Changed() bool { return o != Duplicate }

// Reason names why a verified record was refused.
type Reason string

const (
	ReasonStale      Reason = "stale"      // lower seqnum than the held record
	ReasonConflict   Reason = "conflict"   // same seqnum, different content
	ReasonBadSeqnum  Reason = "bad-seqnum" // missing, not an integer, or outside int64
	ReasonTombstoned Reason = "tombstoned" // not above the tombstone's seqnum
)

// RejectError says why a validly signed record was refused, with the facts
// the decision used.
type RejectError struct {
	Reason Reason
	Key    Key
	Held   int64 // the held (or tombstoned) seqnum
	Got    int64 // the offered seqnum, when it has one
	Detail string
}

func (e *RejectError) Error() string {
	switch e.Reason {
	case ReasonStale:
		return fmt.Sprintf("stale record for %s: seqnum %d is below the held %d", e.Key, e.Got, e.Held)
	case ReasonConflict:
		return fmt.Sprintf("conflicting record for %s: seqnum %d is held with different content (possible replay)", e.Key, e.Got)
	case ReasonBadSeqnum:
		return fmt.Sprintf("record for %s has no valid seqnum (%s)", e.Key, e.Detail)
	case ReasonTombstoned:
		return fmt.Sprintf("record for %s is tombstoned: seqnum %d is not above the forgotten %d", e.Key, e.Got, e.Held)
	}
	return fmt.Sprintf("record for %s refused: %s", e.Key, e.Reason)
}

// Is matches errors.Is(err, &RejectError{Reason: r}).
func (e *RejectError) Is(target error) bool {
	t, ok := target.(*RejectError)
	return ok && t.Key == (Key{}) && t.Reason == e.Reason
}

// Sentinels for errors.Is.
var (
	ErrStale      = &RejectError{Reason: ReasonStale}
	ErrConflict   = &RejectError{Reason: ReasonConflict}
	ErrBadSeqnum  = &RejectError{Reason: ReasonBadSeqnum}
	ErrTombstoned = &RejectError{Reason: ReasonTombstoned}
)

// Tombstone reasons the store gives withdrawals. Others (why a key was
// forgotten) are the caller's.
const (
	TombWithdrawn = "withdrawn" // the owner withdrew a record held (or once held) here
	// TombWithdrawnUnheld: a withdrawal of a key never held here. It still
	// refuses older records of the key, but costs nothing to make, so it is
	// not passed on and goes first when the table is full.
	TombWithdrawnUnheld = "withdrawn-unheld"
)

// IsWithdrawal reports whether a tombstone reason is a withdrawal's.
func IsWithdrawal(reason string) bool {
	return reason == TombWithdrawn || reason == TombWithdrawnUnheld
}

// CheckSeqnum refuses a record without a valid seqnum: a JSON integer
// literal in int64. Tahoe takes any Python int (bool too, and integers
// beyond 64 bits) but never replaces a seqnum'd record with one lacking it;
// the store refuses such records outright, since a tombstone could not
// refuse their replay.
func CheckSeqnum(a *announce.Announcement) error {
	if a.HasSeqnum {
		return nil
	}
	return &RejectError{Reason: ReasonBadSeqnum, Key: Key{a.ServiceName, a.ID}, Detail: a.SeqnumProblem}
}

// Tombstone remembers a forgotten or withdrawn key. Last is the newest
// signed record seen for it, so the key's owner can be shown it and jump
// past its seqnum after losing its counter.
type Tombstone struct {
	Key       Key
	Seqnum    int64
	HasSeqnum bool
	Last      announce.Signed
	Reason    string
}

// Store is the set of held records and tombstones. The zero value is not
// usable; call New. Not safe for concurrent use.
type Store struct {
	held  map[Key]*announce.Announcement
	byMsg map[string]*announce.Announcement
	tombs map[Key]*Tombstone
}

// New returns an empty store.
func New() *Store {
	return &Store{
		held:  make(map[Key]*announce.Announcement),
		byMsg: make(map[string]*announce.Announcement),
		tombs: make(map[Key]*Tombstone),
	}
}

// Result describes an admitted record.
type Result struct {
	Outcome Outcome
	Key     Key
	Ann     *announce.Announcement // the record now held (or the withdrawal)
	Prev    *announce.Announcement // the record it replaced, if any
}

// Lookup returns the held record for an exact copy of s, if there is one.
// It checks no signature: the held copy was verified when it was admitted.
func (s *Store) Lookup(sig announce.Signed) (*announce.Announcement, bool) {
	a, ok := s.byMsg[sig.Msg]
	if ok && a.Signed == sig {
		return a, true
	}
	return nil, false
}

// Admit verifies rec and applies the replacement rules. Errors are
// *announce.Error (the record itself is bad) or *RejectError (it is valid
// but may not replace what is held).
func (s *Store) Admit(rec announce.Signed) (Result, error) {
	if a, ok := s.Lookup(rec); ok {
		return Result{Outcome: Duplicate, Key: Key{a.ServiceName, a.ID}, Ann: a}, nil
	}
	a, err := announce.Verify(rec)
	if err != nil {
		return Result{}, err
	}
	return s.AdmitVerified(a)
}

// AdmitVerified applies the replacement rules to an already verified record.
func (s *Store) AdmitVerified(a *announce.Announcement) (Result, error) {
	k := Key{a.ServiceName, a.ID}
	if err := CheckSeqnum(a); err != nil {
		return Result{}, err
	}
	if held, ok := s.held[k]; ok {
		if held.Body.Equal(a.Body) {
			return Result{Outcome: Duplicate, Key: k, Ann: held}, nil
		}
		switch { // held records have a seqnum (CheckSeqnum)
		case a.Seqnum == held.Seqnum:
			return Result{}, &RejectError{Reason: ReasonConflict, Key: k, Held: held.Seqnum, Got: a.Seqnum}
		case a.Seqnum < held.Seqnum:
			return Result{}, &RejectError{Reason: ReasonStale, Key: k, Held: held.Seqnum, Got: a.Seqnum}
		}
		s.remove(held)
		if a.Withdrawn() {
			s.tombstone(a, TombWithdrawn)
			return Result{Outcome: Withdrawn, Key: k, Ann: a, Prev: held}, nil
		}
		s.put(k, a)
		return Result{Outcome: Replaced, Key: k, Ann: a, Prev: held}, nil
	}
	out := Added
	withdrawal := TombWithdrawnUnheld
	if t, ok := s.tombs[k]; ok {
		if t.Reason != TombWithdrawnUnheld {
			withdrawal = TombWithdrawn // the key was held here once
		}
		if t.HasSeqnum {
			if a.Seqnum <= t.Seqnum {
				if a.Withdrawn() && t.Last == a.Signed {
					return Result{Outcome: Duplicate, Key: k, Ann: a}, nil
				}
				return Result{}, &RejectError{Reason: ReasonTombstoned, Key: k, Held: t.Seqnum, Got: a.Seqnum}
			}
		}
		out = Revived
	}
	if a.Withdrawn() {
		s.tombstone(a, withdrawal)
		return Result{Outcome: Withdrawn, Key: k, Ann: a}, nil
	}
	delete(s.tombs, k)
	s.put(k, a)
	return Result{Outcome: out, Key: k, Ann: a}, nil
}

func (s *Store) put(k Key, a *announce.Announcement) {
	s.held[k] = a
	s.byMsg[a.Signed.Msg] = a
}

func (s *Store) remove(a *announce.Announcement) {
	delete(s.held, Key{a.ServiceName, a.ID})
	if s.byMsg[a.Signed.Msg] == a {
		delete(s.byMsg, a.Signed.Msg)
	}
}

func (s *Store) tombstone(a *announce.Announcement, reason string) *Tombstone {
	t := &Tombstone{Key: Key{a.ServiceName, a.ID}, Seqnum: a.Seqnum, HasSeqnum: a.HasSeqnum, Last: a.Signed, Reason: reason}
	s.tombs[t.Key] = t
	return t
}

// Forget deletes the held record for k and leaves a tombstone that refuses
// replays of it. It reports false if nothing was held.
func (s *Store) Forget(k Key, reason string) (*Tombstone, bool) {
	a, ok := s.held[k]
	if !ok {
		return nil, false
	}
	s.remove(a)
	return s.tombstone(a, reason), true
}

// Delete removes the held record for k without a tombstone (to make room:
// the record may come back).
func (s *Store) Delete(k Key) bool {
	a, ok := s.held[k]
	if ok {
		s.remove(a)
	}
	return ok
}

// RestoreTombstone puts back a tombstone read from storage.
func (s *Store) RestoreTombstone(t Tombstone) { s.tombs[t.Key] = &t }

// DropTombstone removes the tombstone for k (it expired).
func (s *Store) DropTombstone(k Key) bool {
	_, ok := s.tombs[k]
	delete(s.tombs, k)
	return ok
}

// Get returns the held record for k.
func (s *Store) Get(k Key) (*announce.Announcement, bool) {
	a, ok := s.held[k]
	return a, ok
}

// Tombstone returns the tombstone for k.
func (s *Store) Tombstone(k Key) (*Tombstone, bool) {
	t, ok := s.tombs[k]
	return t, ok
}

// Len returns the number of held records.
func (s *Store) Len() int { return len(s.held) }

// Records returns the held records ordered by key.
func (s *Store) Records() []*announce.Announcement {
	out := make([]*announce.Announcement, 0, len(s.held))
	for _, a := range s.held {
		out = append(out, a)
	}
	slices.SortFunc(out, func(x, y *announce.Announcement) int {
		return cmp.Or(cmp.Compare(x.ID, y.ID), cmp.Compare(x.ServiceName, y.ServiceName))
	})
	return out
}

// Tombstones returns the tombstones ordered by key.
func (s *Store) Tombstones() []*Tombstone {
	out := make([]*Tombstone, 0, len(s.tombs))
	for _, t := range s.tombs {
		out = append(out, t)
	}
	slices.SortFunc(out, func(x, y *Tombstone) int {
		return cmp.Or(cmp.Compare(x.Key.ID, y.Key.ID), cmp.Compare(x.Key.Service, y.Key.Service))
	})
	return out
}
