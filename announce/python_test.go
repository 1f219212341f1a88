//go:build unix

package announce_test

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"grapevine/announce"
	"grapevine/internal/testkit"
)

// pyJSONScript answers each line of hex with what Tahoe makes of those msg
// bytes, json.loads(msg.decode("utf-8")) (allmydata/introducer/common.py):
// json.dumps of the value, or "!" and the exception's type. json.dumps
// with its defaults is what EncodePython writes, so equal lines mean equal
// values: ints and floats, member order, surrogates. "?" means json.dumps
// failed on an accepted value.
const pyJSONScript = `
import json, json.scanner, sys
if json.scanner.c_make_scanner is None:
    sys.exit("json has no C scanner; Tahoe's Python has one")
for line in sys.stdin:
    try:
        v = json.loads(bytes.fromhex(line.strip()).decode("utf-8"))
    except Exception as e:
        out = "!" + type(e).__name__
    else:
        try:
            out = json.dumps(v)
        except Exception as e:
            out = "?" + type(e).__name__
    sys.stdout.write(out + "\n")
    sys.stdout.flush()
`

// pyJSON is one long-lived python3 running pyJSONScript. It is spoken to
// with raw system calls on blocking pipes: the fuzzer instruments os,
// internal/poll and bufio but not syscall, and I/O timing in instrumented
// code would look like new coverage that minimizing cannot reproduce.
type pyJSON struct {
	mu      sync.Mutex
	in, out *os.File // our ends of its stdin and stdout
	inFd    int
	outFd   int
	stderr  *os.File
	buf     [4096]byte
}

var (
	pyOnce sync.Once
	pyProc *pyJSON
	pyErr  error
)

// python returns the process's python3 oracle, starting it on first use.
// Without python3 it fails the test under CI (CI set), and otherwise
// returns the reason it is missing.
func python(tb testing.TB) (*pyJSON, error) {
	tb.Helper()
	pyOnce.Do(func() { pyProc, pyErr = startPython() })
	if pyErr != nil && os.Getenv("CI") != "" {
		tb.Fatalf("python3 is required under CI: %v", pyErr)
	}
	return pyProc, pyErr
}

func startPython() (*pyJSON, error) {
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	stderr, err := os.CreateTemp("", "pyjson-stderr")
	if err != nil {
		return nil, err
	}
	os.Remove(stderr.Name())
	// -I: no PYTHON* variables or user site, so json is the stdlib's.
	cmd := exec.Command("/usr/bin/python3", "-I", "-c", pyJSONScript)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, stdoutW, stderr
	err = cmd.Start()
	stdinR.Close()
	stdoutW.Close()
	if err != nil {
		return nil, err
	}
	// It exits at EOF on stdin, when this process does.
	p := &pyJSON{in: stdinW, out: stdoutR, stderr: stderr}
	// Fd makes the descriptors blocking, for syscall.Read and Write.
	p.inFd, p.outFd = int(p.in.Fd()), int(p.out.Fd())
	if got, err := p.loads([]byte("[1]")); err != nil || got != "[1]" {
		return nil, fmt.Errorf("python3 answered %q, %v", got, err)
	}
	return p, nil
}

// loads returns Python's answer for data (see pyJSONScript).
func (p *pyJSON) loads(data []byte) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := make([]byte, 2*len(data)+1)
	hex.Encode(line, data)
	line[len(line)-1] = '\n'
	for len(line) > 0 {
		n, err := syscall.Write(p.inFd, line)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return "", p.failed("writing to", err)
		}
		line = line[n:]
	}
	// One question at a time: what arrives is the answer and ends at '\n'.
	var answer []byte
	for len(answer) == 0 || answer[len(answer)-1] != '\n' {
		n, err := syscall.Read(p.outFd, p.buf[:])
		if err == syscall.EINTR {
			continue
		}
		if err == nil && n == 0 {
			err = io.EOF
		}
		if err != nil {
			return "", p.failed("reading from", err)
		}
		answer = append(answer, p.buf[:n]...)
	}
	return string(answer[:len(answer)-1]), nil
}

