package daemon

import "net/http"

// apiHandlers serves the JSON API beyond /v1/status.
func (d *Daemon) apiHandlers(mux *http.ServeMux) {}
