package demo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"grapevine/internal/daemon"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "grapevine-demo-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "grapevine")
	if out, err := exec.Command("go", "build", "-o", bin, "grapevine/cmd/grapevine").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// A step that does not happen within the limit fails the demo; the nodes
// are stopped anyway and the directory is kept for its logs.
func TestStepTooLate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	var out strings.Builder
	start := time.Now()
	err := Run(context.Background(), Options{Bin: bin, Dir: dir, Timings: QuickTimings, Limit: 3 * time.Second, Out: &out})
	if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") {
		t.Fatalf("Run with a 3 s limit: %v\n%s", err, &out)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("took %v to give up", d)
	}
	if !strings.Contains(out.String(), "Stopped ") || !strings.Contains(out.String(), "kept in "+dir) {
		t.Fatalf("output:\n%s", &out)
	}
	for _, n := range []string{"relay", "server1", "client1"} {
		unlock, err := daemon.Lock(filepath.Join(dir, n))
		if err != nil {
			t.Fatalf("%s still runs: %v", n, err)
		}
		unlock()
	}
}

// A binary that is not grapevine fails at once, with what it said, and a
// temporary directory is kept.
func TestNodeExits(t *testing.T) {
	script := filepath.Join(t.TempDir(), "fake")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'not a grapevine' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", t.TempDir())
	var out strings.Builder
	start := time.Now()
	err := Run(context.Background(), Options{Bin: script, Out: &out})
	if err == nil || !strings.Contains(err.Error(), "relay exited at start (exit status 3): not a grapevine") {
		t.Fatalf("Run: %v\n%s", err, &out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v to notice", d)
	}
	left, _ := filepath.Glob(filepath.Join(os.Getenv("TMPDIR"), "grapevine-demo-*"))
	if len(left) != 1 || !strings.Contains(out.String(), "kept in "+left[0]) {
		t.Fatalf("kept %v; output:\n%s", left, &out)
	}
}

// Cancelling (Ctrl-C) stops the nodes and says it was interrupted.
func TestInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out strings.Builder
	time.AfterFunc(2*time.Second, cancel)
	err := Run(ctx, Options{Bin: bin, Dir: filepath.Join(t.TempDir(), "d"), Timings: QuickTimings, Out: &out})
	if err == nil || !strings.HasPrefix(err.Error(), "interrupted") {
		t.Fatalf("Run cancelled: %v\n%s", err, &out)
	}
	if !strings.Contains(out.String(), "Stopped ") {
		t.Fatalf("output:\n%s", &out)
	}
}
