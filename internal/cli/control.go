package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"grapevine/daemon"
)

// callNode sends a request to the running node in dir through its status
// endpoint, with the node's API token (DIR/private/api_auth_token), and
// decodes the JSON answer into out.
func callNode(dir, method, path string, body, out any) error {
	b, err := os.ReadFile(filepath.Join(dir, daemon.RunDir, daemon.StatusFile))
	if err != nil {
		return fmt.Errorf("%s is not running, or runs without a status endpoint (start it with 'grapevine run %s'; set status in grapevine.yaml)", dir, dir)
	}
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSpace(string(b))+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	daemon.Authorize(req, dir)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s is not running (%v); start it with 'grapevine run %s'", dir, err, dir)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(data))
		if _, terr := daemon.ReadToken(dir); resp.StatusCode == http.StatusUnauthorized && terr != nil {
			msg += " (" + terr.Error() + ")"
		}
		return fmt.Errorf("%s", msg)
	}
	return json.Unmarshal(data, out)
}
