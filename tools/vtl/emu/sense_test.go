package emu

import (
	"testing"
)

// §5.3 byte-exact examples. The hp personality sends 18-byte fixed sense
// (additional length 0x0A), exactly as the reference's examples; the ibm
// personality sends 36 bytes and must agree in bytes 0..17 except the
// additional length (0x1C).
func TestSenseExamples53(t *testing.T) {
	for _, pers := range []string{"hp", "ibm"} {
		t.Run(pers, func(t *testing.T) {
			h := newTestLib(t, func(c *Config) { c.DefaultPersonality = pers; c.Capacity = 4 << 20 })
			wantLen := map[string]int{"hp": 18, "ibm": 36}[pers]
			check := func(name string, r res, example string) {
				t.Helper()
				want := unhex(t, example)
				if len(r.sense) != wantLen {
					t.Fatalf("%s: sense length %d, want %d", name, len(r.sense), wantLen)
				}
				if pers == "ibm" {
					want[7] = 0x1C
					for _, b := range r.sense[18:] {
						if b != 0 {
							t.Fatalf("%s: vendor bytes % X", name, r.sense[18:])
						}
					}
				}
				eqBytes(t, name, r.sense[:18], want)
			}
			c := h.dial("drive0")
			drainUA(t, c)
			check("no medium", expect(t, c, "2/3A/00", tur(), nil, 0),
				"70 00 02 00 00 00 00 0A 00 00 00 00 3A 00 00 00 00 00")
			check("invalid field in CDB, byte 2", expect(t, c, "5/24/00", []byte{0x12, 0, 0x80, 0, 0x60, 0}, nil, 96),
				"70 00 05 00 00 00 00 0A 00 00 00 00 24 00 00 C0 00 02")
			p := sde(0x40, 0, 2, 3, testKey(1))
			p[8] = 2 // algorithm index not in DEC
			check("invalid field in param list, byte 8", expect(t, c, "5/26/00", spoutCDB(len(p)), p, 0),
				"70 00 05 00 00 00 00 0A 00 00 00 00 26 00 00 80 00 08")

			h.load(1, 0)
			settle(t, c)
			must(t, c, write6(1000), pattern(1000, 1), 0)
			must(t, c, write6(1024), pattern(1024, 2), 0)
			must(t, c, wfm(1), nil, 0)
			must(t, c, rewind(), nil, 0)
			r := expect(t, c, "0/00/00", read6(65536, false), nil, 65536)
			check("short block", r, "F0 00 20 00 00 FC 18 0A 00 00 00 00 00 00 00 00 00 00")
			if len(r.data) != 1000 || r.resid != 64536 {
				t.Fatalf("short block: %d bytes, resid %d", len(r.data), r.resid)
			}
			r = expect(t, c, "0/00/00", read6(512, false), nil, 512)
			check("long block", r, "F0 00 20 FF FF FE 00 0A 00 00 00 00 00 00 00 00 00 00")
			eqBytes(t, "long block data", r.data, pattern(1024, 2)[:512])
			r = expect(t, c, "0/00/01", read6(65536, true), nil, 65536)
			check("filemark", r, "F0 00 80 00 01 00 00 0A 00 00 00 00 00 01 00 00 00 00")
			if len(r.data) != 0 {
				t.Fatalf("filemark transferred %d bytes", len(r.data))
			}
			check("EOD", expect(t, c, "8/00/05", read6(65536, true), nil, 65536),
				"F0 00 08 00 01 00 00 0A 00 00 00 00 00 05 00 00 00 00")

			// Wrong key: encrypted block, then a different key.
			setKey(t, c, testKey(1))
			must(t, c, write6(100), pattern(100, 3), 0)
			setKey(t, c, testKey(2))
			must(t, c, space6(0, -1), nil, 0)
			check("wrong key", expect(t, c, "7/74/03", read6(100, true), nil, 100),
				"70 00 07 00 00 00 00 0A 00 00 00 00 74 03 00 00 00 00")

			// Early warning, then volume overflow (capacity 4 MiB, EW zone
			// 128 KiB).
			blk := pattern(65536, 4)
			ew := false
			for range 100 {
				r := run(t, c, write6(len(blk)), blk, 0)
				if r.status == 0 {
					continue
				}
				if r.skey() == "0/00/02" {
					if !ew {
						check("early warning", r, "F0 00 40 00 00 00 00 0A 00 00 00 00 00 02 00 00 00 00")
						ew = true
					}
					continue
				}
				if !ew {
					t.Fatalf("overflow before early warning: %s", r.skey())
				}
				check("volume overflow", r, "F0 00 4D 00 01 00 00 0A 00 00 00 00 00 02 00 00 00 00")
				if r.resid != 65536 {
					t.Fatalf("overflow resid %d", r.resid)
				}
				return
			}
			t.Fatal("never reached volume overflow")
		})
	}
}

