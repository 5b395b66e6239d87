package scsi

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// ---- CDBs (§1) ----

// SecurityProtocolInCDB builds SPIN with INC_512=0.
func SecurityProtocolInCDB(protocol byte, page uint16, alloc uint32) []byte {
	c := make([]byte, 12)
	c[0] = OpSecurityProtocolIn
	c[1] = protocol
	binary.BigEndian.PutUint16(c[2:], page)
	binary.BigEndian.PutUint32(c[6:], alloc)
	return c
}

// SecurityProtocolOutCDB builds SPOUT with INC_512=0.
func SecurityProtocolOutCDB(protocol byte, page uint16, length uint32) []byte {
	c := SecurityProtocolInCDB(protocol, page, length)
	c[0] = OpSecurityProtocolOut
	return c
}

// ErrPage is wrapped by the SPIN page parsers for a malformed page.
var ErrPage = errors.New("malformed security protocol page")

func pageErr(page uint16, format string, a ...any) error {
	return fmt.Errorf("%w 0x%04X: %s", ErrPage, page, fmt.Sprintf(format, a...))
}

// tdePage checks the 4-byte header of a protocol 0x20 page and returns the
// bytes after it, as far as PAGE LENGTH says.
func tdePage(b []byte, page uint16, minLen int) ([]byte, error) {
	if len(b) < 4 {
		return nil, pageErr(page, "%d bytes, need at least the 4-byte header", len(b))
	}
	if got := binary.BigEndian.Uint16(b[0:2]); got != page {
		return nil, pageErr(page, "page code is 0x%04X", got)
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n > len(b)-4 {
		return nil, pageErr(page, "PAGE LENGTH %d but only %d bytes follow the header", n, len(b)-4)
	}
	if n < minLen {
		return nil, pageErr(page, "PAGE LENGTH %d is below the minimum of %d", n, minLen)
	}
	return b[4 : 4+n], nil
}

// ---- protocol 0x00 ----

// ParseSupportedProtocols decodes SPIN protocol 0x00 page 0x0000.
func ParseSupportedProtocols(b []byte) ([]byte, error) {
	if len(b) < 8 {
		return nil, pageErr(0, "supported protocol list: %d bytes, need 8", len(b))
	}
	n := int(binary.BigEndian.Uint16(b[6:8]))
	if n > len(b)-8 {
		return nil, pageErr(0, "supported protocol list: length %d but %d bytes follow", n, len(b)-8)
	}
	return append([]byte{}, b[8:8+n]...), nil
}

// ParsePageList decodes protocol 0x20 page 0x0000 (in support) or 0x0001
// (out support): a list of 2-byte page codes.
func ParsePageList(b []byte, page uint16) ([]uint16, error) {
	p, err := tdePage(b, page, 0)
	if err != nil {
		return nil, err
	}
	if len(p)%2 != 0 {
		return nil, pageErr(page, "odd PAGE LENGTH %d for a list of 2-byte codes", len(p))
	}
	out := make([]uint16, 0, len(p)/2)
	for i := 0; i < len(p); i += 2 {
		out = append(out, binary.BigEndian.Uint16(p[i:]))
	}
	return out, nil
}

// ---- enumerations ----

// Capability is a 2-bit ENCRYPT_C/DECRYPT_C code.
type Capability byte

func (c Capability) String() string {
	return [...]string{"none", "software", "hardware", "hardware with external control"}[c&3]
}

// MarshalText prints the capability's name in JSON.
func (c Capability) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// EncryptionMode is the SDE/DES ENCRYPTION MODE.
type EncryptionMode byte

const (
	EncryptDisable  EncryptionMode = 0
	EncryptExternal EncryptionMode = 1
	EncryptOn       EncryptionMode = 2
)

func (m EncryptionMode) String() string {
	switch m {
	case EncryptDisable:
		return "disable"
	case EncryptExternal:
		return "external"
	case EncryptOn:
		return "encrypt"
	}
	return fmt.Sprintf("reserved(%d)", byte(m))
}

// MarshalText prints the mode's name in JSON.
func (m EncryptionMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// DecryptionMode is the SDE/DES DECRYPTION MODE.
type DecryptionMode byte

const (
	DecryptDisable DecryptionMode = 0
	DecryptRaw     DecryptionMode = 1
	DecryptOn      DecryptionMode = 2
	DecryptMixed   DecryptionMode = 3
)

func (m DecryptionMode) String() string {
	switch m {
	case DecryptDisable:
		return "disable"
	case DecryptRaw:
		return "raw"
	case DecryptOn:
		return "decrypt"
	case DecryptMixed:
		return "mixed"
	}
	return fmt.Sprintf("reserved(%d)", byte(m))
}

// MarshalText prints the mode's name in JSON.
func (m DecryptionMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// Scope is an SDE SCOPE / DES scope value.
type Scope byte

const (
	ScopePublic Scope = 0
	ScopeLocal  Scope = 1
	ScopeAll    Scope = 2 // ALL I_T NEXUS
)

func (s Scope) String() string {
	switch s {
	case ScopePublic:
		return "public"
	case ScopeLocal:
		return "local"
	case ScopeAll:
		return "all I_T nexus"
	}
	return fmt.Sprintf("reserved(%d)", byte(s))
}

// MarshalText prints the scope's name in JSON.
func (s Scope) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ---- page 0x0010 DEC ----

// AlgorithmDescriptor is one DEC algorithm descriptor (§3.3), every field.
type AlgorithmDescriptor struct {
	Index      byte       `json:"index"`
	Length     uint16     `json:"descriptor_length"`
	AVFMV      bool       `json:"avfmv"`
	SDKC       bool       `json:"sdk_c"`
	MACC       bool       `json:"mac_c"`
	DELBC      bool       `json:"delb_c"`
	DecryptC   Capability `json:"decrypt_c"`
	EncryptC   Capability `json:"encrypt_c"`
	AVFCLP     byte       `json:"avfclp"`
	NonceC     byte       `json:"nonce_c"`
	KADFC      bool       `json:"kadf_c"`
	VCELBC     bool       `json:"vcelb_c"`
	UKADF      bool       `json:"ukadf"`
	AKADF      bool       `json:"akadf"`
	MaxUKAD    uint16     `json:"max_ukad_bytes"`
	MaxAKAD    uint16     `json:"max_akad_bytes"`
	KeySize    uint16     `json:"key_size"`
	DKADC      byte       `json:"dkad_c"`
	EEMCC      byte       `json:"eemc_c"`
	RDMCC      byte       `json:"rdmc_c"`
	EAREM      bool       `json:"earem"`
	MaxEEDK    byte       `json:"max_eedk_count"`
	MSDKCount  uint16     `json:"msdk_count"`
	MaxEEDKLen uint16     `json:"max_eedk_size"`
	Algorithm  uint32     `json:"security_algorithm_code"`
}

// AlgorithmName names a security algorithm code.
func AlgorithmName(code uint32) string {
	switch code {
	case 0x00010014:
		return "AES-256-GCM"
	case 0x00010010:
		return "AES-256-CCM"
	case 0x0001000C:
		return "AES-256-CBC-HMAC-SHA-1"
	case 0x00010016:
		return "AES-256-XTS-HMAC-SHA-512"
	}
	if code >= 0x80010400 && code <= 0x8001FFFF {
		return fmt.Sprintf("vendor algorithm 0x%08X", code)
	}
	return fmt.Sprintf("algorithm 0x%08X", code)
}

// IsAES256GCMHardware reports the descriptor storaged uses: AES-256-GCM,
// hardware encrypt and decrypt, 32-byte key (proxmox's rule, §3.3).
func (a *AlgorithmDescriptor) IsAES256GCMHardware() bool {
	return a.Algorithm == AlgorithmAES256GCM && a.EncryptC == 2 && a.DecryptC == 2 && a.KeySize == 32
}

func (a *AlgorithmDescriptor) String() string {
	return fmt.Sprintf("index %d: %s, encrypt %s, decrypt %s, key %d bytes, U-KAD ≤ %d, A-KAD ≤ %d, AVFMV=%t, RDMC_C=%03b",
		a.Index, AlgorithmName(a.Algorithm), a.EncryptC, a.DecryptC, a.KeySize, a.MaxUKAD, a.MaxAKAD, a.AVFMV, a.RDMCC)
}

// DataEncryptionCapabilities is SPIN page 0x0010.
type DataEncryptionCapabilities struct {
	EXTDECC byte `json:"extdecc"`
	CFGP    byte `json:"cfg_p"`
	// PageLengthMismatch: PAGE LENGTH disagreed with the descriptors sent.
	PageLengthMismatch bool                  `json:"page_length_mismatch,omitempty"`
	Algorithms         []AlgorithmDescriptor `json:"algorithms"`
}

// ConfigPrevented reports CFG_P = 10b: keys are managed by the library or
// system, host SPOUT is refused.
func (c *DataEncryptionCapabilities) ConfigPrevented() bool { return c.CFGP == 2 }

func (c *DataEncryptionCapabilities) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "EXTDECC=%02b CFG_P=%02b, %d algorithm(s)", c.EXTDECC, c.CFGP, len(c.Algorithms))
	for i := range c.Algorithms {
		sb.WriteString("\n  ")
		sb.WriteString(c.Algorithms[i].String())
	}
	return sb.String()
}

// ParseDEC decodes SPIN page 0x0010 (§3.3).
func ParseDEC(b []byte) (*DataEncryptionCapabilities, error) {
	p, err := tdePage(b, PageDataEncCaps, 16)
	if err != nil {
		return nil, err
	}
	c := &DataEncryptionCapabilities{EXTDECC: (p[0] >> 2) & 3, CFGP: p[0] & 3}
	d := p[16:]
	// Some devices under-report PAGE LENGTH (the stenc two-algorithm
	// capture says 0x3C for 64 bytes of payload). When the bytes the
	// device actually sent hold complete descriptors, use them.
	if whole := b[4:]; len(whole) > len(p) && (len(p)-16)%24 != 0 && (len(whole)-16)%24 == 0 {
		d = whole[16:]
		c.PageLengthMismatch = true
	}
	for len(d) > 0 {
		if len(d) < 4 {
			return nil, pageErr(PageDataEncCaps, "%d stray bytes after the algorithm descriptors", len(d))
		}
		dl := int(binary.BigEndian.Uint16(d[2:4]))
		if dl < 20 {
			return nil, pageErr(PageDataEncCaps, "algorithm descriptor length %d, expected 20", dl)
		}
		if 4+dl > len(d) {
			return nil, pageErr(PageDataEncCaps, "algorithm descriptor of %d bytes overruns the page", 4+dl)
		}
		a := d[:4+dl]
		c.Algorithms = append(c.Algorithms, AlgorithmDescriptor{
			Index:      a[0],
			Length:     uint16(dl),
			AVFMV:      a[4]&0x80 != 0,
			SDKC:       a[4]&0x40 != 0,
			MACC:       a[4]&0x20 != 0,
			DELBC:      a[4]&0x10 != 0,
			DecryptC:   Capability((a[4] >> 2) & 3),
			EncryptC:   Capability(a[4] & 3),
			AVFCLP:     a[5] >> 6,
			NonceC:     (a[5] >> 4) & 3,
			KADFC:      a[5]&0x08 != 0,
			VCELBC:     a[5]&0x04 != 0,
			UKADF:      a[5]&0x02 != 0,
			AKADF:      a[5]&0x01 != 0,
			MaxUKAD:    binary.BigEndian.Uint16(a[6:8]),
			MaxAKAD:    binary.BigEndian.Uint16(a[8:10]),
			KeySize:    binary.BigEndian.Uint16(a[10:12]),
			DKADC:      a[12] >> 6,
			EEMCC:      (a[12] >> 4) & 3,
			RDMCC:      (a[12] >> 1) & 7,
			EAREM:      a[12]&1 != 0,
			MaxEEDK:    a[13] & 0x0F,
			MSDKCount:  binary.BigEndian.Uint16(a[14:16]),
			MaxEEDKLen: binary.BigEndian.Uint16(a[16:18]),
			Algorithm:  binary.BigEndian.Uint32(a[20:24]),
		})
		d = d[4+dl:]
	}
	return c, nil
}

// ---- page 0x0011 / 0x0012 ----

// KeyFormatName names a LOGICAL BLOCK ENCRYPTION KEY FORMAT (§3.4).
func KeyFormatName(f byte) string {
	switch f {
	case 0:
		return "plaintext"
	case 1:
		return "vendor-specific key reference"
	case 2:
		return "wrapped with the device server public key"
	case 3:
		return "ESP-SCSI encapsulated"
	}
	return fmt.Sprintf("key format 0x%02X", f)
}

// ParseKeyFormats decodes SPIN page 0x0011: one byte per supported key
// format. Padding (repeated 00) is removed.
func ParseKeyFormats(b []byte) ([]byte, error) {
	p, err := tdePage(b, PageSupportedKeyFmts, 0)
	if err != nil {
		return nil, err
	}
	var out []byte
	seen := map[byte]bool{}
	for _, f := range p {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out, nil
}

// ManagementCapabilities is SPIN page 0x0012 (§3.5).
type ManagementCapabilities struct {
	LockC   bool `json:"lock_c"`
	CKODC   bool `json:"ckod_c"`
	CKORPC  bool `json:"ckorp_c"`
	CKORLC  bool `json:"ckorl_c"`
	AITNC   bool `json:"aitn_c"`
	LocalC  bool `json:"local_c"`
	PublicC bool `json:"public_c"`
}

// ParseManagementCaps decodes SPIN page 0x0012.
func ParseManagementCaps(b []byte) (*ManagementCapabilities, error) {
	p, err := tdePage(b, PageDataEncMgmtCaps, 4)
	if err != nil {
		return nil, err
	}
	return &ManagementCapabilities{
		LockC:   p[0]&1 != 0,
		CKODC:   p[1]&4 != 0,
		CKORPC:  p[1]&2 != 0,
		CKORLC:  p[1]&1 != 0,
		AITNC:   p[3]&4 != 0,
		LocalC:  p[3]&2 != 0,
		PublicC: p[3]&1 != 0,
	}, nil
}

// ---- KADs (§3.9) ----

// KAD types.
const (
	KADTypeUKAD  = 0x00
	KADTypeAKAD  = 0x01
	KADTypeNonce = 0x02
	KADTypeMKAD  = 0x03
	KADTypeWKKAD = 0x04
)

// KAD is a key-associated data descriptor. KADs are not secret (storaged
// puts the key fingerprint in the U-KAD), so they are printed.
type KAD struct {
	Type byte `json:"type"`
	// Authenticated (SPIN only): 1 not applicable, 2 not attempted,
	// 3 authenticated, 4 failed.
	Authenticated byte   `json:"authenticated,omitempty"`
	Data          []byte `json:"data"`
}

// KADTypeName names a KAD descriptor type.
func KADTypeName(t byte) string {
	switch t {
	case KADTypeUKAD:
		return "U-KAD"
	case KADTypeAKAD:
		return "A-KAD"
	case KADTypeNonce:
		return "nonce"
	case KADTypeMKAD:
		return "M-KAD"
	case KADTypeWKKAD:
		return "WK-KAD"
	}
	return fmt.Sprintf("KAD type 0x%02X", t)
}

func printable(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c > unicode.MaxASCII || !unicode.IsPrint(rune(c)) {
			return false
		}
	}
	return true
}

// Text renders the KAD value: quoted if printable ASCII, else hex.
func (k KAD) Text() string {
	if printable(k.Data) {
		return fmt.Sprintf("%q", k.Data)
	}
	return hex.EncodeToString(k.Data)
}

func (k KAD) String() string { return KADTypeName(k.Type) + " " + k.Text() }

// UKAD returns the first U-KAD's bytes, if any.
func UKAD(kads []KAD) ([]byte, bool) {
	for _, k := range kads {
		if k.Type == KADTypeUKAD {
			return k.Data, true
		}
	}
	return nil, false
}

func parseKADs(p []byte, page uint16) ([]KAD, error) {
	var out []KAD
	for len(p) > 0 {
		if len(p) < 4 {
			return nil, pageErr(page, "%d stray bytes where a KAD descriptor header should be", len(p))
		}
		l := int(binary.BigEndian.Uint16(p[2:4]))
		if 4+l > len(p) {
			return nil, pageErr(page, "KAD descriptor of %d bytes overruns the page", 4+l)
		}
		out = append(out, KAD{Type: p[0], Authenticated: p[1] & 7, Data: append([]byte{}, p[4:4+l]...)})
		p = p[4+l:]
	}
	return out, nil
}

// ---- page 0x0020 DES ----

// DataEncryptionStatus is SPIN page 0x0020 (§3.6).
type DataEncryptionStatus struct {
	NexusScope         Scope          `json:"it_nexus_scope"`
	KeyScope           Scope          `json:"key_scope"`
	EncryptionMode     EncryptionMode `json:"encryption_mode"`
	DecryptionMode     DecryptionMode `json:"decryption_mode"`
	AlgorithmIndex     byte           `json:"algorithm_index"`
	KeyInstanceCounter uint32         `json:"key_instance_counter"`
	ParametersControl  byte           `json:"parameters_control"`
	VCELB              bool           `json:"vcelb"`
	CEEMS              byte           `json:"ceems"`
	RDMD               bool           `json:"rdmd"`
	KADFormat          byte           `json:"kad_format"`
	ASDKCount          uint16         `json:"asdk_count"`
	KADs               []KAD          `json:"kads,omitempty"`
}

// Encrypting reports ENCRYPTION MODE = encrypt.
func (s *DataEncryptionStatus) Encrypting() bool { return s.EncryptionMode == EncryptOn }

// Cleared reports both modes disabled (no key in use).
func (s *DataEncryptionStatus) Cleared() bool {
	return s.EncryptionMode == EncryptDisable && s.DecryptionMode == DecryptDisable
}

// ParametersControlName names the PARAMETERS CONTROL field.
func ParametersControlName(pc byte) string {
	switch pc {
	case 0:
		return "not reported"
	case 1:
		return "host may set (not exclusively controlled externally)"
	case 2:
		return "exclusively controlled by the drive"
	case 3:
		return "exclusively controlled by the library (ADC)"
	case 4:
		return "exclusively controlled by a management interface"
	}
	return fmt.Sprintf("reserved(%d)", pc)
}

func (s *DataEncryptionStatus) String() string {
	str := fmt.Sprintf("encryption %s, decryption %s, algorithm index %d, key instance counter %d, scope %s/%s, parameters control: %s",
		s.EncryptionMode, s.DecryptionMode, s.AlgorithmIndex, s.KeyInstanceCounter, s.NexusScope, s.KeyScope,
		ParametersControlName(s.ParametersControl))
	if s.VCELB {
		str += ", volume contains encrypted blocks"
	}
	if s.RDMD {
		str += ", raw read disabled"
	}
	for _, k := range s.KADs {
		str += ", " + k.String()
	}
	return str
}

// ParseDES decodes SPIN page 0x0020. It reads KADs only from the bytes
// PAGE LENGTH covers (mhVTL's fixed 0x20 length is therefore tolerated only
// if the device really sends that many bytes).
func ParseDES(b []byte) (*DataEncryptionStatus, error) {
	p, err := tdePage(b, PageDataEncStatus, 20)
	if err != nil {
		return nil, err
	}
	s := &DataEncryptionStatus{
		NexusScope:         Scope(p[0] >> 5),
		KeyScope:           Scope(p[0] & 7),
		EncryptionMode:     EncryptionMode(p[1]),
		DecryptionMode:     DecryptionMode(p[2]),
		AlgorithmIndex:     p[3],
		KeyInstanceCounter: binary.BigEndian.Uint32(p[4:8]),
		ParametersControl:  (p[8] >> 4) & 7,
		VCELB:              p[8]&0x08 != 0,
		CEEMS:              (p[8] >> 1) & 3,
		RDMD:               p[8]&1 != 0,
		KADFormat:          p[9],
		ASDKCount:          binary.BigEndian.Uint16(p[10:12]),
	}
	s.KADs, err = parseKADs(p[20:], PageDataEncStatus)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// ---- page 0x0021 NBES ----

// BlockEncryptionStatus is NBES ENCRYPTION STATUS (§3.7).
type BlockEncryptionStatus byte

const (
	BlockStatusIncapable    BlockEncryptionStatus = 0
	BlockStatusUnknown      BlockEncryptionStatus = 1
	BlockStatusNotBlock     BlockEncryptionStatus = 2
	BlockStatusNotEncrypted BlockEncryptionStatus = 3
	BlockStatusUnsupported  BlockEncryptionStatus = 4
	BlockStatusDecryptable  BlockEncryptionStatus = 5
	BlockStatusNoKey        BlockEncryptionStatus = 6
)

func (s BlockEncryptionStatus) String() string {
	switch s {
	case BlockStatusIncapable:
		return "drive cannot determine encryption"
	case BlockStatusUnknown:
		return "unable to determine (not in buffer, filemark or end of data)"
	case BlockStatusNotBlock:
		return "not a logical block (filemark or end of data)"
	case BlockStatusNotEncrypted:
		return "not encrypted"
	case BlockStatusUnsupported:
		return "encrypted with an algorithm this drive does not support"
	case BlockStatusDecryptable:
		return "encrypted, drive can decrypt it"
	case BlockStatusNoKey:
		return "encrypted, drive lacks the key or is not enabled to decrypt"
	}
	return fmt.Sprintf("reserved(%d)", byte(s))
}

// MarshalText prints the status's meaning in JSON.
func (s BlockEncryptionStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Encrypted reports statuses 4, 5 and 6: the block is encrypted.
func (s BlockEncryptionStatus) Encrypted() bool { return s >= 4 && s <= 6 }

// NextBlockEncryptionStatus is SPIN page 0x0021.
type NextBlockEncryptionStatus struct {
	LogicalObject     uint64                `json:"logical_object_number"`
	CompressionStatus byte                  `json:"compression_status"`
	Status            BlockEncryptionStatus `json:"encryption_status"`
	StatusCode        byte                  `json:"encryption_status_code"`
	AlgorithmIndex    byte                  `json:"algorithm_index"`
	EMES              bool                  `json:"emes"`
	RDMDS             bool                  `json:"rdmds"`
	KADFormat         byte                  `json:"kad_format"`
	KADs              []KAD                 `json:"kads,omitempty"`
}

func (n *NextBlockEncryptionStatus) String() string {
	s := fmt.Sprintf("block %d: %s", n.LogicalObject, n.Status)
	if n.Status == BlockStatusDecryptable || n.Status == BlockStatusNoKey {
		s += fmt.Sprintf(", algorithm index %d", n.AlgorithmIndex)
	}
	if n.EMES {
		s += ", written in external mode"
	}
	if n.RDMDS {
		s += ", not raw-readable"
	}
	for _, k := range n.KADs {
		s += ", " + k.String()
	}
	return s
}

// ParseNBES decodes SPIN page 0x0021.
func ParseNBES(b []byte) (*NextBlockEncryptionStatus, error) {
	p, err := tdePage(b, PageNextBlockEncStat, 12)
	if err != nil {
		return nil, err
	}
	n := &NextBlockEncryptionStatus{
		LogicalObject:     binary.BigEndian.Uint64(p[0:8]),
		CompressionStatus: p[8] >> 4,
		Status:            BlockEncryptionStatus(p[8] & 0x0F),
		StatusCode:        p[8] & 0x0F,
		AlgorithmIndex:    p[9],
		EMES:              p[10]&2 != 0,
		RDMDS:             p[10]&1 != 0,
		KADFormat:         p[11],
	}
	n.KADs, err = parseKADs(p[12:], PageNextBlockEncStat)
	if err != nil {
		return nil, err
	}
	return n, nil
}

// ---- SPOUT page 0x0010 SDE (§4) ----

// SetDataEncryption is the SPOUT Set Data Encryption page, every field.
// Key is secret: String() and errors never show it, and Marshal's output
// must be zeroed by the caller after use (Device.SetDataEncryption does).
type SetDataEncryption struct {
	Scope          Scope
	Lock           bool
	CEEM           byte // 2 bits
	RDMC           byte // 2 bits
	SDK            bool
	CKOD           bool
	CKORP          bool
	CKORL          bool
	EncryptionMode EncryptionMode
	DecryptionMode DecryptionMode
	AlgorithmIndex byte
	KeyFormat      byte
	KADFormat      byte
	Key            []byte
	KADs           []KAD
}

// ClearPage returns the SDE page that disables encryption and decryption
// with no key (the 20-byte form stenc and proxmox send).
func ClearPage(algorithmIndex byte) *SetDataEncryption {
	return &SetDataEncryption{Scope: ScopeAll, AlgorithmIndex: algorithmIndex}
}

func (p SetDataEncryption) String() string {
	s := fmt.Sprintf("scope %s, encryption %s, decryption %s, algorithm index %d, key format %d, key %d bytes",
		p.Scope, p.EncryptionMode, p.DecryptionMode, p.AlgorithmIndex, p.KeyFormat, len(p.Key))
	if p.Lock {
		s += ", LOCK"
	}
	if p.CKOD {
		s += ", CKOD"
	}
	if p.CKORP {
		s += ", CKORP"
	}
	if p.CKORL {
		s += ", CKORL"
	}
	for _, k := range p.KADs {
		s += ", " + k.String()
	}
	return s
}

// GoString keeps %#v from printing the key.
func (p SetDataEncryption) GoString() string { return "scsi.SetDataEncryption{" + p.String() + "}" }

// Marshal builds the parameter list (header included). The returned
// buffer holds the key: zero it after sending.
func (p *SetDataEncryption) Marshal() ([]byte, error) {
	if p.Scope > 7 || p.CEEM > 3 || p.RDMC > 3 {
		return nil, errors.New("set data encryption: scope, CEEM or RDMC out of range")
	}
	n := 20 + len(p.Key)
	for _, k := range p.KADs {
		if len(k.Data) > 0xFFFF {
			return nil, fmt.Errorf("set data encryption: %s of %d bytes is too long", KADTypeName(k.Type), len(k.Data))
		}
		n += 4 + len(k.Data)
	}
	if len(p.Key) > 0xFFFF || n-4 > 0xFFFF {
		return nil, fmt.Errorf("set data encryption: page of %d bytes is too long", n)
	}
	b := make([]byte, n)
	binary.BigEndian.PutUint16(b[0:], PageSetDataEncryption)
	binary.BigEndian.PutUint16(b[2:], uint16(n-4))
	b[4] = byte(p.Scope) << 5
	if p.Lock {
		b[4] |= 1
	}
	b[5] = p.CEEM<<6 | p.RDMC<<4
	if p.SDK {
		b[5] |= 0x08
	}
	if p.CKOD {
		b[5] |= 0x04
	}
	if p.CKORP {
		b[5] |= 0x02
	}
	if p.CKORL {
		b[5] |= 0x01
	}
	b[6] = byte(p.EncryptionMode)
	b[7] = byte(p.DecryptionMode)
	b[8] = p.AlgorithmIndex
	b[9] = p.KeyFormat
	b[10] = p.KADFormat
	binary.BigEndian.PutUint16(b[18:], uint16(len(p.Key)))
	copy(b[20:], p.Key)
	off := 20 + len(p.Key)
	for _, k := range p.KADs {
		b[off] = k.Type
		binary.BigEndian.PutUint16(b[off+2:], uint16(len(k.Data)))
		copy(b[off+4:], k.Data)
		off += 4 + len(k.Data)
	}
	return b, nil
}
