package foolscap

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

const (
	bananaVersion = 3    // we speak exactly version 3 (PING/PONG)
	maxBlockSize  = 4096 // negotiation header limit, as foolscap
)

// initialVocabTables are foolscap's INITIAL_VOCAB_TABLES (vocab.py).
var initialVocabTables = [][]string{
	{},
	{"none", "boolean", "reference", "dict", "list", "tuple", "set",
		"immutable-set", "unicode", "set-vocab", "add-vocab", "call",
		"arguments", "answer", "error", "my-reference", "your-reference",
		"their-reference", "copyable", "instance", "module", "class",
		"method", "function", "attrdict"},
}

// vocabHash is foolscap's hashVocabTable: first 4 hex digits of the SHA-1
// of the words joined by NUL ("da39" for table 0, "bb33" for table 1).
func vocabHash(i int) string {
	sum := sha1.Sum([]byte(strings.Join(initialVocabTables[i], "\x00")))
	return hex.EncodeToString(sum[:])[:4]
}

// readBlock reads up to the "\r\n\r\n" terminator (not included).
func readBlock(r *bufio.Reader) (string, error) {
	var buf []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		buf = append(buf, b)
		if len(buf) > maxBlockSize {
			return "", &NegotiationError{Msg: "Header too long"}
		}
		if b == '\n' && len(buf) >= 4 && string(buf[len(buf)-4:]) == "\r\n\r\n" {
			return string(buf[:len(buf)-4]), nil
		}
	}
}

// parseBlock parses "Key: value" lines (keys lower-cased, values
// left-trimmed), like foolscap's parseLines.
func parseBlock(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, &NegotiationError{Msg: fmt.Sprintf("malformed negotiation line %q", truncateStr(line, 80))}
		}
		m[strings.ToLower(k)] = strings.TrimLeft(v, " \t\r\n\v\f")
	}
	return m, nil
}