func (p *pyJSON) failed(what string, err error) error {
	msg, _ := io.ReadAll(io.NewSectionReader(p.stderr, 0, 4096))
	return fmt.Errorf("%s python3: %v (stderr: %s)", what, err, msg)
}

// pyDisagreement says how ParseJSON(data) differs from Python's answer
// py, or returns "". The one difference allowed is Go's nesting bound
// (docs/security.md, Parsers).
func pyDisagreement(data []byte, py string) string {
	v, err := announce.ParseJSON(data)
	switch {
	case strings.HasPrefix(py, "!"):
		if err == nil {
			return fmt.Sprintf("Python refuses it (%s), Go accepts it as %s", py[1:], announce.EncodePython(v))
		}
		return ""
	case err != nil:
		var se *announce.SyntaxError
		if errors.As(err, &se) && se.Msg == "nesting too deep" {
			return ""
		}
		return fmt.Sprintf("Python accepts it as %s, Go refuses it: %v", py, err)
	case strings.HasPrefix(py, "?"):
		return "" // accepted by both; Python could not print its value
	}
	if got := string(announce.EncodePython(v)); got != py {
		return fmt.Sprintf("values differ:\nPython %s\n    Go %s", py, got)
	}
	return ""
}

// maxPyFuzzLen bounds the inputs FuzzJSONAgainstPython checks; Tahoe's
// announcements are about 450 bytes.
const maxPyFuzzLen = 512

// FuzzJSONAgainstPython checks ParseJSON against Tahoe's parse, Python's
// json.loads of the UTF-8 decoded bytes: both accept or both refuse, and
// accepted values are equal.
func FuzzJSONAgainstPython(f *testing.F) {
	py, err := python(f)
	if err != nil {
		f.Skipf("python3 not available: %v", err)
	}
	for _, v := range testkit.TahoeVectors(f) {
		f.Add([]byte(v.Msg))
	}
	for _, c := range pyCases() {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Minimizing an input costs executions quadratic in its length,
		// each a round trip to python3: a 1 KiB input takes most of a
		// minute. Every case that needs a long input is in pyCases.
		if len(data) > maxPyFuzzLen {
			return
		}
		want, err := py.loads(data)
		if err != nil {
			t.Fatal(err)
		}
		if d := pyDisagreement(data, want); d != "" {
			t.Fatalf("ParseJSON(%q): %s", data, d)
		}
	})
}

// pyCase is one input and Python 3.11's answer for it (see pyJSONScript).
type pyCase struct {
	name, in, py string
	goErr        string // Go refuses it on purpose, with this message
}

