package announce

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Kind is the JSON type of a Value.
type Kind uint8

const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

// Value is a parsed JSON value that keeps object members in their original
// order, so that Python's json.dumps output can be reproduced byte for byte.
type Value struct {
	Kind Kind
	Bool bool
	// String: the text, where a lone surrogate escape (\ud800) is kept as
	// its 3-byte generalized UTF-8 form, as Python keeps it in a str; that
	// is the only way a parsed Str can be invalid UTF-8. Number: the
	// literal as written, or NaN, Infinity or -Infinity.
	Str     string
	Items   []Value
	Members []Member
}

// Member is one key/value pair of a JSON object.
type Member struct {
	Key   string
	Value Value
}

// Constructors for building announcements.
func Str(s string) Value          { return Value{Kind: String, Str: s} }
func Int(n int64) Value           { return Value{Kind: Number, Str: strconv.FormatInt(n, 10)} }
func List(items ...Value) Value   { return Value{Kind: Array, Items: items} }
func Obj(members ...Member) Value { return Value{Kind: Object, Members: members} }

// Get returns the member named key of an object.
func (v Value) Get(key string) (Value, bool) {
	for _, m := range v.Members {
		if m.Key == key {
			return m.Value, true
		}
	}
	return Value{}, false
}

// Set replaces the member named key, or appends it.
func (v *Value) Set(key string, val Value) {
	for i := range v.Members {
		if v.Members[i].Key == key {
			v.Members[i].Value = val
			return
		}
	}
	v.Members = append(v.Members, Member{key, val})
}

// Int64 returns the value as an integer, if it is a JSON integer literal
// that fits in int64.
func (v Value) Int64() (int64, bool) {
	if v.Kind != Number || strings.ContainsAny(v.Str, ".eE") {
		return 0, false
	}
	n, err := strconv.ParseInt(v.Str, 10, 64)
	return n, err == nil
}

// Equal reports whether two values are equal as Python compares the parsed
// objects: member order does not matter, numbers compare by value (1 ==
// 1.0, 1e400 == Infinity), true == 1 and false == 0, and NaN equals NaN
// (json.loads returns one NaN object, and containers compare identity
// first).
func (v Value) Equal(w Value) bool {
	if v.Kind != w.Kind {
		switch {
		case v.Kind == Bool && w.Kind == Number:
			return numbersEqual(boolLiteral(v.Bool), w.Str)
		case v.Kind == Number && w.Kind == Bool:
			return numbersEqual(v.Str, boolLiteral(w.Bool))
		}
		return false
	}
	switch v.Kind {
	case Null:
		return true
	case Bool:
		return v.Bool == w.Bool
	case String:
		return v.Str == w.Str
	case Number:
		return numbersEqual(v.Str, w.Str)
	case Array:
		if len(v.Items) != len(w.Items) {
			return false
		}
		for i := range v.Items {
			if !v.Items[i].Equal(w.Items[i]) {
				return false
			}
		}
		return true
	case Object:
		if len(v.Members) != len(w.Members) {
			return false
		}
		for _, m := range v.Members {
			o, ok := w.Get(m.Key)
			if !ok || !m.Value.Equal(o) {
				return false
			}
		}
		return true
	}
	return false
}