// formatBlock writes keys sorted, "key: value\r\n" each, then "\r\n".
func formatBlock(m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(strings.ToLower(k) + ": " + sanitizeLine(m[k]) + "\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

func negErr(format string, args ...any) error {
	return &NegotiationError{Msg: fmt.Sprintf(format, args...)}
}

// bufferedConn lets TLS read bytes already buffered in the plaintext phase.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// serverPlaintext handles "GET /id/TUBID HTTP/1.1 ..." and answers 101.
func serverPlaintext(raw net.Conn, br *bufio.Reader, myID string) error {
	hdr, err := readBlock(br)
	if err == nil {
		err = checkGET(hdr, myID)
	}
	if err != nil {
		var ne *NegotiationError
		if errors.As(err, &ne) {
			raw.Write([]byte("HTTP/1.1 500 Internal Server Error: " + sanitizeLine(ne.Msg) + "\r\n\r\n"))
		}
		return err
	}
	_, err = raw.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.0, PB/1.0\r\nConnection: Upgrade\r\n\r\n"))
	return err
}

func checkGET(hdr, myID string) error {
	first, _, _ := strings.Cut(hdr, "\r\n")
	f := strings.Fields(first)
	if len(f) != 3 || f[0] != "GET" || !strings.HasPrefix(f[1], "/id/") {
		return negErr("not a foolscap request")
	}
	target := f[1][4:]
	if target == "" {
		return negErr("secure Tubs require encryption")
	}
	if target != myID {
		return negErr("unknown TubID %s", truncateStr(target, 64))
	}
	return nil
}

// clientPlaintext sends the GET and expects 101 Switching Protocols.
func clientPlaintext(raw net.Conn, br *bufio.Reader, target, host string) error {
	req := "GET /id/" + target + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: TLS/1.0\r\nConnection: Upgrade\r\n\r\n"
	if _, err := raw.Write([]byte(req)); err != nil {
		return err
	}
	hdr, err := readBlock(br)
	if err != nil {
		return err
	}
	first, _, _ := strings.Cut(hdr, "\r\n")
	f := strings.Fields(first)
	if len(f) < 2 || f[1] != "101" {
		return negErr("expected 101 Switching Protocols, got %q", truncateStr(first, 200))
	}
	if !strings.Contains(hdr, "Upgrade: TLS/1.0") {
		return negErr("header didn't contain TLS upgrade")
	}
	return nil
}

func tlsServerConfig(t *Tub) *tls.Config {
	return &tls.Config{
		Certificates:           []tls.Certificate{t.cert},
		ClientAuth:             tls.RequireAnyClientCert, // identity is the cert hash
		MinVersion:             tls.VersionTLS12,
		SessionTicketsDisabled: true,
	}
}

func tlsClientConfig(t *Tub) *tls.Config {
	return &tls.Config{
		Certificates:       []tls.Certificate{t.cert},
		InsecureSkipVerify: true, // checked against the FURL's tub ID below
		MinVersion:         tls.VersionTLS12,
	}
}

func peerTubID(tc *tls.Conn) (string, error) {
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", negErr("peer sent no certificate")
	}
	return TubIDFromCert(certs[0].Raw), nil
}

// encrypted runs the hello/decision exchange over TLS. Local failures are
// reported to the peer in an error block.
func (c *Conn) encrypted(ctx context.Context) error {
	err := c.helloAndDecide()
	var ne *NegotiationError
	if errors.As(err, &ne) && !ne.Remote {
		c.nc.Write(formatBlock(map[string]string{"banana-decision-version": "1", "error": ne.Msg}))
	}
	return err
}

func (c *Conn) helloAndDecide() error {
	t := c.tub
	offer := map[string]string{
		"banana-negotiation-range":  fmt.Sprintf("%d %d", bananaVersion, bananaVersion),
		"initial-vocab-table-range": fmt.Sprintf("0 %d", len(initialVocabTables)-1),
		"my-tub-id":                 t.id,
		"my-incarnation":            t.incarnation,
	}
	if c.isClient {
		t.mu.Lock()
		last, ok := t.slaveTable[c.target]
		t.mu.Unlock()
		if !ok {
			last = [2]string{"none", "0"}
		}
		offer["last-connection"] = last[0] + " " + last[1]
	}
	if _, err := c.nc.Write(formatBlock(offer)); err != nil {
		return err
	}
	blk, err := readBlock(c.br)
	if err != nil {
		return err
	}
	hello, err := parseBlock(blk)
	if err != nil {
		return err
	}
	if e, ok := hello["error"]; ok {
		return &NegotiationError{Msg: e, Remote: true}
	}
	rng, ok := hello["banana-negotiation-range"]
	if !ok {
		if _, old := hello["banana-negotiation-version"]; old {
			return negErr("Peer is speaking foolscap-0.0.5 or earlier, which is not compatible with this version. Please upgrade the peer.")
		}
		return negErr("No valid banana-negotiation sequence seen")
	}
	theirMin, theirMax, err := parseRange(rng)
	if err != nil {
		return err
	}
	best := min(bananaVersion, theirMax)
	if best < bananaVersion {
		return negErr("I can't handle banana version %d", best)
	}
	if best < theirMin {
		return negErr("You can't handle banana version %d", best)
	}
	theirID, ok := hello["my-tub-id"]
	if !ok {
		return negErr("you must claim a TubID")
	}
	if theirID != c.peerID {
		return negErr("TubID mismatch")
	}
	if c.isClient && theirID != c.target {
		return negErr("connected to the wrong Tub")
	}
	if t.id > theirID {
		return c.decide(hello, best)
	}
	return c.awaitDecision()
}

func parseRange(s string) (int, int, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, negErr("malformed range %q", s)
	}
	a, err1 := strconv.Atoi(f[0])
	b, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || a > b {
		return 0, 0, negErr("malformed range %q", s)
	}
	return a, b, nil
}

