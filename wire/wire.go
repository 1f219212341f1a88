package wire

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/records"
)

// Version is the protocol version byte every message starts with.
const Version = 1

// Connection message types, appended to core's list (see the package doc).
const (
	TypePing core.MsgType = 16
	TypePong core.MsgType = 17
	// Joining a grid (docs/grid.md): the invitee presents the invite's secret
	// and the inviter answers with a certificate chain or a refusal.
	TypeRedeem      core.MsgType = 18
	TypeRedeemReply core.MsgType = 19
	// The inviter offers (holding one use), the invitee confirms or
	// declines; only a confirmed offer gets a certificate, so a
	// join the invitee refuses spends nothing.
	TypeRedeemOffer   core.MsgType = 20
	TypeRedeemConfirm core.MsgType = 21
)

// Bounds. Decode refuses, and Append will not produce, anything beyond them.
const (
	// MaxFrame bounds an encoded message: 2 MiB holds a Records answer to
	// a fetch of core's default 64 keys with every record at
	// announce.MaxMsgSize (about 1.06 MB), with room to spare.
	MaxFrame = 2 << 20

	MaxDigestItems = 4096 // core's default is 256
	MaxFetchKeys   = 4096 // core's default is 64
	MaxRecords     = 1024 // core's default is 64

	MaxServiceLen = announce.MaxMsgSize // a service name lies inside a signed msg
	MaxRecordLen  = announce.MaxMsgSize // Signed.Msg
	MaxSigLen     = 256                 // Signed.Sig; a valid one is 106 bytes
	MaxKeyLen     = 256                 // Signed.Key; a valid one is 55 bytes

	MaxReasonLen   = 256  // RedeemReply.Reason
	MaxCertLen     = 1024 // one certificate or revocation in text form
	MaxChain       = 16   // certificates in a chain
	MaxRevocations = 4096 // revocations in a RedeemReply
)

// Ping asks the peer to echo Nonce in a Pong; the round trip is an RTT
// sample.
type Ping struct{ Nonce uint64 }

// Pong answers a Ping with its nonce.
type Pong struct{ Nonce uint64 }

// Redeem presents an invite's secret to the inviter.
type Redeem struct{ Secret [16]byte }

// RedeemReply answers a Redeem: Reason is empty on success, else why the
// invite was refused ("unknown", "used", "expired"). On success Chain is
// the invitee's certificate chain (text form), Revocations what the
// inviter knows, and Records the records it passes on.
type RedeemReply struct {
	Reason      string
	Chain       []string
	Revocations []string
	Records     []announce.Signed
}

// RedeemOffer answers a good Redeem before any certificate is issued: the
// inviter's grid and its own certificate chain (empty for the founder),
// for the invitee to check against its code. The inviter holds one use of
// the invite for the invitee until it confirms, declines, disconnects or
// takes too long.
type RedeemOffer struct {
	Grid  announce.NodeID
	Chain []string
}

// RedeemConfirm answers a RedeemOffer: Accept asks for the certificate
// (answered by a RedeemReply, and the use is spent); false declines and
// gives the use back.
type RedeemConfirm struct{ Accept bool }

func (RedeemOffer) Type() core.MsgType   { return TypeRedeemOffer }
func (RedeemConfirm) Type() core.MsgType { return TypeRedeemConfirm }
func (Redeem) Type() core.MsgType        { return TypeRedeem }
func (RedeemReply) Type() core.MsgType   { return TypeRedeemReply }
func (Ping) Type() core.MsgType          { return TypePing }
func (Pong) Type() core.MsgType          { return TypePong }

// TypeName names a message type for errors and logs.
func TypeName(t core.MsgType) string {
	switch t {
	case core.TypeSyncReq:
		return "sync-req"
	case core.TypeDigest:
		return "digest"
	case core.TypeFetch:
		return "fetch"
	case core.TypeRecords:
		return "records"
	case core.TypeOwn:
		return "own"
	case TypePing:
		return "ping"
	case TypePong:
		return "pong"
	case TypeRedeem:
		return "redeem"
	case TypeRedeemReply:
		return "redeem-reply"
	case TypeRedeemOffer:
		return "redeem-offer"
	case TypeRedeemConfirm:
		return "redeem-confirm"
	}
	return "type-" + strconv.Itoa(int(t))
}

