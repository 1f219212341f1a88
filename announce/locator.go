package announce

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// LocatorScheme starts every gossip endpoint locator.
const LocatorScheme = "gv://"

// Locator says where to reach a node's gossip endpoint and which key it must
// prove: gv://v0-<base32 key>@host:port. A connection to the address that
// presents another key is refused.
type Locator struct {
	ID   NodeID
	Addr string // host:port
}

func (l Locator) String() string { return LocatorScheme + string(l.ID) + "@" + l.Addr }

// ParseLocator parses a gv:// locator.
func ParseLocator(s string) (Locator, error) {
	rest, ok := strings.CutPrefix(s, LocatorScheme)
	if !ok {
		return Locator{}, fmt.Errorf("locator %q: want %sv0-KEY@HOST:PORT", s, LocatorScheme)
	}
	id, addr, ok := strings.Cut(rest, "@")
	if !ok {
		return Locator{}, fmt.Errorf("locator %q: missing '@' between key and address", s)
	}
	nid, err := ParseNodeID(id)
	if err != nil {
		return Locator{}, fmt.Errorf("locator %q: %w", s, err)
	}
	if err := CheckHostPort(addr, false); err != nil {
		return Locator{}, fmt.Errorf("locator %q: %w", s, err)
	}
	return Locator{ID: nid, Addr: addr}, nil
}

// CheckHostPort checks a host:port address; port 0 is allowed only if
// zeroOK (a listener that picks its own port).
func CheckHostPort(addr string, zeroOK bool) error {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %s", addr, err)
	}
	if strings.ContainsAny(host, " /@") {
		return fmt.Errorf("address %q: bad host", addr)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("address %q: port must be a number from 1 to 65535", addr)
	}
	if p == 0 && !zeroOK {
		return fmt.Errorf("address %q: port 0 cannot be dialed", addr)
	}
	return nil
}

// splitHostPort splits "host:port" or "[host]:port" as net.SplitHostPort
// does, without the net package (the layering rule: docs/design.md).
func splitHostPort(addr string) (host, port string, err error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", errors.New("missing port in address")
	}
	host, port = addr[:i], addr[i+1:]
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return "", "", errors.New("missing ']' in address")
		}
		host = host[1 : len(host)-1]
	} else if strings.ContainsAny(host, ":") {
		return "", "", errors.New("too many colons in address")
	}
	if strings.ContainsAny(host, "[]") || strings.ContainsAny(port, "[]") {
		return "", "", errors.New("unexpected '[' or ']' in address")
	}
	return host, port, nil
}
