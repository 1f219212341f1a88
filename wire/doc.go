// Package wire is the binary encoding of Grapevine's messages and the
// framing that carries them over a stream.
//
// # Messages
//
// Every message starts with a 2-byte header: the protocol version (1) and
// the message type. Integers are big-endian. The field types are:
//
//	u8, u64   fixed 1 and 8 bytes
//	uvarint   unsigned LEB128 (encoding/binary), minimal length
//	varint    zigzag then uvarint (binary.AppendVarint), minimal length
//	str       uvarint byte length, then the bytes
//	id        a node ID as its 32 raw ed25519 public-key bytes
//	bool      u8, 0 or 1
//
// The layouts, after the header:
//
//	1 SyncReq   epoch u64 | cursor u64 | neighbour bool
//	2 Digest    epoch u64 | from u64 | to u64 | more bool | n uvarint | n × item
//	            item = service str | id | seqnum varint | hash u64 | ver uvarint
//	3 Fetch     n uvarint | n × (service str | id)
//	4 Records   n uvarint | n × (msg str | sig str | key str)
//	5 Own       epoch u64 | from u64 | to u64 | n uvarint | n × (msg str | sig str | key str)
//	16 Ping     nonce u64
//	17 Pong     nonce u64 (the ping's)
//	18 Redeem       secret 16 bytes (an invite's)
//	19 RedeemReply  reason str | n uvarint | n × cert str | m uvarint | m × revocation str |
//	                k uvarint | k × (msg str | sig str | key str)
//	20 RedeemOffer    grid id | n uvarint | n × cert str (the inviter's chain)
//	21 RedeemConfirm  accept bool
//
// Types 1-5 are the protocol's (core.Msg); 16 and up belong to the
// connection or to joining (18-21: handled by the daemon) and never
// reach the core. The list is append-only: a number
// is never reused or renumbered; 6-15 are left for protocol messages.
// A change of layout is a new version byte, not a new meaning of a type.
//
// The encoding is canonical: Decode refuses anything Append would not
// produce (long varints, a bool other than 0/1, trailing bytes), so
// re-encoding what Decode returns gives back b. Size(m) is the length
// Append writes, counted by the same code without writing.
//
// # Bounds
//
// Counts are bounded per message (MaxDigestItems, MaxFetchKeys,
// MaxRecords), strings per field (MaxServiceLen, MaxRecordLen, MaxSigLen,
// MaxKeyLen) and the whole message by MaxFrame. Append refuses what Decode
// would refuse, so a message that encodes is one the peer accepts. Service
// names must be UTF-8 (as every verified announcement's are); the record
// strings are passed on unchecked, since the core verifies them. The 32
// bytes of an id are not checked to be a curve point: no signature or
// handshake can succeed for one that is not.
//
// Every refusal is an *Error naming the reason, the field and the byte
// offset. Decode never panics (FuzzDecode).
//
// # Frames
//
// On a stream each message is a frame: a 4-byte big-endian length, then
// that many bytes of message (EncodeFrame). A reader refuses a length
// above its limit before allocating, and allocates large frames as their
// bytes arrive (the transport's reader; readFrame here, for the tests).
package wire
