package emu

import (
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
)

// ExecChanger runs one command on the medium changer. The changer lock is
// held for the whole command, so a MOVE MEDIUM is serialized with the
// commands of the drives it touches (it takes their locks too).
func (lib *Library) ExecChanger(nx *Nexus, req *vtlwire.Request) vtlwire.Response {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	r := lib.execChanger(nx, req)
	return toResponse(nx, req, r, 18, false)
}

func (lib *Library) execChanger(nx *Nexus, req *vtlwire.Request) reply {
	cdb := req.CDB
	op := cdb[0]
	if len(cdb) < cdbLen(op) {
		return fail(invalidCDB(0))
	}
	if conflict(lib.creserved, nx, op) {
		return reply{status: scsi.StatusReservationConflict}
	}
	switch op {
	case scsi.OpInquiry:
		return lib.changerInquiry(nx, cdb)
	case scsi.OpReportLUNs:
		return reportLUNs(nx, cdb)
	case scsi.OpRequestSense:
		s := nx.takeUA()
		if s == nil {
			s = &sense{}
		}
		var b []byte
		if cdb[1]&1 != 0 {
			b = s.descriptor(nx.out[:0])
		} else {
			b = s.fixed(nx.out[:cap(nx.out)], 18)
		}
		if n := int(cdb[4]); len(b) > n {
			b = b[:n]
		}
		return good(b)
	}
	if s := nx.takeUA(); s != nil {
		return fail(s)
	}
	switch op {
	case scsi.OpTestUnitReady, scsi.OpInitializeElementStat:
		return good(nil)
	case scsi.OpInitializeElementRange, 0x37:
		return good(nil)
	case scsi.OpPreventAllow:
		lib.cprevent[nx] = cdb[4]&3 == 1
		return good(nil)
	case opReserve6, opRelease6:
		return reserve(&lib.creserved, nx, cdb)
	case scsi.OpModeSense6, scsi.OpModeSense10:
		return lib.changerModeSense(nx, cdb)
	case scsi.OpReadElementStatus:
		return lib.readElementStatus(nx, cdb)
	case scsi.OpMoveMedium:
		t := uint16(be16(cdb[2:4]))
		if t != 0 && t != transportAddr {
			s := illegal(scsi.ASCInvalidElementAddress)
			s.sksv, s.cd, s.field = true, true, 2
			return fail(s)
		}
		if cdb[10]&1 != 0 {
			return fail(invalidCDBBit(10, 0))
		}
		if s := lib.move(uint16(be16(cdb[4:6])), uint16(be16(cdb[6:8]))); s != nil {
			return fail(s)
		}
		return good(nil)
	}
	return fail(illegal(scsi.ASCInvalidOpcode))
}

func (lib *Library) changerInquiry(nx *Nexus, cdb []byte) reply {
	evpd, page := cdb[1]&1 != 0, cdb[2]
	var b []byte
	if !evpd {
		if page != 0 {
			return fail(invalidCDB(2))
		}
		b = stdInquiry(nx.out[:0], 0x08, 0x80, lib.pers.ChangerVendor, lib.pers.ChangerProduct, "0100")
	} else {
		switch page {
		case 0x00:
			b = append(nx.out[:0], 0x08, 0x00, 0x00, 0x03, 0x00, 0x80, 0x83)
		case 0x80:
			b = vpdSerial(nx.out[:0], 0x08, lib.serial)
		case 0x83:
			b = vpdDevID(nx.out[:0], 0x08, lib.pers.ChangerVendor, lib.pers.ChangerProduct, lib.serial, 0x1)
		default:
			return fail(invalidCDB(2))
		}
	}
	if alloc := be16(cdb[3:5]); len(b) > alloc {
		b = b[:alloc]
	}
	return good(b)
}

// eaaPage is the Element Address Assignment page 0x1D (§6.3).
func (lib *Library) eaaPage(pc int) []byte {
	p := make([]byte, 20)
	p[0], p[1] = 0x1D, 0x12
	if pc == pcChangeable {
		return p
	}
	put16(p[2:], int(transportAddr))
	put16(p[4:], 1)
	put16(p[6:], int(slotBase))
	put16(p[8:], len(lib.slots))
	put16(p[10:], int(ieAddr))
	put16(p[12:], len(lib.ie))
	put16(p[14:], int(driveBase))
	put16(p[16:], len(lib.drives))
	return p
}

