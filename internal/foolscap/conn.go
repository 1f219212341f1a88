package foolscap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"weak"
)

// Object is something the peer can call: a registered root object or any
// Object value we send (it crosses the wire as a my-reference).
type Object interface {
	RemoteCall(ctx context.Context, c *Call) (Value, error)
}

// RemoteInterfacer may be implemented by an Object to name its foolscap
// RemoteInterface (sent with the first my-reference; Python uses it to pick
// the schema it checks our answers against).
type RemoteInterfacer interface {
	RemoteInterfaceName() string
}

// MethodFunc implements one remote method.
type MethodFunc func(ctx context.Context, c *Call) (Value, error)

// Methods is an Object dispatching on the method name. Unknown methods
// fail with a foolscap Violation, as in foolscap.
type Methods struct {
	Interface string
	Funcs     map[string]MethodFunc
}

// RemoteInterfaceName implements RemoteInterfacer.
func (m *Methods) RemoteInterfaceName() string { return m.Interface }

// RemoteCall implements Object.
func (m *Methods) RemoteCall(ctx context.Context, c *Call) (Value, error) {
	f := m.Funcs[c.Method]
	if f == nil {
		return nil, NewRemoteViolation(fmt.Sprintf("method '%s' not defined in %s", c.Method, m.Interface))
	}
	return f(ctx, c)
}

// Call is one inbound method invocation.
type Call struct {
	Conn   *Conn
	Method string
	Args   []Value          // positional arguments
	Kwargs map[string]Value // keyword arguments (how foolscap sends named args)
	ReqID  int64            // 0: the caller wants no answer (callRemoteOnly)
}

// Arg returns positional argument i or, failing that, keyword argument
// name: Python callers may pass either way.
func (c *Call) Arg(i int, name string) (Value, bool) {
	if i >= 0 && i < len(c.Args) {
		return c.Args[i], true
	}
	v, ok := c.Kwargs[name]
	return v, ok
}

// RemoteRef is a reference to an object of the peer (received as a
// my-reference sequence). While a RemoteRef for a CLID is alive, the same
// pointer is returned for that CLID, so it can be used as a map key. When
// it is released (Release, or garbage collected) a decref is sent.
type RemoteRef struct {
	conn     *Conn
	clid     int64
	iface    string
	url      string
	gen      uint64
	released atomic.Bool
}

// InterfaceName is the RemoteInterface name the peer sent ("" if none).
func (r *RemoteRef) InterfaceName() string { return r.iface }

// URL is the FURL the peer sent with the reference, if any.
func (r *RemoteRef) URL() string { return r.url }

// Conn is the connection the reference lives on.
func (r *RemoteRef) Conn() *Conn { return r.conn }

// CLID is the connection-local ID of the referenced object.
func (r *RemoteRef) CLID() int64 { return r.clid }

func (r *RemoteRef) String() string {
	return fmt.Sprintf("<RemoteRef clid=%d iface=%q peer=%s>", r.clid, r.iface, shortID(r.conn.peerID))
}

// Call invokes a remote method with positional arguments and waits for
// the answer. A remote exception is returned as *RemoteError.
func (r *RemoteRef) Call(ctx context.Context, method string, args ...Value) (Value, error) {
	return r.CallKw(ctx, method, args, nil)
}

// CallKw invokes a remote method with positional and keyword arguments.
func (r *RemoteRef) CallKw(ctx context.Context, method string, args []Value, kwargs map[string]Value) (Value, error) {
	if r.released.Load() {
		return nil, ErrReleased
	}
	return r.conn.callRemote(ctx, r.clid, method, args, kwargs, false)
}

// CallOnly sends a call with request ID 0: no answer or error comes back.
func (r *RemoteRef) CallOnly(method string, args ...Value) error {
	if r.released.Load() {
		return ErrReleased
	}
	_, err := r.conn.callRemote(context.Background(), r.clid, method, args, nil, true)
	return err
}

// Release drops the reference now (instead of waiting for garbage
// collection) and sends the decref. Later calls fail with ErrReleased.
func (r *RemoteRef) Release() {
	if r.released.Swap(true) || r.clid == 0 {
		return
	}
	r.conn.refLost(refKey{r.clid, r.gen})
}

