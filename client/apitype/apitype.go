// Package apitype holds the documents of the status endpoint's JSON API
// (docs/api.md): what the daemon serves and package client decodes, the
// kinds of error the API answers with, and its limits.
package apitype

import (
	"time"

	"grapevine/announce"
	"grapevine/internal/tahoe"
)

// Files of a node directory a client reads (docs/api.md).
const (
	RunDir        = "run"    // what a running node publishes about itself
	StatusFile    = "status" // in RunDir: the status endpoint's URL, while the node runs
	StatusURLFile = RunDir + "/" + StatusFile
	TokenFile     = "private/api_auth_token" // the API token
)

// MaxImport bounds the records of one POST /v1/import.
const MaxImport = 4096

// MaxImportBody bounds the body of one POST /v1/import: 16 MiB holds 4096
// records of 4 KiB (a Tahoe announcement is about 1 KiB). A client sends
// a larger import in several requests.
const MaxImportBody = 16 << 20

// Status is the JSON document at /v1/status, and the data of the status
// page and the metrics: every number on the page comes from here. Times
// are given twice: seconds ago on the node's own elapsed-time measure
// (what the rules use), and the local wall clock then (for display);
// "ago" fields are -1 and times null when it never happened.
type Status struct {
	ID         string    `json:"id"`
	Nickname   string    `json:"nickname"`
	Grid       string    `json:"grid,omitempty"` // closed grid: the founder's ID
	Locators   []string  `json:"locators"`
	Now        time.Time `json:"now"` // the local clock at the last input, when the "ago" fields were measured
	Counter    int64     `json:"counter"`
	ElapsedS   float64   `json:"elapsed_s"` // the elapsed-time measure (R5)
	Records    int       `json:"records"`
	Tombstones int       `json:"tombstones"`
	InFlight   int       `json:"dials_in_flight"`
	SyncRounds uint64    `json:"sync_rounds"`
	// Known counts the servers whose records are held; Connected those of
	// them connected now ("Connected to N of M known servers").
	Known     int              `json:"known_servers"`
	Connected int              `json:"connected_servers"`
	Servers   []ServerStatus   `json:"servers"`
	Forgotten []ForgottenEntry `json:"forgotten"`
	Events    []EventStatus    `json:"events"`

	// ReadOnly: a write of the node's files failed (a full disk, say); the
	// node runs on what it holds, sends no seqnum of its own that is not on
	// disk, refuses imports and forgets, and saves again every few seconds
	// until it can (docs/run.md). ReadOnlyReason names the file and the OS
	// error; ReadOnlySince is when it began. Both are empty while writable.
	ReadOnly       bool       `json:"read_only"`
	ReadOnlyReason string     `json:"read_only_reason"`
	ReadOnlySince  *time.Time `json:"read_only_since,omitempty"`

	// Warnings: what the operator should know about this run, one
	// sentence each, such as a peer book found empty at start.
	Warnings []string `json:"warnings"`

	// Introducer is the Foolscap introducer endpoint for Tahoe-LAFS
	// nodes: its FURL, subscribers and the servers publishing through it
	// (hosted); absent when turned off.
	Introducer *Introducer `json:"introducer,omitempty"`
}

