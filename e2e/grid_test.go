package e2e

import (
	crand "crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"grapevine/member"
)

func gv(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

func invite(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, append(append([]string{"invite"}, args...), dir)...).Output()
	if err != nil {
		t.Fatalf("invite %s: %v", dir, err)
	}
	return strings.TrimSpace(string(out))
}

// join redeems code into root/name without running, adds the test rules,
// and starts the node.
func join(t *testing.T, root, name, code string, args ...string) *proc {
	t.Helper()
	dir := filepath.Join(root, name)
	a := append([]string{"join", "--no-run", "--nickname", name, "--listen", "127.0.0.1:0"}, args...)
	if out, err := gv(t, append(a, code, dir)...); err != nil {
		t.Fatalf("join %s: %v\n%s", name, err, out)
	}
	appendRules(t, dir)
	return start(t, name, dir)
}

func appendRules(t *testing.T, dir string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "grapevine.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(rules); err != nil {
		t.Fatal(err)
	}
}

// TestClosedGrid: a founder invites a server and a client, the client
// invites a third member; bad codes are refused; non-members and revoked
// members are dropped.
func TestClosedGrid(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several processes")
	}
	root := t.TempDir()
	founderDir := filepath.Join(root, "founder")
	if out, err := gv(t, "node", "create", "--found-grid", "--nickname", "founder", "--listen", "127.0.0.1:0", founderDir); err != nil {
		t.Fatalf("node create --found-grid: %v\n%s", err, out)
	}
	appendRules(t, founderDir)
	founder := start(t, "founder", founderDir)

	code1 := invite(t, founderDir)
	server := join(t, root, "server", code1, "--service", "storage=pb://s@tcp:127.0.0.1:1/swiss")
	client := join(t, root, "client", invite(t, founderDir))
	serverID, clientID := server.id(), client.id()
	waitFor(t, 30*time.Second, "the client to learn the server", func() (bool, string) {
		s, ok, err := client.server(serverID)
		return err == nil && ok && s.Connected && len(s.Services) == 1, fmt.Sprintf("%+v %v", s, err)
	})

	// The client invites a third member, who appears at the founder with
	// its chain: founder -> client -> third.
	third := join(t, root, "third", invite(t, client.dir), "--service", "storage=pb://t@tcp:127.0.0.1:2/swiss")
	thirdID := third.id()
	waitFor(t, 30*time.Second, "the founder to show the third member's chain", func() (bool, string) {
		out, err := gv(t, "members", founderDir)
		want := fmt.Sprintf("└ %s\n  └ %s [storage]", clientID, thirdID)
		return err == nil && strings.Contains(out, want), out
	})
	waitFor(t, 30*time.Second, "the server to hold the third member", func() (bool, string) {
		s, ok, err := server.server(thirdID)
		return err == nil && ok && len(s.Services) == 1, fmt.Sprintf("%+v %v", s, err)
	})

	// One command: join and run.
	fourthDir := filepath.Join(root, "fourth")
	cmd := exec.Command(bin, "join", "--listen", "127.0.0.1:0", invite(t, founderDir), fourthDir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	fourth := &proc{t: t, name: "fourth", dir: fourthDir, cmd: cmd}
	waitFor(t, 30*time.Second, "the joined node to run and connect to its inviter", func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(fourthDir, "run", "status"))
		if err != nil {
			return false, err.Error()
		}
		fourth.status = strings.TrimSpace(string(b))
		s, _, err := fourth.server(founder.id())
		return err == nil && s.Connected, fmt.Sprintf("%+v %v", s, err)
	})

	// Refused codes, each with its reason, and no directory left behind.
	expiring := invite(t, founderDir, "--expires", "1s")
	made := time.Now()
	waitFor(t, 5*time.Second, "the invite to expire", func() (bool, string) {
		return time.Since(made) > 1100*time.Millisecond, ""
	})
	inv, err := member.ParseInvite(code1)
	if err != nil {
		t.Fatal(err)
	}
	forgedInv := inv
	crand.Read(forgedInv.Secret[:])
	mistyped := []byte(code1)
	i := len(mistyped) - 3
	if mistyped[i] == 'a' {
		mistyped[i] = 'b'
	} else {
		mistyped[i] = 'a'
	}
	for _, tc := range []struct{ name, code, want string }{
		{"used", code1, "already been used"},
		{"expired", expiring, "expired"},
		{"forged", forgedInv.Code(), "never issued it"},
		{"mistyped", string(mistyped), "mistyped"},
	} {
		dir := filepath.Join(root, "refused-"+tc.name)
		out, err := gv(t, "join", "--no-run", "--listen", "127.0.0.1:0", tc.code, dir)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s code: %v\n%s\nwant an error saying %q", tc.name, err, out, tc.want)
		}
		if matches, _ := filepath.Glob(dir + "*"); len(matches) > 0 {
			t.Errorf("%s code left %v behind", tc.name, matches)
		}
	}

	// A non-member that connects and gossips is dropped with a reason.
	outsiderDir := filepath.Join(root, "outsider")
	if out, err := gv(t, "node", "create", "--nickname", "outsider", "--listen", "127.0.0.1:0", "--service", "storage=pb://o@tcp:127.0.0.1:3/swiss", outsiderDir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	appendRules(t, outsiderDir)
	outsider := start(t, "outsider", outsiderDir, founder.locator())
	outsiderID := outsider.id()
	waitFor(t, 20*time.Second, "the founder to drop the outsider's record", func() (bool, string) {
		for _, l := range founder.logLines() {
			if l["kind"] == "rejected" && l["peer"] == outsiderID && l["reason"] == "not-member" {
				return true, ""
			}
		}
		return false, founder.tail()
	})
	if _, held, _ := founder.server(outsiderID); held {
		if s, _, _ := founder.server(outsiderID); len(s.Services) > 0 {
			t.Fatalf("founder holds the outsider's record: %+v", s)
		}
	}

	// The founder revokes the client: the client's invitee is dropped
	// everywhere.
	if out, err := gv(t, "revoke", founderDir, clientID); err != nil || !strings.Contains(out, "revoked 1 certificate") {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	for _, n := range []*proc{founder, server, client} {
		waitFor(t, 30*time.Second, n.name+" to drop the revoked member's invitee", func() (bool, string) {
			s, _, err := n.server(thirdID)
			return err == nil && len(s.Services) == 0 && s.Tombstoned == "revoked", fmt.Sprintf("%+v %v", s, err)
		})
	}
	if out, err := gv(t, "members", founderDir); err != nil || !strings.Contains(out, clientID+" REVOKED") {
		t.Fatalf("members after revoking: %v\n%s", err, out)
	}
}
