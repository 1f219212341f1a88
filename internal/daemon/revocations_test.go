package daemon

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/internal/testkit"
	"grapevine/member"
)

const revocationsChildEnv = "GRAPEVINE_REVOCATIONS_CHILD"

// revocationPool is n revocations of one grid, by its founder.
func revocationPool(n int) (announce.NodeID, []member.Revocation) {
	seed := make([]byte, 32)
	seed[0] = 0xf0
	founder, err := announce.NewPrivateKey(seed)
	if err != nil {
		panic(err)
	}
	seed[0] = 0xf1
	subject, err := announce.NewPrivateKey(seed)
	if err != nil {
		panic(err)
	}
	out := make([]member.Revocation, n)
	for i := range out {
		r, err := member.Revoke(founder, member.Issue(founder, founder.ID(), subject.ID(), uint64(i+1)))
		if err != nil {
			panic(err)
		}
		out[i] = r
	}
	return founder.ID(), out
}

// policyWith is a policy holding rs, marked for saving.
func policyWith(grid announce.NodeID, rs []member.Revocation) *policy {
	p := &policy{grid: grid, set: member.NewRevocationSet(grid, MaxRevocations), dirty: true}
	for _, r := range rs {
		if _, err := p.set.Add(r); err != nil {
			panic(err)
		}
	}
	return p
}

// revocationStrings is the text forms of rs, as the file lists them.
func revocationStrings(rs []member.Revocation) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	slices.Sort(out)
	return out
}

const crashPoolSize = 400

// revocationsCrashChild saves a growing revocation set in a tight loop,
// writing "S n" to fd 3 once the file holds the first n of the pool.
func revocationsCrashChild(dir string) {
	ack := os.NewFile(3, "ack")
	grid, pool := revocationPool(crashPoolSize)
	p, err := loadPolicy(dir, grid)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	for n := p.set.Len() + 1; ; n++ {
		if n <= len(pool) {
			p.set.Add(pool[n-1])
		}
		p.dirty = true
		if err := p.save(dir); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		if _, err := fmt.Fprintf(ack, "S %d\n", p.set.Len()); err != nil {
			os.Exit(3) // the parent is gone
		}
	}
}

// revocationsEFBIGChild adds to the revocations in dir and saves them with
// a file size limit below their size, and prints the error.
func revocationsEFBIGChild(dir string) {
	grid, pool := revocationPool(300)
	p, err := loadPolicy(dir, grid)
	if err != nil {
		fmt.Println("load:", err)
		os.Exit(2)
	}
	for _, r := range pool {
		p.set.Add(r)
	}
	p.dirty = true
	lim := syscall.Rlimit{Cur: 16 << 10, Max: 16 << 10}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(2)
	}
	fmt.Println("save:", p.save(dir))
}

// revocationsChild runs the child half of a test, if this process is one.
func revocationsChild(mode string) bool {
	m, dir, _ := strings.Cut(os.Getenv(revocationsChildEnv), ":")
	if m != mode {
		return false
	}
	switch mode {
	case "crash":
		revocationsCrashChild(dir)
	case "efbig":
		revocationsEFBIGChild(dir)
	}
	return true
}

// A symlink at the name the revocations' temporary file once had is not
// written through.
func TestRevocationsSymlinkNotFollowed(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, RevocationsFile+".tmp")); err != nil {
		t.Fatal(err)
	}
	grid, pool := revocationPool(3)
	if err := policyWith(grid, pool).save(dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the symlink's target was overwritten with %d bytes", len(b))
	}
	p, err := loadPolicy(dir, grid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.set.Strings(), revocationStrings(pool)) {
		t.Errorf("revocations read back: %d, want %d", p.set.Len(), len(pool))
	}
}

// A save that fails part-way (the file size limit: EFBIG) leaves the
// revocations as they were and no temporary file.
func TestRevocationsWriteFailure(t *testing.T) {
	if revocationsChild("efbig") {
		return
	}
	dir := t.TempDir()
	grid, pool := revocationPool(5)
	if err := policyWith(grid, pool).save(dir); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRevocationsWriteFailure$")
	cmd.Env = append(os.Environ(), revocationsChildEnv+"=efbig:"+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "file too large") {
		t.Fatalf("child: %v: %s", err, out)
	}
	p, err := loadPolicy(dir, grid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.set.Strings(), revocationStrings(pool)) {
		t.Errorf("after the failed save the file holds %d revocations, want the %d before", p.set.Len(), len(pool))
	}
	if n := testkit.DirNames(t, dir); !slices.Equal(n, []string{RevocationsFile}) {
		t.Errorf("directory holds %q, want only %s", n, RevocationsFile)
	}
}

// TestRevocationsCrash kills a process saving a growing revocation set at
// random moments; after each kill the file must load and hold the last
// set acknowledged or the one being written, whole: never empty or torn.
func TestRevocationsCrash(t *testing.T) {
	if revocationsChild("crash") {
		return
	}
	kills := 20
	if testing.Short() {
		kills = 6
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	grid, pool := revocationPool(crashPoolSize)
	dir := t.TempDir()
	floor := 0
	for kill := range kills {
		acked := floor
		for _, line := range testkit.CrashChild(t, "TestRevocationsCrash", revocationsChildEnv+"=crash:"+dir, rng, 30, 20*time.Second) {
			acked, _ = strconv.Atoi(strings.TrimPrefix(line, "S "))
		}
		p, err := loadPolicy(dir, grid)
		if err != nil {
			t.Fatalf("kill %d: the revocations do not load: %v", kill, err)
		}
		n := p.set.Len()
		if n < acked || n > min(acked+1, len(pool)) {
			t.Fatalf("kill %d: the file holds %d revocations; %d were acknowledged", kill, n, acked)
		}
		if !slices.Equal(p.set.Strings(), revocationStrings(pool[:n])) {
			t.Fatalf("kill %d: the file's %d revocations are not the first %d saved", kill, n, n)
		}
		floor = n
	}
	midWrite := 0 // kills that left a temporary file: they cut a write
	for _, name := range testkit.DirNames(t, dir) {
		if strings.HasPrefix(name, "."+RevocationsFile+".tmp-") {
			midWrite++
		}
	}
	t.Logf("%d kills, %d of them during a write; %d revocations saved, one save each", kills, midWrite, floor)
}