type refKey struct {
	clid int64
	gen  uint64
}

// refTracker is foolscap's RemoteReferenceTracker: it counts how often the
// peer sent us a CLID so the decref can return exactly that count.
type refTracker struct {
	clid  int64
	iface string
	url   string
	count int
	gen   uint64
	ref   weak.Pointer[RemoteRef]
}

type callResult struct {
	v   Value
	err error
}

type encodeError struct{ err error }

func (e *encodeError) Error() string { return e.err.Error() }
func (e *encodeError) Unwrap() error { return e.err }

// Conn is one negotiated connection to a peer tub (foolscap's Broker).
type Conn struct {
	tub      *Tub
	opts     Options
	log      *slog.Logger
	raw      net.Conn
	nc       net.Conn // TLS
	br       *bufio.Reader
	peerID   string
	target   string // client side: the tub ID we dialed
	isClient bool
	names    func(string) (Object, bool)

	// negotiation record (we were master)
	slaveIR string
	seqnum  int64

	vocab []string
	wmu   sync.Mutex // serializes writes; taken before emu
	enc   *encoder
	emu   sync.Mutex // guards exp
	exp   *exportTable
	dec   *decoder

	mu      sync.Mutex
	closed  bool
	err     error
	nextReq int64
	pending map[int64]chan callResult
	refs    map[int64]*refTracker
	onClose []func()

	done     chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	calls    chan *message
	lastRecv atomic.Int64
	broker   *RemoteRef
	started  atomic.Bool // negotiation finished, goroutines running
}

// activityReader records when data last arrived (keepalive bookkeeping).
type activityReader struct {
	r    io.Reader
	last *atomic.Int64
}

func (a activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func newConn(tub *Tub, raw, tlsConn net.Conn, opts Options, isClient bool, names func(string) (Object, bool)) *Conn {
	c := &Conn{
		tub: tub, opts: opts, log: opts.Logger, raw: raw, nc: tlsConn,
		isClient: isClient, names: names,
		exp:     newExportTable(),
		pending: map[int64]chan callResult{},
		refs:    map[int64]*refTracker{},
		done:    make(chan struct{}),
		calls:   make(chan *message, opts.MaxPendingCalls),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.lastRecv.Store(time.Now().UnixNano())
	c.br = bufio.NewReaderSize(activityReader{tlsConn, &c.lastRecv}, 64<<10)
	c.broker = &RemoteRef{conn: c, clid: 0, iface: "RIBroker"}
	return c
}

// setup prepares the Banana layer once the vocab table is decided.
func (c *Conn) setup(vocabIndex int) {
	c.vocab = initialVocabTables[vocabIndex]
	c.enc = newEncoder(c.vocab, c.exp, c)
	c.dec = newDecoder(decodeLimits{
		maxDepth:        c.opts.MaxOpenDepth,
		maxItems:        c.opts.MaxItems,
		maxMessageBytes: c.opts.MaxMessageSize,
		maxVocab:        c.opts.MaxVocab,
	}, c, c.vocab)
}

func (c *Conn) start() {
	c.started.Store(true)
	go c.readLoop()
	go c.dispatch()
	go c.keepalive()
}

// PeerTubID returns the peer's tub ID (hash of its TLS certificate).
func (c *Conn) PeerTubID() string { return c.peerID }

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Context is cancelled when the connection ends.
func (c *Conn) Context() context.Context { return c.ctx }

// Err returns nil while the connection is up, then why it ended.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection. Pending calls fail with ErrConnClosed.
func (c *Conn) Close() error {
	c.fail(ErrConnClosed)
	return nil
}

func (c *Conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *Conn) closedErr() error {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if errors.Is(err, ErrConnClosed) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrConnClosed, err)
}

func (c *Conn) addOnClose(f func()) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		f()
		return
	}
	c.onClose = append(c.onClose, f)
	c.mu.Unlock()
}

