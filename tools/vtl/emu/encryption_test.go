package emu

import (
	"encoding/binary"
	"testing"
)

// §2, §3 and §11: every SPIN page byte for byte.
func TestSPINPages(t *testing.T) {
	h := newTestLib(t, nil)
	c := h.dial("drive0")
	drainUA(t, c)
	pages := []struct {
		name  string
		proto byte
		page  uint16
		want  string
	}{
		{"0x00/0000 supported protocols", 0x00, 0x0000, "00 00 00 00 00 00 00 02 00 20"},
		{"0x20/0000 in support", 0x20, 0x0000, "00 00 00 0E 00 00 00 01 00 10 00 11 00 12 00 20 00 21"},
		{"0x20/0001 out support", 0x20, 0x0001, "00 01 00 02 00 10"},
		{"0x20/0010 DEC, no volume", 0x20, 0x0010, "00 10 00 28 09" + " 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00" +
			" 01 00 00 14 3A 0C 00 20 00 3C 00 20 ED 00 00 00 00 00 00 00 00 01 00 14"},
		{"0x20/0011 key formats", 0x20, 0x0011, "00 11 00 01 00"},
		{"0x20/0012 management caps", 0x20, 0x0012, "00 12 00 0C 01 07 00 07 00 00 00 00 00 00 00 00"},
		{"0x20/0020 DES at power-on", 0x20, 0x0020, "00 20 00 14 00 00 00 00 00 00 00 00 10 00 00 00 00 00 00 00 00 00 00 00"},
	}
	for _, p := range pages {
		r := must(t, c, spin(p.proto, p.page, 8192), nil, 8192)
		eqBytes(t, p.name, r.data, unhex(t, p.want))
		if r.resid != 8192-len(r.data) {
			t.Fatalf("%s: resid %d", p.name, r.resid)
		}
	}
	// NBES with no volume: 02/3A/00.
	expect(t, c, "2/3A/00", spin(0x20, 0x0021, 8192), nil, 8192)
	// §1: a short allocation truncates; PAGE LENGTH still reports the full page.
	r := must(t, c, spin(0x20, 0x0010, 8), nil, 8)
	eqBytes(t, "DEC truncated to 8", r.data, unhex(t, "00 10 00 28 09 00 00 00"))
	r = must(t, c, spin(0x20, 0x0020, 4), nil, 64)
	eqBytes(t, "DES truncated by CDB allocation 4", r.data, unhex(t, "00 20 00 14"))
	if r.resid != 60 {
		t.Fatalf("resid %d, want 60", r.resid)
	}
	// Errors of §1.
	r = expect(t, c, "5/24/00", spin(0x21, 0x0000, 8192), nil, 8192)
	if cd, f := r.fieldPtr(); !cd || f != 1 {
		t.Fatalf("unsupported protocol: field pointer %v %d", cd, f)
	}
	r = expect(t, c, "5/24/00", spin(0x20, 0x0030, 8192), nil, 8192)
	if cd, f := r.fieldPtr(); !cd || f != 2 {
		t.Fatalf("unsupported page: field pointer %v %d", cd, f)
	}
	cdb := spin(0x20, 0x0020, 8192)
	cdb[4] = 0x80
	r = expect(t, c, "5/24/00", cdb, nil, 8192)
	if cd, f := r.fieldPtr(); !cd || f != 4 || r.sense[15] != 0xCF {
		t.Fatalf("INC_512: sense % X", r.sense[:18])
	}

	// With an LTO-6 volume mounted: AVFMV and AVFCLP set (§11 B1/B2).
	h.load(1, 0)
	settle(t, c)
	r = must(t, c, spin(0x20, 0x0010, 8192), nil, 8192)
	eqBytes(t, "DEC, volume mounted", r.data, unhex(t, "00 10 00 28 09 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"+
		" 01 00 00 14 BA 8C 00 20 00 3C 00 20 ED 00 00 00 00 00 00 00 00 01 00 14"))
}

// The HP personality's DEC differs only in RDMC_C (100b: controllable).
func TestSPINDECHP(t *testing.T) {
	h := newTestLib(t, func(c *Config) { c.DefaultPersonality = "hp" })
	c := h.dial("drive0")
	drainUA(t, c)
	r := must(t, c, spin(0x20, 0x0010, 8192), nil, 8192)
	if r.data[32] != 0xE9 {
		t.Fatalf("hp DEC byte 32 = %02X, want E9", r.data[32])
	}
}

