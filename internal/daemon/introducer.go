package daemon

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/atomicfile"
	"grapevine/internal/foolscap"
	"grapevine/internal/nodedir"
)

// Files of the introducer endpoint, under DIR/private.
const (
	TubFile        = "tub.pem"         // the Foolscap tub's key and certificate
	IntroducerFURL = "introducer.furl" // the FURL Tahoe nodes are given
)

// Tahoe's introducer protocol (allmydata/introducer/interfaces.py).
const (
	riPublisher  = "RIIntroducerPublisherAndSubscriberService_v2.tahoe.allmydata.com"
	introducerV2 = "http://allmydata.org/tahoe/protocols/introducer/v2"
	// maxSubscribers bounds the Tahoe nodes one endpoint feeds.
	maxSubscribers = 256
	// announceTimeout bounds one announce_v2 call to a subscriber.
	announceTimeout = 30 * time.Second
	// maxAnnounceBatch bounds the records of one announce_v2 call.
	maxAnnounceBatch = 256
	// feedInterval: subscribers are brought up to date at most this often.
	feedInterval = 100 * time.Millisecond
	// cacheInterval: how often the Tahoe node's cache is checked.
	cacheInterval = 2 * time.Second
)

// introducer serves Tahoe's introducer protocol on a Foolscap endpoint
// and feeds subscribers from the core (docs/design.md §9).
type introducer struct {
	d    *Daemon
	log  *slog.Logger
	srv  *foolscap.Server
	furl string
	poke chan struct{}

	mu        sync.Mutex
	subs      []*subscriber
	published map[*foolscap.Conn][]announce.NodeID
	cachePath string
	cacheErr  string // the last error reading it, logged once
}

// subscriber is one Tahoe node's subscription to one service.
type subscriber struct {
	ref     *foolscap.RemoteRef
	conn    *foolscap.Conn
	service string
	tubID   string
	nick    string
	sent    map[announce.NodeID]string // key -> the signature sent
	errs    int
}

// startIntroducer opens the endpoint, writes DIR/private/introducer.furl,
// and serves until ctx is done.
func (d *Daemon) startIntroducer(ctx context.Context) (*introducer, error) {
	c := d.dir.Config.Introducer
	if c.Off() {
		return nil, nil
	}
	tub, swiss, port, err := loadTub(d.opt.Dir)
	if err != nil {
		return nil, err
	}
	addr := c.ListenAddr()
	ln, err := listenKeepingPort(addr, port)
	if err != nil {
		return nil, fmt.Errorf("introducer endpoint: listen on %s: %w", addr, err)
	}
	in := &introducer{d: d, log: d.log.With("component", "introducer"), poke: make(chan struct{}, 1),
		published: map[*foolscap.Conn][]announce.NodeID{}}
	if in.furl, err = writeFURL(d.opt.Dir, tub, c, ln.Addr().String(), swiss); err != nil {
		ln.Close()
		return nil, err
	}
	furlPath := filepath.Join(d.opt.Dir, "private", IntroducerFURL)
	if t := d.dir.Config.Tahoe; t.NodeDir != "" {
		in.cachePath = TahoeCachePath(t.NodeDir, t.PetnameOr())
	}
	in.srv = foolscap.NewServer(tub, foolscap.Options{Logger: in.log})
	in.srv.Register(swiss, in)
	go in.srv.Serve(ln)
	go in.feed(ctx)
	in.log.Info("introducer endpoint listening", "addr", ln.Addr().String(), "furl_file", furlPath)
	return in, nil
}

// loadTub loads or creates the node's tub, and reads the swissnum and
// port of the FURL already written (new swissnum if none).
func loadTub(dir string) (tub *foolscap.Tub, swiss, port string, err error) {
	tub, err = foolscap.LoadOrCreateTub(filepath.Join(dir, "private", TubFile))
	if err != nil {
		return nil, "", "", err
	}
	if f, err := foolscap.ParseFURL(ReadIntroducerFURL(dir)); err == nil && f.TubID == tub.ID() {
		swiss = f.Name
		if len(f.Hints) > 0 {
			if _, p, err := net.SplitHostPort(strings.TrimPrefix(f.Hints[0], "tcp:")); err == nil {
				port = p
			}
		}
	}
	if swiss == "" {
		swiss = foolscap.NewSwissnum(crand.Reader)
	}
	return tub, swiss, port, nil
}

