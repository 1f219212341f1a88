package daemon

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"grapevine/core"
	"grapevine/internal/transport"
)

// metrics is the daemon's Prometheus registry: counters fed from the
// explain events as they are logged, and a collector that reads the
// Status model from the loop at scrape time. Each daemon has its own
// registry; nothing is registered globally.
type metrics struct {
	reg          *prometheus.Registry
	accepted     *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	dialsStarted prometheus.Counter
	dialsOK      prometheus.Counter
	dialsFailed  *prometheus.CounterVec
	inbound      prometheus.Counter
	events       *prometheus.CounterVec
	redeems      *prometheus.CounterVec
	collector    *statusCollector
}

func (d *Daemon) newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.accepted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grapevine_records_accepted_total",
		Help: "Records of other nodes accepted since start, by outcome (added, replaced: a higher seqnum, revived: after a tombstone, withdrawn).",
	}, []string{"reason"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grapevine_records_rejected_total",
		Help: "Records refused since start, by reason (bad-signature, stale, conflict, tombstoned, not-member, ...).",
	}, []string{"reason"})
	m.dialsStarted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "grapevine_dials_started_total",
		Help: "Outbound dials started since start (R3).",
	})
	m.dialsOK = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "grapevine_dials_connected_total",
		Help: "Outbound dials that ended in an authenticated connection, since start.",
	})
	m.dialsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grapevine_dials_failed_total",
		Help: "Outbound dials that failed since start, by the transport's reason word (refused, unreachable, timeout, key-mismatch, ...).",
	}, []string{"reason"})
	m.inbound = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "grapevine_inbound_connections_total",
		Help: "Authenticated inbound connections since start.",
	})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grapevine_events_total",
		Help: "Explain events since start, by kind (the kind field of the log lines and of /v1/status events).",
	}, []string{"kind"})
	m.redeems = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grapevine_invite_redeems_total",
		Help: "Invite redemptions since start, by outcome: offered, redeemed, declined, released, or the refusal's reason (rate-limited, busy, unknown, used, expired, reserved, ...).",
	}, []string{"outcome"})
	m.collector = newStatusCollector(d)
	m.reg.MustRegister(m.accepted, m.rejected, m.dialsStarted, m.dialsOK, m.dialsFailed, m.inbound, m.events, m.redeems,
		m.collector,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// wordRE is what a reason must look like to become a label value; any
// other text is counted as "other", so labels stay few.
var wordRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

func word(s string) string {
	if wordRE.MatchString(s) {
		return s
	}
	return "other"
}

// observe counts one explain event. It runs on the loop goroutine.
func (m *metrics) observe(e core.Event) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(word(string(e.Kind))).Inc()
	switch e.Kind {
	case core.EvAccepted:
		m.accepted.WithLabelValues(word(e.Reason)).Inc()
	case core.EvRejected:
		if e.Reason != "forget-unknown" { // an operator's forget, not a record
			m.rejected.WithLabelValues(word(e.Reason)).Inc()
		}
	case core.EvDial:
		m.dialsStarted.Inc()
	case core.EvDialFailed:
		m.dialsFailed.WithLabelValues(word(e.Reason)).Inc()
	case core.EvConnected:
		if v, _ := e.Fact("inbound"); v == "true" {
			m.inbound.Inc()
		} else {
			m.dialsOK.Inc()
		}
	}
}

// redeem counts one step of an invite's redemption. It runs on the loop
// goroutine.
func (m *metrics) redeem(outcome string) {
	if m != nil {
		m.redeems.WithLabelValues(word(outcome)).Inc()
	}
}

// statusCollector reads the Status model at scrape time.
type statusCollector struct {
	d                                                     *Daemon
	known, connected, live, tombstoned, peers             *prometheus.Desc
	records, tombstones, inFlight, seqnum, elapsed, bytes *prometheus.Desc
	syncRounds, trIn, trOut                               *prometheus.Desc
	readOnly                                              *prometheus.Desc
}

