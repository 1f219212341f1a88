package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"grapevine/internal/daemon"
)

// TestDemo runs 'grapevine demo' as a user does, with its default
// timings: it must check every step, stop its nodes and remove its
// temporary directory by itself, well within its 2-minute bound.
func TestDemo(t *testing.T) {
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "demo")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	t.Logf("grapevine demo, %v:\n%s", took.Round(100*time.Millisecond), out)
	if err != nil {
		t.Fatalf("grapevine demo: %v", err)
	}
	for _, want := range []string{
		`Status page of client1: http://127\.0\.0\.1:\d+/\n`,
		`all 3 clients learnt server3 and connected to it within \d+\.\d+s of its process starting`,
		`the relay still relays it`,
		`client1 reconnected; it dialled the servers it knows, most recently seen first:\n.*1\. server[23] .*\n.*2\. server[23] .*\n.*3\. server1 .*last attempt failed`,
		`no node relays server1 any more: the last node stopped \d+\.\ds after the kill \(W = 6s\)`,
		`every node forgot server1: the last \d+\.\ds after the kill \(H = 20s\)`,
		`Every step happened in time`,
		`Stopped 6 nodes cleanly`,
	} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("output lacks %s", want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "grapevine-demo-*")); len(left) > 0 {
		t.Errorf("the demo left %v behind", left)
	}
}

// TestDemoKeep: with --keep and --dir the grid stays up after the steps,
// serves its status, and SIGTERM stops every node cleanly and keeps DIR.
func TestDemoKeep(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	cmd := exec.Command(bin, "demo", "--quick", "--keep", "--dir", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var status string
	var all []string
	timeout := time.After(90 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo ended before keeping the grid:\n%s", strings.Join(all, "\n"))
			}
			all = append(all, l)
			if m := regexp.MustCompile(`keeps running \(--keep\)\. Status page: (http://\S+)/ `).FindStringSubmatch(l); m != nil {
				status = m[1]
				break wait
			}
		case <-timeout:
			t.Fatalf("no --keep line after 90 s:\n%s", strings.Join(all, "\n"))
		}
	}
	p := &proc{t: t, name: "client1", status: status}
	if st, err := p.state(); err != nil || st.Nickname != "client1" || st.Known != 2 {
		t.Fatalf("kept grid's client1: %v, %+v; want it up, knowing the 2 remaining servers", err, st)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	rest := make(chan string)
	go func() {
		var b strings.Builder
		for l := range lines {
			fmt.Fprintln(&b, l)
		}
		rest <- b.String()
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("demo --keep after SIGTERM: %v", err)
	}
	if r := <-rest; !strings.Contains(r, "Stopped 6 nodes cleanly") {
		t.Fatalf("after SIGTERM:\n%s", r)
	}
	for _, n := range []string{"relay", "server2", "server3", "client1", "client2", "client3"} {
		unlock, err := daemon.Lock(filepath.Join(dir, n))
		if err != nil {
			t.Fatalf("%s still locked after the demo stopped: %v", n, err)
		}
		unlock()
	}
}
