package daemon

import (
	"encoding/json"
	"net/http"
	"sort"

	"grapevine/announce"
	"grapevine/client/apitype"
	"grapevine/core"
	"grapevine/internal/nodedir"
	"grapevine/member"
	"grapevine/records"
)

func (d *Daemon) members(n *core.Node) Members {
	out := Members{Grid: string(d.policy.grid)}
	seen := map[[2]string]int{}
	add := func(chain []string, services []string) {
		ch, err := member.ParseChain(chain)
		if err != nil {
			return
		}
		for i, c := range ch {
			k := [2]string{string(c.Issuer), string(c.Subject)}
			j, ok := seen[k]
			if !ok {
				j = len(out.Invites)
				seen[k] = j
				out.Invites = append(out.Invites, MemberEdge{Issuer: k[0], Subject: k[1], Revoked: d.policy.set.Revoked(c.Issuer, c.Serial)})
			}
			if i == len(ch)-1 {
				out.Invites[j].Services = append(out.Invites[j].Services, services...)
			}
		}
	}
	add(d.dir.Config.Membership, nil)
	for _, s := range n.Servers() {
		if len(s.Services) == 0 {
			continue
		}
		for _, svc := range s.Services {
			if a, ok := n.Record(recordKey(svc, s.ID)); ok {
				if chain, ok := chainOf(a); ok {
					add(chain, []string{svc})
					break
				}
			}
		}
	}
	for _, inv := range d.invites.invites {
		for _, m := range inv.Members {
			c, err := member.ParseCert(m.Cert)
			if err == nil {
				add(append(append([]string(nil), d.dir.Config.Membership...), c.String()), nil)
			}
		}
	}
	for i := range out.Invites {
		sort.Strings(out.Invites[i].Services)
	}
	return out
}

func (d *Daemon) membershipHandlers(mux *http.ServeMux) {
	closed := func(w http.ResponseWriter) bool {
		if d.policy == nil {
			writeError(w, errorf(apitype.ErrConflict, "open grid: this node has no grid in grapevine.yaml"))
			return false
		}
		return true
	}
	mux.HandleFunc("GET /v1/members", func(w http.ResponseWriter, r *http.Request) {
		if !closed(w) {
			return
		}
		var m Members
		d.onLoop(w, r, func(n *core.Node) (any, error) { m = d.members(n); return m, nil })
	})
	mux.HandleFunc("POST /v1/invites", func(w http.ResponseWriter, r *http.Request) {
		var req apitype.InviteRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
			writeError(w, errorf(apitype.ErrBadRequest, "want {\"uses\": N, \"expires\": \"7d\"}: %v", err))
			return
		}
		valid, err := nodedir.ParseDuration(req.Expires)
		if err != nil {
			writeError(w, errorf(apitype.ErrBadRequest, "expires: %v", err))
			return
		}
		d.onLoop(w, r, func(*core.Node) (any, error) {
			code, inv, err := d.newInvite(req.Uses, valid)
			return apitype.InviteCode{Code: code, ID: inv.ID, Uses: inv.Uses, Expires: inv.Expires}, err
		})
	})
	mux.HandleFunc("POST /v1/revoke", func(w http.ResponseWriter, r *http.Request) {
		var req apitype.RevokeRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
			writeError(w, errorf(apitype.ErrBadRequest, "want {\"member\": \"v0-...\"}: %v", err))
			return
		}
		id, err := announce.ParseNodeID(req.Member)
		if err != nil {
			writeError(w, errorf(apitype.ErrBadRequest, "member: %v", err))
			return
		}
		d.onLoop(w, r, func(*core.Node) (any, error) {
			revs, err := d.revoke(id)
			return apitype.Revoked{Revocations: revs}, err
		})
	})
}

// onLoop runs f on the loop goroutine and writes its result as JSON; an
// error of no apitype kind is the caller's fault (400).
func (d *Daemon) onLoop(w http.ResponseWriter, r *http.Request, f func(*core.Node) (any, error)) {
	d.answer(w, r, func(n *core.Node) (any, error) {
		v, err := f(n)
		if err != nil && apitype.StatusCode(err) == http.StatusInternalServerError {
			err = errorf(apitype.ErrBadRequest, "%v", err)
		}
		return v, err
	})
}

func recordKey(service string, id announce.NodeID) records.Key {
	return records.Key{Service: service, ID: id}
}
