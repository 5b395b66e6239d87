package scsi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// spinAlloc is the first allocation length for SPIN (stenc uses 8192); a
// longer page is fetched again with the length it reports (§1).
const spinAlloc = 8192

// uaRetries bounds how many unit attentions a command that changes
// nothing (a query, or a SPOUT that the UA kept from executing) swallows:
// a UA means the command was not executed (§4.4).
const uaRetries = 4

// SecurityProtocolIn reads one SPIN page; it re-issues the command when
// the page's own length says the first allocation was too small.
func (d *Device) SecurityProtocolIn(protocol byte, page uint16) ([]byte, error) {
	alloc := spinAlloc
	for try := 0; ; try++ {
		b, err := d.dataIn(SecurityProtocolInCDB(protocol, page, uint32(alloc)), alloc)
		if err != nil {
			return nil, err
		}
		full := len(b)
		switch {
		case protocol == SecProtoTapeEncrypt && len(b) >= 4:
			full = 4 + int(binary.BigEndian.Uint16(b[2:4]))
		case protocol == SecProtoInfo && page == PageSupportedProtos && len(b) >= 8:
			full = 8 + int(binary.BigEndian.Uint16(b[6:8]))
		}
		if full <= len(b) || len(b) < alloc || try > 0 {
			return b, nil
		}
		alloc = full
	}
}

// SetDataEncryption sends SPOUT protocol 0x20 page 0x0010. The parameter
// buffer, which holds the key, is zeroed before returning.
func (d *Device) SetDataEncryption(p *SetDataEncryption) error {
	buf, err := p.Marshal()
	if err != nil {
		return err
	}
	defer clear(buf)
	cdb := SecurityProtocolOutCDB(SecProtoTapeEncrypt, PageSetDataEncryption, uint32(len(buf)))
	for i := 0; i < uaRetries; i++ {
		if err = d.dataOut(cdb, buf); !d.noteUA(err) {
			break
		}
	}
	return err
}

// Status reads the Data Encryption Status page (0x0020).
func (d *Device) Status() (*DataEncryptionStatus, error) {
	b, err := d.SecurityProtocolIn(SecProtoTapeEncrypt, PageDataEncStatus)
	if err != nil {
		return nil, err
	}
	s, err := ParseDES(b)
	if err != nil {
		return nil, &CommandError{Addr: d.Addr(), Op: "SECURITY PROTOCOL IN", Err: err}
	}
	return s, nil
}

// NextBlockStatus reads the Next Block Encryption Status page (0x0021):
// whether the block at the current position is encrypted, and its U-KAD.
// On a filemark or at EOD the status says so; some drives answer BLANK
// CHECK at EOD instead (returned as the sense error, IsBlankCheck).
func (d *Device) NextBlockStatus() (*NextBlockEncryptionStatus, error) {
	b, err := d.SecurityProtocolIn(SecProtoTapeEncrypt, PageNextBlockEncStat)
	if err != nil {
		return nil, err
	}
	s, err := ParseNBES(b)
	if err != nil {
		return nil, &CommandError{Addr: d.Addr(), Op: "SECURITY PROTOCOL IN", Err: err}
	}
	return s, nil
}

