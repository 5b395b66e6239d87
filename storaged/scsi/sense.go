package scsi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// SenseKey is the 4-bit sense key (§5.1 byte 2 b3..b0).
type SenseKey byte

var senseKeyNames = [16]string{
	"NO SENSE", "RECOVERED ERROR", "NOT READY", "MEDIUM ERROR", "HARDWARE ERROR",
	"ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT", "BLANK CHECK", "VENDOR SPECIFIC",
	"COPY ABORTED", "ABORTED COMMAND", "sense key 0xC", "VOLUME OVERFLOW", "MISCOMPARE",
	"COMPLETED",
}

func (k SenseKey) String() string { return senseKeyNames[k&0x0F] }

// MarshalText makes a SenseKey print as its name in JSON.
func (k SenseKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// SenseFormat says how sense data was encoded.
type SenseFormat uint8

const (
	SenseFixed      SenseFormat = 1 // response code 0x70/0x71 (§5.1)
	SenseDescriptor SenseFormat = 2 // response code 0x72/0x73 (§5.2)
)

func (f SenseFormat) String() string {
	switch f {
	case SenseFixed:
		return "fixed"
	case SenseDescriptor:
		return "descriptor"
	}
	return "unknown"
}

// Sense is decoded sense data, fixed or descriptor format. *Sense is an
// error, so a CHECK CONDITION can be returned and matched with errors.As.
type Sense struct {
	ResponseCode byte        `json:"response_code"`
	Format       SenseFormat `json:"-"`
	// Deferred is set for response codes 0x71/0x73: the error belongs to an
	// earlier command (typically a buffered WRITE that failed to flush).
	Deferred bool     `json:"deferred,omitempty"`
	Key      SenseKey `json:"sense_key"`
	ASC      byte     `json:"asc"`
	ASCQ     byte     `json:"ascq"`

	Filemark bool `json:"filemark,omitempty"`
	EOM      bool `json:"eom,omitempty"`
	ILI      bool `json:"ili,omitempty"`

	// Valid says Information holds a value. For tape it is a signed
	// residual: requested − actual (negative for an over-length block).
	Valid           bool   `json:"valid,omitempty"`
	Information     int64  `json:"information,omitempty"`
	CommandSpecific uint64 `json:"command_specific,omitempty"`
	FRU             byte   `json:"fru,omitempty"`

	// Sense-key specific bytes (fixed 15–17, descriptor type 02h). With
	// SKSV and ILLEGAL REQUEST they point at the offending field: CDB (CD
	// true) or parameter list, byte FieldPointer, bit BitPointer if BPV.
	// For NOT READY / NO SENSE they are a progress indication instead.
	SKSV         bool   `json:"sksv,omitempty"`
	CD           bool   `json:"cd,omitempty"`
	BPV          bool   `json:"bpv,omitempty"`
	BitPointer   uint8  `json:"bit_pointer,omitempty"`
	FieldPointer uint16 `json:"field_pointer,omitempty"`

	// Raw holds the sense bytes as far as the ADDITIONAL SENSE LENGTH
	// reaches (never beyond what the device sent).
	Raw []byte `json:"-"`
}

// Code returns the ASC/ASCQ pair.
func (s *Sense) Code() ASCQ { return MakeASCQ(s.ASC, s.ASCQ) }

// Progress returns the progress indication (0..1) carried in the
// sense-key specific bytes, if there is one.
func (s *Sense) Progress() (float64, bool) {
	if !s.SKSV || (s.Key != SenseNotReady && s.Key != SenseNoSense) {
		return 0, false
	}
	return float64(s.FieldPointer) / 65536, true
}

// ErrSenseTruncated and ErrSenseFormat are returned by ParseSense.
var (
	ErrSenseTruncated = errors.New("sense data too short")
	ErrSenseFormat    = errors.New("unknown sense data response code")
)

// ParseSense decodes fixed (0x70/0x71) or descriptor (0x72/0x73) sense
// data. It honours the ADDITIONAL SENSE LENGTH (byte 7) and the length of
// b, whichever is shorter, and never panics.
func ParseSense(b []byte) (*Sense, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: no bytes", ErrSenseTruncated)
	}
	s := &Sense{ResponseCode: b[0] & 0x7F}
	switch s.ResponseCode {
	case 0x70, 0x71:
		s.Format = SenseFixed
		s.Deferred = s.ResponseCode == 0x71
		return s, s.parseFixed(b)
	case 0x72, 0x73:
		s.Format = SenseDescriptor
		s.Deferred = s.ResponseCode == 0x73
		return s, s.parseDescriptor(b)
	}
	return nil, fmt.Errorf("%w 0x%02X", ErrSenseFormat, b[0]&0x7F)
}

