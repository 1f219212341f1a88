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
	"time"

	"grapevine/announce"
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
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

func (s *inviteStore) add(inv Invite) error {
	s.invites = append(s.invites, inv)
	if len(s.invites) > MaxInvites {
		for i, old := range s.invites {
			if old.Used >= old.Uses || time.Now().After(old.Expires) {
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
	now := d.opt.Now()
	rec := Invite{ID: inv.ID(), SecretHash: hex.EncodeToString(h[:]), Uses: uses, Created: now, Expires: now.Add(valid)}
	if err := d.invites.add(rec); err != nil {
		return "", Invite{}, err
	}
	d.log.Info("invite created", "invite", rec.ID, "uses", uses, "expires", rec.Expires)
	return inv.Code(), rec, nil
}

// redeem answers a Redeem from peer: a certificate chain and what the
// node knows, or why not. The invite's use is on disk before the answer
// leaves.
func (d *Daemon) redeem(peer announce.NodeID, secret [16]byte) wire.RedeemReply {
	refuse := func(reason, id string) wire.RedeemReply {
		d.log.Info("invite refused", "peer", string(peer), "reason", reason, "invite", id)
		return wire.RedeemReply{Reason: reason}
	}
	if d.policy == nil {
		return refuse("open-grid", "")
	}
	now := d.opt.Now()
	for i := range d.invites.invites {
		inv := &d.invites.invites[i]
		var h [32]byte
		if b, err := hex.DecodeString(inv.SecretHash); err != nil || len(b) != 32 {
			continue
		} else {
			copy(h[:], b)
		}
		if !member.SecretMatches(h, secret) {
			continue
		}
		switch {
		case inv.Used >= inv.Uses:
			return refuse("used", inv.ID)
		case now.After(inv.Expires):
			return refuse("expired", inv.ID)
		}
		var b [8]byte
		crand.Read(b[:])
		cert := member.Issue(d.dir.Key, d.policy.grid, peer, binary.BigEndian.Uint64(b[:]))
		chain := append(append([]string(nil), d.dir.Config.Membership...), cert.String())
		inv.Used++
		inv.Members = append(inv.Members, IssuedCert{Subject: peer, Cert: cert.String(), At: now})
		if err := d.invites.save(); err != nil {
			inv.Used--
			inv.Members = inv.Members[:len(inv.Members)-1]
			d.log.Error("invite: persisting", "err", err)
			return wire.RedeemReply{Reason: "inviter-error"}
		}
		reply := wire.RedeemReply{Chain: chain, Revocations: d.policy.set.Strings()}
		for _, r := range d.node.State().Records {
			if d.node.Relays(announce.NodeID(r.Signed.Key)) && len(reply.Records) < wire.MaxRecords {
				reply.Records = append(reply.Records, r.Signed)
			}
		}
		d.log.Info("invite redeemed", "invite", inv.ID, "member", string(peer), "uses_left", inv.Uses-inv.Used)
		return reply
	}
	return refuse("unknown", "")
}