// Reason says what was wrong. Reasons are stable words for logs and metrics.
type Reason string

const (
	ReasonVersion      Reason = "unknown-version"
	ReasonType         Reason = "unknown-type"
	ReasonTruncated    Reason = "truncated"
	ReasonTrailing     Reason = "trailing-bytes"
	ReasonTooMany      Reason = "too-many"      // a count above its bound
	ReasonTooLong      Reason = "too-long"      // a string above its bound
	ReasonTooLarge     Reason = "too-large"     // a message or frame above MaxFrame
	ReasonNonCanonical Reason = "non-canonical" // a varint longer than needed
	ReasonBadValue     Reason = "bad-value"     // a bool other than 0/1, a varint over 64 bits
	ReasonBadID        Reason = "bad-id"        // a node ID that is not v0- and 32 key bytes
	ReasonBadUTF8      Reason = "bad-utf8"      // a service name that is not UTF-8
)

// Error is every error of this package about bytes or messages. Offset is
// the byte offset of the field in the message (a frame's length field is
// at offset -4).
type Error struct {
	Reason Reason
	Type   core.MsgType // the message type, 0 if not known yet
	Field  string       // e.g. "items[3].service"
	Offset int
	Detail string
}

func (e *Error) Error() string {
	s := "wire: " + string(e.Reason)
	if e.Type != 0 {
		s += " in " + TypeName(e.Type)
	}
	if e.Field != "" {
		s += " " + e.Field
	}
	s += " at byte " + strconv.Itoa(e.Offset)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Is makes errors.Is(err, ErrTruncated) and friends match on Reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Type == 0 && t.Field == "" && t.Detail == "" && t.Offset == 0 && t.Reason == e.Reason
}

// Sentinels for errors.Is.
var (
	ErrVersion      = &Error{Reason: ReasonVersion}
	ErrType         = &Error{Reason: ReasonType}
	ErrTruncated    = &Error{Reason: ReasonTruncated}
	ErrTrailing     = &Error{Reason: ReasonTrailing}
	ErrTooMany      = &Error{Reason: ReasonTooMany}
	ErrTooLong      = &Error{Reason: ReasonTooLong}
	ErrTooLarge     = &Error{Reason: ReasonTooLarge}
	ErrNonCanonical = &Error{Reason: ReasonNonCanonical}
	ErrBadValue     = &Error{Reason: ReasonBadValue}
	ErrBadID        = &Error{Reason: ReasonBadID}
	ErrBadUTF8      = &Error{Reason: ReasonBadUTF8}
)

// encode returns the encoding of m, which is Size(m) bytes long.
func encode(m core.Msg) ([]byte, error) {
	return Append(nil, m)
}

// Size returns the length of m's encoding without encoding it: the
// encoder's layout (encoder.msg) run counting bytes instead of writing
// them, so the two cannot disagree. The core gets it as
// core.Config.MsgSize.
func Size(m core.Msg) int {
	if m == nil {
		return 0
	}
	e := encoder{counting: true}
	e.msg(m)
	return e.n
}

// ItemSize returns the length of one digest item's encoding: what it adds
// to a digest. The core gets it as core.Config.ItemSize.
func ItemSize(it core.Item) int {
	e := encoder{counting: true}
	e.item(it)
	return e.n
}

func (e *encoder) item(it core.Item) {
	e.str(it.Service)
	e.id("id", it.ID)
	e.varint(it.Seqnum)
	e.u64(it.Hash)
	e.uvarint(it.Ver)
}

// Append appends the encoding of m to b. On error b is returned unchanged.
func Append(b []byte, m core.Msg) ([]byte, error) {
	e := encoder{b: b, start: len(b)}
	if m == nil {
		return b, e.fail(ReasonType, "type", "nil message")
	}
	e.typ = m.Type()
	e.list, e.idx = "", -1
	if err := e.check(m); err != nil {
		return b, err
	}
	if n := Size(m); n > MaxFrame {
		return b, e.fail(ReasonTooLarge, "", "%d bytes, limit %d", n, MaxFrame)
	}
	e.msg(m)
	if e.err != nil {
		return b, e.err
	}
	return e.b, nil
}