// ProbeResult says whether a drive can do application-managed encryption
// (AME) and with which parameters. Everything comes from the drive.
type ProbeResult struct {
	Addr    string       `json:"address"`
	Inquiry *InquiryData `json:"inquiry,omitempty"`
	// AME is true when storaged can load keys into this drive.
	AME bool `json:"ame"`
	// Reason explains why AME is false, e.g. "no application-managed
	// encryption: SECURITY PROTOCOL IN not supported (ILLEGAL REQUEST 20/00)".
	Reason string `json:"reason,omitempty"`

	Protocols    []byte                      `json:"security_protocols,omitempty"`
	InPages      []uint16                    `json:"in_pages,omitempty"`
	OutPages     []uint16                    `json:"out_pages,omitempty"`
	Capabilities *DataEncryptionCapabilities `json:"capabilities,omitempty"`
	// Algorithm is the AES-256-GCM hardware descriptor chosen from DEC;
	// AlgorithmIndex is its index (what SPOUT byte 8 carries).
	Algorithm        *AlgorithmDescriptor    `json:"algorithm,omitempty"`
	AlgorithmIndex   byte                    `json:"algorithm_index"`
	KeySize          int                     `json:"key_size"`
	MaxUKAD          int                     `json:"max_ukad_bytes"`
	UKADFixed        bool                    `json:"ukad_fixed_length,omitempty"`
	KADFormatCapable bool                    `json:"kad_format_capable,omitempty"`
	KeyFormats       []byte                  `json:"key_formats,omitempty"`
	Management       *ManagementCapabilities `json:"management,omitempty"`
	// CKOD: the drive can clear the key on demount (page 0x0012).
	CKOD bool `json:"ckod"`
}

func (p *ProbeResult) String() string {
	var sb strings.Builder
	if p.Inquiry != nil {
		fmt.Fprintf(&sb, "%s: %s\n", p.Addr, p.Inquiry)
	}
	if !p.AME {
		sb.WriteString(p.Reason)
		return sb.String()
	}
	fmt.Fprintf(&sb, "application-managed encryption: yes\nalgorithm: %s\nU-KAD limit: %d bytes", p.Algorithm, p.MaxUKAD)
	if p.UKADFixed {
		sb.WriteString(" (fixed length)")
	}
	fmt.Fprintf(&sb, "\nclear key on demount (CKOD): %t", p.CKOD)
	return sb.String()
}

// NoAMEError says a drive cannot take application-managed keys, and why.
type NoAMEError struct {
	Addr   string
	Reason string
}

func (e *NoAMEError) Error() string { return e.Addr + ": " + e.Reason }

// IsNoAME reports a *NoAMEError.
func IsNoAME(err error) bool {
	var n *NoAMEError
	return errors.As(err, &n)
}

// Err returns a *NoAMEError when the drive cannot do AME, else nil.
func (p *ProbeResult) Err() error {
	if p.AME {
		return nil
	}
	return &NoAMEError{Addr: p.Addr, Reason: p.Reason}
}

func senseBrief(s *Sense) string {
	return fmt.Sprintf("%s %02X/%02X", s.Key, s.ASC, s.ASCQ)
}

