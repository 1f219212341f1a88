package peerbook

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/internal/testkit"
	"grapevine/records"
)

const crashEnv = "PEERBOOK_CRASH_CHILD"

const (
	crashKeys     = 40
	crashVersions = 4
)

// crashPool is crashVersions signed records for each of crashKeys keys.
func crashPool() [][]announce.Signed {
	pool := make([][]announce.Signed, crashKeys)
	for j := range pool {
		for v := range crashVersions {
			pool[j] = append(pool[j], signed(testKey(30000+j), "storage", int64(v+1), fmt.Sprintf("crash-%d", j), false))
		}
	}
	return pool
}

func mix(i, j int) uint64 {
	z := uint64(i)*0x9e3779b97f4a7c15 + uint64(j)*0xbf58476d1ce4e5b9
	z ^= z >> 31
	z *= 0x94d049bb133111eb
	return z ^ z>>29
}

// crashState is the i-th state the child saves. Most rows change from one
// to the next, so a torn write would show.
func crashState(pool [][]announce.Signed, i int) core.State {
	st := core.State{Counter: int64(i), Elapsed: core.Elapsed(time.Duration(i) * time.Second), Wall: time.Unix(1.7e9+int64(i), int64(i)).UTC()}
	for j := range crashKeys {
		id := testKey(30000 + j).ID()
		if h := mix(i, j); h%4 != 0 {
			st.Records = append(st.Records, core.StoredRecord{Signed: pool[j][(i/3+j)%crashVersions], Source: testKey(30000 + (i+j)%crashKeys).ID()})
		} else {
			st.Tombstones = append(st.Tombstones, core.StoredTombstone{
				Tombstone: records.Tombstone{Key: records.Key{Service: "storage", ID: id}, Seqnum: int64(i), HasSeqnum: true,
					Last: pool[j][i%crashVersions], Reason: fmt.Sprintf("r%d", i)},
				At: core.Elapsed(i), AtWall: time.Unix(int64(i), 0).UTC()})
		}
		if j < 10+i%crashKeys {
			h := core.History{ID: id, FirstHeard: core.Elapsed(j), LastGood: core.Elapsed(i), LastConnected: -1,
				LastAttempt: core.Elapsed(i), LastError: fmt.Sprintf("e%d", i), BytesIn: uint64(i * j)}
			for k := range (i + j) % 3 {
				h.Locators = append(h.Locators, fmt.Sprintf("gv://%s@192.0.2.%d:%d", id, k, i))
			}
			for k := range (i + j) % 5 {
				h.Intervals = append(h.Intervals, core.Interval{Start: core.Elapsed(k), End: core.Elapsed(i)})
			}
			st.Peers = append(st.Peers, h)
		}
	}
	return sortState(st)
}

// crashChild saves states in a tight loop until it is killed, writing
// "C i" to fd 3 once SaveCounter(i) returns and "S i" once Save does.
func crashChild(path string) {
	ack := os.NewFile(3, "ack")
	die := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	pool := crashPool()
	b, err := OpenSQLite(path)
	if err != nil {
		die(err)
	}
	st, err := b.Load()
	if err != nil {
		die(err)
	}
	for i := int(time.Duration(st.Elapsed)/time.Second) + 1; ; i++ {
		if err := b.SaveCounter(int64(i)); err != nil {
			die(err)
		}
		if _, err := fmt.Fprintf(ack, "C %d\n", i); err != nil {
			os.Exit(3) // the parent is gone
		}
		if err := b.Save(crashState(pool, i)); err != nil {
			die(err)
		}
		if _, err := fmt.Fprintf(ack, "S %d\n", i); err != nil {
			os.Exit(3)
		}
	}
}

// TestCrash kills a process that is saving, at random moments, and checks
// each time that the file opens and holds the last state it acknowledged
// (or the one it was writing), whole.
func TestCrash(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		return
	}
	kills := 20
	if testing.Short() {
		kills = 6
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	pool := crashPool()
	path := filepath.Join(t.TempDir(), "book.db")

	var floor int // the state the file held after the last kill
	var inFlight, totalSaves int
	for kill := range kills {
		lastC, lastS := 0, floor
		for _, line := range testkit.CrashChild(t, "TestCrash", crashEnv+"="+path, rng, 40, 10*time.Second) {
			kind, num, _ := strings.Cut(line, " ")
			n, _ := strconv.Atoi(num)
			if kind == "C" {
				lastC = n
			} else {
				lastS = n
			}
		}
		b, err := OpenSQLite(path)
		if err != nil {
			t.Fatalf("kill %d: open after kill: %v", kill, err)
		}
		st, err := b.Load()
		b.Close()
		if err != nil {
			t.Fatalf("kill %d: load after kill: %v", kill, err)
		}
		j := int(time.Duration(st.Elapsed) / time.Second)
		if j < lastS || j > lastS+1 {
			t.Fatalf("kill %d: the file holds state %d; the child had acknowledged %d", kill, j, lastS)
		}
		if st.Counter < int64(lastC) || (st.Counter != int64(j) && st.Counter != int64(j)+1) {
			t.Fatalf("kill %d: counter %d with state %d; SaveCounter(%d) was acknowledged", kill, st.Counter, j, lastC)
		}
		want := core.State{}
		if j > 0 {
			want = crashState(pool, j)
		}
		want.Counter = st.Counter
		if !reflect.DeepEqual(st, want) {
			mustEqual(t, st, want)
		}
		if j > lastS {
			inFlight++
		}
		totalSaves += j - floor
		floor = j
	}
	t.Logf("%d kills, %d states saved; %d kills landed after a commit and before its acknowledgement", kills, totalSaves, inFlight)
}
