// Package client talks to a running Grapevine node through the JSON API of
// its status endpoint (docs/api.md): one method per endpoint, answers
// decoded into the documents of package apitype, and failures returned
// as a *Error that matches the kind of its status (errors.Is(err,
// ErrReadOnly), ...).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"grapevine/announce"
	"grapevine/client/apitype"
	"grapevine/core"
)

// The kinds of failure, as in package apitype: a *Error matches the one
// of its status.
var (
	ErrBadRequest   = apitype.ErrBadRequest   // 400
	ErrUnauthorized = apitype.ErrUnauthorized // 401
	ErrForbidden    = apitype.ErrForbidden    // 403
	ErrNotFound     = apitype.ErrNotFound     // 404
	ErrConflict     = apitype.ErrConflict     // 409
	ErrImportLimit  = apitype.ErrImportLimit  // 413
	ErrMisdirected  = apitype.ErrMisdirected  // 421
	ErrReadOnly     = apitype.ErrReadOnly     // 503, "node is read-only: ..."
	ErrShuttingDown = apitype.ErrShuttingDown // 503 otherwise
)

// maxAnswer bounds the answer read to one request.
const maxAnswer = 16 << 20

// Client is a client of one node's status endpoint. The zero value is not
// usable: set BaseURL, or use ForDir.
type Client struct {
	// BaseURL is the status endpoint, such as "http://127.0.0.1:8080"
	// (what the node writes to DIR/run/status).
	BaseURL string
	// Token is the node's API token; without it, reads are served to
	// loopback clients only and writes are refused with ErrUnauthorized.
	Token string
	// HTTPClient sends the requests; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// ForDir returns a client of the node running in dir: the status
// endpoint from DIR/run/status and, if it can be read, the API token
// from DIR/private/api_auth_token.
func ForDir(dir string) (*Client, error) {
	b, err := os.ReadFile(filepath.Join(dir, apitype.StatusURLFile))
	if err != nil {
		return nil, fmt.Errorf("%s has no status endpoint (the node is not running, or has no status in grapevine.yaml): %w", dir, err)
	}
	tok, _ := ReadToken(dir)
	return &Client{BaseURL: strings.TrimSpace(string(b)), Token: tok}, nil
}

// ReadToken reads the API token of the node in dir.
func ReadToken(dir string) (string, error) {
	path := filepath.Join(dir, apitype.TokenFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s is empty: delete it and restart the node to make a new token", path)
	}
	return tok, nil
}

// Error is a request the node answered with a status other than 200.
// It matches (errors.Is) the kind of its status, if there is one.
type Error struct {
	Code    int    // the HTTP status code
	Status  string // the status line, such as "503 Service Unavailable"
	Message string // the answer's line of text, for a person
	kind    error
}

// Error is the node's message, or the status if it sent none.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Status
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.kind }

// PartialImportError is an import sent in several requests that failed
// after the node admitted the first Imported records.
type PartialImportError struct {
	Imported int
	Err      error
}

func (e *PartialImportError) Error() string {
	return fmt.Sprintf("%v (the first %d records were imported)", e.Err, e.Imported)
}

func (e *PartialImportError) Unwrap() error { return e.Err }

// Status returns GET /v1/status: the node's whole status.
func (c *Client) Status(ctx context.Context) (apitype.Status, error) {
	var st apitype.Status
	return st, c.call(ctx, http.MethodGet, "/v1/status", nil, &st)
}

// Servers returns GET /v1/servers: every known server, live ones first.
func (c *Client) Servers(ctx context.Context) (apitype.ServerList, error) {
	var l apitype.ServerList
	return l, c.call(ctx, http.MethodGet, "/v1/servers", nil, &l)
}

// History returns GET /v1/servers/{key}: the history of the server whose
// ID is key or starts with it (ErrNotFound: none; ErrConflict: several).
func (c *Client) History(ctx context.Context, key string) (apitype.ServerHistory, error) {
	var h apitype.ServerHistory
	return h, c.call(ctx, http.MethodGet, "/v1/servers/"+url.PathEscape(key), nil, &h)
}

