package daemon

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/nodedir"
	"grapevine/internal/transport"
	"grapevine/member"
	"grapevine/wire"
)

// founder runs the founder of a closed grid on loopback TCP, with a status
// endpoint and its log kept in logs.
func founder(t *testing.T, opt Options, logs *syncBuffer) *Daemon {
	t.Helper()
	n := apiNode(t, "founder", "test", nodedir.Config{})
	cfg := *n.Config
	cfg.Grid = string(n.ID())
	if err := n.SaveConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	opt.Dir = n.Dir
	return runLogged(t, opt, logs)
}

func invite(t *testing.T, d *Daemon, uses int) string {
	t.Helper()
	var code string
	var err error
	if !d.Query(context.Background(), func(*core.Node) { code, _, err = d.newInvite(uses, time.Hour) }) || err != nil {
		t.Fatalf("invite: %v", err)
	}
	return code
}

func join(t *testing.T, code string) error {
	t.Helper()
	_, err := Join(context.Background(), JoinOptions{Code: code, Dir: filepath.Join(t.TempDir(), "joiner"),
		Config: nodedir.Config{Listen: "127.0.0.1:0"}, Timeout: 10 * time.Second})
	return err
}

func joinReason(err error) string {
	var je *JoinError
	if errors.As(err, &je) {
		return je.Reason
	}
	return ""
}

// A code re-pointed at another grid is declined by the joiner before
// the inviter spends the use, so the invite still admits the real joiner.
func TestJoinDeclinedKeepsInvite(t *testing.T) {
	var logs syncBuffer
	d := founder(t, Options{}, &logs)
	code := invite(t, d, 1)
	inv, err := member.ParseInvite(code)
	if err != nil {
		t.Fatal(err)
	}
	inv.GridPrefix[0] ^= 0xff
	if err := join(t, inv.Code()); joinReason(err) == "" || err == nil {
		t.Fatalf("join with a re-pointed code: %v, want a refusal", err)
	} else {
		t.Logf("re-pointed code: %v", err)
	}
	if err := join(t, code); err != nil {
		t.Fatalf("join after a declined one: %v\n%s", err, logs.String())
	}
	if err := join(t, code); joinReason(err) != "used" {
		t.Fatalf("third join: %v, want used", err)
	}
	var used int
	var members []IssuedCert
	d.Query(context.Background(), func(*core.Node) {
		used, members = d.invites.invites[0].Used, d.invites.invites[0].Members
	})
	if used != 1 || len(members) != 1 {
		t.Fatalf("invite used %d, %d certificates issued; want 1 and 1 (none for the declined join)", used, len(members))
	}
}

// rawJoiner is a connection to the inviter that speaks the join protocol
// by hand.
type rawJoiner struct {
	t   *testing.T
	tr  *transport.TCP
	key announce.PrivateKey
	to  announce.NodeID
}