// Descriptor format: MODE SELECT D_SENSE=1 and REQUEST SENSE DESC=1.
func TestSenseDescriptor(t *testing.T) {
	h := newTestLib(t, nil)
	h.load(1, 0)
	c := h.dial("drive0")
	settle(t, c)
	must(t, c, wfm(1), nil, 0)
	must(t, c, rewind(), nil, 0)
	// MODE SELECT(6) with the Control page, D_SENSE=1.
	sel := unhex(t, "00 00 10 00  0A 0A 04 00 00 00 00 00 00 00 00 00")
	must(t, c, []byte{0x15, 0x10, 0, 0, byte(len(sel)), 0}, sel, 0)
	r := expect(t, c, "0/00/01", read6(65536, true), nil, 65536)
	eqBytes(t, "descriptor filemark", r.sense,
		unhex(t, "72 00 00 01 00 00 00 10  00 0A 80 00 00 00 00 00 00 01 00 00  04 02 00 80"))
	// Field pointer in descriptor form.
	r = expect(t, c, "5/24/00", []byte{0x12, 0, 0x80, 0, 0x60, 0}, nil, 96)
	eqBytes(t, "descriptor invalid field", r.sense, unhex(t, "72 05 24 00 00 00 00 08  02 06 00 00 C0 00 02 00"))

	// A second nexus sees the mode change as 06/2A/01, and REQUEST SENSE
	// with DESC=1 returns it in descriptor form and clears it.
	c2 := h.dial("drive0")
	if ua := drainUA(t, c2); len(ua) != 1 || ua[0] != "6/29/00" {
		t.Fatalf("new nexus UAs %v", ua)
	}
	sel[6] = 0 // D_SENSE back to 0 from nexus 2
	must(t, c2, []byte{0x15, 0x10, 0, 0, byte(len(sel)), 0}, sel, 0)
	r = must(t, c, []byte{0x03, 0x01, 0, 0, 252, 0}, nil, 252)
	eqBytes(t, "REQUEST SENSE DESC=1 (UA)", r.data, unhex(t, "72 06 2A 01 00 00 00 00"))
	r = must(t, c, []byte{0x03, 0x00, 0, 0, 252, 0}, nil, 252)
	eqBytes(t, "REQUEST SENSE after the UA", r.data[:14], unhex(t, "70 00 00 00 00 00 00 1C 00 00 00 00 00 00"))
}

// The early-warning point and the capacity, exactly: a 4 MiB cartridge has
// a 128 KiB early-warning zone (capacity/32); each 64 KiB block takes
// 65536 + 52 bytes. Writes 1..61 are GOOD, 62 and 63 report 00/00/02 (data
// written), 64 overflows (not written). WRITE FILEMARKS in the zone also
// reports early warning, and READ POSITION shows BPEW.
func TestEarlyWarningPoint(t *testing.T) {
	h := newTestLib(t, func(c *Config) { c.Capacity = 4 << 20 })
	h.load(1, 0)
	c := h.dial("drive0")
	settle(t, c)
	blk := pattern(65536, 1)
	for i := 1; i <= 64; i++ {
		r := run(t, c, write6(len(blk)), blk, 0)
		want := ""
		switch {
		case i == 64:
			want = "D/00/02"
		case i >= 62:
			want = "0/00/02"
		}
		if r.skey() != want {
			t.Fatalf("write %d: %q, want %q", i, r.skey(), want)
		}
		if i == 61 {
			r := must(t, c, readPosLong(), nil, 32)
			if r.data[0]&1 != 0 {
				t.Fatal("BPEW before the early-warning point")
			}
		}
	}
	if pos := position(t, c); pos != 63 {
		t.Fatalf("position %d after overflow, want 63", pos)
	}
	r := must(t, c, readPosLong(), nil, 32)
	if r.data[0]&1 == 0 {
		t.Fatal("BPEW not set past early warning")
	}
	expect(t, c, "0/00/02", wfm(1), nil, 0)
	// Reading to EOD past early warning sets EOM with the blank check.
	r = expect(t, c, "8/00/05", read6(10, true), nil, 10)
	if r.sense[2]&0x40 == 0 {
		t.Fatal("EOD past early warning without EOM")
	}
}
