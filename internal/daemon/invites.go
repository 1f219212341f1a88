package daemon

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
// all connections together; so is a RedeemConfirm that answers no offer.
// A refused one costs a map lookup and a short reply; refusals are
// counted and logged once a minute.
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

// hold is one use of an invite offered to a joiner, until (monotonic).
type hold struct {
	invite string
	until  time.Time
}

// inviteDesk is the inviter's side of the join protocol. Every decision
// on a joiner's message is made here: the rate limits, the invite's
// validity, uses and expiry, holding a use for an offer, spending it.
// Each comes back as a decision with a reason word, which the daemon
// logs and counts (noteRedeems).
type inviteDesk struct {
	store      *inviteStore // nil in an open grid
	pol        *policy      // nil: an open grid
	key        announce.PrivateKey
	chain      []string                          // this node's membership chain
	records    func(limit int) []announce.Signed // what a new member is given
	reserveFor time.Duration
	limit      redeemLimiter
	held       map[announce.NodeID]hold
}

// decision is one step of a redemption.
type decision struct {
	Outcome string // counted: offered, redeemed, declined, released, or the refusal's reason
	Why     string // what released a held use: disconnected, timeout, redeemed-again
	Peer    announce.NodeID
	Invite  string // the invite's ID, if known
	Limited bool   // refused by a rate limit before anything else
	Left    int    // uses left, once redeemed
	Err     error  // why an inviter-error
}

// Redeem decides on a Redeem or RedeemConfirm from peer at wall (the
// node's clock: expiry, certificates) and mono (holds, rate limits). It
// returns the reply, if any, and its decisions in order. No certificate
// is issued and nothing is written until the joiner confirms an offer.
func (dk *inviteDesk) Redeem(peer announce.NodeID, wall, mono time.Time, m core.Msg) (core.Msg, []decision) {
	switch m := m.(type) {
	case wire.Redeem:
		if why := dk.limit.allow(peer, mono); why != "" {
			return wire.RedeemReply{Reason: why}, []decision{{Outcome: why, Peer: peer, Limited: true}}
		}
		return dk.offer(peer, wall, mono, m.Secret)
	case wire.RedeemConfirm:
		h, ok := dk.held[peer]
		switch {
		case !ok && !m.Accept:
			return nil, nil // declining nothing
		case !ok:
			// Not the answer to an offer: limited like a Redeem.
			if why := dk.limit.allow(peer, mono); why != "" {
				return wire.RedeemReply{Reason: why}, []decision{{Outcome: why, Peer: peer, Limited: true}}
			}
			return refuse(peer, "not-held", "")
		}
		delete(dk.held, peer)
		if !m.Accept {
			return nil, []decision{{Outcome: "declined", Peer: peer, Invite: h.invite}}
		}
		return dk.spend(peer, wall, h.invite)
	}
	return nil, nil
}

func refuse(peer announce.NodeID, why, invite string, before ...decision) (core.Msg, []decision) {
	return wire.RedeemReply{Reason: why}, append(before, decision{Outcome: why, Peer: peer, Invite: invite})
}

// offer holds one use of the invite with this secret for peer, or says
// why not.
func (dk *inviteDesk) offer(peer announce.NodeID, wall, mono time.Time, secret [16]byte) (core.Msg, []decision) {
	if dk.pol == nil {
		return refuse(peer, "open-grid", "")
	}
	inv := dk.store.find(secret)
	if inv == nil {
		return refuse(peer, "unknown", "")
	}
	ds := dk.release(peer, "redeemed-again")
	held := 0
	for _, h := range dk.held {
		if h.invite == inv.ID {
			held++
		}
	}
	switch {
	case wall.After(inv.Expires):
		return refuse(peer, "expired", inv.ID, ds...)
	case inv.Used >= inv.Uses:
		return refuse(peer, "used", inv.ID, ds...)
	case inv.Used+held >= inv.Uses:
		return refuse(peer, "reserved", inv.ID, ds...)
	}
	if dk.held == nil {
		dk.held = map[announce.NodeID]hold{}
	}
	dk.held[peer] = hold{invite: inv.ID, until: mono.Add(dk.reserveFor)}
	return wire.RedeemOffer{Grid: dk.pol.grid, Chain: slices.Clone(dk.chain)},
		append(ds, decision{Outcome: "offered", Peer: peer, Invite: inv.ID})
}

