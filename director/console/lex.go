package console

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLineLen is the longest command line Parse accepts, in bytes.
const MaxLineLen = 8192

// token is one word of a line: a bare keyword, or keyword=value.
type token struct {
	key    string // as written (case preserved)
	pos    int    // byte offset of key
	hasVal bool
	val    string // unquoted, unescaped
	valPos int
	quoted bool
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// lex splits a line into tokens. It rejects lines over MaxLineLen, invalid
// UTF-8, non-printing characters (tab is a space), unterminated quotes and
// stray quotes or '='. Blank and comment lines give ErrEmpty.
func lex(line string) ([]token, error) {
	if len(line) > MaxLineLen {
		return nil, &SyntaxError{Pos: MaxLineLen, Msg: fmt.Sprintf("line is %d bytes; the limit is %d", len(line), MaxLineLen)}
	}
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRuneInString(line[i:])
		if r == utf8.RuneError && size <= 1 {
			return nil, &SyntaxError{Pos: i, Msg: "invalid UTF-8"}
		}
		if r != '\t' && !unicode.IsPrint(r) {
			return nil, &SyntaxError{Pos: i, Msg: fmt.Sprintf("non-printing character %U", r)}
		}
		i += size
	}
	n := len(line)
	skip := func(i int) int {
		for i < n && isSpace(line[i]) {
			i++
		}
		return i
	}
	i := skip(0)
	if i == n || line[i] == '#' {
		return nil, ErrEmpty
	}
	var toks []token
	for {
		i = skip(i)
		if i == n {
			return toks, nil
		}
		switch line[i] {
		case '"':
			return nil, &SyntaxError{Pos: i, Msg: `quoted text must follow a keyword and "=", e.g. out="my keys.csv"`}
		case '=':
			return nil, &SyntaxError{Pos: i, Msg: `"=" without a keyword before it`}
		}
		j := i
		for j < n && !isSpace(line[j]) && line[j] != '=' && line[j] != '"' {
			j++
		}
		if j < n && line[j] == '"' {
			return nil, &SyntaxError{Pos: j, Msg: `quote inside a word; only values (after "=") may be quoted`}
		}
		t := token{key: line[i:j], pos: i}
		k := skip(j)
		if k == n || line[k] != '=' {
			toks = append(toks, t)
			i = j
			continue
		}
		t.hasVal = true
		m := skip(k + 1)
		t.valPos = m
		if m == n {
			toks = append(toks, t)
			i = m
			continue
		}
		switch line[m] {
		case '"':
			var b strings.Builder
			p := m + 1
			closed := false
			for p < n {
				c := line[p]
				if c == '"' {
					closed = true
					p++
					break
				}
				if c == '\\' {
					if p+1 < n && (line[p+1] == '"' || line[p+1] == '\\') {
						b.WriteByte(line[p+1])
						p += 2
						continue
					}
					return nil, &SyntaxError{Pos: p, Msg: `unknown escape inside quotes; only \" and \\ are escapes`}
				}
				b.WriteByte(c)
				p++
			}
			if !closed {
				return nil, &SyntaxError{Pos: m, Msg: "unterminated quote"}
			}
			if p < n && !isSpace(line[p]) {
				return nil, &SyntaxError{Pos: p, Msg: "a quoted value must be followed by a space or the end of the line"}
			}
			t.val = b.String()
			t.quoted = true
			toks = append(toks, t)
			i = p
		case '=':
			return nil, &SyntaxError{Pos: m, Msg: fmt.Sprintf(`%s: "=" twice`, echo(t.key))}
		default:
			p := m
			for p < n && !isSpace(line[p]) && line[p] != '"' && line[p] != '=' {
				p++
			}
			if p < n && line[p] == '"' {
				return nil, &SyntaxError{Pos: p, Msg: "quote inside an unquoted value; quote the whole value"}
			}
			if p < n && line[p] == '=' {
				if m > k+1 {
					// "pool= storage=x": the word after "= " is the next
					// keyword, so pool has no value.
					toks = append(toks, t)
					i = m
					continue
				}
				return nil, &SyntaxError{Pos: p, Msg: `"=" inside a value; quote values that contain "="`}
			}
			t.val = line[m:p]
			toks = append(toks, t)
			i = p
		}
	}
}

// needsQuote reports whether a value must be quoted to lex back unchanged.
func needsQuote(v string) bool {
	return v == "" || strings.ContainsAny(v, " \t\"\\=")
}

// quote writes v so that lex reads it back as v.
func quote(v string) string {
	if !needsQuote(v) {
		return v
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}

// lower lowercases ASCII letters only, so that no non-ASCII spelling (such
// as the Kelvin sign) matches a keyword.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