// writeFURL writes DIR/private/introducer.furl for an endpoint listening
// on addr, with the configured location as hints if there is one.
func writeFURL(dir string, tub *foolscap.Tub, c nodedir.IntroducerConfig, addr, swiss string) (string, error) {
	hints := slices.Clone(c.Location)
	if len(hints) == 0 {
		hints = []string{addr}
	}
	for i, h := range hints {
		hints[i] = "tcp:" + h
	}
	furl := foolscap.FormatFURL(tub.ID(), hints, swiss)
	return furl, atomicfile.WriteFile(filepath.Join(dir, "private", IntroducerFURL), []byte(furl+"\n"), 0o600)
}

// PrepareIntroducer writes the FURL of a node directory's endpoint before
// it first runs, so that a Tahoe node can be given it: the listen address
// (or location) must name a fixed port.
func PrepareIntroducer(dir string, c nodedir.IntroducerConfig) (string, error) {
	if c.Off() {
		return "", errors.New("the introducer endpoint is off")
	}
	addr := c.ListenAddr()
	if _, port, err := net.SplitHostPort(addr); err != nil || (port == "0" && len(c.Location) == 0) {
		return "", fmt.Errorf("introducer listen %s: a FURL needs a fixed port", addr)
	}
	tub, swiss, _, err := loadTub(dir)
	if err != nil {
		return "", err
	}
	return writeFURL(dir, tub, c, addr, swiss)
}

// listenKeepingPort listens on addr; with port 0 it first tries the port
// of the FURL already written, so that the FURL stays the same. The
// kernel's TCP keepalive is off: foolscap's PING and idle timeout do its
// work.
func listenKeepingPort(addr, old string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	lc := net.ListenConfig{KeepAlive: -1}
	if port == "0" && old != "" && old != "0" {
		if ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(host, old)); err == nil {
			return ln, nil
		}
	}
	return lc.Listen(context.Background(), "tcp", addr)
}

func (in *introducer) close() {
	if in != nil {
		in.srv.Close()
	}
}

// changed is called by the loop after every batch of inputs.
func (in *introducer) changed() {
	if in == nil {
		return
	}
	select {
	case in.poke <- struct{}{}:
	default:
	}
}

// RemoteInterfaceName names Tahoe's interface, whose schema Tahoe checks
// our answers against.
func (in *introducer) RemoteInterfaceName() string { return riPublisher }

// RemoteCall serves the introducer's methods.
func (in *introducer) RemoteCall(ctx context.Context, c *foolscap.Call) (foolscap.Value, error) {
	switch c.Method {
	case "get_version":
		return foolscap.Dict{
			{Key: []byte(introducerV2), Value: foolscap.Dict{}},
			{Key: []byte("application-version"), Value: []byte(announce.Version)},
		}, nil
	case "publish_v2":
		ann, ok := c.Arg(0, "announcement")
		if !ok {
			return nil, errors.New("publish_v2: no announcement")
		}
		return nil, in.publish(ctx, c.Conn, ann)
	case "subscribe_v2":
		return nil, in.subscribe(c)
	}
	return nil, fmt.Errorf("no such method %q", c.Method)
}