// §3.6 and §3.7 examples: DES after "encrypt on, decrypt on" with U-KAD
// "Hello world!", and NBES for plain, decryptable and not-decryptable blocks.
func TestDESAndNBESExamples(t *testing.T) {
	h := newTestLib(t, func(c *Config) { c.DefaultPersonality = "hp" })
	h.load(1, 0)
	c := h.dial("drive0")
	settle(t, c)
	must(t, c, write6(64), pattern(64, 1), 0) // object 0: plain
	// RDMC=10b (raw readable), CEEM=00, SCOPE=ALL, enc on, dec on.
	p := sde(0x40, 0x20, 2, 2, testKey(1), ukad("Hello world!"))
	must(t, c, spoutCDB(len(p)), p, 0)
	must(t, c, write6(64), pattern(64, 2), 0) // object 1: encrypted
	r := must(t, c, spin(0x20, 0x0020, 8192), nil, 8192)
	eqBytes(t, "DES after set", r.data, unhex(t, "00 20 00 24 42 02 02 01 00 00 00 01 18 00 00 00 00 00 00 00 00 00 00 00"+
		" 00 01 00 0C 48 65 6C 6C 6F 20 77 6F 72 6C 64 21"))

	must(t, c, rewind(), nil, 0)
	r = must(t, c, spin(0x20, 0x0021, 8192), nil, 8192)
	eqBytes(t, "NBES plain", r.data, unhex(t, "00 21 00 0C 00 00 00 00 00 00 00 00 03 00 00 00"))
	must(t, c, space6(0, 1), nil, 0)
	r = must(t, c, spin(0x20, 0x0021, 8192), nil, 8192)
	eqBytes(t, "NBES decryptable", r.data, unhex(t, "00 21 00 1C 00 00 00 00 00 00 00 01 05 01 00 00"+
		" 00 01 00 0C 48 65 6C 6C 6F 20 77 6F 72 6C 64 21"))
	// Short allocation: header only, full page length.
	r = must(t, c, spin(0x20, 0x0021, 4), nil, 4)
	eqBytes(t, "NBES header", r.data, unhex(t, "00 21 00 1C"))

	// KAD format 02 (ASCII), then a different key: status 6.
	p = sde(0x40, 0x20, 2, 2, testKey(1), ukad("Hello world!"))
	p[10] = 0x02
	must(t, c, spoutCDB(len(p)), p, 0)
	must(t, c, write6(64), pattern(64, 3), 0) // replaces object 1 (tape semantics)
	setKey(t, c, testKey(9))
	must(t, c, space6(0, -1), nil, 0)
	r = must(t, c, spin(0x20, 0x0021, 8192), nil, 8192)
	eqBytes(t, "NBES status 6", r.data, unhex(t, "00 21 00 1C 00 00 00 00 00 00 00 01 06 01 00 02"+
		" 00 01 00 0C 48 65 6C 6C 6F 20 77 6F 72 6C 64 21"))
	// At a filemark / EOD: status 2.
	must(t, c, space6(3, 0), nil, 0)
	must(t, c, wfm(1), nil, 0)
	r = must(t, c, spin(0x20, 0x0021, 8192), nil, 8192)
	eqBytes(t, "NBES at EOD", r.data, unhex(t, "00 21 00 0C 00 00 00 00 00 00 00 03 02 00 00 00"))
	r = expect(t, c, "0/00/01", space6(0, -1), nil, 0) // stops on the BOP side of the filemark
	r = must(t, c, readPosLong(), nil, 32)
	if binary.BigEndian.Uint64(r.data[8:16]) != 2 {
		t.Fatalf("position after SPACE -1 over a filemark: % X", r.data)
	}
}

