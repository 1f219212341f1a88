package daemon

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/foolscap"
	"grapevine/internal/nodedir"
	"grapevine/internal/peerbook"
	"grapevine/internal/transport"
)

// tahoeSigned is a storage record as a Tahoe node signs it.
func tahoeSigned(key announce.PrivateKey, seq int64, tub string) announce.Signed {
	return announce.Sign(key, announce.Obj(
		announce.Member{Key: "version", Value: announce.Int(0)},
		announce.Member{Key: "service-name", Value: announce.Str("storage")},
		announce.Member{Key: "anonymous-storage-FURL", Value: announce.Str("pb://" + tub + "@tcp:127.0.0.1:9/x")},
		announce.Member{Key: "seqnum", Value: announce.Int(seq)},
	))
}

func annT(s announce.Signed) foolscap.Tuple {
	return foolscap.Tuple{[]byte(s.Msg), []byte(s.Sig), []byte(s.Key)}
}

// subscriberObj records the announce_v2 calls it gets.
type subscriberObj struct {
	mu   sync.Mutex
	got  map[string]string // key -> sig
	call chan struct{}
}

func (s *subscriberObj) RemoteInterfaceName() string {
	return "RIIntroducerSubscriberClient_v2.tahoe.allmydata.com"
}

func (s *subscriberObj) RemoteCall(_ context.Context, c *foolscap.Call) (foolscap.Value, error) {
	set, _ := c.Args[0].(foolscap.Set)
	s.mu.Lock()
	for _, v := range set {
		tu := v.(foolscap.Tuple)
		s.got[string(tu[2].([]byte))] = string(tu[1].([]byte))
	}
	s.mu.Unlock()
	select {
	case s.call <- struct{}{}:
	default:
	}
	return nil, nil
}

func (s *subscriberObj) has(key, sig string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[key] == sig
}

// waitHas waits until the subscriber has been sent key's record with sig.
func (s *subscriberObj) waitHas(t *testing.T, what, key, sig string) {
	t.Helper()
	waitFor(t, s.call, what, func() (bool, string) { return s.has(key, sig), "not sent" })
}

