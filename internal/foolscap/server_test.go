package foolscap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond (state changed by another goroutine) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// echoObject answers "echo" with its arguments, "fail" with an error,
// "boom" with a panic and "callback" by calling arg 0.
type echoObject struct {
	mu   sync.Mutex
	refs []*RemoteRef
}

func (o *echoObject) RemoteInterfaceName() string { return "RIEcho.test" }

func (o *echoObject) RemoteCall(ctx context.Context, c *Call) (Value, error) {
	switch c.Method {
	case "echo":
		kw := Dict{}
		for k, v := range c.Kwargs {
			kw = append(kw, KV{k, v})
		}
		return Tuple{List(c.Args), kw}, nil
	case "fail":
		return nil, errors.New("it failed")
	case "typed":
		return nil, &RemoteError{Type: "builtins.ValueError", Value: "typed failure",
			Parents: []string{"builtins.ValueError", "builtins.Exception"}}
	case "boom":
		panic("kaboom")
	case "keep":
		r := c.Args[0].(*RemoteRef)
		o.mu.Lock()
		o.refs = append(o.refs, r)
		o.mu.Unlock()
		return nil, nil
	case "callback":
		r := c.Args[0].(*RemoteRef)
		return r.Call(ctx, "ping", c.Args[1:]...)
	case "unserializable":
		return make(chan int), nil
	}
	return nil, NewRemoteViolation("no method " + c.Method)
}

type pinger struct{ calls atomic.Int32 }

func (p *pinger) RemoteCall(ctx context.Context, c *Call) (Value, error) {
	p.calls.Add(1)
	if c.Method == "ping" {
		return List(c.Args), nil
	}
	return nil, fmt.Errorf("unexpected %s", c.Method)
}