// §4.3: each SPOUT rejection with its sense and field pointer.
func TestSPOUTChecklist(t *testing.T) {
	h := newTestLib(t, nil)
	c := h.dial("drive0")
	drainUA(t, c)
	key := testKey(1)
	type tc struct {
		name  string
		cdb   func() []byte
		param func() []byte
		want  string
		cd    bool
		field int
	}
	base := func() []byte { return sde(0x40, 0x00, 2, 3, key) }
	mod := func(f func(p []byte)) func() []byte {
		return func() []byte { p := base(); f(p); return p }
	}
	cases := []tc{
		{"1 protocol", func() []byte { b := spoutCDB(52); b[1] = 0x21; return b }, base, "5/24/00", true, 1},
		{"1 page", func() []byte { b := spoutCDB(52); b[3] = 0x11; return b }, base, "5/24/00", true, 2},
		{"2 transfer length < 20", func() []byte { return spoutCDB(16) }, func() []byte { return base()[:16] }, "5/1A/00", false, -1},
		{"2 transfer length != 4+page length", func() []byte { return spoutCDB(52) },
			mod(func(p []byte) { binary.BigEndian.PutUint16(p[2:], 0x40) }), "5/1A/00", false, -1},
		{"3 page code", nil, mod(func(p []byte) { p[1] = 0x11 }), "5/26/00", false, 0},
		{"4 reserved scope", nil, mod(func(p []byte) { p[4] = 0x60 }), "5/26/00", false, 4},
		{"5 encryption mode 3", nil, mod(func(p []byte) { p[6] = 3 }), "5/26/00", false, 6},
		{"5 EXTERNAL without M-KAD", nil, mod(func(p []byte) { p[6] = 1 }), "5/26/00", false, 6},
		{"5 decryption mode 4", nil, mod(func(p []byte) { p[7] = 4 }), "5/26/00", false, 7},
		{"5 RDMC reserved 01b", nil, mod(func(p []byte) { p[5] = 0x10 }), "5/26/00", false, 5},
		{"5 RDMC on a drive where it is not controllable", nil, mod(func(p []byte) { p[5] = 0x20 }), "5/26/00", false, 5},
		{"6 algorithm index", nil, mod(func(p []byte) { p[8] = 2 }), "5/26/00", false, 8},
		{"7 key format", nil, mod(func(p []byte) { p[9] = 1 }), "5/26/00", false, 9},
		{"8 key required, length 0", func() []byte { return spoutCDB(20) },
			func() []byte { return sde(0x40, 0, 2, 3, nil) }, "5/26/00", false, 18},
		{"8 key length 16", func() []byte { return spoutCDB(36) },
			func() []byte { return sde(0x40, 0, 2, 3, key[:16]) }, "5/26/00", false, 18},
		{"9 U-KAD too long", func() []byte { return spoutCDB(52 + 4 + 33) },
			func() []byte { return sde(0x40, 0, 2, 3, key, ukad(string(make([]byte, 33)))) }, "5/26/00", false, 54},
		{"9 A-KAD too long", func() []byte { return spoutCDB(52 + 4 + 61) },
			func() []byte {
				return sde(0x40, 0, 2, 3, key, append([]byte{0x01, 0x00, 0x00, 61}, make([]byte, 61)...))
			}, "5/26/00", false, 54},
		{"9 nonce KAD (NONCE_C=01: device generates)", func() []byte { return spoutCDB(52 + 16) },
			func() []byte {
				return sde(0x40, 0, 2, 3, key, append([]byte{0x02, 0x00, 0x00, 12}, make([]byte, 12)...))
			},
			"5/26/00", false, 52},
		{"11 CKOD with no volume", nil, mod(func(p []byte) { p[5] = 0x04 }), "5/26/00", false, 5},
	}
	kic := uint32(0)
	for _, x := range cases {
		p := x.param()
		cdb := spoutCDB(len(p))
		if x.cdb != nil {
			cdb = x.cdb()
		}
		r := expect(t, c, x.want, cdb, p, 0)
		cd, f := r.fieldPtr()
		if f != x.field || (f >= 0 && cd != x.cd) {
			t.Errorf("%s: field pointer cd=%v %d, want cd=%v %d (sense % X)", x.name, cd, f, x.cd, x.field, r.sense[:18])
		}
	}
	// Nothing was accepted: KIC still 0, parameters still off.
	r := must(t, c, spin(0x20, 0x20, 64), nil, 64)
	if got := binary.BigEndian.Uint32(r.data[8:12]); got != kic || r.data[5] != 0 || r.data[6] != 0 {
		t.Fatalf("after rejected SPOUTs: DES % X", r.data)
	}
}

