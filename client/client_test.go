package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"grapevine/announce"
	"grapevine/client/apitype"
	"grapevine/core"
)

// fake serves handler and returns a client of it with the token "tok".
func fake(t *testing.T, handler http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return &Client{BaseURL: srv.URL, Token: "tok"}
}

// Each status the API answers with becomes a *Error of its kind, with
// the node's line as its message.
func TestErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		code int
		msg  string
		kind error
	}{
		{400, "want {\"id\": \"v0-...\"}: EOF", ErrBadRequest},
		{401, "the API token does not match", ErrUnauthorized},
		{403, "this status endpoint serves loopback clients only", ErrForbidden},
		{404, "no known server's ID starts with \"zz\"", ErrNotFound},
		{409, "nothing to forget: no records of v0-x are held", ErrConflict},
		{413, "import refused: more than 4096 records; the limit is 4096 per import", ErrImportLimit},
		{421, "this status endpoint answers only to Host localhost", ErrMisdirected},
		{503, "node is read-only: peer book not writable: no space left on device", ErrReadOnly},
		{503, "node is shutting down", ErrShuttingDown},
		{500, "status page: broken", nil},
		{405, "Method Not Allowed", nil},
	} {
		c := fake(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, tc.msg, tc.code) })
		_, err := c.Forget(context.Background(), "v0-x")
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != tc.code || ae.Message != tc.msg || err.Error() != tc.msg {
			t.Errorf("%d %q: got %#v", tc.code, tc.msg, err)
			continue
		}
		if want := fmt.Sprintf("%d %s", tc.code, http.StatusText(tc.code)); ae.Status != want {
			t.Errorf("%d: status %q, want %q", tc.code, ae.Status, want)
		}
		if tc.kind != nil && !errors.Is(err, tc.kind) {
			t.Errorf("%d %q: %v is not %v", tc.code, tc.msg, err, tc.kind)
		}
		for _, other := range []error{ErrBadRequest, ErrUnauthorized, ErrForbidden, ErrNotFound, ErrConflict,
			ErrImportLimit, ErrMisdirected, ErrReadOnly, ErrShuttingDown} {
			if other != tc.kind && errors.Is(err, other) {
				t.Errorf("%d %q: %v is also %v", tc.code, tc.msg, err, other)
			}
		}
		if tc.kind != nil && apitype.StatusCode(tc.kind) != tc.code {
			t.Errorf("apitype.StatusCode(%v) = %d, want %d", tc.kind, apitype.StatusCode(tc.kind), tc.code)
		}
	}
}

// A failed connection is net/http's *url.Error, not a *Error.
func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	_, err := (&Client{BaseURL: base}).Status(context.Background())
	var ue *url.Error
	var ae *Error
	if !errors.As(err, &ue) || errors.As(err, &ae) {
		t.Fatalf("closed endpoint: %#v, want a *url.Error", err)
	}
}

// A 200 that is not the document is an error, not a zero value.
func TestBadAnswer(t *testing.T) {
	c := fake(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>") })
	if _, err := c.Servers(context.Background()); err == nil || !strings.Contains(err.Error(), "GET /v1/servers: bad answer") {
		t.Fatalf("HTML answer: %v", err)
	}
	if _, err := c.GetJSON(context.Background(), "/v1/status"); err == nil {
		t.Fatal("GetJSON took HTML")
	}
}

// Every method sends its endpoint's method, path and body, with the
// token, and decodes the answer.
func TestEndpoints(t *testing.T) {
	type request struct{ method, uri, body, auth, ctype string }
	var got request
	answer := ""
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = request{r.Method, r.URL.RequestURI(), string(b), r.Header.Get("Authorization"), r.Header.Get("Content-Type")}
		io.WriteString(w, answer)
	})
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		call   func() (any, error)
		answer string
		want   request
		check  func(v any) bool
	}{
		{"Status", func() (any, error) { return c.Status(ctx) }, `{"id":"v0-a","known_servers":2}`,
			request{method: "GET", uri: "/v1/status"},
			func(v any) bool { return v.(apitype.Status).ID == "v0-a" && v.(apitype.Status).Known == 2 }},
		{"Servers", func() (any, error) { return c.Servers(ctx) }, `{"live_servers":1,"servers":[{"id":"v0-b"}]}`,
			request{method: "GET", uri: "/v1/servers"},
			func(v any) bool { l := v.(apitype.ServerList); return l.Live == 1 && l.Servers[0].ID == "v0-b" }},
		{"History", func() (any, error) { return c.History(ctx, "ab/c d") }, `{"server":{"id":"v0-abc"}}`,
			request{method: "GET", uri: "/v1/servers/ab%2Fc%20d"},
			func(v any) bool { return v.(apitype.ServerHistory).Server.ID == "v0-abc" }},
		{"Forget", func() (any, error) { return c.Forget(ctx, "abc") }, `{"id":"v0-abc","forgotten":[{"reason":"operator"}]}`,
			request{method: "POST", uri: "/v1/forget", body: `{"id":"abc"}`, ctype: "application/json"},
			func(v any) bool { return v.(apitype.ForgetResult).Forgotten[0].Reason == "operator" }},
		{"Permuted", func() (any, error) { return c.Permuted(ctx, "aaaqeayeaudaocajbifqydiob4") }, `{"storage_index":"aaaqeayeaudaocajbifqydiob4"}`,
			request{method: "GET", uri: "/v1/permuted?storage_index=aaaqeayeaudaocajbifqydiob4"},
			func(v any) bool { return v.(apitype.Permuted).StorageIndex == "aaaqeayeaudaocajbifqydiob4" }},
		{"Members", func() (any, error) { return c.Members(ctx) }, `{"grid":"v0-f","invites":[{"issuer":"v0-f","subject":"v0-m"}]}`,
			request{method: "GET", uri: "/v1/members"},
			func(v any) bool { return v.(apitype.Members).Invites[0].Subject == "v0-m" }},
		{"Invite", func() (any, error) { return c.Invite(ctx, 2, "7d") }, `{"code":"gv-1","id":"i1","uses":2,"expires":"2030-01-02T03:04:05Z"}`,
			request{method: "POST", uri: "/v1/invites", body: `{"uses":2,"expires":"7d"}`, ctype: "application/json"},
			func(v any) bool {
				i := v.(apitype.InviteCode)
				return i.Code == "gv-1" && i.Uses == 2 && i.Expires.Year() == 2030
			}},
		{"Revoke", func() (any, error) { return c.Revoke(ctx, "v0-m") }, `{"revocations":["r1"]}`,
			request{method: "POST", uri: "/v1/revoke", body: `{"member":"v0-m"}`, ctype: "application/json"},
			func(v any) bool { return len(v.(apitype.Revoked).Revocations) == 1 }},
		{"TahoeServers", func() (any, error) { return c.TahoeServers(ctx) }, `{"id":"v0-a","servers":[{"id":"v0-s","live":true}]}`,
			request{method: "GET", uri: "/v1/tahoe/servers"},
			func(v any) bool { return v.(apitype.TahoeView).Servers[0].Live }},
		{"Import", func() (any, error) { return c.Import(ctx, []announce.Signed{{Msg: "m", Sig: "s", Key: "k"}}) }, `[{"Seq":7,"Kind":"accepted"}]`,
			request{method: "POST", uri: "/v1/import", body: `[{"msg":"m","sig":"s","key":"k"}]`, ctype: "application/json"},
			func(v any) bool {
				e := v.([]core.Event)
				return len(e) == 1 && e[0].Seq == 7 && e[0].Kind == core.EvAccepted
			}},
		{"GetJSON", func() (any, error) { return c.GetJSON(ctx, "/v1/status") }, ` {"id": "v0-a"}`,
			request{method: "GET", uri: "/v1/status"},
			func(v any) bool { return string(v.(json.RawMessage)) == `{"id": "v0-a"}` }},
	} {
		answer = tc.answer
		tc.want.auth = "Bearer tok"
		v, err := tc.call()
		if err != nil || got != tc.want || !tc.check(v) {
			t.Errorf("%s: sent %+v, want %+v; got %+v, %v", tc.name, got, tc.want, v, err)
		}
	}
}

