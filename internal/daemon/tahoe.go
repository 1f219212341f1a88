package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"grapevine/announce"
	"grapevine/client/apitype"
	"grapevine/core"
	"grapevine/internal/tahoe"
)

// Tahoe reads the node's storage servers and hints.
func (d *Daemon) Tahoe(ctx context.Context) (TahoeView, bool) {
	v := TahoeView{Servers: []TahoeServer{}, Hints: []TahoeHint{}}
	ok := d.Query(ctx, func(n *core.Node) {
		v.ID = string(n.ID())
		if a, ok := n.Record(recordKey(tahoe.Service, n.ID())); ok {
			v.Servers = append(v.Servers, TahoeServer{ID: string(n.ID()), Self: true, Live: true, Record: a.Signed})
		}
		for _, s := range n.Servers() {
			if s.ID == n.ID() {
				continue
			}
			if a, ok := n.Record(recordKey(tahoe.Service, s.ID)); ok {
				v.Servers = append(v.Servers, TahoeServer{ID: string(s.ID), Live: s.Live, Connected: s.Connected, Record: a.Signed})
			}
		}
	})
	if !ok {
		return v, false
	}
	hints, err := tahoe.ReadHints(d.opt.Dir)
	if err != nil {
		v.HintsError = err.Error()
	}
	signed := map[announce.NodeID]tahoe.Ann{}
	for _, s := range v.Servers {
		if a, err := announce.ParseUnverified(s.Record); err == nil {
			if ann, err := tahoe.AnnOf(a); err == nil {
				signed[a.ID] = ann
			}
		}
	}
	for _, h := range hints {
		var st tahoe.HintState
		if ann, ok := signed[h.Key]; ok {
			st = h.Check(&ann)
		} else {
			st = h.Check(nil)
		}
		v.Hints = append(v.Hints, TahoeHint{Hint: h, State: st, Label: h.Label(st)})
	}
	return v, true
}

func (d *Daemon) tahoeHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/tahoe/servers", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		v, ok := d.Tahoe(ctx)
		if !ok {
			writeError(w, apitype.ErrShuttingDown)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(v)
	})
}
