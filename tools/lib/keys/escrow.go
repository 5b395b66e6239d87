package keys

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/hybrid/hpke"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/secretdata"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// An escrow key is an X25519 key pair for Tink hybrid encryption (HPKE:
// DHKEM_X25519_HKDF_SHA256, HKDF_SHA256, AES_256_GCM, no prefix). The
// director seals every new volume key to the public half; the envelope is
// stored in the catalog and in the volume's clear label, so a DR needs only
// the tapes and the private half (kept off-site, e.g. on paper). The
// daemons only ever hold the public half.

// EscrowPrivateKeyLen is the length of the X25519 private key in bytes (what
// goes on paper).
const EscrowPrivateKeyLen = 32

const (
	escrowIDLabel     = "tapeward/v1/escrow-key-id"
	escrowADLabel     = "tapeward/v1/escrow-envelope\x00"
	envelopeVersion   = 1
	envelopeHeaderLen = 1 + FingerprintLen/2
	// MaxEnvelopeLen bounds an envelope: header + HPKE encapsulated key
	// (32) + sealed 32-byte key (32) + GCM tag (16).
	MaxEnvelopeLen = envelopeHeaderLen + 32 + 32 + 16
)

// ErrEscrowOpen is the cause of an envelope that the escrow private key
// given cannot open (another escrow key, another volume or fingerprint, or
// a corrupt envelope). Test with errors.Is.
var ErrEscrowOpen = errors.New("escrow envelope cannot be opened")

func escrowParams() *hpke.Parameters {
	p, err := hpke.NewParameters(hpke.ParametersOpts{
		KEMID:   hpke.DHKEM_X25519_HKDF_SHA256,
		KDFID:   hpke.HKDFSHA256,
		AEADID:  hpke.AES256GCM,
		Variant: hpke.VariantNoPrefix,
	})
	if err != nil {
		panic("keys: HPKE parameters: " + err.Error())
	}
	return p
}

// EscrowIDOf returns the escrow key id of an X25519 public key: 16 hex
// characters, the same construction as KEK ids under another label.
func EscrowIDOf(publicKey []byte) string { return derive(publicKey, escrowIDLabel) }

// EscrowPublic is the public half of an escrow key: it seals volume keys.
// It prints only its id.
type EscrowPublic struct {
	h  *keyset.Handle
	e  tink.HybridEncrypt
	id string
}

// EscrowPrivate is the private half: it opens envelopes. It prints only its
// id.
type EscrowPrivate struct {
	h   *keyset.Handle
	d   tink.HybridDecrypt
	pub *EscrowPublic
}

// ID is the escrow key id.
func (p *EscrowPublic) ID() string { return p.id }

// ID is the escrow key id (of its public half).
func (p *EscrowPrivate) ID() string { return p.pub.id }

// Public returns the public half.
func (p *EscrowPrivate) Public() *EscrowPublic { return p.pub }

func (p EscrowPublic) String() string             { return "escrow public key " + p.id }
func (p EscrowPublic) GoString() string           { return p.String() }
func (p EscrowPublic) Format(f fmt.State, _ rune) { io.WriteString(f, p.String()) }

func (p EscrowPrivate) String() string {
	if p.pub == nil {
		return "escrow private key"
	}
	return "escrow private key " + p.pub.id
}
func (p EscrowPrivate) GoString() string           { return p.String() }
func (p EscrowPrivate) Format(f fmt.State, _ rune) { io.WriteString(f, p.String()) }

// NewEscrowKey generates a new escrow key pair.
func NewEscrowKey() (*EscrowPrivate, error) {
	km := keyset.NewManager()
	id, err := km.AddNewKeyFromParameters(escrowParams())
	if err == nil {
		err = km.SetPrimary(id)
	}
	if err != nil {
		return nil, errors.New("new escrow key: Tink could not generate an X25519 HPKE key")
	}
	h, err := km.Handle()
	if err != nil {
		return nil, errors.New("new escrow key: Tink could not build the keyset")
	}
	return escrowPrivateFromHandle(h, "new escrow key")
}

// EscrowKeyFromBytes rebuilds an escrow private key from its 32 private key
// bytes (as typed back from paper). The caller clears b.
func EscrowKeyFromBytes(b []byte) (*EscrowPrivate, error) {
	if len(b) != EscrowPrivateKeyLen {
		return nil, &FormatError{What: "escrow private key", Want: fmt.Sprintf("%d bytes", EscrowPrivateKeyLen), Got: len(b), Unit: "bytes"}
	}
	k, err := hpke.NewPrivateKey(secretdata.NewBytesFromData(b, insecuresecretdataaccess.Token{}), 0, escrowParams())
	if err != nil {
		return nil, errors.New("escrow private key: the bytes are not a valid X25519 private key")
	}
	km := keyset.NewManager()
	id, err := km.AddKey(k)
	if err == nil {
		err = km.SetPrimary(id)
	}
	if err != nil {
		return nil, errors.New("escrow private key: Tink could not build the keyset")
	}
	h, err := km.Handle()
	if err != nil {
		return nil, errors.New("escrow private key: Tink could not build the keyset")
	}
	return escrowPrivateFromHandle(h, "escrow private key")
}

