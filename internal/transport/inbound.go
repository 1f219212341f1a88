package transport

import (
	"net"
	"sync"
	"time"
)

// handshakeSlots admits inbound handshakes without ever waiting: at most
// max in progress, at most perAddr from one address. When all are taken,
// a newcomer evicts the oldest handshake of the busiest address if that
// address has at least two more in progress than the newcomer's, so a
// peer from a quiet address gets a slot however many connections a few
// busy addresses hold, and evictions always even the shares out.
type handshakeSlots struct {
	max, perAddr int

	mu     sync.Mutex
	n      int
	byAddr map[string][]*handshake // oldest first
}

// handshake is one inbound handshake holding a slot.
type handshake struct {
	addr    string // addressKey of the remote
	raw     net.Conn
	evicted bool // under mu; its slot went to another
}

func newHandshakeSlots(max, perAddr int) *handshakeSlots {
	return &handshakeSlots{max: max, perAddr: perAddr, byAddr: map[string][]*handshake{}}
}

// admit takes a slot for raw, or returns the reason it is refused. A
// handshake evicted for it is closed.
func (s *handshakeSlots) admit(raw net.Conn) (*handshake, string) {
	key := addressKey(raw.RemoteAddr())
	s.mu.Lock()
	mine := len(s.byAddr[key])
	if mine >= s.perAddr {
		s.mu.Unlock()
		return nil, ReasonAddressBusy
	}
	var victim *handshake
	if s.n >= s.max {
		busiest := ""
		for a, hs := range s.byAddr {
			if busiest == "" || len(hs) > len(s.byAddr[busiest]) {
				busiest = a
			}
		}
		if len(s.byAddr[busiest]) < mine+2 {
			s.mu.Unlock()
			return nil, ReasonTooManyHandshakes
		}
		victim = s.byAddr[busiest][0]
		victim.evicted = true
		s.remove(victim)
	}
	h := &handshake{addr: key, raw: raw}
	s.byAddr[key] = append(s.byAddr[key], h)
	s.n++
	s.mu.Unlock()
	if victim != nil {
		victim.raw.Close()
	}
	return h, ""
}

// release frees h's slot and reports whether h was evicted.
func (s *handshakeSlots) release(h *handshake) (evicted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !h.evicted {
		s.remove(h)
	}
	return h.evicted
}

// remove drops h from the table; the caller holds mu.
func (s *handshakeSlots) remove(h *handshake) {
	hs := s.byAddr[h.addr]
	for i, x := range hs {
		if x == h {
			hs = append(hs[:i:i], hs[i+1:]...)
			break
		}
	}
	if len(hs) == 0 {
		delete(s.byAddr, h.addr)
	} else {
		s.byAddr[h.addr] = hs
	}
	s.n--
}

func (s *handshakeSlots) inProgress() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// addressKey is what the per-address limit counts by: an IPv4 address,
// or the /64 of an IPv6 one (one host often holds a whole /64).
func addressKey(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if ip4 := ta.IP.To4(); ip4 != nil {
		return ip4.String()
	}
	return ta.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// refusalLog reports connections refused before their handshake: each to
// OnReject if set, else a log line per reason at most once a second,
// with how many were refused for it since the last line.
type refusalLog struct {
	e *engine

	mu      sync.Mutex
	pending map[string]int64
	total   map[string]int64
	last    map[string]time.Time
}

func (r *refusalLog) refuse(raw net.Conn, reason string) {
	raw.Close()
	e := r.e
	if e.opts.OnReject != nil {
		e.opts.OnReject(Rejection{Addr: raw.RemoteAddr().String(), Inbound: true, Reason: reason})
		return
	}
	now := time.Now()
	r.mu.Lock()
	if r.pending == nil {
		r.pending, r.total, r.last = map[string]int64{}, map[string]int64{}, map[string]time.Time{}
	}
	r.pending[reason]++
	r.total[reason]++
	n, total := r.pending[reason], r.total[reason]
	due := now.Sub(r.last[reason]) >= time.Second
	if due {
		r.pending[reason] = 0
		r.last[reason] = now
	}
	r.mu.Unlock()
	if due {
		e.log.Warn("inbound connections refused", "reason", reason, "count", n, "total", total, "last_addr", raw.RemoteAddr().String(),
			"max_inbound", e.opts.MaxInbound, "max_handshakes", e.opts.MaxHandshakes, "max_per_address", e.opts.MaxHandshakesPerAddress)
	}
}