// fail ends the connection with err (first caller wins).
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed, c.err = true, err
	pend := c.pending
	c.pending = map[int64]chan callResult{}
	hooks := c.onClose
	c.onClose = nil
	c.mu.Unlock()

	c.raw.Close()
	c.cancel()
	close(c.done)
	cerr := fmt.Errorf("%w: %v", ErrConnClosed, err)
	if errors.Is(err, ErrConnClosed) {
		cerr = err
	}
	for _, ch := range pend {
		ch <- callResult{err: cerr}
	}
	c.tub.mu.Lock()
	if c.tub.conns[c.peerID] == c {
		delete(c.tub.conns, c.peerID)
	}
	c.tub.mu.Unlock()
	for _, f := range hooks {
		f()
	}
	c.log.Debug("foolscap: connection closed", "peer", shortID(c.peerID), "err", err)
}

func shortID(id string) string {
	if len(id) > 4 {
		return id[:4]
	}
	return id
}

// write encodes one message and sends it. Encoding failures send nothing
// and return *encodeError.
func (c *Conn) write(fn func(*encoder) error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.isClosed() {
		return c.closedErr()
	}
	if !c.started.Load() {
		return fmt.Errorf("%w: connection not established", ErrConnClosed)
	}
	c.emu.Lock()
	c.enc.begin()
	if err := fn(c.enc); err != nil {
		c.enc.rollback()
		c.emu.Unlock()
		return &encodeError{err}
	}
	data := c.enc.commit()
	c.emu.Unlock()
	if c.opts.WriteTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	}
	if _, err := c.nc.Write(data); err != nil {
		c.fail(err)
		return fmt.Errorf("%w: %v", ErrConnClosed, err)
	}
	return nil
}

func (c *Conn) readLoop() {
	tr := newTokenReader(c.br, c.opts.MaxTokenSize)
	for {
		t, err := tr.next()
		if err != nil {
			c.protocolFailure(err)
			return
		}
		switch t.typ {
		case tPING:
			c.write(func(e *encoder) error { e.pong(t.n); return nil })
			continue
		case tPONG:
			continue
		}
		m, err := c.dec.feed(t)
		if err != nil {
			c.protocolFailure(err)
			return
		}
		if m != nil {
			c.handleMessage(m)
		}
	}
}

// protocolFailure tells the peer about a Banana error (ERROR token) before
// dropping the connection.
func (c *Conn) protocolFailure(err error) {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		c.log.Warn("foolscap: protocol error", "peer", shortID(c.peerID), "err", err)
		c.write(func(e *encoder) error { e.bananaError(pe.Msg); return nil })
	}
	c.fail(err)
}

func (c *Conn) handleMessage(m *message) {
	switch m.kind {
	case mCall:
		if m.violation != nil {
			c.log.Info("foolscap: rejected inbound call", "peer", shortID(c.peerID), "err", m.violation)
			if m.haveReq && m.reqID != 0 && !m.aborted {
				c.sendError(m.reqID, NewRemoteViolation(m.violation.Msg))
			}
			return
		}
		select {
		case c.calls <- m:
		default:
			if m.reqID != 0 {
				c.sendError(m.reqID, &RemoteError{Type: pyException, Value: "too many pending calls"})
			}
		}
	case mAnswer, mError:
		if !m.haveReq {
			c.log.Info("foolscap: bad answer", "peer", shortID(c.peerID), "err", m.violation)
			return
		}
		ch := c.takePending(m.reqID)
		if ch == nil {
			return
		}
		switch {
		case m.violation != nil:
			ch <- callResult{err: m.violation}
		case m.kind == mAnswer:
			ch <- callResult{v: m.value}
		default:
			re, ok := m.value.(*RemoteError)
			if !ok {
				re = &RemoteError{Type: "unknown", Value: fmt.Sprintf("%v", m.value)}
			}
			ch <- callResult{err: re}
		}
	default:
		if m.violation != nil {
			c.log.Info("foolscap: discarded message", "peer", shortID(c.peerID), "err", m.violation)
		}
	}
}

func (c *Conn) takePending(reqID int64) chan callResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.pending[reqID]
	delete(c.pending, reqID)
	return ch
}

