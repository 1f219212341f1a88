package nodedir_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"grapevine/announce"
	"grapevine/internal/nodedir"
	"grapevine/records"
)

func storageConfig() nodedir.Config {
	return nodedir.Config{
		Nickname: "alpha",
		Listen:   "127.0.0.1:7370",
		Location: []string{"127.0.0.1:7370"},
		Services: []nodedir.ServiceConfig{{Name: "storage", FURL: "pb://tub@tcp:127.0.0.1:9000/swiss"}},
	}
}

func create(t *testing.T) *nodedir.Node {
	t.Helper()
	n, err := nodedir.Create(filepath.Join(t.TempDir(), "node"), nodedir.Options{Config: storageConfig()})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCreateAndOpen(t *testing.T) {
	n := create(t)
	st, err := os.Stat(filepath.Join(n.Dir, nodedir.PrivKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("privkey mode %v %v", st.Mode(), err)
	}
	if n.Counter() != 1 {
		t.Fatalf("counter %d after create, want 1", n.Counter())
	}
	o, err := nodedir.Open(n.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if o.ID() != n.ID() || o.Counter() != 1 || o.Config.Nickname != "alpha" {
		t.Fatalf("reopened %s %d %q", o.ID(), o.Counter(), o.Config.Nickname)
	}
	cur := o.Current()
	if len(cur) != 1 {
		t.Fatalf("%d announcements", len(cur))
	}
	a, err := announce.Verify(cur[0])
	if err != nil {
		t.Fatal(err)
	}
	furl, _ := a.Body.Get("anonymous-storage-FURL")
	if a.Seqnum != 1 || a.ServiceName != "storage" || furl.Str != "pb://tub@tcp:127.0.0.1:9000/swiss" {
		t.Fatalf("announcement %s", cur[0].Msg)
	}
	if locs := a.Locators(); len(locs) != 1 || locs[0] != "gv://"+string(n.ID())+"@127.0.0.1:7370" {
		t.Fatalf("locators %v", locs)
	}
}

func TestCreateRefusesExisting(t *testing.T) {
	n := create(t)
	before, _ := os.ReadFile(filepath.Join(n.Dir, nodedir.PrivKeyFile))
	_, err := nodedir.Create(n.Dir, nodedir.Options{Config: storageConfig()})
	if !errors.Is(err, nodedir.ErrExists) {
		t.Fatalf("Create over a node: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(n.Dir, nodedir.PrivKeyFile))
	if string(before) != string(after) {
		t.Fatal("existing key was touched")
	}
}

func TestCreateBadConfigLeavesNothing(t *testing.T) {
	parent := t.TempDir()
	cfg := storageConfig()
	cfg.Services[0].Name = "Bad Name"
	_, err := nodedir.Create(filepath.Join(parent, "node"), nodedir.Options{Config: cfg})
	var ce *nodedir.ConfigError
	if !errors.As(err, &ce) || ce.Field != "services[0].name" {
		t.Fatalf("err %v", err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Fatalf("left %v behind", entries)
	}
}

func TestPublishPersistsCounterFirst(t *testing.T) {
	n := create(t)
	recs, err := n.Publish()
	if err != nil {
		t.Fatal(err)
	}
	a, _ := announce.Verify(recs[0])
	data, _ := os.ReadFile(filepath.Join(n.Dir, nodedir.CounterFile))
	if strings.TrimSpace(string(data)) != "2" || a.Seqnum != 2 {
		t.Fatalf("counter file %q, seqnum %d", data, a.Seqnum)
	}
}

// A node whose directory is wiped except for its key starts again at 0. A
// peer still holds its seqnum-5 record and refuses the new seqnum-1 one.
// After one exchange (the peer shows the node its own record), the node
// jumps past it and the peer accepts it.
func TestCounterRecoveryAfterWipe(t *testing.T) {
	n := create(t)
	for range 4 {
		if _, err := n.Publish(); err != nil {
			t.Fatal(err)
		}
	}
	peer := records.New()
	for _, r := range n.Current() {
		if _, err := peer.Admit(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(n.Dir, nodedir.CounterFile), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := nodedir.Open(n.Dir)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := n.Publish()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Admit(fresh[0]); !errors.Is(err, records.ErrStale) {
		t.Fatalf("peer accepted a lower seqnum: %v", err)
	}
	held, _ := peer.Get(records.Key{Service: "storage", ID: n.ID()})
	resigned, err := n.ObserveOwn(held.Signed)
	if err != nil || len(resigned) != 1 {
		t.Fatalf("ObserveOwn: %v %d", err, len(resigned))
	}
	res, err := peer.Admit(resigned[0])
	if err != nil || res.Outcome != records.Replaced || res.Ann.Seqnum != 6 {
		t.Fatalf("after recovery: %v %+v", err, res)
	}
	if reopened, _ := nodedir.Open(n.Dir); reopened.Counter() != 6 {
		t.Fatalf("recovered counter not persisted: %d", reopened.Counter())
	}
	// The echo of the current record changes nothing.
	if again, err := n.ObserveOwn(resigned[0]); err != nil || again != nil {
		t.Fatalf("echo caused a re-sign: %v %v", again, err)
	}
}

// A rolled-back node that counted up to the same seqnum with other content
// also jumps.
func TestCounterRecoveryEqualSeqnumConflict(t *testing.T) {
	n := create(t)
	old := n.Current()[0] // seqnum 1, nickname alpha
	n.Config.Nickname = "renamed"
	next, err := n.ObserveOwn(old)
	if err != nil || len(next) != 1 {
		t.Fatalf("ObserveOwn: %v %v", next, err)
	}
	if a, _ := announce.Verify(next[0]); a.Seqnum != 2 {
		t.Fatalf("seqnum %d", a.Seqnum)
	}
}

func TestOpenErrorsNameTheFile(t *testing.T) {
	cases := []struct {
		file, content, want string
	}{
		{nodedir.PrivKeyFile, "priv-v1-abc\n", "node.privkey"},
		{nodedir.PrivKeyFile, "priv-v0-!!!\n", "not base32"},
		{nodedir.CounterFile, "seven\n", "announcement-seqnum"},
		{nodedir.CounterFile, "-3\n", "non-negative"},
		{nodedir.ConfigFile, "listen: 127.0.0.1:7370\nnicknam: typo\n", "grapevine.yaml:2"},
		{nodedir.ConfigFile, "listen: 127.0.0.1:7370\nservices:\n  - name: storage\n  - name: storage\n", "grapevine.yaml:4: services[1].name"},
		{nodedir.ConfigFile, "listen: nowhere\n", "grapevine.yaml:1: listen"},
		{nodedir.ConfigFile, "listen: [\n", "grapevine.yaml"},
		{nodedir.ConfigFile, "", "listen: missing"},
		{nodedir.ConfigFile, "listen: 127.0.0.1:1\nbootstrap: [gv://v0-zzz@h:1]\n", "bootstrap[0]"},
	}
	for _, c := range cases {
		n := create(t)
		if err := os.WriteFile(filepath.Join(n.Dir, c.file), []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := nodedir.Open(n.Dir)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s = %q: error %v, want it to mention %q", c.file, c.content, err, c.want)
		}
	}
}

func TestConfigEncodeRoundTrip(t *testing.T) {
	c := storageConfig()
	c.Nickname = `quote " and ü`
	c.Services[0].NURLs = []string{"pb://x@tcp:h:1/s#v=1"}
	c.Bootstrap = []string{"gv://v0-vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq@127.0.0.1:7371"}
	got, err := nodedir.ParseConfig("x.yaml", c.Encode())
	if err != nil {
		t.Fatalf("%v\n%s", err, c.Encode())
	}
	if got.Nickname != c.Nickname || got.Services[0].NURLs[0] != c.Services[0].NURLs[0] || got.Bootstrap[0] != c.Bootstrap[0] {
		t.Fatalf("round trip: %+v", got)
	}
}