func (lib *Library) changerModeSense(nx *Nexus, cdb []byte) reply {
	ten := cdb[0] == scsi.OpModeSense10
	pc := int(cdb[2] >> 6)
	page := cdb[2] & 0x3F
	if cdb[3] != 0 {
		return fail(invalidCDB(3))
	}
	if page != 0x1D && page != 0x3F {
		return fail(invalidCDBBit(2, 5))
	}
	pg := lib.eaaPage(pc)
	b := nx.out[:0]
	var alloc int
	if ten {
		b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
		b = append(b, pg...)
		put16(b[0:], len(b)-2)
		alloc = be16(cdb[7:9])
	} else {
		b = append(b, 0, 0, 0, 0)
		b = append(b, pg...)
		b[0] = byte(len(b) - 1)
		alloc = int(cdb[4])
	}
	if len(b) > alloc {
		b = b[:alloc]
	}
	return good(b)
}

type element struct {
	typ  byte
	addr uint16
}

// elements lists all elements in address order.
func (lib *Library) elements() []element {
	e := []element{{1, transportAddr}}
	for i := range lib.ie {
		e = append(e, element{3, ieAddr + uint16(i)})
	}
	for i := range lib.drives {
		e = append(e, element{4, driveBase + uint16(i)})
	}
	for i := range lib.slots {
		e = append(e, element{2, slotBase + uint16(i)})
	}
	return e
}

func (lib *Library) readElementStatus(nx *Nexus, cdb []byte) reply {
	voltag := cdb[1]&0x10 != 0
	typ := cdb[1] & 0x0F
	start := uint16(be16(cdb[2:4]))
	num := be16(cdb[4:6])
	dvcid := cdb[6]&0x01 != 0
	alloc := be24(cdb[7:10])
	if typ > 4 {
		return fail(invalidCDBBit(1, 3))
	}
	if cdb[6]&0xF8 != 0 {
		return fail(invalidCDB(6))
	}
	var sel []element
	for _, e := range lib.elements() {
		if e.addr >= start && (typ == 0 || e.typ == typ) && len(sel) < num {
			sel = append(sel, e)
		}
	}
	b := append(nx.out[:0], 0, 0, 0, 0, 0, 0, 0, 0)
	if len(sel) > 0 {
		put16(b[0:], int(sel[0].addr))
	}
	put16(b[2:], len(sel))
	for i := 0; i < len(sel); {
		j := i
		for j < len(sel) && sel[j].typ == sel[i].typ {
			j++
		}
		b = lib.elementPage(b, sel[i].typ, sel[i:j], voltag, dvcid)
		i = j
	}
	n := len(b) - 8
	b[5], b[6], b[7] = byte(n>>16), byte(n>>8), byte(n)
	nx.out = b[:0]
	if short := lib.cfaults.ShortElementStatus; short > 0 {
		// tgt: the answer is shorter than its own byte counts say.
		b = b[:max(len(b)-short, 8)]
	}
	if len(b) > alloc {
		b = b[:alloc]
	}
	return good(b)
}

func (lib *Library) elementPage(b []byte, typ byte, els []element, voltag, dvcid bool) []byte {
	dl := 12
	if voltag {
		dl += 36
	}
	withID := dvcid && typ == 4
	if withID {
		dl += 4 + 34
	}
	h := []byte{typ, 0, 0, 0, 0, 0, 0, 0}
	if voltag {
		h[1] = 0x80
	}
	put16(h[2:], dl)
	total := dl * len(els)
	h[5], h[6], h[7] = byte(total>>16), byte(total>>8), byte(total)
	b = append(b, h...)
	for _, e := range els {
		d := make([]byte, dl)
		put16(d[0:], int(e.addr))
		bc := lib.content(e.addr)
		var src uint16
		switch typ {
		case 1:
		case 2:
			d[2] = 0x08
		case 3:
			i := e.addr - ieAddr
			d[2] = 0x08 | 0x30
			if lib.ieOp[i] && bc != "" {
				d[2] |= 0x02 // IMPEXP: placed by the operator
			}
			src = lib.ieSrc[i]
		case 4:
			d[2] = 0x08
			src = lib.driveSrc[e.addr-driveBase]
		}
		if bc != "" {
			d[2] |= 0x01
			d[9] = 0x01 // medium type: data
			if src != 0 {
				d[9] |= 0x80
				put16(d[10:], int(src))
			}
		}
		off := 12
		if voltag {
			if bc != "" {
				copy(d[off:off+32], pad(bc, 32))
			}
			off += 36
		}
		if withID {
			dr := lib.drives[e.addr-driveBase]
			id := append(append(pad(dr.pers.Vendor, 8), pad(dr.pers.Product, 16)...), dr.serial...)
			d[off], d[off+1], d[off+3] = 0x02, 0x01, byte(len(id))
			copy(d[off+4:], id)
		}
		b = append(b, d...)
	}
	return b
}
