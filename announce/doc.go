// Package announce implements Tahoe-LAFS's v2 signed announcements: the
// (msg, sig, key) wire form, a byte-exact encoder of Python's json.dumps,
// an order-keeping JSON parser that reads msg as Tahoe's json.loads does,
// ed25519 keys in Tahoe's file formats, verification before parsing, and
// the seqnum recovery rule. It is pure: no I/O, no clock, no global state.
package announce
