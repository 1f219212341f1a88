package cli

import (
	"bytes"
	"strings"
	"testing"

	"grapevine/announce"
	"grapevine/client/apitype"
	"grapevine/internal/tahoe"
	"grapevine/internal/testkit"
)

// A Grapevine node beside a Tahoe storage server that announces the
// server's FURL under its own key does not give the server a second ID in
// servers.yaml: the record Tahoe signed is written, and the other is named
// on standard error and in a comment at the end of the file.
func TestExportOneIDPerEndpoint(t *testing.T) {
	vs := map[string]testkit.TahoeVector{}
	for _, v := range testkit.TahoeVectors(t) {
		vs[v.Name] = v
	}
	signed := func(name string) announce.Signed {
		v := vs[name]
		return announce.Signed{Msg: v.Msg, Sig: v.Sig, Key: v.Key}
	}
	alpha, beta := signed("alpha-seq2"), signed("beta-nurls-unicode")
	alphaFURL := "pb://u33m4y7klhz3bypswqkozwetvabelhxt@tcp:192.0.2.11:51298/eiu2i7p6d6mm4ihmss7ieou5hac3wn6b"

	// The Grapevine node's own storage record: the same FURL (another port:
	// the same Tub), its own key, a higher seqnum than Tahoe's.
	gvKey, err := announce.NewPrivateKey(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	gv := announce.Sign(gvKey, announce.Build(gvKey, announce.Template{Nickname: "beside-alpha",
		Service:  announce.Service{Name: "storage", Fields: []announce.Member{{Key: "anonymous-storage-FURL", Value: announce.Str(strings.Replace(alphaFURL, "51298", "51299", 1))}}},
		Locators: []string{"gv://" + string(gvKey.ID()) + "@192.0.2.11:7370"}}, 40))
	ghost := tahoe.Hint{Key: "v0-erncpnkpd5a6nwr72p43wkvuloodbcfcddffpstcfkns7rkgtada", Ann: tahoe.Ann{Nickname: "ghost", FURL: "pb://g@tcp:192.0.2.1:1/x"}}

	view := apitype.TahoeView{
		ID: string(gvKey.ID()),
		Servers: []apitype.TahoeServer{
			{ID: string(gvKey.ID()), Self: true, Live: true, Record: gv},
			{ID: alpha.Key, Live: true, Record: alpha},
			{ID: beta.Key, Live: true, Record: beta},
		},
		Hints: []apitype.TahoeHint{{Hint: ghost, State: tahoe.Unverified, Label: ghost.Label(tahoe.Unverified)}},
	}
	ex, err := tahoeExportOf(view, "node")
	if err != nil {
		t.Fatal(err)
	}
	f, err := tahoe.Parse("servers.yaml", ex.data)
	if err != nil {
		t.Fatalf("%v\n%s", err, ex.data)
	}
	if len(f.Entries) != 2 || string(f.Entries[0].Key) != beta.Key || string(f.Entries[1].Key) != alpha.Key || f.Entries[1].Ann.FURL != alphaFURL {
		t.Fatalf("servers.yaml lists %+v, want beta and alpha as Tahoe signed them\n%s", f.Entries, ex.data)
	}
	why := string(gvKey.ID()) + " beside-alpha is the storage endpoint of " + alpha.Key +
		" storage-alpha (same FURL tub ID u33m4y7klhz3bypswqkozwetvabelhxt); kept vhhmjyjp: it has no grapevine- fields, so the Tahoe node signed it itself"
	lines := strings.Split(strings.TrimSuffix(string(ex.data), "\n"), "\n")
	if got := lines[len(lines)-2:]; got[0] != "# not listed, duplicate: "+why ||
		got[1] != "# not listed, unverified (from Tahoe cache): "+string(ghost.Key)+" ghost" {
		t.Errorf("the file ends with\n%s\nwant the duplicate, then the hint:\n%s", strings.Join(got, "\n"), why)
	}
	var stderr bytes.Buffer
	ex.report(&Env{Stderr: &stderr}, "servers.yaml")
	if !strings.Contains(stderr.String(), "wrote 2 live storage servers to servers.yaml\n") ||
		!strings.Contains(stderr.String(), "\nnot written, duplicate: "+why+"\n") {
		t.Errorf("standard error:\n%s", stderr.String())
	}

	// --watch names a duplicate once, when it first appears.
	if d := ex.newDuplicates(nil); len(d) != 1 {
		t.Errorf("new duplicates without a previous export: %v", d)
	}
	if d := ex.newDuplicates(ex); len(d) != 0 {
		t.Errorf("new duplicates against itself: %v", d)
	}
}
