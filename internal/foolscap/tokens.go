package foolscap

import (
	"errors"
	"fmt"
	"io"
	"math/big"
)

// Banana type bytes (foolscap/tokens.py).
const (
	tLIST    = 0x80 // oldbanana, rejected
	tINT     = 0x81
	tSTRING  = 0x82
	tNEG     = 0x83
	tFLOAT   = 0x84
	tLONGINT = 0x85
	tLONGNEG = 0x86
	tVOCAB   = 0x87
	tOPEN    = 0x88
	tCLOSE   = 0x89
	tABORT   = 0x8A
	tERROR   = 0x8D
	tPING    = 0x8E
	tPONG    = 0x8F
)

const (
	maxHeaderDigits = 64   // protocol limit on header length
	maxErrorLen     = 1000 // ERROR token body limit (tokens.SIZE_LIMIT)
	maxLongIntBytes = 1024 // LONGINT/LONGNEG body limit
)

func tokenName(t byte) string {
	switch t {
	case tLIST:
		return "LIST"
	case tINT:
		return "INT"
	case tSTRING:
		return "STRING"
	case tNEG:
		return "NEG"
	case tFLOAT:
		return "FLOAT"
	case tLONGINT:
		return "LONGINT"
	case tLONGNEG:
		return "LONGNEG"
	case tVOCAB:
		return "VOCAB"
	case tOPEN:
		return "OPEN"
	case tCLOSE:
		return "CLOSE"
	case tABORT:
		return "ABORT"
	case tERROR:
		return "ERROR"
	case tPING:
		return "PING"
	case tPONG:
		return "PONG"
	}
	return fmt.Sprintf("type 0x%02x", t)
}

// token is one Banana token.
type token struct {
	typ  byte
	off  int64    // offset of the first header byte
	n    uint64   // header value (when big == nil)
	big  *big.Int // header too large for uint64 (INT/NEG only)
	body []byte   // STRING, LONGINT, LONGNEG, ERROR, FLOAT
	size int      // bytes consumed
}

// byteReader is what the token reader needs (bufio.Reader provides it).
type byteReader interface {
	io.Reader
	io.ByteReader
}

// tokenReader splits a byte stream into tokens, enforcing size limits
// before allocating.
type tokenReader struct {
	r       byteReader
	off     int64
	maxBody int // STRING body limit
	hdr     [maxHeaderDigits]byte
}

func newTokenReader(r byteReader, maxBody int) *tokenReader {
	return &tokenReader{r: r, maxBody: maxBody}
}

func (tr *tokenReader) perr(off int64, typ byte, format string, args ...any) error {
	name := "header"
	if typ != 0 {
		name = tokenName(typ)
	}
	return &ProtocolError{Offset: off, Token: name, Msg: fmt.Sprintf(format, args...)}
}

// next reads one token. io.EOF is returned only at a token boundary; a
// truncated token gives io.ErrUnexpectedEOF.
func (tr *tokenReader) next() (token, error) {
	start := tr.off
	nd := 0
	var typ byte
	for {
		b, err := tr.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && nd > 0 {
				err = io.ErrUnexpectedEOF
			}
			return token{}, err
		}
		tr.off++
		if b >= 0x80 {
			typ = b
			break
		}
		if nd == maxHeaderDigits {
			return token{}, tr.perr(start, 0, "token prefix is limited to %d bytes", maxHeaderDigits)
		}
		tr.hdr[nd] = b
		nd++
	}
	t := token{typ: typ, off: start}
	// little-endian base-128 header
	if nd <= 9 {
		var n uint64
		for i := nd - 1; i >= 0; i-- {
			n = n<<7 | uint64(tr.hdr[i])
		}
		t.n = n
	} else {
		b := new(big.Int)
		for i := nd - 1; i >= 0; i-- {
			b.Lsh(b, 7)
			b.Or(b, big.NewInt(int64(tr.hdr[i])))
		}
		if b.IsUint64() {
			t.n = b.Uint64()
		} else {
			t.big = b
		}
	}
	bodyLen := -1
	switch typ {
	case tINT, tNEG:
	case tOPEN, tCLOSE, tABORT, tPING, tPONG, tVOCAB:
		if t.big != nil {
			return token{}, tr.perr(start, typ, "header too large")
		}
	case tSTRING:
		if t.big != nil || t.n > uint64(tr.maxBody) {
			return token{}, tr.perr(start, typ, "string too long (limit %d)", tr.maxBody)
		}
		bodyLen = int(t.n)
	case tLONGINT, tLONGNEG:
		if t.big != nil || t.n > maxLongIntBytes {
			return token{}, tr.perr(start, typ, "long integer too long (limit %d bytes)", maxLongIntBytes)
		}
		bodyLen = int(t.n)
	case tERROR:
		if t.big != nil || t.n > maxErrorLen {
			return token{}, tr.perr(start, typ, "oversized ERROR token")
		}
		bodyLen = int(t.n)
	case tFLOAT:
		bodyLen = 8
	case tLIST:
		return token{}, tr.perr(start, typ, "oldbanana LIST token not supported")
	default:
		return token{}, tr.perr(start, typ, "invalid type byte 0x%02x", typ)
	}
	if bodyLen >= 0 {
		t.body = make([]byte, bodyLen)
		n, err := io.ReadFull(tr.r, t.body)
		tr.off += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return token{}, err
		}
	}
	t.size = int(tr.off - start)
	return t, nil
}

// appendHeader appends n as little-endian base-128 digits; 0 is one 0x00
// byte (foolscap's int2b128).
func appendHeader(b []byte, n uint64) []byte {
	if n == 0 {
		return append(b, 0)
	}
	for n > 0 {
		b = append(b, byte(n&0x7f))
		n >>= 7
	}
	return b
}
