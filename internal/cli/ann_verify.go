package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"grapevine/announce"
)

func init() {
	register(&command{
		name:    "ann verify",
		args:    "[FILE|-]",
		summary: "Verify a signed announcement {\"msg\", \"sig\", \"key\"}; print it parsed, or why it is invalid.",
		run:     runAnnVerify,
	})
}

// maxAnnInput bounds what ann verify reads: a msg at its limit, escaped.
const maxAnnInput = 8*announce.MaxMsgSize + 4096

func runAnnVerify(env *Env, args []string) int {
	c := commands["ann verify"]
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	pos, code, ok := parseFlags(env, c, fs, args)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		return usageError(env, c, "want at most one FILE, got %d", len(pos))
	}
	name, in := "stdin", env.Stdin
	if len(pos) == 1 && pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return fail(env, c, err)
		}
		defer f.Close()
		name, in = pos[0], f
	}
	data, err := io.ReadAll(io.LimitReader(in, maxAnnInput+1))
	if err != nil {
		return fail(env, c, fmt.Errorf("%s: %w", name, err))
	}
	invalid := func(format string, args ...any) int {
		fmt.Fprintf(env.Stdout, "invalid: %s\n", fmt.Sprintf(format, args...))
		return exitFailure
	}
	if len(data) > maxAnnInput {
		return invalid("%s: larger than %d bytes", name, maxAnnInput)
	}
	s, err := decodeSigned(data)
	if err != nil {
		return invalid("%s: %v", name, err)
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
