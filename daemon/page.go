package daemon

import "net/http"

// pageHandlers serves the HTML status page.
func (d *Daemon) pageHandlers(mux *http.ServeMux) {}
