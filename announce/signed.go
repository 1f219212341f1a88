package announce

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"math"
	"strconv"
	"strings"
)

// MaxMsgSize bounds the signed bytes of one announcement. Tahoe's are about
// 500 bytes; the bound leaves room for long locator lists and certificates.
const MaxMsgSize = 16 << 10

// Signed is an announcement in Tahoe's wire form, the triple (msg, sig, key):
// msg is the signed JSON text, sig and key are "v0-" + base32.
type Signed struct {
	Msg string `json:"msg"`
	Sig string `json:"sig"`
	Key string `json:"key"`
}

// Fields Grapevine adds to announcements. Tahoe's receivers ignore unknown
// keys, so they stay compatible.
const (
	FieldLocators  = "grapevine-locators"  // list of gv:// locators of the node's gossip endpoint
	FieldWithdrawn = "grapevine-withdrawn" // true: the service has left the grid
	// FieldMembership: the publisher's certificate chain in a closed grid,
	// founder first (package member).
	FieldMembership = "grapevine-membership"
)

// Announcement is a verified, parsed announcement.
type Announcement struct {
	Signed      Signed
	ID          NodeID
	Body        Value // the parsed msg, a JSON object
	ServiceName string
	// Seqnum is valid when HasSeqnum is set. SeqnumProblem says why not
	// ("missing", or what was wrong with it).
	Seqnum        int64
	HasSeqnum     bool
	SeqnumProblem string
}

// Nickname returns the announced nickname, if any.
func (a *Announcement) Nickname() string {
	v, _ := a.Body.Get("nickname")
	return v.Str
}

// Locators returns the announced gossip endpoint locators.
func (a *Announcement) Locators() []string {
	v, _ := a.Body.Get(FieldLocators)
	var out []string
	for _, it := range v.Items {
		if it.Kind == String {
			out = append(out, it.Str)
		}
	}
	return out
}

// Withdrawn reports whether the announcement says the service has left.
func (a *Announcement) Withdrawn() bool {
	v, _ := a.Body.Get(FieldWithdrawn)
	return v.Kind == Bool && v.Bool
}

// Verify checks the signature over the raw msg bytes and only then parses
// them, as Tahoe does. Every failure is an *Error naming the field at fault.
func Verify(s Signed) (*Announcement, error) {
	if len(s.Msg) > MaxMsgSize {
		return nil, errorf(ReasonTooLarge, "msg", "%d bytes, limit %d", len(s.Msg), MaxMsgSize)
	}
	pub, err := decodeKey(s.Key, "key")
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(s.Sig, V0Prefix) {
		return nil, errorf(ReasonUnknownFormat, "sig", "only %q signatures are recognised", V0Prefix)
	}
	sig, err := DecodeBase32(s.Sig[len(V0Prefix):])
	if err != nil {
		return nil, &Error{Reason: ReasonMalformedSignature, Field: "sig", Detail: "not base32", Err: err}
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, errorf(ReasonMalformedSignature, "sig", "%d bytes, want %d", len(sig), ed25519.SignatureSize)
	}
	if !ed25519.Verify(pub, []byte(s.Msg), sig) {
		return nil, &Error{Reason: ReasonBadSignature, Field: "sig", Detail: "does not match msg and key"}
	}
	return parseBody(s)
}

// ParseUnverified parses the msg without checking the signature. Use it
// only for records whose signature was checked before (a store's own copy).
func ParseUnverified(s Signed) (*Announcement, error) {
	if _, err := decodeKey(s.Key, "key"); err != nil {
		return nil, err
	}
	return parseBody(s)
}

func parseBody(s Signed) (*Announcement, error) {
	body, err := parseJSON(s.Msg)
	if err != nil {
		return nil, &Error{Reason: ReasonNotJSON, Field: "msg", Err: err}
	}
	if body.Kind != Object {
		return nil, &Error{Reason: ReasonNotObject, Field: "msg", Detail: "signed bytes are JSON but not an object"}
	}
	a := &Announcement{Signed: s, ID: NodeID(s.Key), Body: body}
	sn, ok := body.Get("service-name")
	if !ok || sn.Kind != String || sn.Str == "" {
		return nil, &Error{Reason: ReasonMissingServiceName, Field: "service-name", Detail: "absent, empty or not a string"}
	}
	a.ServiceName = sn.Str
	seq, ok := body.Get("seqnum")
	switch {
	case !ok:
		a.SeqnumProblem = "missing"
	case seq.Kind != Number:
		a.SeqnumProblem = "not a number"
	default:
		if n, ok := seq.Int64(); ok {
			a.Seqnum, a.HasSeqnum = n, true
		} else {
			a.SeqnumProblem = "not an integer in the 64-bit range: " + seq.Str
		}
	}
	return a, nil
}

