package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/daemon"
)

// maxImportInput bounds the file ann import reads.
const maxImportInput = 64 << 20

func runAnnImport(env *Env, c *command, pos []string) int {
	if len(pos) != 2 {
		return usageError(env, c, "want DIR and FILE, got %d arguments", len(pos))
	}
	in, err := readInput(env, pos[1], maxImportInput)
	if err != nil {
		return fail(env, c, err)
	}
	name := in.name
	recs, bad := decodeSignedList(in.data)
	for _, b := range bad {
		fmt.Fprintf(env.Stdout, "skipped %s: %s\n", name, remote(b, lineRunes))
	}
	if len(recs) == 0 {
		return fail(env, c, fmt.Errorf("%s: no records found", name))
	}
	evs, err := daemon.Import(context.Background(), pos[0], recs, time.Now())
	if err != nil {
		return fail(env, c, err)
	}
	rejected := 0
	for _, e := range evs {
		if e.Kind == core.EvPublished {
			continue
		}
		if e.Kind == core.EvRejected || e.Kind == core.EvOverCap {
			rejected++
		}
		fmt.Fprintln(env.Stdout, remote(e.String(), lineRunes))
	}
	fmt.Fprintf(env.Stdout, "%d records read, %d skipped, %d rejected\n", len(recs), len(bad), rejected)
	if len(bad) > 0 || rejected > 0 {
		return exitFailure
	}
	return exitOK
}

// decodeSignedList reads one {msg, sig, key} object, a JSON array of them,
// an object with a "records" or "vectors" array, or a stream of them (JSON
// lines). Elements that are not records are reported with their position
// and the rest kept.
func decodeSignedList(data []byte) ([]announce.Signed, []string) {
	var recs []announce.Signed
	var bad []string
	add := func(where string, raw json.RawMessage) {
		s, err := decodeSigned(raw)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", where, err))
			return
		}
		recs = append(recs, s)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for i := 1; ; i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if !errors.Is(err, io.EOF) {
				bad = append(bad, fmt.Sprintf("value %d: not JSON: %v", i, err))
			}
			break
		}
		var arr []json.RawMessage
		if json.Unmarshal(raw, &arr) == nil {
			for j, r := range arr {
				add(fmt.Sprintf("value %d, element %d", i, j+1), r)
			}
			continue
		}
		var wrap struct {
			Records []json.RawMessage `json:"records"`
			Vectors []json.RawMessage `json:"vectors"`
			Msg     *string           `json:"msg"`
		}
		if json.Unmarshal(raw, &wrap) == nil && wrap.Msg == nil && len(wrap.Records)+len(wrap.Vectors) > 0 {
			for j, r := range append(wrap.Records, wrap.Vectors...) {
				add(fmt.Sprintf("value %d, element %d", i, j+1), r)
			}
			continue
		}
		add(fmt.Sprintf("value %d", i), raw)
	}
	return recs, bad
}