// publisherNotServer says why the publisher's connection is no evidence
// that the record's server is up, or "": a Tahoe node publishes over its
// main tub, the tub that serves its anonymous-storage-FURL, so the
// connection proves that server's key is alive only if the tub IDs match.
// Anyone else holding the FURL could otherwise replay a dead server's
// public record and have it hosted.
func publisherNotServer(s announce.Signed, tub string) string {
	a, err := announce.ParseUnverified(s)
	if err != nil {
		return "" // admission reports it
	}
	v, ok := a.Body.Get("anonymous-" + a.ServiceName + "-FURL")
	if !ok || v.Kind != announce.String {
		return "the record names no FURL, so the publisher cannot be matched to its server"
	}
	f, err := foolscap.ParseFURL(v.Str)
	if err != nil {
		return "its FURL does not parse: " + err.Error()
	}
	if f.TubID != tub {
		return fmt.Sprintf("the publisher's tub %s is not the tub %s of its FURL", tub, f.TubID)
	}
	return ""
}

// signedOf reads Tahoe's ann_t: a tuple of msg, sig and key, as bytes.
func signedOf(v foolscap.Value) (announce.Signed, error) {
	var items []foolscap.Value
	switch t := v.(type) {
	case foolscap.Tuple:
		items = t
	case foolscap.List:
		items = t
	}
	if len(items) != 3 {
		return announce.Signed{}, errors.New("announcement: want a (msg, sig, key) tuple")
	}
	var out [3]string
	for i, it := range items {
		switch s := it.(type) {
		case []byte:
			out[i] = string(s)
		case string:
			out[i] = s
		default:
			return announce.Signed{}, fmt.Errorf("announcement[%d]: want bytes, got %T", i, it)
		}
	}
	return announce.Signed{Msg: out[0], Sig: out[1], Key: out[2]}, nil
}

// publish admits a Tahoe node's own record and hosts it while conn lasts.
func (in *introducer) publish(ctx context.Context, conn *foolscap.Conn, v foolscap.Value) error {
	s, err := signedOf(v)
	if err != nil {
		return err
	}
	var evs []core.Event
	var held bool
	var id announce.NodeID
	var perr error
	notServer := publisherNotServer(s, conn.PeerTubID())
	if !in.d.Query(ctx, func(n *core.Node) {
		evs, perr = in.d.stepEvents(core.Publish{Rec: s, NotServer: notServer})
		for _, h := range n.Hosted() {
			if string(h) == s.Key {
				held, id = true, h
			}
		}
	}) {
		return errors.New("node is stopping")
	}
	if notServer != "" {
		for _, e := range evs {
			if e.Kind == core.EvRejected && string(e.Peer) == s.Key {
				return fmt.Errorf("refused: %s", e)
			}
		}
		in.log.Info("published, not hosted", "peer", s.Key, "tub", conn.PeerTubID(), "why", notServer)
		return perr
	}
	if !held {
		for _, e := range evs {
			if (e.Kind == core.EvRejected || e.Kind == core.EvOverCap) && string(e.Peer) == s.Key {
				return fmt.Errorf("refused: %s", e)
			}
		}
		if perr != nil {
			return perr
		}
		return errors.New("refused: not held")
	}
	in.mu.Lock()
	ids := in.published[conn]
	first := ids == nil
	if !slices.Contains(ids, id) {
		in.published[conn] = append(ids, id)
	}
	in.mu.Unlock()
	in.log.Info("published", "peer", string(id), "tub", conn.PeerTubID())
	if first {
		go in.watchPublisher(conn)
	}
	return nil
}

// watchPublisher unhosts what conn published once it closes and no other
// connection published it.
func (in *introducer) watchPublisher(conn *foolscap.Conn) {
	<-conn.Done()
	in.mu.Lock()
	ids := in.published[conn]
	delete(in.published, conn)
	var gone []announce.NodeID
	for _, id := range ids {
		still := false
		for _, others := range in.published {
			still = still || slices.Contains(others, id)
		}
		if !still {
			gone = append(gone, id)
		}
	}
	in.mu.Unlock()
	for _, id := range gone {
		in.log.Info("publisher gone", "peer", string(id), "tub", conn.PeerTubID(), "err", fmt.Sprint(conn.Err()))
		in.d.Query(context.Background(), func(*core.Node) { in.d.stepEvents(core.Unpublished{ID: id}) })
	}
}

