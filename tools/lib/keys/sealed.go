package keys

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// SealedKEKHeader starts the first line of a sealed KEK file; the KEK id
// follows it on the same line.
const SealedKEKHeader = "tapeward-sealed-kek v1 "

const sealedMagic = SealedKEKHeader

// sealedAD is the Tink associated data of a sealed KEK: it binds the KEK id
// written in the header to the ciphertext.
func sealedAD(kekID string) []byte { return []byte(sealedMagic + kekID) }

// MasterKeyset is a Tink AEAD keyset (AES-256-GCM) that seals KEK files at
// rest. It prints only its file name.
type MasterKeyset struct {
	a    tink.AEAD
	path string
}

// String returns "master keyset <path>".
func (m MasterKeyset) String() string { return "master keyset " + m.path }

// GoString is String.
func (m MasterKeyset) GoString() string { return m.String() }

// Format prints String for every verb, so Tink's key never shows.
func (m MasterKeyset) Format(f fmt.State, _ rune) { io.WriteString(f, m.String()) }

// NewMasterKeysetJSON generates a new Tink AES-256-GCM keyset and returns
// it as cleartext JSON (the master keyset file). Write it with mode 0600.
func NewMasterKeysetJSON() ([]byte, error) {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("new master keyset: Tink could not generate an AES-256-GCM keyset")
	}
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&buf)); err != nil {
		return nil, fmt.Errorf("new master keyset: Tink could not serialise the keyset")
	}
	return buf.Bytes(), nil
}

// LoadMasterKeyset reads a master keyset file (cleartext Tink JSON keyset
// holding an AEAD key). The file must not be accessible by group or others.
func LoadMasterKeyset(path string) (*MasterKeyset, error) {
	content, err := readPrivateFile("master keyset file", path)
	if err != nil {
		return nil, err
	}
	defer clear(content)
	// Tink's parse errors may quote the input, so they are not passed on.
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(content)))
	if err != nil {
		return nil, fmt.Errorf("master keyset file %s is not a Tink JSON keyset (make one with: tapekey master-keyset new --out FILE)", path)
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, fmt.Errorf("master keyset file %s does not hold a Tink AEAD key (make one with: tapekey master-keyset new --out FILE)", path)
	}
	return &MasterKeyset{a: a, path: path}, nil
}

// SealKEK returns the content of a sealed KEK file for k: the header line
// "tapeward-sealed-kek v1 <kek id>" and one line of standard base64 of the
// Tink ciphertext of the 32 KEK bytes, with the header line (without its
// newline) as associated data.
func (m *MasterKeyset) SealKEK(k *KEK) ([]byte, error) {
	ct, err := m.a.Encrypt(k.b, sealedAD(k.id))
	if err != nil {
		return nil, fmt.Errorf("sealing KEK %s with %s failed", k.id, m)
	}
	var out bytes.Buffer
	out.WriteString(sealedMagic + k.id + "\n")
	out.WriteString(base64.StdEncoding.EncodeToString(ct) + "\n")
	return out.Bytes(), nil
}

// openSealed parses and decrypts a sealed KEK file's content.
func (m *MasterKeyset) openSealed(path string, content []byte) (*KEK, error) {
	bad := func(detail string) error {
		return &FormatError{What: "sealed KEK file " + path, Detail: detail}
	}
	header, rest, ok := bytes.Cut(content, []byte("\n"))
	if !ok {
		return nil, bad("has no ciphertext line after its header")
	}
	id := string(bytes.TrimPrefix(header, []byte(sealedMagic)))
	if len(id) != FingerprintLen || !isLowerHex(id) {
		return nil, bad(fmt.Sprintf("has a bad header: want %q followed by a %d-character KEK id", sealedMagic, FingerprintLen))
	}
	body := string(bytes.TrimSpace(rest))
	ct, err := base64.StdEncoding.DecodeString(body)
	if err != nil || len(ct) == 0 {
		return nil, bad("has a ciphertext line that is not standard base64")
	}
	plain, err := m.a.Decrypt(ct, sealedAD(id))
	if err != nil {
		return nil, fmt.Errorf("sealed KEK file %s (KEK %s) cannot be opened with %s: it was sealed with another master keyset, or the file or its KEK id was altered", path, id, m)
	}
	defer clear(plain)
	k, err := NewKEK(plain)
	if err != nil || k.id != id {
		return nil, fmt.Errorf("sealed KEK file %s: the sealed key does not match KEK id %s in its header", path, id)
	}
	return k, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}