// msg lays out m: the one description of every message's bytes, both
// written (Append) and counted (Size). The package doc lists the layouts.
func (e *encoder) msg(m core.Msg) {
	e.raw(Version, byte(m.Type()))
	switch m := m.(type) {
	case core.SyncReq:
		e.u64(m.Epoch)
		e.u64(m.Cursor)
		e.bool(m.Neighbour)
	case core.Digest:
		e.u64(m.Epoch)
		e.u64(m.From)
		e.u64(m.To)
		e.bool(m.More)
		e.uvarint(uint64(len(m.Items)))
		e.list = "items"
		for i, it := range m.Items {
			e.idx = i
			e.item(it)
		}
	case core.Fetch:
		e.uvarint(uint64(len(m.Keys)))
		e.list = "keys"
		for i, k := range m.Keys {
			e.idx = i
			e.str(k.Service)
			e.id("id", k.ID)
		}
	case core.Records:
		e.records(m.Recs)
	case core.Own:
		e.u64(m.Epoch)
		e.u64(m.From)
		e.u64(m.To)
		e.records(m.Recs)
	case Ping:
		e.u64(m.Nonce)
	case Pong:
		e.u64(m.Nonce)
	case Redeem:
		e.raw(m.Secret[:]...)
	case RedeemReply:
		e.str(m.Reason)
		e.uvarint(uint64(len(m.Chain)))
		for _, c := range m.Chain {
			e.str(c)
		}
		e.uvarint(uint64(len(m.Revocations)))
		for _, r := range m.Revocations {
			e.str(r)
		}
		e.records(m.Records)
	case RedeemOffer:
		e.id("grid", m.Grid)
		e.uvarint(uint64(len(m.Chain)))
		for _, c := range m.Chain {
			e.str(c)
		}
	case RedeemConfirm:
		e.bool(m.Accept)
	}
}

// encoder writes a message's fields to b or, counting, only adds up
// their lengths in n.
type encoder struct {
	b        []byte
	counting bool
	n        int
	start    int
	typ      core.MsgType
	list     string
	idx      int
	err      *Error
}

func (e *encoder) fail(r Reason, field, format string, args ...any) *Error {
	if e.list != "" && e.idx >= 0 {
		field = e.list + "[" + strconv.Itoa(e.idx) + "]." + field
	}
	return &Error{Reason: r, Type: e.typ, Field: field, Offset: len(e.b) - e.start, Detail: fmt.Sprintf(format, args...)}
}

// check refuses what Decode would refuse, before anything is written.
func (e *encoder) check(m core.Msg) *Error {
	switch m := m.(type) {
	case core.SyncReq, Ping, Pong, Redeem, RedeemConfirm:
	case RedeemOffer:
		if len(m.Chain) > MaxChain {
			return e.fail(ReasonTooMany, "chain", "%d, limit %d", len(m.Chain), MaxChain)
		}
		for i, c := range m.Chain {
			if len(c) > MaxCertLen || !utf8.ValidString(c) {
				return e.fail(ReasonTooLong, "chain["+strconv.Itoa(i)+"]", "%d bytes (limit %d) or not UTF-8", len(c), MaxCertLen)
			}
		}
	case RedeemReply:
		switch {
		case len(m.Reason) > MaxReasonLen || !utf8.ValidString(m.Reason):
			return e.fail(ReasonTooLong, "reason", "%d bytes (limit %d) or not UTF-8", len(m.Reason), MaxReasonLen)
		case len(m.Chain) > MaxChain:
			return e.fail(ReasonTooMany, "chain", "%d, limit %d", len(m.Chain), MaxChain)
		case len(m.Revocations) > MaxRevocations:
			return e.fail(ReasonTooMany, "revocations", "%d, limit %d", len(m.Revocations), MaxRevocations)
		case len(m.Records) > MaxRecords:
			return e.fail(ReasonTooMany, "records", "%d, limit %d", len(m.Records), MaxRecords)
		}
		for i, c := range append(slices.Clone(m.Chain), m.Revocations...) {
			if len(c) > MaxCertLen {
				return e.fail(ReasonTooLong, "certs["+strconv.Itoa(i)+"]", "%d bytes, limit %d", len(c), MaxCertLen)
			}
			if !utf8.ValidString(c) {
				return e.fail(ReasonBadUTF8, "certs["+strconv.Itoa(i)+"]", "not UTF-8")
			}
		}
		if err := e.checkRecords("records", m.Records); err != nil {
			return err
		}
	case core.Digest:
		if len(m.Items) > MaxDigestItems {
			return e.fail(ReasonTooMany, "items", "%d, limit %d", len(m.Items), MaxDigestItems)
		}
		for i, it := range m.Items {
			if err := e.checkService(i, "items", it.Service); err != nil {
				return err
			}
		}
	case core.Fetch:
		if len(m.Keys) > MaxFetchKeys {
			return e.fail(ReasonTooMany, "keys", "%d, limit %d", len(m.Keys), MaxFetchKeys)
		}
		for i, k := range m.Keys {
			if err := e.checkService(i, "keys", k.Service); err != nil {
				return err
			}
		}
	case core.Records:
		return e.checkRecs(m.Recs)
	case core.Own:
		return e.checkRecs(m.Recs)
	default:
		return e.fail(ReasonType, "type", "cannot encode %T (type %d)", m, m.Type())
	}
	return nil
}