func boolLiteral(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// numbersEqual compares two number literals as Python compares the int or
// float that each one parses to.
func numbersEqual(a, b string) bool {
	if a == b {
		return true
	}
	if x, ok := (Value{Kind: Number, Str: a}).Int64(); ok {
		if y, ok := (Value{Kind: Number, Str: b}).Int64(); ok {
			return x == y
		}
	}
	x, xInt := parseNumber(a)
	y, yInt := parseNumber(b)
	switch {
	case xInt != nil && yInt != nil:
		return xInt.Cmp(yInt) == 0
	case xInt != nil:
		return intEqualsFloat(xInt, y)
	case yInt != nil:
		return intEqualsFloat(yInt, x)
	}
	return x == y || math.IsNaN(x) && math.IsNaN(y)
}

// parseNumber returns the int a literal denotes, or else its float.
func parseNumber(lit string) (float64, *big.Int) {
	if !strings.ContainsAny(lit, ".eEIN") {
		if n, ok := new(big.Int).SetString(lit, 10); ok {
			return 0, n
		}
	}
	f, _ := parseFloat(lit)
	return f, nil
}

// parseFloat returns the float64 nearest a number literal, as Python's
// float() does; overflow gives ±Inf. strconv.ParseFloat misreads literals
// with more than 800 digits before the point (it places the point among
// the 800 digits it keeps) and exponents of six digits or more (it stops
// reading them at 10000), so a long literal is rewritten as 0.DIGITS e E
// first, without the digits' outer zeros and with E within ±400.
func parseFloat(lit string) (float64, error) {
	f, err := strconv.ParseFloat(shortFloat(lit), 64)
	if err != nil && math.IsInf(f, 0) {
		err = nil
	}
	return f, err
}

// shortFloat rewrites a long number literal for parseFloat.
func shortFloat(lit string) string {
	if len(lit) < 400 {
		return lit // under 800 digits; an exponent past 10000 gives 0 or Inf
	}
	sign, s := "", lit
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		e, neg := s[i+1:], false
		if e != "" && (e[0] == '+' || e[0] == '-') {
			e, neg = e[1:], e[0] == '-'
		}
		for _, c := range []byte(e) {
			if c < '0' || c > '9' {
				return lit // not a literal: ParseFloat says so
			}
			if exp < 1e9 {
				exp = exp*10 + int(c-'0')
			}
		}
		if neg {
			exp = -exp
		}
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+frac, "0")
	point := len(intPart) - (len(intPart) + len(frac) - len(digits))
	digits = strings.TrimRight(digits, "0")
	switch e := point + exp; {
	case digits == "" || e < -400:
		return sign + "0"
	case e > 400:
		return sign + "Inf"
	default:
		return sign + "0." + digits + "e" + strconv.Itoa(e)
	}
}

// intEqualsFloat is Python's exact int == float.
func intEqualsFloat(n *big.Int, f float64) bool {
	if math.IsInf(f, 0) || math.IsNaN(f) || f != math.Trunc(f) {
		return false
	}
	m, _ := big.NewFloat(f).Int(nil)
	return m.Cmp(n) == 0
}

// EncodePython returns the bytes Python's json.dumps(v) produces with its
// defaults: ", " and ": " separators, members in order, and every character
// outside printable ASCII escaped as \uXXXX (surrogate pairs beyond the BMP).
func EncodePython(v Value) []byte {
	var b []byte
	return appendPython(b, v)
}

func appendPython(b []byte, v Value) []byte {
	switch v.Kind {
	case Null:
		return append(b, "null"...)
	case Bool:
		if v.Bool {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case Number:
		return append(b, pyNumber(v.Str)...)
	case String:
		return appendPyString(b, v.Str)
	case Array:
		b = append(b, '[')
		for i, it := range v.Items {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendPython(b, it)
		}
		return append(b, ']')
	case Object:
		b = append(b, '{')
		for i, m := range v.Members {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendPyString(b, m.Key)
			b = append(b, ": "...)
			b = appendPython(b, m.Value)
		}
		return append(b, '}')
	}
	return b
}

// pyNumber renders a JSON number literal as Python prints the parsed value.
func pyNumber(lit string) string {
	if !strings.ContainsAny(lit, ".eEIN") {
		if n, ok := new(big.Int).SetString(lit, 10); ok {
			return n.String()
		}
	}
	f, err := parseFloat(lit)
	if err != nil {
		return lit
	}
	return pyFloat(f)
}

// pyFloat matches Python's float repr as json.dumps uses it.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsRune(s, '.') {
		s += ".0"
	}
	return s
}

const hexDigits = "0123456789abcdef"

func appendPyString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		r, n := decodeRune(s[i:])
		i += n
		switch {
		case r == '"':
			b = append(b, '\\', '"')
		case r == '\\':
			b = append(b, '\\', '\\')
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r == '\b':
			b = append(b, '\\', 'b')
		case r == '\f':
			b = append(b, '\\', 'f')
		case r >= 0x20 && r <= 0x7e:
			b = append(b, byte(r))
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			b = appendU(appendU(b, r1), r2)
		default:
			b = appendU(b, r)
		}
	}
	return append(b, '"')
}

// decodeRune is utf8.DecodeRuneInString that also decodes the 3-byte form
// of a surrogate, in which the parser keeps a lone \ud800 escape.
func decodeRune(s string) (rune, int) {
	if len(s) >= 3 && s[0] == 0xed && s[1]&0xe0 == 0xa0 && s[2]&0xc0 == 0x80 {
		return 0xd000 | rune(s[1]&0x3f)<<6 | rune(s[2]&0x3f), 3
	}
	return utf8.DecodeRuneInString(s)
}

