package cli

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Bounds, in runes after escaping, of text from other nodes.
const (
	cellRunes = 64   // a field in a table or a name inside a sentence
	lineRunes = 1024 // a value on its own line: locator, FURL, error, event
)

// remote makes text that came from another node (nicknames, service
// names, locators, errors, event facts) safe to print on a terminal:
// control characters (C0, DEL, C1), format characters (bidi overrides and
// isolates, zero-width characters), line and paragraph separators and
// invalid UTF-8 are shown escaped (\x1b, \u202e), and the result is cut to
// limit runes, the last being "…".
func remote(s string, limit int) string {
	var b strings.Builder
	n, cut := 0, -1
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		piece := s[i : i+size]
		switch {
		case r == utf8.RuneError && size == 1:
			piece = fmt.Sprintf(`\x%02x`, s[i])
		case !unsafeRune(r):
		case r < 0x100:
			piece = fmt.Sprintf(`\x%02x`, r)
		case r <= 0xffff:
			piece = fmt.Sprintf(`\u%04x`, r)
		default:
			piece = fmt.Sprintf(`\U%08x`, r)
		}
		i += size
		w := utf8.RuneCountInString(piece)
		if cut < 0 && n+w > limit-1 {
			cut = b.Len() // where "…" goes if the rest does not fit
		}
		if n += w; n > limit {
			return b.String()[:cut] + "…"
		}
		b.WriteString(piece)
	}
	return b.String()
}

// unsafeRune reports whether a terminal might act on r rather than show
// it.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}

// safeJSON returns valid JSON with the characters unsafeRune refuses
// written as \u escapes, and invalid UTF-8 as \ufffd: the same value for a
// JSON reader, inert on a terminal. (Outside strings JSON holds only
// ASCII, so every such character is inside a string.)
func safeJSON(data []byte) []byte {
	out := make([]byte, 0, len(data))
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = append(out, `\ufffd`...)
		case unsafeRune(r) && r >= 0x20:
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
			} else {
				out = fmt.Appendf(out, `\u%04x`, r)
			}
		default:
			out = append(out, data[i:i+size]...)
		}
		i += size
	}
	return out
}

// remoteLines is remote for text of several lines (an error naming one
// bad entry per line): each line is escaped and cut on its own.
func remoteLines(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = remote(l, lineRunes)
	}
	return strings.Join(lines, "\n")
}
