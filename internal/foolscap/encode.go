package foolscap

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"unicode/utf8"
)

const maxEncodeDepth = 200

// exportTable tracks our objects that the peer holds references to
// (foolscap's myReferenceByCLID); guarded by Conn.wmu.
type exportTable struct {
	next   int64 // last CLID handed out; 0 is the broker
	byCLID map[int64]*export
	byObj  map[any]int64
}

type export struct {
	obj   Object
	iface string
	refs  int // times sent minus decrefs
}

func newExportTable() *exportTable {
	return &exportTable{byCLID: map[int64]*export{}, byObj: map[any]int64{}}
}

type tentExport struct {
	obj  Object
	clid int64
}

// encoder serializes messages. All state changes made while encoding one
// message are tentative until commit, so a failed encode sends nothing.
type encoder struct {
	buf       []byte
	openCount uint64
	vocab     map[string]uint64
	exp       *exportTable
	owner     *Conn // RemoteRefs of this connection may be sent back

	saveOpen uint64
	tentNew  []tentExport
	tentSent map[int64]int
}

func newEncoder(vocabTable []string, exp *exportTable, owner *Conn) *encoder {
	e := &encoder{vocab: map[string]uint64{}, exp: exp, owner: owner}
	for i, w := range vocabTable {
		e.vocab[w] = uint64(i)
	}
	return e
}

func (e *encoder) begin() {
	e.buf = e.buf[:0]
	e.saveOpen = e.openCount
	e.tentNew = e.tentNew[:0]
	clear(e.tentSent)
}

func (e *encoder) rollback() {
	e.buf = e.buf[:0]
	e.openCount = e.saveOpen
	e.tentNew = e.tentNew[:0]
	clear(e.tentSent)
}

func (e *encoder) commit() []byte {
	if e.exp != nil {
		for _, t := range e.tentNew {
			ex := &export{obj: t.obj, iface: interfaceName(t.obj)}
			e.exp.byCLID[t.clid] = ex
			if comparable(t.obj) {
				e.exp.byObj[t.obj] = t.clid
			}
			if t.clid > e.exp.next {
				e.exp.next = t.clid
			}
		}
		for clid, n := range e.tentSent {
			if ex := e.exp.byCLID[clid]; ex != nil {
				ex.refs += n
			}
		}
	}
	e.tentNew = e.tentNew[:0]
	clear(e.tentSent)
	return e.buf
}

func comparable(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.IsValid() && rv.Comparable()
}

func interfaceName(obj Object) string {
	if n, ok := obj.(RemoteInterfacer); ok {
		return n.RemoteInterfaceName()
	}
	return ""
}

func (e *encoder) header(n uint64) { e.buf = appendHeader(e.buf, n) }
func (e *encoder) ping()           { e.buf = append(e.buf, tPING) }
func (e *encoder) pong(n uint64) {
	if n != 0 {
		e.header(n)
	}
	e.buf = append(e.buf, tPONG)
}

// bananaError writes an ERROR token (message truncated like foolscap).
func (e *encoder) bananaError(msg string) {
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen-10] + "..."
	}
	e.header(uint64(len(msg)))
	e.buf = append(e.buf, tERROR)
	e.buf = append(e.buf, msg...)
}

func (e *encoder) open(opentype string) uint64 {
	id := e.openCount
	e.openCount++
	e.header(id)
	e.buf = append(e.buf, tOPEN)
	e.str(opentype)
	return id
}

func (e *encoder) close(id uint64) {
	e.header(id)
	e.buf = append(e.buf, tCLOSE)
}

// str writes bytes as VOCAB when the word is in the outbound table, like
// foolscap's sendToken.
func (e *encoder) str(s string) {
	if i, ok := e.vocab[s]; ok {
		e.header(i)
		e.buf = append(e.buf, tVOCAB)
		return
	}
	e.header(uint64(len(s)))
	e.buf = append(e.buf, tSTRING)
	e.buf = append(e.buf, s...)
}