// Probe finds out whether the drive supports application-managed
// encryption: SPIN protocol 0x00 (is 0x20 listed), the DEC page (an
// AES-256-GCM hardware algorithm, CFG_P), key formats (plaintext) and the
// management capabilities (CKOD). A drive that answers "not supported" is
// a result (AME false with a Reason), not an error; errors are failures to
// ask (transport, no medium on drives that need one …). The result is
// cached for SetKey and Clear.
func (d *Device) Probe() (*ProbeResult, error) {
	p := &ProbeResult{Addr: d.Addr()}
	d.tde = nil
	no := func(format string, a ...any) (*ProbeResult, error) {
		p.AME = false
		p.Reason = "no application-managed encryption: " + fmt.Sprintf(format, a...)
		d.tde = p
		return p, nil
	}
	q, err := d.Inquiry()
	if err != nil {
		return nil, err
	}
	p.Inquiry = q
	if q.DeviceType != TypeTape {
		return no("%s is a %s, not a tape drive", d.Addr(), DeviceTypeName(q.DeviceType))
	}

	b, err := d.SecurityProtocolIn(SecProtoInfo, PageSupportedProtos)
	switch s, ok := SenseOf(err); {
	case err == nil:
		protos, perr := ParseSupportedProtocols(b)
		if perr != nil {
			return nil, &CommandError{Addr: d.Addr(), Op: "SECURITY PROTOCOL IN", Err: perr}
		}
		p.Protocols = protos
		if !bytes.Contains(protos, []byte{SecProtoTapeEncrypt}) {
			return no("security protocol 0x20 (tape data encryption) is not supported (drive lists % X)", protos)
		}
	case ok && s.Key == SenseIllegalRequest && s.Code() == ASCInvalidOpcode:
		return no("SECURITY PROTOCOL IN not supported (%s)", senseBrief(s))
	case ok && s.Key == SenseIllegalRequest:
		// Protocol 0x00 refused; some firmware still answers 0x20 (§9.1).
	default:
		return nil, err
	}

	if b, err := d.SecurityProtocolIn(SecProtoTapeEncrypt, PageTDEInSupport); err == nil {
		p.InPages, _ = ParsePageList(b, PageTDEInSupport)
	}
	if b, err := d.SecurityProtocolIn(SecProtoTapeEncrypt, PageTDEOutSupport); err == nil {
		p.OutPages, _ = ParsePageList(b, PageTDEOutSupport)
	}

	b, err = d.SecurityProtocolIn(SecProtoTapeEncrypt, PageDataEncCaps)
	if s, ok := SenseOf(err); ok && s.Key == SenseIllegalRequest {
		if s.Code() == ASCInvalidOpcode {
			return no("SECURITY PROTOCOL IN not supported (%s)", senseBrief(s))
		}
		return no("the data encryption capabilities page is not supported (%s)", senseBrief(s))
	} else if err != nil {
		return nil, err
	}
	caps, err := ParseDEC(b)
	if err != nil {
		return nil, &CommandError{Addr: d.Addr(), Op: "SECURITY PROTOCOL IN", Err: err}
	}
	p.Capabilities = caps
	if caps.ConfigPrevented() {
		return no("encryption is managed by the library or system (CFG_P=10b); the drive refuses host keys")
	}
	for i := range caps.Algorithms {
		if caps.Algorithms[i].IsAES256GCMHardware() {
			a := caps.Algorithms[i]
			p.Algorithm = &a
			break
		}
	}
	if p.Algorithm == nil {
		var have []string
		for i := range caps.Algorithms {
			have = append(have, caps.Algorithms[i].String())
		}
		if len(have) == 0 {
			have = []string{"none"}
		}
		return no("no AES-256-GCM hardware algorithm with a 32-byte key in the capabilities page (drive reports: %s)", strings.Join(have, "; "))
	}
	p.AlgorithmIndex = p.Algorithm.Index
	p.KeySize = int(p.Algorithm.KeySize)
	p.MaxUKAD = int(p.Algorithm.MaxUKAD)
	p.UKADFixed = p.Algorithm.UKADF
	p.KADFormatCapable = p.Algorithm.KADFC

	if b, err := d.SecurityProtocolIn(SecProtoTapeEncrypt, PageSupportedKeyFmts); err == nil {
		if f, perr := ParseKeyFormats(b); perr == nil {
			p.KeyFormats = f
			if !bytes.Contains(f, []byte{0}) {
				return no("the drive does not accept plaintext keys (key formats % X)", f)
			}
		}
	}
	if b, err := d.SecurityProtocolIn(SecProtoTapeEncrypt, PageDataEncMgmtCaps); err == nil {
		if m, perr := ParseManagementCaps(b); perr == nil {
			p.Management = m
			p.CKOD = m.CKODC
		}
	}
	p.AME = true
	d.tde = p
	return p, nil
}

func (d *Device) probed() (*ProbeResult, error) {
	if d.tde != nil {
		return d.tde, nil
	}
	return d.Probe()
}

