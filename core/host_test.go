package core_test

import (
	"fmt"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/sim"
	"grapevine/records"
)

// tahoeRecord is a storage record as a Tahoe node signs it: no locators,
// no Grapevine fields.
func tahoeRecord(name string, seq int64) (announce.NodeID, announce.Signed) {
	k := sim.KeyFor(name, 7)
	body := announce.Obj(
		announce.Member{Key: "version", Value: announce.Int(0)},
		announce.Member{Key: "nickname", Value: announce.Str(name)},
		announce.Member{Key: "service-name", Value: announce.Str("storage")},
		announce.Member{Key: "anonymous-storage-FURL", Value: announce.Str("pb://" + name + "@tcp:127.0.0.1:1/x")},
		announce.Member{Key: "seqnum", Value: announce.Int(seq)},
	)
	return k.ID(), announce.Sign(k, body)
}

type hostGrid struct {
	net       *sim.Net
	host, rel *sim.Host
	clients   []*sim.Host
	cfg       core.Config
}

func newHostGrid(t *testing.T, clients int, hostRole string) *hostGrid {
	t.Helper()
	g := &hostGrid{net: sim.NewNet(5), cfg: core.TestConfig()}
	add := func(role, name string, boot *sim.Host) *sim.Host {
		k := sim.KeyFor(name, 7)
		id, c := sim.Role(role, name, k, g.cfg)
		if boot != nil {
			id.Bootstrap = []announce.Locator{{ID: boot.ID, Addr: "sim:1"}}
		}
		h := g.net.Add(name, id, c)
		if err := g.net.Start(h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	g.rel = add("relay", "relay", nil)
	g.host = add(hostRole, "host", g.rel)
	add("server", "storage", g.rel) // keeps the relay healthy (R4) when the host dies
	for i := range clients {
		g.clients = append(g.clients, add("client", fmt.Sprintf("c%d", i), g.rel))
	}
	g.net.Run(3 * time.Second)
	return g
}

func (g *hostGrid) addClient(t *testing.T, name string) *sim.Host {
	k := sim.KeyFor(name, 7)
	id, c := sim.Role("client", name, k, g.cfg)
	id.Bootstrap = []announce.Locator{{ID: g.rel.ID, Addr: "sim:1"}}
	h := g.net.Add(name, id, c)
	if err := g.net.Start(h); err != nil {
		t.Fatal(err)
	}
	g.clients = append(g.clients, h)
	return h
}

// A Tahoe server publishing through its host stays live grid-wide while
// its publisher connection is up, though it never signs a fresh seqnum;
// when it goes, nobody passes it on within seconds, and it is forgotten
// after H.
func TestHostingKeepsPublisherLive(t *testing.T) {
	for _, role := range []string{"relay", "client"} {
		t.Run("host="+role, func(t *testing.T) { testHosting(t, role) })
	}
}

func testHosting(t *testing.T, role string) {
	g := newHostGrid(t, 2, role)
	x, rec := tahoeRecord("tahoe-x", 4)
	g.net.Input(g.host, core.Publish{Rec: rec})
	g.net.Run(2 * time.Second)
	for _, c := range append([]*sim.Host{g.rel}, g.clients...) {
		if !c.Node.Relays(x) {
			t.Fatalf("%s does not pass on the hosted server", c.Name)
		}
		si, _ := c.Node.Server(x)
		if len(si.Hosts) != 1 || si.Hosts[0] != g.host.ID {
			t.Fatalf("%s: hosts of x %v, want [%s]", c.Name, si.Hosts, g.host.ID.Short())
		}
	}
	// Far past W and H with no fresh seqnum of its own: still live.
	g.net.Run(g.cfg.ForgetHorizon + 2*g.cfg.LivenessWindow)
	for _, c := range append([]*sim.Host{g.rel, g.host}, g.clients...) {
		if !c.Node.Relays(x) {
			t.Fatalf("%s: hosted server not live after %v", c.Name, g.cfg.ForgetHorizon+2*g.cfg.LivenessWindow)
		}
	}
	late := g.addClient(t, "late")
	g.net.Run(3 * time.Second)
	if !late.Node.Relays(x) {
		t.Fatal("a client that joined later does not pass on the hosted server")
	}

	g.net.Input(g.host, core.Unpublished{ID: x})
	g.net.Run(2 * time.Second)
	for _, c := range append([]*sim.Host{g.rel, g.host}, g.clients...) {
		if c.Node.Relays(x) {
			t.Fatalf("%s still passes on x 2 s after its publisher left", c.Name)
		}
	}
	newcomer := g.addClient(t, "newcomer")
	g.net.Run(g.cfg.ForgetHorizon + g.cfg.LivenessWindow)
	for _, c := range append([]*sim.Host{g.rel, g.host}, g.clients...) {
		if c.Node.Holds(x) {
			t.Fatalf("%s still holds x %v after its publisher left", c.Name, g.cfg.ForgetHorizon+g.cfg.LivenessWindow)
		}
	}
	if !hasNetEvent(newcomer, core.EvForgot, x) && newcomer.Node.Holds(x) {
		t.Fatal("the newcomer holds x")
	}
	// A host that announces no service signed a grapevine-host record for
	// as long as it hosted, and withdrew it after.
	if role == "client" {
		for _, c := range g.clients {
			if c.Node.Relays(g.host.ID) {
				t.Fatalf("%s still passes on the host's %s record after it stopped hosting", c.Name, core.ServiceHost)
			}
		}
		if !hasNetEvent(g.clients[0], core.EvWithdrawn, g.host.ID) {
			t.Fatal("no withdrawal of the host record seen")
		}
	}
}

func hasNetEvent(h *sim.Host, kind core.EventKind, id announce.NodeID) bool {
	for _, e := range h.Node.RecentEvents() {
		if e.Kind == kind && e.Peer == id {
			return true
		}
	}
	return false
}

// When the host itself dies, its vouching dies with it: the hosted server
// is no longer passed on after W and is forgotten after H.
func TestHostDeathEndsVouching(t *testing.T) {
	g := newHostGrid(t, 1, "relay")
	x, rec := tahoeRecord("tahoe-x", 1)
	g.net.Input(g.host, core.Publish{Rec: rec})
	g.net.Run(2 * time.Second)
	c := g.clients[0]
	if !c.Node.Relays(x) {
		t.Fatal("not live before the host died")
	}
	g.net.Stop(g.host)
	g.net.Run(g.cfg.LivenessWindow + 2*time.Second)
	if c.Node.Relays(x) || g.rel.Node.Relays(x) {
		t.Fatalf("still passed on %v after its host died", g.cfg.LivenessWindow+2*time.Second)
	}
	g.net.Run(g.cfg.ForgetHorizon)
	if c.Node.Holds(x) || g.rel.Node.Holds(x) {
		t.Fatal("not forgotten after H")
	}
}

// Publishing refuses this node's own key, and one host vouches for at most
// MaxHosted servers.
func TestPublishBounds(t *testing.T) {
	n := newNode(t, "host", core.TestConfig(), "grapevine-relay")
	n.Step(t0, core.Tick{})
	n.Ready()
	own := announce.Sign(sim.KeyFor("host", 7), announce.Obj(
		announce.Member{Key: "service-name", Value: announce.Str("storage")},
		announce.Member{Key: "seqnum", Value: announce.Int(99)}))
	n.Step(t0, core.Publish{Rec: own})
	if r := n.Ready(); !hasEvent(r.Events, core.EvRejected, "own-key") {
		t.Fatalf("own key not refused: %v", r.Events)
	}
	xid, xrec := tahoeRecord("replayed", 1)
	n.Step(t0, core.Publish{Rec: xrec, NotServer: "another tub"})
	if r := n.Ready(); !n.Holds(xid) || len(n.Hosted()) != 0 || !hasEvent(r.Events, core.EvUnhosted, "publisher-not-server") {
		t.Fatalf("a publish by someone else: held %v, hosted %v, events %v", n.Holds(xid), n.Hosted(), r.Events)
	}
	for i := range core.MaxHosted + 1 {
		_, rec := tahoeRecord(fmt.Sprintf("t%d", i), 1)
		n.Step(t0, core.Publish{Rec: rec})
	}
	r := n.Ready()
	if got := len(n.Hosted()); got != core.MaxHosted {
		t.Fatalf("hosting %d, want %d", got, core.MaxHosted)
	}
	if !hasEvent(r.Events, core.EvOverCap, "hosted-cap") {
		t.Fatal("no hosted-cap event")
	}
	// Its own record lists exactly the hosted servers.
	a, ok := ownRecord(n, "grapevine-relay")
	if !ok {
		t.Fatal("no own record")
	}
	v, _ := a.Body.Get(core.FieldHosts)
	if listed := len(v.Items); listed != core.MaxHosted {
		t.Fatalf("own record lists %d hosted servers, want %d", listed, core.MaxHosted)
	}
}

func ownRecord(n *core.Node, svc string) (*announce.Announcement, bool) {
	return n.Record(recordsKey(svc, n.ID()))
}

func recordsKey(svc string, id announce.NodeID) records.Key { return records.Key{Service: svc, ID: id} }
