package announce

import (
	"net"
	"testing"
)

// splitHostPort agrees with net.SplitHostPort on what it accepts and on
// the parts.
func TestSplitHostPortMatchesNet(t *testing.T) {
	for _, addr := range []string{
		"a:1", "1.2.3.4:80", "[::1]:80", "[::1]", "::1:80", "host", ":80", "a:",
		"[a]b:1", "a]:1", "[a:1", "[a]:[1]", "a:b:c", "[fe80::1%eth0]:443", "",
	} {
		h, p, err := splitHostPort(addr)
		nh, np, nerr := net.SplitHostPort(addr)
		if (err == nil) != (nerr == nil) || h != nh || p != np {
			t.Errorf("%q: got %q %q %v, net gives %q %q %v", addr, h, p, err, nh, np, nerr)
		}
	}
}
