// Package label encodes, decodes, writes and reads the Tapeward volume
// label: the first block of tape file 0, written in clear (no key loaded)
// and followed by a filemark, so that any drive can tell which volume it
// holds without a key. The byte layout is in README.md.
package label

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
	"unicode/utf8"
)

// Layout constants (README.md).
const (
	// Size is the length of every version-1 label block.
	Size = 1024
	// HeaderSize is the fixed binary header in front of the JSON body.
	HeaderSize = 32
	// Version is the label format version this package writes.
	Version = 1
	// Magic opens every Tapeward label block.
	Magic = "TAPEWARD"

	offMagic    = 0
	offVersion  = 8
	offHdrLen   = 10
	offBodyLen  = 12
	offChecksum = 16
	offBody     = HeaderSize
	maxBody     = Size - HeaderSize
)

// Field limits checked by Encode, so that a label always fits in Size.
const (
	MaxNameLen      = 64 // volume, pool, storage
	MaxMediaTypeLen = 32
	MaxSchemeLen    = 16
	MaxIDLen        = 64 // kek id, key fingerprint
	MaxBlockSize    = 1<<24 - 1
	// MaxEnvelopeLen bounds the base64 escrow envelope (keys.MaxEnvelopeLen
	// bytes are 120 characters).
	MaxEnvelopeLen = 160
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Errors Decode and Read return (test with errors.Is).
var (
	// ErrNotTapeward: the block is not a Tapeward label (foreign data, a
	// label of other software, a tape written without a label).
	ErrNotTapeward = errors.New("not a Tapeward volume label")
	// ErrCorrupt: the block starts like a Tapeward label but its
	// checksum, lengths or body are wrong.
	ErrCorrupt = errors.New("corrupt Tapeward volume label")
	// ErrNewerVersion: a Tapeward label of a format version this build
	// does not know; upgrade before using the volume.
	ErrNewerVersion = errors.New("Tapeward volume label of a newer format version")
	// ErrBlankTape: the tape holds no data at all (BLANK CHECK at BOT).
	ErrBlankTape = errors.New("blank tape: no label (nothing written)")
	// ErrEncryptedLabel: the first block of the tape is encrypted, which a
	// Tapeward label never is.
	ErrEncryptedLabel = errors.New("first block of the tape is encrypted: not a Tapeward label")
	// ErrKeyLoaded: Write refused because the drive is encrypting.
	ErrKeyLoaded = errors.New("drive has an encryption key loaded; the label must be written in clear")
	// ErrInvalid: Encode refused the Label's field values.
	ErrInvalid = errors.New("invalid volume label")
)

// Label is the content of a volume label.
type Label struct {
	// Version is the format version: set by Decode; Encode always writes
	// Version (1) and ignores this field.
	Version int
	// Volume is the volume name (often the barcode).
	Volume string
	// Pool the volume was labelled into.
	Pool string
	// MediaType, e.g. "LTO-6".
	MediaType string
	// LabelTime is when the label was written; stored in UTC with
	// nanosecond precision.
	LabelTime time.Time
	// BlockSize is the data block size in bytes used on this volume.
	BlockSize int
	// Storage is the name of the storage daemon that labelled the volume.
	Storage string
	// Encryption says how the data after the label is encrypted.
	Encryption Encryption
}

// Encryption describes the volume key without containing it: only
// identifiers that are safe to print.
type Encryption struct {
	Encrypted bool
	// Scheme of the wrapped key in the catalog ("v1", "bareos").
	Scheme string
	// KEKID is the id of the KEK that wrapped the key.
	KEKID string
	// Fingerprint is the key's fingerprint (keys.Fingerprint), also the
	// drive's U-KAD.
	Fingerprint string
	// EscrowKeyID and EscrowEnvelope (optional, both or neither): the
	// volume key sealed to the pool's escrow public key (keys.EscrowPublic
	// .Seal), standard base64. Only the escrow private key opens it; a
	// label without them is the original version-1 body, and readers that
	// predate them ignore them (unknown JSON keys).
	EscrowKeyID    string
	EscrowEnvelope string
}

// body is the JSON body; field order is the order written.
type body struct {
	Volume      string `json:"volume"`
	Pool        string `json:"pool"`
	MediaType   string `json:"media_type"`
	LabelTime   string `json:"label_time"`
	BlockSize   int    `json:"block_size"`
	Storage     string `json:"storage"`
	Encrypted   bool   `json:"encrypted"`
	Scheme      string `json:"key_scheme,omitempty"`
	KEKID       string `json:"kek_id,omitempty"`
	Fingerprint string `json:"key_fingerprint,omitempty"`
	EscrowKeyID string `json:"escrow_key_id,omitempty"`
	Envelope    string `json:"escrow_envelope,omitempty"`
}

// printable accepts non-empty-or-empty strings of printable UTF-8 without
// control characters, up to max bytes.
func checkText(field, s string, max int, required bool) error {
	if s == "" {
		if required {
			return fmt.Errorf("%w: %s is empty", ErrInvalid, field)
		}
		return nil
	}
	if len(s) > max {
		return fmt.Errorf("%w: %s is %d bytes (at most %d)", ErrInvalid, field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not UTF-8", ErrInvalid, field)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7F {
			return fmt.Errorf("%w: %s contains control character %U", ErrInvalid, field, r)
		}
	}
	return nil
}

func checkID(field, s string) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, field)
	}
	if len(s) > MaxIDLen {
		// A wrapped key string is longer than any id: refuse to store it
		// and do not echo it.
		return fmt.Errorf("%w: %s is %d bytes (at most %d; it must be an id, never key material)", ErrInvalid, field, len(s), MaxIDLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == ':' || c == '.') {
			return fmt.Errorf("%w: %s has a byte 0x%02x outside [0-9A-Za-z-_:.]", ErrInvalid, field, c)
		}
	}
	return nil
}

