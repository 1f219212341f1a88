package daemon

import "grapevine/client/apitype"

// The JSON API's documents are defined in package apitype, which package
// client decodes them with.
type (
	Status          = apitype.Status
	ServerStatus    = apitype.ServerStatus
	ForgottenEntry  = apitype.ForgottenEntry
	EventStatus     = apitype.EventStatus
	Introducer      = apitype.Introducer
	SubscriberState = apitype.SubscriberState
	ServerList      = apitype.ServerList
	ServerHistory   = apitype.ServerHistory
	IntervalStatus  = apitype.IntervalStatus
	ForgetResult    = apitype.ForgetResult
	Permuted        = apitype.Permuted
	PermutedServer  = apitype.PermutedServer
	Members         = apitype.Members
	MemberEdge      = apitype.MemberEdge
	TahoeView       = apitype.TahoeView
	TahoeServer     = apitype.TahoeServer
	TahoeHint       = apitype.TahoeHint
)