func escrowPrivateFromHandle(h *keyset.Handle, what string) (*EscrowPrivate, error) {
	if h.Len() != 1 {
		return nil, fmt.Errorf("%s must hold exactly one key; it holds %d", what, h.Len())
	}
	e, err := h.Primary()
	if err != nil {
		return nil, fmt.Errorf("%s has no primary key", what)
	}
	k, ok := e.Key().(*hpke.PrivateKey)
	if !ok || !k.Parameters().Equal(escrowParams()) {
		return nil, fmt.Errorf("%s is not an X25519 HPKE private key (DHKEM_X25519_HKDF_SHA256, HKDF_SHA256, AES_256_GCM; make one with: tapekey escrow new)", what)
	}
	d, err := hybrid.NewHybridDecrypt(h)
	if err != nil {
		return nil, fmt.Errorf("%s: Tink could not make a decrypter", what)
	}
	ph, err := h.Public()
	if err != nil {
		return nil, fmt.Errorf("%s: Tink could not derive the public key", what)
	}
	pub, err := escrowPublicFromHandle(ph, what)
	if err != nil {
		return nil, err
	}
	return &EscrowPrivate{h: h, d: d, pub: pub}, nil
}

func escrowPublicFromHandle(h *keyset.Handle, what string) (*EscrowPublic, error) {
	if h.Len() != 1 {
		return nil, fmt.Errorf("%s must hold exactly one key; it holds %d", what, h.Len())
	}
	e, err := h.Primary()
	if err != nil {
		return nil, fmt.Errorf("%s has no primary key", what)
	}
	k, ok := e.Key().(*hpke.PublicKey)
	if !ok || !k.Parameters().Equal(escrowParams()) {
		return nil, fmt.Errorf("%s is not an X25519 HPKE public key (make one with: tapekey escrow new)", what)
	}
	enc, err := hybrid.NewHybridEncrypt(h)
	if err != nil {
		return nil, fmt.Errorf("%s: Tink could not make an encrypter", what)
	}
	return &EscrowPublic{h: h, e: enc, id: EscrowIDOf(k.PublicKeyBytes())}, nil
}

// PrivateKeyBytes returns a copy of the 32 private key bytes (for paper).
// The caller clears it.
func (p *EscrowPrivate) PrivateKeyBytes() []byte {
	e, _ := p.h.Primary()
	return e.Key().(*hpke.PrivateKey).PrivateKeyBytes().Data(insecuresecretdataaccess.Token{})
}

// MarshalPrivate returns the private key file: a cleartext Tink JSON
// keyset. Write it with mode 0600.
func (p *EscrowPrivate) MarshalPrivate() ([]byte, error) {
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(p.h, keyset.NewJSONWriter(&buf)); err != nil {
		return nil, fmt.Errorf("%s: Tink could not serialise the keyset", p)
	}
	return buf.Bytes(), nil
}

// Marshal returns the public key file: a Tink JSON keyset without secrets.
func (p *EscrowPublic) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	if err := p.h.WriteWithNoSecrets(keyset.NewJSONWriter(&buf)); err != nil {
		return nil, fmt.Errorf("%s: Tink could not serialise the keyset", p)
	}
	return buf.Bytes(), nil
}

// ParseEscrowPublic parses a public key file's content; name is used in
// errors.
func ParseEscrowPublic(name string, content []byte) (*EscrowPublic, error) {
	h, err := keyset.ReadWithNoSecrets(keyset.NewJSONReader(bytes.NewReader(content)))
	if err != nil {
		return nil, fmt.Errorf("escrow public key file %s is not a Tink JSON public keyset (make one with: tapekey escrow new --out escrow.key --public escrow.pub)", name)
	}
	return escrowPublicFromHandle(h, "escrow public key file "+name)
}

// LoadEscrowPublic reads an escrow public key file.
func LoadEscrowPublic(path string) (*EscrowPublic, error) {
	content, err := readPublicFile("escrow public key file", path)
	if err != nil {
		return nil, err
	}
	return ParseEscrowPublic(path, content)
}

// LoadEscrowPrivate reads an escrow private key file (cleartext Tink JSON
// keyset, not accessible by group or others).
func LoadEscrowPrivate(path string) (*EscrowPrivate, error) {
	content, err := readPrivateFile("escrow private key file", path)
	if err != nil {
		return nil, err
	}
	defer clear(content)
	// Tink's parse errors may quote the input, so they are not passed on.
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(content)))
	if err != nil {
		return nil, fmt.Errorf("escrow private key file %s is not a Tink JSON keyset (make one with: tapekey escrow new, or from paper: tapekey escrow unpaper)", path)
	}
	return escrowPrivateFromHandle(h, "escrow private key file "+path)
}

func escrowAD(volume, fingerprint string) []byte {
	return []byte(escrowADLabel + volume + "\x00" + fingerprint)
}

