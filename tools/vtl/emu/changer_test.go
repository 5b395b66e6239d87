package emu

import (
	"encoding/binary"
	"testing"
)

func res8(typ byte, voltag, dvcid bool, start, num int) []byte {
	b := []byte{0xB8, typ, byte(start >> 8), byte(start), byte(num >> 8), byte(num), 0, 0x00, 0xFF, 0xFF, 0, 0}
	if voltag {
		b[1] |= 0x10
	}
	if dvcid {
		b[6] = 1
	}
	return b
}

func moveMedium(src, dst int) []byte {
	return []byte{0xA5, 0, 0, 0, byte(src >> 8), byte(src), byte(dst >> 8), byte(dst), 0, 0, 0, 0}
}

// element is one decoded element status descriptor.
type elem struct {
	addr    int
	flags   byte
	svalid  bool
	src     int
	barcode string
	ident   string
}

func decodeRES(t *testing.T, b []byte) (first, n int, els []elem) {
	t.Helper()
	first, n = int(binary.BigEndian.Uint16(b)), int(binary.BigEndian.Uint16(b[2:]))
	total := int(b[5])<<16 | int(b[6])<<8 | int(b[7])
	if total != len(b)-8 {
		t.Fatalf("byte count %d, have %d", total, len(b)-8)
	}
	for off := 8; off < len(b); {
		pvol := b[off+1]&0x80 != 0
		dl := int(binary.BigEndian.Uint16(b[off+2:]))
		cnt := int(b[off+5])<<16 | int(b[off+6])<<8 | int(b[off+7])
		if cnt%dl != 0 {
			t.Fatalf("page byte count %d not a multiple of %d", cnt, dl)
		}
		off += 8
		for end := off + cnt; off < end; off += dl {
			d := b[off : off+dl]
			e := elem{addr: int(binary.BigEndian.Uint16(d)), flags: d[2], svalid: d[9]&0x80 != 0, src: int(binary.BigEndian.Uint16(d[10:]))}
			p := 12
			if pvol {
				e.barcode = string(d[12:44])
				p += 36
			}
			if p < dl {
				e.ident = string(d[p+4 : p+4+int(d[p+3])])
			}
			els = append(els, e)
		}
	}
	return
}