// spend issues peer's certificate for a use it held. The use is on disk
// before the certificate leaves.
func (dk *inviteDesk) spend(peer announce.NodeID, wall time.Time, id string) (core.Msg, []decision) {
	inv := dk.store.byID(id)
	if inv == nil {
		return refuse(peer, "unknown", id)
	}
	var b [8]byte
	crand.Read(b[:])
	cert := member.Issue(dk.key, dk.pol.grid, peer, binary.BigEndian.Uint64(b[:]))
	inv.Used++
	inv.Members = append(inv.Members, IssuedCert{Subject: peer, Cert: cert.String(), At: wall})
	if err := dk.store.save(); err != nil {
		inv.Used--
		inv.Members = inv.Members[:len(inv.Members)-1]
		msg, ds := refuse(peer, "inviter-error", id)
		ds[0].Err = err
		return msg, ds
	}
	reply := wire.RedeemReply{Chain: append(slices.Clone(dk.chain), cert.String()), Revocations: dk.pol.set.Strings(),
		Records: dk.records(wire.MaxRecords)}
	return reply, []decision{{Outcome: "redeemed", Peer: peer, Invite: id, Left: inv.Uses - inv.Used}}
}

// release gives peer's held use back, if it holds one.
func (dk *inviteDesk) release(peer announce.NodeID, why string) []decision {
	h, ok := dk.held[peer]
	if !ok {
		return nil
	}
	delete(dk.held, peer)
	return []decision{{Outcome: "released", Why: why, Peer: peer, Invite: h.invite}}
}

// expire releases the uses held past their time.
func (dk *inviteDesk) expire(mono time.Time) []decision {
	var ds []decision
	for _, peer := range slices.Sorted(maps.Keys(dk.held)) {
		if mono.After(dk.held[peer].until) {
			ds = append(ds, dk.release(peer, "timeout")...)
		}
	}
	return ds
}

// joinInput hands the join protocol's messages to the invite desk (they
// never reach the core), and disconnects and ticks for its held uses. It
// returns true if in was consumed.
func (d *Daemon) joinInput(in core.Input) bool {
	switch in := in.(type) {
	case core.Received:
		switch in.Msg.(type) {
		case wire.Redeem, wire.RedeemConfirm:
			reply, ds := d.desk.Redeem(in.From, d.clock.now(), d.clock.mono(), in.Msg)
			d.noteRedeems(ds)
			if reply != nil {
				d.tr.Send(in.From, reply)
			}
			return true
		case wire.RedeemOffer, wire.RedeemReply:
			return true // meant for a joiner
		}
	case core.Disconnected:
		d.noteRedeems(d.desk.release(in.Peer, "disconnected"))
	case core.Tick:
		d.noteRedeems(d.desk.expire(d.clock.mono()))
	}
	return false
}

// noteRedeems logs and counts the desk's decisions. Refusals by a rate
// limit cost a counter only; they are logged once a minute, with how
// many there were.
func (d *Daemon) noteRedeems(ds []decision) {
	for _, v := range ds {
		d.metrics.redeem(v.Outcome)
		peer := string(v.Peer)
		switch {
		case v.Limited:
			d.redeemsQuiet++
			if now := d.clock.mono(); now.Sub(d.redeemsLogged) >= time.Minute {
				d.log.Warn("invite redeems refused", "reason", v.Outcome, "refused", d.redeemsQuiet, "peer", peer)
				d.redeemsQuiet, d.redeemsLogged = 0, now
			}
		case v.Outcome == "offered":
			d.log.Info("invite offered", "invite", v.Invite, "peer", peer, "held_for", d.desk.reserveFor.String())
		case v.Outcome == "redeemed":
			d.log.Info("invite redeemed", "invite", v.Invite, "member", peer, "uses_left", v.Left)
		case v.Outcome == "declined":
			d.log.Info("invite declined by the joiner; its use is free again", "invite", v.Invite, "peer", peer)
		case v.Outcome == "released":
			d.log.Info("invite use released", "invite", v.Invite, "peer", peer, "reason", v.Why)
		case v.Err != nil:
			d.log.Error("invite: persisting", "invite", v.Invite, "peer", peer, "reason", v.Outcome, "err", v.Err.Error())
		default:
			d.log.Info("invite refused", "peer", peer, "reason", v.Outcome, "invite", v.Invite)
		}
	}
}

func (d *Daemon) reserveFor() time.Duration {
	if d.opt.reserveFor > 0 {
		return d.opt.reserveFor
	}
	return ReserveTimeout
}

// find returns the invite whose secret this is, or nil.
func (s *inviteStore) find(secret [16]byte) *Invite {
	id := member.SecretID(secret)
	for i := range s.invites {
		inv := &s.invites[i]
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

func (s *inviteStore) byID(id string) *Invite {
	for i := range s.invites {
		if s.invites[i].ID == id {
			return &s.invites[i]
		}
	}
	return nil
}