func (e *encoder) int64(n int64) {
	switch {
	case n >= 1<<31:
		e.longBytes(tLONGINT, new(big.Int).SetInt64(n).Bytes())
	case n >= 0:
		e.header(uint64(n))
		e.buf = append(e.buf, tINT)
	case n < -(1 << 31):
		e.longBytes(tLONGNEG, new(big.Int).Neg(big.NewInt(n)).Bytes())
	default:
		e.header(uint64(-n))
		e.buf = append(e.buf, tNEG)
	}
}

func (e *encoder) bigInt(b *big.Int) error {
	if b.IsInt64() {
		e.int64(b.Int64())
		return nil
	}
	mag := new(big.Int).Abs(b).Bytes()
	if len(mag) > maxLongIntBytes {
		return fmt.Errorf("foolscap: integer too large to send (%d bytes)", len(mag))
	}
	if b.Sign() > 0 {
		e.longBytes(tLONGINT, mag)
	} else {
		e.longBytes(tLONGNEG, mag)
	}
	return nil
}

func (e *encoder) longBytes(typ byte, mag []byte) {
	e.header(uint64(len(mag)))
	e.buf = append(e.buf, typ)
	e.buf = append(e.buf, mag...)
}

func (e *encoder) float(f float64) {
	e.buf = append(e.buf, tFLOAT)
	e.buf = binary.BigEndian.AppendUint64(e.buf, math.Float64bits(f))
}

func (e *encoder) value(v Value) error { return e.val(v, 0) }

func (e *encoder) seq(opentype string, items []Value, depth int) error {
	id := e.open(opentype)
	for _, it := range items {
		if err := e.val(it, depth+1); err != nil {
			return err
		}
	}
	e.close(id)
	return nil
}

func (e *encoder) val(v Value, depth int) error {
	if depth > maxEncodeDepth {
		return fmt.Errorf("foolscap: value nested deeper than %d", maxEncodeDepth)
	}
	switch x := normInt(v).(type) {
	case nil:
		e.close(e.open("none"))
	case bool:
		id := e.open("boolean")
		if x {
			e.int64(1)
		} else {
			e.int64(0)
		}
		e.close(id)
	case int64:
		e.int64(x)
	case *big.Int:
		if x == nil {
			return fmt.Errorf("foolscap: nil *big.Int")
		}
		return e.bigInt(x)
	case float64:
		e.float(x)
	case float32:
		e.float(float64(x))
	case []byte:
		e.str(string(x))
	case string:
		if !utf8.ValidString(x) {
			return fmt.Errorf("foolscap: string is not valid UTF-8 (send []byte for bytes)")
		}
		id := e.open("unicode")
		e.str(x)
		e.close(id)
	case Decimal:
		id := e.open("decimal")
		e.str(string(x))
		e.close(id)
	case List:
		return e.seq("list", x, depth)
	case []Value:
		return e.seq("list", x, depth)
	case Tuple:
		return e.seq("tuple", x, depth)
	case Set:
		return e.seq("set", x, depth)
	case FrozenSet:
		return e.seq("immutable-set", x, depth)
	case Dict:
		id := e.open("dict")
		for _, kv := range x {
			if err := e.val(kv.Key, depth+1); err != nil {
				return err
			}
			if err := e.val(kv.Value, depth+1); err != nil {
				return err
			}
		}
		e.close(id)
	case *Copyable:
		id := e.open("copyable")
		e.str(x.Name)
		for _, kv := range x.State {
			k, ok := kv.Key.(string)
			if !ok {
				return fmt.Errorf("foolscap: copyable attribute names must be strings")
			}
			e.str(k)
			if err := e.val(kv.Value, depth+1); err != nil {
				return err
			}
		}
		e.close(id)
	case *RemoteError:
		e.failure(x)
	case *RemoteRef:
		if x == nil || e.owner == nil || x.conn != e.owner {
			return fmt.Errorf("foolscap: cannot send a RemoteRef to another connection (gifts are not supported)")
		}
		id := e.open("your-reference")
		e.int64(x.clid)
		e.close(id)
	case *refPlaceholder:
		id := e.open("my-reference")
		e.int64(x.CLID)
		if x.Extra > 0 {
			e.str(x.Interface)
		}
		if x.Extra > 1 {
			e.str(x.URL)
		}
		e.close(id)
	case *yourRefPlaceholder:
		id := e.open("your-reference")
		e.int64(x.CLID)
		e.close(id)
	case Object:
		if e.exp == nil {
			return fmt.Errorf("foolscap: cannot send an Object without a connection")
		}
		clid, first := e.export(x)
		id := e.open("my-reference")
		e.int64(clid)
		if first {
			e.str(interfaceName(x))
		}
		e.close(id)
	default:
		return fmt.Errorf("foolscap: cannot serialize %T", v)
	}
	return nil
}