// checkRecs refuses a list of records over MaxRecords or with a field
// over its bound.
func (e *encoder) checkRecs(recs []announce.Signed) *Error {
	if len(recs) > MaxRecords {
		return e.fail(ReasonTooMany, "recs", "%d, limit %d", len(recs), MaxRecords)
	}
	return e.checkRecords("recs", recs)
}

// checkRecords refuses a signed record with a field over its bound.
func (e *encoder) checkRecords(list string, recs []announce.Signed) *Error {
	for i, r := range recs {
		for _, f := range []struct {
			name string
			s    string
			max  int
		}{{"msg", r.Msg, MaxRecordLen}, {"sig", r.Sig, MaxSigLen}, {"key", r.Key, MaxKeyLen}} {
			if len(f.s) > f.max {
				return e.fail(ReasonTooLong, list+"["+strconv.Itoa(i)+"]."+f.name, "%d bytes, limit %d", len(f.s), f.max)
			}
		}
	}
	return nil
}

func (e *encoder) checkService(i int, list, s string) *Error {
	field := list + "[" + strconv.Itoa(i) + "].service"
	if len(s) > MaxServiceLen {
		return e.fail(ReasonTooLong, field, "%d bytes, limit %d", len(s), MaxServiceLen)
	}
	if !utf8.ValidString(s) {
		return e.fail(ReasonBadUTF8, field, "service name is not UTF-8")
	}
	return nil
}

func (e *encoder) raw(p ...byte) {
	if e.counting {
		e.n += len(p)
		return
	}
	e.b = append(e.b, p...)
}

func (e *encoder) u64(v uint64) {
	if e.counting {
		e.n += 8
		return
	}
	e.b = binary.BigEndian.AppendUint64(e.b, v)
}

func (e *encoder) uvarint(v uint64) {
	if e.counting {
		e.n += uvarintLen(v)
		return
	}
	e.b = binary.AppendUvarint(e.b, v)
}

// varint is zigzag then uvarint, as binary.AppendVarint writes it.
func (e *encoder) varint(v int64) { e.uvarint(uint64(v<<1) ^ uint64(v>>63)) }

func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	if e.counting {
		e.n += len(s)
		return
	}
	e.b = append(e.b, s...)
}

func (e *encoder) records(recs []announce.Signed) {
	e.uvarint(uint64(len(recs)))
	for _, r := range recs {
		e.str(r.Msg)
		e.str(r.Sig)
		e.str(r.Key)
	}
}

func (e *encoder) bool(v bool) {
	if v {
		e.raw(1)
	} else {
		e.raw(0)
	}
}

// idSize is the encoded size of a node ID: its raw 32-byte key.
const idSize = 32

func (e *encoder) id(field string, id announce.NodeID) {
	if e.counting {
		e.n += idSize
		return
	}
	pub, err := id.PublicKey()
	if err != nil {
		if e.err == nil {
			e.err = e.fail(ReasonBadID, field, "%q: %v", id, err)
		}
		pub = make([]byte, idSize) // keep going; the result is discarded
	}
	e.b = append(e.b, pub...)
}

