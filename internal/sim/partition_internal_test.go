package sim

import (
	"testing"
	"time"
)

// groupsOf counts the hosts in each partition group, and fails if two
// hosts in different groups are connected.
func groupsOf(t *testing.T, r *runner, when string) map[int]int {
	t.Helper()
	out := map[int]int{}
	for _, h := range r.net.Hosts() {
		out[h.group]++
		for _, o := range r.net.peers(h, nil) {
			if o.group != h.group {
				t.Errorf("%s: %s (group %d) is connected to %s (group %d)", when, h, h.group, o, o.group)
			}
		}
	}
	return out
}

// Partitions may overlap, and one may cut the grid into several groups;
// each heals on its own.
func TestPartitionGroups(t *testing.T) {
	sc, err := ParseScenario("groups.yaml", []byte(`
name: groups
duration: 12d
population: {servers: 10, clients: 30}
events:
  - {at: 1d, action: partition, fraction: 0.2, for: 8d}
  - {at: 2d, action: partition, fraction: 0.5, for: 2d, groups: 2}
  - {at: 10d, action: partition, fraction: 1, for: 1d12h, groups: 4}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := newRunner(sc, Options{Design: "grapevine"})
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration, when string) map[int]int {
		r.net.RunUntil(r.start.Add(d))
		return groupsOf(t, r, when)
	}
	sizes := func(g map[int]int) []int {
		var out []int
		for k := 0; k < 10; k++ {
			if g[k] > 0 {
				out = append(out, g[k])
			}
		}
		return out
	}
	check := func(when string, g map[int]int, want map[int]int) {
		t.Helper()
		for k, n := range want {
			if g[k] != n {
				t.Errorf("%s: groups %v, want %v", when, g, want)
				return
			}
		}
	}
	// Day 1: 8 of 40 nodes cut off (group 1).
	check("day 1.5", at(36*time.Hour, "day 1.5"), map[int]int{0: 32, 1: 8})
	// Day 2: half the 32 others cut off, in two groups of 8; the first
	// partition stays.
	check("day 3", at(3*24*time.Hour, "day 3"), map[int]int{0: 16, 1: 8, 2: 8, 3: 8})
	// Day 4: the second partition heals, the first does not.
	check("day 5", at(5*24*time.Hour, "day 5"), map[int]int{0: 32, 1: 8})
	// Day 9: all healed and, by day 10, connected again.
	g := at(10*24*time.Hour-time.Minute, "day 10")
	check("day 10", g, map[int]int{0: 40})
	// Day 10: everyone in four groups of 10.
	g = at(11*24*time.Hour, "day 11")
	if s := sizes(g); len(s) != 4 || s[0] != 10 || s[1] != 10 || s[2] != 10 || s[3] != 10 || g[0] != 0 {
		t.Errorf("day 11: groups %v, want four of 10", g)
	}
	check("day 12", at(12*24*time.Hour, "day 12"), map[int]int{0: 40})
}
