package daemon

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/atomicfile"
	"grapevine/member"
	"grapevine/wire"
)

// InvitesFile holds the invites this node issued and what became of them.
const InvitesFile = "invites.json"

// MaxInvites bounds the invites kept; the oldest finished ones go first.
const MaxInvites = 1024

// Invite is one invite this node issued. Times are on this node's clock.
type Invite struct {
	ID         string    `json:"id"`
	SecretHash string    `json:"secret_sha256"`
	Uses       int       `json:"uses"`
	Used       int       `json:"used"`
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires"`
	// Members lists who redeemed it, with the certificate each got.
	Members []IssuedCert `json:"members,omitempty"`
}

// IssuedCert is a certificate this node signed.
type IssuedCert struct {
	Subject announce.NodeID `json:"subject"`
	Cert    string          `json:"cert"`
	At      time.Time       `json:"at"`
}

type inviteStore struct {
	path    string
	invites []Invite
}

func loadInvites(dir string) (*inviteStore, error) {
	s := &inviteStore{path: filepath.Join(dir, InvitesFile)}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &s.invites); err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	return s, nil
}

func (s *inviteStore) save() error {
	b, err := json.MarshalIndent(s.invites, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(s.path, append(b, '\n'), 0o600)
}

func (s *inviteStore) add(inv Invite, now time.Time) error {
	s.invites = append(s.invites, inv)
	if len(s.invites) > MaxInvites {
		for i, old := range s.invites {
			if old.Used >= old.Uses || now.After(old.Expires) {
				s.invites = append(s.invites[:i], s.invites[i+1:]...)
				break
			}
		}
	}
	if len(s.invites) > MaxInvites {
		s.invites = s.invites[:MaxInvites]
		return fmt.Errorf("%d invites are open, limit %d", MaxInvites, MaxInvites)
	}
	return s.save()
}

// newInvite makes an invite code for this node's grid.
func (d *Daemon) newInvite(uses int, valid time.Duration) (string, Invite, error) {
	if d.policy == nil {
		return "", Invite{}, errors.New("this node is in an open grid (no grid in grapevine.yaml): there is nothing to invite to")
	}
	if len(d.locators) == 0 {
		return "", Invite{}, errors.New("this node has no location that others can dial; set location in grapevine.yaml")
	}
	if uses < 1 || uses > 1000 {
		return "", Invite{}, fmt.Errorf("uses %d: want 1 to 1000", uses)
	}
	if valid <= 0 {
		return "", Invite{}, fmt.Errorf("expiry %v: want a positive duration", valid)
	}
	loc, err := announce.ParseLocator(d.locators[0])
	if err != nil {
		return "", Invite{}, err
	}
	inv, err := member.NewInvite(d.policy.grid, d.dir.ID(), loc.Addr, crand.Reader)
	if err != nil {
		return "", Invite{}, err
	}
	h := member.HashSecret(inv.Secret)
	now := d.clock.now()
	rec := Invite{ID: inv.ID(), SecretHash: hex.EncodeToString(h[:]), Uses: uses, Created: now, Expires: now.Add(valid)}
	if err := d.invites.add(rec, now); err != nil {
		return "", Invite{}, err
	}
	d.log.Info("invite created", "invite", rec.ID, "uses", uses, "expires", rec.Expires)
	return inv.Code(), rec, nil
}

// Redeems run on the loop goroutine, so they are rate-limited before
// anything else: per connection (a connection is one peer key) and over
// all connections together. A refused Redeem costs a map lookup and a
// short reply; refusals are counted and logged once a minute.
const (
	redeemPeerBurst = 3
	redeemPeerEvery = 20 * time.Second // one more per connection
	redeemAllBurst  = 20
	redeemAllEvery  = time.Second // one more over all connections
	maxRedeemPeers  = 1024        // per-connection buckets kept
)

// ReserveTimeout is how long a use offered to a joiner is held for its
// confirmation; unconfirmed, it is released.
const ReserveTimeout = 30 * time.Second

// bucket is a token bucket; zero is full.
type bucket struct {
	tokens float64
	at     time.Time
}

func (b *bucket) refill(now time.Time, burst float64, every time.Duration) {
	if b.at.IsZero() {
		b.tokens = burst
	} else if d := now.Sub(b.at); d > 0 {
		b.tokens = min(burst, b.tokens+d.Seconds()/every.Seconds())
	}
	b.at = now
}

// redeemLimiter decides whether a Redeem is handled.
type redeemLimiter struct {
	peers map[announce.NodeID]*bucket
	all   bucket
}

// allow returns "" and takes a token from peer's bucket and the shared
// one, or returns the refusal's reason word: "rate-limited" (this
// connection) or "busy" (all of them).
func (l *redeemLimiter) allow(peer announce.NodeID, now time.Time) string {
	if l.peers == nil {
		l.peers = map[announce.NodeID]*bucket{}
	}
	b := l.peers[peer]
	if b == nil {
		if len(l.peers) >= maxRedeemPeers {
			l.prune(now)
		}
		if len(l.peers) >= maxRedeemPeers {
			return "busy"
		}
		b = &bucket{}
	}
	b.refill(now, redeemPeerBurst, redeemPeerEvery)
	if b.tokens < 1 {
		return "rate-limited"
	}
	l.all.refill(now, redeemAllBurst, redeemAllEvery)
	if l.all.tokens < 1 {
		return "busy"
	}
	l.all.tokens--
	b.tokens--
	l.peers[peer] = b
	return ""
}

// prune drops the buckets that have refilled: they are as good as new.
func (l *redeemLimiter) prune(now time.Time) {
	for id, b := range l.peers {
		if b.refill(now, redeemPeerBurst, redeemPeerEvery); b.tokens >= redeemPeerBurst {
			delete(l.peers, id)
		}
	}
}

// joins is the inviter's side of the join protocol: the limiter and the
// uses held for joiners that were offered one.
type joins struct {
	limit redeemLimiter
	held  map[announce.NodeID]hold
	// Limiter refusals not yet logged, and when the last line was.
	quiet    int
	loggedAt time.Time
}

// hold is one use of an invite offered to a joiner, until (monotonic).
type hold struct {
	invite string
	until  time.Time
}

// joinInput handles the join protocol's messages (they never reach the
// core) and releases holds on disconnects and timeouts. It returns true
// if in was consumed.
func (d *Daemon) joinInput(in core.Input) bool {
	switch in := in.(type) {
	case core.Received:
		switch m := in.Msg.(type) {
		case wire.Redeem:
			d.redeem(in.From, m.Secret)
			return true
		case wire.RedeemConfirm:
			d.confirm(in.From, m.Accept)
			return true
		case wire.RedeemOffer, wire.RedeemReply:
			return true // meant for a joiner
		}
	case core.Disconnected:
		d.release(in.Peer, "disconnected")
	case core.Tick:
		now := d.clock.mono()
		for peer, h := range d.joins.held {
			if now.After(h.until) {
				d.release(peer, "timeout")
			}
		}
	}
	return false
}

// redeem answers a Redeem from peer: an offer holding one use of the
// invite, or a refusal. No certificate is issued and nothing is written
// until the joiner confirms.
func (d *Daemon) redeem(peer announce.NodeID, secret [16]byte) {
	now := d.clock.mono()
	if why := d.joins.limit.allow(peer, now); why != "" {
		d.metrics.redeem(why)
		d.joins.quiet++
		if now.Sub(d.joins.loggedAt) >= time.Minute {
			d.log.Warn("invite redeems refused", "reason", why, "refused", d.joins.quiet, "peer", string(peer))
			d.joins.quiet, d.joins.loggedAt = 0, now
		}
		d.tr.Send(peer, wire.RedeemReply{Reason: why})
		return
	}
	offer, why, id := d.reserve(peer, secret, now)
	if why != "" {
		d.metrics.redeem(why)
		d.log.Info("invite refused", "peer", string(peer), "reason", why, "invite", id)
		d.tr.Send(peer, wire.RedeemReply{Reason: why})
		return
	}
	d.metrics.redeem("offered")
	d.log.Info("invite offered", "invite", id, "peer", string(peer), "held_for", d.reserveFor().String())
	d.tr.Send(peer, offer)
}

func (d *Daemon) reserveFor() time.Duration {
	if d.opt.reserveFor > 0 {
		return d.opt.reserveFor
	}
	return ReserveTimeout
}

// findInvite returns the invite whose secret this is, or nil.
func (d *Daemon) findInvite(secret [16]byte) *Invite {
	id := member.SecretID(secret)
	for i := range d.invites.invites {
		inv := &d.invites.invites[i]
		if inv.ID != id {
			continue
		}
		var h [32]byte
		if b, err := hex.DecodeString(inv.SecretHash); err == nil && len(b) == 32 {
			copy(h[:], b)
			if member.SecretMatches(h, secret) {
				return inv
			}
		}
	}
	return nil
}

func (d *Daemon) inviteByID(id string) *Invite {
	for i := range d.invites.invites {
		if d.invites.invites[i].ID == id {
			return &d.invites.invites[i]
		}
	}
	return nil
}

// reserve holds one use of the invite with this secret for peer, or
// says why not.
func (d *Daemon) reserve(peer announce.NodeID, secret [16]byte, now time.Time) (wire.RedeemOffer, string, string) {
	if d.policy == nil {
		return wire.RedeemOffer{}, "open-grid", ""
	}
	inv := d.findInvite(secret)
	if inv == nil {
		return wire.RedeemOffer{}, "unknown", ""
	}
	if _, ok := d.joins.held[peer]; ok {
		d.release(peer, "redeemed-again")
	}
	held := 0
	for _, h := range d.joins.held {
		if h.invite == inv.ID {
			held++
		}
	}
	switch {
	case d.clock.now().After(inv.Expires):
		return wire.RedeemOffer{}, "expired", inv.ID
	case inv.Used >= inv.Uses:
		return wire.RedeemOffer{}, "used", inv.ID
	case inv.Used+held >= inv.Uses:
		return wire.RedeemOffer{}, "reserved", inv.ID
	}
	if d.joins.held == nil {
		d.joins.held = map[announce.NodeID]hold{}
	}
	d.joins.held[peer] = hold{invite: inv.ID, until: now.Add(d.reserveFor())}
	return wire.RedeemOffer{Grid: d.policy.grid, Chain: slices.Clone(d.dir.Config.Membership)}, "", inv.ID
}

// release gives peer's held use back, if it holds one.
func (d *Daemon) release(peer announce.NodeID, why string) {
	h, ok := d.joins.held[peer]
	if !ok {
		return
	}
	delete(d.joins.held, peer)
	d.metrics.redeem("released")
	d.log.Info("invite use released", "invite", h.invite, "peer", string(peer), "reason", why)
}

// confirm answers a joiner's decision on its offer. Accepted, the use is
// spent and on disk before the certificate leaves; declined, it is free
// again.
func (d *Daemon) confirm(peer announce.NodeID, accept bool) {
	h, ok := d.joins.held[peer]
	if !ok {
		if accept {
			d.metrics.redeem("not-held")
			d.log.Info("invite refused", "peer", string(peer), "reason", "not-held")
			d.tr.Send(peer, wire.RedeemReply{Reason: "not-held"})
		}
		return
	}
	delete(d.joins.held, peer)
	if !accept {
		d.metrics.redeem("declined")
		d.log.Info("invite declined by the joiner; its use is free again", "invite", h.invite, "peer", string(peer))
		return
	}
	inv := d.inviteByID(h.invite)
	if inv == nil {
		d.metrics.redeem("unknown")
		d.tr.Send(peer, wire.RedeemReply{Reason: "unknown"})
		return
	}
	now := d.clock.now()
	var b [8]byte
	crand.Read(b[:])
	cert := member.Issue(d.dir.Key, d.policy.grid, peer, binary.BigEndian.Uint64(b[:]))
	chain := append(slices.Clone(d.dir.Config.Membership), cert.String())
	inv.Used++
	inv.Members = append(inv.Members, IssuedCert{Subject: peer, Cert: cert.String(), At: now})
	if err := d.invites.save(); err != nil {
		inv.Used--
		inv.Members = inv.Members[:len(inv.Members)-1]
		d.log.Error("invite: persisting", "err", err)
		d.metrics.redeem("inviter-error")
		d.tr.Send(peer, wire.RedeemReply{Reason: "inviter-error"})
		return
	}
	reply := wire.RedeemReply{Chain: chain, Revocations: d.policy.set.Strings()}
	for _, r := range d.node.State().Records {
		if d.node.Relays(announce.NodeID(r.Signed.Key)) && len(reply.Records) < wire.MaxRecords {
			reply.Records = append(reply.Records, r.Signed)
		}
	}
	reply.Records = d.ownFilter(reply.Records)
	d.metrics.redeem("redeemed")
	d.log.Info("invite redeemed", "invite", inv.ID, "member", string(peer), "uses_left", inv.Uses-inv.Used)
	d.tr.Send(peer, reply)
}
