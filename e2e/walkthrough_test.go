package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWalkthrough follows docs/run.md and the README: create two nodes,
// run them, watch one learn the other.
func TestWalkthrough(t *testing.T) {
	root := t.TempDir()
	createPlain := func(name string, args ...string) string {
		dir := filepath.Join(root, name)
		a := append([]string{"node", "create", "--nickname", name, "--listen", "127.0.0.1:0", "--status", "127.0.0.1:0"}, args...)
		if out, err := exec.Command(bin, append(a, dir)...).CombinedOutput(); err != nil {
			t.Fatalf("node create %s: %v\n%s", name, err, out)
		}
		return dir
	}
	alice := start(t, "alice", createPlain("alice", "--service", "storage=pb://alice@tcp:127.0.0.1:9000/swiss"))
	loc, err := os.ReadFile(filepath.Join(alice.dir, "run", "locators"))
	if err != nil {
		t.Fatal(err)
	}
	bob := start(t, "bob", createPlain("bob", "--bootstrap", strings.TrimSpace(string(loc))))
	aliceID := alice.id()
	waitFor(t, 30*time.Second, "bob to learn alice", func() (bool, string) {
		s, ok, err := bob.server(aliceID)
		if err != nil || !ok {
			return false, fmt.Sprint(err)
		}
		return s.Connected && s.Live && len(s.Services) == 1 && s.Services[0] == "storage", fmt.Sprintf("%+v", s)
	})
	learnt := false
	for _, l := range bob.logLines() {
		learnt = learnt || (l["kind"] == "accepted" && l["peer"] == aliceID && l["service"] == "storage")
	}
	if !learnt {
		t.Fatalf("bob's log has no accepted line for alice:\n%s", bob.tail())
	}

	// Records imported into the running alice go through its status
	// endpoint, and spread: bob learns carol, who never ran.
	carol := createPlain("carol", "--service", "storage=pb://carol@tcp:127.0.0.1:9001/swiss")
	ann, err := exec.Command(bin, "node", "show", carol).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(ann)), "\n")
	annFile := filepath.Join(root, "carol.json")
	if err := os.WriteFile(annFile, []byte(lines[len(lines)-1]), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "ann", "import", alice.dir, annFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "reason=added") {
		t.Fatalf("ann import into the running alice: %v\n%s", err, out)
	}
	carolID := ""
	for _, f := range strings.Fields(string(ann)) {
		if strings.HasPrefix(f, "v0-") && carolID == "" {
			carolID = f
		}
	}
	waitFor(t, 20*time.Second, "bob to learn carol from alice", func() (bool, string) {
		s, ok, err := bob.server(carolID)
		return err == nil && ok && len(s.Services) == 1, fmt.Sprintf("%+v %v", s, err)
	})

	// A second daemon on the same directory is refused.
	out, err = exec.Command(bin, "run", bob.dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by another grapevine process") {
		t.Fatalf("second run on bob's directory: %v\n%s", err, out)
	}
	bob.stop()
	alice.stop()
}
