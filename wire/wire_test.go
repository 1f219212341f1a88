package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"grapevine/announce"
	"grapevine/core"
	"grapevine/records"
	"grapevine/wire"
)

func idFrom(r *rand.Rand) announce.NodeID {
	b := make([]byte, 32)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return announce.IDOf(b)
}

func testKey(t testing.TB, n byte) announce.PrivateKey {
	k, err := announce.NewPrivateKey(bytes.Repeat([]byte{n}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func samples(t testing.TB) []core.Msg {
	k := testKey(t, 1)
	rec := announce.Sign(k, announce.Build(k, announce.Template{Nickname: "n", Service: announce.Service{Name: "storage"}}, 7))
	id := k.ID()
	return []core.Msg{
		core.SyncReq{},
		core.SyncReq{Epoch: math.MaxUint64, Cursor: 1 << 40, Neighbour: true},
		core.Digest{},
		core.Digest{Epoch: 3, From: 1, To: 9, More: true, Items: []core.Item{
			{Service: "storage", ID: id, Seqnum: 7, Hash: 0xdeadbeefcafef00d, Ver: 9},
			{Service: "", ID: id, Seqnum: math.MinInt64, Hash: 0, Ver: math.MaxUint64},
			{Service: "ünïcode", ID: id, Seqnum: math.MaxInt64, Hash: math.MaxUint64, Ver: 0},
			{Service: "neg", ID: id, Seqnum: -1, Ver: 127},
		}},
		core.Fetch{},
		core.Fetch{Keys: []records.Key{{Service: "storage", ID: id}, {Service: "x", ID: testKey(t, 2).ID()}}},
		core.Records{},
		core.Records{Recs: []announce.Signed{rec, {}, {Msg: strings.Repeat("m", 300), Sig: "s", Key: "k"}}},
		core.Own{},
		core.Own{Epoch: math.MaxUint64, From: 1 << 40, To: 1<<40 + 2, Recs: []announce.Signed{rec}},
		wire.Ping{},
		wire.Ping{Nonce: 42},
		wire.Pong{Nonce: math.MaxUint64},
		wire.Redeem{Secret: [16]byte{1, 2, 3, 15: 0xff}},
		wire.RedeemReply{Reason: "used"},
		wire.RedeemReply{Chain: []string{"gvc1-a", "gvc1-b"}, Revocations: []string{"gvr1-x"}, Records: []announce.Signed{rec}},
		wire.RedeemOffer{Grid: id},
		wire.RedeemOffer{Grid: id, Chain: []string{"gvc1-a", "gvc1-b"}},
		wire.RedeemConfirm{},
		wire.RedeemConfirm{Accept: true},
	}
}

func randString(r *rand.Rand, max int) string {
	n := r.IntN(max + 1)
	if r.IntN(8) == 0 {
		n = r.IntN(300) // crosses the 1- and 2-byte length prefixes
	}
	b := make([]rune, n)
	for i := range b {
		b[i] = rune(r.IntN(0x3000))
		if b[i] >= 0xd800 && b[i] < 0xe000 {
			b[i] = 'x'
		}
	}
	return string(b)
}

func randASCII(r *rand.Rand, max int) string {
	b := make([]byte, r.IntN(max+1))
	for i := range b {
		b[i] = byte(r.IntN(128))
	}
	return string(b)
}

func randUint(r *rand.Rand) uint64 {
	return r.Uint64() >> r.IntN(64) // all magnitudes
}

func randRecords(r *rand.Rand, max int) []announce.Signed {
	var recs []announce.Signed
	for range r.IntN(max + 1) {
		recs = append(recs, announce.Signed{Msg: randString(r, 200), Sig: randASCII(r, 106), Key: randASCII(r, 55)})
	}
	return recs
}

func randCerts(r *rand.Rand, max int) []string {
	var certs []string
	for range r.IntN(max + 1) {
		certs = append(certs, randString(r, 40))
	}
	return certs
}

// randMsg returns a random message of every type Encode knows.
func randMsg(r *rand.Rand) core.Msg {
	switch r.IntN(11) {
	case 0:
		return core.SyncReq{Epoch: randUint(r), Cursor: randUint(r), Neighbour: r.IntN(2) == 1}
	case 1:
		m := core.Digest{Epoch: randUint(r), From: randUint(r), To: randUint(r), More: r.IntN(2) == 1}
		for range r.IntN(20) {
			seq := int64(randUint(r))
			if r.IntN(2) == 0 {
				seq = -seq
			}
			m.Items = append(m.Items, core.Item{Service: randString(r, 12), ID: idFrom(r), Seqnum: seq, Hash: r.Uint64(), Ver: randUint(r)})
		}
		return m
	case 2:
		var m core.Fetch
		for range r.IntN(20) {
			m.Keys = append(m.Keys, records.Key{Service: randString(r, 12), ID: idFrom(r)})
		}
		return m
	case 3:
		return core.Records{Recs: randRecords(r, 7)}
	case 4:
		return wire.Ping{Nonce: r.Uint64()}
	case 5:
		return wire.Pong{Nonce: r.Uint64()}
	case 6:
		var m wire.Redeem
		for i := range m.Secret {
			m.Secret[i] = byte(r.Uint32())
		}
		return m
	case 7:
		return wire.RedeemReply{Reason: randASCII(r, 20), Chain: randCerts(r, 3), Revocations: randCerts(r, 3), Records: randRecords(r, 3)}
	case 8:
		return wire.RedeemOffer{Grid: idFrom(r), Chain: randCerts(r, 3)}
	case 9:
		return core.Own{Epoch: r.Uint64(), From: randUint(r), To: randUint(r), Recs: randRecords(r, 4)}
	default:
		return wire.RedeemConfirm{Accept: r.IntN(2) == 1}
	}
}

func roundTrip(t *testing.T, m core.Msg) {
	t.Helper()
	b, err := wire.Encode(m)
	if err != nil {
		t.Fatalf("encode %#v: %v", m, err)
	}
	if len(b) != wire.Size(m) {
		t.Fatalf("%T: encoded %d bytes, Size = %d", m, len(b), wire.Size(m))
	}
	got, err := wire.Decode(b)
	if err != nil {
		t.Fatalf("decode %T: %v", m, err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, m)
	}
	if got.Type() != m.Type() || b[0] != wire.Version || b[1] != byte(m.Type()) {
		t.Fatalf("header % x for type %d", b[:2], m.Type())
	}
}

func TestRoundTrip(t *testing.T) {
	for _, m := range samples(t) {
		roundTrip(t, m)
	}
}

// Random messages of every type: the encoding is wire.Size(m) long and
// decodes to m.
func TestRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[core.MsgType]bool{}
	for range 5000 {
		m := randMsg(r)
		seen[m.Type()] = true
		roundTrip(t, m)
	}
	for typ := range core.MsgType(255) {
		if known := wire.TypeName(typ) != "type-"+strconv.Itoa(int(typ)); known != seen[typ] {
			t.Errorf("type %d (%s): known %v, generated %v", typ, wire.TypeName(typ), known, seen[typ])
		}
	}
}

// The core sizes digests by ItemSize per item on top of the size of an
// empty digest, taken once: both must agree with Size of the whole.
func TestDigestSizeByItems(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	empty := wire.Size(core.Digest{})
	if full := wire.Size(core.Digest{Epoch: math.MaxUint64, From: math.MaxUint64, To: math.MaxUint64, More: true}); full != empty {
		t.Fatalf("an empty digest's size depends on its fields: %d and %d", empty, full)
	}
	for i := range 2000 {
		var items []core.Item
		want := empty
		for range i % 130 {
			it := core.Item{Service: strings.Repeat("s", r.IntN(300)), ID: idFrom(r),
				Seqnum: r.Int64() >> r.IntN(64), Hash: r.Uint64(), Ver: r.Uint64() >> r.IntN(64)}
			if r.IntN(2) == 0 {
				it.Seqnum = -it.Seqnum
			}
			items = append(items, it)
			want += wire.ItemSize(it)
		}
		// The item count's varint grows by one byte at 128 items.
		if len(items) >= 128 {
			want++
		}
		if got := wire.Size(core.Digest{Items: items}); got != want {
			t.Fatalf("%d items: Size %d, empty plus ItemSize each %d", len(items), got, want)
		}
	}
}

// The layouts in the package doc, byte by byte.
func TestLayout(t *testing.T) {
	k := testKey(t, 1)
	pub := k.Public()
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	u64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	for _, c := range []struct {
		m    core.Msg
		want []byte
	}{
		{core.SyncReq{Epoch: 1, Cursor: 2, Neighbour: true}, cat([]byte{1, 1}, u64(1), u64(2), []byte{1})},
		{core.Digest{Epoch: 1, From: 2, To: 3, More: true, Items: []core.Item{{Service: "s", ID: k.ID(), Seqnum: -2, Hash: 5, Ver: 300}}},
			cat([]byte{1, 2}, u64(1), u64(2), u64(3), []byte{1, 1, 1, 's'}, pub, []byte{3}, u64(5), []byte{0xac, 0x02})},
		{core.Fetch{Keys: []records.Key{{Service: "ab", ID: k.ID()}}}, cat([]byte{1, 3, 1, 2, 'a', 'b'}, pub)},
		{core.Records{Recs: []announce.Signed{{Msg: "m", Sig: "", Key: "kk"}}}, []byte{1, 4, 1, 1, 'm', 0, 2, 'k', 'k'}},
		{core.Own{Epoch: 1, From: 2, To: 3, Recs: []announce.Signed{{Msg: "m", Sig: "", Key: "kk"}}}, cat([]byte{1, 5}, u64(1), u64(2), u64(3), []byte{1, 1, 'm', 0, 2, 'k', 'k'})},
		{wire.Ping{Nonce: 7}, cat([]byte{1, 16}, u64(7))},
		{wire.Pong{Nonce: 7}, cat([]byte{1, 17}, u64(7))},
		{wire.RedeemOffer{Grid: k.ID(), Chain: []string{"c"}}, cat([]byte{1, 20}, pub, []byte{1, 1, 'c'})},
		{wire.RedeemConfirm{Accept: true}, []byte{1, 21, 1}},
	} {
		b, err := wire.Encode(c.m)
		if err != nil || !bytes.Equal(b, c.want) {
			t.Errorf("%T: got % x, %v\nwant % x", c.m, b, err, c.want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	k := testKey(t, 1)
	pub := string(k.Public())
	item := "\x01s" + pub + "\x02" + strings.Repeat("\x00", 8) + "\x01"
	digest := "\x01\x02" + strings.Repeat("\x00", 25)
	for _, c := range []struct {
		in     string
		reason wire.Reason
		field  string
		off    int
	}{
		{"", wire.ReasonTruncated, "version", 0},
		{"\x02\x01", wire.ReasonVersion, "version", 0},
		{"\x01", wire.ReasonTruncated, "type", 1},
		{"\x01\x06", wire.ReasonType, "type", 1},
		{"\x01\x05", wire.ReasonTruncated, "epoch", 2},
		{"\x01\x00", wire.ReasonType, "type", 1},
		{"\x01\x01" + strings.Repeat("\x00", 15), wire.ReasonTruncated, "cursor", 10},
		{"\x01\x01" + strings.Repeat("\x00", 16), wire.ReasonTruncated, "neighbour", 18},
		{"\x01\x01" + strings.Repeat("\x00", 16) + "\x02", wire.ReasonBadValue, "neighbour", 18},
		{"\x01\x01" + strings.Repeat("\x00", 18), wire.ReasonTrailing, "", 19},
		{"\x01\x02" + strings.Repeat("\x00", 24) + "\x02\x00", wire.ReasonBadValue, "more", 26},
		{digest, wire.ReasonTruncated, "items", 27},
		{digest + "\x80\x00", wire.ReasonNonCanonical, "items", 27},
		{digest + "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", wire.ReasonBadValue, "items", 27},
		{digest + "\x80\x40", wire.ReasonTooMany, "items", 27},
		{digest + "\x02" + item, wire.ReasonTruncated, "items", 27},
		{digest + "\x01" + item, "", "", 0},
		{digest + "\x01" + item + "\x00", wire.ReasonTrailing, "", 28 + len(item)},
		{digest + "\x01\x01\xff" + pub + "\x02" + strings.Repeat("\x00", 8) + "\x01", wire.ReasonBadUTF8, "items[0].service", 29},
		{digest + "\x01\x01s" + pub[:31], wire.ReasonTruncated, "items", 27},
		{digest + "\x01\x01s" + pub + "\x80\x00" + strings.Repeat("\x00", 8) + "\x01", wire.ReasonNonCanonical, "items[0].seqnum", 62},
		{"\x01\x03\x01\x05ab", wire.ReasonTruncated, "keys", 2},
		{"\x01\x03\x01\x05abcde" + pub[:30], wire.ReasonTruncated, "keys[0].id", 9},
		{"\x01\x04\x01\x01m\x00\x81\x02", wire.ReasonTooLong, "recs[0].key", 6},
		{"\x01\x04\x01\x80\x80\x02", wire.ReasonTooLong, "recs[0].msg", 3},
		{"\x01\x04\x01\x01m\x00", wire.ReasonTruncated, "recs[0].key", 6},
		{"\x01\x10\x00", wire.ReasonTruncated, "nonce", 2},
	} {
		m, err := wire.Decode([]byte(c.in))
		if c.reason == "" {
			if err != nil {
				t.Errorf("% x: %v", c.in, err)
			}
			continue
		}
		var we *wire.Error
		if !errors.As(err, &we) {
			t.Errorf("% x: got %#v, %v; want %s", c.in, m, err, c.reason)
			continue
		}
		if we.Reason != c.reason || we.Field != c.field || we.Offset != c.off {
			t.Errorf("% x: got %s %q at %d (%v); want %s %q at %d", c.in, we.Reason, we.Field, we.Offset, err, c.reason, c.field, c.off)
		}
		if !errors.Is(err, &wire.Error{Reason: c.reason}) {
			t.Errorf("errors.Is fails for %v", err)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	id := testKey(t, 1).ID()
	many := make([]core.Item, wire.MaxDigestItems+1)
	for _, c := range []struct {
		m      core.Msg
		reason wire.Reason
		field  string
	}{
		{nil, wire.ReasonType, "type"},
		{&core.SyncReq{}, wire.ReasonType, "type"},
		{core.Digest{Items: many}, wire.ReasonTooMany, "items"},
		{core.Fetch{Keys: make([]records.Key, wire.MaxFetchKeys+1)}, wire.ReasonTooMany, "keys"},
		{core.Records{Recs: make([]announce.Signed, wire.MaxRecords+1)}, wire.ReasonTooMany, "recs"},
		{core.Own{Recs: make([]announce.Signed, wire.MaxRecords+1)}, wire.ReasonTooMany, "recs"},
		{core.Own{Recs: []announce.Signed{{Key: strings.Repeat("k", wire.MaxKeyLen+1)}}}, wire.ReasonTooLong, "recs[0].key"},
		{core.Digest{Items: []core.Item{{Service: "s", ID: id}, {Service: "s", ID: "v0-nope"}}}, wire.ReasonBadID, "items[1].id"},
		{core.Fetch{Keys: []records.Key{{Service: "s", ID: ""}}}, wire.ReasonBadID, "keys[0].id"},
		{core.Fetch{Keys: []records.Key{{Service: "s", ID: announce.NodeID(strings.ToUpper(string(id)))}}}, wire.ReasonBadID, "keys[0].id"},
		{core.Fetch{Keys: []records.Key{{Service: "\xff", ID: id}}}, wire.ReasonBadUTF8, "keys[0].service"},
		{core.Digest{Items: []core.Item{{Service: strings.Repeat("s", wire.MaxServiceLen+1), ID: id}}}, wire.ReasonTooLong, "items[0].service"},
		{core.Records{Recs: []announce.Signed{{Sig: strings.Repeat("s", wire.MaxSigLen+1)}}}, wire.ReasonTooLong, "recs[0].sig"},
		{core.Records{Recs: make1000Recs()}, wire.ReasonTooLarge, ""},
	} {
		b, err := wire.Encode(c.m)
		var we *wire.Error
		if !errors.As(err, &we) || we.Reason != c.reason || we.Field != c.field {
			t.Errorf("%T: got %d bytes, %v; want %s %q", c.m, len(b), err, c.reason, c.field)
		}
	}
	// Append leaves its input alone on error.
	dst := []byte("keep")
	if got, err := wire.Append(dst, core.Fetch{Keys: []records.Key{{ID: "bad"}}}); err == nil || string(got) != "keep" {
		t.Errorf("Append on error: %q, %v", got, err)
	}
}

func make1000Recs() []announce.Signed {
	recs := make([]announce.Signed, 1000)
	for i := range recs {
		recs[i].Msg = strings.Repeat("m", 3000)
	}
	return recs
}

// Every valid message is encoded canonically: no other bytes decode to it.
func TestCanonical(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		b, err := wire.Encode(randMsg(r))
		if err != nil {
			t.Fatal(err)
		}
		// Flip one byte: it either fails or decodes to something that
		// encodes back to exactly the flipped bytes.
		i := r.IntN(len(b))
		b[i] ^= byte(1 + r.IntN(255))
		m, err := wire.Decode(b)
		if err != nil {
			continue
		}
		again, err := wire.Encode(m)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("% x decodes to %#v, which encodes to % x (%v)", b, m, again, err)
		}
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	ms := samples(t)
	for _, m := range ms {
		f, err := wire.EncodeFrame(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(f) != wire.FrameHeader+wire.Size(m) || binary.BigEndian.Uint32(f) != uint32(wire.Size(m)) {
			t.Fatalf("frame of %T: %d bytes", m, len(f))
		}
		buf.Write(f)
	}
	for _, m := range ms {
		b, err := wire.ReadFrame(&buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := wire.Decode(b)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("got %#v, %v; want %#v", got, err, m)
		}
	}
	if _, err := wire.ReadFrame(&buf, 0); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
	// WriteFrame writes the same bytes.
	b, _ := wire.Encode(ms[1])
	f, _ := wire.EncodeFrame(ms[1])
	buf.Reset()
	if err := wire.WriteFrame(&buf, b); err != nil || !bytes.Equal(buf.Bytes(), f) {
		t.Fatalf("WriteFrame: % x, %v", buf.Bytes(), err)
	}
}

// failReader fails the test if more than n bytes are read.
type failReader struct {
	t *testing.T
	r io.Reader
	n int
}

func (f *failReader) Read(p []byte) (int, error) {
	k, err := f.r.Read(p)
	f.n -= k
	if f.n < 0 {
		f.t.Fatal("read past the frame header")
	}
	return k, err
}

func TestReadFrameLimits(t *testing.T) {
	hdr := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	// Over the limit: refused after the header, before the body.
	body := bytes.Repeat([]byte{1}, 200)
	_, err := wire.ReadFrame(&failReader{t: t, r: bytes.NewReader(append(hdr(200), body...)), n: 4}, 100)
	if !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("got %v, want too-large", err)
	}
	_, err = wire.ReadFrame(bytes.NewReader(hdr(math.MaxUint32)), 0)
	if !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("got %v, want too-large", err)
	}
	// At the limit: fine.
	if b, err := wire.ReadFrame(bytes.NewReader(append(hdr(200), body...)), 200); err != nil || len(b) != 200 {
		t.Fatalf("got %d bytes, %v", len(b), err)
	}
	// Truncated header or body.
	for _, in := range [][]byte{{0, 0}, append(hdr(10), 1, 2), hdr(wire.MaxFrame)} {
		if _, err := wire.ReadFrame(bytes.NewReader(in), 0); err != io.ErrUnexpectedEOF {
			t.Errorf("% x: got %v, want unexpected EOF", in, err)
		}
	}
	// A large body arrives in pieces and is put together.
	big := bytes.Repeat([]byte("0123456789"), 100_000)
	b, err := wire.ReadFrame(io.MultiReader(bytes.NewReader(hdr(uint32(len(big)))), &oneByOne{big}), 0)
	if err != nil || !bytes.Equal(b, big) {
		t.Fatalf("big frame: %d bytes, %v", len(b), err)
	}
	if err := wire.WriteFrame(io.Discard, make([]byte, wire.MaxFrame+1)); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("WriteFrame over MaxFrame: %v", err)
	}
}

type oneByOne struct{ b []byte }

func (o *oneByOne) Read(p []byte) (int, error) {
	if len(o.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), 777, len(o.b))
	copy(p, o.b[:n])
	o.b = o.b[n:]
	return n, nil
}

// A truncated frame header claiming a huge body does not allocate it.
func TestReadFrameAllocatesAsBytesArrive(t *testing.T) {
	in := append(binary.BigEndian.AppendUint32(nil, wire.MaxFrame), 1, 2, 3)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := wire.ReadFrame(bytes.NewReader(in), 0); err != io.ErrUnexpectedEOF {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 10*256<<10 {
		t.Fatalf("allocated %d bytes for ten 3-byte bodies", n)
	}
}
