package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"grapevine/announce"
)

// maxAnnInput bounds what ann verify reads: a msg at its limit, escaped.
const maxAnnInput = 8*announce.MaxMsgSize + 4096

func runAnnVerify(env *Env, c *command, pos []string) int {
	if len(pos) > 1 {
		return usageError(env, c, "want at most one FILE, got %d", len(pos))
	}
	file := "-"
	if len(pos) == 1 {
		file = pos[0]
	}
	in, err := readInput(env, file, maxAnnInput)
	invalid := func(format string, args ...any) int {
		fmt.Fprintf(env.Stdout, "invalid: %s\n", fmt.Sprintf(format, args...))
		return exitFailure
	}
	if tl := (*tooLargeError)(nil); errors.As(err, &tl) {
		return invalid("%v", err)
	}
	if err != nil {
		return fail(env, c, err)
	}
	s, err := decodeSigned(in.data)
	if err != nil {
		return invalid("%s: %v", in.name, err)
	}
	a, err := announce.Verify(s)
	if err != nil {
		return invalid("%v", err)
	}
	body := announce.EncodePython(a.Body)
	var out bytes.Buffer
	if err := json.Indent(&out, body, "", "  "); err != nil {
		// NaN and Infinity are Python's JSON, not Go's: print it as Python would.
		out.Reset()
		out.Write(body)
	}
	fmt.Fprintf(env.Stdout, "%s\n", out.Bytes())
	if !a.HasSeqnum { // it verifies, but no node would hold it (records.CheckSeqnum)
		fmt.Fprintf(env.Stderr, "note: no valid seqnum (%s); nodes refuse this record (bad-seqnum)\n", a.SeqnumProblem)
	}
	return exitOK
}

// decodeSigned reads {"msg": ..., "sig": ..., "key": ...}; other members
// are ignored, so a Tahoe test vector can be fed as it is.
func decodeSigned(data []byte) (announce.Signed, error) {
	v, err := announce.ParseJSON(data)
	if err != nil {
		return announce.Signed{}, fmt.Errorf("not JSON: %w", err)
	}
	if v.Kind != announce.Object {
		return announce.Signed{}, errors.New(`not a JSON object {"msg", "sig", "key"}`)
	}
	var s announce.Signed
	for _, f := range []struct {
		name string
		dst  *string
	}{{"msg", &s.Msg}, {"sig", &s.Sig}, {"key", &s.Key}} {
		m, ok := v.Get(f.name)
		if !ok {
			return s, fmt.Errorf("missing %q", f.name)
		}
		if m.Kind != announce.String {
			return s, fmt.Errorf("%q is not a string", f.name)
		}
		*f.dst = m.Str
	}
	return s, nil
}
