package emu

import (
	"encoding/binary"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// Codes vtl uses that storaged/scsi/consts.go does not name.
const (
	ascDriveDidNotUnload scsi.ASCQ = 0x5301 // §6.3 "a drive did not unload a cartridge"
	ascDataPhaseError    scsi.ASCQ = 0x4B00
)

// sense is one condition, rendered in fixed or descriptor format.
type sense struct {
	key          byte
	asc          scsi.ASCQ
	fm, eom, ili bool
	valid        bool  // INFORMATION valid
	info         int64 // signed residual
	sksv         bool  // sense-key specific valid (field pointer)
	cd           bool  // field pointer refers to the CDB
	bpv          bool
	bit          byte
	field        uint16
}

func checkSense(key byte, asc scsi.ASCQ) *sense { return &sense{key: key, asc: asc} }

func invalidCDB(field uint16) *sense {
	return &sense{key: scsi.SenseIllegalRequest, asc: scsi.ASCInvalidFieldInCDB, sksv: true, cd: true, field: field}
}

func invalidCDBBit(field uint16, bit byte) *sense {
	s := invalidCDB(field)
	s.bpv, s.bit = true, bit
	return s
}

func invalidParam(field uint16) *sense {
	return &sense{key: scsi.SenseIllegalRequest, asc: scsi.ASCInvalidFieldInParamList, sksv: true, field: field}
}

func illegal(asc scsi.ASCQ) *sense { return &sense{key: scsi.SenseIllegalRequest, asc: asc} }

// fixed renders fixed-format sense (response code 0x70) of n >= 18 bytes.
func (s *sense) fixed(dst []byte, n int) []byte {
	if n < 18 {
		n = 18
	}
	b := dst[:n]
	clear(b)
	b[0] = 0x70
	if s.valid {
		b[0] |= 0x80
	}
	b[2] = s.key & 0x0F
	if s.fm {
		b[2] |= 0x80
	}
	if s.eom {
		b[2] |= 0x40
	}
	if s.ili {
		b[2] |= 0x20
	}
	binary.BigEndian.PutUint32(b[3:], uint32(int32(s.info)))
	b[7] = byte(n - 8)
	b[12] = s.asc.ASC()
	b[13] = s.asc.Qualifier()
	if s.sksv {
		b[15] = 0x80
		if s.cd {
			b[15] |= 0x40
		}
		if s.bpv {
			b[15] |= 0x08 | s.bit&7
		}
		binary.BigEndian.PutUint16(b[16:], s.field)
	}
	return b
}

// descriptor renders descriptor-format sense (response code 0x72).
func (s *sense) descriptor(dst []byte) []byte {
	b := dst[:8]
	clear(b)
	b[0] = 0x72
	b[1] = s.key & 0x0F
	b[2] = s.asc.ASC()
	b[3] = s.asc.Qualifier()
	if s.valid {
		d := []byte{0x00, 0x0A, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint64(d[4:], uint64(s.info))
		b = append(b, d...)
	}
	if s.sksv {
		d := []byte{0x02, 0x06, 0, 0, 0x80, 0, 0, 0}
		if s.cd {
			d[4] |= 0x40
		}
		if s.bpv {
			d[4] |= 0x08 | s.bit&7
		}
		binary.BigEndian.PutUint16(d[5:], s.field)
		b = append(b, d...)
	}
	if s.fm || s.eom || s.ili {
		var f byte
		if s.fm {
			f |= 0x80
		}
		if s.eom {
			f |= 0x40
		}
		if s.ili {
			f |= 0x20
		}
		b = append(b, 0x04, 0x02, 0x00, f)
	}
	b[7] = byte(len(b) - 8)
	return b
}
