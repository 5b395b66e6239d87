package keys

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// VolumeKeyLen is the length of a volume key and of every drive key
// (AES-256).
const VolumeKeyLen = 32

// Lengths of the stored forms.
const (
	// V1StoredLen is the length of a stored v1 key: base64 without padding
	// of the 40-byte RFC 3394 wrap of a 32-byte key.
	V1StoredLen = 54
	// BareosWrappedLen is the length of a wrapped bareos stored string.
	BareosWrappedLen = 54
	// BareosPlainLen is the length of an unwrapped bareos stored string
	// (the passphrase itself in base64, no padding).
	BareosPlainLen = 43
)

// NewVolumeKey returns a new random 32-byte volume key from crypto/rand.
// Zero it (clear) when done.
func NewVolumeKey() ([]byte, error) {
	k := make([]byte, VolumeKeyLen)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("volume key: reading crypto/rand: %w", err)
	}
	return k, nil
}

// Scheme names how a stored key was made.
type Scheme string

const (
	// SchemeV1 is Tapeward's scheme: AES-256 key wrap of a random 32-byte
	// key under a 32-byte KEK, base64 without padding (54 characters).
	SchemeV1 Scheme = "v1"
	// SchemeBareos is Bareos' scheme (import and compatibility only): a
	// 32-character passphrase, AES-128 key wrap under the first 16 bytes
	// of the KEK string (54 characters) or no wrap (43 characters).
	SchemeBareos Scheme = "bareos"
)

// ParseScheme accepts "v1" or "bareos" (the catalog's scheme column).
func ParseScheme(s string) (Scheme, error) {
	switch Scheme(s) {
	case SchemeV1, SchemeBareos:
		return Scheme(s), nil
	}
	return "", fmt.Errorf("unknown key scheme %q; use %q or %q", s, SchemeV1, SchemeBareos)
}

// StoredKey is a volume key as the catalog holds it: the stored string and
// the columns beside it. Value is safe to store and send (it is wrapped),
// except for the 43-character unwrapped bareos form, so StoredKey's String
// and Format never print Value.
type StoredKey struct {
	Scheme      Scheme
	KEKID       string // KEKIDOf the wrapping KEK; empty for unwrapped bareos
	Value       string // the stored string
	Fingerprint string // Fingerprint of the 32-byte drive key
}

// String describes the key by scheme, KEK id and fingerprint only.
func (s StoredKey) String() string {
	return fmt.Sprintf("StoredKey{scheme=%s kek=%s fingerprint=%s}", s.Scheme, s.KEKID, s.Fingerprint)
}

// GoString is String: Value is never printed.
func (s StoredKey) GoString() string { return s.String() }

// Format prints String for every verb, so %v, %+v, %#v and %x never show
// Value.
func (s StoredKey) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

// EncodeV1 returns the stored v1 string of a 40-byte wrap.
func EncodeV1(wrapped []byte) string { return base64.RawStdEncoding.EncodeToString(wrapped) }

// DecodeV1 checks and decodes a stored v1 string into its 40-byte wrap. It
// is strict: exactly 54 characters of the standard base64 alphabet, no '='
// padding, canonical trailing bits. Errors are *FormatError.
func DecodeV1(value string) ([]byte, error) {
	const what = "stored v1 key"
	if trimmed := strings.TrimRight(value, "="); trimmed != value {
		return nil, &FormatError{What: what, Detail: fmt.Sprintf("has '=' padding (%d characters, %d without it); stored v1 keys are 54 base64 characters without padding", len(value), len(trimmed)),
			Hint: "remove the trailing '='"}
	}
	if len(value) != V1StoredLen {
		return nil, &FormatError{What: what, Want: "54 base64 characters (40 bytes)", Got: len(value)}
	}
	b, err := decodeB64(what, value)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// decodeB64 decodes unpadded standard base64 strictly, with an error that
// gives only the position of a bad character.
func decodeB64(what, s string) ([]byte, error) {
	b, err := base64.RawStdEncoding.Strict().DecodeString(s)
	if err != nil {
		clear(b)
		if ce, ok := err.(base64.CorruptInputError); ok {
			return nil, &FormatError{What: what, Detail: fmt.Sprintf("is not valid base64 (standard alphabet, no padding): bad character or trailing bits at position %d", int64(ce)+1)}
		}
		return nil, &FormatError{What: what, Detail: "is not valid base64 (standard alphabet, no padding)"}
	}
	return b, nil
}

// DecodeHex decodes hex (either case) that must be exactly wantBytes bytes
// long (wantBytes <= 0: any even length), naming what in errors. Errors give
// lengths and positions, never characters.
func DecodeHex(what, s string, wantBytes int) ([]byte, error) {
	if wantBytes > 0 && len(s) != 2*wantBytes {
		return nil, &FormatError{What: what, Want: fmt.Sprintf("%d hex characters (%d bytes)", 2*wantBytes, wantBytes), Got: len(s)}
	}
	if len(s)%2 != 0 {
		return nil, &FormatError{What: what, Detail: fmt.Sprintf("has an odd number of hex characters (%d)", len(s))}
	}
	out := make([]byte, len(s)/2)
	for i := 0; i < len(s); i += 2 {
		hi, ok1 := fromHex(s[i])
		lo, ok2 := fromHex(s[i+1])
		if !ok1 || !ok2 {
			pos := i + 1
			if ok1 {
				pos = i + 2
			}
			clear(out)
			return nil, &FormatError{What: what, Detail: fmt.Sprintf("is not hex: bad character at position %d (use 0-9, a-f)", pos)}
		}
		out[i/2] = hi<<4 | lo
	}
	return out, nil
}

func fromHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
