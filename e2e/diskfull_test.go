package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/client"
	"grapevine/client/apitype"
	"grapevine/core"
	"grapevine/internal/daemon"
)

// diskRecord is a storage announcement under the n-th fixed test key.
func diskRecord(t *testing.T, n int) announce.Signed {
	t.Helper()
	seed := bytes.Repeat([]byte{byte(n), byte(n >> 8), 0xd1, 0x5c}, 8)
	k, err := announce.NewPrivateKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	return announce.Sign(k, announce.Build(k, announce.Template{Nickname: fmt.Sprintf("disk-%d", n),
		Service: announce.Service{Name: "storage"}}, 1))
}

// importRecs imports recs into a node with its token. accepted says the
// node took every record ("accepted" events).
func importRecs(p *proc, dir string, recs ...announce.Signed) (accepted bool, err error) {
	tok, err := client.ReadToken(dir)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := (&client.Client{BaseURL: p.status, Token: tok}).Import(ctx, recs)
	n := 0
	for _, e := range evs {
		if e.Kind == core.EvAccepted {
			n++
		}
	}
	return err == nil && n == len(recs), err
}

// fill writes path until the file system is full, and returns its size.
func fill(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var size int64
	for _, chunk := range []int{1 << 20, 4 << 10, 512} {
		buf := make([]byte, chunk)
		for {
			n, err := f.Write(buf)
			size += int64(n)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatalf("filling %s: %v", path, err)
			}
		}
	}
	return size
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return string(b)
}

