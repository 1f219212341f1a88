package sim_test

import (
	"flag"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"grapevine/internal/sim"
)

var scenarioFile = flag.String("sim.scenario", "", "run this scenario file under -sim.design (for profiling: go test -run TestScenarioFile -cpuprofile cpu.out ./sim/ -args -sim.scenario=FILE)")
var scenarioDesign = flag.String("sim.design", "grapevine", "the design TestScenarioFile runs")
var heapProfile = flag.String("sim.heapprofile", "", "write TestScenarioFile's heap profile here at the last sample, while the grid is still live")

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
	opt := sim.Options{Design: *scenarioDesign}
	if *heapProfile != "" {
		opt.Progress = func(done, total time.Duration) {
			if done >= total {
				writeHeapProfile(t, *heapProfile)
			}
		}
	}
	rep, err := sim.Run(sc, opt)
	if err != nil {
		t.Fatal(err)
	}
	if rep == nil {
		t.Fatal("no report")
	}
	t.Logf("%s under %s: %+v", sc.Name, *scenarioDesign, rep.Metrics)
}

func writeHeapProfile(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
}
