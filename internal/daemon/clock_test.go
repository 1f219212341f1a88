package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestOffsetClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offset")
	var warned []error
	clock := OffsetClock(path, func(err error) { warned = append(warned, err) })
	if d := time.Until(clock()); d.Abs() > time.Minute {
		t.Fatalf("no file: clock off by %v, want none", d)
	}
	for _, tc := range []struct {
		text string
		want time.Duration
		bad  bool
	}{
		{"8760h\n", 8760 * time.Hour, false},
		{"-8760h", -8760 * time.Hour, false},
		{"", 0, false},
		{"a year", 0, true},
	} {
		if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readOffset(path)
		var ce *ClockOffsetError
		if tc.bad != errors.As(err, &ce) || got != tc.want {
			t.Errorf("%q: %v, %v; want %v, error %v", tc.text, got, err, tc.want, tc.bad)
		}
	}
	// A fresh clock reads the bad file at once and warns once.
	clock = OffsetClock(path, func(err error) { warned = append(warned, err) })
	clock()
	clock()
	if len(warned) != 1 {
		t.Fatalf("warnings %v, want one", warned)
	}
	if err := os.WriteFile(path, []byte("8760h"), 0o644); err != nil {
		t.Fatal(err)
	}
	clock = OffsetClock(path, nil)
	if d := time.Until(clock()); (d - 8760*time.Hour).Abs() > time.Minute {
		t.Fatalf("clock ahead by %v, want a year", d)
	}
}
