package apitype

import (
	"errors"
	"net/http"
	"strings"
)

// The kinds of failure the API answers with, each under one HTTP status
// (docs/api.md, Errors). The daemon answers an error matching one
// (errors.Is) with its status, and package client returns errors that
// match the kind of the status it got.
var (
	ErrBadRequest   = errors.New("bad request")           // 400: malformed, or the operation is refused
	ErrUnauthorized = errors.New("unauthorized")          // 401: the API token is missing or wrong
	ErrForbidden    = errors.New("forbidden")             // 403: a read from a non-loopback client
	ErrNotFound     = errors.New("not found")             // 404: no such endpoint or server
	ErrConflict     = errors.New("conflict")              // 409: ambiguous prefix, nothing to forget, open grid
	ErrImportLimit  = errors.New("import over a limit")   // 413: too many records or bytes
	ErrMisdirected  = errors.New("misdirected request")   // 421: a Host that is not local
	ErrReadOnly     = errors.New("node is read-only")     // 503: the node cannot write its files
	ErrShuttingDown = errors.New("node is shutting down") // 503: the node is stopping
)

// kinds pairs each kind with its status.
var kinds = []struct {
	err  error
	code int
}{
	{ErrBadRequest, http.StatusBadRequest},
	{ErrUnauthorized, http.StatusUnauthorized},
	{ErrForbidden, http.StatusForbidden},
	{ErrNotFound, http.StatusNotFound},
	{ErrConflict, http.StatusConflict},
	{ErrImportLimit, http.StatusRequestEntityTooLarge},
	{ErrMisdirected, http.StatusMisdirectedRequest},
	{ErrReadOnly, http.StatusServiceUnavailable},
	{ErrShuttingDown, http.StatusServiceUnavailable},
}

// StatusCode is the status the API answers err with: that of the first
// kind err matches, or 500 if it matches none.
func StatusCode(err error) int {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.code
		}
	}
	return http.StatusInternalServerError
}

// readOnlyPrefix starts the message of every ErrReadOnly answer (the
// daemon's ReadOnlyError): it tells a read-only refusal from a shutdown,
// both 503.
const readOnlyPrefix = "node is read-only: "

// KindOf is the kind of a failed answer, from its status code and its
// message line; nil for a status without one (500, 405, ...).
func KindOf(code int, msg string) error {
	if code == http.StatusServiceUnavailable {
		if strings.HasPrefix(msg, readOnlyPrefix) {
			return ErrReadOnly
		}
		return ErrShuttingDown
	}
	for _, k := range kinds {
		if k.code == code {
			return k.err
		}
	}
	return nil
}
