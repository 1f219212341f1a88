package nodedir

import (
	"strings"
	"testing"
	"time"
)

func TestRules(t *testing.T) {
	base := "listen: 127.0.0.1:0\n"
	c, err := ParseConfig("g.yaml", []byte(base+"rules:\n  preset: test\n  forget_horizon: 3m\n  tombstone_ttl: 1d\n"))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := c.CoreConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cc.ForgetHorizon != 3*time.Minute || cc.TombstoneTTL != 24*time.Hour || cc.LivenessWindow != 30*time.Second {
		t.Fatalf("got H %v T %v W %v", cc.ForgetHorizon, cc.TombstoneTTL, cc.LivenessWindow)
	}
	again, err := ParseConfig("g.yaml", c.Encode())
	if err != nil || again.Rules != c.Rules {
		t.Fatalf("encode round trip: %v %+v", err, again)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"rules:\n  preset: fast\n", `g.yaml:3: rules.preset: "fast"`},
		{"rules:\n  forget_horizon: 1h\n", "g.yaml:2: rules: ForgetHorizon 1h0m0s must exceed LivenessWindow"},
		{"rules:\n  liveness_window: soon\n", `g.yaml:3: duration "soon"`},
		{"rules:\n  max_dials_in_flight: -1\n", "g.yaml:3: rules.max_dials_in_flight: must be at least 1"},
		{"status: nowhere\n", "g.yaml:2: status: address"},
	} {
		_, err := ParseConfig("g.yaml", []byte(base+tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