func (l Label) validate() error {
	if err := checkText("volume name", l.Volume, MaxNameLen, true); err != nil {
		return err
	}
	if err := checkText("pool", l.Pool, MaxNameLen, false); err != nil {
		return err
	}
	if err := checkText("media type", l.MediaType, MaxMediaTypeLen, false); err != nil {
		return err
	}
	if err := checkText("storage", l.Storage, MaxNameLen, false); err != nil {
		return err
	}
	if l.BlockSize <= 0 || l.BlockSize > MaxBlockSize {
		return fmt.Errorf("%w: block size %d (need 1..%d)", ErrInvalid, l.BlockSize, MaxBlockSize)
	}
	if l.LabelTime.IsZero() {
		return fmt.Errorf("%w: label time is not set", ErrInvalid)
	}
	if y := l.LabelTime.UTC().Year(); y < 1970 || y > 9999 {
		return fmt.Errorf("%w: label time year %d", ErrInvalid, y)
	}
	e := l.Encryption
	if !e.Encrypted {
		if e.Scheme != "" || e.KEKID != "" || e.Fingerprint != "" || e.EscrowKeyID != "" || e.EscrowEnvelope != "" {
			return fmt.Errorf("%w: key scheme, kek id, fingerprint or escrow envelope set on an unencrypted volume", ErrInvalid)
		}
		return nil
	}
	if err := checkID("key scheme", e.Scheme); err != nil {
		return err
	}
	if len(e.Scheme) > MaxSchemeLen {
		return fmt.Errorf("%w: key scheme is %d bytes (at most %d)", ErrInvalid, len(e.Scheme), MaxSchemeLen)
	}
	if err := checkID("kek id", e.KEKID); err != nil {
		return err
	}
	if err := checkID("key fingerprint", e.Fingerprint); err != nil {
		return err
	}
	if e.EscrowKeyID == "" && e.EscrowEnvelope == "" {
		return nil
	}
	if err := checkID("escrow key id", e.EscrowKeyID); err != nil {
		return err
	}
	if e.EscrowEnvelope == "" {
		return fmt.Errorf("%w: escrow key id without an escrow envelope", ErrInvalid)
	}
	if len(e.EscrowEnvelope) > MaxEnvelopeLen {
		return fmt.Errorf("%w: escrow envelope is %d characters (at most %d)", ErrInvalid, len(e.EscrowEnvelope), MaxEnvelopeLen)
	}
	if _, err := base64.StdEncoding.DecodeString(e.EscrowEnvelope); err != nil {
		return fmt.Errorf("%w: escrow envelope is not standard base64", ErrInvalid)
	}
	return nil
}

