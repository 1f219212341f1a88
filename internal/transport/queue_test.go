package transport

import (
	"fmt"
	"testing"
)

// The send queue keeps frames in order, refuses one past its limit, and
// under a trickle that never drains holds about what waits, not all that
// passed through.
func TestFrameQueue(t *testing.T) {
	q := frameQueue{ready: make(chan struct{}, 1)}
	for i := range 3 {
		if !q.push([]byte{byte(i)}, 3) {
			t.Fatalf("frame %d refused under the limit", i)
		}
	}
	if q.push([]byte{9}, 3) {
		t.Fatal("a frame past the limit was queued")
	}
	for i := range 3 {
		f, more, ok := q.pop()
		if !ok || f[0] != byte(i) || more != (i < 2) {
			t.Fatalf("pop %d: %v more=%v ok=%v", i, f, more, ok)
		}
	}
	if _, _, ok := q.pop(); ok {
		t.Fatal("popped from an empty queue")
	}
	if cap(q.frames) > keptQueue {
		t.Fatalf("an empty queue kept %d slots", cap(q.frames))
	}

	// A trickle: two in, one out, then one in, one out, 10,000 times.
	q.push([]byte("a"), 256)
	q.push([]byte("b"), 256)
	q.pop()
	for i := range 10000 {
		q.push(fmt.Appendf(nil, "%d", i), 256)
		if _, _, ok := q.pop(); !ok {
			t.Fatal("queue ran dry")
		}
	}
	if waiting := len(q.frames) - q.head; waiting != 1 || cap(q.frames) > 64 {
		t.Fatalf("%d frames wait in a slice of %d", waiting, cap(q.frames))
	}
}
