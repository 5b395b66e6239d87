package emu

import (
	"unsafe"

	"github.com/tapeward/tapeward/tools/vtl/cart"
)

// readAhead is the block after the one a READ returned, read and
// decrypted while the host was busy with that one, as a streaming drive
// fills its buffer ahead of the host. It is used only by the very next
// command to the drive, if that is a READ from the same nexus at the same
// position of the same cartridge; anything else in between (any command,
// a panel or fault change, a load) drops it. Only a block that decrypted
// (or needed no decryption) is kept: a failing block is read again by the
// READ, which then has the failure's effects.
type readAhead struct {
	valid bool
	seq   uint64
	nx    *Nexus
	cart  *cart.Cartridge
	pos   int64
	data  []byte
}

// lock takes the drive's lock; every holder may change what a READ would
// return, so a read-ahead made before is no longer good after it.
func (d *Drive) lock() {
	d.mu.Lock()
	d.seq++
}

// takeAhead returns the read-ahead for a READ of nx at the current
// position, if there is a good one (the caller holds d.mu, taken by this
// READ's lock).
func (d *Drive) takeAhead(nx *Nexus) ([]byte, bool) {
	a := &d.ahead
	if !a.valid {
		return nil, false
	}
	a.valid = false
	if a.seq+1 != d.seq || a.nx != nx || a.cart != d.cart || a.pos != d.pos {
		return nil, false
	}
	d.aheadUsed++
	return a.data, true
}

// ReadAhead reads and decrypts the block at the drive's position for nx's
// next READ, if the last command was nx's READ of a data block and the
// next object is one. halves are the two halves of the connection's shared
// data buffer where the device builds data-in (nil: the socket carries
// it, and a buffer of the drive's is used): the block goes into the half
// that does not hold last, the data the host is still copying out.
func (d *Drive) ReadAhead(nx *Nexus, halves [2][]byte, last []byte) {
	d.mu.Lock() // not d.lock: this changes nothing a command sees
	defer d.mu.Unlock()
	if !d.lastRead || d.lastNexus != nx || d.cart == nil || d.pos >= d.cart.EOD() || d.cart.Entry(d.pos).Kind != cart.KindBlock {
		return
	}
	buf := d.aheadBuf[:0]
	if halves[0] != nil {
		buf = halves[0]
		if overlaps(buf[:cap(buf)], last) {
			buf = halves[1]
		}
	}
	var m cart.Meta
	pay, err := d.cart.ReadBlock(d.pos, &buf, &m)
	if halves[0] == nil {
		d.aheadBuf = buf
	}
	if err != nil {
		return
	}
	data, s := d.decryptForRead(nx, &m, pay, true)
	if s != nil || !overlaps(buf[:cap(buf)], data) {
		return
	}
	d.ahead = readAhead{valid: true, seq: d.seq, nx: nx, cart: d.cart, pos: d.pos, data: data}
	d.aheadMade++
}

// overlaps says whether b and c share memory.
func overlaps(b, c []byte) bool {
	if len(b) == 0 || len(c) == 0 {
		return false
	}
	b0, c0 := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&c[0]))
	return b0 < c0+uintptr(len(c)) && c0 < b0+uintptr(len(b))
}