func TestChanger(t *testing.T) {
	h := newTestLib(t, nil)
	c := h.dial("changer")
	expect(t, c, "6/29/00", tur(), nil, 0)
	must(t, c, tur(), nil, 0)
	r := must(t, c, []byte{0x12, 0, 0, 0, 96, 0}, nil, 96)
	eqBytes(t, "changer INQUIRY", r.data[:36], append(unhex(t, "08 80 06 02 5B 00 00 00"), "IBM     3573-TL         0100"...))
	r = must(t, c, []byte{0x12, 1, 0x80, 0, 64, 0}, nil, 64)
	eqBytes(t, "changer VPD 80", r.data, append(unhex(t, "08 80 00 0A"), "TWLIB00001"...))

	// proxmox's element address assignment query.
	r = must(t, c, []byte{0x1A, 0x08, 0x1D, 0x00, 0xFF, 0x00}, nil, 255)
	eqBytes(t, "MODE SENSE 0x1D", r.data, unhex(t, "17 00 00 00 1D 12 00 01 00 01 10 00 00 04 00 10 00 01 01 00 00 02 00 00"))
	r = must(t, c, []byte{0x5A, 0x08, 0x1D, 0, 0, 0, 0, 0, 0xFF, 0}, nil, 255)
	if binary.BigEndian.Uint16(r.data) != 26 || r.data[8] != 0x1D {
		t.Fatalf("MODE SENSE(10) 0x1D: % X", r.data)
	}

	// Storage elements, byte for byte (first descriptor).
	r = must(t, c, res8(2, true, false, 0, 1000), nil, 0xFFFF)
	head := unhex(t, "10 00 00 04 00 00 00 C8  02 80 00 30 00 00 00 C0")
	eqBytes(t, "storage header", r.data[:16], head)
	slot1 := append(unhex(t, "10 00 09 00 00 00 00 00 00 01 00 00"), []byte("TW0001L6                        ")...)
	slot1 = append(slot1, 0, 0, 0, 0)
	eqBytes(t, "slot 1 descriptor", r.data[16:64], slot1)
	// Truncation keeps the byte counts.
	r = must(t, c, []byte{0xB8, 0x12, 0, 0, 0x03, 0xE8, 0, 0, 0, 20, 0, 0}, nil, 255)
	eqBytes(t, "truncated", r.data, append(append([]byte{}, head...), slot1[:4]...))

	// Drives with DVCID (and, separately, VOLTAG).
	r = must(t, c, res8(4, false, true, 0, 1000), nil, 0xFFFF)
	_, n, els := decodeRES(t, r.data)
	if n != 2 || len(els) != 2 || els[0].addr != 0x100 || els[1].addr != 0x101 || els[0].flags&1 != 0 {
		t.Fatalf("drives: %+v", els)
	}
	if els[0].ident != "IBM     ULT3580-TD6     TWDRV00000" || els[1].ident != "IBM     ULT3580-TD6     TWDRV00001" {
		t.Fatalf("DVCID: %q %q", els[0].ident, els[1].ident)
	}
	// The DVCID serial matches the drive's own VPD 0x80.
	d1 := h.dial("drive1")
	r = must(t, d1, []byte{0x12, 1, 0x80, 0, 64, 0}, nil, 64)
	if string(r.data[4:]) != els[1].ident[24:] {
		t.Fatalf("VPD 80 %q vs DVCID %q", r.data[4:], els[1].ident)
	}

	// All elements: counts agree with MODE SENSE 0x1D.
	r = must(t, c, res8(0, true, false, 0, 1000), nil, 0xFFFF)
	first, n, els := decodeRES(t, r.data)
	if first != 1 || n != 1+1+2+4 || len(els) != n {
		t.Fatalf("all elements: first %d n %d", first, n)
	}

	// Moves.
	expect(t, c, "5/3B/0E", moveMedium(0x0010, 0x1000), nil, 0) // I/E empty
	expect(t, c, "5/3B/0D", moveMedium(0x1000, 0x1001), nil, 0) // slot 2 full
	for _, x := range []struct {
		cdb   []byte
		field int
	}{
		{moveMedium(0x1000, 0x2000), 6},
		{moveMedium(0x0999, 0x0100), 4},
		{moveMedium(0x0001, 0x0100), 4},
		{[]byte{0xA5, 0, 0x00, 0x05, 0x10, 0x00, 0x01, 0x00, 0, 0, 0, 0}, 2},
	} {
		r := expect(t, c, "5/21/01", x.cdb, nil, 0)
		if cd, f := r.fieldPtr(); !cd || f != x.field {
			t.Fatalf("invalid element: pointer %v %d, want %d", cd, f, x.field)
		}
	}
	inv := moveMedium(0x1000, 0x0100)
	inv[10] = 1
	expect(t, c, "5/24/00", inv, nil, 0)

	d0 := h.dial("drive0")
	drainUA(t, d0)
	must(t, c, moveMedium(0x1000, 0x0100), nil, 0)
	expect(t, d0, "6/28/00", tur(), nil, 0)
	settle(t, d0)
	r = must(t, c, res8(4, true, false, 0, 1000), nil, 0xFFFF)
	_, _, els = decodeRES(t, r.data)
	if els[0].flags&1 == 0 || !els[0].svalid || els[0].src != 0x1000 || els[0].barcode != "TW0001L6                        " {
		t.Fatalf("drive0 after move: %+v", els[0])
	}
	r = must(t, c, res8(2, true, false, 0x1000, 1), nil, 0xFFFF)
	_, _, els = decodeRES(t, r.data)
	if len(els) != 1 || els[0].flags&1 != 0 || els[0].barcode != string(make([]byte, 32)) {
		t.Fatalf("slot 1 after move: %+v", els)
	}
	// Through the I/E station and back, keeping the source address.
	must(t, c, moveMedium(0x1001, 0x0010), nil, 0)
	r = must(t, c, res8(3, true, false, 0, 1000), nil, 0xFFFF)
	_, _, els = decodeRES(t, r.data)
	if els[0].flags != 0x39 || els[0].src != 0x1001 {
		t.Fatalf("I/E: %+v", els[0])
	}
	must(t, c, moveMedium(0x0010, 0x1001), nil, 0)
	// The library unloads the drive itself (default), even mid-tape.
	must(t, d0, write6(10), pattern(10, 1), 0)
	must(t, c, moveMedium(0x0100, 0x1000), nil, 0)
	expect(t, d0, "2/3A/00", tur(), nil, 0)
	must(t, c, moveMedium(0x1000, 0x0100), nil, 0)
	drainUA(t, d0)
	settle(t, d0)
	if pos := position(t, d0); pos != 0 {
		t.Fatalf("position after reload %d", pos)
	}
	// PREVENT on the drive blocks the pick.
	must(t, d0, []byte{0x1E, 0, 0, 0, 1, 0}, nil, 0)
	expect(t, c, "5/53/02", moveMedium(0x0100, 0x1000), nil, 0)
	must(t, d0, []byte{0x1E, 0, 0, 0, 0, 0}, nil, 0)
	must(t, c, []byte{0x07, 0, 0, 0, 0, 0}, nil, 0) // INITIALIZE ELEMENT STATUS
	// The inventory persists across a restart.
	h.restart()
	c = h.dial("changer")
	drainUA(t, c)
	r = must(t, c, res8(4, true, false, 0, 1000), nil, 0xFFFF)
	_, _, els = decodeRES(t, r.data)
	if els[0].flags&1 == 0 || els[0].src != 0x1000 {
		t.Fatalf("drive0 after restart: %+v", els[0])
	}
}

