package daemon

import "net/http"

// handler serves the status endpoint: the page, the JSON API, metrics.
func (d *Daemon) handler() http.Handler {
	mux := http.NewServeMux()
	d.statusHandlers(mux)     // status.go: /v1/status, /v1/import
	d.membershipHandlers(mux) // members.go: /v1/members, /v1/invites, /v1/revoke
	d.pageHandlers(mux)       // page.go: the HTML status page
	d.apiHandlers(mux)        // api.go: the rest of the JSON API
	d.metricsHandlers(mux)    // metrics.go: /metrics
	d.tahoeHandlers(mux)      // tahoe.go: /v1/tahoe/servers
	return d.guard(mux)
}
