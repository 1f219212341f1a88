package bench

import (
	"slices"
	"time"
)

// Dist summarises a pooled sample of durations.
type Dist struct {
	Count         int
	P50, P90, Max time.Duration
}

// summarise returns the nearest-rank percentiles of xs.
func summarise(xs []time.Duration) Dist {
	if len(xs) == 0 {
		return Dist{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1 // ceil(p*n) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Dist{Count: len(s), P50: rank(0.50), P90: rank(0.90), Max: s[len(s)-1]}
}
