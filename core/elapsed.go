package core

import "time"

// Elapsed is a reading of the node's elapsed-time measure (R5): a point on
// it, as a time.Time is a point on the wall clock. Its zero is the node's
// first input ever; only differences of readings (Sub) are durations, and
// wall-clock times do not mix with it.
type Elapsed time.Duration

// Add returns the reading d after e.
func (e Elapsed) Add(d time.Duration) Elapsed { return e + Elapsed(d) }

// Sub returns the time from f to e.
func (e Elapsed) Sub(f Elapsed) time.Duration { return time.Duration(e - f) }

// Before reports whether e is earlier than f.
func (e Elapsed) Before(f Elapsed) bool { return e < f }

// After reports whether e is later than f.
func (e Elapsed) After(f Elapsed) bool { return e > f }

// String formats e as the duration since the measure's zero.
func (e Elapsed) String() string { return time.Duration(e).String() }
