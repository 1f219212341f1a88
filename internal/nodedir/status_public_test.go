package nodedir

import "testing"

// status_public is read, written back by Encode, and off by default.
func TestStatusPublic(t *testing.T) {
	c, err := ParseConfig("grapevine.yaml", []byte("listen: 127.0.0.1:0\nstatus: 0.0.0.0:7380\nstatus_public: true\n"))
	if err != nil || !c.StatusPublic {
		t.Fatalf("%+v %v", c, err)
	}
	back, err := ParseConfig("grapevine.yaml", c.Encode())
	if err != nil || !back.StatusPublic {
		t.Fatalf("after Encode: %+v %v\n%s", back, err, c.Encode())
	}
	c.StatusPublic = false
	if back, err := ParseConfig("grapevine.yaml", c.Encode()); err != nil || back.StatusPublic {
		t.Fatalf("default: %+v %v", back, err)
	}
	if _, err := ParseConfig("grapevine.yaml", []byte("listen: 127.0.0.1:0\nstatus_public: maybe\n")); err == nil {
		t.Fatal("status_public: maybe was accepted")
	}
}
