package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"grapevine/announce"
	"grapevine/core"
)

// Status is the JSON document at /v1/status.
type Status struct {
	ID         string         `json:"id"`
	Nickname   string         `json:"nickname"`
	Locators   []string       `json:"locators"`
	Counter    int64          `json:"counter"`
	ElapsedS   float64        `json:"elapsed_s"` // the elapsed-time measure (R5)
	Records    int            `json:"records"`
	Tombstones int            `json:"tombstones"`
	InFlight   int            `json:"dials_in_flight"`
	Servers    []ServerStatus `json:"servers"`
	Events     []EventStatus  `json:"events"`
}

// ServerStatus is one known node. Times are ago, in seconds, on the node's
// own elapsed-time measure; -1 means never.
type ServerStatus struct {
	ID               string   `json:"id"`
	Services         []string `json:"services"`
	Seqnum           int64    `json:"seqnum"`
	Connected        bool     `json:"connected"`
	Live             bool     `json:"live"`    // R1: its records are passed on
	Dialing          bool     `json:"dialing"` // a dial is in flight
	LastConnectedAgo float64  `json:"last_connected_ago_s"`
	LastGoodAgo      float64  `json:"last_good_ago_s"`
	Failures         int      `json:"failures"`
	LastError        string   `json:"last_error,omitempty"`
	SRTTms           float64  `json:"srtt_ms"`
	Withdrawn        bool     `json:"withdrawn"`
	Tombstoned       string   `json:"tombstoned,omitempty"` // why it was forgotten
}

// EventStatus is one explain event.
type EventStatus struct {
	Seq     uint64            `json:"seq"`
	Wall    time.Time         `json:"time"`
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

// Snapshot reads the node's status.
func (d *Daemon) Snapshot(ctx context.Context) (Status, bool) {
	var st Status
	ok := d.Query(ctx, func(n *core.Node) {
		st = Status{ID: string(n.ID()), Nickname: d.dir.Config.Nickname, Locators: d.Locators(), Counter: n.Counter(),
			ElapsedS: n.Elapsed().Seconds(), Records: n.RecordCount(), Tombstones: n.TombstoneCount(), InFlight: n.InFlight()}
		now := n.Elapsed()
		for _, s := range n.Servers() {
			ss := ServerStatus{ID: string(s.ID), Services: s.Services, Seqnum: s.Seqnum, Connected: s.Connected, Live: s.Live,
				Dialing: s.Dialing, LastConnectedAgo: ago(now, s.LastConnectedE), LastGoodAgo: ago(now, s.LastGoodE),
				Failures: s.Failures, LastError: s.LastError, SRTTms: float64(s.SRTT) / float64(time.Millisecond), Withdrawn: s.Withdrawn}
			if t, ok := n.Tombstoned(s.ID); ok {
				ss.Tombstoned = t.Reason
			}
			st.Servers = append(st.Servers, ss)
		}
		for _, e := range n.RecentEvents() {
			es := EventStatus{Seq: e.Seq, Wall: e.Wall, Kind: string(e.Kind), Peer: string(e.Peer), Service: e.Service, Reason: e.Reason}
			if len(e.Facts) > 0 {
				es.Facts = map[string]string{}
				for _, f := range e.Facts {
					es.Facts[f.Name] = f.Value
				}
			}
			st.Events = append(st.Events, es)
		}
	})
	return st, ok
}

func (d *Daemon) statusHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		st, ok := d.Snapshot(ctx)
		if !ok {
			http.Error(w, "node is shutting down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(st)
	})
	mux.HandleFunc("POST /v1/import", func(w http.ResponseWriter, r *http.Request) {
		var recs []announce.Signed
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20)).Decode(&recs); err != nil {
			http.Error(w, "want a JSON array of {msg, sig, key}: "+err.Error(), http.StatusBadRequest)
			return
		}
		if len(recs) > MaxImport {
			http.Error(w, fmt.Sprintf("%d records, limit %d per import", len(recs), MaxImport), http.StatusRequestEntityTooLarge)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		var evs []core.Event
		var err error
		if !d.Query(ctx, func(*core.Node) { evs, err = d.stepEvents(core.Import{Recs: recs}) }) {
			http.Error(w, "node is shutting down", http.StatusServiceUnavailable)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(evs)
	})
}
