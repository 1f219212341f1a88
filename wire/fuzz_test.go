package wire_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"grapevine/wire"
)

// FuzzDecode: Decode never panics, refuses only with an *Error, and what
// it accepts encodes back to the same bytes (wire.Size(m) of them) and decodes
// to the same message.
func FuzzDecode(f *testing.F) {
	for _, m := range samples(f) {
		b, err := wire.Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		b, _ := wire.Encode(randMsg(r))
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0x03})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := wire.Decode(b)
		if err != nil {
			var we *wire.Error
			if !errors.As(err, &we) || m != nil {
				t.Fatalf("Decode returned %#v, %v (%T)", m, err, err)
			}
			if we.Offset < 0 || we.Offset > len(b) {
				t.Fatalf("offset %d outside %d bytes: %v", we.Offset, len(b), err)
			}
			return
		}
		again, err := wire.Encode(m)
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", m, err)
		}
		if !bytes.Equal(again, b) || len(again) != wire.Size(m) {
			t.Fatalf("re-encoding differs or Size is wrong:\n in  % x\n out % x\n size %d", b, again, wire.Size(m))
		}
		m2, err := wire.Decode(again)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("decode(encode(decode(x))) = %#v, %v; want %#v", m2, err, m)
		}
	})
}
