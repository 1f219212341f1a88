package sim_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"grapevine/internal/sim"
)

// A plan's population replaces the scenario's, its designs run in the
// order given whatever finishes first, and the reports land on disk.
func TestRunStudyPlan(t *testing.T) {
	out := t.TempDir()
	plan := sim.StudyPlan{
		Files:   []string{"scenarios/ci-small.yaml"},
		Designs: []string{"grapevine", "never-forget"},
		Servers: 4, Clients: 6, Workers: 2,
	}
	res, err := sim.RunStudy(plan, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || len(res[0].Reports) != 2 {
		t.Fatalf("got %d scenarios, want 1 with 2 reports", len(res))
	}
	for i, d := range plan.Designs {
		r := res[0].Reports[i]
		if r.Design != d {
			t.Errorf("report %d is %s, want %s", i, r.Design, d)
		}
		// Every client got every starting server's record at least once.
		if got := r.Metrics.RecordsDelivered; got < 4*6 {
			t.Errorf("%s delivered %d records, want at least 24", d, got)
		}
		// Servers that join later add to the start's 4 + 6.
		if r.Nodes < 10 || r.Nodes > 10+10 {
			t.Errorf("%s ran %d nodes, want 10 at the start plus joins", d, r.Nodes)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "ci-small", "report.json")); err != nil {
		t.Error(err)
	}
	if _, err := sim.RunStudy(sim.StudyPlan{Files: plan.Files, Designs: []string{"nope"}}, out); err == nil || !strings.Contains(err.Error(), `unknown design "nope"`) {
		t.Errorf("unknown design: got %v", err)
	}
}

func TestSpliceAtScale(t *testing.T) {
	section := sim.AtScaleMarker + "\n## At scale\n\nbig\n"
	doc := "# Study\n\nsmall\n"
	withScale := sim.SpliceAtScale(doc, "", section)
	if !strings.HasPrefix(withScale, doc) || !strings.HasSuffix(withScale, section) {
		t.Fatalf("adding the section gave %q", withScale)
	}
	// A regenerated study keeps the section it had.
	regen := "# Study\n\nsmaller\n"
	if got := sim.SpliceAtScale(regen, withScale, ""); got != "# Study\n\nsmaller\n\n"+section {
		t.Errorf("regenerating kept %q", got)
	}
	// A new section replaces the old one.
	newer := sim.AtScaleMarker + "\n## At scale\n\nbigger\n"
	if got := sim.SpliceAtScale(withScale, "", newer); strings.Contains(got, "big\n") || !strings.HasSuffix(got, newer) {
		t.Errorf("replacing gave %q", got)
	}
	if got := sim.SpliceAtScale(regen, doc, ""); got != regen {
		t.Errorf("no section anywhere gave %q", got)
	}
}
