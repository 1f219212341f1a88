package core

import (
	"grapevine/announce"
	"grapevine/records"
)

// MsgType numbers the protocol messages. The list is append-only: a number
// is never reused or renumbered.
type MsgType uint8

const (
	TypeSyncReq MsgType = 1 // ask for changes since a cursor
	TypeDigest  MsgType = 2 // ids of changed records (reply or push)
	TypeFetch   MsgType = 3 // ask for full records
	TypeRecords MsgType = 4 // full signed records
	TypeOwn     MsgType = 5 // the sender's own changed records, pushed whole
)

// Msg is a protocol message. The transport encodes it (see package wire),
// and Config.MsgSize gives its encoded length.
type Msg interface {
	Type() MsgType
}

// SyncReq asks a neighbour for the changes to its record index after
// Cursor. Epoch is the index epoch the cursor belongs to (0: none yet); a
// neighbour whose epoch differs (it restarted) answers from the start.
// Neighbour says the sender gossips over this link (the overlay): the
// receiver then sends it every live record, not only the two ends' own.
type SyncReq struct {
	Epoch     uint64
	Cursor    uint64
	Neighbour bool
}

// Digest lists records that changed in the sender's index in (From, To],
// by id only. It answers a SyncReq and is also pushed when records change.
// More says To is not the end of the index: ask again from To.
type Digest struct {
	Epoch uint64
	From  uint64
	To    uint64
	More  bool
	Items []Item
}

// Item names one record version: enough to decide whether to fetch it.
type Item struct {
	Service string
	ID      announce.NodeID
	Seqnum  int64
	Hash    uint64 // first 8 bytes of sha256(msg)
	Ver     uint64 // its position in the sender's index
}

// Key returns the record key.
func (it Item) Key() records.Key { return records.Key{Service: it.Service, ID: it.ID} }

// Fetch asks for the current records of these keys.
type Fetch struct {
	Keys []records.Key
}

// Records carries signed records in answer to a Fetch.
type Records struct {
	Recs []announce.Signed
}

// Own pushes the sender's own records that changed, whole, over a link
// that carries only its two ends' own records (a plain link): one message
// where a digest, a fetch and the records would be three. Like a digest
// it covers the sender's index in (From, To], so the receiver's cursor
// moves on. The receiver admits only records signed by the sender.
type Own struct {
	Epoch uint64
	From  uint64
	To    uint64
	Recs  []announce.Signed
}

func (SyncReq) Type() MsgType { return TypeSyncReq }
func (Digest) Type() MsgType  { return TypeDigest }
func (Fetch) Type() MsgType   { return TypeFetch }
func (Records) Type() MsgType { return TypeRecords }
func (Own) Type() MsgType     { return TypeOwn }

// MaxMsgBytes bounds the encoded size of a digest the core builds, well
// under the transport's frame limit (wire.MaxFrame, 2 MiB), whatever the
// service names' lengths.
const MaxMsgBytes = 1 << 20
