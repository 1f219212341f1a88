package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/member"
)

// RevocationsFile holds every revocation the node knows, one per line.
// Revocations are never forgotten: they are what keeps a revoked member
// out after the record that carried them is gone.
const RevocationsFile = "revocations"

// MaxRevocations bounds the revocations a node keeps.
const MaxRevocations = 4096

// policy is core.Membership for a closed grid: a record's publisher is a
// member if its grapevine-membership chain leads from the founder to it
// and no certificate on it is revoked.
type policy struct {
	grid  announce.NodeID
	set   *member.RevocationSet
	dirty bool
}

func loadPolicy(dir string, grid announce.NodeID) (*policy, error) {
	p := &policy{grid: grid, set: member.NewRevocationSet(grid, MaxRevocations)}
	path := filepath.Join(dir, RevocationsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, err
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		r, err := member.ParseRevocation(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		if _, err := p.set.Add(r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
	}
	return p, nil
}

// save writes the revocations if they changed.
func (p *policy) save(dir string) error {
	if p == nil || !p.dirty {
		return nil
	}
	if err := writeLines(filepath.Join(dir, RevocationsFile), p.set.Strings()); err != nil {
		return fmt.Errorf("persisting revocations: %w", err)
	}
	p.dirty = false
	return nil
}

// chainOf reads a record's certificate chain.
func chainOf(a *announce.Announcement) ([]string, bool) {
	v, ok := a.Body.Get(announce.FieldMembership)
	if !ok || v.Kind != announce.Array {
		return nil, false
	}
	out := make([]string, 0, len(v.Items))
	for _, it := range v.Items {
		if it.Kind != announce.String {
			return nil, false
		}
		out = append(out, it.Str)
	}
	return out, true
}

func (p *policy) Check(a *announce.Announcement) (string, error) {
	if a.ID == p.grid {
		return "", nil
	}
	strs, ok := chainOf(a)
	if !ok {
		return "not-member", fmt.Errorf("no %s chain", announce.FieldMembership)
	}
	ch, err := member.ParseChain(strs)
	if err == nil {
		err = member.VerifyChain(p.grid, a.ID, ch, p.set.Revoked)
	}
	if err != nil {
		var me *member.Error
		if errors.As(err, &me) {
			return string(me.Reason), err
		}
		return "not-member", err
	}
	return "", nil
}

// Learn takes the revocations a record carries: only its publisher's own,
// for this grid.
func (p *policy) Learn(a *announce.Announcement) bool {
	v, _ := a.Body.Get(core.FieldRevocations)
	changed := false
	for _, it := range v.Items {
		r, err := member.ParseRevocation(it.Str)
		if err != nil || r.Grid != p.grid || r.Issuer != a.ID {
			continue
		}
		if added, _ := p.set.Add(r); added {
			changed = true
		}
	}
	p.dirty = p.dirty || changed
	return changed
}

// ownRevocations lists the revocations in set that id signed.
func ownRevocations(id announce.NodeID, set *member.RevocationSet) []string {
	var out []string
	for _, s := range set.Strings() {
		if r, err := member.ParseRevocation(s); err == nil && r.Issuer == id {
			out = append(out, s)
		}
	}
	return out
}

// revocationTemplate is the record in which the node publishes the
// revocations it signed, or false if there are none.
func revocationTemplate(revs []string, nickname string, locators []string) (announce.Template, bool) {
	if len(revs) == 0 {
		return announce.Template{}, false
	}
	items := make([]announce.Value, len(revs))
	for i, s := range revs {
		items[i] = announce.Str(s)
	}
	return announce.Template{Nickname: nickname, Locators: locators, Service: announce.Service{
		Name:   core.ServiceRevocations,
		Fields: []announce.Member{{Key: core.FieldRevocations, Value: announce.List(items...)}},
	}}, true
}

// revoke signs revocations of every certificate this node issued to
// subject and publishes them; the core then forgets subject's records and
// those of everyone it invited.
func (d *Daemon) revoke(subject announce.NodeID) ([]string, error) {
	if d.policy == nil {
		return nil, errors.New("this node is in an open grid: there is no membership to revoke")
	}
	var out []string
	for _, inv := range d.invites.invites {
		for _, m := range inv.Members {
			if m.Subject != subject {
				continue
			}
			c, err := member.ParseCert(m.Cert)
			if err != nil {
				return nil, fmt.Errorf("%s: stored certificate for %s: %w", InvitesFile, subject, err)
			}
			r, err := member.Revoke(d.dir.Key, c)
			if err != nil {
				return nil, err
			}
			out = append(out, r.String())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("this node issued no certificate to %s: only a certificate's issuer can revoke it", subject)
	}
	d.ownRevs = append(d.ownRevs, out...)
	if _, err := d.apply(core.SetServices{Services: d.services()}); err != nil {
		return nil, err
	}
	d.log.Info("revoked", "member", string(subject), "certificates", len(out))
	return out, nil
}
