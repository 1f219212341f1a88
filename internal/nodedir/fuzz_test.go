package nodedir

import (
	"errors"
	"testing"
)

// FuzzParseConfig: ParseConfig never panics, refuses only with a
// *ConfigError, and what it accepts encodes to a file it accepts again
// with the same meaning.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("listen: 127.0.0.1:7370\n"))
	f.Add([]byte("nickname: a\nlisten: 127.0.0.1:0\nservices:\n  - name: storage\n    furl: pb://x@tcp:h:1/s\nrules:\n  preset: test\n  forget_horizon: 3m\n"))
	f.Add([]byte("listen: 127.0.0.1:1\ngrid: v0-vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq\nmembership: [gvc1-aa]\n"))
	f.Add([]byte("listen: [::1]:7370\nbootstrap: [\"gv://v0-vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq@h:1\"]\n"))
	f.Add([]byte("{listen: 1, nickname: [}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig("g.yaml", data)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *ConfigError: %v", err, err)
			}
			return
		}
		again, err := ParseConfig("g.yaml", c.Encode())
		if err != nil {
			t.Fatalf("accepted config does not survive Encode: %v\n%s", err, c.Encode())
		}
		if string(again.Encode()) != string(c.Encode()) {
			t.Fatalf("Encode is not stable:\n%s\n---\n%s", c.Encode(), again.Encode())
		}
	})
}
