package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/client"
	"grapevine/core"
	"grapevine/internal/daemon"
	"grapevine/internal/nodedir"
	"grapevine/internal/peerbook"
)

var (
	crashN    = flag.Int("crash.n", 100, "TestCrashLoop: how many times to SIGKILL the node (10 with -short)")
	crashSeed = flag.Uint64("crash.seed", 0, "TestCrashLoop: the seed of the kill times and records (0: from the clock)")
)

// crashRules: the test preset with a refresh every second, so the node's
// own counter moves often, and a forget horizon far beyond the test, so
// every record it acknowledged must still be there at the end.
const crashRules = `
rules:
  preset: test
  refresh_interval: 1s
  liveness_window: 30s
  forget_horizon: 1h
  tombstone_ttl: 2h
`

// crashProc is a process started by crashLaunch: Wait belongs to a goroutine
// that closes done when the process has exited.
type crashProc struct {
	*proc
	done chan struct{}
}

// crashLaunch starts grapevine run on dir, logging to a new file in
// logDir, and waits (polling every 10 ms) for its status endpoint. It
// returns an error, not a failure, so callers can report the log. The
// process is killed at cleanup.
func crashLaunch(t *testing.T, name, dir, logDir string) (*crashProc, error) {
	t.Helper()
	os.Remove(filepath.Join(dir, daemon.RunDir, daemon.StatusFile))
	os.Remove(filepath.Join(dir, daemon.RunDir, daemon.LocatorsFile))
	p := &crashProc{proc: &proc{t: t, name: name, dir: dir, log: filepath.Join(logDir, fmt.Sprintf("log-%s-%d.jsonl", name, time.Now().UnixNano()))},
		done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, "run", "--log-format", "json", "--log-level", "debug", dir)
	p.cmd.Stderr = logf
	err = p.cmd.Start()
	logf.Close()
	if err != nil {
		return nil, err
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { crashKill(p) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, daemon.RunDir, daemon.StatusFile)); err == nil {
			p.status = strings.TrimSpace(string(b))
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited before it listened: %v\n%s", name, p.cmd.ProcessState, p.tail())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: no status endpoint after 20 s\n%s", name, p.tail())
		}
	}
}

