package foolscap

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strings"
	"unicode/utf8"
)

// decodeLimits bound the memory one peer can make us use.
type decodeLimits struct {
	maxDepth        int // open sequences nested in one message
	maxItems        int // tokens in one top-level message
	maxMessageBytes int // bytes in one top-level message
	maxVocab        int // entries in the inbound vocab table
}

const (
	maxIndexLen     = 64  // first opentype token
	maxCopyableName = 200 // copyable class name
	maxVocabString  = 100 // set-vocab/add-vocab value (foolscap uses 100)
	failureName     = "twisted.python.failure.Failure"
)

// resolver connects the decoder to connection state. Errors are returned
// as *Violation (discard the message) or *ProtocolError (drop).
type resolver interface {
	myReference(clid int64, iface, url string) (Value, error)
	yourReference(clid int64) (Value, error)
	callTarget(clid int64) (Object, error)
	request(reqID int64) error
}

type msgKind uint8

const (
	mNone msgKind = iota
	mCall
	mAnswer
	mError
	mVocab
	mValue // top-level plain value (tests and fuzzing only)
)

type kwarg struct {
	Name  string
	Value Value
}

// message is one decoded top-level sequence.
type message struct {
	kind      msgKind
	reqID     int64
	haveReq   bool
	target    int64
	obj       Object
	method    string
	args      []Value
	kwargs    []kwarg
	value     Value // answer result, error failure value, or mValue
	violation *Violation
	aborted   bool
}

type frameKind uint8

const (
	fCall frameKind = iota + 1
	fArgs
	fAnswer
	fError
	fList
	fTuple
	fSet
	fFrozenSet
	fDict
	fNone
	fBool
	fUnicode
	fDecimal
	fReference
	fMyRef
	fYourRef
	fTheirRef
	fCopyable
	fSetVocab
	fAddVocab
)

var kindByName = map[string]frameKind{
	"call": fCall, "arguments": fArgs, "answer": fAnswer, "error": fError,
	"list": fList, "tuple": fTuple, "set": fSet, "immutable-set": fFrozenSet,
	"dict": fDict, "none": fNone, "boolean": fBool, "unicode": fUnicode,
	"decimal": fDecimal, "reference": fReference, "my-reference": fMyRef,
	"your-reference": fYourRef, "their-reference": fTheirRef,
	"copyable": fCopyable, "set-vocab": fSetVocab, "add-vocab": fAddVocab,
}

var nameByKind = func() map[frameKind]string {
	m := map[frameKind]string{}
	for k, v := range kindByName {
		m[v] = k
	}
	return m
}()

type frame struct {
	kind    frameKind
	openID  uint64 // header of the OPEN, repeated by CLOSE
	objID   int64  // object counter, target of 'reference'
	stage   int
	have    bool
	val     Value
	key     Value
	haveKey bool
	str     string
	num     int64
	items   []Value
	kvs     Dict
	kwargs  []kwarg
	seen    map[any]struct{}
	vocab   map[uint64][]byte
}

type argsValue struct {
	args   []Value
	kwargs []kwarg
}

// pendingObj marks an object whose sequence is still open.
type pendingObj struct{}

// refPlaceholder / yourRefPlaceholder are produced when no resolver is set.
type refPlaceholder struct {
	CLID      int64
	Interface string
	URL       string
	Extra     int // string tokens after the CLID (0, 1 or 2)
}
type yourRefPlaceholder struct{ CLID int64 }

// decoder turns tokens into top-level messages. It never panics and
// allocates only within the limits.
type decoder struct {
	lim       decodeLimits
	res       resolver
	topValues bool // accept plain values at top level (tests/fuzz)

	vocab    map[uint64][]byte
	objCount int64 // OPEN tokens seen on the connection

	stack   []*frame
	opening bool
	openIdx []string
	openID  uint64
	openObj int64
	openOff int64
	discard int // >0: open sequences left to skip after a Violation

	msg   *message
	refs  map[int64]Value
	items int
	bytes int
}

