package keys

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
)

// BareosAlphabet is the 90-character alphabet of Bareos passphrases, in
// Bareos' order; a passphrase character is BareosAlphabet[b%90] for a
// random byte b.
const BareosAlphabet = "abcdefghijklmnopqrstuvwxyz" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "0123456789" +
	"!@#$%^&*()-_=+|[]{};:,.<>?/~"

// BareosPassphraseLen is the length of a Bareos passphrase.
const BareosPassphraseLen = 32

// bareosKEKLen is how much of a Bareos KEK string Bareos uses (AES-128).
const bareosKEKLen = 16

// BareosKEK is a Bareos KEK: the first 16 bytes of the configured KEK
// string (Bareos ignores the rest). Its id is KEKIDOf those 16 bytes. It
// prints only its id.
type BareosKEK struct {
	b  []byte
	id string
}

// ParseBareosKEK takes a Bareos KEK string, which must be at least 16
// bytes long; only its first 16 bytes are kept, as Bareos does.
func ParseBareosKEK(s string) (*BareosKEK, error) {
	if len(s) < bareosKEKLen {
		return nil, &FormatError{What: "Bareos KEK string", Want: "at least 16 bytes (Bareos uses its first 16 bytes as an AES-128 key)", Got: len(s), Unit: "bytes",
			Hint: "use the exact KEK string from the Bareos configuration"}
	}
	return newBareosKEK([]byte(s[:bareosKEKLen])), nil
}

// newBareosKEK keeps the first 16 bytes of b (len(b) >= 16), copied.
func newBareosKEK(b []byte) *BareosKEK {
	c := bytes.Clone(b[:bareosKEKLen])
	return &BareosKEK{b: c, id: KEKIDOf(c)}
}

// LoadBareosKEKFile reads a text file holding a Bareos KEK string (one
// trailing newline is trimmed). The file must not be accessible by group
// or others.
func LoadBareosKEKFile(path string) (*BareosKEK, error) {
	content, err := readPrivateFile("Bareos KEK file", path)
	if err != nil {
		return nil, err
	}
	defer clear(content)
	s := bytes.TrimSuffix(bytes.TrimSuffix(content, []byte("\n")), []byte("\r"))
	if len(s) < bareosKEKLen {
		return nil, &FormatError{What: "Bareos KEK file " + path, Want: "a KEK string of at least 16 bytes (Bareos uses its first 16 bytes as an AES-128 key)", Got: len(s), Unit: "bytes",
			Hint: "put the exact KEK string from the Bareos configuration in the file"}
	}
	return newBareosKEK(s), nil
}

// ID returns the Bareos KEK id (KEKIDOf its 16 used bytes).
func (k *BareosKEK) ID() string { return k.id }

// String returns "Bareos KEK <id>" (value receivers, as for KEK).
func (k BareosKEK) String() string { return "Bareos KEK " + k.id }

// GoString is String.
func (k BareosKEK) GoString() string { return k.String() }

// Format prints String for every verb.
func (k BareosKEK) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// Destroy zeroes the KEK bytes.
func (k *BareosKEK) Destroy() { clear(k.b) }

// GenerateBareosPassphrase returns a new 32-character Bareos passphrase
// (BareosAlphabet[b%90] per random byte, as Bareos does). Zero it when done.
func GenerateBareosPassphrase() ([]byte, error) {
	p := make([]byte, BareosPassphraseLen)
	if _, err := rand.Read(p); err != nil {
		return nil, fmt.Errorf("bareos passphrase: reading crypto/rand: %w", err)
	}
	for i, b := range p {
		p[i] = BareosAlphabet[int(b)%len(BareosAlphabet)]
	}
	return p, nil
}

func checkPassphrase(p []byte) error {
	if len(p) != BareosPassphraseLen {
		return &FormatError{What: "Bareos passphrase", Want: "32 characters", Got: len(p), Unit: "characters"}
	}
	return nil
}

// WrapBareos returns the Bareos stored string of a 32-character passphrase:
// with a KEK, the RFC 3394 AES-128 wrap in base64 without padding (54
// characters); with kek == nil, the passphrase itself in base64 without
// padding (43 characters), as Bareos stores keys when it has no KEK.
func WrapBareos(kek *BareosKEK, passphrase []byte) (string, error) {
	if err := checkPassphrase(passphrase); err != nil {
		return "", err
	}
	if kek == nil {
		return base64.RawStdEncoding.EncodeToString(passphrase), nil
	}
	w, err := Wrap(kek.b, passphrase)
	if err != nil {
		return "", err
	}
	return base64.RawStdEncoding.EncodeToString(w), nil
}

// UnwrapBareos returns the 32-character passphrase of a Bareos stored
// string. Trailing '=' are accepted. A 43-character string is the plain
// passphrase and needs no KEK (kek may be nil); a 54-character string is
// wrapped and needs kek. Failures are *UnwrapError.
func UnwrapBareos(kek *BareosKEK, stored string) ([]byte, error) {
	kekID := ""
	if kek != nil {
		kekID = kek.id
	}
	fail := func(err error) error { return &UnwrapError{Scheme: SchemeBareos, KEKID: kekID, Err: err} }
	const what = "stored bareos key"
	s := strings.TrimRight(stored, "=")
	switch len(s) {
	case BareosPlainLen:
		p, err := base64.RawStdEncoding.DecodeString(s)
		if err != nil || len(p) != BareosPassphraseLen {
			clear(p)
			return nil, fail(&FormatError{What: what, Detail: "is not valid base64 (standard alphabet)"})
		}
		return p, nil
	case BareosWrappedLen:
		if kek == nil {
			return nil, fail(&FormatError{What: what, Detail: "is wrapped (54 characters) and needs the Bareos KEK string",
				Hint: "give the Bareos KEK file (tapekey: --kek FILE)"})
		}
		w, err := base64.RawStdEncoding.DecodeString(s)
		if err != nil || len(w) != BareosPassphraseLen+8 {
			return nil, fail(&FormatError{What: what, Detail: "is not valid base64 (standard alphabet)"})
		}
		p, ok := unwrapRaw(kek.b, w)
		if !ok {
			return nil, fail(ErrIntegrity)
		}
		return p, nil
	}
	return nil, fail(&FormatError{What: what, Want: "54 base64 characters (wrapped) or 43 (unwrapped), not counting '=' padding", Got: len(s)})
}

// BareosDriveKey returns the 32 bytes a drive receives for a Bareos
// passphrase: its first 31 characters followed by one 0x00 byte.
func BareosDriveKey(passphrase []byte) ([]byte, error) {
	if err := checkPassphrase(passphrase); err != nil {
		return nil, err
	}
	k := make([]byte, VolumeKeyLen)
	copy(k, passphrase[:BareosPassphraseLen-1])
	return k, nil
}
