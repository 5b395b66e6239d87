package emu

import (
	"slices"
	"strings"
)

// ReadCount is how many data blocks READ returned, and their bytes (as
// the host got them: decrypted). Filemarks, end of data and blocks that
// failed to decrypt are not counted.
type ReadCount struct {
	Blocks int64 `json:"blocks"`
	Bytes  int64 `json:"bytes"`
}

// DriveReads are one drive's read counters since the start or the last
// reset, and how many blocks the flip faults changed.
type DriveReads struct {
	Drive   int    `json:"drive"`
	Barcode string `json:"barcode,omitempty"` // the cartridge in it now
	ReadCount
	Flipped int64 `json:"flipped"`
}

// CartReads are the read counters of one cartridge (whichever drive read
// it).
type CartReads struct {
	Barcode string `json:"barcode"`
	ReadCount
}

// Stats are the library's read counters (the panel's "stats" op, `vtl
// stats`): a test proves with them how little of a tape a restore read.
type Stats struct {
	Drives     []DriveReads `json:"drives"`
	Cartridges []CartReads  `json:"cartridges"`
}

// countRead counts a block read from the cartridge barcode. Called with
// the reading drive's mu held.
func (lib *Library) countRead(barcode string, n int) {
	lib.smu.Lock()
	defer lib.smu.Unlock()
	if lib.cartReads == nil {
		lib.cartReads = map[string]*ReadCount{}
	}
	c := lib.cartReads[barcode]
	if c == nil {
		c = &ReadCount{}
		lib.cartReads[barcode] = c
	}
	c.Blocks++
	c.Bytes += int64(n)
}

// ReadStats returns the read counters; with reset they start again from
// zero (after being read).
func (lib *Library) ReadStats(reset bool) Stats {
	var st Stats
	for _, d := range lib.drives {
		d.mu.Lock() // counters only: a read-ahead stays good
		st.Drives = append(st.Drives, DriveReads{Drive: d.Index, Barcode: d.barcode, ReadCount: d.reads, Flipped: d.flipped})
		if reset {
			d.reads, d.flipped = ReadCount{}, 0
		}
		d.mu.Unlock()
	}
	lib.smu.Lock()
	for bc, c := range lib.cartReads {
		st.Cartridges = append(st.Cartridges, CartReads{Barcode: bc, ReadCount: *c})
	}
	if reset {
		lib.cartReads = nil
	}
	lib.smu.Unlock()
	slices.SortFunc(st.Cartridges, func(a, b CartReads) int { return strings.Compare(a.Barcode, b.Barcode) })
	return st
}