// Minimum encoded sizes of list elements, to refuse counts the remaining
// bytes cannot hold before allocating.
const (
	minItem   = 1 + idSize + 1 + 8 + 1
	minKey    = 1 + idSize
	minRecord = 3
)

// Decode parses one message. It returns a core message (core.SyncReq,
// core.Digest, core.Fetch, core.Records) or a connection message (Ping,
// Pong), or an *Error. Slices of zero length are nil.
func Decode(b []byte) (core.Msg, error) {
	d := decoder{b: b, idx: -1}
	m := d.msg()
	if d.err != nil {
		return nil, d.err
	}
	if d.off != len(b) {
		return nil, &Error{Reason: ReasonTrailing, Type: d.typ, Offset: d.off, Detail: fmt.Sprintf("%d bytes after the message", len(b)-d.off)}
	}
	return m, nil
}

type decoder struct {
	b    []byte
	off  int
	typ  core.MsgType
	list string
	idx  int
	err  *Error
}

func (d *decoder) fail(r Reason, field string, off int, format string, args ...any) {
	if d.err != nil {
		return
	}
	if d.list != "" && d.idx >= 0 {
		field = d.list + "[" + strconv.Itoa(d.idx) + "]." + field
	}
	d.err = &Error{Reason: r, Type: d.typ, Field: field, Offset: off, Detail: fmt.Sprintf(format, args...)}
}

func (d *decoder) need(field string, n int) bool {
	if d.err != nil {
		return false
	}
	if len(d.b)-d.off < n {
		d.fail(ReasonTruncated, field, d.off, "need %d bytes, have %d", n, len(d.b)-d.off)
		return false
	}
	return true
}

func (d *decoder) msg() core.Msg {
	if !d.need("version", 1) {
		return nil
	}
	if v := d.b[0]; v != Version {
		d.fail(ReasonVersion, "version", 0, "version %d, want %d", v, Version)
		return nil
	}
	d.off++
	if !d.need("type", 1) {
		return nil
	}
	d.typ = core.MsgType(d.b[1])
	d.off++
	switch d.typ {
	case core.TypeSyncReq:
		return core.SyncReq{Epoch: d.u64("epoch"), Cursor: d.u64("cursor"), Neighbour: d.bool("neighbour")}
	case core.TypeDigest:
		m := core.Digest{Epoch: d.u64("epoch"), From: d.u64("from"), To: d.u64("to"), More: d.bool("more")}
		n := d.count("items", MaxDigestItems, minItem)
		if n > 0 {
			m.Items = make([]core.Item, n)
		}
		d.list = "items"
		for i := range n {
			d.idx = i
			it := &m.Items[i]
			it.Service = d.str("service", MaxServiceLen, true)
			it.ID = d.id("id")
			it.Seqnum = d.varint("seqnum")
			it.Hash = d.u64("hash")
			it.Ver = d.uvarint("ver")
			if d.err != nil {
				return nil
			}
		}
		return m
	case core.TypeFetch:
		var m core.Fetch
		n := d.count("keys", MaxFetchKeys, minKey)
		if n > 0 {
			m.Keys = make([]records.Key, n)
		}
		d.list = "keys"
		for i := range n {
			d.idx = i
			m.Keys[i] = records.Key{Service: d.str("service", MaxServiceLen, true), ID: d.id("id")}
			if d.err != nil {
				return nil
			}
		}
		return m
	case core.TypeRecords:
		recs, ok := d.recs()
		if !ok {
			return nil
		}
		return core.Records{Recs: recs}
	case core.TypeOwn:
		m := core.Own{Epoch: d.u64("epoch"), From: d.u64("from"), To: d.u64("to")}
		recs, ok := d.recs()
		if !ok {
			return nil
		}
		m.Recs = recs
		return m
	case TypePing:
		return Ping{Nonce: d.u64("nonce")}
	case TypePong:
		return Pong{Nonce: d.u64("nonce")}
	case TypeRedeem:
		var m Redeem
		if d.need("secret", 16) {
			copy(m.Secret[:], d.b[d.off:])
			d.off += 16
		}
		return m
	case TypeRedeemReply:
		m := RedeemReply{Reason: d.str("reason", MaxReasonLen, true)}
		n := d.count("chain", MaxChain, 1)
		for range n {
			m.Chain = append(m.Chain, d.str("chain", MaxCertLen, true))
		}
		n = d.count("revocations", MaxRevocations, 1)
		for range n {
			m.Revocations = append(m.Revocations, d.str("revocations", MaxCertLen, true))
		}
		n = d.count("records", MaxRecords, minRecord)
		for range n {
			m.Records = append(m.Records, d.record())
		}
		if d.err != nil {
			return nil
		}
		return m
	case TypeRedeemOffer:
		m := RedeemOffer{Grid: d.id("grid")}
		n := d.count("chain", MaxChain, 1)
		for range n {
			m.Chain = append(m.Chain, d.str("chain", MaxCertLen, true))
		}
		if d.err != nil {
			return nil
		}
		return m
	case TypeRedeemConfirm:
		return RedeemConfirm{Accept: d.bool("accept")}
	}
	d.fail(ReasonType, "type", 1, "unknown message type %d", d.typ)
	return nil
}

