package daemon

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"grapevine/announce"
	"grapevine/client/apitype"
	"grapevine/core"
	"grapevine/internal/tahoe"
)

// The JSON API beyond /v1/status: docs/api.md documents every endpoint.

// apiError is an error of one of apitype's kinds, with its own message.
type apiError struct {
	kind error
	msg  string
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.kind }

func errorf(kind error, format string, args ...any) error {
	return &apiError{kind, fmt.Sprintf(format, args...)}
}

// writeError answers err as one line of plain text under the status of
// its kind (apitype.StatusCode: 500 if it has none). Every error of the
// API is answered here.
func writeError(w http.ResponseWriter, err error) {
	http.Error(w, err.Error(), apitype.StatusCode(err))
}

// answer runs f on the loop goroutine and writes its result as JSON, or
// its error with writeError. A POST is a write: while the node is
// read-only it is refused with 503 before f runs.
func (d *Daemon) answer(w http.ResponseWriter, r *http.Request, f func(*core.Node) (any, error)) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	var v any
	var err error
	run := func(n *core.Node) {
		if r.Method == http.MethodPost {
			if err = d.writable(); err != nil {
				return
			}
		}
		v, err = f(n)
	}
	if !d.Query(ctx, run) {
		writeError(w, apitype.ErrShuttingDown)
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// resolveID finds the known server that key names: a full v0- ID, or an
// unambiguous prefix of it (with or without "v0-"), such as its short form.
func resolveID(n *core.Node, key string) (announce.NodeID, error) {
	key = strings.TrimSpace(key)
	if id, err := announce.ParseNodeID(key); err == nil {
		if _, ok := n.Server(id); !ok || id == n.ID() {
			return "", errorf(apitype.ErrNotFound, "no known server has the ID %s", id)
		}
		return id, nil
	}
	p := strings.TrimPrefix(strings.ToLower(key), announce.V0Prefix)
	if p == "" {
		return "", errorf(apitype.ErrBadRequest, "want a server ID (v0-...) or a prefix of one")
	}
	var found []announce.NodeID
	for _, s := range n.Servers() {
		if s.ID != n.ID() && strings.HasPrefix(strings.TrimPrefix(string(s.ID), announce.V0Prefix), p) {
			found = append(found, s.ID)
		}
	}
	switch len(found) {
	case 0:
		return "", errorf(apitype.ErrNotFound, "no known server's ID starts with %q", p)
	case 1:
		return found[0], nil
	}
	names := make([]string, 0, 4)
	for _, id := range found[:min(len(found), 4)] {
		names = append(names, string(id))
	}
	more := ""
	if len(found) > 4 {
		more = fmt.Sprintf(" and %d more", len(found)-4)
	}
	return "", errorf(apitype.ErrConflict, "%q is ambiguous: it starts %d servers' IDs (%s%s); give more of it", p, len(found), strings.Join(names, ", "), more)
}

func findServer(st Status, id announce.NodeID) (ServerStatus, bool) {
	for _, s := range st.Servers {
		if s.ID == string(id) {
			return s, true
		}
	}
	return ServerStatus{}, false
}

func (d *Daemon) servers(n *core.Node) ServerList {
	st := d.statusOf(n)
	out := ServerList{Now: st.Now, Known: st.Known, Connected: st.Connected, Live: summarize(st).Live, Servers: st.Servers}
	live := func(s ServerStatus) bool { return s.Live && len(s.Services) > 0 }
	slices.SortStableFunc(out.Servers, func(a, b ServerStatus) int {
		if la, lb := live(a), live(b); la != lb {
			if la {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.Nickname, b.Nickname), cmp.Compare(a.ID, b.ID))
	})
	return out
}

func (d *Daemon) history(n *core.Node, id announce.NodeID) (ServerHistory, error) {
	st := d.statusOf(n)
	ss, ok1 := findServer(st, id)
	si, ok2 := n.Server(id)
	if !ok1 || !ok2 {
		return ServerHistory{}, errorf(apitype.ErrNotFound, "no known server has the ID %s", id)
	}
	now := n.Elapsed()
	wall := func(e core.Elapsed) time.Time { return st.Now.Add(-now.Sub(e)) }
	h := ServerHistory{Now: st.Now, Server: ss, Locators: slices.Clone(si.Locators), FirstHeard: si.FirstHeardWall,
		FirstHeardAgoS: ago(now, si.FirstHeard), Intervals: []IntervalStatus{}, Forgotten: []ForgottenEntry{}, Events: []EventStatus{}}
	if h.Locators == nil {
		h.Locators = []string{}
	}
	if h.FirstHeard.IsZero() { // heard of before the first input: a bootstrap node
		h.FirstHeard = wall(si.FirstHeard)
	}
	for _, iv := range si.Intervals {
		end := wall(iv.End)
		h.Intervals = append(h.Intervals, IntervalStatus{Start: wall(iv.Start), End: &end, StartAgoS: ago(now, iv.Start),
			EndAgoS: ago(now, iv.End), DurationS: iv.End.Sub(iv.Start).Seconds()})
	}
	if si.Connected {
		h.Intervals = append(h.Intervals, IntervalStatus{Start: wall(si.ConnectedSince), StartAgoS: ago(now, si.ConnectedSince),
			DurationS: now.Sub(si.ConnectedSince).Seconds(), Open: true})
	}
	for _, f := range st.Forgotten {
		if f.ID == string(id) {
			h.Forgotten = append(h.Forgotten, f)
		}
	}
	for _, e := range st.Events {
		if e.Peer == string(id) {
			h.Events = append(h.Events, e)
		}
	}
	return h, nil
}

func (d *Daemon) forget(n *core.Node, key string) (ForgetResult, error) {
	id, err := resolveID(n, key)
	if err != nil {
		return ForgetResult{}, err
	}
	before, _ := findServer(d.statusOf(n), id)
	evs, err := d.stepEvents(core.Forget{ID: id})
	if err != nil {
		return ForgetResult{}, err
	}
	seqs := map[uint64]bool{}
	for _, e := range evs {
		if e.Kind == core.EvRejected && e.Reason == "forget-unknown" {
			return ForgetResult{}, errorf(apitype.ErrConflict, "nothing to forget: no records of %s are held", id)
		}
		seqs[e.Seq] = true
	}
	st := d.statusOf(n)
	out := ForgetResult{ID: string(id), Nickname: before.Nickname, Forgotten: []ForgottenEntry{}, Events: []EventStatus{}}
	for _, f := range st.Forgotten {
		if f.ID == string(id) {
			out.Forgotten = append(out.Forgotten, f)
		}
	}
	for _, e := range st.Events {
		if seqs[e.Seq] {
			out.Events = append(out.Events, e)
		}
	}
	return out, nil
}

func (d *Daemon) permuted(n *core.Node, si []byte) Permuted {
	out := Permuted{StorageIndex: announce.EncodeBase32(si), StorageIndexHex: hex.EncodeToString(si),
		Hash: "sha1(storage_index + permutation_seed)", Servers: []PermutedServer{}}
	type entry struct {
		PermutedServer
		h [sha1.Size]byte
	}
	var list []entry
	for _, s := range n.Servers() {
		if s.ID == n.ID() || !s.Live {
			continue
		}
		a, ok := n.Record(recordKey("storage", s.ID))
		if !ok || a.Withdrawn() {
			continue
		}
		seed, from, ok := tahoe.PermutationSeed(a)
		if !ok {
			continue
		}
		e := entry{PermutedServer: PermutedServer{ID: string(s.ID), Nickname: a.Nickname(),
			PermutationSeed: announce.EncodeBase32(seed), SeedFrom: from, Connected: s.Connected}, h: tahoe.PermutationHash(si, seed)}
		e.Hash = hex.EncodeToString(e.h[:])
		if v, ok := a.Body.Get("anonymous-storage-FURL"); ok && v.Kind == announce.String {
			e.FURL = v.Str
		}
		if v, ok := a.Body.Get("anonymous-storage-NURLs"); ok {
			for _, it := range v.Items {
				if it.Kind == announce.String {
					e.NURLs = append(e.NURLs, it.Str)
				}
			}
		}
		list = append(list, e)
	}
	slices.SortFunc(list, func(a, b entry) int {
		return cmp.Or(bytes.Compare(a.h[:], b.h[:]), cmp.Compare(a.ID, b.ID))
	})
	for _, e := range list {
		out.Servers = append(out.Servers, e.PermutedServer)
	}
	return out
}

// apiHandlers serves the JSON API beyond /v1/status.
func (d *Daemon) apiHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/servers", func(w http.ResponseWriter, r *http.Request) {
		d.answer(w, r, func(n *core.Node) (any, error) { return d.servers(n), nil })
	})
	mux.HandleFunc("GET /v1/servers/{id}", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("id")
		d.answer(w, r, func(n *core.Node) (any, error) {
			id, err := resolveID(n, key)
			if err != nil {
				return nil, err
			}
			return d.history(n, id)
		})
	})
	mux.HandleFunc("POST /v1/forget", func(w http.ResponseWriter, r *http.Request) {
		var req apitype.ForgetRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
			writeError(w, errorf(apitype.ErrBadRequest, "want {\"id\": \"v0-...\"}: %v", err))
			return
		}
		d.answer(w, r, func(n *core.Node) (any, error) { return d.forget(n, req.ID) })
	})
	mux.HandleFunc("GET /v1/permuted", func(w http.ResponseWriter, r *http.Request) {
		si, err := tahoe.ParseStorageIndex(r.URL.Query().Get("storage_index"))
		if err != nil {
			writeError(w, errorf(apitype.ErrBadRequest, "%v", err))
			return
		}
		d.answer(w, r, func(n *core.Node) (any, error) { return d.permuted(n, si), nil })
	})
}