// subscribe registers a subscriber; a duplicate subscription is ignored,
// as Tahoe's introducer does.
func (in *introducer) subscribe(c *foolscap.Call) error {
	refV, ok := c.Arg(0, "subscriber")
	if !ok {
		return errors.New("subscribe_v2: no subscriber")
	}
	ref, ok := refV.(*foolscap.RemoteRef)
	if !ok {
		return fmt.Errorf("subscriber: want a reference, got %T", refV)
	}
	svcV, ok := c.Arg(1, "service_name")
	if !ok {
		return errors.New("subscribe_v2: no service_name")
	}
	var svc string
	switch s := svcV.(type) {
	case []byte:
		svc = string(s)
	case string:
		svc = s
	default:
		return fmt.Errorf("service_name: want bytes, got %T", svcV)
	}
	nick := ""
	if info, ok := c.Arg(2, "subscriber_info"); ok {
		if d, ok := info.(foolscap.Dict); ok {
			if v, ok := d.Get([]byte("nickname")); ok {
				nick = textOf(v)
			} else if v, ok := d.Get("nickname"); ok {
				nick = textOf(v)
			}
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, s := range in.subs {
		if s.conn == c.Conn && s.service == svc {
			return nil
		}
	}
	if len(in.subs) >= maxSubscribers {
		return fmt.Errorf("too many subscribers (%d)", maxSubscribers)
	}
	s := &subscriber{ref: ref, conn: c.Conn, service: svc, tubID: c.Conn.PeerTubID(), nick: nick,
		sent: map[announce.NodeID]string{}}
	in.subs = append(in.subs, s)
	in.log.Info("subscribed", "service", svc, "tub", s.tubID, "nickname", nick)
	go func() {
		<-c.Conn.Done()
		in.mu.Lock()
		in.subs = slices.DeleteFunc(in.subs, func(x *subscriber) bool { return x == s })
		in.mu.Unlock()
		in.log.Info("unsubscribed", "service", svc, "tub", s.tubID, "err", fmt.Sprint(c.Conn.Err()))
	}()
	in.changed()
	return nil
}

func textOf(v foolscap.Value) string {
	switch s := v.(type) {
	case []byte:
		return string(s)
	case string:
		return s
	}
	return ""
}

// feed brings subscribers up to date whenever the node changed, at most
// every feedInterval, and keeps the Tahoe node's cache pruned.
func (in *introducer) feed(ctx context.Context) {
	cache := in.d.clock.ticker(cacheInterval)
	defer cache.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-in.poke:
		case <-cache.C:
			in.pruneCache()
			continue
		}
		in.announce(ctx)
		in.pruneCache()
		select {
		case <-ctx.Done():
			return
		case <-in.d.clock.after(feedInterval):
		}
	}
}

// announce sends each subscriber the live records it has not been sent.
func (in *introducer) announce(ctx context.Context) {
	in.mu.Lock()
	services := map[string]bool{}
	for _, s := range in.subs {
		services[s.service] = true
	}
	in.mu.Unlock()
	if len(services) == 0 {
		return
	}
	live := map[string][]announce.Signed{}
	if !in.d.Query(ctx, func(n *core.Node) {
		for svc := range services {
			live[svc] = n.LiveRecords(svc)
		}
	}) {
		return
	}
	in.mu.Lock()
	subs := slices.Clone(in.subs)
	in.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range subs {
		var batch []announce.Signed
		in.mu.Lock()
		for _, r := range live[s.service] {
			id := announce.NodeID(r.Key)
			if s.sent[id] != r.Sig && len(batch) < maxAnnounceBatch {
				batch = append(batch, r)
			}
		}
		in.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.send(ctx, s, batch)
		}()
	}
	wg.Wait()
}

