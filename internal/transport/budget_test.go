package transport

import (
	"testing"
	"time"
)

func TestReadBudget(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := readBudget{rate: 1000, burst: 4000}
	if w := b.take(4000, t0); w != 0 {
		t.Fatalf("a full burst waited %v", w)
	}
	if w := b.take(500, t0); w != 500*time.Millisecond {
		t.Fatalf("500 bytes over an empty bucket: wait %v, want 500ms", w)
	}
	// After the wait the debt is paid; a second later 1000 bytes are free.
	if w := b.take(1000, t0.Add(1500*time.Millisecond)); w != 0 {
		t.Fatalf("wait %v after the refill, want 0", w)
	}
	// A long pause refills only up to the burst.
	if w := b.take(5000, t0.Add(time.Hour)); w != time.Second {
		t.Fatalf("5000 bytes after an hour: wait %v, want 1s beyond the 4000 burst", w)
	}
}