// Sign encodes body as Python's json.dumps would and signs the bytes.
func Sign(key PrivateKey, body Value) Signed {
	msg := EncodePython(body)
	sig := ed25519.Sign(key.key, msg)
	return Signed{
		Msg: string(msg),
		Sig: V0Prefix + EncodeBase32(sig),
		Key: string(key.ID()),
	}
}

// Nonce returns the announcement nonce Grapevine uses: base32 of
// HMAC-SHA256(seed, service and seqnum). It is as unpredictable as Tahoe's
// random nonce, but re-signing the same content at the same seqnum yields
// identical bytes, which receivers see as a duplicate, not a conflict.
func Nonce(key PrivateKey, service string, seqnum int64) string {
	m := hmac.New(sha256.New, key.Seed())
	m.Write([]byte("grapevine-nonce\x00" + service + "\x00" + strconv.FormatInt(seqnum, 10)))
	return EncodeBase32(m.Sum(nil))
}

// Version is what Grapevine puts in "my-version".
const Version = "grapevine/0.1.0"

// Service is one service a node announces: its name and the fields that
// describe how to use it (for storage, the FURL or NURLs).
type Service struct {
	Name   string
	Fields []Member
}

// Template is what a node announces apart from the seqnum and nonce.
type Template struct {
	Nickname  string
	Service   Service
	Locators  []string
	Withdrawn bool
	// PermutationSeed overrides the announced permutation-seed-base32.
	// Empty (the usual case): TahoePermutationSeed of the signing key,
	// what a Tahoe storage server with that key announces. Set it to the
	// content of a Tahoe node's own NODEDIR/permutation-seed file
	// (white space trimmed) when that is known: Tahoe writes the seed
	// there when it first starts and announces it ever after, and a
	// server that already held shares when Tahoe gained signed
	// announcements (ticket #466) keeps base32 of its Foolscap Tub ID
	// there instead. Clients place shares by this seed, so a server must
	// keep announcing the one its shares were placed by. It must be Tahoe
	// base32 (DecodeBase32 accepts it); Build does not check it.
	PermutationSeed string
}

// TahoePermutationSeed is the permutation-seed-base32 that a Tahoe-LAFS
// storage server with public key pub announces (allmydata/client.py,
// _init_permutation_seed, for a server without shares from before ticket
// #466): base32 of the ASCII text of the key as Tahoe writes it, without
// its "pub-v0-" prefix. That is base32(base32(pub)), 84 characters, not
// base32 of the raw key (52 characters): Tahoe clients permute servers by
// the seed's bytes, so any other seed would put a server at another place
// in the permuted ring than Tahoe itself would.
func TahoePermutationSeed(pub ed25519.PublicKey) string {
	return EncodeBase32([]byte(EncodeBase32(pub)))
}

// Build returns the announcement body in the order Tahoe builds it, with
// Grapevine's fields before seqnum and nonce. The permutation seed is
// t.PermutationSeed, or TahoePermutationSeed of the key if that is empty.
func Build(key PrivateKey, t Template, seqnum int64) Value {
	seed := t.PermutationSeed
	if seed == "" {
		seed = TahoePermutationSeed(key.Public())
	}
	b := Obj(
		Member{"version", Int(0)},
		Member{"nickname", Str(t.Nickname)},
		Member{"app-versions", List()},
		Member{"my-version", Str(Version)},
		Member{"oldest-supported", Str("1.0.0")},
		Member{"service-name", Str(t.Service.Name)},
		Member{"permutation-seed-base32", Str(seed)},
	)
	b.Members = append(b.Members, t.Service.Fields...)
	locs := make([]Value, len(t.Locators))
	for i, l := range t.Locators {
		locs[i] = Str(l)
	}
	b.Members = append(b.Members, Member{FieldLocators, List(locs...)})
	if t.Withdrawn {
		b.Members = append(b.Members, Member{FieldWithdrawn, Value{Kind: Bool, Bool: true}})
	}
	b.Members = append(b.Members,
		Member{"seqnum", Int(seqnum)},
		Member{"nonce", Str(Nonce(key, t.Service.Name, seqnum))},
	)
	return b
}

// RecoverSeqnum is the rule that lets a node that lost or rolled back its
// counter be believed again. a is a verified announcement carrying the
// node's own key; ours is what the node signs now for a's service at its
// counter (zero if it does not announce that service). If a's seqnum is
// above the counter, or equal to it with other content (a record from
// before the loss), the node must publish at a.Seqnum+1: it returns that
// seqnum and true. An echo of the node's current record changes nothing.
func RecoverSeqnum(counter int64, a *Announcement, ours Signed) (int64, bool) {
	if !a.HasSeqnum || a.Seqnum < counter || a.Seqnum == math.MaxInt64 {
		return counter, false
	}
	if a.Seqnum == counter && a.Signed == ours {
		return counter, false
	}
	return a.Seqnum + 1, true
}
