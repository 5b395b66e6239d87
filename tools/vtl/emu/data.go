package emu

import (
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/tools/vtl/cart"
)

// EarlyWarningZone is the size of the early-warning zone before the end of
// a cartridge of the given capacity: 1/32 of the capacity, at most 64 MiB.
// A write that ends inside the zone succeeds with 00/00/02 (EOM); a record
// that does not fit before the capacity is refused with 0D/00/02.
func EarlyWarningZone(capacity int64) int64 {
	z := capacity / 32
	if z > 64<<20 {
		z = 64 << 20
	}
	return z
}

func (d *Drive) pastEW() bool {
	if d.cart == nil {
		return false
	}
	c := d.cart.Header().Capacity
	return d.cart.Used() >= c-EarlyWarningZone(c)
}

func (d *Drive) fits(recSize int64) bool {
	return d.cart.Used()+recSize <= d.cart.Header().Capacity
}

// prepareWrite checks write protection and truncates at the current
// position (tape semantics).
func (d *Drive) prepareWrite() *sense {
	if d.cart.Header().WriteProtected {
		return checkSense(scsi.SenseDataProtect, scsi.ASCWriteProtected)
	}
	if d.pos < d.cart.EOD() {
		if err := d.cart.Truncate(d.pos); err != nil {
			return checkSense(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure)
		}
	}
	return nil
}

func (d *Drive) write6(nx *Nexus, cdb []byte, data []byte) reply {
	fixed := cdb[1]&1 != 0
	if cdb[1]&0xFE != 0 {
		return fail(invalidCDB(1))
	}
	n := be24(cdb[2:5])
	if n == 0 {
		return good(nil)
	}
	blen, count := n, 1
	if fixed {
		if d.blockLen == 0 {
			return fail(invalidCDBBit(1, 0))
		}
		blen, count = d.blockLen, n
	} else if n > d.maxBlock() {
		return fail(invalidCDB(2))
	}
	if len(data) < blen*count {
		return fail(checkSense(scsi.SenseAbortedCommand, ascDataPhaseError))
	}
	if s := d.prepareWrite(); s != nil {
		return fail(s)
	}
	p := d.params(nx)
	if s := checkWriteLock(nx, d.kic); s != nil {
		return fail(s)
	}
	for i := range count {
		blk := data[i*blen : (i+1)*blen]
		enc := p.encrypts() && !d.pers.Lying
		kad := 0
		pay := len(blk)
		if enc {
			kad = len(p.ukad) + len(p.akad)
			pay += gcmOverhead
		}
		if !d.fits(cart.RecordSize(kad, pay)) {
			s := &sense{key: scsi.SenseVolumeOverflow, asc: scsi.ASCEndOfPartitionDetected, eom: true, valid: true}
			if fixed {
				s.info = int64(count - i)
			} else {
				s.info = int64(n)
			}
			return reply{sense: s, residOut: (count - i) * blen}
		}
		var err error
		if enc {
			err = d.writeEncrypted(p, blk)
		} else {
			d.meta = cart.Meta{PlainLen: len(blk)}
			err = d.cart.AppendBlock(&d.meta, blk)
		}
		if err != nil {
			return d.ioError(err)
		}
		d.pos++
	}
	if d.pastEW() {
		return fail(&sense{asc: scsi.ASCEndOfPartitionDetected, eom: true, valid: true})
	}
	return good(nil)
}

func (d *Drive) writeFilemarks(nx *Nexus, cdb []byte) reply {
	if cdb[1]&0xFC != 0 {
		return fail(invalidCDB(1))
	}
	n := be24(cdb[2:5])
	if n == 0 {
		if err := d.cart.Flush(); err != nil {
			return d.ioError(err)
		}
		if d.pastEW() {
			return fail(&sense{asc: scsi.ASCEndOfPartitionDetected, eom: true, valid: true})
		}
		return good(nil)
	}
	if s := d.prepareWrite(); s != nil {
		return fail(s)
	}
	for i := range n {
		if !d.fits(cart.RecordSize(0, 0)) {
			return fail(&sense{key: scsi.SenseVolumeOverflow, asc: scsi.ASCEndOfPartitionDetected, eom: true, valid: true, info: int64(n - i)})
		}
		if err := d.cart.AppendFilemark(); err != nil {
			return d.ioError(err)
		}
		d.pos++
	}
	if cdb[1]&1 == 0 {
		if err := d.cart.Flush(); err != nil {
			return d.ioError(err)
		}
	}
	if d.pastEW() {
		return fail(&sense{asc: scsi.ASCEndOfPartitionDetected, eom: true, valid: true})
	}
	return good(nil)
}

// blankCheck is the EOD condition with residual info.
func (d *Drive) blankCheck(info int64) *sense {
	return &sense{key: scsi.SenseBlankCheck, asc: scsi.ASCEndOfData, valid: true, info: info, eom: d.pastEW()}
}