// SetKeyOpts are the options of SetKey.
type SetKeyOpts struct {
	// UKAD is sent as the unauthenticated key-associated data (storaged
	// uses the key fingerprint); it is recorded with every block.
	UKAD []byte
	// KADFormat is the KAD FORMAT byte (0 binary, 1 binary key name,
	// 2 ASCII key name); sent only when the drive honours it.
	KADFormat byte
	// CKOD asks the drive to clear the key when the volume is demounted.
	CKOD bool
	// ReadOnly loads the key for reading only: encryption disabled and
	// decryption DECRYPT (every block read must be encrypted with this
	// key; a clear block is an error, 07/74/02), as a restore wants it.
	ReadOnly bool
}

// KeyNotTakenError says the drive did not end up in the state asked for:
// the read-back of the status page disagrees. It never carries key bytes.
type KeyNotTakenError struct {
	Addr    string
	Problem string
	Status  *DataEncryptionStatus
}

func (e *KeyNotTakenError) Error() string {
	s := e.Addr + ": drive did not take the encryption parameters: " + e.Problem
	if e.Status != nil {
		s += " (status: " + e.Status.String() + ")"
	}
	return s
}

// IsKeyNotTaken reports a *KeyNotTakenError.
func IsKeyNotTaken(err error) bool {
	var k *KeyNotTakenError
	return errors.As(err, &k)
}

// SetKey loads key into the drive: encrypt + mixed decryption (so a clear
// label and encrypted data both read back), or with opts.ReadOnly
// encryption disabled + decrypt; the AES-256-GCM algorithm index
// from the DEC page, scope ALL I_T NEXUS. It then reads the status page
// back and returns it only if the drive reports those modes, the same
// algorithm index, a key instance counter different from before, and (if
// the drive echoes one) the same U-KAD; otherwise a *KeyNotTakenError.
// The key is never logged or put in an error; the parameter buffer is
// zeroed. The caller owns (and should zero) key.
func (d *Device) SetKey(key []byte, opts SetKeyOpts) (*DataEncryptionStatus, error) {
	p, err := d.probed()
	if err != nil {
		return nil, err
	}
	if !p.AME {
		return nil, p.Err()
	}
	if len(key) != p.KeySize {
		return nil, fmt.Errorf("%s: key of %d bytes, the drive's algorithm needs %d", d.Addr(), len(key), p.KeySize)
	}
	if len(opts.UKAD) > p.MaxUKAD {
		return nil, fmt.Errorf("%s: U-KAD of %d bytes exceeds the drive's limit of %d", d.Addr(), len(opts.UKAD), p.MaxUKAD)
	}
	if p.UKADFixed && len(opts.UKAD) != 0 && len(opts.UKAD) != p.MaxUKAD {
		return nil, fmt.Errorf("%s: the drive requires a U-KAD of exactly %d bytes, got %d", d.Addr(), p.MaxUKAD, len(opts.UKAD))
	}
	if opts.CKOD && p.Management != nil && !p.CKOD {
		return nil, fmt.Errorf("%s: the drive cannot clear the key on demount (CKOD_C=0)", d.Addr())
	}
	before, err := d.Status()
	if err != nil {
		return nil, err
	}
	enc, dec := EncryptOn, DecryptMixed
	if opts.ReadOnly {
		enc, dec = EncryptDisable, DecryptOn
	}
	page := &SetDataEncryption{
		Scope:          ScopeAll,
		CKOD:           opts.CKOD,
		EncryptionMode: enc,
		DecryptionMode: dec,
		AlgorithmIndex: p.AlgorithmIndex,
		Key:            key,
	}
	if p.KADFormatCapable {
		page.KADFormat = opts.KADFormat
	}
	if len(opts.UKAD) > 0 {
		page.KADs = []KAD{{Type: KADTypeUKAD, Data: opts.UKAD}}
	}
	if err := d.SetDataEncryption(page); err != nil {
		return nil, err
	}
	after, err := d.Status()
	if err != nil {
		return nil, err
	}
	fail := func(format string, a ...any) (*DataEncryptionStatus, error) {
		return after, &KeyNotTakenError{Addr: d.Addr(), Problem: fmt.Sprintf(format, a...), Status: after}
	}
	if after.EncryptionMode != enc || after.DecryptionMode != dec {
		return fail("expected encryption %s and decryption %s, drive reports %s/%s", enc, dec, after.EncryptionMode, after.DecryptionMode)
	}
	if after.AlgorithmIndex != p.AlgorithmIndex {
		return fail("expected algorithm index %d, drive reports %d", p.AlgorithmIndex, after.AlgorithmIndex)
	}
	if after.KeyInstanceCounter == before.KeyInstanceCounter {
		return fail("key instance counter did not change (still %d)", after.KeyInstanceCounter)
	}
	if got, ok := UKAD(after.KADs); ok && len(opts.UKAD) > 0 && !bytes.Equal(got, opts.UKAD) {
		return fail("U-KAD reported %s, expected %s", KAD{Data: got}.Text(), KAD{Data: opts.UKAD}.Text())
	}
	return after, nil
}

