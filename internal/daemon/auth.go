package daemon

import (
	crand "crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"grapevine/announce"
	"grapevine/client"
	"grapevine/client/apitype"
	"grapevine/internal/atomicfile"
)

// TokenFile is the API token's path in the node directory, as Tahoe keeps
// private/api_auth_token: whoever can read it may change the node through
// its status endpoint.
const TokenFile = apitype.TokenFile

// ensureToken returns the node's API token, creating DIR/TokenFile (32
// random bytes in Tahoe's base32, mode 0600) if it is missing. The caller
// holds the directory's lock.
func ensureToken(dir string) (string, error) {
	tok, err := ReadToken(dir)
	if err == nil {
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	var b [32]byte
	if _, err := crand.Read(b[:]); err != nil {
		return "", err
	}
	tok = announce.EncodeBase32(b[:])
	path := filepath.Join(dir, TokenFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing the API token: %w", err)
	}
	return tok, nil
}

// ReadToken reads the API token of the node in dir.
func ReadToken(dir string) (string, error) { return client.ReadToken(dir) }

// guard applies the access rules to h:
//   - a request carrying an Authorization header must carry the node's
//     token ("Bearer TOKEN"), or it is refused with 401;
//   - a request other than GET and HEAD changes the node and needs the
//     token (401 without it);
//   - GET and HEAD without the token are served to loopback clients only,
//     unless status_public is set in grapevine.yaml (403 otherwise),
//     and only under a loopback Host or the status address (421
//     otherwise): a web page whose name an attacker points at 127.0.0.1
//     (DNS rebinding) must not read the status.
func (d *Daemon) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authed := false
		if hdr := r.Header.Get("Authorization"); hdr != "" {
			if !d.tokenMatches(hdr) {
				unauthorized(w, "the API token does not match: send \"Authorization: Bearer TOKEN\" with TOKEN from the node's "+TokenFile)
				return
			}
			authed = true
		}
		readOnly := r.Method == http.MethodGet || r.Method == http.MethodHead
		switch {
		case authed:
		case !readOnly:
			unauthorized(w, r.Method+" "+r.URL.Path+" changes the node and needs its API token: send \"Authorization: Bearer TOKEN\" with TOKEN from the node's "+TokenFile)
			return
		case !d.dir.Config.StatusPublic && !loopback(r.RemoteAddr):
			writeError(w, errorf(apitype.ErrForbidden, "this status endpoint serves loopback clients only: send the API token, or set status_public: true in grapevine.yaml"))
			return
		case !d.dir.Config.StatusPublic && !d.localHost(r.Host):
			writeError(w, errorf(apitype.ErrMisdirected, "this status endpoint answers only to Host localhost, 127.0.0.1, [::1] or its status address "+
				"%s, not %q (a guard against DNS rebinding): use one of those, send the API token, or set status_public: true in grapevine.yaml", d.status, r.Host))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (d *Daemon) tokenMatches(hdr string) bool {
	scheme, tok, ok := strings.Cut(hdr, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || d.token == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(d.token)) == 1
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="grapevine"`)
	writeError(w, errorf(apitype.ErrUnauthorized, "%s", msg))
}

// localHost reports whether a request's Host names this endpoint as a
// local client would: localhost, a loopback address, or the configured or
// actual status address, with any port.
func (d *Daemon) localHost(host string) bool {
	name := hostOnly(host)
	if strings.EqualFold(strings.TrimSuffix(name, "."), "localhost") {
		return true
	}
	if a, err := netip.ParseAddr(name); err == nil && a.Unmap().IsLoopback() {
		return true
	}
	for _, s := range []string{d.dir.Config.Status, d.status} {
		if h := hostOnly(s); h != "" && strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// hostOnly strips the port and brackets from host[:port].
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// loopback reports whether a request's remote address is a loopback one.
func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
