package transport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"grapevine/core"
)

// raiseFileLimit raises RLIMIT_NOFILE to the hard limit and skips the
// test if that is under need.
func raiseFileLimit(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot read RLIMIT_NOFILE: %v", err)
	}
	if lim.Cur < need {
		old := lim.Cur
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Skipf("cannot raise RLIMIT_NOFILE from %d: %v", old, err)
		}
		t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: old, Max: lim.Max}) })
	}
	if lim.Cur < need {
		t.Skipf("RLIMIT_NOFILE hard limit %d, the test needs %d", lim.Max, need)
	}
}

// partialHello starts a TLS record holding a ClientHello and never ends
// it: record header (512 bytes), handshake header (508), version, random.
var partialHello = append([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, make([]byte, 32)...)

// attacker holds n connections to addr from the loopback addresses
// 127.0.0.2 to 127.0.0.(1+addrs): silent ones, or slow ones that send
// partialHello a byte every trickle. A connection the node closes is
// opened again after reopen on average (from half to 1.5 times, so that
// the attacker's goroutines, in the test's process, do not all wake at
// once).
type attacker struct {
	opened, closed atomic.Int64
	mu             sync.Mutex
	longest        time.Duration // the longest a connection was held
	wg             sync.WaitGroup
}

func (at *attacker) hold(ctx context.Context, addr string, n, addrs int, slow bool, trickle, reopen time.Duration) {
	for i := range n {
		src := net.IPv4(127, 0, 0, byte(2+i%addrs))
		at.wg.Add(1)
		go func() {
			defer at.wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}
			buf := make([]byte, 64)
			for ctx.Err() == nil {
				raw, err := d.DialContext(ctx, "tcp", addr)
				if err == nil {
					at.opened.Add(1)
					start := time.Now()
					sent := 0
					for ctx.Err() == nil {
						raw.SetReadDeadline(time.Now().Add(trickle))
						_, err := raw.Read(buf)
						var ne net.Error
						if !errors.As(err, &ne) || !ne.Timeout() {
							break // closed by the node
						}
						if slow && sent < len(partialHello) {
							raw.Write(partialHello[sent : sent+1])
							sent++
						}
					}
					raw.Close()
					if ctx.Err() == nil {
						at.closed.Add(1)
						at.mu.Lock()
						at.longest = max(at.longest, time.Since(start))
						at.mu.Unlock()
					}
				}
				select {
				case <-time.After(reopen/2 + rand.N(reopen)):
				case <-ctx.Done():
				}
			}
		}()
	}
}

// Handshake starvation: 1,000 silent connections and
// 1,000 that send a ClientHello a byte at a time, held (and reopened when
// closed) from one loopback address and then from 20, while an honest
// node from 127.0.0.1 connects 20 times. Each connection must come up
// within 2 s.
func TestHandshakeStarvation(t *testing.T) {
	for _, addrs := range []int{1, 20} {
		t.Run(fmt.Sprintf("from %d addresses", addrs), func(t *testing.T) { starve(t, addrs) })
	}
}

func starve(t *testing.T, addrs int) {
	silentN, slowN, rounds := 1000, 1000, 20
	if testing.Short() {
		silentN, slowN, rounds = 200, 200, 5
	}
	const (
		trickle = 250 * time.Millisecond
		reopen  = 500 * time.Millisecond
		bound   = 2 * time.Second
	)
	raiseFileLimit(t, uint64(2*(silentN+slowN)+1000))

	var mu sync.Mutex
	refused := map[string]int{}
	b := startTCP(t, testKey(t, 2), func(o *Options) {
		o.OnReject = func(r Rejection) {
			mu.Lock()
			refused[r.Reason]++
			mu.Unlock()
		}
	})
	a := startTCP(t, testKey(t, 1), nil)

	ctx, cancel := context.WithCancel(context.Background())
	at := &attacker{}
	defer func() { cancel(); at.wg.Wait() }()
	attackStart := time.Now()
	at.hold(ctx, b.tr.Addr(), silentN, addrs, false, trickle, reopen)
	at.hold(ctx, b.tr.Addr(), slowN, addrs, true, trickle, reopen)
	deadline := time.Now().Add(20 * time.Second)
	for at.opened.Load() < int64(silentN+slowN) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	rampedUp := time.Now()
	time.Sleep(500 * time.Millisecond)
	t.Logf("attack under way for %v: %d connections opened", time.Since(attackStart).Round(time.Millisecond), at.opened.Load())

	var took []time.Duration
	over := 0
	for i := range rounds {
		start := time.Now()
		a.tr.Dial(b.id, []string{b.loc()}, 15*time.Second)
		in := a.rec.next(t, "Connected or DialFailed", func(in core.Input) bool {
			return isConnected(b.id)(in) || isDialFailed(b.id)(in)
		})
		d := time.Since(start)
		took = append(took, d)
		if df, failed := in.(core.DialFailed); failed {
			t.Errorf("round %d: dial failed after %v: %s", i, d, df.Err)
		} else {
			b.rec.next(t, "Connected at b", isConnected(a.id))
			a.tr.Disconnect(b.id)
			a.rec.next(t, "Disconnected", isDisconnected(b.id))
			b.rec.next(t, "Disconnected at b", isDisconnected(a.id))
		}
		if d >= bound {
			over++
		}
		if over == 3 { // without the fix each takes 10 s
			t.Errorf("stopped after %d rounds, %d of them over %v", i+1, over, bound)
			break
		}
	}
	// Let the connections of the first wave run into their deadline.
	for time.Since(rampedUp) < DefaultHello+time.Second {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	at.wg.Wait()

	sorted := slices.Sorted(slices.Values(took))
	p50, p100 := sorted[len(sorted)/2], sorted[len(sorted)-1]
	mu.Lock()
	counts := fmt.Sprint(refused)
	mu.Unlock()
	t.Logf("%d silent + %d slow connections from %d addresses; %d opened, %d closed by the node in %v; longest held %v",
		silentN, slowN, addrs, at.opened.Load(), at.closed.Load(), time.Since(attackStart).Round(time.Millisecond), at.longest.Round(time.Millisecond))
	t.Logf("node refused or cut: %s", counts)
	t.Logf("honest connect over %d rounds: p50 %v, p100 %v (bound %v); in order: %v", rounds, p50.Round(time.Millisecond), p100.Round(time.Millisecond), bound, roundMs(took))
	if p100 >= bound {
		t.Errorf("p100 %v, want under %v; all: %v", p100, bound, took)
	}
	if at.longest >= DefaultHandshake {
		t.Errorf("an attacking connection was held %v: no ClientHello deadline", at.longest)
	}
	mu.Lock()
	defer mu.Unlock()
	limit := ReasonTooManyHandshakes // 20 × MaxHandshakesPerAddress > MaxHandshakes
	if addrs == 1 {
		limit = ReasonAddressBusy
	}
	if refused[limit] == 0 || refused[ReasonHelloTimeout] == 0 {
		t.Errorf("no %s or %s refusals: %v", limit, ReasonHelloTimeout, refused)
	}
}

func roundMs(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
