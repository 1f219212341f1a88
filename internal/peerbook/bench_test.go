package peerbook

import (
	"testing"

	"grapevine/core"
)

// BenchmarkSave saves a state of 1,000 records, 200 peers and 100
// tombstones again and again. one-change replaces one record and advances
// the clock each time (the usual save); all-changed replaces every record.
func BenchmarkSave(b *testing.B) {
	x := bigState(1000)
	y := cloneState(x)
	for i := range y.Records {
		y.Records[i] = altOf(y.Records[i])
	}
	oneChange := func(i int) core.State {
		st := x
		if i%2 == 1 {
			st = cloneState(x)
			st.Records[500] = altOf(st.Records[500])
		}
		st.Elapsed = core.Elapsed(i)
		return st
	}
	allChanged := func(i int) core.State {
		if i%2 == 1 {
			return y
		}
		return x
	}
	for _, c := range []struct {
		name  string
		open  func(b *testing.B) Book
		state func(i int) core.State
	}{
		{"sqlite/one-change", func(b *testing.B) Book { return openTempB(b) }, oneChange},
		{"sqlite/all-changed", func(b *testing.B) Book { return openTempB(b) }, allChanged},
		{"memory/one-change", func(*testing.B) Book { return NewMemory() }, oneChange},
	} {
		b.Run(c.name, func(b *testing.B) {
			book := c.open(b)
			states := []core.State{c.state(0), c.state(1)}
			if err := book.Save(states[0]); err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				i++
				st := states[i%2]
				st.Elapsed = core.Elapsed(i)
				if err := book.Save(st); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSaveCounter(b *testing.B) {
	book := openTempB(b)
	c := int64(0)
	for b.Loop() {
		c++
		if err := book.SaveCounter(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	book := openTempB(b)
	if err := book.Save(bigState(1000)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := book.Load(); err != nil {
			b.Fatal(err)
		}
	}
}

func openTempB(b *testing.B) *SQLite {
	book, err := OpenSQLite(b.TempDir() + "/book.db")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { book.Close() })
	return book
}