// ServerStatus is one known node.
type ServerStatus struct {
	ID       string   `json:"id"`
	Nickname string   `json:"nickname,omitempty"`
	Services []string `json:"services"`
	Seqnum   int64    `json:"seqnum"`

	Connected      bool       `json:"connected"`
	ConnectedSince *time.Time `json:"connected_since,omitempty"`
	Dialing        bool       `json:"dialing"` // a dial is in flight: "Trying to connect"
	// NextDialInS: the next attempt is due in this long ("Reconnecting in
	// N s"); 0 if none is scheduled.
	NextDialInS      float64    `json:"next_dial_in_s"`
	LastAttemptAgo   float64    `json:"last_attempt_ago_s"`
	LastAttempt      *time.Time `json:"last_attempt,omitempty"`
	LastConnectedAgo float64    `json:"last_connected_ago_s"`
	LastConnected    *time.Time `json:"last_connected,omitempty"`
	LastReceivedAgo  float64    `json:"last_received_ago_s"` // in this run
	LastReceived     *time.Time `json:"last_received,omitempty"`
	LastGoodAgo      float64    `json:"last_good_ago_s"` // what R4 forgets by
	// LastFreshAgo: since a new seqnum from it arrived in this run.
	LastFreshAgo float64 `json:"last_fresh_ago_s"`
	Live         bool    `json:"live"` // R1: its records are passed on ("relayed")
	SRTTms       float64 `json:"srtt_ms"`
	// Uptime over the last 1, 7 and 30 days (of the node's own elapsed
	// time, since it was first heard of); null if there is no time yet.
	Uptime1d  *float64 `json:"uptime_1d"`
	Uptime7d  *float64 `json:"uptime_7d"`
	Uptime30d *float64 `json:"uptime_30d"`
	Failures  int      `json:"failures"`
	LastError string   `json:"last_error,omitempty"`
	BytesIn   uint64   `json:"bytes_in"`
	BytesOut  uint64   `json:"bytes_out"`
	Withdrawn bool     `json:"withdrawn"`
	// HostedHere: it publishes through this node's introducer endpoint;
	// Hosts: the hosts whose records keep it live (docs/design.md §9).
	HostedHere bool     `json:"hosted_here,omitempty"`
	Hosts      []string `json:"hosts,omitempty"`
	// Tombstoned says why it was forgotten, if it was.
	Tombstoned string `json:"tombstoned,omitempty"`
}

// ForgottenEntry is a tombstone: a forgotten (or withdrawn, or revoked)
// record and why.
type ForgottenEntry struct {
	ID      string    `json:"id"`
	Service string    `json:"service"`
	Seqnum  int64     `json:"seqnum"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
	AgoS    float64   `json:"ago_s"`
}

// EventStatus is one explain event.
type EventStatus struct {
	Seq     uint64            `json:"seq"`
	Wall    time.Time         `json:"time"`
	AgoS    float64           `json:"ago_s"`
	Kind    string            `json:"kind"`
	Peer    string            `json:"peer,omitempty"`
	Service string            `json:"service,omitempty"`
	Reason  string            `json:"reason,omitempty"`
	Facts   map[string]string `json:"facts,omitempty"`
}

// Introducer is what the status shows of the Foolscap introducer endpoint
// for Tahoe-LAFS nodes.
type Introducer struct {
	FURL        string            `json:"furl"`
	Subscribers []SubscriberState `json:"subscribers"`
	Hosted      []string          `json:"hosted"` // servers publishing through it now
	TahoeCache  string            `json:"tahoe_cache,omitempty"`
}

// SubscriberState is one subscription.
type SubscriberState struct {
	Tub      string `json:"tub"`
	Nickname string `json:"nickname,omitempty"`
	Service  string `json:"service"`
	Sent     int    `json:"sent"`
	Errors   int    `json:"errors"`
}

// ServerList is the document at GET /v1/servers.
type ServerList struct {
	Now       time.Time `json:"now"`
	Known     int       `json:"known_servers"`
	Connected int       `json:"connected_servers"`
	Live      int       `json:"live_servers"`
	// Servers: every node known, live servers first, then the rest; by
	// nickname and ID within each.
	Servers []ServerStatus `json:"servers"`
}

// ServerHistory is the document at GET /v1/servers/{id}: one server's
// status, its connection history and the recent decisions about it.
type ServerHistory struct {
	Now            time.Time    `json:"now"`
	Server         ServerStatus `json:"server"`
	Locators       []string     `json:"locators"`
	FirstHeard     time.Time    `json:"first_heard"`
	FirstHeardAgoS float64      `json:"first_heard_ago_s"`
	// Intervals: the spans it was connected, oldest first (at most 64;
	// older ones are merged), the open one last while it is connected.
	Intervals []IntervalStatus `json:"intervals"`
	// Forgotten: its tombstones.
	Forgotten []ForgottenEntry `json:"forgotten"`
	// Events: the recent explain events about it, oldest first.
	Events []EventStatus `json:"events"`
}

// IntervalStatus is one span of connection. Times are on the node's own
// elapsed-time measure, shown as seconds ago and as the wall time that is
// that long before now: time the node was stopped is not counted, so
// spans before a restart show later than they happened.
type IntervalStatus struct {
	Start     time.Time  `json:"start"`
	End       *time.Time `json:"end"` // null while open
	StartAgoS float64    `json:"start_ago_s"`
	EndAgoS   float64    `json:"end_ago_s"` // 0 while open
	DurationS float64    `json:"duration_s"`
	Open      bool       `json:"open"`
}

// ForgetResult is the answer of POST /v1/forget.
type ForgetResult struct {
	ID        string           `json:"id"`
	Nickname  string           `json:"nickname,omitempty"`
	Forgotten []ForgottenEntry `json:"forgotten"` // its tombstones now
	Events    []EventStatus    `json:"events"`    // the decisions the forget made
}

// Permuted is the answer of GET /v1/permuted: the live storage servers in
// the order a Tahoe-LAFS client would try them for one storage index.
type Permuted struct {
	StorageIndex    string           `json:"storage_index"`     // Tahoe's base32 (si_b2a)
	StorageIndexHex string           `json:"storage_index_hex"` // the same 16 bytes in hex
	Hash            string           `json:"hash"`              // "sha1(storage_index + permutation_seed)"
	Servers         []PermutedServer `json:"servers"`
}

// PermutedServer is one storage server in permuted order.
type PermutedServer struct {
	ID       string `json:"id"`
	Nickname string `json:"nickname,omitempty"`
	// PermutationSeed is the seed in Tahoe's base32; SeedFrom says where
	// it came from: "announcement" (permutation-seed-base32) or "key".
	PermutationSeed string   `json:"permutation_seed_base32"`
	SeedFrom        string   `json:"seed_from"`
	Hash            string   `json:"hash"` // hex SHA-1, the sort key
	Connected       bool     `json:"connected"`
	FURL            string   `json:"furl,omitempty"`
	NURLs           []string `json:"nurls,omitempty"`
}

// Members is the JSON document at /v1/members: who invited whom, as the
// certificate chains in held records show it.
type Members struct {
	Grid    string       `json:"grid"`
	Invites []MemberEdge `json:"invites"` // issuer -> subject, in chain order
}

// MemberEdge is one certificate: Issuer invited Subject.
type MemberEdge struct {
	Issuer   string   `json:"issuer"`
	Subject  string   `json:"subject"`
	Services []string `json:"services,omitempty"` // the subject's held records
	Revoked  bool     `json:"revoked"`
}

// ForgetRequest is the body of POST /v1/forget.
type ForgetRequest struct {
	ID string `json:"id"` // a server ID or an unambiguous prefix of one
}

// InviteRequest is the body of POST /v1/invites.
type InviteRequest struct {
	Uses    int    `json:"uses"`
	Expires string `json:"expires"` // a duration such as "7d" or "12h"
}

// InviteCode is the answer of POST /v1/invites.
type InviteCode struct {
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"` // on the node's clock
	ID      string    `json:"id"`
	Uses    int       `json:"uses"`
}