func newStatusCollector(d *Daemon) *statusCollector {
	g := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &statusCollector{d: d,
		known:      g("grapevine_known_servers", "Servers whose records are held (the M of \"Connected to N of M known servers\")."),
		connected:  g("grapevine_connected_servers", "Known servers connected now (the N of \"Connected to N of M known servers\")."),
		live:       g("grapevine_live_servers", "Known servers that are live (R1): connected, or a new seqnum from them within W; their records are passed on."),
		tombstoned: g("grapevine_tombstoned_servers", "Servers with at least one tombstone: forgotten, withdrawn or revoked records kept to refuse replays."),
		peers:      g("grapevine_connected_peers", "Authenticated connections now, to servers and to nodes that announce nothing."),
		records:    g("grapevine_records", "Signed records held, the node's own included."),
		tombstones: g("grapevine_tombstones", "Tombstones held (one per forgotten record)."),
		inFlight:   g("grapevine_dials_in_flight", "Outbound dials in flight (at most max_dials_in_flight)."),
		seqnum:     g("grapevine_announcement_seqnum", "The announcement counter: the last seqnum this node signed."),
		elapsed:    g("grapevine_elapsed_seconds", "The node's elapsed-time measure (R5), in seconds: the clock its rules run on; it does not count time the node was stopped."),
		bytes:      g("grapevine_server_message_bytes", "Protocol message bytes exchanged with the nodes known now, summed over their histories (kept across restarts; drops when a node is forgotten).", "direction"),
		syncRounds: g("grapevine_sync_rounds_total", "Anti-entropy requests sent since start."),
		trIn:       g("grapevine_transport_received_bytes_total", "Bytes read from the transport's TCP sockets since start, under TLS (handshakes and framing included)."),
		trOut:      g("grapevine_transport_sent_bytes_total", "Bytes written to the transport's TCP sockets since start, under TLS (handshakes and framing included)."),
		readOnly:   g("grapevine_read_only", "1 while the node cannot write its files (a full disk, say) and runs read-only: imports are refused and no unsaved seqnum of its own is sent; read_only_reason in /v1/status says why. 0 while writable."),
	}
}

// Describe implements prometheus.Collector.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.known, c.connected, c.live, c.tombstoned, c.peers, c.records, c.tombstones,
		c.inFlight, c.seqnum, c.elapsed, c.bytes, c.syncRounds, c.trIn, c.trOut, c.readOnly} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one query of the loop per
// scrape.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, ok := c.d.Snapshot(ctx)
	if !ok {
		ch <- prometheus.NewInvalidMetric(c.known, errors.New("the node's loop did not answer within 5 s (shutting down?)"))
		return
	}
	sum := summarize(st)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.known, float64(st.Known))
	gauge(c.connected, float64(st.Connected))
	gauge(c.live, float64(sum.Live))
	gauge(c.tombstoned, float64(sum.Tombstoned))
	gauge(c.peers, float64(sum.Peers))
	gauge(c.records, float64(st.Records))
	gauge(c.tombstones, float64(st.Tombstones))
	gauge(c.inFlight, float64(st.InFlight))
	gauge(c.seqnum, float64(st.Counter))
	gauge(c.elapsed, st.ElapsedS)
	gauge(c.readOnly, boolGauge(st.ReadOnly))
	gauge(c.bytes, float64(sum.BytesIn), "received")
	gauge(c.bytes, float64(sum.BytesOut), "sent")
	ch <- prometheus.MustNewConstMetric(c.syncRounds, prometheus.CounterValue, float64(st.SyncRounds))
	if s, ok := c.d.tr.(interface{ Stats() transport.Stats }); ok {
		ts := s.Stats()
		ch <- prometheus.MustNewConstMetric(c.trIn, prometheus.CounterValue, float64(ts.BytesIn))
		ch <- prometheus.MustNewConstMetric(c.trOut, prometheus.CounterValue, float64(ts.BytesOut))
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// statusSummary is what the metrics and /v1/servers derive from Status.
type statusSummary struct {
	Live       int // known servers that are live (R1)
	Tombstoned int // distinct IDs with a tombstone
	Peers      int // connections, to any node
	BytesIn    uint64
	BytesOut   uint64
}

func summarize(st Status) statusSummary {
	var s statusSummary
	for _, sv := range st.Servers {
		if sv.Live && len(sv.Services) > 0 {
			s.Live++
		}
		if sv.Connected {
			s.Peers++
		}
		s.BytesIn += sv.BytesIn
		s.BytesOut += sv.BytesOut
	}
	seen := map[string]bool{}
	for _, f := range st.Forgotten {
		if !seen[f.ID] {
			seen[f.ID] = true
			s.Tombstoned++
		}
	}
	return s
}

// metricsHandlers serves Prometheus metrics at /metrics.
func (d *Daemon) metricsHandlers(mux *http.ServeMux) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.HTTPErrorOnError,
		Timeout:       10 * time.Second,
	}))
}