func (e *encoder) export(obj Object) (clid int64, first bool) {
	found := false
	if comparable(obj) {
		if c, ok := e.exp.byObj[obj]; ok {
			clid, found = c, true
		} else {
			for _, t := range e.tentNew {
				if comparable(t.obj) && t.obj == obj {
					clid, found = t.clid, true
					break
				}
			}
		}
	}
	if !found {
		clid = e.exp.next + int64(len(e.tentNew)) + 1
		e.tentNew = append(e.tentNew, tentExport{obj, clid})
	}
	refs := 0
	if ex := e.exp.byCLID[clid]; ex != nil {
		refs = ex.refs
	}
	if e.tentSent == nil {
		e.tentSent = map[int64]int{}
	}
	first = refs+e.tentSent[clid] == 0
	e.tentSent[clid]++
	return clid, first
}

// failure writes a Failure copyable: keys value, type, traceback, parents
// (the order and truncation foolscap's FailureSlicer uses).
func (e *encoder) failure(f *RemoteError) {
	id := e.open("copyable")
	e.str(failureName)
	e.str("value")
	e.str(truncateStr(f.Value, 1000))
	e.str("type")
	e.str(truncateStr(f.Type, 200))
	tb := f.Traceback
	if tb == "" {
		tb = "Traceback unavailable (Go peer)\n" + f.Type + ": " + f.Value + "\n"
	}
	if len(tb) > 1900 {
		tb = tb[:700] + "\n\n-- TRACEBACK ELIDED --\n\n" + tb[len(tb)-1200:]
	}
	e.str("traceback")
	e.str(tb)
	e.str("parents")
	lid := e.open("list")
	for _, p := range f.Parents {
		e.str(truncateStr(p, 200))
	}
	e.close(lid)
	e.close(id)
}

// call writes (call reqID clid method (arguments n args... kw-name kw-value...)).
// Keyword arguments are sent sorted by name, like foolscap.
func (e *encoder) call(reqID, clid int64, method string, args []Value, kwargs map[string]Value) error {
	id := e.open("call")
	e.int64(reqID)
	e.int64(clid)
	e.str(method)
	aid := e.open("arguments")
	e.int64(int64(len(args)))
	for _, a := range args {
		if err := e.value(a); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(kwargs))
	for k := range kwargs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		e.str(k)
		if err := e.value(kwargs[k]); err != nil {
			return err
		}
	}
	e.close(aid)
	e.close(id)
	return nil
}

func (e *encoder) answer(reqID int64, v Value) error {
	id := e.open("answer")
	e.int64(reqID)
	if err := e.value(v); err != nil {
		return err
	}
	e.close(id)
	return nil
}

func (e *encoder) errorAnswer(reqID int64, f *RemoteError) {
	id := e.open("error")
	e.int64(reqID)
	e.failure(f)
	e.close(id)
}
