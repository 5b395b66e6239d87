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
	bufs  [2][]byte // the drive's own (no shared data buffer), alternating
	// made and used count read-aheads (tests).
	made, used int
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
	if a.seq+1 != d.seq || a.nx != nx || a.cart != d.cart || a.pos != d.pos || d.cart == nil {
		return nil, false
	}
	a.used++
	return a.data, true
}

// ReadAhead reads and decrypts the block at the drive's position for nx's
// next READ, if the last command was nx's READ of a data block and the
// next object is one. spare is where to put it (nil: a buffer of the
// drive's); last is the data the host is still taking, which it must not
// overwrite.
func (d *Drive) ReadAhead(nx *Nexus, spare [2][]byte, last []byte) {
	d.mu.Lock() // not d.lock: this changes nothing a command sees
	defer d.mu.Unlock()
	if !d.lastRead || d.lastNexus != nx || d.cart == nil || d.pos >= d.cart.EOD() || d.cart.Entry(d.pos).Kind != cart.KindBlock {
		return
	}
	a := &d.ahead
	bufs := spare
	if bufs[0] == nil {
		bufs = a.bufs
	}
	i := 0
	if overlaps(bufs[0][:cap(bufs[0])], last) {
		i = 1
	}
	buf := bufs[i][:0]
	var m cart.Meta
	pay, err := d.cart.ReadBlock(d.pos, &buf, &m)
	if spare[0] == nil {
		a.bufs[i] = buf
	}
	if err != nil {
		return
	}
	data, s := d.decryptForRead(nx, &m, pay, true)
	if s != nil || !overlaps(buf[:cap(buf)], data) {
		return
	}
	*a = readAhead{valid: true, seq: d.seq, nx: nx, cart: d.cart, pos: d.pos, data: data, bufs: a.bufs, made: a.made + 1, used: a.used}
}

// overlaps says whether b and c share memory.
func overlaps(b, c []byte) bool {
	if len(b) == 0 || len(c) == 0 {
		return false
	}
	b0, c0 := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&c[0]))
	return b0 < c0+uintptr(len(c)) && c0 < b0+uintptr(len(b))
}