func pyCases() []pyCase {
	nest := func(n int, open, mid, close string) string {
		return strings.Repeat(open, n) + mid + strings.Repeat(close, n)
	}
	// 20 keys, then k0 again: past the linear scan, into the index.
	var long, longPy []string
	for i := range 20 {
		long = append(long, fmt.Sprintf(`"k%d": %d`, i, i))
	}
	longPy = append([]string{`"k0": "last"`}, long[1:]...)
	long = append(long, `"k0": "last"`)
	digits := strings.Repeat("9", 4300)
	return []pyCase{
		{"empty", ``, "!JSONDecodeError", ""},
		{"only space", " \t\r\n", "!JSONDecodeError", ""},
		{"space around", " \t\r\n1 \t\r\n", "1", ""},
		{"form feed", "\f1", "!JSONDecodeError", ""},
		{"vertical tab after", "1\v", "!JSONDecodeError", ""},
		{"no-break space", "\u00a01", "!JSONDecodeError", ""},
		{"BOM", "\ufeff{}", "!JSONDecodeError", ""},
		{"BOM escaped in a string", `"\ufeff"`, `"\ufeff"`, ""},
		{"NUL after", "1\x00", "!JSONDecodeError", ""},
		{"two values", `1 2`, "!JSONDecodeError", ""},
		{"two strings", `"a""b"`, "!JSONDecodeError", ""},

		{"zero", `0`, "0", ""},
		{"minus zero", `-0`, "0", ""},
		{"minus zero float", `-0.0`, "-0.0", ""},
		{"leading zero", `01`, "!JSONDecodeError", ""},
		{"leading zero negative", `-01`, "!JSONDecodeError", ""},
		{"leading zero in array", `[00]`, "!JSONDecodeError", ""},
		{"leading zero float", `01.5`, "!JSONDecodeError", ""},
		{"zero point five", `0.5`, "0.5", ""},
		{"trailing dot", `1.`, "!JSONDecodeError", ""},
		{"leading dot", `.5`, "!JSONDecodeError", ""},
		{"dot exponent", `1.e5`, "!JSONDecodeError", ""},
		{"bare exponent", `1e`, "!JSONDecodeError", ""},
		{"signed bare exponent", `1e+`, "!JSONDecodeError", ""},
		{"plus", `+1`, "!JSONDecodeError", ""},
		{"minus space", `- 1`, "!JSONDecodeError", ""},
		{"minus alone", `-`, "!JSONDecodeError", ""},
		{"hex", `0x10`, "!JSONDecodeError", ""},
		{"underscore", `1_000`, "!JSONDecodeError", ""},
		{"exponent", `1E5`, "100000.0", ""},
		{"exponent plus", `1e+2`, "100.0", ""},
		{"1e15", `1e15`, "1000000000000000.0", ""},
		{"1e16", `1e16`, "1e+16", ""},
		{"1e-5", `1e-5`, "1e-05", ""},
		{"0.0001", `0.0001`, "0.0001", ""},
		{"long exponent", `1e0000000000000000000001`, "10.0", ""},
		{"overflow", `1e400`, "Infinity", ""},
		{"negative overflow", `-1e400`, "-Infinity", ""},
		{"underflow", `1e-400`, "0.0", ""},
		{"negative underflow", `-1e-400`, "-0.0", ""},
		{"smallest subnormal", `5e-324`, "5e-324", ""},
		{"rounds to smallest", `2.5e-324`, "5e-324", ""},
		{"largest float", `1.7976931348623157e308`, "1.7976931348623157e+308", ""},
		{"float rounding", `9007199254740993.0`, "9007199254740992.0", ""},
		{"long mantissa", "0." + strings.Repeat("1", 5000), "0.1111111111111111", ""},
		{"above halfway, 1000 digits on", "9007199254740993." + strings.Repeat("0", 1000) + "1", "9007199254740994.0", ""},
		{"above halfway, in the exponent", "9007199254740993" + strings.Repeat("0", 1000) + "1e-1001", "9007199254740994.0", ""},
		{"800 digits before the point", "9007199254740993" + strings.Repeat("0", 790) + "1e-791", "9007199254740994.0", ""},
		{"exponent past 10000", "0." + strings.Repeat("0", 10000) + "9e10001", "9.0", ""},
		{"six-digit exponent", "0." + strings.Repeat("0", 100000) + "1e100001", "1.0", ""},
		{"10001 digits, exponent -10000", "-1" + strings.Repeat("0", 10000) + "e-10000", "-1.0", ""},
		{"just above half the least subnormal", `2.4703282292062328e-324`, "5e-324", ""},
		{"just below half the least subnormal", `2.4703282292062327e-324`, "0.0", ""},
		{"long integer part, negative exponent", "1" + strings.Repeat("0", 400) + "e-400", "1.0", ""},
		{"huge negative exponent", `1e-99999999999999999999`, "0.0", ""},
		{"zero, huge exponent", `0e999999999999999`, "0.0", ""},
		{"big int", `123456789012345678901234567890`, "123456789012345678901234567890", ""},
		{"int64 max plus one", `9223372036854775808`, "9223372036854775808", ""},
		{"4300 digits", digits, digits, ""},
		{"-4300 digits", "-" + digits, "-" + digits, ""},
		{"4301 digits", digits + "9", "!ValueError", ""},
		{"-4301 digits", "-" + digits + "9", "!ValueError", ""},
		{"4301 digits as float", digits + "9.0", "Infinity", ""},
		{"4301 digits with exponent", digits + "9e0", "Infinity", ""},

		{"NaN", `NaN`, "NaN", ""},
		{"Infinity", `Infinity`, "Infinity", ""},
		{"-Infinity", `-Infinity`, "-Infinity", ""},
		{"constants in a list", `[NaN, Infinity, -Infinity]`, "[NaN, Infinity, -Infinity]", ""},
		{"-NaN", `-NaN`, "!JSONDecodeError", ""},
		{"+Infinity", `+Infinity`, "!JSONDecodeError", ""},
		{"nan", `nan`, "!JSONDecodeError", ""},
		{"inf", `inf`, "!JSONDecodeError", ""},
		{"Inf", `Inf`, "!JSONDecodeError", ""},
		{"infinity", `infinity`, "!JSONDecodeError", ""},
		{"NaN then more", `NaNa`, "!JSONDecodeError", ""},
		{"-Infinit", `-Infinit`, "!JSONDecodeError", ""},

		{"true", `true`, "true", ""},
		{"True", `True`, "!JSONDecodeError", ""},
		{"nul", `nul`, "!JSONDecodeError", ""},
		{"truex", `truex`, "!JSONDecodeError", ""},
		{"null", `null`, "null", ""},

		{"escapes", `"\"\\\/\b\f\n\r\t"`, `"\"\\/\b\f\n\r\t"`, ""},
		{"bad escape", `"\a"`, "!JSONDecodeError", ""},
		{"capital U", `"\U0041"`, "!JSONDecodeError", ""},
		{"short u", `"\u12"`, "!JSONDecodeError", ""},
		{"short u at end", `"\u12`, "!JSONDecodeError", ""},
		{"unterminated", `"abc`, "!JSONDecodeError", ""},
		{"escaped non-ASCII", `"\u00e9\u4E2D"`, `"\u00e9\u4e2d"`, ""},
		{"raw non-ASCII", "\"\u00e9\U0001F600\u2028\"", `"\u00e9\ud83d\ude00\u2028"`, ""},
		{"raw noncharacter", "\"\ufffe\"", `"\ufffe"`, ""},
		{"raw DEL", "\"\x7f\"", `"\u007f"`, ""},
		{"raw NUL", "\"\x00\"", "!JSONDecodeError", ""},
		{"raw tab", "\"a\tb\"", "!JSONDecodeError", ""},
		{"raw 0x1f", "\"\x1f\"", "!JSONDecodeError", ""},
		{"escaped NUL", `"\u0000"`, `"\u0000"`, ""},
		{"surrogate pair", `"\ud83d\ude00"`, `"\ud83d\ude00"`, ""},
		{"surrogate pair upper case", `"\uD83D\uDE00"`, `"\ud83d\ude00"`, ""},
		{"lone high", `"\ud800"`, `"\ud800"`, ""},
		{"lone low", `"\udc00"`, `"\udc00"`, ""},
		{"high then letter", `"\ud83dx"`, `"\ud83dx"`, ""},
		{"high then A", `"\ud83d\u0041"`, `"\ud83dA"`, ""},
		{"high then newline", `"\ud83d\n"`, `"\ud83d\n"`, ""},
		{"low then high", `"\ude00\ud83d"`, `"\ude00\ud83d"`, ""},
		{"high, then a pair", `"\ud83d\ud83d\ude00"`, `"\ud83d\ud83d\ude00"`, ""},
		{"high, escaped backslash", `"\ud83d\\ude00"`, `"\ud83d\\ude00"`, ""},
		{"high, bad second escape", `"\ud83d\uzzzz"`, "!JSONDecodeError", ""},
		{"high, short second escape", `"\ud83d\u12"`, "!JSONDecodeError", ""},
		{"surrogate and U+FFFD differ", `["\ud800", "\ufffd"]`, `["\ud800", "\ufffd"]`, ""},
		{"invalid UTF-8 in a string", "\"\xff\"", "!UnicodeDecodeError", ""},
		{"invalid UTF-8 outside", "1\xff", "!UnicodeDecodeError", ""},
		{"encoded surrogate", "\"\xed\xa0\x80\"", "!UnicodeDecodeError", ""},
		{"overlong slash", "\"\xc0\xaf\"", "!UnicodeDecodeError", ""},
		{"beyond U+10FFFF", "\"\xf4\x90\x80\x80\"", "!UnicodeDecodeError", ""},
		{"truncated UTF-8", "\"\xe4\xb8\"", "!UnicodeDecodeError", ""},

		{"empty object", `{ }`, "{}", ""},
		{"empty array", `[ ]`, "[]", ""},
		{"array", `[1,2]`, "[1, 2]", ""},
		{"trailing comma in array", `[1,]`, "!JSONDecodeError", ""},
		{"leading comma", `[,1]`, "!JSONDecodeError", ""},
		{"missing comma", `[1 2]`, "!JSONDecodeError", ""},
		{"unclosed array", `[1`, "!JSONDecodeError", ""},
		{"trailing comma in object", `{"a":1,}`, "!JSONDecodeError", ""},
		{"missing colon", `{"a" 1}`, "!JSONDecodeError", ""},
		{"number key", `{1:2}`, "!JSONDecodeError", ""},
		{"single quotes", `{'a':1}`, "!JSONDecodeError", ""},
		{"duplicate key", `{"a":1,"b":2,"a":3}`, `{"a": 3, "b": 2}`, ""},
		{"duplicate key thrice", `{"a":1,"a":{"x":1},"a":[2]}`, `{"a": [2]}`, ""},
		{"duplicate by escape", `{"\u0061":1,"a":2}`, `{"a": 2}`, ""},
		{"duplicate in nested object", `[{"a":1,"a":2},{"a":3}]`, `[{"a": 2}, {"a": 3}]`, ""},
		{"duplicate after 20 keys", "{" + strings.Join(long, ",") + "}", "{" + strings.Join(longPy, ", ") + "}", ""},
		{"duplicate of the 22nd key", "{" + strings.Join(long, ",") + `,"x":1,"y":2,"x":3}`, "{" + strings.Join(longPy, ", ") + `, "x": 3, "y": 2}`, ""},
		{"surrogate keys differ", `{"\ud800":1,"\ufffd":2}`, `{"\ud800": 1, "\ufffd": 2}`, ""},
		{"duplicate service-name", `{"service-name":"storage","seqnum":1,"service-name":"x"}`, `{"service-name": "x", "seqnum": 1}`, ""},

		// MaxDepth is 32: no value may be inside more than 32 containers.
		{"33 arrays", nest(33, "[", "", "]"), nest(33, "[", "", "]"), ""},
		{"1 in 32 arrays", nest(32, "[", "1", "]"), nest(32, "[", "1", "]"), ""},
		{"1 in 32 objects", nest(32, `{"a":`, "1", "}"), nest(32, `{"a": `, "1", "}"), ""},
		{"34 arrays", nest(34, "[", "", "]"), nest(34, "[", "", "]"), "nesting too deep"},
		{"1 in 33 arrays", nest(33, "[", "1", "]"), nest(33, "[", "1", "]"), "nesting too deep"},
		{"1 in 33 objects", nest(33, `{"a":`, "1", "}"), nest(33, `{"a": `, "1", "}"), "nesting too deep"},
		{"1 in 900 arrays", nest(900, "[", "1", "]"), nest(900, "[", "1", "]"), "nesting too deep"},
	}
}