func senseLen(b []byte) int {
	n := len(b)
	if len(b) >= 8 {
		if want := 8 + int(b[7]); want < n {
			n = want
		}
	}
	return n
}

func (s *Sense) parseFixed(b []byte) error {
	if len(b) < 3 {
		return fmt.Errorf("%w: fixed sense needs at least 3 bytes, got %d", ErrSenseTruncated, len(b))
	}
	n := senseLen(b)
	b = b[:n]
	s.Raw = append([]byte(nil), b...)
	s.Valid = b[0]&0x80 != 0
	s.Filemark = b[2]&0x80 != 0
	s.EOM = b[2]&0x40 != 0
	s.ILI = b[2]&0x20 != 0
	s.Key = SenseKey(b[2] & 0x0F)
	if n >= 7 {
		s.Information = int64(int32(binary.BigEndian.Uint32(b[3:7])))
	} else {
		s.Valid = false
	}
	if n >= 12 {
		s.CommandSpecific = uint64(binary.BigEndian.Uint32(b[8:12]))
	}
	if n >= 13 {
		s.ASC = b[12]
	}
	if n >= 14 {
		s.ASCQ = b[13]
	}
	if n >= 15 {
		s.FRU = b[14]
	}
	if n >= 18 {
		s.setSKS(b[15:18])
	}
	return nil
}

func (s *Sense) setSKS(k []byte) {
	s.SKSV = k[0]&0x80 != 0
	if !s.SKSV {
		return
	}
	s.FieldPointer = binary.BigEndian.Uint16(k[1:3])
	if s.Key == SenseIllegalRequest {
		s.CD = k[0]&0x40 != 0
		s.BPV = k[0]&0x08 != 0
		s.BitPointer = k[0] & 0x07
	}
}

func (s *Sense) parseDescriptor(b []byte) error {
	if len(b) < 4 {
		return fmt.Errorf("%w: descriptor sense needs at least 4 bytes, got %d", ErrSenseTruncated, len(b))
	}
	n := senseLen(b)
	b = b[:n]
	s.Raw = append([]byte(nil), b...)
	s.Key = SenseKey(b[1] & 0x0F)
	s.ASC = b[2]
	s.ASCQ = b[3]
	if n <= 8 {
		return nil
	}
	d := b[8:]
	for len(d) >= 2 {
		typ, dl := d[0], int(d[1])
		end := 2 + dl
		if end > len(d) {
			end = len(d) // truncated descriptor: decode what is there
		}
		body := d[2:end]
		switch typ {
		case 0x00: // information
			if len(body) >= 10 {
				s.Valid = body[0]&0x80 != 0
				s.Information = int64(binary.BigEndian.Uint64(body[2:10]))
			}
		case 0x01: // command-specific information
			if len(body) >= 10 {
				s.CommandSpecific = binary.BigEndian.Uint64(body[2:10])
			}
		case 0x02: // sense-key specific
			if len(body) >= 5 {
				s.setSKS(body[2:5])
			}
		case 0x03: // FRU
			if len(body) >= 2 {
				s.FRU = body[1]
			}
		case 0x04: // stream commands
			if len(body) >= 2 {
				s.Filemark = body[1]&0x80 != 0
				s.EOM = body[1]&0x40 != 0
				s.ILI = body[1]&0x20 != 0
			}
		}
		d = d[end:]
	}
	return nil
}

// Text is the human-readable meaning of the ASC/ASCQ, with the wording
// storaged wants operators to see ("no cartridge in drive" for 02/3A/00).
func (s *Sense) Text() string {
	if s.Key == SenseNotReady && s.Code() == ASCMediumNotPresent {
		return "no cartridge in drive"
	}
	return s.Code().Text()
}

