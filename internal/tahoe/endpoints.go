package tahoe

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"grapevine/announce"
)

// Candidate is a verified storage announcement that may go into a
// servers.yaml: the server, its signed seqnum, and whether it carries
// Grapevine's fields.
type Candidate struct {
	Server
	Seqnum    int64
	HasSeqnum bool
	// Grapevine: the announcement has fields named "grapevine-..."
	// (announce.FieldLocators and the others), so a Grapevine node signed
	// it. Tahoe signs none of them.
	Grapevine bool
}

// CandidateOf describes a verified storage announcement whose Ann is ann.
func CandidateOf(a *announce.Announcement, ann Ann) Candidate {
	c := Candidate{Server: Server{Key: a.ID, Ann: ann}, Seqnum: a.Seqnum, HasSeqnum: a.HasSeqnum}
	for _, m := range a.Body.Members {
		if strings.HasPrefix(m.Key, "grapevine-") {
			c.Grapevine = true
			break
		}
	}
	return c
}

// Dropped is a candidate left out of servers.yaml because another one,
// Kept, names the same storage endpoint.
type Dropped struct {
	Server Server
	Kept   Server
	// Same is what they share: "FURL tub ID x", "NURL u" or "NURL tub
	// x", followed by "as v0-..." if the two are one endpoint only
	// through a third candidate.
	Same string
	Why  string // why Kept was kept rather than Server
}

// String says what was dropped and why, on one line.
func (d Dropped) String() string {
	return fmt.Sprintf("%s %s is the storage endpoint of %s %s (same %s); kept %s: %s",
		d.Server.Key, Display(d.Server.Ann.Nickname), d.Kept.Key, Display(d.Kept.Ann.Nickname), d.Same, d.Kept.Key.Short(), d.Why)
}

// OneIDPerEndpoint keeps one candidate per storage endpoint. Two
// candidates are one endpoint if their anonymous-storage-FURLs have the
// same Tub ID (the part between "pb://" and "@", compared in lower case
// as Tahoe does), or they share a NURL, or two of their NURLs have the
// same Tub part (the hash of the server's TLS key, before "@"); this is
// transitive. A FURL's Tub ID is not compared with a NURL's Tub part: they
// are different hashes. Without this, Tahoe would see one server under two
// IDs and could place two shares of a file on it, unknowingly.
//
// Of each group it keeps, in this order of preference: the announcement
// without Grapevine's fields, which is the one the Tahoe node signed
// itself; the higher seqnum; the lower key. The result does not depend on
// the order of cs: kept is ordered by key, dropped by the dropped key.
func OneIDPerEndpoint(cs []Candidate) (kept []Server, dropped []Dropped) {
	parent := make([]int, len(cs))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		if parent[i] != i {
			parent[i] = find(parent[i])
		}
		return parent[i]
	}
	seen := map[string]int{}
	for i, c := range cs {
		for _, id := range endpointIDs(c.Ann) {
			j, ok := seen[id]
			if !ok {
				seen[id] = i
			} else if a, b := find(i), find(j); a != b {
				parent[a] = b
			}
		}
	}
	groups := map[int][]int{}
	for i := range cs {
		r := find(i)
		groups[r] = append(groups[r], i)
	}
	for _, g := range groups {
		slices.SortFunc(g, func(a, b int) int { return better(cs[a], cs[b]) })
		best := cs[g[0]]
		kept = append(kept, best.Server)
		for _, i := range g[1:] {
			same := commonID(cs[i].Ann, best.Ann)
			for _, m := range g[1:] {
				if same != "" {
					break
				}
				if id := commonID(cs[i].Ann, cs[m].Ann); m != i && id != "" {
					same = id + " as " + cs[m].Key.Short()
				}
			}
			dropped = append(dropped, Dropped{Server: cs[i].Server, Kept: best.Server, Same: same, Why: why(best, cs[i])})
		}
	}
	slices.SortFunc(kept, func(a, b Server) int { return strings.Compare(string(a.Key), string(b.Key)) })
	slices.SortFunc(dropped, func(a, b Dropped) int { return strings.Compare(string(a.Server.Key), string(b.Server.Key)) })
	return kept, dropped
}

// better orders a before b if a is to be kept rather than b.
func better(a, b Candidate) int {
	if a.Grapevine != b.Grapevine {
		if !a.Grapevine {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(seqnumOf(b), seqnumOf(a)); c != 0 {
		return c
	}
	return strings.Compare(string(a.Key), string(b.Key))
}

func seqnumOf(c Candidate) int64 {
	if !c.HasSeqnum {
		return math.MinInt64
	}
	return c.Seqnum
}

// why says why kept won over lost.
func why(kept, lost Candidate) string {
	switch {
	case kept.Grapevine != lost.Grapevine:
		return "it has no grapevine- fields, so the Tahoe node signed it itself"
	case seqnumOf(kept) != seqnumOf(lost) && !lost.HasSeqnum:
		return fmt.Sprintf("the higher seqnum (%d; the other has none)", kept.Seqnum)
	case seqnumOf(kept) != seqnumOf(lost):
		return fmt.Sprintf("the higher seqnum (%d > %d)", kept.Seqnum, lost.Seqnum)
	}
	return "the lower key (both or neither have grapevine- fields, and the seqnums are equal)"
}

// endpointIDs are the strings that name a's storage endpoint: two Anns
// that share one name the same server.
func endpointIDs(a Ann) []string {
	var ids []string
	if t := tubPart(a.FURL); t != "" {
		ids = append(ids, "FURL tub ID "+strings.ToLower(t))
	} else if a.FURL != "" {
		ids = append(ids, "FURL "+a.FURL) // no Tub ID: Tahoe cannot use it; compared whole
	}
	for _, n := range a.NURLs {
		ids = append(ids, "NURL "+n)
		if t := tubPart(n); t != "" {
			ids = append(ids, "NURL tub "+t)
		}
	}
	return ids
}

// commonID is the first endpoint ID a and b share, "" if none.
func commonID(a, b Ann) string {
	theirs := endpointIDs(b)
	for _, id := range endpointIDs(a) {
		if slices.Contains(theirs, id) {
			return id
		}
	}
	return ""
}

// tubPart returns the part of a pb:// URL between "://" and "@" (a
// Foolscap Tub ID, or a NURL's TLS key hash), "" if it has none.
func tubPart(u string) string {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/#?"); i >= 0 {
		rest = rest[:i]
	}
	t, _, ok := strings.Cut(rest, "@")
	if !ok {
		return ""
	}
	return t
}
