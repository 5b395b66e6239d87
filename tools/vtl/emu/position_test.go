package emu

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
)

// layout writes: file 0 = blocks 0,1,2; FM(3); file 1 = blocks 4,5; FM(6);
// FM(7); file 3 = block 8; EOD = 9.
func layout(t *testing.T, c *vtlwire.Client) {
	t.Helper()
	for _, n := range []int{3, 2, 0, 1} {
		for i := range n {
			must(t, c, write6(100+i), pattern(100+i, byte(i)), 0)
		}
		if n != 1 {
			must(t, c, wfm(1), nil, 0)
		}
	}
}

func space16(code byte, n int64) []byte {
	b := make([]byte, 16)
	b[0], b[1] = 0x91, code
	binary.BigEndian.PutUint64(b[4:], uint64(n))
	return b
}

func TestReadPositionLocateSpace(t *testing.T) {
	h := newTestLib(t, nil) // ibm
	h.load(1, 0)
	c := h.dial("drive0")
	settle(t, c)
	layout(t, c)
	longPos := func() (flags byte, obj, file uint64) {
		r := must(t, c, readPosLong(), nil, 32)
		if len(r.data) != 32 {
			t.Fatalf("long form %d bytes", len(r.data))
		}
		return r.data[0], binary.BigEndian.Uint64(r.data[8:16]), binary.BigEndian.Uint64(r.data[16:24])
	}
	if _, obj, file := longPos(); obj != 9 || file != 3 {
		t.Fatalf("at EOD: obj %d file %d", obj, file)
	}
	must(t, c, rewind(), nil, 0)
	r := must(t, c, []byte{0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil, 20)
	eqBytes(t, "short form at BOP", r.data, unhex(t, "80 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"))
	r = must(t, c, readPosLong(), nil, 32)
	eqBytes(t, "long form at BOP", r.data, unhex(t, "80 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"))
	expect(t, c, "5/24/00", []byte{0x34, 0x06, 0, 0, 0, 0, 0, 0, 0x20, 0}, nil, 32) // allocation must be 0

	steps := []struct {
		name      string
		cdb       []byte
		want      string
		info      int32
		obj, file uint64
	}{
		{"LOCATE object 5", locate16(0, 5), "", 0, 5, 1},
		{"SPACE +2 blocks stops past FM", space6(0, 2), "0/00/01", 1, 7, 2},
		{"SPACE -3 blocks stops BOP side of FM 6", space6(0, 0xFFFFFD), "0/00/01", 3, 6, 1},
		{"SPACE -1 block", space6(0, 0xFFFFFF), "", 0, 5, 1},
		{"SPACE +2 filemarks", space6(1, 2), "", 0, 8, 3},
		{"SPACE -2 filemarks (BOP side)", space6(1, 0xFFFFFE), "", 0, 6, 1},
		{"SPACE -5 filemarks hits BOP", space6(1, 0xFFFFFB), "0/00/04", 4, 0, 0},
		{"SPACE +9 blocks into FM", space6(0, 9), "0/00/01", 6, 4, 1},
		{"SPACE +5 filemarks hits EOD", space6(1, 5), "8/00/05", 3, 9, 3},
		{"SPACE -20 blocks from EOD stops at FM 7", space6(0, 0xFFFFEC), "0/00/01", 19, 7, 2},
		{"SPACE EOD", space6(3, 0), "", 0, 9, 3},
		{"LOCATE past EOD", locate16(0, 50), "8/00/05", 0, 9, 3},
		{"LOCATE EOD", locate16(3, 0), "", 0, 9, 3},
		{"LOCATE(10) object 2", []byte{0x2B, 0, 0, 0, 0, 0, 2, 0, 0, 0}, "", 0, 2, 0},
		{"SPACE +1 block at block 2", space6(0, 1), "", 0, 3, 0},
		{"SPACE +2 blocks from FM 3 position", space6(0, 2), "0/00/01", 2, 4, 1},
		{"IBM LOCATE file 1 lands in file 2", locate16(1, 1), "", 0, 7, 2},
		{"IBM LOCATE file 0 lands in file 1", locate16(1, 0), "", 0, 4, 1},
		{"LOCATE file beyond the last", locate16(1, 3), "8/00/05", 0, 9, 3},
		{"SPACE -1 block from EOD", space6(0, 0xFFFFFF), "", 0, 8, 3},
		{"SPACE +3 blocks to EOD", space6(0, 3), "8/00/05", 2, 9, 3},
		{"SPACE(16) -2 filemarks", space16(1, -2), "", 0, 6, 1},
		{"SPACE(16) +1 block over a filemark", space16(0, 1), "0/00/01", 1, 7, 2},
		{"SPACE(16) EOD", space16(3, 0), "", 0, 9, 3},
		{"LOCATE(16) file 2^64-1", locate16(1, 1<<64-1), "8/00/05", 0, 9, 3},
		{"LOCATE(16) file 2^63-1", locate16(1, 1<<63-1), "8/00/05", 0, 9, 3},
		{"LOCATE(16) object 2^63", locate16(0, 1<<63), "8/00/05", 0, 9, 3},
	}
	for _, s := range steps {
		r := run(t, c, s.cdb, nil, 0)
		if r.skey() != s.want {
			t.Fatalf("%s: got %s, want %q", s.name, r.skey(), s.want)
		}
		if s.want != "" && r.info() != s.info {
			t.Fatalf("%s: INFO %d, want %d", s.name, r.info(), s.info)
		}
		if s.want == "0/00/01" && r.sense[2]&0x80 == 0 || s.want == "0/00/04" && r.sense[2]&0x40 == 0 {
			t.Fatalf("%s: flags %02X", s.name, r.sense[2])
		}
		if _, obj, file := longPos(); obj != s.obj || file != s.file {
			t.Fatalf("%s: at obj %d file %d, want %d %d", s.name, obj, file, s.obj, s.file)
		}
	}
	// Extreme SPACE(16) counts (the residual does not fit the 32-bit fixed
	// INFO field; only the outcome and the position are checked).
	for _, x := range []struct {
		cdb  []byte
		want string
		obj  uint64
	}{
		{space16(1, 1<<63-1), "8/00/05", 9},
		{space16(0, -1<<63), "0/00/01", 7},
		{space16(0, 1<<63-1), "0/00/01", 8},
		{space16(1, -1<<63), "0/00/04", 0},
	} {
		if r := run(t, c, x.cdb, nil, 0); r.skey() != x.want {
			t.Fatalf("% X: %s, want %s", x.cdb, r.skey(), x.want)
		}
		if _, obj, _ := longPos(); obj != x.obj {
			t.Fatalf("% X: position %d, want %d", x.cdb, obj, x.obj)
		}
	}
	// Writing in the middle erases everything after it.
	must(t, c, locate16(0, 4), nil, 0)
	must(t, c, write6(10), pattern(10, 9), 0)
	if _, obj, _ := longPos(); obj != 5 {
		t.Fatalf("after overwrite at 4: obj %d", obj)
	}
	expect(t, c, "8/00/05", read6(100, true), nil, 100)
	must(t, c, space6(3, 0), nil, 0)
	if _, obj, file := longPos(); obj != 5 || file != 1 {
		t.Fatalf("EOD after overwrite: obj %d file %d", obj, file)
	}
}

func TestLocateFileHP(t *testing.T) {
	h := newTestLib(t, func(c *Config) { c.DefaultPersonality = "hp" })
	h.load(1, 0)
	c := h.dial("drive0")
	settle(t, c)
	layout(t, c)
	for id, want := range map[uint64]uint64{0: 0, 1: 4, 2: 7, 3: 8} {
		must(t, c, locate16(1, id), nil, 0)
		if pos := position(t, c); pos != want {
			t.Fatalf("HP LOCATE file %d: position %d, want %d", id, pos, want)
		}
	}
}

func TestFixedBlockMode(t *testing.T) {
	h := newTestLib(t, nil)
	h.load(1, 0)
	c := h.dial("drive0")
	settle(t, c)
	expect(t, c, "5/24/00", []byte{0x0A, 1, 0, 0, 2, 0}, make([]byte, 1024), 0) // block length 0
	// MODE SELECT(6): block descriptor with block length 512.
	sel := unhex(t, "00 00 10 08  00 00 00 00 00 00 02 00")
	must(t, c, []byte{0x15, 0x10, 0, 0, byte(len(sel)), 0}, sel, 0)
	r := must(t, c, []byte{0x1A, 0, 0x0F, 0, 0xFF, 0}, nil, 255)
	eqBytes(t, "MODE SENSE(6) 0x0F, fixed 512", r.data, unhex(t, "1B 00 10 08 5A 00 00 00 00 00 02 00 0F 0E C0 80 00 00 00 01 00 00 00 01 00 00 00 00"))
	data := pattern(1536, 7)
	must(t, c, []byte{0x0A, 1, 0, 0, 3, 0}, data, 0)
	must(t, c, wfm(1), nil, 0)
	must(t, c, rewind(), nil, 0)
	r = must(t, c, []byte{0x08, 1, 0, 0, 2, 0}, nil, 1024)
	eqBytes(t, "fixed read 2 blocks", r.data, data[:1024])
	r = expect(t, c, "0/00/01", []byte{0x08, 1, 0, 0, 4, 0}, nil, 2048)
	if r.info() != 3 || len(r.data) != 512 {
		t.Fatalf("fixed read into filemark: info %d, %d bytes", r.info(), len(r.data))
	}
	expect(t, c, "5/24/00", []byte{0x08, 3, 0, 0, 1, 0}, nil, 512) // SILI with FIXED
}

// §11 load sequence and §5.3 not-ready/unit-attention conditions.
func TestLoadSequenceAndUnitAttentions(t *testing.T) {
	h := newTestLib(t, func(c *Config) { c.LoadDelay = 150 * time.Millisecond })
	a := h.dial("drive0")
	expect(t, a, "6/29/00", tur(), nil, 0)
	expect(t, a, "2/3A/00", tur(), nil, 0)
	// INQUIRY does not consume a unit attention.
	b := h.dial("drive0")
	r := must(t, b, []byte{0x12, 0, 0, 0, 96, 0}, nil, 96)
	eqBytes(t, "INQUIRY head", r.data[:8], unhex(t, "01 80 06 02 5B 00 00 00"))
	eqBytes(t, "INQUIRY ids", r.data[8:36], []byte("IBM     ULT3580-TD6     J4D0"))
	expect(t, b, "6/29/00", tur(), nil, 0)

	h.load(1, 0)
	expect(t, a, "6/28/00", tur(), nil, 0)
	expect(t, a, "2/04/01", tur(), nil, 0)
	expect(t, b, "6/28/00", read6(10, true), nil, 10)
	time.Sleep(200 * time.Millisecond)
	must(t, a, tur(), nil, 0)
	must(t, b, tur(), nil, 0)

	// UNLOAD with HOLD: 02/04/02 until LOAD; the other nexus gets 06/28/00.
	must(t, a, []byte{0x1B, 0, 0, 0, 0x08, 0}, nil, 0)
	expect(t, b, "2/04/02", tur(), nil, 0)
	must(t, a, []byte{0x1B, 0, 0, 0, 0x01, 0}, nil, 0)
	expect(t, b, "6/28/00", tur(), nil, 0)
	must(t, b, tur(), nil, 0)
	// PREVENT blocks UNLOAD (05/53/02) and the changer's move.
	must(t, b, []byte{0x1E, 0, 0, 0, 1, 0}, nil, 0)
	expect(t, a, "5/53/02", []byte{0x1B, 0, 0, 0, 0, 0}, nil, 0)
	if err := h.lib.PanelLoad(2, 0); err == nil {
		t.Fatal("panel load into a full drive succeeded")
	}
	if _, err := h.lib.PanelUnload(0); err == nil {
		t.Fatal("panel unload of a prevented drive succeeded")
	}
	must(t, b, []byte{0x1E, 0, 0, 0, 0, 0}, nil, 0)
	// PREVENT belongs to the nexus: it goes away when the connection does.
	p := h.dial("drive0")
	drainUA(t, p)
	must(t, p, []byte{0x1E, 0, 0, 0, 1, 0}, nil, 0)
	expect(t, a, "5/53/02", []byte{0x1B, 0, 0, 0, 0, 0}, nil, 0)
	if n := h.lib.Status().Drives[0].Nexuses; n != 3 {
		t.Fatalf("%d nexuses, want 3", n)
	}
	p.Close()
	for i := 0; h.lib.Status().Drives[0].Nexuses != 2; i++ {
		if i > 100 {
			t.Fatal("closed nexus still attached")
		}
		time.Sleep(10 * time.Millisecond)
	}
	must(t, a, []byte{0x1B, 0, 0, 0, 0, 0}, nil, 0)
	expect(t, b, "2/3A/00", tur(), nil, 0)
	// Unsupported opcode.
	expect(t, a, "5/20/00", []byte{0xC7, 0, 0, 0, 0, 0}, nil, 0)
}

func TestVPDAndModePages(t *testing.T) {
	h := newTestLib(t, nil)
	h.load(1, 0)
	c := h.dial("drive0")
	settle(t, c)
	r := must(t, c, []byte{0x12, 1, 0x00, 0, 255, 0}, nil, 255)
	eqBytes(t, "VPD 00", r.data, unhex(t, "01 00 00 04 00 80 83 B0"))
	r = must(t, c, []byte{0x12, 1, 0x80, 0, 255, 0}, nil, 255)
	eqBytes(t, "VPD 80", r.data, append(unhex(t, "01 80 00 0A"), "TWDRV00000"...))
	r = must(t, c, []byte{0x12, 1, 0x83, 0, 255, 0}, nil, 255)
	id := append(unhex(t, "02 01 00 22"), "IBM     ULT3580-TD6     TWDRV00000"...)
	eqBytes(t, "VPD 83 T10 designator", r.data[4:4+len(id)], id)
	eqBytes(t, "VPD 83 NAA header", r.data[4+len(id):8+len(id)], unhex(t, "01 03 00 08"))
	if r.data[8+len(id)]>>4 != 5 || int(binary.BigEndian.Uint16(r.data[2:4])) != len(r.data)-4 {
		t.Fatalf("VPD 83: % X", r.data)
	}
	r = must(t, c, []byte{0x12, 1, 0xB0, 0, 255, 0}, nil, 255)
	eqBytes(t, "VPD B0", r.data, unhex(t, "01 B0 00 02 00 00"))
	r = must(t, c, []byte{0x05, 0, 0, 0, 0, 0}, nil, 6)
	eqBytes(t, "READ BLOCK LIMITS", r.data, unhex(t, "00 80 00 00 00 01"))
	r = must(t, c, []byte{0x1A, 0, 0x0F, 0, 0xFF, 0}, nil, 255)
	eqBytes(t, "MODE SENSE(6) §11", r.data, unhex(t, "1B 00 10 08 5A 00 00 00 00 00 00 00 0F 0E C0 80 00 00 00 01 00 00 00 01 00 00 00 00"))
	r = must(t, c, []byte{0x5A, 0, 0x10, 0, 0, 0, 0, 0x01, 0x00, 0}, nil, 256)
	eqBytes(t, "MODE SENSE(10) 0x10", r.data, unhex(t, "00 1E 00 10 00 00 00 08 5A 00 00 00 00 00 00 00 10 0E 00 00 00 00 00 64 40 00 18 00 00 00 01 80"))
	r = must(t, c, []byte{0x1A, 0x08, 0x3F, 0, 0xFF, 0}, nil, 255)
	if int(r.data[0]) != len(r.data)-1 || r.data[3] != 0 || len(r.data) != 4+12+16+16 {
		t.Fatalf("MODE SENSE all pages, DBD: % X", r.data)
	}
	expect(t, c, "5/24/00", []byte{0x1A, 0, 0x25, 0, 0xFF, 0}, nil, 255)
	// Page 00h, as Linux st sends it at every open (12 bytes: header and
	// block descriptor): density 5A, block length 0 (variable).
	r = must(t, c, []byte{0x1A, 0, 0x00, 0, 12, 0}, nil, 12)
	eqBytes(t, "MODE SENSE(6) page 00h", r.data, unhex(t, "0B 00 10 08 5A 00 00 00 00 00 00 00"))
	// `mt setblk 512`: MODE SELECT(6) of a header and a block descriptor
	// only; the next open's page 00h reports it, and `setblk 0` undoes it.
	for _, n := range []byte{0x02, 0x00} {
		sel := []byte{0, 0, 0x10, 8, 0, 0, 0, 0, 0, 0, n, 0}
		must(t, c, []byte{0x15, 0x10, 0, 0, byte(len(sel)), 0}, sel, 0)
		r = must(t, c, []byte{0x1A, 0, 0x00, 0, 12, 0}, nil, 12)
		if r.data[10] != n || r.data[11] != 0 {
			t.Fatalf("MODE SENSE(6) page 00h after MODE SELECT of block length %d: % X", int(n)<<8, r.data)
		}
	}
	// MODE SELECT: changing a non-changeable field is refused with a pointer.
	sel := unhex(t, "00 00 10 00  0F 0E C0 80 00 00 00 02 00 00 00 01 00 00 00 00")
	r = expect(t, c, "5/26/00", []byte{0x15, 0x10, 0, 0, byte(len(sel)), 0}, sel, 0)
	if cd, f := r.fieldPtr(); cd || f != 4+7 {
		t.Fatalf("MODE SELECT pointer %v %d", cd, f)
	}
	// DCE off is accepted and reported.
	sel = unhex(t, "00 00 10 00  0F 0E 40 80 00 00 00 01 00 00 00 01 00 00 00 00")
	must(t, c, []byte{0x15, 0x10, 0, 0, byte(len(sel)), 0}, sel, 0)
	r = must(t, c, []byte{0x1A, 0x08, 0x0F, 0, 0xFF, 0}, nil, 255)
	if r.data[6] != 0x40 {
		t.Fatalf("DCE not cleared: % X", r.data)
	}
	// REPORT DENSITY SUPPORT: all (LTO-6 first, LTO-5, LTO-4 read-only),
	// and MEDIA=1 (the loaded medium only).
	r = must(t, c, []byte{0x44, 0, 0, 0, 0, 0, 0, 0x10, 0, 0}, nil, 4096)
	if len(r.data) != 4+3*52 || binary.BigEndian.Uint16(r.data) != 2+3*52 ||
		r.data[4] != 0x5A || r.data[4+2] != 0xA0 || r.data[56] != 0x58 || r.data[108] != 0x46 || r.data[108+2] != 0 {
		t.Fatalf("REPORT DENSITY SUPPORT: % X", r.data[:12])
	}
	eqBytes(t, "density descriptor names", r.data[20:56], []byte("LTO-CVE U-732   Ultrium 6/16T       "))
	r = must(t, c, []byte{0x44, 1, 0, 0, 0, 0, 0, 0x10, 0, 0}, nil, 4096)
	if len(r.data) != 4+52 || r.data[4] != 0x5A {
		t.Fatalf("REPORT DENSITY SUPPORT MEDIA=1: % X", r.data[:8])
	}
	// LOG SENSE: supported pages, TapeAlert empty.
	r = must(t, c, []byte{0x4D, 0, 0x40, 0, 0, 0, 0, 0x10, 0, 0}, nil, 4096)
	eqBytes(t, "LOG SENSE 00", r.data, unhex(t, "00 00 00 03 00 12 2E"))
	r = must(t, c, []byte{0x4D, 0, 0x6E, 0, 0, 0, 0, 0x10, 0, 0}, nil, 4096)
	if len(r.data) != 324 || r.data[3] != 0x40 || r.data[2] != 1 {
		t.Fatalf("TapeAlert page: %d bytes % X", len(r.data), r.data[:8])
	}
	eqBytes(t, "TapeAlert flag 1", r.data[4:9], unhex(t, "00 01 C0 01 00"))
}

// A damaged record shows as 03/11/00 and raises TapeAlert flag 3, which a
// read of page 0x2E reports once and clears.
func TestMediumErrorAndTapeAlert(t *testing.T) {
	h := newTestLib(t, nil)
	h.load(1, 0)
	c := h.dial("drive0")
	settle(t, c)
	must(t, c, write6(100), pattern(100, 1), 0)
	must(t, c, wfm(0), nil, 0)
	d := h.lib.Drive(0)
	off, _ := d.cart.PayloadOffset(0)
	f, err := openRW(d.cart.Path())
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xEE}, off+10)
	f.Close()
	must(t, c, rewind(), nil, 0)
	expect(t, c, "3/11/00", read6(100, true), nil, 100)
	r := must(t, c, []byte{0x4D, 0, 0x52, 0, 0, 0, 0, 0x10, 0, 0}, nil, 4096)
	eqBytes(t, "TapeAlert response page", r.data, unhex(t, "12 00 00 0C 00 00 03 08 30 00 00 00 00 00 00 00"))
	r = must(t, c, []byte{0x4D, 0, 0x6E, 0, 0, 0, 0, 0x10, 0, 0}, nil, 4096)
	if r.data[4+2*5+4] != 1 || r.data[4+3*5+4] != 1 || r.data[4+4] != 0 {
		t.Fatalf("TapeAlert flags 3/4 not set: % X", r.data[:30])
	}
	r = must(t, c, []byte{0x4D, 0, 0x6E, 0, 0, 0, 0, 0x10, 0, 0}, nil, 4096)
	if r.data[4+2*5+4] != 0 {
		t.Fatal("TapeAlert not cleared by reading page 0x2E")
	}
}
