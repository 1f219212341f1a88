// Package peerbook persists a node's core.State: its seqnum counter, its
// held records (the signed bytes exactly, so they are verified again on
// load and passed on), its tombstones, and the history of every peer.
//
// Book is the interface. Memory is the in-memory reference; SQLite is the
// durable store. Both keep one canonical form: Load returns records,
// tombstones and peers in the order core.State uses, empty lists as nil,
// and times in UTC without a monotonic reading (the zero time stays zero),
// so Load(Save(x)) deep-equals x for a state in that form.
//
// # Crash safety
//
// Every Save and SaveCounter of SQLite is one transaction in WAL mode with
// synchronous=FULL: once it returns, the change survives kill -9 and power
// loss, and a crash before that leaves the previous state whole. The
// counter never goes down: SaveCounter refuses a lower value, and Save
// keeps the higher of the stored and the given counter. A file is locked
// while open, so one process at a time uses it. A write that fails (a
// full disk is reported as syscall.ENOSPC) changes nothing, and the next
// Save writes the whole difference from what the file holds.
//
// # Schema versions
//
// The schema version is PRAGMA user_version, the length of an append-only
// list of migrations. Opening applies the missing ones in one transaction.
// A file from a newer version is refused with a *VersionError and left
// untouched. A released migration is never edited; a change is a new one.
//
// # Damage
//
// Load skips a row it cannot decode and reports it in a *SkippedError,
// one *CorruptError per row; the row stays in the file until a Save writes
// the same key. A damaged meta row (the counter) fails Open, Load and
// Save: the counter cannot be guessed.
package peerbook
