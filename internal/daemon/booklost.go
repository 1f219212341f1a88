package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"grapevine/core"
)

// bookFileState says what was at path before the peer book opened it:
// "missing", "empty" (0 bytes) or "present".
func bookFileState(path string) string {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "missing"
	case err == nil && fi.Size() == 0:
		return "empty"
	}
	return "present"
}

// bookLost returns a warning if the peer book holds nothing although the
// counter says the node has run before: create-node leaves the counter at
// 1 and every run moves it on and saves it in the book too, so a book
// with no counter beside a counter above 1 was deleted, truncated or
// replaced. The node still starts, and relearns the grid from its
// bootstrap nodes (boot of them). was is bookFileState's answer before
// opening.
func bookLost(st core.State, counter int64, was string, boot int) string {
	if counter <= 1 || st.Counter > 0 || len(st.Records) > 0 || len(st.Peers) > 0 {
		return ""
	}
	why := map[string]string{
		"missing": "the file was missing (deleted?)",
		"empty":   "the file was empty (0 bytes: truncated?)",
	}[was]
	if why == "" {
		why = "the file holds no state (replaced?)"
	}
	next := fmt.Sprintf("it relearns the grid from its %d bootstrap node(s)", boot)
	if boot == 0 {
		next = "it has no bootstrap nodes: add one (bootstrap in grapevine.yaml) or import records to rejoin the grid"
	}
	return fmt.Sprintf("peer book lost: it is empty, but the announcement counter (%d) says this node has run before; %s. "+
		"Starting with no known servers: %s", counter, why, next)
}
