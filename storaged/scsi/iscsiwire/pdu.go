// Package iscsiwire is the iSCSI PDU layer (RFC 7143) that Tapeward's
// initiator (storaged/scsi/iscsi) and the vtl's target (tools/vtl/iscsi)
// both speak: the Basic Header Segment of every PDU kind as a typed struct,
// framing with optional CRC32C header and data digests, text key=value
// segments and the negotiation rules of the operational keys, CHAP, and
// serial number arithmetic.
//
// It holds no session state: logins, sequence numbers, R2T handling and
// recovery belong to each side, which is tested against independent
// software (tgt for the initiator, libiscsi for the target) so that the
// two never agree on a shared mistake.
//
// Section numbers in comments ("§11.3") are RFC 7143's.
package iscsiwire

import (
	"encoding/binary"
	"fmt"
)

// BHSLen is the size of the Basic Header Segment (§11.2.1).
const BHSLen = 48

// Opcodes (§11.2.1.2). Initiator opcodes have bit 5 clear, target opcodes
// have it set.
const (
	OpNOPOut      = 0x00
	OpSCSICommand = 0x01
	OpTaskMgmt    = 0x02
	OpLogin       = 0x03
	OpText        = 0x04
	OpDataOut     = 0x05
	OpLogout      = 0x06
	OpSNACK       = 0x10

	OpNOPIn        = 0x20
	OpSCSIResponse = 0x21
	OpTaskMgmtResp = 0x22
	OpLoginResp    = 0x23
	OpTextResp     = 0x24
	OpDataIn       = 0x25
	OpLogoutResp   = 0x26
	OpR2T          = 0x31
	OpAsync        = 0x32
	OpReject       = 0x3f
)

// OpName names an opcode for messages.
func OpName(op byte) string {
	switch op {
	case OpNOPOut:
		return "NOP-Out"
	case OpSCSICommand:
		return "SCSI Command"
	case OpTaskMgmt:
		return "Task Management Function Request"
	case OpLogin:
		return "Login Request"
	case OpText:
		return "Text Request"
	case OpDataOut:
		return "SCSI Data-Out"
	case OpLogout:
		return "Logout Request"
	case OpSNACK:
		return "SNACK Request"
	case OpNOPIn:
		return "NOP-In"
	case OpSCSIResponse:
		return "SCSI Response"
	case OpTaskMgmtResp:
		return "Task Management Function Response"
	case OpLoginResp:
		return "Login Response"
	case OpTextResp:
		return "Text Response"
	case OpDataIn:
		return "SCSI Data-In"
	case OpLogoutResp:
		return "Logout Response"
	case OpR2T:
		return "Ready To Transfer"
	case OpAsync:
		return "Asynchronous Message"
	case OpReject:
		return "Reject"
	}
	return fmt.Sprintf("opcode 0x%02x", op)
}

// ReservedTag is the Initiator Task Tag value 0xffffffff, reserved for
// PDUs that answer no task (unsolicited NOP-In, Async, Reject) and for a
// NOP-Out that wants no answer.
const ReservedTag = 0xffffffff

// BHS is a Basic Header Segment as it is on the wire.
type BHS [BHSLen]byte

// Opcode is the PDU's opcode (byte 0, low 6 bits).
func (b *BHS) Opcode() byte { return b[0] & 0x3f }

// Immediate reports the I bit (byte 0, 0x40): an immediate request.
func (b *BHS) Immediate() bool { return b[0]&0x40 != 0 }

// Flags is byte 1: the F (final) bit 0x80 and opcode-specific bits.
func (b *BHS) Flags() byte { return b[1] }

// TotalAHSLength is the length in bytes of the Additional Header Segments.
func (b *BHS) TotalAHSLength() int { return int(b[4]) * 4 }

// DataSegmentLength is the length in bytes of the data segment, without
// padding.
func (b *BHS) DataSegmentLength() int {
	return int(b[5])<<16 | int(b[6])<<8 | int(b[7])
}

// SetDataSegmentLength stores n (it must be below 2^24).
func (b *BHS) SetDataSegmentLength(n int) {
	b[5], b[6], b[7] = byte(n>>16), byte(n>>8), byte(n)
}

// ITT is the Initiator Task Tag (bytes 16–19), in every PDU kind.
func (b *BHS) ITT() uint32 { return binary.BigEndian.Uint32(b[16:]) }

func (b *BHS) u32(off int) uint32      { return binary.BigEndian.Uint32(b[off:]) }
func (b *BHS) put32(off int, v uint32) { binary.BigEndian.PutUint32(b[off:], v) }
func (b *BHS) u16(off int) uint16      { return binary.BigEndian.Uint16(b[off:]) }
func (b *BHS) put16(off int, v uint16) { binary.BigEndian.PutUint16(b[off:], v) }
func (b *BHS) u64(off int) uint64      { return binary.BigEndian.Uint64(b[off:]) }
func (b *BHS) put64(off int, v uint64) { binary.BigEndian.PutUint64(b[off:], v) }
func (b *BHS) start(op byte, imm bool) {
	*b = BHS{}
	b[0] = op
	if imm {
		b[0] |= 0x40
	}
}
func flag(v bool, bit byte) byte {
	if v {
		return bit
	}
	return 0
}

// LUN encodes a logical unit number in the 8-byte SAM format iSCSI
// carries (§11.2.1.5 via SAM): peripheral addressing for LUNs below 256,
// flat space addressing up to 16383.
func LUN(n int) uint64 {
	if n < 256 {
		return uint64(n) << 48
	}
	return (0x4000 | uint64(n&0x3fff)) << 48
}

// LUNNumber decodes the LUN field back to a number (peripheral or flat
// space addressing); ok is false for other forms.
func LUNNumber(v uint64) (n int, ok bool) {
	top := uint16(v >> 48)
	switch top >> 14 {
	case 0:
		return int(top & 0xff), top>>8 == 0
	case 1:
		return int(top & 0x3fff), true
	}
	return 0, false
}
