package daemon

import (
	"os"
	"strings"
	"sync"
	"time"
)

// OffsetClock returns a clock that reads the system clock plus the
// duration written in path ("8760h", "-8760h", "0s"), re-read at most
// once a second. It is for testing clock jumps on a running node: the
// node sees the jump the way it would see the system clock being set.
// A missing, empty or unparsable file means no offset, and the first
// problem with it is reported through warn.
func OffsetClock(path string, warn func(error)) func() time.Time {
	var (
		mu     sync.Mutex
		offset time.Duration
		readAt time.Time
		warned bool
	)
	return func() time.Time {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if readAt.IsZero() || now.Sub(readAt) >= time.Second {
			readAt = now
			d, err := readOffset(path)
			if err != nil && !warned && warn != nil {
				warned = true
				warn(err)
			}
			offset = d
		}
		// Round(0) drops the monotonic reading, so differences between two
		// readings show the jump as a set system clock would.
		return now.Round(0).Add(offset)
	}
}

func readOffset(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, &ClockOffsetError{Path: path, Text: s, Err: err}
	}
	return d, nil
}

// ClockOffsetError says that a clock offset file does not hold a duration.
type ClockOffsetError struct {
	Path, Text string
	Err        error
}

func (e *ClockOffsetError) Error() string {
	return "clock offset file " + e.Path + ": " + e.Err.Error() + " (want a Go duration such as 8760h or -8760h)"
}

func (e *ClockOffsetError) Unwrap() error { return e.Err }

// clock is the daemon's one source of time, read two ways. now is
// Options.Now: the wall clock the core steps on and the operator sees,
// which may jump (OffsetClock, a system clock being set). Intervals
// within one run (saves, read-only retries, invite holds, rate limits,
// timers) are measured on the monotonic clock, which never jumps. In a
// testing/synctest bubble both are the bubble's fake clock.
type clock struct {
	now func() time.Time
}

// mono returns a reading to measure intervals from, with since.
func (clock) mono() time.Time { return time.Now() }

func (clock) since(t time.Time) time.Duration { return time.Since(t) }

func (clock) ticker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

func (clock) after(d time.Duration) <-chan time.Time { return time.After(d) }
