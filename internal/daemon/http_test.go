package daemon

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"grapevine/internal/nodedir"
	"grapevine/internal/peerbook"
	"grapevine/internal/transport"
)

func getHost(t *testing.T, d *Daemon, host, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+d.StatusAddr()+"/v1/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// With status_public off, a request naming another host (a DNS
// rebinding page's) is refused even from loopback.
func TestStatusHostCheck(t *testing.T) {
	n := apiNode(t, "host", "test", nodedir.Config{})
	d, _ := run(t, Options{Dir: n.Dir, Transport: transport.NewMemNetwork().Endpoint(n.Key), Book: peerbook.NewMemory()})
	_, port, _ := net.SplitHostPort(d.StatusAddr())
	for _, c := range []struct {
		host string
		want int
	}{
		{"evil.example", http.StatusMisdirectedRequest},
		{"evil.example:" + port, http.StatusMisdirectedRequest},
		{"localhost.evil.example", http.StatusMisdirectedRequest},
		{"10.0.0.1:" + port, http.StatusMisdirectedRequest},
		{"localhost", http.StatusOK},
		{"LOCALHOST:" + port, http.StatusOK},
		{"127.0.0.1:" + port, http.StatusOK},
		{"127.1.2.3:80", http.StatusOK},
		{"[::1]:" + port, http.StatusOK},
		{d.StatusAddr(), http.StatusOK},
	} {
		code, body := getHost(t, d, c.host, "")
		if code != c.want {
			t.Errorf("Host %q: %d %s, want %d", c.host, code, body, c.want)
		}
		if code == http.StatusMisdirectedRequest && !strings.Contains(body, "DNS rebinding") {
			t.Errorf("Host %q: refusal %q does not say why", c.host, body)
		}
	}
	if code, body := getHost(t, d, "evil.example", token(t, d)); code != http.StatusOK {
		t.Errorf("Host evil.example with the API token: %d %s, want 200", code, body)
	}

	pub := apiNode(t, "public", "test", nodedir.Config{StatusPublic: true})
	dp, _ := run(t, Options{Dir: pub.Dir, Transport: transport.NewMemNetwork().Endpoint(pub.Key), Book: peerbook.NewMemory()})
	if code, body := getHost(t, dp, "grapevine.example.org", ""); code != http.StatusOK {
		t.Errorf("status_public, Host grapevine.example.org: %d %s, want 200", code, body)
	}
}

// An idle connection, before or between requests, is closed after the
// timeouts; connections over the cap wait until one is closed.
func TestStatusConnectionLimits(t *testing.T) {
	n := apiNode(t, "limits", "test", nodedir.Config{})
	lim := statusLimits{readHeader: 300 * time.Millisecond, read: time.Second, idle: 300 * time.Millisecond, conns: 3}
	d, _ := run(t, Options{Dir: n.Dir, Transport: transport.NewMemNetwork().Endpoint(n.Key), Book: peerbook.NewMemory(), statusLimits: lim})

	closedWithin := func(c net.Conn, within time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(within))
		_, err := io.Copy(io.Discard, c)
		return err == nil // EOF: the server closed it; a timeout is an error
	}
	// Silent from the start: ReadHeaderTimeout.
	silent, err := net.Dial("tcp", d.StatusAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// One request kept alive, then idle: IdleTimeout.
	kept, err := net.Dial("tcp", d.StatusAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	if _, err := io.WriteString(kept, "GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(kept), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("kept-alive request: %v %v", resp, err)
	}
	if !closedWithin(silent, 3*time.Second) {
		t.Error("a connection that sent nothing was not closed within 3 s (read-header timeout 300 ms)")
	}
	if !closedWithin(kept, 3*time.Second) {
		t.Error("an idle kept-alive connection was not closed within 3 s (idle timeout 300 ms)")
	}

	// The cap: with 3 connections held (each sending a byte now and then
	// would not help: ReadTimeout bounds the request), a fourth waits.
	lim2 := statusLimits{conns: 3}
	n2 := apiNode(t, "cap", "test", nodedir.Config{})
	d2, _ := run(t, Options{Dir: n2.Dir, Transport: transport.NewMemNetwork().Endpoint(n2.Key), Book: peerbook.NewMemory(), statusLimits: lim2})
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", d2.StatusAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	client := &http.Client{Timeout: 500 * time.Millisecond}
	if resp, err := client.Get("http://" + d2.StatusAddr() + "/v1/status"); err == nil {
		resp.Body.Close()
		t.Fatalf("a fourth connection was served (%s) while 3 were held, cap 3", resp.Status)
	}
	held[0].Close()
	client.Timeout = 5 * time.Second
	resp, err = client.Get("http://" + d2.StatusAddr() + "/v1/status")
	if err != nil {
		t.Fatalf("after one held connection closed: %v", err)
	}
	resp.Body.Close()
}