func (d *Drive) read6(nx *Nexus, cdb []byte, alloc int) reply {
	fixed, sili := cdb[1]&1 != 0, cdb[1]&2 != 0
	if cdb[1]&0xFC != 0 {
		return fail(invalidCDB(1))
	}
	n := be24(cdb[2:5])
	if fixed && (d.blockLen == 0 || sili) {
		return fail(invalidCDBBit(1, 0))
	}
	if n == 0 {
		return good(nil)
	}
	if !fixed {
		return d.readOne(nx, n, sili)
	}
	// Fixed mode: n blocks of blockLen, assembled in nx.out.
	bl := d.blockLen
	if n*bl > 16<<20 {
		return fail(invalidCDB(2))
	}
	if cap(nx.out) < n*bl {
		nx.out = make([]byte, 0, n*bl)
	}
	out := nx.out[:0]
	for i := range n {
		if d.pos >= d.cart.EOD() {
			return reply{sense: d.blankCheck(int64(n - i)), data: out}
		}
		e := d.cart.Entry(d.pos)
		if e.Kind == cart.KindFilemark {
			d.pos++
			return reply{sense: &sense{fm: true, asc: scsi.ASCFilemarkDetected, valid: true, info: int64(n - i)}, data: out}
		}
		blk, s := d.readBlockData(nx)
		if s != nil {
			return reply{sense: s, data: out}
		}
		d.pos++
		if len(blk) != bl {
			return reply{sense: &sense{ili: true, valid: true, info: int64(n - i)}, data: out}
		}
		out = append(out, blk...)
	}
	nx.out = out[:0]
	return good(out)
}

// readOne is a variable-mode READ(6) of n bytes.
func (d *Drive) readOne(nx *Nexus, n int, sili bool) reply {
	if d.pos >= d.cart.EOD() {
		return fail(d.blankCheck(int64(n)))
	}
	e := d.cart.Entry(d.pos)
	if e.Kind == cart.KindFilemark {
		d.pos++
		return fail(&sense{fm: true, asc: scsi.ASCFilemarkDetected, valid: true, info: int64(n)})
	}
	blk, s := d.readBlockData(nx)
	if s != nil {
		return fail(s)
	}
	d.pos++
	switch {
	case len(blk) == n:
		return good(blk)
	case len(blk) < n:
		if sili {
			return good(blk)
		}
		return reply{sense: &sense{ili: true, valid: true, info: int64(n - len(blk))}, data: blk}
	default:
		// Over-length: only n bytes move; ILI with negative INFO even with
		// SILI=1 (§10 item 12, the IBM/LTFS expectation).
		return reply{sense: &sense{ili: true, valid: true, info: int64(n - len(blk))}, data: blk[:n]}
	}
}

// readBlockData reads and (per the decryption mode) decrypts the block at
// the current position. On a 74/xx error the position is left unchanged
// unless the library is configured to skip the block.
func (d *Drive) readBlockData(nx *Nexus) ([]byte, *sense) {
	data, ok := d.takeAhead(nx)
	if ok {
		d.wrongKeyReads = 0 // what the decryption did when it was made
	} else {
		var m cart.Meta
		pay, err := d.cart.ReadBlock(d.pos, &nx.buf, &m)
		if err != nil {
			r := d.ioError(err)
			return nil, r.sense
		}
		var s *sense
		data, s = d.decryptForRead(nx, &m, pay, false)
		if s != nil {
			if d.lib.cfg.SkipOnCryptoError {
				d.pos++
			}
			return data, s
		}
	}
	d.counted(data)
	d.lastRead, d.lastNexus = true, nx
	return data, nil
}

// counted counts a data block READ returns and applies the flip faults
// to it (data is the host's copy, never the cartridge's). Caller holds
// d.mu.
func (d *Drive) counted(data []byte) {
	d.reads.Blocks++
	d.reads.Bytes += int64(len(data))
	d.lib.countRead(d.barcode, len(data))
	d.flipSeen++
	if len(data) > 0 && d.faults.flips(d.pos, d.flipSeen) {
		i := min(d.faults.FlipOffset, len(data)-1)
		data[i] ^= 0xFF
		d.flipped++
		d.lib.log.Info("fault: flipped a byte of a block read", "drive", d.Index, "block", d.pos, "offset", i)
	}
}