func TestChangerRequireUnload(t *testing.T) {
	h := newTestLib(t, func(c *Config) { c.RequireUnload = true })
	c := h.dial("changer")
	drainUA(t, c)
	must(t, c, moveMedium(0x1000, 0x0100), nil, 0)
	d := h.dial("drive0")
	settle(t, d)
	expect(t, c, "5/53/01", moveMedium(0x0100, 0x1000), nil, 0)
	must(t, d, []byte{0x1B, 0, 0, 0, 0, 0}, nil, 0)
	must(t, c, moveMedium(0x0100, 0x1000), nil, 0)
}

// The panel protocol over the socket: status, load, unload, move through
// the import/export station (changer nexuses then see 06/28/01), errors.
func TestPanelProtocol(t *testing.T) {
	h := newTestLib(t, nil)
	c := h.dial("changer")
	drainUA(t, c)
	p, err := DialPanel(h.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Do(PanelRequest{Op: "load", Slot: 3, Drive: 1}); err != nil {
		t.Fatal(err)
	}
	resp, err := p.Do(PanelRequest{Op: "status"})
	if err != nil {
		t.Fatal(err)
	}
	st := resp.Status
	if len(st.Slots) != 4 || st.Slots[2].Barcode != "" || st.Drives[1].Barcode != "TW0003L6" || st.Drives[0].State != "empty" {
		t.Fatalf("status after load: %+v", st)
	}
	if _, err := p.Do(PanelRequest{Op: "load", Slot: 3, Drive: 0}); err == nil || err.Error() != "5/3B/0E medium source element empty" {
		t.Fatalf("load from an empty slot: %v", err)
	}
	if _, err := p.Do(PanelRequest{Op: "frobnicate"}); err == nil {
		t.Fatal("unknown op accepted")
	}
	must(t, c, tur(), nil, 0) // drive loads are not changer UAs
	if _, err := p.Do(PanelRequest{Op: "move", From: 0x1000, To: 0x0010}); err != nil {
		t.Fatal(err)
	}
	expect(t, c, "6/28/01", tur(), nil, 0)
	r := must(t, c, res8(3, true, false, 0, 10), nil, 4096)
	_, _, els := decodeRES(t, r.data)
	if els[0].flags&1 == 0 || els[0].barcode[:8] != "TW0001L6" || els[0].src != 0x1000 {
		t.Fatalf("I/E after operator export: %+v", els[0])
	}
	resp, err = p.Do(PanelRequest{Op: "unload", Drive: 1})
	if err != nil || resp.Slot != 3 {
		t.Fatalf("unload: %v %+v", err, resp)
	}
}

// The write-protect tab (panel "protect"): MODE SENSE WP, 07/27/00 for
// WRITE, WRITE FILEMARKS and ERASE, DEC without AVFCLP; reads still work.
func TestWriteProtect(t *testing.T) {
	h := newTestLib(t, nil)
	h.load(1, 0)
	c := h.dial("drive0")
	settle(t, c)
	must(t, c, write6(10), pattern(10, 1), 0)
	if _, err := h.lib.PanelUnload(0); err != nil {
		t.Fatal(err)
	}
	p, err := DialPanel(h.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Do(PanelRequest{Op: "protect", Slot: 1, On: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Do(PanelRequest{Op: "protect", Slot: 2, On: true}); err != nil {
		t.Fatal(err)
	}
	h.load(1, 0)
	settle(t, c)
	r := must(t, c, []byte{0x1A, 0, 0x0F, 0, 0xFF, 0}, nil, 255)
	if r.data[2] != 0x90 {
		t.Fatalf("MODE SENSE device-specific %02X, want 90 (WP, buffered)", r.data[2])
	}
	expect(t, c, "7/27/00", write6(10), pattern(10, 2), 0)
	expect(t, c, "7/27/00", wfm(1), nil, 0)
	expect(t, c, "7/27/00", []byte{0x19, 0, 0, 0, 0, 0}, nil, 0)
	r = must(t, c, spin(0x20, 0x10, 64), nil, 64)
	if r.data[24] != 0xBA || r.data[25] != 0x0C {
		t.Fatalf("DEC on a protected volume: % X", r.data[24:26])
	}
	r = must(t, c, read6(10, true), nil, 10)
	eqBytes(t, "read from a protected cartridge", r.data, pattern(10, 1))
	// The tab only moves while the cartridge is out of the drives.
	if _, err := p.Do(PanelRequest{Op: "protect", Slot: 1, On: false}); err == nil {
		t.Fatal("protect on an empty slot accepted")
	}
	h.lib.PanelUnload(0)
	if _, err := p.Do(PanelRequest{Op: "protect", Slot: 1, On: false}); err != nil {
		t.Fatal(err)
	}
	h.load(1, 0)
	settle(t, c)
	must(t, c, write6(10), pattern(10, 2), 0)
}