// Without a token no Authorization header is sent.
func TestNoToken(t *testing.T) {
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Authorization"]; ok {
			http.Error(w, "the API token does not match", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{}`)
	})
	c.Token = ""
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A large import goes in requests under both limits; a failure after the
// first is a *PartialImportError that keeps the kind of the failure.
func TestImportBatches(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  announce.Signed
		n    int
	}{
		{"bytes", announce.Signed{Msg: strings.Repeat("m", 12<<10), Sig: "s", Key: "k"}, 1500}, // about 18 MiB of JSON
		{"records", announce.Signed{Msg: "m", Sig: "s", Key: "k"}, 2*apitype.MaxImport + 1},
	} {
		var sizes []int
		c := fake(t, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			var recs []announce.Signed
			if err := json.Unmarshal(b, &recs); err != nil || len(b) > apitype.MaxImportBody || len(recs) > apitype.MaxImport {
				http.Error(w, "import refused", http.StatusRequestEntityTooLarge)
				return
			}
			sizes = append(sizes, len(recs))
			json.NewEncoder(w).Encode([]core.Event{{Kind: core.EvAccepted}})
		})
		recs := make([]announce.Signed, tc.n)
		for i := range recs {
			recs[i] = tc.rec
		}
		evs, err := c.Import(context.Background(), recs)
		total := 0
		for _, s := range sizes {
			total += s
		}
		if err != nil || total != tc.n || len(sizes) < 2 || len(evs) != len(sizes) {
			t.Errorf("%s: %d requests of %v records, %d events, %v", tc.name, len(sizes), sizes, len(evs), err)
		}
	}

	calls := 0
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		if calls++; calls > 1 {
			http.Error(w, "node is read-only: peer book not writable", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `[]`)
	})
	recs := make([]announce.Signed, apitype.MaxImport+1)
	_, err := c.Import(context.Background(), recs)
	var pe *PartialImportError
	if !errors.As(err, &pe) || pe.Imported != apitype.MaxImport || !errors.Is(err, ErrReadOnly) ||
		err.Error() != "node is read-only: peer book not writable (the first 4096 records were imported)" {
		t.Fatalf("second request refused: %v", err)
	}
}

// ForDir reads the URL and the token from the node directory.
func TestForDir(t *testing.T) {
	dir := t.TempDir()
	if _, err := ForDir(dir); err == nil {
		t.Fatal("ForDir without run/status")
	}
	for path, data := range map[string]string{apitype.StatusURLFile: "http://127.0.0.1:1234\n", apitype.TokenFile: "secret\n"} {
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := ForDir(dir)
	if err != nil || c.BaseURL != "http://127.0.0.1:1234" || c.Token != "secret" {
		t.Fatalf("ForDir: %+v %v", c, err)
	}
	os.WriteFile(filepath.Join(dir, apitype.TokenFile), []byte("\n"), 0o600)
	if _, err := ReadToken(dir); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("empty token: %v", err)
	}
	if c, err := ForDir(dir); err != nil || c.Token != "" {
		t.Fatalf("ForDir with an empty token: %+v %v", c, err)
	}
}
