package sim_test

import (
	"flag"
	"testing"

	"grapevine/sim"
)

var scenarioFile = flag.String("sim.scenario", "", "run this scenario file under -sim.design (for profiling: go test -run TestScenarioFile -cpuprofile cpu.out ./sim/ -args -sim.scenario=FILE)")
var scenarioDesign = flag.String("sim.design", "grapevine", "the design TestScenarioFile runs")

// TestScenarioFile runs one scenario file, so that go test's profiling
// flags can be used on a simulation. It is skipped without -sim.scenario.
func TestScenarioFile(t *testing.T) {
	if *scenarioFile == "" {
		t.Skip("no -sim.scenario given")
	}
	sc, err := sim.LoadScenario(*scenarioFile)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := sim.Run(sc, sim.Options{Design: *scenarioDesign})
	if err != nil {
		t.Fatal(err)
	}
	if rep == nil {
		t.Fatal("no report")
	}
	t.Logf("%s under %s: %+v", sc.Name, *scenarioDesign, rep.Metrics)
}
