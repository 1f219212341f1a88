package daemon

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"grapevine/announce"
	"grapevine/client/apitype"
)

// The status page is rendered on the server from the same Status value as
// /v1/status: it needs no JavaScript, and every number on it can be checked
// against the JSON. Raw values travel in data-* attributes, formatted by
// encoding/json exactly as in /v1/status (data-seqnum, data-srtt-ms,
// data-uptime-1d, ...); the visible text is derived from them by the
// deterministic formatters below.

//go:embed web/page.html web/page.css
var webFS embed.FS

// pageTemplate is the status page. The stylesheet is inlined: one request,
// and the page still works saved to a file.
var pageTemplate = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"raw":   rawJSON,
	"span":  span,
	"short": func(id string) string { return announce.NodeID(id).Short() },
	"css":   func() template.CSS { return pageCSS },
}).ParseFS(webFS, "web/page.html"))

// pageCSS is the stylesheet, a constant of the program.
var pageCSS = template.CSS(mustRead("web/page.css"))

func mustRead(name string) string {
	b, err := webFS.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// pageEvents is how many of the recent events the page shows unless asked
// for all of them (?events=all).
const pageEvents = 50

// pageHandlers serves the HTML status page at GET /.
func (d *Daemon) pageHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		st, ok := d.Snapshot(ctx)
		if !ok {
			writeError(w, apitype.ErrShuttingDown)
			return
		}
		limit := pageEvents
		if r.URL.Query().Get("events") == "all" {
			limit = -1
		}
		var buf bytes.Buffer
		if err := renderPage(&buf, st, limit); err != nil {
			d.log.Error("status page", "err", err)
			writeError(w, fmt.Errorf("status page: %w", err))
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		// Nicknames, services and reasons come from other nodes: escaped
		// by html/template, and no script may run even so.
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		w.Write(buf.Bytes())
	})
}

// renderPage writes the status page for st, with at most events of its
// recent events (all if events < 0).
func renderPage(w io.Writer, st Status, events int) error {
	return pageTemplate.Execute(w, newPageView(st, events))
}

// A when is a moment shown relative to the status's Now ("3 min ago",
// "in 5 s"), with the absolute local time for the title attribute and
// RFC 3339 for <time datetime>. OK is false when it never happened.
type when struct {
	OK   bool
	Text string
	Abs  string
	ISO  string
}

// absLayout is the absolute time in title attributes.
const absLayout = "2006-01-02 15:04:05 MST"

// whenAgo is the moment agoS seconds before now; wall is the local clock
// then if the status has it (nil: derived from now).
func whenAgo(now time.Time, agoS float64, wall *time.Time) when {
	if agoS < 0 {
		return when{Text: "never"}
	}
	t := now.Add(-secondsDur(agoS))
	if wall != nil {
		t = *wall
	}
	return when{OK: true, Text: agoText(agoS), Abs: t.Format(absLayout), ISO: t.Format(time.RFC3339Nano)}
}

// whenIn is the moment inS seconds after now.
func whenIn(now time.Time, inS float64) when {
	t := now.Add(secondsDur(inS))
	return when{OK: true, Text: inText(inS), Abs: t.Format(absLayout), ISO: t.Format(time.RFC3339Nano)}
}

func secondsDur(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }

// span formats a non-negative number of seconds in one unit, rounded
// down: "42 s", "3 min", "5 h" (under two days), "12 d".
func span(s float64) string {
	switch n := int64(math.Floor(max(s, 0))); {
	case n < 60:
		return strconv.FormatInt(n, 10) + " s"
	case n < 3600:
		return strconv.FormatInt(n/60, 10) + " min"
	case n < 48*3600:
		return strconv.FormatInt(n/3600, 10) + " h"
	default:
		return strconv.FormatInt(n/86400, 10) + " d"
	}
}

// agoText: "0 s ago", "3 min ago". A past moment is rounded down.
func agoText(s float64) string { return span(s) + " ago" }

// inText: "in 5 s", "in 2 min". A coming moment is rounded up to the
// second, so "in 0 s" means it is due now.
func inText(s float64) string { return "in " + span(math.Ceil(s)) }

// percent formats an uptime fraction: "99.5 %"; nil is "–".
func percent(u *float64) string {
	if u == nil {
		return "–"
	}
	return strconv.FormatFloat(*u*100, 'f', 1, 64) + " %"
}

