package keys

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// ErrIntegrity is the cause of an unwrap whose RFC 3394 integrity check
// failed: the string was wrapped under another KEK, or it is corrupt. Test
// with errors.Is(err, ErrIntegrity).
var ErrIntegrity = errors.New("integrity check failed")

// UnwrapError is returned for every failure to turn a stored or wrapped key
// back into key bytes. KEKID is the id of the KEK the caller expected (the
// one tried, or the one the stored key names); it is empty only for the
// unwrapped bareos form, which needs no KEK. Err is ErrIntegrity, a
// *FormatError or a *KEKNotFoundError. Neither field ever holds key bytes.
type UnwrapError struct {
	Scheme Scheme // SchemeV1, SchemeBareos, or "" for plain RFC 3394
	KEKID  string
	Err    error
}

func (e *UnwrapError) Error() string {
	if errors.Is(e.Err, ErrIntegrity) {
		return fmt.Sprintf("unwrap failed: this string was not wrapped with KEK %s (integrity check failed) — or it is corrupt", e.KEKID)
	}
	var nf *KEKNotFoundError
	if e.KEKID != "" && !errors.As(e.Err, &nf) {
		return fmt.Sprintf("unwrap failed (KEK %s): %s", e.KEKID, e.Err)
	}
	return "unwrap failed: " + e.Err.Error()
}

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *UnwrapError) Unwrap() error { return e.Err }

// FormatError says that an input (a stored key string, hex, a KEK file)
// does not have the expected shape. It describes lengths and positions,
// never the content.
type FormatError struct {
	What   string // the thing that was malformed, e.g. "stored v1 key"
	Want   string // what was expected, e.g. "54 base64 characters (40 bytes)"
	Got    int    // the length received
	Unit   string // unit of Got when it helps ("bytes"); may be empty
	Detail string // when set, replaces the length sentence, e.g. "is not valid base64"
	Hint   string // what to do, optional
}

func (e *FormatError) Error() string {
	var s string
	if e.Detail != "" {
		s = e.What + " " + e.Detail
	} else {
		s = fmt.Sprintf("%s must be %s; got %d", e.What, e.Want, e.Got)
		if e.Unit != "" {
			s += " " + e.Unit
		}
	}
	if e.Hint != "" {
		s += " — " + e.Hint
	}
	return s
}

// KEKNotFoundError says that a stored key names a KEK id the keyring does
// not hold.
type KEKNotFoundError struct {
	Needed string   // the KEK id the stored key was wrapped with
	Have   []string // the ids the keyring holds
}

func (e *KEKNotFoundError) Error() string {
	have := "none"
	if len(e.Have) > 0 {
		have = strings.Join(e.Have, ", ")
	}
	return fmt.Sprintf("this key needs KEK %s, which is not in the keyring (it has: %s); add the KEK file whose id is %s (check with: tapekey kek id FILE)", e.Needed, have, e.Needed)
}

// PermissionError says that a key file can be read (or written) by group or
// others. Its message contains the exact chmod command that fixes it.
type PermissionError struct {
	Kind string // "KEK file", "master keyset file", "Bareos KEK file", "key file"
	Path string
	Mode fs.FileMode
}

func (e *PermissionError) Error() string {
	what := "readable by group or others"
	if e.Mode.Perm()&0o044 == 0 {
		what = "accessible by group or others"
	}
	return fmt.Sprintf("%s %s is %s (mode %04o); run: chmod 600 %s", e.Kind, e.Path, what, e.Mode.Perm(), shellQuote(e.Path))
}

// shellQuote returns p as one shell word, quoted only when needed.
func shellQuote(p string) string {
	safe := p != ""
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._-+:,@%=", c)) {
			safe = false
			break
		}
	}
	if safe {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}