// Encode returns the Size-byte label block for l. It refuses (ErrInvalid)
// a label with missing or oversize fields, and anything in the encryption
// identifiers that is not a short id.
func Encode(l Label) ([]byte, error) {
	if err := l.validate(); err != nil {
		return nil, err
	}
	b := body{
		Volume:      l.Volume,
		Pool:        l.Pool,
		MediaType:   l.MediaType,
		LabelTime:   l.LabelTime.UTC().Format(time.RFC3339Nano),
		BlockSize:   l.BlockSize,
		Storage:     l.Storage,
		Encrypted:   l.Encryption.Encrypted,
		Scheme:      l.Encryption.Scheme,
		KEKID:       l.Encryption.KEKID,
		Fingerprint: l.Encryption.Fingerprint,
		EscrowKeyID: l.Encryption.EscrowKeyID,
		Envelope:    l.Encryption.EscrowEnvelope,
	}
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(&b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if js.Len() > maxBody {
		return nil, fmt.Errorf("%w: body is %d bytes (at most %d)", ErrInvalid, js.Len(), maxBody)
	}
	blk := make([]byte, Size)
	copy(blk[offMagic:], Magic)
	binary.BigEndian.PutUint16(blk[offVersion:], Version)
	binary.BigEndian.PutUint16(blk[offHdrLen:], HeaderSize)
	binary.BigEndian.PutUint16(blk[offBodyLen:], uint16(js.Len()))
	copy(blk[offBody:], js.Bytes())
	binary.BigEndian.PutUint32(blk[offChecksum:], crc32.Checksum(blk, crcTable))
	return blk, nil
}

// Decode parses a label block. Errors: ErrNotTapeward (no magic), then
// ErrNewerVersion (a later format: nothing else is checked), then
// ErrCorrupt (size, checksum, lengths, body).
func Decode(blk []byte) (Label, error) {
	if len(blk) < HeaderSize || string(blk[offMagic:offMagic+len(Magic)]) != Magic {
		return Label{}, ErrNotTapeward
	}
	v := binary.BigEndian.Uint16(blk[offVersion:])
	if v == 0 {
		return Label{}, fmt.Errorf("%w: version 0", ErrCorrupt)
	}
	if v > Version {
		return Label{Version: int(v)}, fmt.Errorf("%w: version %d, this build reads up to %d", ErrNewerVersion, v, Version)
	}
	if len(blk) != Size {
		return Label{}, fmt.Errorf("%w: block is %d bytes, want %d", ErrCorrupt, len(blk), Size)
	}
	if h := binary.BigEndian.Uint16(blk[offHdrLen:]); h != HeaderSize {
		return Label{}, fmt.Errorf("%w: header length %d, want %d", ErrCorrupt, h, HeaderSize)
	}
	want := binary.BigEndian.Uint32(blk[offChecksum:])
	var tmp [Size]byte
	copy(tmp[:], blk)
	clear(tmp[offChecksum : offChecksum+4])
	if got := crc32.Checksum(tmp[:], crcTable); got != want {
		return Label{}, fmt.Errorf("%w: checksum %08x, computed %08x", ErrCorrupt, want, got)
	}
	n := int(binary.BigEndian.Uint16(blk[offBodyLen:]))
	if n == 0 || n > maxBody {
		return Label{}, fmt.Errorf("%w: body length %d", ErrCorrupt, n)
	}
	for _, c := range blk[offChecksum+4 : offBody] {
		if c != 0 {
			return Label{}, fmt.Errorf("%w: reserved header bytes are not zero", ErrCorrupt)
		}
	}
	for _, c := range blk[offBody+n:] {
		if c != 0 {
			return Label{}, fmt.Errorf("%w: padding is not zero", ErrCorrupt)
		}
	}
	var b body
	dec := json.NewDecoder(bytes.NewReader(blk[offBody : offBody+n]))
	if err := dec.Decode(&b); err != nil {
		return Label{}, fmt.Errorf("%w: body: %v", ErrCorrupt, err)
	}
	t, err := time.Parse(time.RFC3339Nano, b.LabelTime)
	if err != nil {
		return Label{}, fmt.Errorf("%w: label time %q", ErrCorrupt, b.LabelTime)
	}
	l := Label{
		Version:   int(v),
		Volume:    b.Volume,
		Pool:      b.Pool,
		MediaType: b.MediaType,
		LabelTime: t.UTC(),
		BlockSize: b.BlockSize,
		Storage:   b.Storage,
		Encryption: Encryption{
			Encrypted:      b.Encrypted,
			Scheme:         b.Scheme,
			KEKID:          b.KEKID,
			Fingerprint:    b.Fingerprint,
			EscrowKeyID:    b.EscrowKeyID,
			EscrowEnvelope: b.Envelope,
		},
	}
	if err := l.validate(); err != nil {
		return Label{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return l, nil
}

// String is a one-line summary (no key material exists in a Label).
func (l Label) String() string {
	s := fmt.Sprintf("volume %q pool %q media %q block size %d labelled %s by %q",
		l.Volume, l.Pool, l.MediaType, l.BlockSize, l.LabelTime.UTC().Format(time.RFC3339), l.Storage)
	if l.Encryption.Encrypted {
		s += fmt.Sprintf(", encrypted (scheme %s, kek %s, key %s", l.Encryption.Scheme, l.Encryption.KEKID, l.Encryption.Fingerprint)
		if l.Encryption.EscrowKeyID != "" {
			s += ", escrow envelope for escrow key " + l.Encryption.EscrowKeyID
		}
		s += ")"
	} else {
		s += ", not encrypted"
	}
	return s
}
