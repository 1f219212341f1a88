package cli

import (
	"testing"
	"time"

	"grapevine/client/apitype"
)

// Hosted Tahoe servers say who keeps them live.
func TestStatusPhraseHosting(t *testing.T) {
	host := "v0-vhhmjyjpbmi6acgkwexpjnmg5ryoilx5upqnmv7v67x4isd4tuyq"
	for _, tc := range []struct {
		s    apitype.ServerStatus
		want string
	}{
		{apitype.ServerStatus{HostedHere: true}, "Publishing here (Tahoe, hosted)"},
		{apitype.ServerStatus{Hosts: []string{host}, LastConnectedAgo: -1}, "Hosted by vhhmjyjp"},
		{apitype.ServerStatus{LastConnectedAgo: -1}, "Not connected (never)"},
	} {
		if got := statusPhrase(tc.s, time.Time{}); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.s, got, tc.want)
		}
	}
}