// decide is the master's half: choose parameters, resolve duplicate
// connections, send the decision block.
func (c *Conn) decide(hello map[string]string, version int) error {
	t := c.tub
	vr, ok := hello["initial-vocab-table-range"]
	if !ok {
		vr = "0 0"
	}
	vmin, vmax, err := parseRange(vr)
	if err != nil {
		return err
	}
	idx := min(len(initialVocabTables)-1, vmax)
	if idx < 0 {
		return negErr("I can't handle initial vocab set %d", idx)
	}
	if idx < vmin {
		return negErr("You can't handle initial vocab set %d", idx)
	}
	t.mu.Lock()
	old := t.conns[c.peerID]
	if old != nil && !acceptOffer(t, hello, old) {
		t.mu.Unlock()
		return negErr("Duplicate connection")
	}
	seq := t.masterSeq[c.peerID] + 1
	t.masterSeq[c.peerID] = seq
	c.slaveIR, c.seqnum = hello["my-incarnation"], seq
	t.conns[c.peerID] = c
	t.mu.Unlock()
	if old != nil {
		c.log.Info("foolscap: new connection replaces existing one", "peer", shortID(c.peerID))
		old.fail(ErrReplaced)
	}
	decision := map[string]string{
		"banana-decision-version":   strconv.Itoa(version),
		"current-connection":        fmt.Sprintf("%s %d", t.incarnation, seq),
		"initial-vocab-table-index": fmt.Sprintf("%d %s", idx, vocabHash(idx)),
	}
	if _, err := c.nc.Write(formatBlock(decision)); err != nil {
		return err
	}
	c.setup(idx)
	return nil
}

// acceptOffer is foolscap's compareOfferAndExisting: should a new offer
// from a peer we already have a connection to replace it? (t.mu held)
func acceptOffer(t *Tub, offer map[string]string, old *Conn) bool {
	inc := offer["my-incarnation"]
	last, ok := offer["last-connection"]
	if inc == "" || !ok {
		return false // pre-0.2.0 peer: keep the existing connection
	}
	if inc != old.slaveIR {
		return true // the peer restarted
	}
	f := strings.Fields(last)
	if len(f) != 2 || f[0] == "none" {
		return false // e.g. a parallel connection attempt
	}
	if f[0] != t.incarnation {
		return true // they remember one of our past lives
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	return err == nil && n == old.seqnum // they saw our current one and reconnected anyway
}

// awaitDecision is the non-master's half.
func (c *Conn) awaitDecision() error {
	blk, err := readBlock(c.br)
	if err != nil {
		return err
	}
	dec, err := parseBlock(blk)
	if err != nil {
		return err
	}
	v := dec["banana-decision-version"]
	if v == "" {
		return negErr("No banana-decision-version value")
	}
	if e, ok := dec["error"]; ok {
		return &NegotiationError{Msg: "Banana negotiation failed: " + e, Remote: true}
	}
	ver, err := strconv.Atoi(v)
	if err != nil || ver < 1 || ver > bananaVersion {
		return negErr("I cannot handle banana-decision-version value of %s", v)
	}
	idx := 0
	if s := dec["initial-vocab-table-index"]; s != "" {
		f := strings.Fields(s)
		if len(f) != 2 {
			return negErr("malformed initial-vocab-table-index %q", s)
		}
		idx, err = strconv.Atoi(f[0])
		if err != nil || idx < 0 || idx >= len(initialVocabTables) {
			return negErr("I can't handle initial vocab table index %s", f[0])
		}
		if idx > 0 && f[1] != vocabHash(idx) {
			return negErr("Our hash for vocab-table-index %d (%s) does not match your hash (%s)", idx, vocabHash(idx), f[1])
		}
	}
	t := c.tub
	t.mu.Lock()
	old := t.conns[c.peerID]
	t.conns[c.peerID] = c
	if f := strings.Fields(dec["current-connection"]); len(f) == 2 {
		t.slaveTable[c.peerID] = [2]string{f[0], f[1]}
	}
	t.mu.Unlock()
	if old != nil && old != c {
		c.log.Info("foolscap: master told us to use a new connection", "peer", shortID(c.peerID))
		old.fail(ErrReplaced)
	}
	c.setup(idx)
	return nil
}
