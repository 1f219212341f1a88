package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"grapevine/announce"
)

// A signed body with NaN or Infinity (Python's json accepts both) verifies
// and is printed as Python writes it.
func TestAnnVerifyNonFinite(t *testing.T) {
	key, err := announce.NewPrivateKey(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	body, err := announce.ParseJSON([]byte(`{"service-name": "storage", "seqnum": 1, "load": NaN, "cap": -Infinity}`))
	if err != nil {
		t.Fatal(err)
	}
	in, err := json.Marshal(announce.Sign(key, body))
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"ann", "verify"}, bytes.NewReader(in), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	if want := `"load": NaN, "cap": -Infinity`; !strings.Contains(stdout.String(), want) {
		t.Errorf("printed %q, want it to hold %q", stdout.String(), want)
	}
}