// appendSurrogate appends the 3-byte form of surrogate r (see decodeRune).
func appendSurrogate(b []byte, r rune) []byte {
	return append(b, 0xed, 0x80|byte(r>>6&0x3f), 0x80|byte(r&0x3f))
}

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// SyntaxError reports malformed JSON and the byte offset where it was found.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.Msg, e.Offset) }

// MaxDepth bounds the nesting of parsed JSON: a value inside more than
// MaxDepth arrays and objects is refused. Python's json.loads nests far
// deeper (docs/security.md, Parsers, says why that cannot matter).
const MaxDepth = 32

// maxIntDigits is Python's default int_max_str_digits: json.loads raises
// ValueError for an integer literal with more digits.
const maxIntDigits = 4300

// ParseJSON parses data as Tahoe does, json.loads(data.decode("utf-8")):
// strict UTF-8, no BOM; NaN, Infinity and -Infinity are numbers; a
// duplicate key keeps the first one's place and the last one's value; a
// lone surrogate escape is kept (see Value.Str). It differs only in
// refusing nesting beyond MaxDepth.
func ParseJSON(data []byte) (Value, error) {
	return parseJSON(string(data))
}

// parseJSON is ParseJSON on a string. Strings without escapes and number
// literals in the result are substrings of data, not copies.
func parseJSON(data string) (Value, error) {
	var members [16]Member
	var items [16]Value
	p := parser{data: data, members: members[:0], items: items[:0]}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return Value{}, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return Value{}, p.fail("unexpected data after JSON value")
	}
	return v, nil
}

type parser struct {
	data string
	pos  int
	// Stacks of the members and items of the objects and arrays being
	// parsed; each is copied out once, at its exact length, when complete.
	// They start in arrays on the caller's stack.
	members []Member
	items   []Value
}

func (p *parser) fail(msg string) error { return &SyntaxError{Offset: p.pos, Msg: msg} }

func (p *parser) skipSpace() {
	i := p.pos
	for i < len(p.data) {
		switch p.data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			p.pos = i
			return
		}
	}
	p.pos = i
}

func (p *parser) value(depth int) (Value, error) {
	if depth > MaxDepth {
		return Value{}, p.fail("nesting too deep")
	}
	if p.pos >= len(p.data) {
		return Value{}, p.fail("unexpected end of input")
	}
	start := p.pos
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.str()
		return Value{Kind: String, Str: s}, err
	case p.literal("NaN"), p.literal("Infinity"), p.literal("-Infinity"):
		// Python's json.loads reads these as floats.
		return Value{Kind: Number, Str: p.data[start:p.pos]}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case p.literal("true"):
		return Value{Kind: Bool, Bool: true}, nil
	case p.literal("false"):
		return Value{Kind: Bool}, nil
	case p.literal("null"):
		return Value{Kind: Null}, nil
	}
	return Value{}, p.fail("invalid character")
}

func (p *parser) literal(word string) bool {
	if strings.HasPrefix(p.data[p.pos:], word) {
		p.pos += len(word)
		return true
	}
	return false
}

func (p *parser) object(depth int) (Value, error) {
	p.pos++ // {
	v := Value{Kind: Object}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return v, nil
	}
	base := len(p.members)
	var index map[string]int // positions of keys, once the object is long
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return Value{}, p.fail("expected object key")
		}
		k, err := p.str()
		if err != nil {
			return Value{}, err
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return Value{}, p.fail("expected ':'")
		}
		p.pos++
		p.skipSpace()
		val, err := p.value(depth + 1)
		if err != nil {
			return Value{}, err
		}
		// A repeated key keeps its first place and takes the last value,
		// as in the dict Python builds.
		if i := p.lookup(base, k, &index); i >= 0 {
			p.members[i].Value = val
		} else {
			p.members = append(p.members, Member{k, val})
		}
		p.skipSpace()
		if p.pos >= len(p.data) {
			return Value{}, p.fail("unexpected end of input in object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			v.Members = append([]Member(nil), p.members[base:]...)
			p.members = p.members[:base]
			return v, nil
		default:
			return Value{}, p.fail("expected ',' or '}'")
		}
	}
}

// lookup returns the position in p.members of key k of the object whose
// members start at base, or -1. Past 16 members it keeps an index, so that
// a long object costs linear time, not quadratic.
func (p *parser) lookup(base int, k string, index *map[string]int) int {
	ms := p.members[base:]
	if *index == nil && len(ms) <= 16 {
		for i := range ms {
			if ms[i].Key == k {
				return base + i
			}
		}
		return -1
	}
	if *index == nil {
		*index = make(map[string]int, 2*len(ms))
		for i := range ms {
			(*index)[ms[i].Key] = base + i
		}
	}
	if i, ok := (*index)[k]; ok {
		return i
	}
	(*index)[k] = len(p.members) // where the caller appends it
	return -1
}

