package emu

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// TestReadStatsAndFlip: READ counts blocks and bytes per drive and per
// cartridge (filemarks and end of data do not count); a reset starts
// again from zero; flip_read flips one byte of the Nth block read, once,
// and flip_block every read of one address, at flip_offset; the
// cartridge keeps its bytes.
func TestReadStatsAndFlip(t *testing.T) {
	h := newTestLib(t, nil)
	h.load(1, 0)
	d := inproc(t, h.lib, "drive0", false)
	readyDev(t, d)
	if err := d.Rewind(false); err != nil {
		t.Fatal(err)
	}
	blocks := make([][]byte, 4)
	for i := range blocks {
		blocks[i] = pattern(1000+i, byte(i))
		if _, err := d.Write(blocks[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.WriteFilemarks(1, false); err != nil {
		t.Fatal(err)
	}
	if st := h.lib.ReadStats(false); st.Drives[0].Blocks != 0 || len(st.Cartridges) != 0 {
		t.Fatalf("stats before any read: %+v", st)
	}
	buf := make([]byte, 4096)
	readAll := func() [][]byte {
		t.Helper()
		if err := d.Rewind(false); err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		for {
			r, err := d.Read(buf, true)
			if err != nil {
				t.Fatal(err)
			}
			if r.Filemark {
				return out
			}
			out = append(out, bytes.Clone(buf[:r.N]))
		}
	}
	readAll()
	st := h.lib.ReadStats(false)
	want := int64(1000 + 1001 + 1002 + 1003)
	bc := st.Drives[0].Barcode
	if st.Drives[0].Blocks != 4 || st.Drives[0].Bytes != want || len(st.Cartridges) != 1 || st.Cartridges[0].Barcode != bc ||
		st.Cartridges[0].Blocks != 4 || st.Cartridges[0].Bytes != want || st.Drives[1].Blocks != 0 {
		t.Fatalf("stats after reading 4 blocks (%d bytes) and a filemark: %+v", want, st)
	}
	if st := h.lib.ReadStats(true); st.Drives[0].Blocks != 4 {
		t.Fatalf("stats read with reset: %+v", st)
	}
	if st := h.lib.ReadStats(false); st.Drives[0].Blocks != 0 || st.Drives[0].Bytes != 0 || len(st.Cartridges) != 0 {
		t.Fatalf("stats after the reset: %+v", st)
	}

	// flip_read=2: the second block read after the fault is set, once.
	_, f, err := ParseFaults("drive0:flip_read=2,flip_offset=7", parseSizeForTest)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.lib.SetFaults("drive0", f); err != nil {
		t.Fatal(err)
	}
	got := readAll()
	for i, b := range got {
		exp := bytes.Clone(blocks[i])
		if i == 1 {
			exp[7] ^= 0xFF
		}
		if !bytes.Equal(b, exp) {
			t.Fatalf("block %d read with flip_read=2: differs from the expected bytes", i)
		}
	}
	for i, b := range readAll() {
		if !bytes.Equal(b, blocks[i]) {
			t.Fatalf("block %d read again: flip_read flipped more than once", i)
		}
	}
	// flip_block=2 (logical object 2: the third block), every read; an
	// offset past the block flips its last byte.
	_, f, err = ParseFaults("drive0:flip_block=2,flip_offset=99999", parseSizeForTest)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.lib.SetFaults("drive0", f); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got := readAll()
		if g, w := got[2][len(got[2])-1], blocks[2][len(blocks[2])-1]^0xFF; g != w || !bytes.Equal(got[2][:len(got[2])-1], blocks[2][:len(blocks[2])-1]) || !bytes.Equal(got[1], blocks[1]) {
			t.Fatal("flip_block=2 did not flip exactly the last byte of block 2")
		}
	}
	if st := h.lib.ReadStats(false); st.Drives[0].Flipped != 3 {
		t.Fatalf("flipped %d blocks, want 3: %+v", st.Drives[0].Flipped, st)
	}
	if err := h.lib.SetFaults("drive0", Faults{}); err != nil {
		t.Fatal(err)
	}
	for i, b := range readAll() {
		if !bytes.Equal(b, blocks[i]) {
			t.Fatalf("block %d after the fault was cleared: the cartridge changed", i)
		}
	}
	if _, _, err := ParseFaults("changer:flip_read=1", parseSizeForTest); err == nil || !strings.Contains(err.Error(), "apply to drives") {
		t.Fatalf("a flip fault on the changer: %v", err)
	}
	if s := f.String(); s != "flip_block=2,flip_offset=99999" {
		t.Fatalf("Faults.String() = %q", s)
	}
}

func parseSizeForTest(s string) (int64, error) {
	var n int64
	_, err := fmt.Sscan(s, &n)
	return n, err
}
