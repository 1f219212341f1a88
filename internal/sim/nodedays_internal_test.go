package sim

import (
	"math"
	"testing"
	"time"
)

// Running node-days are summed as days: 10,000 nodes for 60 days is
// 5.2e19 ns, past what a time.Duration holds (a 10,000-node study run
// reported -40,740 node-days and 0 bytes per node per day).
func TestRunningNodeDaysDoNotOverflow(t *testing.T) {
	sc, err := ParseScenario("days.yaml", []byte(`
name: days
duration: 1h
population: {servers: 2, clients: 2}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := replay(t, sc, "grapevine", time.Hour)
	// Each host has been up for 200 years: 800 in all, 2.7 times the
	// longest Duration.
	const years = 200
	back := r.net.Now.AddDate(-years, 0, 0)
	hosts := r.net.Hosts()
	for _, h := range hosts {
		r.lastStart[h] = back
	}
	r.finish()
	want := float64(len(hosts)) * days(r.net.Now.Sub(back))
	if got := r.m.RunningNodeDays; math.Abs(got-want) > 1 {
		t.Fatalf("running node-days %.0f, want %.0f", got, want)
	}
	if r.m.BytesPerNodePerDay <= 0 {
		t.Fatalf("bytes per node per day %v", r.m.BytesPerNodePerDay)
	}
}