// recs reads a list of signed records.
func (d *decoder) recs() ([]announce.Signed, bool) {
	n := d.count("recs", MaxRecords, minRecord)
	var recs []announce.Signed
	if n > 0 {
		recs = make([]announce.Signed, n)
	}
	d.list = "recs"
	for i := range n {
		d.idx = i
		recs[i] = d.record()
		if d.err != nil {
			return nil, false
		}
	}
	return recs, d.err == nil
}

// record reads one signed record; the core verifies its strings.
func (d *decoder) record() announce.Signed {
	return announce.Signed{
		Msg: d.str("msg", MaxRecordLen, false),
		Sig: d.str("sig", MaxSigLen, false),
		Key: d.str("key", MaxKeyLen, false),
	}
}

func (d *decoder) u64(field string) uint64 {
	if !d.need(field, 8) {
		return 0
	}
	v := binary.BigEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

func (d *decoder) bool(field string) bool {
	if !d.need(field, 1) {
		return false
	}
	v := d.b[d.off]
	if v > 1 {
		d.fail(ReasonBadValue, field, d.off, "bool byte %d, want 0 or 1", v)
		return false
	}
	d.off++
	return v == 1
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	switch {
	case n == 0:
		d.fail(ReasonTruncated, field, d.off, "varint runs past the end")
		return 0
	case n < 0:
		d.fail(ReasonBadValue, field, d.off, "varint overflows 64 bits")
		return 0
	case n != uvarintLen(v):
		d.fail(ReasonNonCanonical, field, d.off, "%d-byte varint for %d", n, v)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint(field string) int64 {
	u := d.uvarint(field)
	return int64(u>>1) ^ -int64(u&1)
}

// count reads a list length, refusing one above max or one the remaining
// bytes cannot hold (each element takes at least minEach bytes).
func (d *decoder) count(field string, max, minEach int) int {
	off := d.off
	n := d.uvarint(field)
	if d.err != nil {
		return 0
	}
	if n > uint64(max) {
		d.fail(ReasonTooMany, field, off, "%d, limit %d", n, max)
		return 0
	}
	if rest := len(d.b) - d.off; int(n)*minEach > rest {
		d.fail(ReasonTruncated, field, off, "%d elements cannot fit in %d bytes", n, rest)
		return 0
	}
	return int(n)
}

func (d *decoder) str(field string, max int, utf bool) string {
	off := d.off
	n := d.uvarint(field)
	if d.err != nil {
		return ""
	}
	if n > uint64(max) {
		d.fail(ReasonTooLong, field, off, "%d bytes, limit %d", n, max)
		return ""
	}
	if !d.need(field, int(n)) {
		return ""
	}
	s := string(d.b[d.off : d.off+int(n)])
	if utf && !utf8.ValidString(s) {
		d.fail(ReasonBadUTF8, field, d.off, "not UTF-8")
		return ""
	}
	d.off += int(n)
	return s
}

func (d *decoder) id(field string) announce.NodeID {
	if !d.need(field, idSize) {
		return ""
	}
	id := announce.IDOf(d.b[d.off : d.off+idSize])
	d.off += idSize
	return id
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
