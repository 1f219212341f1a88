package testkit

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// CrashChild runs this test binary again as a child running only test
// (with env added, which tells it to be the child), reads the lines it
// acknowledges on file descriptor 3, and SIGKILLs it after a random
// number of them (below maxAcks; 0: at once) and a random pause of up to
// 5 ms, so the kill lands anywhere in what it does. It returns every line
// the child managed to write, in order. A child that exits by itself,
// writes to stderr, or acknowledges nothing within patience fails t.
func CrashChild(t testing.TB, test, env string, rng *rand.Rand, maxAcks int, patience time.Duration) []string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env)
	cmd.ExtraFiles = []*os.File{w}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	acks := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			acks <- sc.Text()
		}
		close(acks)
		r.Close()
	}()
	var lines []string
	deadline := time.After(patience)
	for range rng.IntN(maxAcks) {
		select {
		case line, ok := <-acks:
			if !ok {
				t.Fatalf("child exited: %v\n%s", cmd.Wait(), stderr.String())
			}
			lines = append(lines, line)
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("child made no progress in %v", patience)
		}
	}
	if d := rng.IntN(5000); d > 0 {
		time.Sleep(time.Duration(d) * time.Microsecond) // where the kill lands, not a wait
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for line := range acks { // what it managed to say before dying
		lines = append(lines, line)
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Fatalf("child said: %s", s)
	}
	return lines
}
