package sim

import (
	"testing"
	"time"
)

// A held-back churn run, scaled down: heavy churn and 5% loss.
// No core may believe in a connection the network does not have (a ghost
// connection kept departed servers live, held and passed on, past H), and
// Grapevine's zombies stay within H + one refresh.
func TestChurnWithLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("45 simulated days")
	}
	sc, err := ParseScenario("churn.yaml", []byte(`
name: churn
duration: 45d
sample: 6h
population: {servers: 12, clients: 24}
network: {latency: 30ms, jitter: 20ms, loss: 0.05}
events:
  - {at: 1d, action: join-servers, count: 1, every: 1d, until: 12d}
  - {at: 1d12h, action: depart-servers, count: 1, every: 1d, until: 12d}
  - {at: 2d, action: restart-clients, count: 2, every: 3d, until: 12d}
  - {at: 3d, action: offline-clients, count: 2, for: 1d, every: 4d, until: 12d}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := newRunner(sc, Options{Design: "grapevine"})
	if err != nil {
		t.Fatal(err)
	}
	// run, with a look for ghosts at every sample.
	ghosts := 0
	for at := time.Duration(0); at < time.Duration(sc.Duration); {
		at += time.Duration(sc.Sample)
		r.net.RunUntil(r.start.Add(at))
		r.sample()
		for _, h := range r.net.Hosts() {
			if !h.Up {
				continue
			}
			for _, si := range h.Node.Servers() {
				if o := r.net.hosts[si.ID]; si.Connected && (o == nil || !r.net.Connected(h, o)) {
					if ghosts++; ghosts <= 3 {
						t.Logf("day %.1f: %s believes it is connected to %s", days(at), h, o)
					}
				}
			}
		}
	}
	r.finish()
	m := r.m
	bound := days(r.cfg.ForgetHorizon + r.cfg.RefreshInterval)
	t.Logf("departed %d, zombie lifetime %.1f days, still held %d, ghosts %d", m.DepartedServers, m.ZombieLifetimeMaxDays, m.StillHeldAtEnd, ghosts)
	if ghosts > 0 || m.ZombieLifetimeMaxDays > bound || m.StillHeldAtEnd > 0 {
		t.Errorf("%d ghost connections; zombie lifetime %.1f days (bound %.0f); %d departed still held at the end", ghosts, m.ZombieLifetimeMaxDays, bound, m.StillHeldAtEnd)
	}
}
