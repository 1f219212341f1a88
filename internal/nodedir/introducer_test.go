package nodedir_test

import (
	"reflect"
	"strings"
	"testing"

	"grapevine/internal/nodedir"
)

// The introducer and tahoe sections survive Encode, default sensibly and
// refuse bad values with the field and line.
func TestIntroducerConfig(t *testing.T) {
	c := &nodedir.Config{Listen: "127.0.0.1:7370",
		Introducer: nodedir.IntroducerConfig{Listen: "127.0.0.1:3460", Location: []string{"127.0.0.1:3460", "example.org:3460"}},
		Tahoe:      nodedir.TahoeConfig{NodeDir: "/srv/tahoe", Petname: "gv"}}
	got, err := nodedir.ParseConfig("x.yaml", c.Encode())
	if err != nil {
		t.Fatalf("%v\n%s", err, c.Encode())
	}
	if !reflect.DeepEqual(got.Introducer, c.Introducer) || got.Tahoe != c.Tahoe {
		t.Fatalf("round trip: %+v %+v", got.Introducer, got.Tahoe)
	}
	def, err := nodedir.ParseConfig("x.yaml", []byte("listen: 127.0.0.1:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if def.Introducer.Off() || def.Introducer.ListenAddr() != nodedir.DefaultIntroducerListen || def.Tahoe.PetnameOr() != "grapevine" {
		t.Fatalf("defaults: %+v %+v", def.Introducer, def.Tahoe)
	}
	off, err := nodedir.ParseConfig("x.yaml", []byte("listen: 127.0.0.1:1\nintroducer:\n  listen: off\n"))
	if err != nil || !off.Introducer.Off() {
		t.Fatalf("off: %v %+v", err, off)
	}
	for in, want := range map[string]string{
		"listen: 127.0.0.1:1\nintroducer:\n  listen: nowhere\n":             "x.yaml:3: introducer.listen:",
		"listen: 127.0.0.1:1\nintroducer:\n  location: [\"h:0x\"]\n":        "x.yaml:3: introducer.location[0]:",
		"listen: 127.0.0.1:1\ntahoe:\n  node_dir: /x\n  petname: \"a b\"\n": "x.yaml:4: tahoe.petname:",
		"listen: 127.0.0.1:1\nintroducer:\n  lisen: 127.0.0.1:1\n":          "unknown field",
	} {
		_, err := nodedir.ParseConfig("x.yaml", []byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}
