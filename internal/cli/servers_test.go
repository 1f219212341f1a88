package cli

import (
	"testing"
	"time"

	"grapevine/daemon"
)

// Hosted Tahoe servers say who keeps them live.
func TestStatusPhraseHosting(t *testing.T) {
	host := "v0-vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq"
	for _, tc := range []struct {
		s    daemon.ServerStatus
		want string
	}{
		{daemon.ServerStatus{HostedHere: true}, "Publishing here (Tahoe, hosted)"},
		{daemon.ServerStatus{Hosts: []string{host}, LastConnectedAgo: -1}, "Hosted by vhhmjyjp"},
		{daemon.ServerStatus{LastConnectedAgo: -1}, "Not connected (never)"},
	} {
		if got := statusPhrase(tc.s, time.Time{}); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.s, got, tc.want)
		}
	}
}
