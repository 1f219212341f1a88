// Package tahoe reads and writes the files in which Tahoe-LAFS keeps what
// it knows about storage servers, so that a Tahoe grid can move to
// Grapevine and a Tahoe client can use what Grapevine learnt.
//
// # Reading: introducer caches and servers.yaml
//
// Parse reads either of Tahoe's two files:
//
//   - the introducer cache, private/introducer_<petname>_cache.yaml: a YAML
//     list of {ann: <announcement dict>, key_s: "v0-..."};
//   - the static server list, private/servers.yaml:
//     storage: {<key_s>: {ann: {nickname, anonymous-storage-FURL, ...}}}.
//
// Parsing is strict: a file that is not one of these, an entry without a
// well-formed key, an announcement field of the wrong type, or one that
// says nothing about how to reach its server is an *Error with the file
// and line. Unknown announcement fields are ignored, as Tahoe ignores
// them. Files are bounded by MaxFileSize and MaxEntries.
//
// # Trust: hints, never records
//
// Neither file carries signatures: Tahoe verifies an announcement when it
// arrives and then stores only the parsed dict. So an entry cannot become
// a Grapevine record: it cannot be verified, so it cannot be held, passed
// on or compared by seqnum with signed ones. An imported entry is a Hint:
// the key, and what the file claims about reaching it. Hints live in their
// own file (HintsFile in the node directory), apart from the peer book;
// nothing in the protocol reads them. A hint cannot be dialled either:
// Tahoe announcements carry FURLs and NURLs, not the gv:// locators of a
// Grapevine endpoint. What the node uses is the signed announcement it
// learns from the server itself or from gossip; Check compares a hint with
// it.
//
// # Writing: servers.yaml
//
// EncodeServers writes a servers.yaml for Tahoe from announcements whose
// signatures were verified (AnnOf extracts what Tahoe's storage client
// reads from one). OneIDPerEndpoint first keeps one announcement per
// storage endpoint, so that Tahoe never sees one server under two IDs.
package tahoe

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"grapevine/announce"
)

// Service is the only service Tahoe's files list.
const Service = "storage"

// Announcement fields Tahoe's storage client reads.
const (
	FieldNickname        = "nickname"
	FieldFURL            = "anonymous-storage-FURL"
	FieldNURLs           = "anonymous-storage-NURLs"
	FieldPermutationSeed = "permutation-seed-base32"
	FieldServiceName     = "service-name"
	FieldSeqnum          = "seqnum"
)

// Ann is what a storage announcement says about its server: the fields of
// Tahoe's ann dict that its storage client reads, in the order Tahoe's
// documentation writes servers.yaml.
type Ann struct {
	Nickname        string   `yaml:"nickname,omitempty" json:"nickname,omitempty"`
	FURL            string   `yaml:"anonymous-storage-FURL,omitempty" json:"anonymous-storage-FURL,omitempty"`
	NURLs           []string `yaml:"anonymous-storage-NURLs,omitempty" json:"anonymous-storage-NURLs,omitempty"`
	PermutationSeed string   `yaml:"permutation-seed-base32,omitempty" json:"permutation-seed-base32,omitempty"`
}

// Reachable reports whether the announcement says how to reach the server.
func (a Ann) Reachable() bool { return a.FURL != "" || len(a.NURLs) > 0 }

// SameEndpoints reports whether a and b name the same FURL and NURLs
// (NURLs in any order: Tahoe keeps them as a set).
func (a Ann) SameEndpoints(b Ann) bool {
	if a.FURL != b.FURL || len(a.NURLs) != len(b.NURLs) {
		return false
	}
	x, y := slices.Clone(a.NURLs), slices.Clone(b.NURLs)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// AnnOf returns what a verified storage announcement says about reaching
// its server. The caller must have verified a's signature.
func AnnOf(a *announce.Announcement) (Ann, error) {
	if a.ServiceName != Service {
		return Ann{}, fmt.Errorf("%s: service %q, not %s", a.ID, a.ServiceName, Service)
	}
	var out Ann
	str := func(field string, dst *string) error {
		v, ok := a.Body.Get(field)
		if !ok {
			return nil
		}
		if v.Kind != announce.String {
			return fmt.Errorf("%s: %s is not a string", a.ID, field)
		}
		*dst = v.Str
		return nil
	}
	if err := str(FieldNickname, &out.Nickname); err != nil {
		return Ann{}, err
	}
	if err := str(FieldFURL, &out.FURL); err != nil {
		return Ann{}, err
	}
	if err := str(FieldPermutationSeed, &out.PermutationSeed); err != nil {
		return Ann{}, err
	}
	if v, ok := a.Body.Get(FieldNURLs); ok {
		if v.Kind != announce.Array {
			return Ann{}, fmt.Errorf("%s: %s is not a list", a.ID, FieldNURLs)
		}
		for _, it := range v.Items {
			if it.Kind != announce.String {
				return Ann{}, fmt.Errorf("%s: %s holds a non-string", a.ID, FieldNURLs)
			}
			out.NURLs = append(out.NURLs, it.Str)
		}
	}
	if !out.Reachable() {
		return Ann{}, fmt.Errorf("%s: no %s or %s", a.ID, FieldFURL, FieldNURLs)
	}
	return out, nil
}

// Error is a problem with a Tahoe file, with where it is.
type Error struct {
	File string
	Line int // 0 if unknown
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return e.File + ": " + e.Msg
}

// Errors are the problems found in one file, in file order.
type Errors []*Error

// maxReported bounds the problems Errors' message lists.
const maxReported = 10

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i == maxReported {
			fmt.Fprintf(&b, "\n(and %d more)", len(es)-maxReported)
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Display returns s fit for one line of a terminal: control and other
// non-printable characters are escaped, and the whole is quoted if any
// were, or if it is empty.
func Display(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == '"' }) < 0 {
		return s
	}
	return strconv.Quote(s)
}
