package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"grapevine/client/apitype"
	"grapevine/core"
)

// ago is the seconds from t to now, -1 for a t that never was.
func ago(now, t core.Elapsed) float64 {
	if t < 0 {
		return -1
	}
	return now.Sub(t).Seconds()
}

func wallPtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func uptime(h core.History, now core.Elapsed, window time.Duration, s core.ServerInfo) *float64 {
	u, ok := h.Uptime(now, window, s.ConnectedSince, s.Connected)
	if !ok {
		return nil
	}
	return &u
}

// Snapshot reads the node's status.
func (d *Daemon) Snapshot(ctx context.Context) (Status, bool) {
	var st Status
	ok := d.Query(ctx, func(n *core.Node) { st = d.statusOf(n) })
	return st, ok
}

func (d *Daemon) statusOf(n *core.Node) Status {
	now := n.Elapsed()
	st := Status{ID: string(n.ID()), Nickname: d.dir.Config.Nickname, Grid: d.dir.Config.Grid, Locators: d.Locators(),
		Now: n.Wall(), Counter: n.Counter(), ElapsedS: time.Duration(now).Seconds(), Records: n.RecordCount(),
		Tombstones: n.TombstoneCount(), InFlight: n.InFlight(), SyncRounds: n.SyncRounds(),
		Servers: []ServerStatus{}, Forgotten: []ForgottenEntry{}, Events: []EventStatus{}, Warnings: slices.Clone(d.warnings)}
	if st.Warnings == nil {
		st.Warnings = []string{}
	}
	if d.ro != nil {
		st.ReadOnly, st.ReadOnlyReason, st.ReadOnlySince = true, d.ro.Error(), wallPtr(d.roSince)
	}
	st.Introducer = d.intro.state(n)
	day := 24 * time.Hour
	for _, s := range n.Servers() {
		if s.ID == n.ID() {
			continue
		}
		ss := ServerStatus{ID: string(s.ID), Services: s.Services, Seqnum: s.Seqnum, Connected: s.Connected,
			Dialing: s.Dialing, NextDialInS: s.NextDialIn.Seconds(),
			LastAttemptAgo: ago(now, s.LastAttempt), LastAttempt: wallPtr(s.LastAttemptWall),
			LastConnectedAgo: ago(now, s.LastConnected), LastConnected: wallPtr(s.LastConnectedWall),
			LastReceivedAgo: -1, LastGoodAgo: ago(now, s.LastGood), LastFreshAgo: -1, Live: s.Live,
			SRTTms: float64(s.SRTT) / float64(time.Millisecond), Failures: s.Failures, LastError: s.LastError,
			BytesIn: s.BytesIn, BytesOut: s.BytesOut, Withdrawn: s.Withdrawn,
			Uptime1d: uptime(s.History, now, day, s), Uptime7d: uptime(s.History, now, 7*day, s), Uptime30d: uptime(s.History, now, 30*day, s)}
		if s.Connected {
			since := st.Now.Add(-now.Sub(s.ConnectedSince))
			ss.ConnectedSince = &since
		}
		if s.Received {
			ss.LastReceivedAgo, ss.LastReceived = s.LastReceivedAgo.Seconds(), wallPtr(s.LastReceived)
		}
		if s.Fresh {
			ss.LastFreshAgo = s.FreshAgo.Seconds()
		}
		ss.HostedHere = s.HostedHere
		for _, h := range s.Hosts {
			ss.Hosts = append(ss.Hosts, string(h))
		}
		for _, svc := range s.Services {
			if a, ok := n.Record(recordKey(svc, s.ID)); ok && ss.Nickname == "" {
				ss.Nickname = a.Nickname()
			}
		}
		if t, ok := n.Tombstoned(s.ID); ok {
			ss.Tombstoned = t.Reason
		}
		if len(s.Services) > 0 {
			st.Known++
			if s.Connected {
				st.Connected++
			}
		}
		st.Servers = append(st.Servers, ss)
	}
	for _, t := range n.State().Tombstones {
		st.Forgotten = append(st.Forgotten, ForgottenEntry{ID: string(t.Key.ID), Service: t.Key.Service, Seqnum: t.Seqnum,
			Reason: t.Reason, At: t.AtWall, AgoS: ago(now, t.At)})
	}
	for _, e := range n.RecentEvents() {
		es := EventStatus{Seq: e.Seq, Wall: e.Wall, AgoS: ago(now, e.Elapsed), Kind: string(e.Kind), Peer: string(e.Peer), Service: e.Service, Reason: e.Reason}
		if len(e.Facts) > 0 {
			es.Facts = map[string]string{}
			for _, f := range e.Facts {
				es.Facts[f.Name] = f.Value
			}
		}
		st.Events = append(st.Events, es)
	}
	return st
}

func (d *Daemon) statusHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		d.answer(w, r, func(n *core.Node) (any, error) { return d.statusOf(n), nil })
	})
	mux.HandleFunc("POST /v1/import", func(w http.ResponseWriter, r *http.Request) {
		recs, err := decodeImport(http.MaxBytesReader(w, r.Body, MaxImportBody))
		if err != nil {
			writeError(w, err) // 413 over a limit, else 400
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		var evs []core.Event
		if !d.Query(ctx, func(*core.Node) { evs, err = d.stepEvents(core.Import{Recs: recs}) }) {
			writeError(w, apitype.ErrShuttingDown)
			return
		}
		if err != nil {
			writeError(w, err) // read-only: 503, the import is not acknowledged
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(evs)
	})
}
