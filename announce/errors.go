package announce

import "fmt"

// Reason names why an announcement was refused. Reasons are stable,
// machine-readable strings: logs, the status page and metrics use them.
type Reason string

const (
	ReasonTooLarge           Reason = "too-large"
	ReasonUnknownFormat      Reason = "unknown-format"
	ReasonMalformedKey       Reason = "malformed-key"
	ReasonMalformedSignature Reason = "malformed-signature"
	ReasonBadSignature       Reason = "bad-signature"
	ReasonNotJSON            Reason = "not-json"
	ReasonNotObject          Reason = "not-object"
	ReasonMissingServiceName Reason = "missing-service-name"
	ReasonBadField           Reason = "bad-field"
)

// Error is the error every function of this package returns for bad input.
// Field names the part of the input at fault: "msg", "sig", "key", or a
// member of the announcement.
type Error struct {
	Reason Reason
	Field  string
	Detail string
	Err    error
}

func (e *Error) Error() string {
	s := string(e.Reason)
	if e.Field != "" {
		s += " in " + e.Field
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrBadSignature) and friends match on Reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Field == "" && t.Detail == "" && t.Err == nil && t.Reason == e.Reason
}

// Sentinels for errors.Is.
var (
	ErrTooLarge           = &Error{Reason: ReasonTooLarge}
	ErrUnknownFormat      = &Error{Reason: ReasonUnknownFormat}
	ErrMalformedKey       = &Error{Reason: ReasonMalformedKey}
	ErrMalformedSignature = &Error{Reason: ReasonMalformedSignature}
	ErrBadSignature       = &Error{Reason: ReasonBadSignature}
	ErrNotJSON            = &Error{Reason: ReasonNotJSON}
	ErrNotObject          = &Error{Reason: ReasonNotObject}
	ErrMissingServiceName = &Error{Reason: ReasonMissingServiceName}
	ErrBadField           = &Error{Reason: ReasonBadField}
)

func errorf(r Reason, field, format string, args ...any) *Error {
	return &Error{Reason: r, Field: field, Detail: fmt.Sprintf(format, args...)}
}