// §4.4: KIC, scopes, unit attentions, both clear forms, CKOD, LOCAL, power cycle.
func TestKeyStateMachine(t *testing.T) {
	h := newTestLib(t, nil)
	h.load(1, 0)
	a := h.dial("drive0")
	b := h.dial("drive0")
	settle(t, a)
	settle(t, b)
	kicOf := func(r res) uint32 { return binary.BigEndian.Uint32(r.data[8:12]) }

	// SCOPE=ALL from a: b gets 06/2A/11 once, then sees the key.
	setKey(t, a, testKey(1))
	expect(t, b, "6/2A/11", tur(), nil, 0)
	r := must(t, b, spin(0x20, 0x20, 64), nil, 64)
	if r.data[4] != 0x42 || r.data[5] != 2 || r.data[6] != 3 || r.data[7] != 1 || kicOf(r) != 1 {
		t.Fatalf("DES on the other nexus: % X", r.data)
	}
	must(t, a, tur(), nil, 0) // no UA for the nexus that set it

	// Clear, proxmox form (key length 0): KIC bumps, modes off.
	clr := sde(0x40, 0, 0, 0, nil)
	must(t, a, spoutCDB(len(clr)), clr, 0)
	expect(t, b, "6/2A/11", tur(), nil, 0)
	r = must(t, a, spin(0x20, 0x20, 64), nil, 64)
	if r.data[5] != 0 || r.data[6] != 0 || r.data[7] != 0 || kicOf(r) != 2 {
		t.Fatalf("DES after clear: % X", r.data)
	}
	// Clear, bareos form (32 zero bytes, both modes disabled).
	bclr := sde(0x40, 0, 0, 0, make([]byte, 32))
	must(t, a, spoutCDB(len(bclr)), bclr, 0)
	r = must(t, a, spin(0x20, 0x20, 64), nil, 64)
	if r.data[5] != 0 || r.data[6] != 0 || kicOf(r) != 3 {
		t.Fatalf("DES after bareos clear: % X", r.data)
	}
	expect(t, b, "6/2A/11", tur(), nil, 0)
	// Encrypted writes are refused? No: with modes off, writes are plain.
	must(t, a, write6(10), pattern(10, 1), 0)
	if h.lib.Drive(0).cart.EncryptedBlocks() != 0 {
		t.Fatal("cleared key still encrypts")
	}

	// SCOPE=LOCAL on b: a is not affected (no UA, still off) and the key
	// goes away with b's connection.
	loc := sde(0x20, 0, 2, 3, testKey(5))
	must(t, b, spoutCDB(len(loc)), loc, 0)
	must(t, a, tur(), nil, 0)
	r = must(t, b, spin(0x20, 0x20, 64), nil, 64)
	if r.data[4] != 0x21 || r.data[5] != 2 || kicOf(r) != 4 {
		t.Fatalf("DES local: % X", r.data)
	}
	r = must(t, a, spin(0x20, 0x20, 64), nil, 64)
	if r.data[5] != 0 || kicOf(r) != 4 {
		t.Fatalf("DES of the other nexus after a LOCAL set: % X", r.data)
	}
	if st := h.lib.Status().Drives[0]; st.LocalKeys != 1 || st.KeyLoaded {
		t.Fatalf("status with a LOCAL key: %+v", st)
	}
	must(t, b, write6(10), pattern(10, 2), 0)
	if h.lib.Drive(0).cart.EncryptedBlocks() != 1 {
		t.Fatal("LOCAL key did not encrypt")
	}
	b.Close()
	b = h.dial("drive0")
	drainUA(t, b)
	r = must(t, b, spin(0x20, 0x20, 64), nil, 64)
	if r.data[5] != 0 || r.data[6] != 0 {
		t.Fatalf("LOCAL key survived nexus loss: % X", r.data)
	}

	// CKOD: cleared at unload; the other nexus sees 06/2A/12.
	ck := sde(0x40, 0x04, 2, 3, testKey(7))
	must(t, a, spoutCDB(len(ck)), ck, 0)
	expect(t, b, "6/2A/11", tur(), nil, 0)
	must(t, a, []byte{0x1B, 0, 0, 0, 0, 0}, nil, 0) // UNLOAD
	expect(t, b, "6/2A/12", tur(), nil, 0)
	expect(t, b, "2/3A/00", tur(), nil, 0)
	r = must(t, a, spin(0x20, 0x20, 64), nil, 64)
	if r.data[5] != 0 || r.data[6] != 0 || kicOf(r) != 6 {
		t.Fatalf("CKOD key not cleared at unload: % X", r.data)
	}
	// Without CKOD the key survives unload/load.
	must(t, a, []byte{0x1B, 0, 0, 0, 1, 0}, nil, 0) // LOAD
	expect(t, b, "6/28/00", tur(), nil, 0)
	setKey(t, a, testKey(8))
	must(t, a, []byte{0x1B, 0, 0, 0, 0, 0}, nil, 0)
	must(t, a, []byte{0x1B, 0, 0, 0, 1, 0}, nil, 0)
	r = must(t, a, spin(0x20, 0x20, 64), nil, 64)
	if r.data[5] != 2 || r.data[6] != 3 {
		t.Fatalf("key without CKOD lost at unload: % X", r.data)
	}

	// SCOPE=PUBLIC: the nexus goes back to the public parameters.
	drainUA(t, b)
	must(t, b, spoutCDB(len(loc)), loc, 0)
	pub := sde(0x00, 0, 0, 0, nil)
	drainUA(t, b)
	must(t, b, spoutCDB(len(pub)), pub, 0)
	r = must(t, b, spin(0x20, 0x20, 64), nil, 64)
	if r.data[5] != 2 || r.data[6] != 3 || r.data[4] != 0x42 {
		t.Fatalf("SCOPE=PUBLIC did not return to the public parameters: % X", r.data)
	}

	// Power cycle: 06/29/00, no key, KIC back to 0.
	h.restart()
	a = h.dial("drive0")
	expect(t, a, "6/29/00", tur(), nil, 0)
	must(t, a, tur(), nil, 0) // the cartridge is still in the drive
	r = must(t, a, spin(0x20, 0x20, 64), nil, 64)
	eqBytes(t, "DES after power cycle", r.data[:24], unhex(t, "00 20 00 14 00 00 00 00 00 00 00 00 18 00 00 00 00 00 00 00 00 00 00 00"))
}

