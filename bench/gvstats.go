package bench

import "grapevine/transport"

// transportStats returns the bytes and write calls the transport has put
// on its TCP connections.
func transportStats(t *transport.TCP) (bytes, writes uint64, ok bool) {
	s := t.Stats()
	return s.BytesOut, s.Writes, true
}
