package foolscap

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Dial returns a reference to the object named by furl. Like foolscap's
// getReference it reuses a live connection to the FURL's tub (made by Dial
// or accepted by a Server on the same Tub); otherwise it connects to the
// tcp hints in order. This is a minimal client: no reconnection, tcp only.
func Dial(ctx context.Context, tub *Tub, furl string, opts Options) (*RemoteRef, error) {
	opts = opts.withDefaults()
	f, err := ParseFURL(furl)
	if err != nil {
		return nil, err
	}
	tub.mu.Lock()
	c := tub.conns[f.TubID]
	tub.mu.Unlock()
	if c == nil || c.isClosed() || !c.started.Load() {
		c = nil
		var lastErr error = errors.New("foolscap: FURL has no usable connection hints")
		for _, h := range f.Hints {
			addr, ok := tcpHintAddr(h)
			if !ok {
				continue
			}
			if c, lastErr = dialConn(ctx, tub, f.TubID, addr, opts); lastErr == nil {
				break
			}
		}
		if c == nil {
			return nil, lastErr
		}
	}
	v, err := c.broker.CallKw(ctx, "getReferenceByName", nil, map[string]Value{"name": []byte(f.Name)})
	if err != nil {
		return nil, err
	}
	r, ok := v.(*RemoteRef)
	if !ok {
		return nil, fmt.Errorf("foolscap: getReferenceByName returned %T", v)
	}
	return r, nil
}

// tcpHintAddr turns "tcp:HOST:PORT" (or legacy "HOST:PORT") into an address.
func tcpHintAddr(h string) (string, bool) {
	if rest, ok := strings.CutPrefix(h, "tcp:"); ok {
		h = rest
	} else if strings.Count(h, ":") != 1 {
		return "", false
	}
	i := strings.LastIndexByte(h, ':')
	if i <= 0 {
		return "", false
	}
	host := strings.TrimSuffix(strings.TrimPrefix(h[:i], "["), "]")
	return net.JoinHostPort(host, h[i+1:]), true
}

func dialConn(ctx context.Context, tub *Tub, target, addr string, opts Options) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.HandshakeTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: -1} // our PING and idle timeout do its work
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	dl, _ := ctx.Deadline()
	nc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	br := bufio.NewReaderSize(nc, maxBlockSize)
	if err := clientPlaintext(nc, br, target, addr); err != nil {
		nc.Close()
		return nil, err
	}
	tc := tls.Client(&bufferedConn{Conn: nc, r: br}, tlsClientConfig(tub))
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	peer, err := peerTubID(tc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c := newConn(tub, nc, tc, opts, true, nil)
	c.peerID, c.target = peer, target
	if err := c.encrypted(ctx); err != nil {
		c.fail(err)
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	c.start()
	return c, nil
}