func (d *Drive) space(code int, count int64, _ int) reply {
	c := d.cart
	eod := c.EOD()
	switch code {
	case 0: // logical blocks
		if count == 0 {
			return good(nil)
		}
		if count > 0 {
			fmIdx := c.FilemarksBefore(d.pos) // index of the next filemark at or after pos
			var nextFM int64 = -1
			if fmIdx < c.Filemarks() {
				nextFM = c.FilemarkAt(fmIdx)
			}
			if nextFM >= 0 && nextFM < d.pos+count {
				spaced := nextFM - d.pos
				d.pos = nextFM + 1
				return fail(&sense{fm: true, asc: scsi.ASCFilemarkDetected, valid: true, info: count - spaced})
			}
			if d.pos+count > eod {
				spaced := eod - d.pos
				d.pos = eod
				return fail(d.blankCheck(count - spaced))
			}
			d.pos += count
			return good(nil)
		}
		n := -count
		fmIdx := c.FilemarksBefore(d.pos) - 1
		var prevFM int64 = -1
		if fmIdx >= 0 {
			prevFM = c.FilemarkAt(fmIdx)
		}
		if prevFM >= 0 && prevFM >= d.pos-n {
			spaced := d.pos - 1 - prevFM
			d.pos = prevFM
			return fail(&sense{fm: true, asc: scsi.ASCFilemarkDetected, valid: true, info: n - spaced})
		}
		if d.pos-n < 0 {
			spaced := d.pos
			d.pos = 0
			return fail(&sense{eom: true, asc: scsi.ASCBeginningOfPartition, valid: true, info: n - spaced})
		}
		d.pos -= n
		return good(nil)
	case 1: // filemarks
		if count == 0 {
			return good(nil)
		}
		if count > 0 {
			i := c.FilemarksBefore(d.pos)
			if i+count-1 < c.Filemarks() {
				d.pos = c.FilemarkAt(i+count-1) + 1
				return good(nil)
			}
			spaced := c.Filemarks() - i
			d.pos = eod
			return fail(d.blankCheck(count - spaced))
		}
		n := -count
		i := c.FilemarksBefore(d.pos)
		if i-n >= 0 {
			d.pos = c.FilemarkAt(i - n)
			return good(nil)
		}
		d.pos = 0
		return fail(&sense{eom: true, asc: scsi.ASCBeginningOfPartition, valid: true, info: n - i})
	case 3: // end of data
		d.pos = eod
		return good(nil)
	}
	return fail(invalidCDB(1))
}

func (d *Drive) readPosition(nx *Nexus, cdb []byte) reply {
	sa := cdb[1] & 0x1F
	alloc := be16(cdb[7:9])
	var flags byte
	if d.pos == 0 {
		flags |= 0x80
	}
	if d.pastEW() {
		flags |= 0x01
	}
	// A lying READ POSITION (Faults.Position) reports another position
	// for this answer only; the drive's real position is unchanged.
	real := d.pos
	defer func() { d.pos = real }()
	if f := d.faults; f.Position != "" && (!f.PositionPastEW || d.pastEW()) {
		switch f.Position {
		case "zero":
			d.pos, flags = 0, flags&^0x80
		case "stale":
			d.pos = d.prevPos
		}
	}
	switch sa {
	case 0x00, 0x01:
		if alloc != 0 {
			return fail(invalidCDB(7))
		}
		b := append(nx.out[:0], make([]byte, 20)...)
		b[0] = flags
		if d.pos > 0xFFFFFFFF {
			b[0] |= 0x24 // LOCU | LOLU: too large for the short form
		} else {
			put32(b[4:], uint32(d.pos))
			put32(b[8:], uint32(d.pos))
		}
		return good(b)
	case 0x06:
		if alloc != 0 {
			return fail(invalidCDB(7))
		}
		b := append(nx.out[:0], make([]byte, 32)...)
		b[0] = flags
		put64(b[8:], uint64(d.pos))
		put64(b[16:], uint64(d.cart.FilemarksBefore(d.pos)))
		return good(b)
	case 0x08:
		b := append(nx.out[:0], make([]byte, 32)...)
		b[0] = flags
		put16(b[2:], 0x1C)
		put64(b[8:], uint64(d.pos))
		put64(b[16:], uint64(d.pos))
		if alloc < len(b) {
			b = b[:alloc]
		}
		return good(b)
	}
	return fail(invalidCDB(1))
}

func (d *Drive) locate16(cdb []byte) reply {
	dest := cdb[1] >> 3 & 7
	if cdb[1]&2 != 0 && cdb[3] != 0 {
		return fail(invalidCDB(3))
	}
	id := int64(be32(cdb[4:8]))<<32 | int64(be32(cdb[8:12]))
	switch dest {
	case 0:
		return d.locateObject(id)
	case 1:
		// Logical file n: the object after filemark n (HP) or n+1 (IBM),
		// §6.2/§9.1. File 0 on HP is BOP.
		if id < 0 || id > d.cart.Filemarks() {
			d.pos = d.cart.EOD()
			return fail(d.blankCheck(0))
		}
		k := id + d.pers.LocateFileOffset
		if k == 0 {
			d.pos = 0
			return good(nil)
		}
		if k > d.cart.Filemarks() {
			d.pos = d.cart.EOD()
			return fail(d.blankCheck(0))
		}
		d.pos = d.cart.FilemarkAt(k-1) + 1
		return good(nil)
	case 3:
		d.pos = d.cart.EOD()
		return good(nil)
	}
	return fail(invalidCDBBit(1, 3))
}

func (d *Drive) locateObject(id int64) reply {
	if id < 0 || id > d.cart.EOD() {
		d.pos = d.cart.EOD()
		return fail(d.blankCheck(0))
	}
	d.pos = id
	return good(nil)
}