func (c *Conn) sendError(reqID int64, f *RemoteError) {
	c.write(func(e *encoder) error { e.errorAnswer(reqID, f); return nil })
}

func (c *Conn) dispatch() {
	for {
		select {
		case m := <-c.calls:
			c.runCall(m)
		case <-c.done:
			return
		}
	}
}

func (c *Conn) runCall(m *message) {
	var v Value
	var err error
	if m.target == 0 {
		v, err = c.brokerCall(m)
	} else {
		call := &Call{Conn: c, Method: m.method, Args: m.args, ReqID: m.reqID,
			Kwargs: make(map[string]Value, len(m.kwargs))}
		for _, kw := range m.kwargs {
			call.Kwargs[kw.Name] = kw.Value
		}
		v, err = safeCall(c.ctx, m.obj, call)
	}
	if m.reqID == 0 {
		return
	}
	if err != nil {
		c.sendError(m.reqID, toRemoteError(err))
		return
	}
	werr := c.write(func(e *encoder) error { return e.answer(m.reqID, v) })
	var ee *encodeError
	if errors.As(werr, &ee) {
		c.log.Warn("foolscap: cannot send result", "method", m.method, "err", werr)
		c.sendError(m.reqID, &RemoteError{Type: pyException, Value: "result could not be serialized: " + ee.Error()})
	}
}

func safeCall(ctx context.Context, obj Object, call *Call) (v Value, err error) {
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("panic in remote method %s: %v", call.Method, p)
		}
	}()
	if obj == nil {
		return nil, NewRemoteViolation("no such object")
	}
	return obj.RemoteCall(ctx, call)
}

// brokerCall implements the methods of foolscap's RIBroker (object 0).
func (c *Conn) brokerCall(m *message) (Value, error) {
	call := &Call{Args: m.args, Kwargs: map[string]Value{}}
	for _, kw := range m.kwargs {
		call.Kwargs[kw.Name] = kw.Value
	}
	switch m.method {
	case "getReferenceByName":
		a, _ := call.Arg(0, "name")
		name := valueString(a)
		var obj Object
		ok := false
		if c.names != nil {
			obj, ok = c.names(name)
		}
		if !ok {
			hint := name
			if len(hint) > 2 {
				hint = hint[:2]
			}
			return nil, &RemoteError{Type: pyKeyError, Value: fmt.Sprintf("unable to find reference for name starting with '%s'", hint),
				Parents: []string{pyKeyError, "builtins.LookupError", pyException, "builtins.BaseException", "builtins.object"}}
		}
		return obj, nil
	case "decref":
		a, _ := call.Arg(0, "clid")
		b, _ := call.Arg(1, "count")
		clid, ok1 := a.(int64)
		count, ok2 := b.(int64)
		if !ok1 || !ok2 {
			return nil, NewRemoteViolation("decref needs integer clid and count")
		}
		c.emu.Lock()
		if ex := c.exp.byCLID[clid]; ex != nil {
			ex.refs -= int(count)
			if ex.refs <= 0 {
				delete(c.exp.byCLID, clid)
				if comparable(ex.obj) && c.exp.byObj[ex.obj] == clid {
					delete(c.exp.byObj, ex.obj)
				}
			}
		}
		c.emu.Unlock()
		return nil, nil
	case "decgift":
		return nil, nil // we never send gifts
	}
	return nil, NewRemoteViolation(fmt.Sprintf("method '%s' not defined in RIBroker", m.method))
}

func (c *Conn) callRemote(ctx context.Context, clid int64, method string, args []Value, kwargs map[string]Value, only bool) (Value, error) {
	var reqID int64
	var ch chan callResult
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, c.closedErr()
	}
	if !only {
		c.nextReq++
		reqID = c.nextReq
		ch = make(chan callResult, 1)
		c.pending[reqID] = ch
	}
	c.mu.Unlock()
	if err := c.write(func(e *encoder) error { return e.call(reqID, clid, method, args, kwargs) }); err != nil {
		if !only {
			c.takePending(reqID)
		}
		return nil, err
	}
	if only {
		return nil, nil
	}
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		if c.takePending(reqID) == nil {
			r := <-ch // completed concurrently
			return r.v, r.err
		}
		return nil, ctx.Err()
	}
}

