package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"grapevine/internal/nodedir"
)

// A peer book deleted or truncated to 0 bytes behind a node that has run
// before: the node still starts, and says so in its log, /v1/status and
// on the page.
func TestPeerBookLost(t *testing.T) {
	n := apiNode(t, "lost", "test", nodedir.Config{})
	book := filepath.Join(n.Dir, BookFile)
	start := func(t *testing.T) (*Daemon, *syncBuffer) {
		logs := &syncBuffer{}
		return runLogged(t, Options{Dir: n.Dir}, logs), logs
	}
	warned := func(t *testing.T, d *Daemon, logs *syncBuffer, want string) {
		t.Helper()
		var st Status
		getJSON(t, d, "/v1/status", &st)
		_, page := call(t, d, "GET", "/", "", nil)
		if want == "" {
			if len(st.Warnings) != 0 || strings.Contains(logs.String(), "peer book lost") {
				t.Fatalf("warnings %q with the book intact\n%s", st.Warnings, logs.String())
			}
			return
		}
		if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "peer book lost") || !strings.Contains(st.Warnings[0], want) {
			t.Fatalf("status warnings %q, want one saying the peer book is lost: %s", st.Warnings, want)
		}
		if !strings.Contains(logs.String(), `"level":"WARN","msg":"peer book lost`) {
			t.Fatalf("no warning logged:\n%s", logs.String())
		}
		if !strings.Contains(string(page), `data-warning="peer book lost`) {
			t.Fatalf("the page shows no warning")
		}
	}

	t.Run("first-run", func(t *testing.T) {
		d, logs := start(t)
		warned(t, d, logs, "")
	})
	t.Run("restart", func(t *testing.T) {
		d, logs := start(t)
		warned(t, d, logs, "")
	})
	t.Run("truncated", func(t *testing.T) {
		if err := os.Truncate(book, 0); err != nil {
			t.Fatal(err)
		}
		d, logs := start(t)
		warned(t, d, logs, "0 bytes")
	})
	t.Run("deleted", func(t *testing.T) {
		for _, f := range []string{book, book + "-wal", book + "-shm"} {
			if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
		d, logs := start(t)
		warned(t, d, logs, "missing")
	})
}