func TestGoClientServer(t *testing.T) {
	for _, serverMaster := range []bool{true, false} {
		t.Run(fmt.Sprintf("serverMaster=%v", serverMaster), func(t *testing.T) {
			srvTub, cliTub := orderedTubs(t, serverMaster)
			obj := &echoObject{}
			srv, furl := startServer(t, srvTub, obj, Options{})
			ctx := testCtx(t)
			ref, err := Dial(ctx, cliTub, furl, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if ref.InterfaceName() != "RIEcho.test" || ref.CLID() != 1 {
				t.Fatalf("ref %v", ref)
			}
			// a second Dial reuses the connection and the same CLID
			ref2, err := Dial(ctx, cliTub, furl, Options{})
			if err != nil || ref2 != ref {
				t.Fatalf("second dial: %v %v vs %v", err, ref2, ref)
			}
			v, err := ref.CallKw(ctx, "echo", []Value{Tuple{bs("a"), bs("b"), bs("c")}, "str", int64(-5), 2.5, nil, true},
				map[string]Value{"k": Set{bs("x")}})
			if err != nil {
				t.Fatal(err)
			}
			want := Tuple{List{Tuple{bs("a"), bs("b"), bs("c")}, "str", int64(-5), 2.5, nil, true}, Dict{{"k", Set{bs("x")}}}}
			if !valuesEqual(v, want) {
				t.Fatalf("echo = %#v", v)
			}
			var re *RemoteError
			if _, err := ref.Call(ctx, "fail"); !errors.As(err, &re) || re.Value != "it failed" || !re.Check("builtins.Exception") {
				t.Fatalf("fail: %v", err)
			}
			if _, err := ref.Call(ctx, "typed"); !errors.As(err, &re) || !re.Check("builtins.ValueError") {
				t.Fatalf("typed: %v", err)
			}
			if _, err := ref.Call(ctx, "boom"); !errors.As(err, &re) || !strings.Contains(re.Value, "kaboom") {
				t.Fatalf("panic: %v", err)
			}
			if _, err := ref.Call(ctx, "unserializable"); !errors.As(err, &re) || !strings.Contains(re.Value, "could not be serialized") {
				t.Fatalf("unserializable: %v", err)
			}
			if _, err := ref.Call(ctx, "nope"); !errors.As(err, &re) || !re.Check(pyViolation) {
				t.Fatalf("unknown method: %v", err)
			}
			// unknown CLID: a Violation answer, the connection stays up
			if _, err := ref.conn.callRemote(ctx, 99, "echo", nil, nil, false); !errors.As(err, &re) || !strings.Contains(re.Value, "unknown CLID 99") {
				t.Fatalf("unknown clid: %v", err)
			}
			// the server calls back into an object we send
			p := &pinger{}
			v, err = ref.Call(ctx, "callback", p, bs("hi"))
			if err != nil || !valuesEqual(v, List{bs("hi")}) {
				t.Fatalf("callback = %#v, %v", v, err)
			}
			// call-only: no answer
			if err := ref.CallOnly("echo"); err != nil {
				t.Fatal(err)
			}
			// sending a RemoteRef back home turns into the original object
			if _, err := ref.Call(ctx, "keep", p); err != nil {
				t.Fatal(err)
			}
			if _, err := ref.Call(ctx, "keep", p); err != nil {
				t.Fatal(err)
			}
			obj.mu.Lock()
			r0, r1 := obj.refs[0], obj.refs[1]
			obj.mu.Unlock()
			if r0 != r1 {
				t.Fatal("same object gave two RemoteRefs")
			}
			conns := srv.Conns()
			if len(conns) != 1 || conns[0].PeerTubID() != cliTub.ID() {
				t.Fatalf("server conns %v", conns)
			}
			// Release sends a decref; the client then forgets the export.
			cc := ref.Conn()
			exports := func() int {
				cc.emu.Lock()
				defer cc.emu.Unlock()
				return len(cc.exp.byCLID)
			}
			if exports() != 1 {
				t.Fatalf("client exports = %d", exports())
			}
			r0.Release()
			if _, err := r0.Call(ctx, "ping"); !errors.Is(err, ErrReleased) {
				t.Fatalf("call after release: %v", err)
			}
			waitFor(t, "decref", func() bool { return exports() == 0 })

			srv.Close()
			select {
			case <-cc.Done():
			case <-ctx.Done():
				t.Fatal("client conn not closed after server Close")
			}
			if _, err := ref.Call(ctx, "echo"); !errors.Is(err, ErrConnClosed) {
				t.Fatalf("call on closed conn: %v", err)
			}
		})
	}
}

func TestRemoteRefGarbageCollected(t *testing.T) {
	srvTub, _ := NewTub()
	cliTub, _ := NewTub()
	srv, furl := startServer(t, srvTub, &echoObject{}, Options{})
	_ = srv
	ctx := testCtx(t)
	ref, err := Dial(ctx, cliTub, furl, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// "callback" does not keep the RemoteRef it receives
	if _, err := ref.Call(ctx, "callback", &pinger{}); err != nil {
		t.Fatal(err)
	}
	cc := ref.Conn()
	waitFor(t, "decref after GC", func() bool {
		runtime.GC()
		cc.emu.Lock()
		defer cc.emu.Unlock()
		return len(cc.exp.byCLID) == 0
	})
}

func TestPlaintextRejects(t *testing.T) {
	srvTub, _ := NewTub()
	_, furl := startServer(t, srvTub, &echoObject{}, Options{HandshakeTimeout: 300 * time.Millisecond})
	f, _ := ParseFURL(furl)
	addr, _ := tcpHintAddr(f.Hints[0])
	for _, c := range []struct{ req, want string }{
		{"GET /id/" + strings.Repeat("a", 32) + " HTTP/1.1\r\nUpgrade: TLS/1.0\r\n\r\n", "unknown TubID"},
		{"GET /index.html HTTP/1.1\r\n\r\n", "not a foolscap request"},
		{"GET /id/ HTTP/1.1\r\n\r\n", "secure Tubs require encryption"},
	} {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write([]byte(c.req))
		resp, _ := io.ReadAll(nc)
		nc.Close()
		if !strings.HasPrefix(string(resp), "HTTP/1.1 500 ") || !strings.Contains(string(resp), c.want) {
			t.Errorf("%q: response %q", c.req, resp)
		}
	}
	// silence: the handshake timeout closes the connection
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after handshake timeout: %v", err)
	}
}

func TestWrongTubIDFromClient(t *testing.T) {
	srvTub, _ := NewTub()
	other, _ := NewTub()
	_, furl := startServer(t, srvTub, &echoObject{}, Options{})
	f, _ := ParseFURL(furl)
	f.TubID = other.ID()
	cliTub, _ := NewTub()
	_, err := Dial(testCtx(t), cliTub, f.String(), Options{})
	if err == nil || !strings.Contains(err.Error(), "unknown TubID") {
		t.Fatalf("err = %v", err)
	}
}

func TestMaxConnections(t *testing.T) {
	srvTub, _ := NewTub()
	_, furl := startServer(t, srvTub, &echoObject{}, Options{MaxConnections: 1})
	f, _ := ParseFURL(furl)
	addr, _ := tcpHintAddr(f.Hints[0])
	first, err := net.Dial("tcp", addr) // occupies the only slot (handshaking)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := second.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("second connection: %v", err)
	}
}

