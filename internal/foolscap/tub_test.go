package foolscap

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateTubPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.pem")
	t1, err := LoadOrCreateTub(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	id := t1.ID()
	if len(id) != 32 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		t.Fatalf("bad tub id %q", id)
	}
	if leaf := t1.Certificate().Leaf; leaf.Subject.CommonName != "newpb_thingy" {
		t.Errorf("CN = %q", leaf.Subject.CommonName)
	}
	t2, err := LoadOrCreateTub(path)
	if err != nil {
		t.Fatal(err)
	}
	if t2.ID() != id {
		t.Fatalf("tub id changed across reload: %s vs %s", t2.ID(), id)
	}
	furl := FormatFURL(t1.ID(), []string{TCPHint("127.0.0.1", 1234)}, "x")
	if FormatFURL(t2.ID(), []string{TCPHint("127.0.0.1", 1234)}, "x") != furl {
		t.Fatal("FURL changed across reload")
	}
	if t1.Incarnation() == t2.Incarnation() {
		t.Error("incarnation should differ per load")
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*"))
	if len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

func TestLoadOrCreateTubCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.pem")
	junk := []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
	os.WriteFile(path, junk, 0o600)
	_, err := LoadOrCreateTub(path)
	var ce *CorruptTubError
	if !errors.As(err, &ce) || ce.Path != path {
		t.Fatalf("err = %v, want CorruptTubError", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, junk) {
		t.Fatal("corrupt file was modified")
	}
	// a key that does not match the certificate
	a, _ := NewTub()
	b, _ := NewTub()
	certA, _, _ := strings.Cut(string(a.PEM()), "-----BEGIN PRIVATE KEY-----")
	_, keyB, _ := strings.Cut(string(b.PEM()), "-----END CERTIFICATE-----\n")
	os.WriteFile(path, []byte(certA+keyB), 0o600)
	if _, err := LoadOrCreateTub(path); !errors.As(err, &ce) || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("mismatched key: %v", err)
	}
}

// testdata/python_tub.pem was written by foolscap's Tub.getCertData(); the
// ID is what foolscap printed for it (and equals base32(sha1(DER))).
func TestPythonTubID(t *testing.T) {
	data, err := os.ReadFile("testdata/python_tub.pem")
	if err != nil {
		t.Fatal(err)
	}
	tub, err := TubFromPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	if tub.ID() != "uvrxqfgekh4dm4mjzeduheeekhgl4awe" {
		t.Fatalf("tub id %s", tub.ID())
	}
}

func TestFURL(t *testing.T) {
	id := "uvrxqfgekh4dm4mjzeduheeekhgl4awe"
	hints := []string{TCPHint("127.0.0.1", 3456), TCPHint("::1", 7)}
	s := FormatFURL(id, hints, "swiss")
	if s != "pb://"+id+"@tcp:127.0.0.1:3456,tcp:[::1]:7/swiss" {
		t.Fatalf("FormatFURL = %s", s)
	}
	f, err := ParseFURL(s)
	if err != nil || f.TubID != id || f.Name != "swiss" || len(f.Hints) != 2 || f.Hints[1] != "tcp:[::1]:7" {
		t.Fatalf("ParseFURL = %+v, %v", f, err)
	}
	if f.String() != s {
		t.Fatal("String() does not round-trip")
	}
	if a, ok := tcpHintAddr(f.Hints[1]); !ok || a != "[::1]:7" {
		t.Fatalf("hint addr %q", a)
	}
	if f, err := ParseFURL("pb://" + id + "@/n/a"); err != nil || len(f.Hints) != 0 || f.Name != "n/a" {
		t.Fatalf("no hints: %+v %v", f, err)
	}
	for _, bad := range []string{
		"http://" + id + "@tcp:a:1/x",
		"pb://" + id + "@tcp:a:1,,tcp:b:2/x",
		"pb://short@tcp:a:1/x",
		"pb://" + strings.Repeat("1", 32) + "@tcp:a:1/x",
		"pb://" + id + "@tcp:a:1/",
		"pb://" + id + "@tcp:a:1",
	} {
		if _, err := ParseFURL(bad); err == nil {
			t.Errorf("ParseFURL(%q) succeeded", bad)
		}
	}
}

func TestNewSwissnum(t *testing.T) {
	s := NewSwissnum(bytes.NewReader(make([]byte, 20)))
	if s != strings.Repeat("a", 32) {
		t.Fatalf("zero swissnum = %q", s)
	}
	a, b := NewSwissnum(nil), NewSwissnum(nil)
	if len(a) != 32 || a == b {
		t.Fatalf("random swissnums %q %q", a, b)
	}
}