// millis formats a round-trip time: "12.3 ms"; 0 (not measured) is "–".
func millis(ms float64) string {
	if ms <= 0 {
		return "–"
	}
	return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
}

// rawJSON is v as /v1/status encodes it, for data-* attributes.
func rawJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

// Connection states of a server row.
const (
	connConnected    = "connected"    // "Connected since <time>"
	connDialing      = "dialing"      // "Trying to connect"
	connReconnecting = "reconnecting" // "Reconnecting in N s (last attempt N s ago)"
	connDown         = "down"         // "Not connected", with the last error
)

type pageView struct {
	St        Status
	Now       when
	Servers   []serverView
	Forgotten []forgottenView
	Events    []eventView // newest first
	AllEvents int         // len(St.Events)
	// ReadOnlySince: when read-only mode began (the banner).
	ReadOnlySince when
}

type serverView struct {
	ServerStatus
	Conn           string
	Since          when // connected since
	NextDial       when
	LastAttempt    when
	LastConnected  when
	LastReceived   when
	LastFresh      when
	SRTT           string
	Up1, Up7, Up30 string
}

type forgottenView struct {
	ForgottenEntry
	When when
}

type eventView struct {
	EventStatus
	PeerName string // the peer's nickname, if it is a known server
	When     when
	Facts    string // "name=value ...", sorted by name
}

func newPageView(st Status, events int) pageView {
	v := pageView{St: st, Now: when{OK: true, Text: st.Now.Format(absLayout), Abs: st.Now.Format(absLayout), ISO: st.Now.Format(time.RFC3339Nano)},
		AllEvents: len(st.Events)}
	if st.ReadOnlySince != nil {
		v.ReadOnlySince = whenAgo(st.Now, max(st.Now.Sub(*st.ReadOnlySince).Seconds(), 0), st.ReadOnlySince)
	}
	for _, s := range st.Servers {
		sv := serverView{ServerStatus: s, Conn: connState(s),
			NextDial:      whenIn(st.Now, s.NextDialInS),
			LastAttempt:   whenAgo(st.Now, s.LastAttemptAgo, s.LastAttempt),
			LastConnected: whenAgo(st.Now, s.LastConnectedAgo, s.LastConnected),
			LastReceived:  whenAgo(st.Now, s.LastReceivedAgo, s.LastReceived),
			LastFresh:     whenAgo(st.Now, s.LastFreshAgo, nil),
			SRTT:          millis(s.SRTTms), Up1: percent(s.Uptime1d), Up7: percent(s.Uptime7d), Up30: percent(s.Uptime30d)}
		if s.ConnectedSince != nil {
			sv.Since = whenAgo(st.Now, max(st.Now.Sub(*s.ConnectedSince).Seconds(), 0), s.ConnectedSince)
		}
		v.Servers = append(v.Servers, sv)
	}
	for _, f := range st.Forgotten {
		v.Forgotten = append(v.Forgotten, forgottenView{ForgottenEntry: f, When: whenAgo(st.Now, f.AgoS, &f.At)})
	}
	names := map[string]string{}
	for _, s := range st.Servers {
		names[s.ID] = s.Nickname
	}
	evs := slices.Clone(st.Events)
	slices.SortFunc(evs, func(a, b EventStatus) int { return cmp.Compare(b.Seq, a.Seq) })
	if events >= 0 && len(evs) > events {
		evs = evs[:events]
	}
	for _, e := range evs {
		var facts []string
		for _, k := range slices.Sorted(maps.Keys(e.Facts)) {
			facts = append(facts, fmt.Sprintf("%s=%s", k, e.Facts[k]))
		}
		v.Events = append(v.Events, eventView{EventStatus: e, PeerName: names[e.Peer], When: whenAgo(st.Now, e.AgoS, &e.Wall), Facts: strings.Join(facts, " ")})
	}
	return v
}

// connState chooses how a server's connection is described.
func connState(s ServerStatus) string {
	switch {
	case s.Connected && s.ConnectedSince != nil:
		return connConnected
	case s.Dialing:
		return connDialing
	case s.NextDialInS > 0:
		return connReconnecting
	default:
		return connDown
	}
}