func newDecoder(lim decodeLimits, res resolver, vocabTable []string) *decoder {
	d := &decoder{lim: lim, res: res, vocab: map[uint64][]byte{}}
	for i, w := range vocabTable {
		d.vocab[uint64(i)] = []byte(w)
	}
	return d
}

func (d *decoder) perr(t token, format string, args ...any) error {
	return &ProtocolError{Offset: t.off, Token: tokenName(t.typ), Msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) top() *frame { return d.stack[len(d.stack)-1] }

// where describes the current position for error messages.
func (d *decoder) where() string {
	parts := []string{}
	for _, f := range d.stack {
		s := nameByKind[f.kind]
		if f.kind == fCall && f.stage >= 3 {
			s = fmt.Sprintf("call(%q)", f.str)
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "top level"
	}
	return strings.Join(parts, ".")
}

// feed processes one token, returning a completed message, if any.
func (d *decoder) feed(t token) (*message, error) {
	switch t.typ {
	case tPING, tPONG:
		return nil, nil
	case tERROR:
		return nil, &PeerError{Msg: string(t.body)}
	}
	if d.msg != nil {
		d.items++
		d.bytes += t.size
		if d.items > d.lim.maxItems {
			return nil, d.perr(t, "message has more than %d tokens", d.lim.maxItems)
		}
		if d.bytes > d.lim.maxMessageBytes {
			return nil, d.perr(t, "message larger than %d bytes", d.lim.maxMessageBytes)
		}
	}
	if d.discard > 0 {
		switch t.typ {
		case tOPEN:
			d.objCount++
			d.discard++
			if d.discard > d.lim.maxDepth {
				return nil, d.perr(t, "nesting deeper than %d", d.lim.maxDepth)
			}
		case tCLOSE:
			d.discard--
			if d.discard == 0 {
				return d.finish(), nil
			}
		}
		return nil, nil
	}
	if d.opening {
		return d.index(t)
	}
	switch t.typ {
	case tOPEN:
		if len(d.stack) == 0 {
			d.msg = &message{}
			d.items, d.bytes = 1, t.size
		} else if err := d.check(d.top(), t); err != nil {
			if _, ok := err.(*Violation); ok {
				// the refused sequence still needs its CLOSE skipped
				d.objCount++
				d.opening = true
			}
			return d.fail(t, err)
		}
		if len(d.stack)+1 > d.lim.maxDepth {
			return nil, d.perr(t, "nesting deeper than %d", d.lim.maxDepth)
		}
		d.opening = true
		d.openIdx = d.openIdx[:0]
		d.openID = t.n
		d.openObj = d.objCount
		d.openOff = t.off
		d.objCount++
		return nil, nil
	case tCLOSE:
		return d.close(t)
	case tABORT:
		if len(d.stack) == 0 {
			return nil, nil // nothing to abort; foolscap ignores it too
		}
		d.msg.aborted = true
		return d.violate(t, "ABORT received")
	}
	v, err := d.primitive(t)
	if err != nil {
		return nil, err
	}
	if len(d.stack) == 0 {
		if !d.topValues {
			return nil, d.perr(t, "top-level must be OPEN")
		}
		return &message{kind: mValue, value: v}, nil
	}
	f := d.top()
	if err := d.check(f, t); err != nil {
		return d.fail(t, err)
	}
	if err := d.receive(f, t, v); err != nil {
		return d.fail(t, err)
	}
	return nil, nil
}

// fail routes an error: Violations discard the message, others are fatal.
func (d *decoder) fail(t token, err error) (*message, error) {
	if v, ok := err.(*Violation); ok {
		return d.violate(t, v.Msg)
	}
	return nil, err
}

func (d *decoder) violate(t token, msg string) (*message, error) {
	v := &Violation{Offset: t.off, Msg: msg + " (in " + d.where() + ")"}
	if d.msg == nil {
		d.msg = &message{}
	}
	d.msg.violation = v
	depth := len(d.stack)
	if d.opening {
		depth++
		d.opening = false
	}
	clear(d.stack)
	d.stack = d.stack[:0]
	if depth == 0 {
		return d.finish(), nil
	}
	d.discard = depth
	return nil, nil
}

func (d *decoder) finish() *message {
	m := d.msg
	d.msg = nil
	d.refs = nil
	d.items, d.bytes = 0, 0
	if m != nil && m.kind == mVocab && m.violation == nil {
		return nil
	}
	return m
}

func viol(format string, args ...any) error {
	return &Violation{Msg: fmt.Sprintf(format, args...)}
}

// index handles tokens of the open-index phase (the opentype).
func (d *decoder) index(t token) (*message, error) {
	switch t.typ {
	case tSTRING, tVOCAB:
	case tOPEN:
		return nil, d.perr(t, "OPEN token followed by OPEN")
	case tCLOSE:
		return nil, d.perr(t, "CLOSE during open index")
	case tABORT:
		d.msg.aborted = true
		return d.violate(t, "ABORT received")
	default:
		return d.violate(t, fmt.Sprintf("index token 0x%02x not STRING or VOCAB", t.typ))
	}
	v, err := d.primitive(t)
	if err != nil {
		return nil, err
	}
	b := v.([]byte)
	limit := maxIndexLen
	if len(d.openIdx) == 1 && d.openIdx[0] == "copyable" {
		limit = maxCopyableName
	}
	if len(b) > limit {
		return d.violate(t, fmt.Sprintf("opentype token too long (%d > %d)", len(b), limit))
	}
	d.openIdx = append(d.openIdx, string(b))
	top := len(d.stack) == 0
	name := d.openIdx[0]
	kind := kindByName[name]
	if kind == fCopyable && len(d.openIdx) == 1 {
		if top && !d.topValues {
			return d.violate(t, "unknown top-level OPEN type (copyable)")
		}
		return nil, nil // wait for the class name
	}
	switch {
	case top:
		switch kind {
		case fCall, fAnswer, fError, fSetVocab, fAddVocab:
		case fArgs, 0:
			return d.violate(t, fmt.Sprintf("unknown top-level OPEN type (%q)", name))
		default:
			if !d.topValues {
				return d.violate(t, fmt.Sprintf("unknown top-level OPEN type (%q)", name))
			}
		}
	default:
		parent := d.top()
		switch kind {
		case fCall, fAnswer, fError, fSetVocab, fAddVocab, 0:
			return d.violate(t, fmt.Sprintf("unknown OPEN type (%q)", name))
		case fArgs:
			if parent.kind != fCall {
				return d.violate(t, "unexpected 'arguments' sequence")
			}
		default:
			if parent.kind == fCall {
				return nil, d.perr(t, "arguments must be an 'arguments' sequence")
			}
		}
	}
	f := &frame{kind: kind, openID: d.openID, objID: d.openObj}
	if kind == fCopyable {
		f.str = d.openIdx[1]
	}
	d.opening = false
	d.stack = append(d.stack, f)
	if top {
		switch kind {
		case fCall:
			d.msg.kind = mCall
		case fAnswer:
			d.msg.kind = mAnswer
		case fError:
			d.msg.kind = mError
		case fSetVocab, fAddVocab:
			d.msg.kind = mVocab
		default:
			d.msg.kind = mValue
		}
	}
	switch kind {
	case fList, fTuple, fSet, fFrozenSet, fDict, fCopyable:
		if d.refs == nil {
			d.refs = map[int64]Value{}
		}
		d.refs[f.objID] = pendingObj{}
	}
	return nil, nil
}

func (d *decoder) close(t token) (*message, error) {
	if len(d.stack) == 0 {
		return nil, d.perr(t, "CLOSE without matching OPEN")
	}
	f := d.top()
	if t.n != f.openID {
		return nil, d.perr(t, "lost sync, got CLOSE(%d) but expecting %d", t.n, f.openID)
	}
	v, err := d.finishFrame(f, t)
	if err != nil {
		if pe, ok := err.(*ProtocolError); ok {
			if pe.Offset == 0 {
				pe.Offset = t.off // from the resolver
			}
			return nil, err
		}
		d.stack = d.stack[:len(d.stack)-1]
		return d.fail(t, err)
	}
	d.stack = d.stack[:len(d.stack)-1]
	if _, ok := d.refs[f.objID]; ok {
		d.refs[f.objID] = v
	}
	if len(d.stack) == 0 {
		m := d.msg
		switch f.kind {
		case fAnswer, fError, fCall:
			// fields were filled while receiving
		default:
			m.value = v
		}
		return d.finish(), nil
	}
	p := d.top()
	if err := d.receive(p, t, v); err != nil {
		return d.fail(t, err)
	}
	return nil, nil
}

func (d *decoder) primitive(t token) (Value, error) {
	switch t.typ {
	case tINT:
		if t.big != nil {
			return normBig(t.big), nil
		}
		return normUint(t.n), nil
	case tNEG:
		if t.big != nil {
			return normBig(new(big.Int).Neg(t.big)), nil
		}
		if t.n <= 1<<63 {
			return -int64(t.n-1) - 1, nil
		}
		return new(big.Int).Neg(new(big.Int).SetUint64(t.n)), nil
	case tLONGINT, tLONGNEG:
		b := new(big.Int).SetBytes(t.body)
		if t.typ == tLONGNEG {
			b.Neg(b)
		}
		return normBig(b), nil
	case tFLOAT:
		return math.Float64frombits(binary.BigEndian.Uint64(t.body)), nil
	case tSTRING:
		return t.body, nil
	case tVOCAB:
		w, ok := d.vocab[t.n]
		if !ok {
			return nil, d.perr(t, "unknown vocab index %d", t.n)
		}
		return append([]byte(nil), w...), nil
	}
	return nil, d.perr(t, "unexpected token")
}

func isStr(typ byte) bool { return typ == tSTRING || typ == tVOCAB }

// check mirrors foolscap's Unslicer.checkToken: may this token (including
// OPEN) come next in frame f?
func (d *decoder) check(f *frame, t token) error {
	typ := t.typ
	switch f.kind {
	case fCall:
		switch f.stage {
		case 0:
			if typ != tINT {
				return d.perr(t, "request ID must be an INT")
			}
		case 1:
			if typ != tINT && typ != tNEG {
				return d.perr(t, "object ID must be an INT/NEG")
			}
		case 2:
			if !isStr(typ) {
				return d.perr(t, "method name must be a STRING")
			}
		case 3:
			if typ != tOPEN {
				return d.perr(t, "arguments must be an 'arguments' sequence")
			}
		default:
			return d.perr(t, "too many objects given to call")
		}
	case fArgs:
		if !f.have {
			if typ != tINT {
				return d.perr(t, "posarg count must be an INT")
			}
		} else if int64(len(f.items)) >= f.num && !f.haveKey && !isStr(typ) {
			return d.perr(t, "kwarg name must be a STRING")
		}
	case fAnswer, fError:
		if f.stage == 0 {
			if typ != tINT {
				return d.perr(t, "request ID must be an INT")
			}
		} else if f.have {
			return d.perr(t, "stop sending me stuff!")
		}
	case fNone:
		return d.perr(t, "'none' does not accept any tokens")
	case fBool:
		if typ != tINT {
			return d.perr(t, "'boolean' only accepts an INT token")
		}
		if f.have {
			return d.perr(t, "'boolean' only accepts one token")
		}
	case fUnicode, fDecimal:
		if !isStr(typ) {
			return d.perr(t, "'%s' only accepts strings", nameByKind[f.kind])
		}
		if f.have {
			return d.perr(t, "already received a string")
		}
	case fReference, fYourRef:
		if typ != tINT {
			return d.perr(t, "'%s' only accepts an INT", nameByKind[f.kind])
		}
		if f.have {
			return d.perr(t, "'%s' only accepts one INT", nameByKind[f.kind])
		}
	case fMyRef:
		switch f.stage {
		case 0:
			if typ != tINT && typ != tNEG {
				return d.perr(t, "reference ID must be an INT or NEG")
			}
		case 1, 2:
			if !isStr(typ) {
				return viol("my-reference interface name and URL must be strings")
			}
		default:
			return viol("too many parameters in my-reference")
		}
	case fTheirRef:
		switch f.stage {
		case 0:
			if typ != tINT {
				return d.perr(t, "their-reference giftID must be an INT")
			}
		case 1:
			if !isStr(typ) {
				return viol("their-reference URL must be a string")
			}
		default:
			return viol("too many parameters in their-reference")
		}
	case fCopyable:
		if !f.haveKey && !isStr(typ) {
			return d.perr(t, "copyable attribute names must be STRINGs")
		}
	case fSetVocab:
		if !f.haveKey {
			if typ != tINT {
				return d.perr(t, "vocab keys must be INTs")
			}
		} else if typ != tSTRING {
			return d.perr(t, "vocab values must be STRINGs")
		} else if t.n > maxVocabString {
			return d.perr(t, "vocab string too long")
		}
	case fAddVocab:
		switch f.stage {
		case 0:
			if typ != tINT {
				return d.perr(t, "vocab key must be an INT")
			}
		case 1:
			if typ != tSTRING {
				return d.perr(t, "vocab value must be a STRING")
			}
			if t.n > maxVocabString {
				return d.perr(t, "vocab string too long")
			}
		default:
			return viol("add-vocab only accepts two values")
		}
	}
	return nil
}

func asInt64(v Value) (int64, bool) {
	n, ok := v.(int64)
	return n, ok
}

// asID accepts request IDs and CLIDs in the INT/NEG token range
// [-2**31, 2**31), the only values foolscap sends for them.
func asID(v Value) (int64, bool) {
	n, ok := v.(int64)
	return n, ok && n >= -(1<<31) && n < 1<<31
}

// receive stores a checked child value (t is the token that produced it:
// the primitive itself or the CLOSE of a sub-sequence).
func (d *decoder) receive(f *frame, t token, v Value) error {
	switch f.kind {
	case fCall:
		switch f.stage {
		case 0:
			n, ok := asID(v)
			if !ok {
				return d.perr(t, "request ID out of range")
			}
			d.msg.reqID, d.msg.haveReq = n, true
		case 1:
			n, ok := asID(v)
			if !ok {
				return d.perr(t, "object ID out of range")
			}
			d.msg.target = n
			if d.res != nil {
				obj, err := d.res.callTarget(n)
				if err != nil {
					return err
				}
				d.msg.obj = obj
			}
		case 2:
			f.str = string(v.([]byte))
			d.msg.method = f.str
		case 3:
			a, ok := v.(*argsValue)
			if !ok {
				return d.perr(t, "arguments must be an 'arguments' sequence")
			}
			d.msg.args, d.msg.kwargs = a.args, a.kwargs
		}
		f.stage++
	case fArgs:
		switch {
		case !f.have:
			n, ok := asInt64(v)
			if !ok || n < 0 || n > int64(d.lim.maxItems) {
				return d.perr(t, "bad positional argument count")
			}
			f.num, f.have = n, true
		case int64(len(f.items)) < f.num:
			f.items = append(f.items, v)
		case !f.haveKey:
			name := string(v.([]byte))
			for _, kw := range f.kwargs {
				if kw.Name == name {
					return d.perr(t, "duplicate keyword argument %q", name)
				}
			}
			f.str, f.haveKey = name, true
		default:
			f.kwargs = append(f.kwargs, kwarg{f.str, v})
			f.haveKey = false
		}
	case fAnswer, fError:
		if f.stage == 0 {
			n, ok := asID(v)
			if !ok {
				return d.perr(t, "request ID out of range")
			}
			d.msg.reqID, d.msg.haveReq = n, true
			f.stage = 1
			if d.res != nil {
				if err := d.res.request(n); err != nil {
					return err
				}
			}
			return nil
		}
		d.msg.value, f.have = v, true
	case fList, fTuple, fSet, fFrozenSet:
		f.items = append(f.items, v)
	case fDict:
		if !f.haveKey {
			if k, ok := scalarKey(v); ok {
				if f.seen == nil {
					f.seen = map[any]struct{}{}
				}
				if _, dup := f.seen[k]; dup {
					return d.perr(t, "duplicate dict key")
				}
				f.seen[k] = struct{}{}
			}
			f.key, f.haveKey = v, true
		} else {
			f.kvs = append(f.kvs, KV{f.key, v})
			f.key, f.haveKey = nil, false
		}
	case fBool:
		switch n := v.(type) {
		case int64:
			f.val = n != 0
		default:
			f.val = true
		}
		f.have = true
	case fUnicode:
		b := v.([]byte)
		if !utf8.Valid(b) {
			return d.perr(t, "invalid UTF-8 in unicode")
		}
		f.val, f.have = string(b), true
	case fDecimal:
		f.val, f.have = Decimal(v.([]byte)), true
	case fReference:
		n, ok := asInt64(v)
		obj, found := d.refs[n]
		if !ok || !found {
			return d.perr(t, "dangling reference '%v'", v)
		}
		if _, p := obj.(pendingObj); p {
			return viol("reference to an object that is still being decoded (cycles are not supported)")
		}
		f.val, f.have = obj, true
	case fMyRef:
		switch f.stage {
		case 0:
			n, ok := asID(v)
			if !ok {
				return d.perr(t, "reference ID out of range")
			}
			f.num = n
		case 1:
			f.str = string(v.([]byte))
		case 2:
			f.key = string(v.([]byte))
		}
		f.stage++
	case fYourRef:
		n, ok := asID(v)
		if !ok {
			return d.perr(t, "reference ID out of range")
		}
		f.num, f.have = n, true
	case fTheirRef:
		f.stage++
	case fCopyable:
		if !f.haveKey {
			name := string(v.([]byte))
			for _, kv := range f.kvs {
				if kv.Key.(string) == name {
					return d.perr(t, "duplicate attribute name %q", name)
				}
			}
			f.key, f.haveKey = name, true
		} else {
			f.kvs = append(f.kvs, KV{f.key, v})
			f.haveKey = false
		}
	case fSetVocab:
		if !f.haveKey {
			n, ok := asInt64(v)
			if !ok || n < 0 {
				return d.perr(t, "bad vocab key")
			}
			if f.vocab == nil {
				f.vocab = map[uint64][]byte{}
			}
			if _, dup := f.vocab[uint64(n)]; dup {
				return d.perr(t, "duplicate vocab key %d", n)
			}
			if len(f.vocab) >= d.lim.maxVocab {
				return d.perr(t, "vocab table larger than %d", d.lim.maxVocab)
			}
			f.num, f.haveKey = n, true
		} else {
			f.vocab[uint64(f.num)] = v.([]byte)
			f.haveKey = false
		}
	case fAddVocab:
		if f.stage == 0 {
			n, ok := asInt64(v)
			if !ok || n < 0 {
				return d.perr(t, "bad vocab key")
			}
			f.num = n
		} else {
			f.val = v
		}
		f.stage++
	}
	return nil
}

func (d *decoder) finishFrame(f *frame, t token) (Value, error) {
	switch f.kind {
	case fCall:
		if f.stage != 4 {
			return nil, d.perr(t, "'call' sequence ended too early")
		}
		return nil, nil
	case fArgs:
		if !f.have || int64(len(f.items)) < f.num || f.haveKey {
			return nil, d.perr(t, "'arguments' sequence ended too early")
		}
		return &argsValue{args: f.items, kwargs: f.kwargs}, nil
	case fAnswer, fError:
		if !f.have {
			return nil, d.perr(t, "'%s' sequence ended too early", nameByKind[f.kind])
		}
		return nil, nil
	case fList:
		return List(nonNil(f.items)), nil
	case fTuple:
		return Tuple(nonNil(f.items)), nil
	case fSet:
		return Set(nonNil(f.items)), nil
	case fFrozenSet:
		return FrozenSet(nonNil(f.items)), nil
	case fDict:
		if f.haveKey {
			return nil, d.perr(t, "dict ended with a key but no value")
		}
		if f.kvs == nil {
			f.kvs = Dict{}
		}
		return f.kvs, nil
	case fNone:
		return nil, nil
	case fBool, fUnicode, fDecimal:
		return f.val, nil
	case fReference:
		if !f.have {
			return nil, d.perr(t, "'reference' sequence ended too early")
		}
		return f.val, nil
	case fMyRef:
		if f.stage == 0 {
			return nil, d.perr(t, "'my-reference' sequence ended too early")
		}
		url, _ := f.key.(string)
		if d.res == nil {
			return &refPlaceholder{CLID: f.num, Interface: f.str, URL: url, Extra: f.stage - 1}, nil
		}
		return d.res.myReference(f.num, f.str, url)
	case fYourRef:
		if !f.have {
			return nil, d.perr(t, "'your-reference' sequence ended too early")
		}
		if d.res == nil {
			return &yourRefPlaceholder{CLID: f.num}, nil
		}
		return d.res.yourReference(f.num)
	case fTheirRef:
		if f.stage < 2 {
			return nil, d.perr(t, "'their-reference' sequence ended too early")
		}
		return nil, viol("gifts (their-reference) are not supported")
	case fCopyable:
		if f.haveKey {
			return nil, d.perr(t, "copyable ended with a name but no value")
		}
		if f.kvs == nil {
			f.kvs = Dict{}
		}
		if f.str == failureName {
			return failureFromState(f.kvs), nil
		}
		return &Copyable{Name: f.str, State: f.kvs}, nil
	case fSetVocab:
		if f.haveKey {
			return nil, d.perr(t, "set-vocab ended with a key but no value")
		}
		d.vocab = f.vocab
		if d.vocab == nil {
			d.vocab = map[uint64][]byte{}
		}
		return nil, nil
	case fAddVocab:
		if f.stage < 2 {
			return nil, d.perr(t, "'add-vocab' sequence ended too early")
		}
		if _, ok := d.vocab[uint64(f.num)]; !ok && len(d.vocab) >= d.lim.maxVocab {
			return nil, d.perr(t, "vocab table larger than %d", d.lim.maxVocab)
		}
		d.vocab[uint64(f.num)] = f.val.([]byte)
		return nil, nil
	}
	return nil, d.perr(t, "internal: unknown frame")
}

func nonNil(v []Value) []Value {
	if v == nil {
		return []Value{}
	}
	return v
}

func valueString(v Value) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case string:
		return x
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// failureFromState converts a Failure copyable's attributes.
func failureFromState(st Dict) *RemoteError {
	e := &RemoteError{}
	for _, kv := range st {
		switch kv.Key.(string) {
		case "type":
			e.Type = valueString(kv.Value)
		case "value":
			e.Value = valueString(kv.Value)
		case "traceback":
			e.Traceback = valueString(kv.Value)
		case "parents":
			if l, ok := kv.Value.(List); ok {
				for _, p := range l {
					e.Parents = append(e.Parents, valueString(p))
				}
			}
		}
	}
	return e
}