// The introducer endpoint: the FURL is written and kept across restarts;
// a publish is admitted under the usual rules and refused with the
// reason otherwise; a subscriber gets the live records; closing the
// publisher's connection unhosts its server.
func TestIntroducerEndpoint(t *testing.T) {
	n := testNode(t, "host", nodedir.Config{})
	net := transport.NewMemNetwork()
	book := peerbook.NewMemory()
	d, r := run(t, Options{Dir: n.Dir, Transport: net.Endpoint(n.Key), Book: book})
	furl := ReadIntroducerFURL(n.Dir)
	if !strings.HasPrefix(furl, "pb://") {
		t.Fatalf("FURL %q", furl)
	}
	if fi, err := os.Stat(filepath.Join(n.Dir, "private", IntroducerFURL)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("FURL file: %v %v", fi, err)
	}
	if st, _ := d.Snapshot(context.Background()); st.Introducer == nil || st.Introducer.FURL != furl {
		t.Fatalf("status introducer %+v", st.Introducer)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tub, _ := foolscap.NewTub()
	pub, err := foolscap.Dial(ctx, tub, furl, foolscap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	canary := &foolscap.Methods{Funcs: map[string]foolscap.MethodFunc{}}
	_, priv, _ := ed25519.GenerateKey(nil)
	tkey, _ := announce.NewPrivateKey(priv.Seed())
	rec := tahoeSigned(tkey, 5, tub.ID())

	for name, bad := range map[string]announce.Signed{
		"own-key":       tahoeSigned(n.Key, 9, tub.ID()),
		"bad-signature": {Msg: rec.Msg, Sig: tahoeSigned(tkey, 6, tub.ID()).Sig, Key: rec.Key},
	} {
		_, err := pub.Call(ctx, "publish_v2", annT(bad), canary)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Fatalf("publish %s: %v, want a refusal naming %s", name, err, name)
		}
	}
	if _, err := pub.Call(ctx, "publish_v2", foolscap.Tuple{[]byte("x")}, canary); err == nil {
		t.Fatal("a malformed ann_t was taken")
	}
	hosted := func() bool {
		st, _ := d.Snapshot(context.Background())
		return len(st.Introducer.Hosted) == 1 && st.Introducer.Hosted[0] == rec.Key
	}
	hostedIs := func(want bool) func() (bool, string) {
		return func() (bool, string) { return hosted() == want, "not yet" }
	}
	// A record whose FURL is another tub's is admitted, not hosted: the
	// connection proves nothing about that server.
	_, opriv, _ := ed25519.GenerateKey(nil)
	okey, _ := announce.NewPrivateKey(opriv.Seed())
	other := tahoeSigned(okey, 1, "aaaabbbbccccddddeeeeffffgggghhhh")
	if _, err := pub.Call(ctx, "publish_v2", annT(other), canary); err != nil {
		t.Fatalf("publish of another tub's server: %v", err)
	}
	var held bool
	d.Query(context.Background(), func(n *core.Node) { held = n.Holds(okey.ID()) && len(n.Hosted()) == 0 })
	if !held {
		t.Fatal("another tub's server: want held and not hosted")
	}
	if _, err := pub.Call(ctx, "publish_v2", annT(rec), canary); err != nil {
		t.Fatalf("publish: %v", err)
	}
	eventually(t, d, "the publisher's server to be hosted", hostedIs(true))

	sub := &subscriberObj{got: map[string]string{}, call: make(chan struct{}, 1)}
	subConn, err := foolscap.Dial(ctx, tub, furl, foolscap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := subConn.Call(ctx, "subscribe_v2", sub, []byte("storage"), foolscap.Dict{}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	sub.waitHas(t, "the subscriber to get the hosted record", rec.Key, rec.Sig)
	// A newer record reaches the subscriber too.
	rec2 := tahoeSigned(tkey, 6, tub.ID())
	if _, err := pub.Call(ctx, "publish_v2", annT(rec2), canary); err != nil {
		t.Fatal(err)
	}
	sub.waitHas(t, "the subscriber to get the newer record", rec2.Key, rec2.Sig)
	v, err := pub.Call(ctx, "get_version")
	if err != nil {
		t.Fatalf("get_version: %v", err)
	}
	if d, ok := v.(foolscap.Dict); !ok {
		t.Fatalf("get_version: %T", v)
	} else if _, ok := d.Get([]byte(introducerV2)); !ok {
		t.Fatalf("get_version %v lacks %s", v, introducerV2)
	}

	pub.Conn().Close()
	eventually(t, d, "the server to be unhosted", hostedIs(false))

	// Restarted, the endpoint has the same FURL.
	r.stop()
	err = <-r.done
	r.done <- err // for run's cleanup
	run(t, Options{Dir: n.Dir, Transport: net.Endpoint(n.Key), Book: book})
	if again := ReadIntroducerFURL(n.Dir); again != furl {
		t.Fatalf("FURL changed across a restart: %s, then %s", furl, again)
	}
}

// A node refuses to run with the key of the Tahoe node beside it.
func TestRefusesTahoesKey(t *testing.T) {
	tahoeDir := t.TempDir()
	n := testNode(t, "x", nodedir.Config{Tahoe: nodedir.TahoeConfig{NodeDir: tahoeDir}})
	if err := os.WriteFile(filepath.Join(tahoeDir, "node.pubkey"), []byte(n.Key.PublicKeyFile()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), Options{Dir: n.Dir, Transport: transport.NewMemNetwork().Endpoint(n.Key), Book: peerbook.NewMemory()})
	if err == nil || !strings.Contains(err.Error(), "Tahoe node's") {
		t.Fatalf("Run with Tahoe's key: %v", err)
	}
}