// send calls announce_v2 on one subscriber. A failure is logged; the
// records are sent again at the next change.
func (in *introducer) send(ctx context.Context, s *subscriber, batch []announce.Signed) {
	set := make(foolscap.Set, len(batch))
	for i, r := range batch {
		set[i] = foolscap.Tuple{[]byte(r.Msg), []byte(r.Sig), []byte(r.Key)}
	}
	cctx, cancel := context.WithTimeout(ctx, announceTimeout)
	defer cancel()
	start := in.d.clock.mono()
	_, err := s.ref.Call(cctx, "announce_v2", set)
	in.mu.Lock()
	if err != nil {
		s.errs++
		in.mu.Unlock()
		in.log.Warn("announce_v2 failed", "tub", s.tubID, "records", len(batch), "err", err.Error())
		return
	}
	for _, r := range batch {
		s.sent[announce.NodeID(r.Key)] = r.Sig
	}
	in.mu.Unlock()
	keys := make([]string, len(batch))
	for i, r := range batch {
		keys[i] = announce.NodeID(r.Key).Short()
	}
	in.log.Info("announced", "tub", s.tubID, "service", s.service, "records", len(batch), "servers", strings.Join(keys, ","),
		"took_ms", in.d.clock.since(start).Milliseconds())
}

// pruneCache drops the servers this node no longer holds from the Tahoe
// node's cache of this introducer, if the node directory is known. It
// asks the core only about the keys the file names.
func (in *introducer) pruneCache() {
	if in.cachePath == "" {
		return
	}
	data, err := os.ReadFile(in.cachePath)
	if err != nil {
		return
	}
	var named []announce.NodeID
	if _, _, err := PruneTahoeCache(data, func(id announce.NodeID) bool { named = append(named, id); return true }); err != nil {
		if msg := err.Error(); msg != in.cacheErr {
			in.cacheErr = msg
			in.log.Warn("tahoe cache not pruned: unreadable", "file", in.cachePath, "err", msg)
		}
		return
	}
	in.cacheErr = ""
	if len(named) == 0 {
		return
	}
	held := map[announce.NodeID]bool{}
	if !in.d.Query(context.Background(), func(n *core.Node) {
		for _, id := range named {
			held[id] = id == n.ID() || n.Holds(id)
		}
	}) {
		return
	}
	dropped, err := pruneTahoeCacheFile(in.cachePath, func(id announce.NodeID) bool { return held[id] })
	if err != nil {
		in.log.Warn("tahoe cache not pruned", "file", in.cachePath, "err", err.Error())
		return
	}
	for _, id := range dropped {
		in.log.Info("tahoe-cache-pruned", "peer", id, "reason", "forgotten", "file", in.cachePath)
	}
}

func (in *introducer) state(n *core.Node) *Introducer {
	if in == nil {
		return nil
	}
	st := &Introducer{FURL: in.furl, Subscribers: []SubscriberState{}, Hosted: []string{}, TahoeCache: in.cachePath}
	for _, id := range n.Hosted() {
		st.Hosted = append(st.Hosted, string(id))
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, s := range in.subs {
		st.Subscribers = append(st.Subscribers, SubscriberState{Tub: s.tubID, Nickname: s.nick, Service: s.service, Sent: len(s.sent), Errors: s.errs})
	}
	return st
}

// ReadIntroducerFURL returns the FURL a node directory's endpoint was
// given, or "" if it has none yet.
func ReadIntroducerFURL(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "private", IntroducerFURL))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// tahoeSeed returns the Tahoe node's own permutation-seed file, which a
// storage record this node signs for it must carry, or "".
func tahoeSeed(nodeDir string) string {
	if nodeDir == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(nodeDir, "permutation-seed"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// checkTahoeKey refuses to run with the Tahoe node's own key.
func checkTahoeKey(dir *nodedir.Node) error {
	nd := dir.Config.Tahoe.NodeDir
	if nd == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(nd, "node.pubkey"))
	if err != nil {
		return nil // not created yet, or not a storage node
	}
	id, err := announce.ParsePublicKeyFile(strings.TrimSpace(string(b)))
	if err == nil && id == dir.ID() {
		return fmt.Errorf("%s: this node's key is the Tahoe node's (%s): Tahoe issues seqnums for it too, and they would collide; give this node a key of its own (grapevine create-node makes one)",
			filepath.Join(nd, "node.pubkey"), id.Short())
	}
	return nil
}