// TestDiskFull runs a storage server whose node directory is on a small
// tmpfs, and fills the tmpfs. The node turns read-only and stays up: its
// status says why, imports get 503, it keeps its connections and sends
// no seqnum of its own that is not on disk. When space returns it is
// writable again by itself, and what it acknowledged after that survives
// SIGKILL. Needs root (mount); skipped otherwise.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	root := t.TempDir()
	mnt := filepath.Join(root, "small")
	logs := filepath.Join(root, "logs")
	for _, d := range []string{mnt, logs} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, bytes.TrimSpace(out))
	}
	// Registered before the processes start, so it runs after they are killed.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})

	nb := start(t, "neighbour", createRules(t, root, "neighbour", crashRules, "--service", "storage=pb://nb@tcp:127.0.0.1:1/s"))
	dir := createRules(t, mnt, "target", crashRules, "--service", "storage=pb://target@tcp:127.0.0.1:1/s", "--bootstrap", nb.locator())
	target, err := crashLaunch(t, "target", dir, logs)
	if err != nil {
		t.Fatal(err)
	}
	targetID := target.id()
	cli := start(t, "client", createRules(t, root, "client", crashRules), target.locator())
	waitFor(t, 20*time.Second, "the client to connect to the node", func() (bool, string) {
		s, ok, err := cli.server(targetID)
		return err == nil && ok && s.Connected && s.Seqnum > 0, fmt.Sprintf("%+v %v", s, err)
	})
	first := diskRecord(t, 1)
	if ok, err := importRecs(target.proc, dir, first); !ok {
		t.Fatalf("import before the disk fills: %v", err)
	}

	// The disk fills. The next writes (refreshes every second, imports)
	// fail, and the node turns read-only.
	filled := time.Now()
	size := fill(t, filepath.Join(mnt, "filler"))
	t.Logf("0 s: tmpfs full (filler %.1f MiB)", float64(size)/(1<<20))
	var st apitype.Status
	k := 100
	waitFor(t, 20*time.Second, "the node to turn read-only", func() (bool, string) {
		_, ierr := importRecs(target.proc, dir, diskRecord(t, k))
		k++
		st, err = target.state()
		return err == nil && st.ReadOnly, fmt.Sprintf("import %v; status %v read_only %v", ierr, err, st.ReadOnly)
	})
	t.Logf("%v: read-only (%d imports tried meanwhile): %s", time.Since(filled).Round(time.Millisecond), k-100, st.ReadOnlyReason)
	if !strings.Contains(st.ReadOnlyReason, "not writable") || !strings.Contains(st.ReadOnlyReason, "no space left on device") ||
		!strings.Contains(st.ReadOnlyReason, mnt) || st.ReadOnlySince == nil {
		t.Fatalf("read_only_reason %q since %v: want the file and ENOSPC", st.ReadOnlyReason, st.ReadOnlySince)
	}

	// Read-only: imports get 503 and why; reads are served.
	if _, err := importRecs(target.proc, dir, diskRecord(t, 2)); !errors.Is(err, client.ErrReadOnly) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("import while read-only: %v; want ErrReadOnly (503) naming ENOSPC", err)
	}
	if out, err := gv(t, "status", dir); err != nil || !strings.Contains(out, "READ-ONLY since") || !strings.Contains(out, "no space left on device") {
		t.Fatalf("grapevine status while read-only: %v\n%s", err, out)
	}
	if m := get(t, target.status+"/metrics"); !strings.Contains(m, "\ngrapevine_read_only 1\n") {
		t.Fatal("/metrics lacks grapevine_read_only 1")
	}
	if page := get(t, target.status+"/"); !strings.Contains(page, `id="read-only"`) || !strings.Contains(page, "no space left on device") {
		t.Fatal("status page without the read-only banner")
	}
	// The node refreshes its records in memory, and they stay there: the
	// client, still connected, holds no seqnum above the counter on disk.
	onDisk := crashCounter(t, dir)
	waitFor(t, 10*time.Second, "two refreshes while read-only", func() (bool, string) {
		st, err := target.state()
		return err == nil && st.Counter >= onDisk+2, fmt.Sprintf("counter %d, on disk %d, %v", st.Counter, onDisk, err)
	})
	if s, ok, err := cli.server(targetID); err != nil || !ok || !s.Connected || s.Seqnum > onDisk {
		t.Fatalf("client's view of the read-only node: %+v %v %v; want connected, seqnum at most %d (on disk)", s, ok, err, onDisk)
	}
	// It stays so, and up, across failed retries.
	var inMemory int64
	for end := time.Now().Add(2*daemon.ReadOnlyRetry + time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		select {
		case <-target.done:
			t.Fatalf("the node exited on a full disk:\n%s", target.tail())
		default:
		}
		st, err := target.state()
		if err != nil || !st.ReadOnly {
			t.Fatalf("%v: status %v, read_only %v while the disk is still full", time.Since(filled), err, st.ReadOnly)
		}
		inMemory = st.Counter
	}
	var entered []string
	for _, l := range target.logLines() {
		if msg, _ := l["msg"].(string); l["level"] == "ERROR" && strings.Contains(msg, "running read-only") {
			entered = append(entered, msg)
		}
	}
	if len(entered) != 1 || !strings.Contains(entered[0], "no space left on device") {
		t.Fatalf("log lines entering read-only mode: %q; want one naming ENOSPC", entered)
	}
	if s, ok, err := cli.server(targetID); err != nil || !ok || !s.Connected || s.Seqnum > onDisk || crashCounter(t, dir) != onDisk {
		t.Fatalf("client's view of the read-only node: %+v %v %v; want connected, seqnum at most %d (on disk)", s, ok, err, onDisk)
	}
	t.Logf("%v: still up and read-only, counter %d in memory, %d on disk; client connected", time.Since(filled).Round(time.Millisecond),
		inMemory, onDisk)

	// Space returns: writable again by itself.
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 15*time.Second, "the node to be writable again", func() (bool, string) {
		st, err := target.state()
		return err == nil && !st.ReadOnly && st.ReadOnlyReason == "", fmt.Sprintf("%v %q", err, st.ReadOnlyReason)
	})
	t.Logf("%v: filler deleted; writable again %v later (retry every %v)", time.Since(filled).Round(time.Millisecond),
		took.Round(time.Millisecond), daemon.ReadOnlyRetry)
	last := diskRecord(t, 3)
	if ok, err := importRecs(target.proc, dir, last); !ok {
		t.Fatalf("import after space returned: %v", err)
	}
	waitFor(t, 10*time.Second, "the client to hold the node's record signed after read-only mode", func() (bool, string) {
		s, _, err := cli.server(targetID)
		return err == nil && s.Seqnum > onDisk+1, fmt.Sprintf("seqnum %d, %v", s.Seqnum, err)
	})
	left := false
	for _, l := range target.logLines() {
		msg, _ := l["msg"].(string)
		left = left || (l["level"] == "INFO" && strings.Contains(msg, "leaving read-only mode"))
	}
	if !left {
		t.Fatalf("no Info line on leaving read-only mode:\n%s", target.tail())
	}
	st, err = target.state()
	if err != nil {
		t.Fatal(err)
	}
	shown := st.Counter

	// SIGKILL and restart: what it acknowledged is on disk.
	crashKill(target)
	if target, err = crashLaunch(t, "target", dir, logs); err != nil {
		t.Fatal(err)
	}
	held, err := crashHeld(target)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []announce.Signed{first, last} {
		if _, ok := held[announce.NodeID(r.Key)]; !ok {
			t.Fatalf("after restart: acknowledged record %s lost", announce.NodeID(r.Key).Short())
		}
	}
	if st, err = target.state(); err != nil || st.Counter < shown || st.ReadOnly {
		t.Fatalf("after restart: %v, counter %d (shown before %d), read_only %v", err, st.Counter, shown, st.ReadOnly)
	}
	if errs := crashLogErrors(target); len(errs) > 0 {
		t.Fatalf("after restart: errors in the log:\n%s", strings.Join(errs, "\n"))
	}
	t.Logf("%v: restarted after SIGKILL: records imported before and after the full disk held, counter %d >= %d",
		time.Since(filled).Round(time.Millisecond), st.Counter, shown)
}