func (p *parser) array(depth int) (Value, error) {
	p.pos++ // [
	v := Value{Kind: Array}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return v, nil
	}
	base := len(p.items)
	for {
		p.skipSpace()
		it, err := p.value(depth + 1)
		if err != nil {
			return Value{}, err
		}
		p.items = append(p.items, it)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return Value{}, p.fail("unexpected end of input in array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			v.Items = append([]Value(nil), p.items[base:]...)
			p.items = p.items[:base]
			return v, nil
		default:
			return Value{}, p.fail("expected ',' or ']'")
		}
	}
}

func (p *parser) number() (Value, error) {
	start := p.pos
	if p.data[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	intStart := p.pos
	n := digits()
	if n == 0 {
		return Value{}, p.fail("invalid number")
	} else if n > 1 && p.data[intStart] == '0' {
		return Value{}, &SyntaxError{Offset: intStart, Msg: "number with leading zero"}
	}
	isInt := true
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return Value{}, p.fail("invalid number")
		}
		isInt = false
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return Value{}, p.fail("invalid number")
		}
		isInt = false
	}
	if isInt && n > maxIntDigits {
		return Value{}, &SyntaxError{Offset: start, Msg: "integer too long"}
	}
	return Value{Kind: Number, Str: p.data[start:p.pos]}, nil
}

// strStop marks the bytes that end the fast scan of a string: the quote,
// the backslash and the control characters.
var strStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

func (p *parser) str() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	var buf []byte // the text so far, once an escape was seen
	for {
		i, data := p.pos, p.data
		for i < len(data) && !strStop[data[i]] {
			i++
		}
		if i >= len(data) {
			p.pos = i
			return "", p.fail("unterminated string")
		}
		switch c := data[i]; {
		case c == '"':
			// Escapes are ASCII, so the raw text is valid UTF-8 exactly
			// when what Python decodes it from is.
			if !utf8.ValidString(data[start:i]) {
				return "", &SyntaxError{Offset: start, Msg: "invalid UTF-8 in string"}
			}
			run := data[p.pos:i]
			p.pos = i + 1
			if buf == nil {
				return run, nil // no escapes: no copy
			}
			return string(append(buf, run...)), nil
		case c < 0x20:
			p.pos = i
			return "", p.fail("control character in string")
		}
		buf = append(buf, data[p.pos:i]...)
		p.pos = i + 1 // past the backslash
		var err error
		if buf, err = p.escape(buf); err != nil {
			return "", err
		}
	}
}

// escape appends the character of the escape after a backslash.
func (p *parser) escape(buf []byte) ([]byte, error) {
	if p.pos >= len(p.data) {
		return nil, p.fail("unterminated escape")
	}
	e := p.data[p.pos]
	p.pos++
	switch e {
	case '"', '\\', '/':
		return append(buf, e), nil
	case 'b':
		return append(buf, '\b'), nil
	case 'f':
		return append(buf, '\f'), nil
	case 'n':
		return append(buf, '\n'), nil
	case 'r':
		return append(buf, '\r'), nil
	case 't':
		return append(buf, '\t'), nil
	case 'u':
	default:
		return nil, &SyntaxError{Offset: p.pos - 1, Msg: "invalid escape"}
	}
	r, err := p.hex4()
	if err != nil {
		return nil, err
	}
	if !utf16.IsSurrogate(r) {
		return utf8.AppendRune(buf, r), nil
	}
	// As Python does: a high surrogate followed by a low one's escape is
	// one character; any other surrogate stays alone.
	if r < 0xdc00 && strings.HasPrefix(p.data[p.pos:], "\\u") {
		save := p.pos
		p.pos += 2
		r2, err := p.hex4()
		if err != nil {
			return nil, err
		}
		if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
			return utf8.AppendRune(buf, d), nil
		}
		p.pos = save
	}
	return appendSurrogate(buf, r), nil
}

func (p *parser) hex4() (rune, error) {
	if p.pos+4 > len(p.data) {
		return 0, p.fail("short \\u escape")
	}
	var r rune
	for i := p.pos; i < p.pos+4; i++ {
		c := p.data[i]
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, p.fail("invalid \\u escape")
		}
	}
	p.pos += 4
	return r, nil
}
