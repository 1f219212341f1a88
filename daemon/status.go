package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"grapevine/core"
)

// Status is the JSON document at /v1/status, and the data of the status
// page and the metrics: every number on the page comes from here. Times
// are given twice: seconds ago on the node's own elapsed-time measure
// (what the rules use), and the local wall clock then (for display);
// "ago" fields are -1 and times null when it never happened.
type Status struct {
	ID         string    `json:"id"`
	Nickname   string    `json:"nickname"`
	Grid       string    `json:"grid,omitempty"` // closed grid: the founder's ID
	Locators   []string  `json:"locators"`
	Now        time.Time `json:"now"` // the local clock at the last input, when the "ago" fields were measured
	Counter    int64     `json:"counter"`
	ElapsedS   float64   `json:"elapsed_s"` // the elapsed-time measure (R5)
	Records    int       `json:"records"`
	Tombstones int       `json:"tombstones"`
	InFlight   int       `json:"dials_in_flight"`
	SyncRounds uint64    `json:"sync_rounds"`
	// Known counts the servers whose records are held; Connected those of
	// them connected now ("Connected to N of M known servers").
	Known     int              `json:"known_servers"`
	Connected int              `json:"connected_servers"`
	Servers   []ServerStatus   `json:"servers"`
	Forgotten []ForgottenEntry `json:"forgotten"`
	Events    []EventStatus    `json:"events"`

	// ReadOnly: a write of the node's files failed (a full disk, say); the
	// node runs on what it holds, sends no seqnum of its own that is not on
	// disk, refuses imports and forgets, and saves again every few seconds
	// until it can (docs/run.md). ReadOnlyReason names the file and the OS
	// error; ReadOnlySince is when it began. Both are empty while writable.
	ReadOnly       bool       `json:"read_only"`
	ReadOnlyReason string     `json:"read_only_reason"`
	ReadOnlySince  *time.Time `json:"read_only_since,omitempty"`

	// Warnings: what the operator should know about this run, one
	// sentence each, such as a peer book found empty at start.
	Warnings []string `json:"warnings"`

	// Introducer is the Foolscap introducer endpoint for Tahoe-LAFS
	// nodes: its FURL, subscribers and the servers publishing through it
	// (hosted); absent when turned off.
	Introducer *Introducer `json:"introducer,omitempty"`
}

// ServerStatus is one known node.
type ServerStatus struct {
	ID       string   `json:"id"`
	Nickname string   `json:"nickname,omitempty"`
	Services []string `json:"services"`
	Seqnum   int64    `json:"seqnum"`

	Connected      bool       `json:"connected"`
	ConnectedSince *time.Time `json:"connected_since,omitempty"`
	Dialing        bool       `json:"dialing"` // a dial is in flight: "Trying to connect"
	// NextDialInS: the next attempt is due in this long ("Reconnecting in
	// N s"); 0 if none is scheduled.
	NextDialInS      float64    `json:"next_dial_in_s"`
	LastAttemptAgo   float64    `json:"last_attempt_ago_s"`
	LastAttempt      *time.Time `json:"last_attempt,omitempty"`
	LastConnectedAgo float64    `json:"last_connected_ago_s"`
	LastConnected    *time.Time `json:"last_connected,omitempty"`
	LastReceivedAgo  float64    `json:"last_received_ago_s"` // in this run
	LastReceived     *time.Time `json:"last_received,omitempty"`
	LastGoodAgo      float64    `json:"last_good_ago_s"` // what R4 forgets by
	// LastFreshAgo: since a new seqnum from it arrived in this run.
	LastFreshAgo float64 `json:"last_fresh_ago_s"`
	Live         bool    `json:"live"` // R1: its records are passed on ("relayed")
	SRTTms       float64 `json:"srtt_ms"`
	// Uptime over the last 1, 7 and 30 days (of the node's own elapsed
	// time, since it was first heard of); null if there is no time yet.
	Uptime1d  *float64 `json:"uptime_1d"`
	Uptime7d  *float64 `json:"uptime_7d"`
	Uptime30d *float64 `json:"uptime_30d"`
	Failures  int      `json:"failures"`
	LastError string   `json:"last_error,omitempty"`
	BytesIn   uint64   `json:"bytes_in"`
	BytesOut  uint64   `json:"bytes_out"`
	Withdrawn bool     `json:"withdrawn"`
	// HostedHere: it publishes through this node's introducer endpoint;
	// Hosts: the hosts whose records keep it live (docs/design.md §9).
	HostedHere bool     `json:"hosted_here,omitempty"`
	Hosts      []string `json:"hosts,omitempty"`
	// Tombstoned says why it was forgotten, if it was.
	Tombstoned string `json:"tombstoned,omitempty"`
}

// ForgottenEntry is a tombstone: a forgotten (or withdrawn, or revoked)
// record and why.
type ForgottenEntry struct {
	ID      string    `json:"id"`
	Service string    `json:"service"`
	Seqnum  int64     `json:"seqnum"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
	AgoS    float64   `json:"ago_s"`
}

// EventStatus is one explain event.
type EventStatus struct {
	Seq     uint64            `json:"seq"`
	Wall    time.Time         `json:"time"`
	AgoS    float64           `json:"ago_s"`
	Kind    string            `json:"kind"`
	Peer    string            `json:"peer,omitempty"`
	Service string            `json:"service,omitempty"`
	Reason  string            `json:"reason,omitempty"`
	Facts   map[string]string `json:"facts,omitempty"`
}

func ago(now, t time.Duration) float64 {
	if t < 0 {
		return -1
	}
	return (now - t).Seconds()
}

func wallPtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func uptime(h core.History, now, window time.Duration, s core.ServerInfo) *float64 {
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
		Now: n.Wall(), Counter: n.Counter(), ElapsedS: now.Seconds(), Records: n.RecordCount(),
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
			LastAttemptAgo: ago(now, s.LastAttemptE), LastAttempt: wallPtr(s.LastAttemptWall),
			LastConnectedAgo: ago(now, s.LastConnectedE), LastConnected: wallPtr(s.LastConnectedWall),
			LastReceivedAgo: -1, LastGoodAgo: ago(now, s.LastGoodE), LastFreshAgo: -1, Live: s.Live,
			SRTTms: float64(s.SRTT) / float64(time.Millisecond), Failures: s.Failures, LastError: s.LastError,
			BytesIn: s.BytesIn, BytesOut: s.BytesOut, Withdrawn: s.Withdrawn,
			Uptime1d: uptime(s.History, now, day, s), Uptime7d: uptime(s.History, now, 7*day, s), Uptime30d: uptime(s.History, now, 30*day, s)}
		if s.Connected {
			since := st.Now.Add(-(now - s.ConnectedSince))
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
			Reason: t.Reason, At: t.AtWall, AgoS: ago(now, t.AtE)})
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
			http.Error(w, "node is shutting down", http.StatusServiceUnavailable)
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
