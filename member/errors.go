package member

import (
	"fmt"
	"strconv"
)

// Reason names why a certificate, chain, revocation or invite code was
// refused. Reasons are stable, machine-readable strings: logs, the status
// page and metrics use them.
type Reason string

// Reasons of *Error.
const (
	ReasonNotMember    Reason = "not-member"    // no chain, and not the founder
	ReasonWrongGrid    Reason = "wrong-grid"    // a certificate or revocation of another grid
	ReasonBrokenChain  Reason = "broken-chain"  // a certificate not issued by the previous one's subject (the first: by the founder)
	ReasonWrongSubject Reason = "wrong-subject" // the chain ends at someone else
	ReasonTooDeep      Reason = "too-deep"      // more than MaxDepth certificates
	ReasonBadSignature Reason = "bad-signature" // well-formed, but not signed by the issuer
	ReasonMalformed    Reason = "malformed"     // not the canonical encoding, or a field that is not a node ID
	ReasonRevoked      Reason = "revoked"       // a certificate of the chain is revoked
	ReasonNotIssuer    Reason = "not-issuer"    // Revoke: only a certificate's issuer may revoke it
	ReasonFull         Reason = "full"          // RevocationSet.Add: the set holds its maximum
)

// Reasons of *InviteError (it also uses ReasonMalformed).
const (
	ReasonNotAnInvite Reason = "not-an-invite" // no gv1- prefix, or a version this package does not read
	ReasonMistyped    Reason = "mistyped"      // checksum mismatch or characters codes do not use
)

// Error is the error this package returns for bad certificates, chains and
// revocations. Index is the position in the chain of the certificate at
// fault, or -1 when the error is not about one certificate of a chain
// (not-member, a lone ParseCert, revocations).
type Error struct {
	Reason Reason
	Index  int
	Detail string
}

func (e *Error) Error() string {
	s := "member: " + string(e.Reason)
	if e.Index >= 0 {
		s += " at certificate " + strconv.Itoa(e.Index)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Is makes errors.Is(err, ErrRevoked) and friends match on Reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Detail == "" && t.Index == 0 && t.Reason == e.Reason
}

// Sentinels for errors.Is.
var (
	ErrNotMember    = &Error{Reason: ReasonNotMember}
	ErrWrongGrid    = &Error{Reason: ReasonWrongGrid}
	ErrBrokenChain  = &Error{Reason: ReasonBrokenChain}
	ErrWrongSubject = &Error{Reason: ReasonWrongSubject}
	ErrTooDeep      = &Error{Reason: ReasonTooDeep}
	ErrBadSignature = &Error{Reason: ReasonBadSignature}
	ErrMalformed    = &Error{Reason: ReasonMalformed}
	ErrRevoked      = &Error{Reason: ReasonRevoked}
	ErrNotIssuer    = &Error{Reason: ReasonNotIssuer}
	ErrFull         = &Error{Reason: ReasonFull}
)

func errorf(r Reason, index int, format string, args ...any) *Error {
	return &Error{Reason: r, Index: index, Detail: fmt.Sprintf(format, args...)}
}

// at returns err located at certificate i of a chain.
func at(err error, i int) error {
	if e, ok := err.(*Error); ok {
		c := *e
		c.Index = i
		return &c
	}
	return err
}

// InviteError is the error ParseInvite (and NewInvite, for bad arguments)
// returns. Its message is meant for the person who typed the code.
type InviteError struct {
	Reason Reason // ReasonNotAnInvite, ReasonMistyped or ReasonMalformed
	Detail string
}

func (e *InviteError) Error() string {
	switch e.Reason {
	case ReasonNotAnInvite:
		return "not a Grapevine invite code: " + e.Detail
	case ReasonMistyped:
		return "invite code mistyped (" + e.Detail + "): check the code for typos"
	default:
		return "invite code " + string(e.Reason) + ": " + e.Detail
	}
}

// Is makes errors.Is(err, ErrMistyped) and friends match on Reason.
func (e *InviteError) Is(target error) bool {
	t, ok := target.(*InviteError)
	return ok && t.Detail == "" && t.Reason == e.Reason
}

// Sentinels for errors.Is on invite codes.
var (
	ErrNotAnInvite     = &InviteError{Reason: ReasonNotAnInvite}
	ErrMistyped        = &InviteError{Reason: ReasonMistyped}
	ErrMalformedInvite = &InviteError{Reason: ReasonMalformed}
)

func inviteErrorf(r Reason, format string, args ...any) *InviteError {
	return &InviteError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}