func TestProtocolErrorSendsERROR(t *testing.T) {
	srvTub, _ := NewTub()
	cliTub, _ := NewTub()
	_, furl := startServer(t, srvTub, &echoObject{}, Options{})
	ctx := testCtx(t)
	ref, err := Dial(ctx, cliTub, furl, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := ref.Conn()
	c.wmu.Lock()
	c.nc.Write([]byte{0x05, 0x81}) // a bare INT at top level
	c.wmu.Unlock()
	<-c.Done()
	var pe *PeerError
	if !errors.As(c.Err(), &pe) || !strings.Contains(pe.Msg, "top-level must be OPEN") {
		t.Fatalf("client err = %v", c.Err())
	}
}

// proxy forwards TCP both ways until frozen, then swallows all data (a
// peer that vanished without a reset). It counts server->client writes.
type proxy struct {
	ln       net.Listener
	frozen   atomic.Bool
	toClient atomic.Int64
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				return
			}
			t.Cleanup(func() { c.Close(); s.Close() })
			go p.pipe(s, c, &p.toClient)
			go p.pipe(c, s, nil)
		}
	}()
	return p
}

func (p *proxy) pipe(dst, src net.Conn, count *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if p.frozen.Load() {
			continue
		}
		if count != nil {
			count.Add(1)
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func TestKeepaliveAndIdleTimeout(t *testing.T) {
	srvTub, _ := NewTub()
	cliTub, _ := NewTub()
	srv, furl := startServer(t, srvTub, &echoObject{},
		Options{KeepaliveInterval: 30 * time.Millisecond, IdleTimeout: 250 * time.Millisecond})
	f, _ := ParseFURL(furl)
	target, _ := tcpHintAddr(f.Hints[0])
	px := newProxy(t, target)
	f.Hints = []string{"tcp:" + px.ln.Addr().String()}
	ctx := testCtx(t)
	// the client never pings by itself, it only answers
	ref, err := Dial(ctx, cliTub, f.String(), Options{KeepaliveInterval: -1, IdleTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	var sc *Conn
	waitFor(t, "server conn", func() bool {
		if cs := srv.Conns(); len(cs) == 1 {
			sc = cs[0]
			return true
		}
		return false
	})
	// PINGs flow while idle and PONGs keep the connection alive past the
	// idle timeout
	start := px.toClient.Load()
	began := time.Now()
	waitFor(t, "pings", func() bool { return px.toClient.Load()-start >= 12 && time.Since(began) > 300*time.Millisecond })
	select {
	case <-sc.Done():
		t.Fatalf("connection died despite PONGs: %v", sc.Err())
	default:
	}
	if _, err := ref.Call(ctx, "echo"); err != nil {
		t.Fatal(err)
	}
	px.frozen.Store(true)
	select {
	case <-sc.Done():
	case <-ctx.Done():
		t.Fatal("silent peer not dropped")
	}
	if !errors.Is(sc.Err(), ErrIdleTimeout) {
		t.Fatalf("err = %v", sc.Err())
	}
}

func TestDuplicateConnections(t *testing.T) {
	srvTub, cliTub := orderedTubs(t, true) // server is master
	srv, furl := startServer(t, srvTub, &echoObject{}, Options{})
	f, _ := ParseFURL(furl)
	addr, _ := tcpHintAddr(f.Hints[0])
	ctx := testCtx(t)
	opts := Options{}.withDefaults()
	a, err := dialConn(ctx, cliTub, srvTub.ID(), addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "server conn", func() bool { return len(srv.Conns()) == 1 })
	old := srv.Conns()[0]

	// a parallel attempt that knows of no previous connection is refused
	cliTub.mu.Lock()
	saved := cliTub.slaveTable[srvTub.ID()]
	delete(cliTub.slaveTable, srvTub.ID())
	cliTub.mu.Unlock()
	if _, err := dialConn(ctx, cliTub, srvTub.ID(), addr, opts); err == nil || !strings.Contains(err.Error(), "Duplicate connection") {
		t.Fatalf("parallel connection: %v", err)
	}
	// a reconnect that knows the current connection replaces it (the
	// peer thinks the old one is dead)
	cliTub.mu.Lock()
	cliTub.slaveTable[srvTub.ID()] = saved
	cliTub.mu.Unlock()
	b, err := dialConn(ctx, cliTub, srvTub.ID(), addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	<-old.Done()
	if !errors.Is(old.Err(), ErrReplaced) {
		t.Fatalf("old server conn err = %v", old.Err())
	}
	<-a.Done()
	// a restarted peer (new incarnation, same key) also replaces it
	restarted, _ := TubFromPEM(cliTub.PEM())
	waitFor(t, "one server conn", func() bool { return len(srv.Conns()) == 1 })
	cur := srv.Conns()[0]
	if _, err := dialConn(ctx, restarted, srvTub.ID(), addr, opts); err != nil {
		t.Fatal(err)
	}
	<-cur.Done()
	<-b.Done()
}

func TestServeAfterClose(t *testing.T) {
	tub, _ := NewTub()
	srv := NewServer(tub, Options{})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	srv.Close()
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := srv.Serve(ln2); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Close returned %v", err)
	}
}

func TestNegotiationBlocks(t *testing.T) {
	b := formatBlock(map[string]string{"my-tub-id": "x", "Banana-Negotiation-Range": "3 3"})
	if string(b) != "banana-negotiation-range: 3 3\r\nmy-tub-id: x\r\n\r\n" {
		t.Fatalf("%q", b)
	}
	m, err := readBlockString(string(b) + "rest")
	if err != nil || m["my-tub-id"] != "x" || m["banana-negotiation-range"] != "3 3" {
		t.Fatalf("%v %v", m, err)
	}
	if _, err := readBlockString(strings.Repeat("a", 5000)); err == nil {
		t.Fatal("oversized block accepted")
	}
	if _, err := parseBlock("no colon here"); err == nil {
		t.Fatal("malformed line accepted")
	}
}

func readBlockString(s string) (map[string]string, error) {
	blk, err := readBlock(bufio.NewReader(strings.NewReader(s)))
	if err != nil {
		return nil, err
	}
	return parseBlock(blk)
}

func TestReferenceWithForeignFURL(t *testing.T) {
	srvTub, _ := NewTub()
	cliTub, _ := NewTub()
	other, _ := NewTub()
	_, furl := startServer(t, srvTub, &echoObject{}, Options{})
	ctx := testCtx(t)
	ref, err := Dial(ctx, cliTub, furl, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := ref.Conn()
	good := &refPlaceholder{CLID: 5, Interface: "RIx", URL: FormatFURL(cliTub.ID(), nil, "n"), Extra: 2}
	if err := c.write(func(e *encoder) error { return e.call(0, ref.CLID(), "keep", []Value{good}, nil) }); err != nil {
		t.Fatal(err)
	}
	if _, err := ref.Call(ctx, "echo"); err != nil {
		t.Fatalf("after a valid my-reference with FURL: %v", err)
	}
	bad := &refPlaceholder{CLID: 6, Interface: "RIx", URL: FormatFURL(other.ID(), nil, "n"), Extra: 2}
	c.write(func(e *encoder) error { return e.call(0, ref.CLID(), "keep", []Value{bad}, nil) })
	<-c.Done()
	var pe *PeerError
	if !errors.As(c.Err(), &pe) || !strings.Contains(pe.Msg, "claims bad tubid") {
		t.Fatalf("client err = %v", c.Err())
	}
}
