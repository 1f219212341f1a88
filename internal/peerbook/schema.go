package peerbook

// appID is PRAGMA application_id of every peerbook file ("GrPv").
const appID = 0x47725076

// migrations[i] takes the schema from version i to i+1. Append only: a
// released migration is never edited.
//
// Encodings: durations and elapsed times are int64 nanoseconds; wall times
// are RFC 3339 text in UTC with nanoseconds, NULL for the zero time;
// booleans are 0 or 1; uint64 byte counts keep their bits in an int64;
// msg columns are the signed bytes, unchanged.
var migrations = []string{
	// 1: the first schema.
	`
CREATE TABLE meta (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	counter INTEGER NOT NULL,
	elapsed INTEGER NOT NULL,
	wall    TEXT
) STRICT;
INSERT INTO meta (id, counter, elapsed, wall) VALUES (1, 0, 0, NULL);

CREATE TABLE records (
	id      TEXT NOT NULL,
	service TEXT NOT NULL,
	msg     BLOB NOT NULL,
	sig     TEXT NOT NULL,
	key     TEXT NOT NULL,
	source  TEXT NOT NULL,
	PRIMARY KEY (id, service)
) STRICT, WITHOUT ROWID;

CREATE TABLE tombstones (
	id         TEXT NOT NULL,
	service    TEXT NOT NULL,
	seqnum     INTEGER NOT NULL,
	has_seqnum INTEGER NOT NULL,
	last_msg   BLOB NOT NULL,
	last_sig   TEXT NOT NULL,
	last_key   TEXT NOT NULL,
	reason     TEXT NOT NULL,
	at_e       INTEGER NOT NULL,
	at_wall    TEXT,
	PRIMARY KEY (id, service)
) STRICT, WITHOUT ROWID;

CREATE TABLE peers (
	id                  TEXT PRIMARY KEY,
	first_heard_e       INTEGER NOT NULL,
	first_heard_wall    TEXT,
	last_good_e         INTEGER NOT NULL,
	last_connected_e    INTEGER NOT NULL,
	last_connected_wall TEXT,
	last_attempt_e      INTEGER NOT NULL,
	last_attempt_wall   TEXT,
	last_attempt_failed INTEGER NOT NULL,
	last_error          TEXT NOT NULL,
	failures            INTEGER NOT NULL,
	intervals           TEXT NOT NULL, -- JSON [[start, end], ...]
	srtt                INTEGER NOT NULL,
	rttvar              INTEGER NOT NULL,
	bytes_in            INTEGER NOT NULL,
	bytes_out           INTEGER NOT NULL,
	withdrawn           INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Locators are rows, not JSON, so that any bytes survive.
CREATE TABLE peer_locators (
	peer_id TEXT NOT NULL REFERENCES peers (id) ON DELETE CASCADE,
	pos     INTEGER NOT NULL,
	locator TEXT NOT NULL,
	PRIMARY KEY (peer_id, pos)
) STRICT, WITHOUT ROWID;
`,
}
