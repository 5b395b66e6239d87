package emu

import (
	"github.com/tapeward/tapeward/storaged/scsi"
)

// Mode page controls (PC field).
const (
	pcCurrent    = 0
	pcChangeable = 1
	pcDefault    = 2
	pcSaved      = 3
)

// modePage returns page code's bytes for the given PC, or nil if unknown.
func (d *Drive) modePage(code byte, pc int) []byte {
	switch code {
	case 0x0A: // Control: D_SENSE changeable
		p := []byte{0x0A, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		switch pc {
		case pcChangeable:
			p[2] = 0x04
		case pcCurrent:
			if d.dsense {
				p[2] = 0x04
			}
		}
		return p
	case 0x0F: // Data Compression
		p := []byte{0x0F, 0x0E, 0xC0, 0x80, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0}
		switch pc {
		case pcChangeable:
			p = []byte{0x0F, 0x0E, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		case pcCurrent:
			if !d.dce {
				p[2] = 0x40
			}
		}
		return p
	case 0x10: // Device Configuration (mhVTL defaults, §6.1)
		p := []byte{0x10, 0x0E, 0, 0, 0, 0, 0, 0x64, 0x40, 0, 0x18, 0, 0, 0, 1, 0x80}
		switch pc {
		case pcChangeable:
			p = []byte{0x10, 0x0E, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		case pcCurrent:
			if !d.dce {
				p[14] = 0
			}
		}
		return p
	}
	return nil
}

var drivePages = []byte{0x0A, 0x0F, 0x10}

func (d *Drive) modeSense(nx *Nexus, cdb []byte) reply {
	ten := cdb[0] == scsi.OpModeSense10
	dbd := cdb[1]&0x08 != 0
	pc := int(cdb[2] >> 6)
	page := cdb[2] & 0x3F
	if cdb[3] != 0 && cdb[3] != 0xFF {
		return fail(invalidCDB(3))
	}
	var pages []byte
	switch {
	case page == 0x00:
		// No page (SPC: page 00h is vendor specific, and this drive has
		// none): the header and the block descriptor, what Linux st asks
		// for at every open (density, block length, write protect).
	case page == 0x3F:
		for _, c := range drivePages {
			pages = append(pages, d.modePage(c, pc)...)
		}
	default:
		pages = d.modePage(page, pc)
		if pages == nil {
			return fail(invalidCDBBit(2, 5))
		}
	}
	var dsp byte = 0x10 // buffered mode 1
	var density byte
	if d.cart != nil {
		density = d.cart.Header().Density
		if d.cart.Header().WriteProtected {
			dsp |= 0x80
		}
	}
	var bd []byte
	if !dbd {
		bd = make([]byte, 8)
		if pc != pcChangeable {
			bd[0] = density
			bd[5], bd[6], bd[7] = byte(d.blockLen>>16), byte(d.blockLen>>8), byte(d.blockLen)
		} else {
			bd[5], bd[6], bd[7] = 0xFF, 0xFF, 0xFF
		}
	}
	b := nx.out[:0]
	var alloc int
	if ten {
		b = append(b, 0, 0, 0, dsp, 0, 0, 0, byte(len(bd)))
		b = append(b, bd...)
		b = append(b, pages...)
		put16(b[0:], len(b)-2)
		alloc = be16(cdb[7:9])
	} else {
		b = append(b, 0, 0, dsp, byte(len(bd)))
		b = append(b, bd...)
		b = append(b, pages...)
		b[0] = byte(len(b) - 1)
		alloc = int(cdb[4])
	}
	if len(b) > alloc {
		b = b[:alloc]
	}
	return good(b)
}

func (d *Drive) modeSelect(nx *Nexus, cdb []byte, data []byte) reply {
	ten := cdb[0] == scsi.OpModeSelect10
	var plen int
	if ten {
		plen = be16(cdb[7:9])
	} else {
		plen = int(cdb[4])
	}
	if cdb[1]&0x01 != 0 {
		return fail(invalidCDBBit(1, 0)) // SP: no saved pages
	}
	if plen == 0 {
		return good(nil)
	}
	if len(data) < plen {
		return fail(illegal(scsi.ASCParameterListLengthError))
	}
	p := data[:plen]
	hl := 4
	var bdl int
	if ten {
		hl = 8
		if len(p) < hl {
			return fail(illegal(scsi.ASCParameterListLengthError))
		}
		if be16(p[0:2]) != 0 {
			return fail(invalidParam(0))
		}
		bdl = be16(p[6:8])
	} else {
		if len(p) < hl {
			return fail(illegal(scsi.ASCParameterListLengthError))
		}
		if p[0] != 0 {
			return fail(invalidParam(0))
		}
		bdl = int(p[3])
	}
	if bdl != 0 && bdl != 8 {
		return fail(invalidParam(uint16(hl - 1)))
	}
	if len(p) < hl+bdl {
		return fail(illegal(scsi.ASCParameterListLengthError))
	}
	newBlockLen := d.blockLen
	if bdl == 8 {
		bd := p[hl : hl+8]
		var cur byte
		if d.cart != nil {
			cur = d.cart.Header().Density
		}
		if bd[0] != 0 && bd[0] != 0x7F && bd[0] != cur && bd[0] != 0x5A {
			return fail(invalidParam(uint16(hl)))
		}
		bl := be24(bd[5:8])
		if bl > MaxBlock {
			return fail(invalidParam(uint16(hl + 5)))
		}
		newBlockLen = bl
	}
	// Validate all pages before applying any.
	type change struct {
		code byte
		pg   []byte
	}
	var changes []change
	for off := hl + bdl; off < len(p); {
		if len(p)-off < 2 {
			return fail(illegal(scsi.ASCParameterListLengthError))
		}
		if p[off]&0x80 != 0 {
			return fail(invalidParam(uint16(off)))
		}
		code := p[off] & 0x3F
		if p[off]&0x40 != 0 {
			return fail(invalidParam(uint16(off))) // subpage format not supported
		}
		cur := d.modePage(code, pcCurrent)
		if cur == nil {
			return fail(invalidParam(uint16(off)))
		}
		if int(p[off+1]) != len(cur)-2 {
			return fail(invalidParam(uint16(off + 1)))
		}
		if len(p)-off < len(cur) {
			return fail(illegal(scsi.ASCParameterListLengthError))
		}
		pg := p[off : off+len(cur)]
		chg := d.modePage(code, pcChangeable)
		for i := 2; i < len(cur); i++ {
			if (pg[i]^cur[i])&^chg[i] != 0 {
				return fail(invalidParam(uint16(off + i)))
			}
		}
		changes = append(changes, change{code, pg})
		off += len(cur)
	}
	changed := newBlockLen != d.blockLen
	d.blockLen = newBlockLen
	for _, c := range changes {
		switch c.code {
		case 0x0A:
			v := c.pg[2]&0x04 != 0
			changed = changed || v != d.dsense
			d.dsense = v
		case 0x0F:
			v := c.pg[2]&0x80 != 0
			changed = changed || v != d.dce
			d.dce = v
		}
	}
	if changed {
		d.uaOthers(nx, scsi.ASCModeParametersChanged)
	}
	return good(nil)
}

func (d *Drive) logSense(nx *Nexus, cdb []byte) reply {
	if cdb[1]&0x01 != 0 {
		return fail(invalidCDBBit(1, 0)) // SP not supported
	}
	page := cdb[2] & 0x3F
	if cdb[3] != 0 {
		return fail(invalidCDB(3))
	}
	alloc := be16(cdb[7:9])
	b := nx.out[:0]
	switch page {
	case 0x00:
		b = append(b, 0x00, 0x00, 0x00, 0x03, 0x00, 0x12, 0x2E)
	case 0x12: // TapeAlert response: one 64-bit bitmap, flag 1 = MSB
		b = append(b, 0x12, 0x00, 0x00, 0x0C, 0x00, 0x00, 0x03, 0x08, 0, 0, 0, 0, 0, 0, 0, 0)
		put64(b[8:], d.tapeAlert)
	case 0x2E: // TapeAlert: 64 one-byte flags; reading clears them
		b = append(b, 0x2E, 0x00, 0x01, 0x40)
		for i := 1; i <= 64; i++ {
			var v byte
			if d.tapeAlert&taFlag(i) != 0 {
				v = 1
			}
			b = append(b, 0x00, byte(i), 0xC0, 0x01, v)
		}
		d.tapeAlert = 0
	default:
		return fail(invalidCDBBit(2, 5))
	}
	if len(b) > alloc {
		b = b[:alloc]
	}
	return good(b)
}
