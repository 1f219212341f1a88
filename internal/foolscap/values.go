package foolscap

import (
	"bytes"
	"math/big"
)

// Value is a decoded or to-be-encoded Banana object:
//
//	nil           Python None
//	bool          bool
//	int64         int that fits in 64 bits (also accepted: int, intN, uintN)
//	*big.Int      larger int
//	float64       float (float32 accepted for encoding)
//	[]byte        bytes
//	string        str (sent as a 'unicode' sequence)
//	List, Tuple, Set, FrozenSet, Dict, Decimal, *Copyable
//	*RemoteRef    reference to an object of the peer (my-reference in,
//	              your-reference out)
//	Object        one of our objects; sent as my-reference
//	*RemoteError  only inside error answers
type Value = any

// List is a Python list.
type List []Value

// Tuple is a Python tuple.
type Tuple []Value

// Set is a Python set (opentype "set"), in wire order.
type Set []Value

// FrozenSet is a Python frozenset (opentype "immutable-set"), in wire order.
type FrozenSet []Value

// KV is one dict entry.
type KV struct{ Key, Value Value }

// Dict is a Python dict in wire order.
type Dict []KV

// Decimal is a Python decimal.Decimal in its string form.
type Decimal string

// Copyable is a pass-by-value object other than a Failure:
// ('copyable', Name) followed by attribute/value pairs.
type Copyable struct {
	Name  string
	State Dict
}

// Get returns the value stored under key. Keys are compared with
// scalarEqual: []byte, string, integers, bool, float64 and nil.
func (d Dict) Get(key Value) (Value, bool) {
	for _, kv := range d {
		if scalarEqual(kv.Key, key) {
			return kv.Value, true
		}
	}
	return nil, false
}

// scalarKey returns a comparable key for scalar values, or ok=false.
func scalarKey(v Value) (any, bool) {
	switch x := v.(type) {
	case nil:
		return struct{}{}, true
	case bool:
		return x, true
	case int64:
		return x, true
	case float64:
		return x, true
	case []byte:
		return "b:" + string(x), true
	case string:
		return "s:" + x, true
	case *big.Int:
		return "i:" + x.String(), true
	}
	return nil, false
}

func scalarEqual(a, b Value) bool {
	if ab, ok := a.([]byte); ok {
		bb, ok := b.([]byte)
		return ok && bytes.Equal(ab, bb)
	}
	ka, ok1 := scalarKey(normInt(a))
	kb, ok2 := scalarKey(normInt(b))
	return ok1 && ok2 && ka == kb
}

// normInt converts Go integer kinds to int64/*big.Int.
func normInt(v Value) Value {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint:
		return normUint(uint64(x))
	case uint64:
		return normUint(x)
	}
	return v
}

func normUint(u uint64) Value {
	if u <= 1<<63-1 {
		return int64(u)
	}
	return new(big.Int).SetUint64(u)
}

// normBig returns int64 when b fits, else b.
func normBig(b *big.Int) Value {
	if b.IsInt64() {
		return b.Int64()
	}
	return b
}