// TestJSONAgainstPython checks ParseJSON on edge cases whose answers were
// taken from Python 3.11, and checks those answers against python3 when
// it is there (always under CI).
func TestJSONAgainstPython(t *testing.T) {
	cases := pyCases()
	for _, c := range cases {
		v, err := announce.ParseJSON([]byte(c.in))
		switch {
		case c.goErr != "":
			var se *announce.SyntaxError
			if !errors.As(err, &se) || se.Msg != c.goErr {
				t.Errorf("%s: ParseJSON(%.60q): %v, want %q", c.name, c.in, err, c.goErr)
			}
		case strings.HasPrefix(c.py, "!"):
			if err == nil {
				t.Errorf("%s: ParseJSON(%.60q) = %.60s, want an error as Python's %s", c.name, c.in, announce.EncodePython(v), c.py[1:])
			}
		case err != nil:
			t.Errorf("%s: ParseJSON(%.60q): %v, want %.60s", c.name, c.in, err, c.py)
		default:
			if got := string(announce.EncodePython(v)); got != c.py {
				t.Errorf("%s: ParseJSON(%.60q) = %.60s, want %.60s", c.name, c.in, got, c.py)
			}
		}
	}

	py, err := python(t)
	if err != nil {
		t.Logf("python3 not available, Python's answers not rechecked: %v", err)
		return
	}
	for _, c := range cases {
		got, err := py.loads([]byte(c.in))
		if err != nil {
			t.Fatal(err)
		}
		if got != c.py && !(strings.HasPrefix(got, "!") && strings.HasPrefix(c.py, "!")) {
			t.Errorf("%s: python3 answers %.60s for %.60q, the table says %.60s", c.name, got, c.in, c.py)
		}
		if c.goErr == "" {
			if d := pyDisagreement([]byte(c.in), got); d != "" {
				t.Errorf("%s: %s", c.name, d)
			}
		}
	}
}