// Error renders the sense like
// "ILLEGAL REQUEST: invalid field in parameter list (26/00) at parameter byte 8".
func (s *Sense) Error() string {
	var sb strings.Builder
	if s.Deferred {
		sb.WriteString("deferred error: ")
	}
	sb.WriteString(s.Key.String())
	sb.WriteString(": ")
	sb.WriteString(s.Text())
	if s.Key == SenseNotReady && s.Code() == ASCMediumNotPresent {
		sb.WriteString(" (medium not present, ")
	} else {
		sb.WriteString(" (")
	}
	fmt.Fprintf(&sb, "%02X/%02X)", s.ASC, s.ASCQ)
	if s.SKSV && s.Key == SenseIllegalRequest {
		if s.CD {
			fmt.Fprintf(&sb, " at CDB byte %d", s.FieldPointer)
		} else {
			fmt.Fprintf(&sb, " at parameter byte %d", s.FieldPointer)
		}
		if s.BPV {
			fmt.Fprintf(&sb, " bit %d", s.BitPointer)
		}
	}
	if p, ok := s.Progress(); ok {
		fmt.Fprintf(&sb, ", %.0f%% done", p*100)
	}
	var flags []string
	if s.Filemark {
		flags = append(flags, "FILEMARK")
	}
	if s.EOM {
		flags = append(flags, "EOM")
	}
	if s.ILI {
		flags = append(flags, "ILI")
	}
	if s.Valid {
		flags = append(flags, fmt.Sprintf("INFO=%d", s.Information))
	}
	if len(flags) > 0 {
		sb.WriteString(" [")
		sb.WriteString(strings.Join(flags, " "))
		sb.WriteString("]")
	}
	return sb.String()
}

// Is lets errors.Is(err, scsi.ASCMediumNotPresent) match a sense error.
func (s *Sense) Is(target error) bool {
	if c, ok := target.(ASCQ); ok {
		return s.Code() == c
	}
	return false
}

// Error makes an ASCQ usable as an errors.Is target.
func (a ASCQ) Error() string { return fmt.Sprintf("%02X/%02X %s", a.ASC(), a.Qualifier(), a.Text()) }

// SenseOf returns the sense data carried by err, if any.
func SenseOf(err error) (*Sense, bool) {
	var s *Sense
	if errors.As(err, &s) && s != nil {
		return s, true
	}
	return nil, false
}

func senseMatch(err error, f func(*Sense) bool) bool {
	s, ok := SenseOf(err)
	return ok && f(s)
}

// IsNoMedium reports a NOT READY / MEDIUM NOT PRESENT (3A/xx) answer.
func IsNoMedium(err error) bool {
	return senseMatch(err, func(s *Sense) bool { return s.Key == SenseNotReady && s.ASC == 0x3A })
}

// IsNotReady reports any NOT READY sense.
func IsNotReady(err error) bool {
	return senseMatch(err, func(s *Sense) bool { return s.Key == SenseNotReady })
}

// IsBecomingReady reports 02/04/01 (loading; retry later).
func IsBecomingReady(err error) bool {
	return senseMatch(err, func(s *Sense) bool { return s.Key == SenseNotReady && s.Code() == ASCBecomingReady })
}

// IsUnitAttention reports a UNIT ATTENTION (power on, medium changed,
// encryption parameters changed …); the command was not executed.
func IsUnitAttention(err error) bool {
	return senseMatch(err, func(s *Sense) bool { return s.Key == SenseUnitAttention })
}

// IsIllegalRequest reports any ILLEGAL REQUEST sense.
func IsIllegalRequest(err error) bool {
	return senseMatch(err, func(s *Sense) bool { return s.Key == SenseIllegalRequest })
}

// IsInvalidOpcode reports 05/20/00: the device does not implement the command.
func IsInvalidOpcode(err error) bool {
	return senseMatch(err, func(s *Sense) bool { return s.Key == SenseIllegalRequest && s.Code() == ASCInvalidOpcode })
}

// IsBlankCheck reports BLANK CHECK (end of data, or blank medium).
func IsBlankCheck(err error) bool {
	return senseMatch(err, func(s *Sense) bool { return s.Key == SenseBlankCheck })
}

// IsVolumeOverflow reports VOLUME OVERFLOW (physical end of partition; the
// data was not written).
func IsVolumeOverflow(err error) bool {
	return senseMatch(err, func(s *Sense) bool { return s.Key == SenseVolumeOverflow })
}

// IsWriteProtected reports DATA PROTECT / WRITE PROTECTED.
func IsWriteProtected(err error) bool {
	return senseMatch(err, func(s *Sense) bool { return s.Key == SenseDataProtect && s.ASC == 0x27 })
}

// IsEncryptionError reports a DATA PROTECT with ASC 0x74 (wrong key,
// unencrypted data while decrypting, integrity failure …, §4.5).
func IsEncryptionError(err error) bool {
	return senseMatch(err, func(s *Sense) bool { return s.ASC == 0x74 })
}