func TestNoAMEAndLying(t *testing.T) {
	h := newTestLib(t, func(c *Config) { c.Personalities = map[int]string{0: "no-ame", 1: "lying"} })
	h.load(1, 0)
	h.load(2, 1)
	na := h.dial("drive0")
	settle(t, na)
	expect(t, na, "5/20/00", spin(0x20, 0x10, 8192), nil, 8192)
	p := sde(0x40, 0, 2, 3, testKey(1))
	expect(t, na, "5/20/00", spoutCDB(len(p)), p, 0)
	must(t, na, write6(10), pattern(10, 1), 0) // plain I/O works

	ly := h.dial("drive1")
	settle(t, ly)
	setKey(t, ly, testKey(1))
	r := must(t, ly, spin(0x20, 0x20, 64), nil, 64)
	if r.data[5] != 2 || r.data[6] != 3 {
		t.Fatalf("lying drive DES: % X", r.data)
	}
	must(t, ly, write6(10), pattern(10, 2), 0)
	must(t, ly, rewind(), nil, 0)
	r = must(t, ly, spin(0x20, 0x21, 64), nil, 64)
	if r.data[12]&0x0F != 3 {
		t.Fatalf("lying drive NBES status %d, want 3 (not encrypted)", r.data[12]&0x0F)
	}
	// DECRYPT mode exposes it too: 07/74/02.
	d := sde(0x40, 0, 2, 2, testKey(1))
	must(t, ly, spoutCDB(len(d)), d, 0)
	expect(t, ly, "7/74/02", read6(10, true), nil, 10)
}

// LOCK=1: once another nexus changes the parameters (KIC moves), the
// locking nexus's WRITE gets 07/2A/13 until it re-issues SPOUT.
func TestLockKICChanged(t *testing.T) {
	h := newTestLib(t, nil)
	h.load(1, 0)
	a := h.dial("drive0")
	b := h.dial("drive0")
	settle(t, a)
	settle(t, b)
	p := sde(0x41, 0, 2, 3, testKey(1))
	must(t, a, spoutCDB(len(p)), p, 0)
	must(t, a, write6(10), pattern(10, 1), 0)
	drainUA(t, b)
	setKey(t, b, testKey(2))
	expect(t, a, "6/2A/11", tur(), nil, 0)
	expect(t, a, "7/2A/13", write6(10), pattern(10, 2), 0)
	must(t, b, write6(10), pattern(10, 3), 0) // b never locked
	must(t, a, spoutCDB(len(p)), p, 0)
	must(t, a, write6(10), pattern(10, 4), 0)
}