// TestEqualAsPython checks Value.Equal against Python's == on the parsed
// values (answers from Python 3.11).
func TestEqualAsPython(t *testing.T) {
	for _, c := range []struct {
		a, b string
		eq   bool
	}{
		{`1`, `1.0`, true},
		{`1E2`, `100`, true},
		{`-0`, `0.0`, true},
		{`-0.0`, `0`, true},
		{`0.1`, `0.10000000000000001`, true},
		{`1e400`, `Infinity`, true},
		{`-Infinity`, `-1e999`, true},
		{`[NaN]`, `[NaN]`, true},
		{`9007199254740992`, `9007199254740992.0`, true},
		{`9007199254740993`, `9007199254740992.0`, false},
		{`123456789012345678901234567890`, `123456789012345678901234567890.0`, false},
		{`1e400`, "1" + strings.Repeat("0", 400), false},
		{`true`, `1`, true},
		{`false`, `0.0`, true},
		{`true`, `2`, false},
		{`null`, `0`, false},
		{`{"a": true}`, `{"a": 1}`, true},
		{`{"a": 1, "b": 2}`, `{"b": 2, "a": 1}`, true},
		{`{"a": 1}`, `{"a": 1, "b": 2}`, false},
		{`[1, 2]`, `[2, 1]`, false},
		{`"\ud800"`, `"\ufffd"`, false},
	} {
		a, err := announce.ParseJSON([]byte(c.a))
		if err != nil {
			t.Fatal(err)
		}
		b, err := announce.ParseJSON([]byte(c.b))
		if err != nil {
			t.Fatal(err)
		}
		if a.Equal(b) != c.eq || b.Equal(a) != c.eq {
			t.Errorf("%.40s == %.40s: %v, Python says %v", c.a, c.b, !c.eq, c.eq)
		}
	}
}