// RevokeRequest is the body of POST /v1/revoke.
type RevokeRequest struct {
	Member string `json:"member"` // the member's node ID
}

// Revoked is the answer of POST /v1/revoke.
type Revoked struct {
	Revocations []string `json:"revocations"` // the revocations signed
}

// TahoeView is the document at GET /v1/tahoe/servers: the storage servers
// whose signed records the node holds, with the records themselves so
// that tahoe export can verify them again and build Tahoe's
// servers.yaml from them, and the unsigned hints imported from Tahoe
// (tahoe.HintsFile) with what became of each.
type TahoeView struct {
	ID      string        `json:"id"` // the node's
	Servers []TahoeServer `json:"servers"`
	Hints   []TahoeHint   `json:"hints"`
	// HintsError: the hints file could not be read; Hints is empty.
	HintsError string `json:"hints_error,omitempty"`
}

// TahoeServer is one storage server the node holds a signed record of.
type TahoeServer struct {
	ID        string          `json:"id"`
	Self      bool            `json:"self,omitempty"` // the node's own record
	Live      bool            `json:"live"`           // R1, as in /v1/status
	Connected bool            `json:"connected"`
	Record    announce.Signed `json:"record"`
}

// TahoeHint is an imported hint and its state against the held records.
type TahoeHint struct {
	tahoe.Hint
	State tahoe.HintState `json:"state"`
	Label string          `json:"label"` // e.g. "unverified (from Tahoe cache)"
}
