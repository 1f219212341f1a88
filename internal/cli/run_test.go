package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"strings"
	"testing"

	"grapevine/internal/logsample"
)

// run's logger writes a flood of one kind of line as a bounded number of
// lines and summaries that account for every line; --log-similar 0 writes
// them all.
func TestRunLoggerSamples(t *testing.T) {
	const n = 10000
	for _, tc := range []struct {
		args      []string
		maxLines  int
		summaries bool
	}{
		{[]string{"--log-format", "json"}, 2 * (logsample.DefaultBurst + 1), true},
		{[]string{"--log-format", "json", "--log-similar", "0"}, n, false},
	} {
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		lf := addLogFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		log, err := lf.logger(&Env{Stderr: &stderr})
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			log.Info("handshake refused", "addr", i, "peer", "", "reason", "eof")
		}
		lf.flush()
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		written, suppressed := 0, 0
		for _, l := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			if k, ok := m["suppressed"].(float64); ok {
				suppressed += int(k)
			} else {
				written++
			}
		}
		if len(lines) > tc.maxLines || written+suppressed != n || (suppressed > 0) != tc.summaries {
			t.Errorf("%q: %d lines for %d: %d written, %d counted as suppressed", tc.args, len(lines), n, written, suppressed)
		}
	}
}
