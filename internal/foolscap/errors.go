package foolscap

import (
	"errors"
	"fmt"
	"strings"
)

// ProtocolError is a fundamental Banana protocol violation (foolscap's
// BananaError) or a breached decoding limit. The connection is dropped after
// an ERROR token carrying the message is sent.
type ProtocolError struct {
	Offset int64  // byte offset of the offending token in the Banana stream
	Token  string // token type name, e.g. "STRING"
	Msg    string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("foolscap: protocol error at byte %d (%s): %s", e.Offset, e.Token, e.Msg)
}

// Violation is a semantic problem with one top-level message (unknown
// sequence type, unknown object or request ID, ABORT from the sender...).
// The rest of that message is discarded; the connection stays up. For an
// inbound call the caller receives a foolscap.tokens.Violation failure.
type Violation struct {
	Offset int64
	Msg    string
}

func (e *Violation) Error() string {
	return fmt.Sprintf("foolscap: violation at byte %d: %s", e.Offset, e.Msg)
}

// PeerError is an ERROR token received from the peer (it hangs up next).
type PeerError struct{ Msg string }

func (e *PeerError) Error() string { return "foolscap: peer reported error: " + e.Msg }

// NegotiationError reports a failed connection negotiation. Remote is true
// when the peer sent the error (in an "error" block).
type NegotiationError struct {
	Msg    string
	Remote bool
}

func (e *NegotiationError) Error() string {
	if e.Remote {
		return "foolscap: remote negotiation error: " + e.Msg
	}
	return "foolscap: negotiation error: " + e.Msg
}

// CorruptTubError is returned by LoadOrCreateTub when the PEM file exists
// but cannot be used. The file is left untouched.
type CorruptTubError struct {
	Path string
	Err  error
}

func (e *CorruptTubError) Error() string {
	return fmt.Sprintf("foolscap: corrupt tub certificate file %s: %v", e.Path, e.Err)
}
func (e *CorruptTubError) Unwrap() error { return e.Err }

var (
	// ErrConnClosed is returned (wrapped) by calls on a connection that has
	// ended; Conn.Err gives the cause.
	ErrConnClosed = errors.New("foolscap: connection closed")
	// ErrServerClosed is returned by Serve after Close.
	ErrServerClosed = errors.New("foolscap: server closed")
	// ErrIdleTimeout is the Conn.Err of a connection dropped for silence.
	ErrIdleTimeout = errors.New("foolscap: connection idle timeout")
	// ErrReleased is returned by calls on a released RemoteRef.
	ErrReleased = errors.New("foolscap: remote reference released")
	// ErrReplaced is the Conn.Err of a connection replaced by a newer one
	// from the same tub.
	ErrReplaced = errors.New("foolscap: replaced by a new connection")
)

// RemoteError is a failure crossing the wire: a Python
// twisted.python.failure.Failure sent as ('copyable',
// 'twisted.python.failure.Failure') with state keys value, type, traceback
// and parents. Remote calls that fail return *RemoteError; an Object may
// return one to choose the exception type the Python caller sees.
type RemoteError struct {
	Type      string   // e.g. "builtins.ValueError"
	Value     string   // str(exception)
	Traceback string   // may be "Traceback unavailable\n"
	Parents   []string // class MRO names; CopiedFailure.check() uses them
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("foolscap: remote %s: %s", e.Type, e.Value)
}

// Check reports whether the remote exception is (a subclass of) the
// fully-qualified Python class name, like Failure.check.
func (e *RemoteError) Check(qualname string) bool {
	if e.Type == qualname {
		return true
	}
	for _, p := range e.Parents {
		if p == qualname {
			return true
		}
	}
	return false
}

// Python class names used in failures we send.
const (
	pyException = "builtins.Exception"
	pyViolation = "foolscap.tokens.Violation"
	pyKeyError  = "builtins.KeyError"
)

// NewRemoteViolation returns an error that Python receives as a
// foolscap.tokens.Violation failure (what foolscap raises for unknown
// methods or bad arguments).
func NewRemoteViolation(msg string) *RemoteError {
	return &RemoteError{Type: pyViolation, Value: msg,
		Parents: []string{pyViolation, pyException, "builtins.BaseException", "builtins.object"}}
}

// toRemoteError converts any error returned by an Object into the failure
// sent to the peer.
func toRemoteError(err error) *RemoteError {
	var re *RemoteError
	if errors.As(err, &re) {
		return re
	}
	var v *Violation
	if errors.As(err, &v) {
		return NewRemoteViolation(v.Msg)
	}
	return &RemoteError{Type: pyException, Value: err.Error(),
		Parents: []string{pyException, "builtins.BaseException", "builtins.object"}}
}

func truncateStr(s string, limit int) string {
	if len(s) > limit {
		return s[:limit-3] + ".."
	}
	return s
}

// sanitizeLine removes CR/LF for use in negotiation lines.
func sanitizeLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}
