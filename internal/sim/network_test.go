package sim_test

import (
	"fmt"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/sim"
)

// ghosts lists the connections a running core believes it has that the
// network does not.
func ghosts(net *sim.Net) []string {
	var out []string
	for _, h := range net.Hosts() {
		if !h.Up {
			continue
		}
		for _, si := range h.Node.Servers() {
			if !si.Connected {
				continue
			}
			o, ok := net.HostByID(si.ID)
			if !ok || !net.Connected(h, o) {
				out = append(out, fmt.Sprintf("%s believes it is connected to %s", h, o))
			}
		}
	}
	return out
}

// A connection reset before the receiving side has been told of it must
// not leave the receiver believing it is connected (a ghost
// connection). With 10% loss, the dialler's first message on a new
// connection is often lost before the receiver hears of the connection.
func TestNoGhostConnections(t *testing.T) {
	net := sim.NewNet(5)
	net.Loss = 0.1
	cfg := core.TestConfig()
	var servers, clients []*sim.Host
	for i := range 6 {
		name := fmt.Sprintf("c%d", i)
		id, c := sim.Role("client", name, sim.KeyFor(name, 5), cfg)
		clients = append(clients, net.Add(name, id, c))
	}
	for i := range 6 {
		name := fmt.Sprintf("s%d", i)
		id, c := sim.Role("server", name, sim.KeyFor(name, 5), cfg)
		// Servers dial a client; clients hear of servers through it.
		id.Bootstrap = []announce.Locator{{ID: clients[i%len(clients)].ID, Addr: "sim:1"}}
		servers = append(servers, net.Add(name, id, c))
	}
	for _, h := range append(clients, servers...) {
		if err := net.Start(h); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		net.Run(10 * time.Second)
		if g := ghosts(net); len(g) > 0 {
			t.Fatalf("after %ds: %d ghost connections, e.g. %s", 10*(i+1), len(g), g[0])
		}
	}
	// Servers that stop leave no one believing they are still there.
	for _, s := range servers[:3] {
		net.Stop(s)
	}
	net.Run(time.Minute)
	if g := ghosts(net); len(g) > 0 {
		t.Fatalf("after stops: %d ghost connections, e.g. %s", len(g), g[0])
	}
}