// Seal returns the escrow envelope of a 32-byte drive key for a volume: a
// version byte, the escrow key id (8 bytes), and the HPKE ciphertext with
// the volume name and the key's fingerprint as associated data. The
// envelope holds no key in clear; it is safe to store next to the volume.
func (p *EscrowPublic) Seal(driveKey []byte, volume string) ([]byte, error) {
	if len(driveKey) != VolumeKeyLen {
		return nil, &FormatError{What: "volume key to escrow", Want: fmt.Sprintf("%d bytes", VolumeKeyLen), Got: len(driveKey), Unit: "bytes"}
	}
	if volume == "" {
		return nil, errors.New("escrow seal: no volume name")
	}
	ct, err := p.e.Encrypt(driveKey, escrowAD(volume, Fingerprint(driveKey)))
	if err != nil {
		return nil, fmt.Errorf("sealing the key of volume %s to %s failed", volume, p)
	}
	id, _ := hex.DecodeString(p.id)
	env := make([]byte, 0, envelopeHeaderLen+len(ct))
	env = append(env, envelopeVersion)
	env = append(env, id...)
	return append(env, ct...), nil
}

// EnvelopeKeyID returns the escrow key id an envelope was sealed to.
func EnvelopeKeyID(env []byte) (string, error) {
	if len(env) <= envelopeHeaderLen || len(env) > MaxEnvelopeLen {
		return "", &FormatError{What: "escrow envelope", Want: fmt.Sprintf("%d..%d bytes", envelopeHeaderLen+1, MaxEnvelopeLen), Got: len(env), Unit: "bytes"}
	}
	if env[0] != envelopeVersion {
		return "", &FormatError{What: "escrow envelope", Detail: fmt.Sprintf("has version %d; this build reads version %d", env[0], envelopeVersion)}
	}
	return hex.EncodeToString(env[1:envelopeHeaderLen]), nil
}

// Open returns the drive key sealed in env for the volume whose label names
// fingerprint. The error names the escrow key id the envelope needs when
// it is another one; the caller clears the key.
func (p *EscrowPrivate) Open(env []byte, volume, fingerprint string) ([]byte, error) {
	id, err := EnvelopeKeyID(env)
	if err != nil {
		return nil, err
	}
	if id != p.pub.id {
		return nil, fmt.Errorf("%w: the envelope of volume %s was sealed to escrow key %s; %s is another key (find the escrow key %s)", ErrEscrowOpen, volume, id, p, id)
	}
	k, err := p.d.Decrypt(env[envelopeHeaderLen:], escrowAD(volume, fingerprint))
	if err != nil {
		return nil, fmt.Errorf("%w: the envelope of volume %s (key %s) does not open with escrow key %s: it was sealed for another volume name or key fingerprint, or it is corrupt", ErrEscrowOpen, volume, fingerprint, id)
	}
	if len(k) != VolumeKeyLen || Fingerprint(k) != fingerprint {
		clear(k)
		return nil, fmt.Errorf("%w: the key in the envelope of volume %s does not have fingerprint %s", ErrEscrowOpen, volume, fingerprint)
	}
	return k, nil
}

// readPublicFile reads a small public file (no mode check).
func readPublicFile(kind, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, keyFileError(kind, path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, keyFileError(kind, path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%s %s is larger than %d bytes; it is not a key file", kind, path, maxKeyFile)
	}
	return b, nil
}

// Escrow is a volume key's escrow envelope as it is stored beside the
// wrapped key (catalog columns, WrappedKey, the label): the escrow key id
// and the envelope in standard base64. The zero value: no escrow.
type Escrow struct {
	KeyID    string
	Envelope string
}

// IsZero reports whether there is no envelope.
func (e Escrow) IsZero() bool { return e.Envelope == "" }

// String names the escrow key only.
func (e Escrow) String() string {
	if e.IsZero() {
		return "no escrow envelope"
	}
	return "escrow envelope for escrow key " + e.KeyID
}

// WrapNewEscrow is Keyring.WrapNew that also seals the new key for volume
// to escrow (when not nil) before the key bytes are cleared.
func (r *Keyring) WrapNewEscrow(volume string, escrow *EscrowPublic) (StoredKey, Escrow, error) {
	k, err := NewVolumeKey()
	if err != nil {
		return StoredKey{}, Escrow{}, err
	}
	defer clear(k)
	sk, err := r.Wrap(k)
	if err != nil || escrow == nil {
		return sk, Escrow{}, err
	}
	env, err := escrow.Seal(k, volume)
	if err != nil {
		return StoredKey{}, Escrow{}, err
	}
	return sk, Escrow{KeyID: escrow.ID(), Envelope: base64.StdEncoding.EncodeToString(env)}, nil
}

// OpenEscrow opens a stored envelope (standard base64) for volume and the
// fingerprint its label names.
func (p *EscrowPrivate) OpenEscrow(e Escrow, volume, fingerprint string) ([]byte, error) {
	env, err := base64.StdEncoding.DecodeString(e.Envelope)
	if err != nil {
		return nil, &FormatError{What: "escrow envelope of volume " + volume, Detail: "is not standard base64"}
	}
	return p.Open(env, volume, fingerprint)
}
