package foolscap

import (
	"encoding/hex"
	"errors"
	"io"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the token reader and decoder (in PB
// mode and in plain-value mode). Decoding must not panic, must fail only
// with typed errors, and every message it accepts must survive a
// re-encode/decode round trip unchanged.
func FuzzDecode(f *testing.F) {
	for _, c := range pyCaptures {
		b, _ := hex.DecodeString(c.hex)
		f.Add(b)
	}
	small := decodeLimits{maxDepth: 16, maxItems: 2000, maxMessageBytes: 1 << 16, maxVocab: 64}
	roomy := decodeLimits{maxDepth: 64, maxItems: 1 << 20, maxMessageBytes: 1 << 26, maxVocab: 64}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, top := range []bool{false, true} {
			msgs, err := decodeAll(data, 1, small, top)
			if err != nil {
				var pe *ProtocolError
				var peer *PeerError
				if !errors.As(err, &pe) && !errors.As(err, &peer) && err != io.ErrUnexpectedEOF {
					t.Fatalf("untyped error %T: %v", err, err)
				}
				if pe != nil && (pe.Offset < 0 || pe.Offset > int64(len(data))) {
					t.Fatalf("offset %d outside input of %d bytes", pe.Offset, len(data))
				}
			}
			for _, m := range msgs {
				if m.violation != nil {
					if m.violation.Offset < 0 || m.violation.Offset > int64(len(data)) {
						t.Fatalf("violation offset %d out of range", m.violation.Offset)
					}
					continue
				}
				if m.kind == mError || m.kind == mNone || m.kind == mVocab || hasFailure(m.value) || anyFailure(m.args) {
					continue
				}
				enc, err := encodeMessages([]*message{m}, 1)
				if err != nil {
					t.Fatalf("re-encode %+v: %v", m, err)
				}
				back, err := decodeAll(enc, 1, roomy, top)
				if err != nil || len(back) != 1 {
					t.Fatalf("re-decode of %x: %v (%d msgs)", enc, err, len(back))
				}
				b := back[0]
				if b.kind != m.kind || b.reqID != m.reqID || b.target != m.target || b.method != m.method ||
					!valuesEqual(b.value, m.value) || !slicesEqual(b.args, m.args) || len(b.kwargs) != len(m.kwargs) {
					t.Fatalf("round trip changed message\n was %+v\n now %+v", m, b)
				}
			}
		}
	})
}

func anyFailure(vs []Value) bool {
	for _, v := range vs {
		if hasFailure(v) {
			return true
		}
	}
	return false
}

// hasFailure reports Failures nested in v (their re-encoding is
// normalized, so they are not compared).
func hasFailure(v Value) bool {
	switch x := v.(type) {
	case *RemoteError:
		return true
	case List:
		return anyFailure(x)
	case Tuple:
		return anyFailure(x)
	case Set:
		return anyFailure(x)
	case FrozenSet:
		return anyFailure(x)
	case Dict:
		for _, kv := range x {
			if hasFailure(kv.Key) || hasFailure(kv.Value) {
				return true
			}
		}
	case *Copyable:
		return hasFailure(x.State)
	}
	return false
}