// resolver implementation, called by the decoder on the read goroutine.

func (c *Conn) callTarget(clid int64) (Object, error) {
	if clid == 0 {
		return nil, nil
	}
	c.emu.Lock()
	defer c.emu.Unlock()
	ex := c.exp.byCLID[clid]
	if ex == nil {
		return nil, viol("unknown CLID %d", clid)
	}
	return ex.obj, nil
}

func (c *Conn) yourReference(clid int64) (Value, error) {
	c.emu.Lock()
	defer c.emu.Unlock()
	ex := c.exp.byCLID[clid]
	if ex == nil {
		return nil, viol("unknown clid '%d'", clid)
	}
	return ex.obj, nil
}

func (c *Conn) request(reqID int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[reqID]; !ok {
		return viol("non-existent reqID '%d'", reqID)
	}
	return nil
}

func (c *Conn) myReference(clid int64, iface, url string) (Value, error) {
	if url != "" {
		f, err := ParseFURL(url)
		if err != nil || f.TubID != c.peerID {
			return nil, &ProtocolError{Token: "my-reference", Msg: "inbound reference claims bad tubid"}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	tr := c.refs[clid]
	if tr == nil {
		if len(c.refs) >= c.opts.MaxRemoteRefs {
			return nil, viol("too many remote references (%d)", c.opts.MaxRemoteRefs)
		}
		tr = &refTracker{clid: clid, iface: iface, url: url}
		c.refs[clid] = tr
	} else if tr.iface == "" && iface != "" {
		tr.iface = iface
	}
	r := tr.ref.Value()
	if r == nil || r.released.Load() {
		tr.gen++
		r = &RemoteRef{conn: c, clid: clid, iface: tr.iface, url: tr.url, gen: tr.gen}
		tr.ref = weak.Make(r)
		runtime.AddCleanup(r, c.refLost, refKey{clid, tr.gen})
	}
	tr.count++
	return r, nil
}

// refLost runs when a RemoteRef was released or collected: send the
// decref for everything received so far, keeping the tracker (and its
// interface name) until the peer acknowledges.
func (c *Conn) refLost(k refKey) {
	c.mu.Lock()
	tr := c.refs[k.clid]
	if c.closed || tr == nil || tr.gen != k.gen || tr.count == 0 {
		c.mu.Unlock()
		return
	}
	if r := tr.ref.Value(); r != nil && !r.released.Load() {
		c.mu.Unlock()
		return
	}
	count := tr.count
	tr.count = 0
	c.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
		defer cancel()
		c.broker.CallKw(ctx, "decref", nil, map[string]Value{"clid": k.clid, "count": int64(count)})
		c.mu.Lock()
		if c.refs[k.clid] == tr && tr.count == 0 {
			delete(c.refs, k.clid)
		}
		c.mu.Unlock()
	}()
}

func (c *Conn) keepalive() {
	ka, idle := c.opts.KeepaliveInterval, c.opts.IdleTimeout
	if ka <= 0 && idle <= 0 {
		return
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var lastPing time.Time
	for {
		now := time.Now()
		last := time.Unix(0, c.lastRecv.Load())
		next := time.Duration(1 << 62)
		if idle > 0 {
			if now.Sub(last) >= idle {
				c.log.Info("foolscap: dropping idle connection", "peer", shortID(c.peerID), "silent", now.Sub(last))
				c.fail(ErrIdleTimeout)
				return
			}
			next = min(next, last.Add(idle).Sub(now))
		}
		if ka > 0 {
			due := last.Add(ka)
			if lastPing.After(last) {
				due = lastPing.Add(ka)
			}
			if !now.Before(due) {
				c.write(func(e *encoder) error { e.ping(); return nil })
				lastPing = now
				due = now.Add(ka)
			}
			next = min(next, due.Sub(now))
		}
		timer.Reset(max(next, time.Millisecond))
		select {
		case <-timer.C:
		case <-c.done:
			return
		}
	}
}