// Clear removes the key: SPOUT with both modes disabled and no key, then
// a read-back that must show encryption and decryption disabled.
func (d *Device) Clear() (*DataEncryptionStatus, error) {
	p, err := d.probed()
	if err != nil {
		return nil, err
	}
	if !p.AME {
		return nil, p.Err()
	}
	if err := d.SetDataEncryption(ClearPage(p.AlgorithmIndex)); err != nil {
		return nil, err
	}
	after, err := d.Status()
	if err != nil {
		return nil, err
	}
	if !after.Cleared() {
		return after, &KeyNotTakenError{Addr: d.Addr(), Problem: fmt.Sprintf("expected encryption and decryption disabled after clearing, drive reports %s/%s", after.EncryptionMode, after.DecryptionMode), Status: after}
	}
	return after, nil
}

// NotEncryptedError says a block that should be encrypted is not (or not
// with the loaded key): the drive accepted the key but wrote clear data,
// or recorded another U-KAD (invariant 2: a lying drive fails loudly).
type NotEncryptedError struct {
	Addr    string
	Block   uint64
	Problem string
	Status  *NextBlockEncryptionStatus
}

func (e *NotEncryptedError) Error() string {
	return fmt.Sprintf("%s: block %d was not encrypted as required: %s", e.Addr, e.Block, e.Problem)
}

// IsNotEncrypted reports a *NotEncryptedError.
func IsNotEncrypted(err error) bool {
	var n *NotEncryptedError
	return errors.As(err, &n)
}

// VerifyEncrypted locates to logical object block and checks with the
// Next Block Encryption Status page that it is encrypted and decryptable
// with the loaded key (status 5) and, when ukad is given, that it carries
// that U-KAD. It leaves the tape positioned at block. Use it after writing
// a probe block: a drive that reports encryption on but writes clear
// blocks is caught here.
func (d *Device) VerifyEncrypted(block uint64, ukad []byte) (*NextBlockEncryptionStatus, error) {
	if err := d.Locate(LocateBlock, block); err != nil {
		return nil, err
	}
	n, err := d.NextBlockStatus()
	if err != nil {
		return nil, err
	}
	fail := func(format string, a ...any) (*NextBlockEncryptionStatus, error) {
		return n, &NotEncryptedError{Addr: d.Addr(), Block: block, Problem: fmt.Sprintf(format, a...), Status: n}
	}
	if n.Status != BlockStatusDecryptable {
		return fail("next block status says %q (code %d)", n.Status, n.StatusCode)
	}
	if len(ukad) > 0 {
		got, ok := UKAD(n.KADs)
		if !ok {
			return fail("no U-KAD recorded, expected %s", KAD{Data: ukad}.Text())
		}
		if !bytes.Equal(got, ukad) {
			return fail("U-KAD %s recorded, expected %s", KAD{Data: got}.Text(), KAD{Data: ukad}.Text())
		}
	}
	return n, nil
}