func dialRaw(t *testing.T, d *Daemon) *rawJoiner {
	t.Helper()
	var seed [32]byte
	crand.Read(seed[:])
	key, err := announce.NewPrivateKey(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transport.Listen(transport.Options{Key: key, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	j := &rawJoiner{t: t, tr: tr, key: key, to: d.ID()}
	tr.Dial(d.ID(), d.Locators(), 10*time.Second)
	for {
		switch in := j.next().(type) {
		case core.Connected:
			return j
		case core.DialFailed:
			t.Fatalf("dial: %s", in.Err)
		}
	}
}

// next returns the next input, failing after 10 s.
func (j *rawJoiner) next() core.Input {
	j.t.Helper()
	select {
	case in := <-j.tr.Inputs():
		return in
	case <-time.After(10 * time.Second):
		j.t.Fatal("nothing from the inviter for 10 s")
	}
	return nil
}

// answer returns the next join message from the inviter.
func (j *rawJoiner) answer() core.Msg {
	j.t.Helper()
	for {
		switch in := j.next().(type) {
		case core.Received:
			switch in.Msg.(type) {
			case wire.RedeemOffer, wire.RedeemReply:
				return in.Msg
			}
		case core.Disconnected:
			j.t.Fatalf("disconnected: %s", in.Err)
		}
	}
}

func reason(m core.Msg) string {
	switch m := m.(type) {
	case wire.RedeemOffer:
		return "offered"
	case wire.RedeemReply:
		if m.Reason == "" {
			return "redeemed"
		}
		return m.Reason
	}
	return "?"
}

// A joiner that takes the offer and goes quiet holds the use only until
// the reservation times out; confirming after that is refused.
func TestJoinReservationTimesOut(t *testing.T) {
	var logs syncBuffer
	d := founder(t, Options{reserveFor: 300 * time.Millisecond}, &logs)
	code := invite(t, d, 1)
	inv, _ := member.ParseInvite(code)
	slow := dialRaw(t, d)
	slow.tr.Send(d.ID(), wire.Redeem{Secret: inv.Secret})
	if m := slow.answer(); reason(m) != "offered" {
		t.Fatalf("first redeem: %#v, want an offer", m)
	}
	if err := join(t, code); joinReason(err) != "reserved" {
		t.Fatalf("join while another holds the use: %v, want reserved", err)
	}
	eventually(t, d, "the held use to be released", func() (bool, string) {
		return strings.Contains(logs.String(), `"reason":"timeout"`), ""
	})
	if err := join(t, code); err != nil {
		t.Fatalf("join after the hold timed out: %v", err)
	}
	slow.tr.Send(d.ID(), wire.RedeemConfirm{Accept: true})
	if m := slow.answer(); reason(m) != "not-held" {
		t.Fatalf("late confirmation: %#v, want not-held", m)
	}
}

// The tester's flood: 20,000 Redeems on one connection took the core
// goroutine and wrote a log line each. Only the burst is handled; the
// rest are refused "rate-limited" and counted, and logged once. Fresh
// connections (fresh keys) meet the shared bucket ("busy").
func TestRedeemRateLimited(t *testing.T) {
	var logs syncBuffer
	d := founder(t, Options{}, &logs)
	j := dialRaw(t, d)
	const total, batch = 20000, 250
	got := map[string]int{}
	start := time.Now()
	for sent := 0; sent < total; sent += batch {
		for range batch {
			var m wire.Redeem
			crand.Read(m.Secret[:])
			j.tr.Send(d.ID(), m)
		}
		for range batch {
			got[reason(j.answer())]++
		}
	}
	t.Logf("%d redeems on one connection in %v: %v", total, time.Since(start).Round(time.Millisecond), got)
	if got["unknown"] != redeemPeerBurst || got["rate-limited"] != total-redeemPeerBurst {
		t.Fatalf("answers %v, want %d unknown and the rest rate-limited", got, redeemPeerBurst)
	}
	if n := strings.Count(logs.String(), `"msg":"invite refused"`); n != redeemPeerBurst {
		t.Errorf("%d refusals logged one by one, want %d", n, redeemPeerBurst)
	}
	if n := strings.Count(logs.String(), `"msg":"invite redeems refused"`); n != 1 {
		t.Errorf("%d summary lines for the rate-limited ones, want 1 (a minute apart)", n)
	}

	many := map[string]int{}
	dialsStart := time.Now()
	for range 2 * redeemAllBurst {
		k := dialRaw(t, d)
		k.tr.Send(d.ID(), wire.Redeem{})
		many[reason(k.answer())]++
		k.tr.Close()
	}
	// The shared bucket gains a token per redeemAllEvery the dials took.
	refills := int(time.Since(dialsStart) / redeemAllEvery)
	t.Logf("%d connections, one redeem each: %v (%d refills)", 2*redeemAllBurst, many, refills)
	if many["busy"] < redeemAllBurst-redeemPeerBurst-2-refills || many["unknown"] > redeemAllBurst+refills {
		t.Fatalf("answers %v, want at most %d handled and the rest busy", many, redeemAllBurst+refills)
	}
	vals, _ := scrape(t, d)
	if v := vals[`grapevine_invite_redeems_total{outcome="rate-limited"}`]; v != total-redeemPeerBurst {
		t.Errorf("rate-limited counted %v, want %d", v, total-redeemPeerBurst)
	}
	if v := vals[`grapevine_invite_redeems_total{outcome="busy"}`]; int(v) != many["busy"] {
		t.Errorf("busy counted %v, want %d", v, many["busy"])
	}
}

func TestRedeemLimiterBounded(t *testing.T) {
	var l redeemLimiter
	now := time.Now()
	for i := range 3 * maxRedeemPeers {
		var id [32]byte
		id[0], id[1] = byte(i), byte(i>>8)
		l.allow(announce.NodeID(string(id[:])), now.Add(time.Duration(i)*time.Second))
	}
	if len(l.peers) > maxRedeemPeers {
		t.Fatalf("%d buckets kept, limit %d", len(l.peers), maxRedeemPeers)
	}
}

// The desk makes every decision on a redemption, each with its reason
// word: refusals, offers, holds released and spent, and the rate limit
// on confirmations that answer no offer.
func TestInviteDeskDecisions(t *testing.T) {
	key, err := announce.NewPrivateKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	store, err := loadInvites(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	mono := wall
	issue := func(uses int, valid time.Duration) [16]byte {
		inv, err := member.NewInvite(key.ID(), key.ID(), "127.0.0.1:1", crand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		h := member.HashSecret(inv.Secret)
		if err := store.add(Invite{ID: inv.ID(), SecretHash: hex.EncodeToString(h[:]), Uses: uses, Created: wall, Expires: wall.Add(valid)}, wall); err != nil {
			t.Fatal(err)
		}
		return inv.Secret
	}
	shared := []announce.Signed{testRecord(t, 4)}
	desk := &inviteDesk{store: store, pol: &policy{grid: key.ID(), set: member.NewRevocationSet(key.ID(), MaxRevocations)},
		key: key, records: func(int) []announce.Signed { return shared }, reserveFor: ReserveTimeout}
	// send hands m to the desk a minute after the last one (the rate
	// limits never bite) and returns the reply's reason and the outcomes.
	ids := map[string]announce.NodeID{}
	for i, p := range []string{"p1", "p2", "p3", "p4", "p5"} {
		k, err := announce.NewPrivateKey(bytes.Repeat([]byte{byte(i + 1)}, 32))
		if err != nil {
			t.Fatal(err)
		}
		ids[p] = k.ID()
	}
	var last core.Msg
	send := func(peer string, m core.Msg) (string, []string) {
		t.Helper()
		mono = mono.Add(time.Minute)
		reply, ds := desk.Redeem(ids[peer], wall, mono, m)
		last = reply
		var outs []string
		for _, d := range ds {
			if d.Peer != ids[peer] {
				t.Errorf("decision %+v for another peer than %s", d, peer)
			}
			outs = append(outs, d.Outcome+map[bool]string{true: "/" + d.Why}[d.Why != ""])
		}
		if reply == nil {
			return "", outs
		}
		return reason(reply), outs
	}
	one, once := issue(1, time.Hour), issue(2, time.Hour)
	stale := issue(1, -time.Second)
	steps := []struct {
		peer  string
		msg   core.Msg
		reply string
		outs  []string
	}{
		{"p1", wire.Redeem{}, "unknown", []string{"unknown"}},
		{"p1", wire.Redeem{Secret: stale}, "expired", []string{"expired"}},
		{"p1", wire.Redeem{Secret: one}, "offered", []string{"offered"}},
		{"p2", wire.Redeem{Secret: one}, "reserved", []string{"reserved"}},
		{"p1", wire.Redeem{Secret: one}, "offered", []string{"released/redeemed-again", "offered"}},
		{"p2", wire.RedeemConfirm{Accept: true}, "not-held", []string{"not-held"}},
		{"p2", wire.RedeemConfirm{Accept: false}, "", nil},
		{"p1", wire.RedeemConfirm{Accept: false}, "", []string{"declined"}},
		{"p2", wire.Redeem{Secret: one}, "offered", []string{"offered"}},
		{"p2", wire.RedeemConfirm{Accept: true}, "redeemed", []string{"redeemed"}},
		{"p1", wire.Redeem{Secret: one}, "used", []string{"used"}},
		{"p3", wire.Redeem{Secret: once}, "offered", []string{"offered"}},
	}
	for i, s := range steps {
		reply, outs := send(s.peer, s.msg)
		if reply != s.reply || strings.Join(outs, " ") != strings.Join(s.outs, " ") {
			t.Fatalf("step %d (%s %T): reply %q, decisions %q; want %q, %q", i, s.peer, s.msg, reply, outs, s.reply, s.outs)
		}
		if r, ok := last.(wire.RedeemReply); ok && reply == "redeemed" {
			ch, err := member.ParseChain(r.Chain)
			if err != nil || len(ch) != 1 || ch[0].Subject != ids[s.peer] || len(r.Records) != 1 || r.Records[0] != shared[0] {
				t.Fatalf("redeemed: chain %v (%v), records %d; want a certificate for %s and the records given", r.Chain, err, len(r.Records), s.peer)
			}
		}
	}
	if inv := store.find(one); inv.Used != 1 || len(inv.Members) != 1 || inv.Members[0].Subject != ids["p2"] {
		t.Fatalf("spent invite: %+v", inv)
	}
	if ds := desk.release(ids["p3"], "disconnected"); len(ds) != 1 || ds[0].Outcome != "released" || ds[0].Why != "disconnected" {
		t.Fatalf("disconnect: %+v", ds)
	}
	send("p3", wire.Redeem{Secret: once})
	if ds := desk.expire(mono.Add(ReserveTimeout - time.Second)); len(ds) != 0 {
		t.Fatalf("hold expired early: %+v", ds)
	}
	if ds := desk.expire(mono.Add(ReserveTimeout + time.Second)); len(ds) != 1 || ds[0].Why != "timeout" || ds[0].Peer != ids["p3"] {
		t.Fatalf("hold past its time: %+v", ds)
	}

	// A flood of confirmations that answer no offer meets the same limits
	// as Redeems.
	got := map[string]int{}
	for range 100 {
		reply, ds := desk.Redeem(ids["p4"], wall, mono, wire.RedeemConfirm{Accept: true})
		if len(ds) != 1 || reason(reply) != ds[0].Outcome || ds[0].Limited != (ds[0].Outcome == "rate-limited") {
			t.Fatalf("confirm flood: reply %q, decisions %+v", reason(reply), ds)
		}
		got[ds[0].Outcome]++
	}
	if got["not-held"] != redeemPeerBurst || got["rate-limited"] != 100-redeemPeerBurst {
		t.Fatalf("100 confirmations of nothing: %v, want %d not-held and the rest rate-limited", got, redeemPeerBurst)
	}

	open := &inviteDesk{reserveFor: ReserveTimeout}
	if reply, ds := open.Redeem(ids["p5"], wall, mono, wire.Redeem{Secret: one}); reason(reply) != "open-grid" || len(ds) != 1 || ds[0].Outcome != "open-grid" {
		t.Fatalf("open grid: %q %+v", reason(reply), ds)
	}
}