// Forget makes the node forget the server key names now (POST
// /v1/forget); it needs the token.
func (c *Client) Forget(ctx context.Context, key string) (apitype.ForgetResult, error) {
	var out apitype.ForgetResult
	return out, c.call(ctx, http.MethodPost, "/v1/forget", apitype.ForgetRequest{ID: key}, &out)
}

// Permuted returns GET /v1/permuted: the live storage servers in Tahoe's
// order for storageIndex (26 base32 characters or 32 hex digits).
func (c *Client) Permuted(ctx context.Context, storageIndex string) (apitype.Permuted, error) {
	var p apitype.Permuted
	return p, c.call(ctx, http.MethodGet, "/v1/permuted?storage_index="+url.QueryEscape(storageIndex), nil, &p)
}

// Import admits signed records (POST /v1/import), in as many requests as
// MaxImport and MaxImportBody take, and returns the node's decisions. It
// needs the token. A failure after the first request is a
// *PartialImportError, returned with the decisions so far.
func (c *Client) Import(ctx context.Context, recs []announce.Signed) ([]core.Event, error) {
	var evs []core.Event
	for done := 0; done < len(recs); {
		body, n := importBatch(recs[done:])
		var got []core.Event
		if err := c.call(ctx, http.MethodPost, "/v1/import", json.RawMessage(body), &got); err != nil {
			if done > 0 {
				err = &PartialImportError{Imported: done, Err: err}
			}
			return evs, err
		}
		evs = append(evs, got...)
		done += n
	}
	return evs, nil
}

// importBatch encodes the first records of recs that fit in one request,
// at least one, and says how many.
func importBatch(recs []announce.Signed) ([]byte, int) {
	body := []byte{'['}
	n := 0
	for _, r := range recs[:min(len(recs), apitype.MaxImport)] {
		b, _ := json.Marshal(r)
		if n > 0 && len(body)+len(b)+2 > apitype.MaxImportBody {
			break
		}
		if n > 0 {
			body = append(body, ',')
		}
		body = append(body, b...)
		n++
	}
	return append(body, ']'), n
}

// Members returns GET /v1/members: the invitation tree of a closed grid
// (ErrConflict in an open one).
func (c *Client) Members(ctx context.Context) (apitype.Members, error) {
	var m apitype.Members
	return m, c.call(ctx, http.MethodGet, "/v1/members", nil, &m)
}

// Invite makes an invite code for uses nodes, valid for expires ("7d")
// on the node's clock (POST /v1/invites); it needs the token.
func (c *Client) Invite(ctx context.Context, uses int, expires string) (apitype.InviteCode, error) {
	var out apitype.InviteCode
	return out, c.call(ctx, http.MethodPost, "/v1/invites", apitype.InviteRequest{Uses: uses, Expires: expires}, &out)
}

// Revoke revokes the certificates the node issued to member (POST
// /v1/revoke); it needs the token.
func (c *Client) Revoke(ctx context.Context, member string) (apitype.Revoked, error) {
	var out apitype.Revoked
	return out, c.call(ctx, http.MethodPost, "/v1/revoke", apitype.RevokeRequest{Member: member}, &out)
}

// TahoeServers returns GET /v1/tahoe/servers: the storage servers whose
// signed records the node holds, and the hints imported from Tahoe.
func (c *Client) TahoeServers(ctx context.Context) (apitype.TahoeView, error) {
	var v apitype.TahoeView
	return v, c.call(ctx, http.MethodGet, "/v1/tahoe/servers", nil, &v)
}

// GetJSON returns the JSON answer to a GET of path (such as "/v1/status")
// as the node sent it.
func (c *Client) GetJSON(ctx context.Context, path string) (json.RawMessage, error) {
	var raw json.RawMessage
	return raw, c.call(ctx, http.MethodGet, path, nil, &raw)
}

// call sends body as JSON, if not nil (a json.RawMessage as it is), and
// decodes the JSON answer into out. A failure to connect is the
// *url.Error of net/http; an answer other than 200 is a *Error.
func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, ok := body.(json.RawMessage)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return err
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(data))
		return &Error{Code: resp.StatusCode, Status: resp.Status, Message: msg, kind: apitype.KindOf(resp.StatusCode, msg)}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: bad answer: %w", method, path, err)
	}
	return nil
}
