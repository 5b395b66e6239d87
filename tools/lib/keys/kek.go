package keys

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// KEKLen is the length of a v1 key encryption key (AES-256).
const KEKLen = 32

// KEK is a 32-byte key encryption key for the v1 scheme. Its bytes never
// leave the package except through EncodeKEKHex and SealKEK (to write a KEK
// file); String, GoString and Format print only its id.
type KEK struct {
	b  []byte
	id string
}

// NewKEK returns a KEK holding a copy of b, which must be 32 bytes. The
// caller may zero b afterwards.
func NewKEK(b []byte) (*KEK, error) {
	if len(b) != KEKLen {
		return nil, fmt.Errorf("KEK must be %d bytes (AES-256); got %d bytes", KEKLen, len(b))
	}
	c := bytes.Clone(b)
	return &KEK{b: c, id: KEKIDOf(c)}, nil
}

// GenerateKEK returns a new random KEK from crypto/rand.
func GenerateKEK() (*KEK, error) {
	b := make([]byte, KEKLen)
	defer clear(b)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("new KEK: reading crypto/rand: %w", err)
	}
	return NewKEK(b)
}

// ParseKEKHex parses a KEK written as 64 hex characters (either case).
func ParseKEKHex(s string) (*KEK, error) {
	b, err := DecodeHex("KEK", s, KEKLen)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	return NewKEK(b)
}

// ID returns the KEK id, KEKIDOf the KEK bytes.
func (k *KEK) ID() string { return k.id }

// String returns "KEK <id>"; never the bytes. String, GoString and Format
// have value receivers so that a copied KEK value prints safely too.
func (k KEK) String() string { return "KEK " + k.id }

// GoString is String.
func (k KEK) GoString() string { return k.String() }

// Format prints String for every verb (%x included).
func (k KEK) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// Destroy zeroes the KEK bytes; the KEK is unusable afterwards.
func (k *KEK) Destroy() { clear(k.b) }

// EncodeKEKHex returns the content of a plain KEK file: 64 lower-case hex
// characters and a newline. Write it with mode 0600 and zero it after.
func EncodeKEKHex(k *KEK) []byte {
	out := make([]byte, 2*KEKLen+1)
	hex.Encode(out, k.b)
	out[2*KEKLen] = '\n'
	return out
}

// LoadOptions tells LoadKEKFile how to open a sealed KEK file.
type LoadOptions struct {
	// MasterKeysetPath is the Tink master keyset (JSON) that seals the KEK
	// file. Needed only for sealed KEK files.
	MasterKeysetPath string
}

// LoadKEKFile reads a plain or sealed KEK file (see the package README for
// both formats). The file (and the master keyset) must not be accessible by
// group or others (*PermissionError otherwise).
func LoadKEKFile(path string, opts LoadOptions) (*KEK, error) {
	content, err := readPrivateFile("KEK file", path)
	if err != nil {
		return nil, err
	}
	defer clear(content)
	if bytes.HasPrefix(content, []byte(sealedMagic)) {
		if opts.MasterKeysetPath == "" {
			return nil, fmt.Errorf("KEK file %s is sealed with Tink; give the master keyset file that sealed it (tapekey: --master FILE)", path)
		}
		m, err := LoadMasterKeyset(opts.MasterKeysetPath)
		if err != nil {
			return nil, err
		}
		return m.openSealed(path, content)
	}
	body := content
	if bytes.HasSuffix(body, []byte("\r\n")) {
		body = body[:len(body)-2]
	} else if bytes.HasSuffix(body, []byte("\n")) {
		body = body[:len(body)-1]
	}
	if len(body) != 2*KEKLen {
		return nil, &FormatError{What: "KEK file " + path, Want: "64 hex characters (32 bytes) and an optional newline, or a sealed KEK file", Got: len(body), Unit: "characters"}
	}
	b := make([]byte, KEKLen)
	defer clear(b)
	for i := range b {
		hi, ok1 := fromHex(body[2*i])
		lo, ok2 := fromHex(body[2*i+1])
		if !ok1 || !ok2 {
			return nil, &FormatError{What: "KEK file " + path, Detail: fmt.Sprintf("is not hex: bad character near position %d (a plain KEK file holds 64 hex characters)", 2*i+1)}
		}
		b[i] = hi<<4 | lo
	}
	return NewKEK(b)
}

// maxKeyFile bounds what is read from any key file.
const maxKeyFile = 64 << 10

// CheckPrivateFile returns nil if path is a regular file that group and
// others cannot access (mode &0077 == 0), else an error; for a too-open
// file it is a *PermissionError whose text holds the chmod command.
func CheckPrivateFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return keyFileError("key file", path, err)
	}
	return checkMode("key file", path, fi)
}

func checkMode(kind, path string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s %s is not a regular file", kind, path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return &PermissionError{Kind: kind, Path: path, Mode: fi.Mode()}
	}
	return nil
}

func keyFileError(kind, path string, err error) error {
	if os.IsNotExist(err) {
		return fmt.Errorf("%s %s does not exist", kind, path)
	}
	if os.IsPermission(err) {
		return fmt.Errorf("%s %s cannot be read by this user (permission denied)", kind, path)
	}
	return fmt.Errorf("%s %s: %w", kind, path, err)
}

// readPrivateFile opens path, checks the opened file's mode, and reads it.
// The caller zeroes the result.
func readPrivateFile(kind, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, keyFileError(kind, path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, keyFileError(kind, path, err)
	}
	if err := checkMode(kind, path, fi); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, 512)
	for {
		if len(buf) > maxKeyFile {
			clear(buf)
			return nil, fmt.Errorf("%s %s is larger than %d bytes; it is not a key file", kind, path, maxKeyFile)
		}
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), 2*cap(buf))
			copy(nb, buf)
			clear(buf)
			buf = nb
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			clear(buf)
			return nil, keyFileError(kind, path, err)
		}
	}
}