// crashKill kills a process started by crashLaunch and waits until it is gone.
func crashKill(p *crashProc) {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// crashLogErrors returns the Error lines of a process's log.
func crashLogErrors(p *crashProc) []string {
	var out []string
	for _, l := range p.logLines() {
		if l["level"] == "ERROR" {
			b, _ := json.Marshal(l)
			out = append(out, string(b))
		}
	}
	return out
}

// crashFeeder imports fresh, validly signed storage announcements into a node:
// new keys, and new seqnums of keys it used before. It remembers what the
// node acknowledged: a 200 whose events say "accepted" for the record.
type crashFeeder struct {
	rng     *rand.Rand
	keys    []announce.PrivateKey
	signed  map[announce.NodeID]int64 // the highest seqnum signed per key
	maxKeys int

	mu       sync.Mutex
	acked    map[announce.NodeID]int64 // the highest seqnum acknowledged per key
	nAcked   int                       // acknowledged records, all told
	requests int
	refused  int // requests answered with another status or cut by a kill
}

func newCrashFeeder(seed uint64, maxKeys int) *crashFeeder {
	return &crashFeeder{rng: rand.New(rand.NewPCG(seed, 0xfeed)), signed: map[announce.NodeID]int64{},
		acked: map[announce.NodeID]int64{}, maxKeys: maxKeys}
}

// batch signs 1 to 4 records.
func (f *crashFeeder) batch() []announce.Signed {
	var out []announce.Signed
	for range 1 + f.rng.IntN(4) {
		var k announce.PrivateKey
		if len(f.keys) < f.maxKeys && (len(f.keys) == 0 || f.rng.IntN(10) < 7) {
			var seed [32]byte
			for i := range seed {
				seed[i] = byte(f.rng.Uint32())
			}
			nk, err := announce.NewPrivateKey(seed[:])
			if err != nil {
				panic(err) // 32 bytes are always a seed
			}
			f.keys = append(f.keys, nk)
			k = nk
		} else {
			k = f.keys[f.rng.IntN(len(f.keys))]
		}
		if slices.ContainsFunc(out, func(s announce.Signed) bool { return s.Key == string(k.ID()) }) {
			continue
		}
		f.signed[k.ID()]++
		tmpl := announce.Template{Nickname: "fed", Service: announce.Service{Name: "storage",
			Fields: []announce.Member{{Key: "anonymous-storage-FURL", Value: announce.Str("pb://fed@tcp:192.0.2.1:1/s")}}}}
		out = append(out, announce.Sign(k, announce.Build(k, tmpl, f.signed[k.ID()])))
	}
	return out
}

// run imports batches into the node at statusURL until stop is closed.
func (f *crashFeeder) run(statusURL, dir string, stop <-chan struct{}) {
	hc := &http.Client{Timeout: 10 * time.Second}
	for {
		select {
		case <-stop:
			return
		default:
		}
		recs := f.batch()
		tok, _ := client.ReadToken(dir)
		evs, err := (&client.Client{BaseURL: statusURL, Token: tok, HTTPClient: hc}).Import(context.Background(), recs)
		ok := err == nil
		f.mu.Lock()
		f.requests++
		if !ok {
			f.refused++
		}
		for _, e := range evs {
			if e.Kind != core.EvAccepted {
				continue
			}
			for _, r := range recs {
				if r.Key == string(e.Peer) {
					a, _ := announce.ParseUnverified(r)
					f.acked[e.Peer] = max(f.acked[e.Peer], a.Seqnum)
					f.nAcked++
				}
			}
		}
		f.mu.Unlock()
		if !ok {
			// The node is gone (killed): wait for the next one.
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}

// missing lists acknowledged records that have no record of at least
// their seqnum in held (seqnum by key).
func (f *crashFeeder) missing(held map[announce.NodeID]int64) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id, seq := range f.acked {
		if held[id] < seq {
			out = append(out, fmt.Sprintf("%s seqnum %d (held: %d)", id.Short(), seq, held[id]))
		}
	}
	slices.Sort(out)
	return out
}

// crashHeld reads the servers a running node holds a storage record of.
func crashHeld(p *crashProc) (map[announce.NodeID]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := p.api().Servers(ctx)
	if err != nil {
		return nil, err
	}
	out := map[announce.NodeID]int64{}
	for _, s := range l.Servers {
		if slices.Contains(s.Services, "storage") {
			out[announce.NodeID(s.ID)] = s.Seqnum
		}
	}
	return out, nil
}

func crashCounter(t *testing.T, dir string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, nodedir.CounterFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", nodedir.CounterFile, err)
	}
	return c
}

// TestCrashLoop kills a storage server with SIGKILL at random moments
// while it imports records, refreshes its own every second and keeps
// connection history with a neighbour server and a client; then restarts
// it. After every kill: the counter file holds at least every seqnum the
// node showed or sent; after every restart: the node starts (its peer
// book opens), logs no error, its counter has not gone back, and every
// record it acknowledged is held. The last peer book is then read
// directly.
func TestCrashLoop(t *testing.T) {
	n := *crashN
	if testing.Short() && n == 100 {
		n = 10
	}
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -crash.seed %d), %d kills", seed, seed, n)
	rng := rand.New(rand.NewPCG(seed, 1))
	began := time.Now()

	root := t.TempDir()
	nb := start(t, "neighbour", createRules(t, root, "neighbour", crashRules, "--service", "storage=pb://nb@tcp:127.0.0.1:1/s"))
	dir := createRules(t, root, "target", crashRules, "--service", "storage=pb://target@tcp:127.0.0.1:1/s", "--bootstrap", nb.locator())
	target, err := crashLaunch(t, "target", dir, dir)
	if err != nil {
		t.Fatal(err)
	}
	targetID := announce.NodeID(target.id())
	cli := start(t, "client", createRules(t, root, "client", crashRules), target.locator())

	// Imports count as one source: stay below its cap (R6), which would
	// evict the oldest by design; after that, keys get new seqnums only.
	fd := newCrashFeeder(seed, core.TestConfig().MaxPerSource-1)
	var maxSeen int64 // the highest counter the node showed before any kill
	var sentMax int64 // the highest seqnum of the node's own the client holds
	var maxRun, tRun, tRestart, tCheck time.Duration
	for i := range n {
		// Run: imports, refreshes, history; watch the counter.
		stop, fed := make(chan struct{}), make(chan struct{})
		go func() { fd.run(target.status, dir, stop); close(fed) }()
		life := time.Duration(50+rng.IntN(400)) * time.Millisecond
		tRun += life
		until := time.Now().Add(life)
		for time.Now().Before(until) {
			if st, err := target.state(); err == nil {
				maxSeen = max(maxSeen, st.Counter)
			}
			time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		}
		crashKill(target)
		close(stop)
		<-fed

		// Dead: the counter on disk covers what was shown and sent.
		onDisk := crashCounter(t, dir)
		if onDisk < maxSeen {
			t.Fatalf("kill %d: counter file %d, below the counter %d the node showed", i+1, onDisk, maxSeen)
		}
		// The client's copy only grows: looking every 10th kill is enough.
		if i%10 == 9 {
			if s, ok, err := cli.server(string(targetID)); err == nil && ok {
				sentMax = max(sentMax, s.Seqnum)
			}
		}
		if sentMax > onDisk {
			t.Fatalf("kill %d: the client holds the node's seqnum %d, above its counter file %d", i+1, sentMax, onDisk)
		}

		// Restart: it opens its peer book, and nothing went back.
		t0 := time.Now()
		if target, err = crashLaunch(t, "target", dir, dir); err != nil {
			t.Fatalf("restart %d: %v", i+1, err)
		}
		maxRun = max(maxRun, time.Since(t0))
		tRestart += time.Since(t0)
		t0 = time.Now()
		st, err := target.state()
		if err != nil {
			t.Fatalf("restart %d: status: %v", i+1, err)
		}
		if st.Counter < onDisk || st.Counter < maxSeen {
			t.Fatalf("restart %d: counter %d, below the counter file %d or the highest shown %d", i+1, st.Counter, onDisk, maxSeen)
		}
		if errs := crashLogErrors(target); len(errs) > 0 {
			t.Fatalf("restart %d: errors in the log:\n%s", i+1, strings.Join(errs, "\n"))
		}
		held, err := crashHeld(target)
		if err != nil {
			t.Fatalf("restart %d: servers: %v", i+1, err)
		}
		if miss := fd.missing(held); len(miss) > 0 {
			t.Fatalf("restart %d: %d acknowledged records lost: %v", i+1, len(miss), miss[:min(len(miss), 5)])
		}
		tCheck += time.Since(t0)
	}

	// Last kill, then the peer book itself.
	crashKill(target)
	book, err := peerbook.OpenSQLite(filepath.Join(dir, daemon.BookFile))
	if err != nil {
		t.Fatalf("peer book after the last kill: %v", err)
	}
	defer book.Close()
	st, err := book.Load()
	if err != nil {
		t.Fatalf("peer book after the last kill: %v", err)
	}
	held := map[announce.NodeID]int64{}
	for _, r := range st.Records {
		if a, err := announce.Verify(r.Signed); err == nil {
			held[a.ID] = max(held[a.ID], a.Seqnum)
		}
	}
	if miss := fd.missing(held); len(miss) > 0 {
		t.Fatalf("peer book after the last kill: %d acknowledged records lost: %v", len(miss), miss[:min(len(miss), 5)])
	}
	if c := max(st.Counter, crashCounter(t, dir)); c < maxSeen {
		t.Fatalf("after the last kill: counter %d, below the highest shown %d", c, maxSeen)
	}
	fd.mu.Lock()
	defer fd.mu.Unlock()
	t.Logf("%d kills in %v (seed %d): %d records acknowledged (%d keys) in %d imports, %d cut or refused; "+
		"%d records in the last peer book; highest own seqnum shown %d, counter file %d; none lost. "+
		"Time running %v, restarting %v (slowest %v), checking %v",
		n, time.Since(began).Round(time.Millisecond), seed, fd.nAcked, len(fd.acked), fd.requests, fd.refused,
		len(st.Records), maxSeen, crashCounter(t, dir), tRun, tRestart.Round(time.Millisecond), maxRun.Round(time.Millisecond),
		tCheck.Round(time.Millisecond))
}
