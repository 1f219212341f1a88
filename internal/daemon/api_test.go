package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/nodedir"
	"grapevine/internal/peerbook"
	"grapevine/internal/testkit"
	"grapevine/internal/transport"
)

// apiNode creates a node directory with a loopback status endpoint.
// preset "" is production.
func apiNode(t *testing.T, name, preset string, cfg nodedir.Config) *nodedir.Node {
	t.Helper()
	return apiNodeRules(t, name, nodedir.Rules{Preset: preset}, cfg)
}

func apiNodeRules(t *testing.T, name string, rules nodedir.Rules, cfg nodedir.Config) *nodedir.Node {
	t.Helper()
	cfg.Nickname = name
	cfg.Listen = "127.0.0.1:0"
	cfg.Status = "127.0.0.1:0"
	cfg.Rules = rules
	n, err := nodedir.Create(filepath.Join(t.TempDir(), name), nodedir.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// call makes one request to a daemon's status endpoint; token "" sends
// none.
func call(t *testing.T, d *Daemon, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+d.StatusAddr()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func getJSON(t *testing.T, d *Daemon, path string, out any) {
	t.Helper()
	code, b := call(t, d, "GET", path, "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, b)
	}
}

func token(t *testing.T, d *Daemon) string {
	t.Helper()
	tok, err := ReadToken(d.opt.Dir)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// gammaRecord is a storage announcement without permutation-seed-base32,
// from the key whose seed is 32 bytes of 7: Tahoe falls back to the key.
func gammaRecord(t *testing.T) (announce.Signed, announce.NodeID) {
	t.Helper()
	key, err := announce.NewPrivateKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	body := announce.Build(key, announce.Template{Nickname: "gamma", Service: announce.Service{Name: "storage",
		Fields: []announce.Member{{Key: "anonymous-storage-FURL", Value: announce.Str("pb://gamma@tcp:192.0.2.3:1/s")}}}}, 1)
	body.Members = slices.DeleteFunc(body.Members, func(m announce.Member) bool { return m.Key == "permutation-seed-base32" })
	return announce.Sign(key, body), key.ID()
}

// The live storage servers come back in Tahoe's permuted order: for the
// storage index 00 01 .. 0f, SHA-1 orders alpha, gamma, beta (SHA-256
// would order gamma, alpha, beta); for ff ee .. 00, gamma, alpha, beta
// (SHA-256: gamma, beta, alpha).
func TestPermuted(t *testing.T) {
	// A storage server, which dials no servers, takes imported records as
	// live first sightings; a client would wait until it reached them.
	n := apiNode(t, "server", "", nodedir.Config{Services: []nodedir.ServiceConfig{{Name: "storage", FURL: "pb://self@tcp:127.0.0.1:1/s"}}})
	net := transport.NewMemNetwork()
	d, _ := run(t, Options{Dir: n.Dir, Transport: net.Endpoint(n.Key), Book: peerbook.NewMemory()})
	var recs []announce.Signed
	names := map[string]string{}
	for _, v := range testkit.TahoeVectors(t) {
		if v.Name == "alpha-seq1" || v.Name == "beta-nurls-unicode" {
			recs = append(recs, announce.Signed{Msg: v.Msg, Sig: v.Sig, Key: v.Key})
			names[v.Key] = strings.SplitN(v.Name, "-", 2)[0]
		}
	}
	g, gid := gammaRecord(t)
	recs = append(recs, g)
	names[string(gid)] = "gamma"
	if code, b := call(t, d, "POST", "/v1/import", token(t, d), recs); code != http.StatusOK {
		t.Fatalf("import: %d %s", code, b)
	}
	for _, c := range []struct {
		si   string
		want []string
	}{
		{"aaaqeayeaudaocajbifqydiob4", []string{"alpha", "gamma", "beta"}},
		{"000102030405060708090a0b0c0d0e0f", []string{"alpha", "gamma", "beta"}},
		{"77xn3tf3vkmyq53gkvcdgiqraa", []string{"gamma", "alpha", "beta"}},
	} {
		var p Permuted
		getJSON(t, d, "/v1/permuted?storage_index="+c.si, &p)
		var got []string
		for _, s := range p.Servers {
			got = append(got, names[s.ID])
			wantFrom := "announcement"
			if names[s.ID] == "gamma" {
				wantFrom = "key"
			}
			if s.SeedFrom != wantFrom {
				t.Errorf("%s: seed from %q, want %q", names[s.ID], s.SeedFrom, wantFrom)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("storage index %s: order %v, want %v", c.si, got, c.want)
		}
		if c.si == "aaaqeayeaudaocajbifqydiob4" {
			if p.StorageIndexHex != "000102030405060708090a0b0c0d0e0f" || p.Servers[0].Hash != "6a3152fbdf10607c902461ec10b48d796f1bc557" ||
				p.Servers[0].FURL == "" || p.Servers[1].FURL != "pb://gamma@tcp:192.0.2.3:1/s" {
				t.Errorf("answer %+v", p)
			}
			if names[p.Servers[2].ID] != "beta" || len(p.Servers[2].NURLs) == 0 {
				t.Errorf("beta's NURLs missing: %+v", p.Servers[2])
			}
		}
	}
	if code, b := call(t, d, "GET", "/v1/permuted?storage_index=xyz", "", nil); code != http.StatusBadRequest || !strings.Contains(string(b), "26 base32") {
		t.Errorf("bad storage index: %d %s", code, b)
	}
}

// A client connected to a storage server: /v1/servers lists it live,
// /v1/servers/{prefix} gives its history, POST /v1/forget forgets it with
// the token and only with it.
func TestServersHistoryForget(t *testing.T) {
	net := transport.NewMemNetwork()
	srv := apiNode(t, "srv", "test", nodedir.Config{Services: []nodedir.ServiceConfig{{Name: "storage", FURL: "pb://x@tcp:127.0.0.1:1/s"}}})
	srvTr, err := net.EndpointWith(transport.Options{Key: srv.Key, ListenAddr: "mem:1"})
	if err != nil {
		t.Fatal(err)
	}
	sd, _ := run(t, Options{Dir: srv.Dir, Transport: srvTr, Book: peerbook.NewMemory()})
	cli := apiNode(t, "cli", "test", nodedir.Config{})
	cd, _ := run(t, Options{Dir: cli.Dir, Transport: net.Endpoint(cli.Key), Book: peerbook.NewMemory(), Bootstrap: sd.Locators()})
	waitHolds(t, cd, srv.ID())

	var l ServerList
	getJSON(t, cd, "/v1/servers", &l)
	if l.Known != 1 || l.Connected != 1 || l.Live != 1 || len(l.Servers) != 1 || l.Servers[0].ID != string(srv.ID()) ||
		l.Servers[0].Nickname != "srv" || !l.Servers[0].Live {
		t.Fatalf("servers: %+v", l)
	}

	short := srv.ID().Short()[:5]
	var h ServerHistory
	getJSON(t, cd, "/v1/servers/"+short, &h)
	if h.Server.ID != string(srv.ID()) || len(h.Intervals) != 1 || !h.Intervals[0].Open || h.Intervals[0].End != nil {
		t.Fatalf("history: %+v", h)
	}
	if !slices.ContainsFunc(h.Events, func(e EventStatus) bool { return e.Kind == "connected" }) ||
		slices.ContainsFunc(h.Events, func(e EventStatus) bool { return e.Peer != string(srv.ID()) }) {
		t.Fatalf("history events: %+v", h.Events)
	}
	getJSON(t, cd, "/v1/servers/"+string(srv.ID()), &h)
	for path, want := range map[string]int{
		"/v1/servers/" + string(cli.ID()): http.StatusNotFound, // itself
		"/v1/servers/v0-":                 http.StatusBadRequest,
		"/v1/servers/9":                   http.StatusNotFound, // not base32
	} {
		if code, b := call(t, cd, "GET", path, "", nil); code != want {
			t.Errorf("GET %s: %d %s, want %d", path, code, b, want)
		}
	}

	body := map[string]string{"id": short}
	if code, b := call(t, cd, "POST", "/v1/forget", "", body); code != http.StatusUnauthorized || !strings.Contains(string(b), TokenFile) {
		t.Fatalf("forget without the token: %d %s", code, b)
	}
	if code, b := call(t, cd, "POST", "/v1/forget", "not-the-token", body); code != http.StatusUnauthorized {
		t.Fatalf("forget with a wrong token: %d %s", code, b)
	}
	if code, b := call(t, cd, "POST", "/v1/forget", token(t, sd), body); code != http.StatusUnauthorized {
		t.Fatalf("forget with another node's token: %d %s", code, b)
	}
	code, b := call(t, cd, "POST", "/v1/forget", token(t, cd), body)
	if code != http.StatusOK {
		t.Fatalf("forget: %d %s", code, b)
	}
	var fr ForgetResult
	if err := json.Unmarshal(b, &fr); err != nil {
		t.Fatal(err)
	}
	if fr.ID != string(srv.ID()) || fr.Nickname != "srv" || len(fr.Forgotten) != 1 || fr.Forgotten[0].Reason != "operator" ||
		len(fr.Events) == 0 || fr.Events[0].Kind != "forgot" {
		t.Fatalf("forget answer: %s", b)
	}
	if code, b := call(t, cd, "POST", "/v1/forget", token(t, cd), body); code != http.StatusConflict {
		t.Fatalf("second forget: %d %s", code, b)
	}
	getJSON(t, cd, "/v1/servers/"+short, &h)
	if h.Server.Tombstoned != "operator" || len(h.Forgotten) != 1 {
		t.Fatalf("history after forget: %+v", h)
	}
}

func waitHolds(t *testing.T, d *Daemon, id announce.NodeID) {
	t.Helper()
	eventually(t, d, "a connection to "+string(id)+" with its record held", func() (bool, string) {
		var ok bool
		d.Query(context.Background(), func(n *core.Node) {
			s, _ := n.Server(id)
			ok = n.Holds(id) && s.Connected
		})
		return ok, "not yet"
	})
}

// The token file is made once, 0600, and kept across restarts; the
// access rules hold for loopback and other clients.
func TestAuth(t *testing.T) {
	n := apiNode(t, "n", "", nodedir.Config{})
	d, r := run(t, Options{Dir: n.Dir, Transport: transport.NewMemNetwork().Endpoint(n.Key), Book: peerbook.NewMemory()})
	path := filepath.Join(n.Dir, TokenFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	tok := token(t, d)
	if fi.Mode().Perm() != 0o600 || len(tok) != 52 {
		t.Fatalf("token file mode %v, token %q (want 0600 and 52 base32 characters)", fi.Mode().Perm(), tok)
	}
	r.stop()
	<-r.done
	r.done <- nil
	d, _ = run(t, Options{Dir: n.Dir, Transport: transport.NewMemNetwork().Endpoint(n.Key), Book: peerbook.NewMemory()})
	if token(t, d) != tok {
		t.Fatal("the token changed across a restart")
	}

	h := d.handler()
	do := func(method, remote, auth string, public bool) int {
		d.dir.Config.StatusPublic = public
		req, _ := http.NewRequest(method, "http://localhost/v1/status", nil)
		if method == "POST" {
			req, _ = http.NewRequest(method, "http://localhost/v1/forget", strings.NewReader(`{"id":"v0-"}`))
		}
		req.RemoteAddr = remote
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	for _, c := range []struct {
		method, remote, auth string
		public               bool
		want                 int
	}{
		{"GET", "127.0.0.1:4000", "", false, 200},
		{"GET", "[::1]:4000", "", false, 200},
		{"GET", "192.0.2.7:4000", "", false, 403},
		{"GET", "192.0.2.7:4000", "", true, 200},
		{"GET", "192.0.2.7:4000", "Bearer " + tok, false, 200},
		{"GET", "127.0.0.1:4000", "Bearer wrong", false, 401},
		{"POST", "127.0.0.1:4000", "", false, 401},
		{"POST", "127.0.0.1:4000", "Basic " + tok, false, 401},
		{"POST", "127.0.0.1:4000", "Bearer " + tok, false, 400}, // through to the handler: "v0-" names nothing
		{"POST", "192.0.2.7:4000", "Bearer " + tok, false, 400},
		{"POST", "192.0.2.7:4000", "", true, 401},
	} {
		if got := do(c.method, c.remote, c.auth, c.public); got != c.want {
			t.Errorf("%s from %s auth %q public %v: %d, want %d", c.method, c.remote, c.auth, c.public, got, c.want)
		}
	}
	d.dir.Config.StatusPublic = false
}
