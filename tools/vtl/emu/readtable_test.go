package emu

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"hash/crc32"
	"os"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
	"github.com/tapeward/tapeward/tools/vtl/cart"
)

func position(t testing.TB, c *vtlwire.Client) uint64 {
	t.Helper()
	r := must(t, c, readPosLong(), nil, 32)
	return binary.BigEndian.Uint64(r.data[8:16])
}

// tamper flips one ciphertext byte of block obj and fixes the record's
// payload CRC, so only the GCM tag can notice.
func tamper(t *testing.T, h *testLib, drive int, obj int64) {
	t.Helper()
	d := h.lib.Drive(drive)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.cart.Flush(); err != nil {
		t.Fatal(err)
	}
	off, n := d.cart.PayloadOffset(obj)
	f, err := os.OpenFile(d.cart.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := make([]byte, n)
	if _, err := f.ReadAt(p, off); err != nil {
		t.Fatal(err)
	}
	p[n/2] ^= 0x40
	var tr [4]byte
	binary.BigEndian.PutUint32(tr[:], crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli)))
	if _, err := f.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(tr[:], off+int64(n)); err != nil {
		t.Fatal(err)
	}
}

// §4.5 READ outcomes, every cell of the table.
func TestDecryptionModeReadTable(t *testing.T) {
	h := newTestLib(t, nil) // ibm: blocks are never raw-readable (RDMC_C 110b)
	h.load(1, 0)
	c := h.dial("drive0")
	settle(t, c)
	k1, k2 := testKey(1), testKey(2)
	plain, secret, tampered := pattern(300, 1), pattern(400, 2), pattern(500, 3)
	must(t, c, write6(len(plain)), plain, 0) // object 0: unencrypted
	setKey(t, c, k1)
	must(t, c, write6(len(secret)), secret, 0)     // object 1: encrypted, k1
	must(t, c, write6(len(tampered)), tampered, 0) // object 2: encrypted, k1, tag broken below
	must(t, c, wfm(0), nil, 0)
	tamper(t, h, 0, 2)

	modes := []struct {
		name string
		dec  byte
		key  []byte
	}{
		{"DISABLE", 0, nil}, {"RAW", 1, nil},
		{"DECRYPT/right key", 2, k1}, {"MIXED/right key", 3, k1},
		{"DECRYPT/wrong key", 2, k2}, {"MIXED/wrong key", 3, k2},
		{"DISABLE/wrong key loaded", 0, k2},
	}
	// want[mode][object]: "" = data, else K/AA/QQ
	want := map[string][3]string{
		"DISABLE":                  {"", "7/74/01", "7/74/01"},
		"RAW":                      {"", "7/74/0A", "7/74/0A"},
		"DECRYPT/right key":        {"7/74/02", "", "7/74/04"},
		"MIXED/right key":          {"", "", "7/74/04"},
		"DECRYPT/wrong key":        {"7/74/02", "7/74/03", "7/74/03"},
		"MIXED/wrong key":          {"", "7/74/03", "7/74/03"},
		"DISABLE/wrong key loaded": {"", "7/74/01", "7/74/01"},
	}
	data := [][]byte{plain, secret, tampered}
	for _, m := range modes {
		var p []byte
		if m.dec == 0 && m.key != nil {
			// Encryption on (needs the key) but decryption disabled.
			p = sde(0x40, 0, 2, 0, m.key)
		} else {
			p = sde(0x40, 0, 0, m.dec, m.key)
		}
		must(t, c, spoutCDB(len(p)), p, 0)
		for obj := range 3 {
			must(t, c, locate16(0, uint64(obj)), nil, 0)
			w := want[m.name][obj]
			r := run(t, c, read6(4096, true), nil, 4096)
			if w == "" {
				if r.status != 0 || !bytes.Equal(r.data, data[obj]) {
					t.Errorf("%s, object %d: %v (%s), want data", m.name, obj, r, r.skey())
				}
				if pos := position(t, c); pos != uint64(obj+1) {
					t.Errorf("%s, object %d: position %d after read", m.name, obj, pos)
				}
				continue
			}
			if r.skey() != w || len(r.data) != 0 {
				t.Errorf("%s, object %d: %v (%s), want %s", m.name, obj, r, r.skey(), w)
			}
			if pos := position(t, c); pos != uint64(obj) {
				t.Errorf("%s, object %d: position %d after %s, want unchanged", m.name, obj, pos, w)
			}
		}
	}
	// CEEM=11b: error if the block was written in ENCRYPT mode → 74/09.
	p := sde(0x40, 0xC0, 0, 3, k1)
	must(t, c, spoutCDB(len(p)), p, 0)
	must(t, c, locate16(0, 1), nil, 0)
	expect(t, c, "7/74/09", read6(4096, true), nil, 4096)
}

// RAW on a drive where RDMC is controllable: raw-readable blocks come back
// as nonce ‖ ciphertext ‖ tag, others fail with the HP code 74/00.
func TestRawRead(t *testing.T) {
	h := newTestLib(t, func(c *Config) { c.DefaultPersonality = "hp" })
	h.load(1, 0)
	c := h.dial("drive0")
	settle(t, c)
	k := testKey(3)
	secret := pattern(1000, 5)
	p := sde(0x40, 0x20, 2, 3, k) // RDMC=10b: mark raw-readable
	must(t, c, spoutCDB(len(p)), p, 0)
	must(t, c, write6(len(secret)), secret, 0)
	setKey(t, c, k) // RDMC=00b: default, not raw-readable on this drive
	must(t, c, write6(len(secret)), secret, 0)
	raw := sde(0x40, 0, 0, 1, nil)
	must(t, c, spoutCDB(len(raw)), raw, 0)
	must(t, c, rewind(), nil, 0)
	r := must(t, c, read6(4096, true), nil, 4096)
	if len(r.data) != 12+len(secret)+16 {
		t.Fatalf("raw block length %d", len(r.data))
	}
	if bytes.Contains(r.data, secret[:64]) {
		t.Fatal("raw read returned plaintext")
	}
	blk, _ := aes.NewCipher(k)
	g, _ := cipher.NewGCM(blk)
	got, err := g.Open(nil, r.data[:12], r.data[12:], nil)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("raw data does not decrypt to the plaintext: %v", err)
	}
	expect(t, c, "7/74/00", read6(4096, true), nil, 4096)
}

// SkipOnCryptoError: the failing block is consumed.
func TestSkipOnCryptoError(t *testing.T) {
	h := newTestLib(t, func(c *Config) { c.SkipOnCryptoError = true })
	h.load(1, 0)
	c := h.dial("drive0")
	settle(t, c)
	setKey(t, c, testKey(1))
	must(t, c, write6(10), pattern(10, 1), 0)
	setKey(t, c, testKey(2))
	must(t, c, rewind(), nil, 0)
	expect(t, c, "7/74/03", read6(10, true), nil, 10)
	if pos := position(t, c); pos != 1 {
		t.Fatalf("position %d, want 1", pos)
	}
}

// proxmox/Tapeward layout: clear label, filemark, encrypted data, all read
// back in MIXED mode; NBES tells the blocks apart.
func TestClearLabelThenEncrypted(t *testing.T) {
	h := newTestLib(t, nil)
	h.load(1, 0)
	c := h.dial("drive0")
	settle(t, c)
	label := []byte("TAPEWARD LABEL v1 ................................................")
	must(t, c, write6(len(label)), label, 0)
	must(t, c, wfm(1), nil, 0)
	setKey(t, c, testKey(4))
	var blocks [][]byte
	for i := range 5 {
		b := pattern(32768+i, byte(10+i))
		blocks = append(blocks, b)
		must(t, c, write6(len(b)), b, 0)
	}
	must(t, c, wfm(1), nil, 0)
	must(t, c, rewind(), nil, 0)
	r := must(t, c, spin(0x20, 0x21, 64), nil, 64)
	if r.data[12] != 3 {
		t.Fatalf("label NBES status %d", r.data[12])
	}
	r = must(t, c, read6(65536, true), nil, 65536)
	eqBytes(t, "label", r.data, label)
	expect(t, c, "0/00/01", read6(65536, true), nil, 65536)
	r = must(t, c, spin(0x20, 0x21, 64), nil, 64)
	if r.data[12] != 5 {
		t.Fatalf("data NBES status %d", r.data[12])
	}
	for i, b := range blocks {
		r := must(t, c, read6(65536, true), nil, 65536)
		if !bytes.Equal(r.data, b) {
			t.Fatalf("block %d", i)
		}
	}
	expect(t, c, "0/00/01", read6(65536, true), nil, 65536)
	expect(t, c, "8/00/05", read6(65536, true), nil, 65536)
}

// Key material never reaches the cartridge file; plaintext written without
// a key does.
func TestCartridgeHoldsNoPlaintextOrKey(t *testing.T) {
	h := newTestLib(t, nil)
	h.load(1, 0)
	h.load(2, 1)
	enc := h.dial("drive0")
	clr := h.dial("drive1")
	settle(t, enc)
	settle(t, clr)
	secret := []byte("TOP-SECRET-PAYROLL-2026: alice=100000 bob=90000 carol=120000 ")
	secret = bytes.Repeat(secret, 20)
	key := testKey(42)
	setKey(t, enc, key)
	must(t, enc, write6(len(secret)), secret, 0)
	must(t, enc, wfm(1), nil, 0)
	must(t, clr, write6(len(secret)), secret, 0)
	must(t, clr, wfm(1), nil, 0)
	// The same block twice under the same key: different nonces and
	// ciphertexts.
	must(t, enc, write6(len(secret)), secret, 0)
	must(t, enc, wfm(0), nil, 0)
	{
		d := h.lib.Drive(0)
		d.mu.Lock()
		var b1, b2 []byte
		var m1, m2 cart.Meta
		p1, err1 := d.cart.ReadBlock(0, &b1, &m1)
		p2, err2 := d.cart.ReadBlock(2, &b2, &m2)
		d.mu.Unlock()
		if err1 != nil || err2 != nil || m1.Nonce == m2.Nonce || bytes.Equal(p1, p2) || m1.Fingerprint != m2.Fingerprint {
			t.Fatalf("two encryptions of one block: %v %v nonces %x %x", err1, err2, m1.Nonce, m2.Nonce)
		}
	}
	encFile, _ := os.ReadFile(h.lib.cartPath(Barcode(1)))
	clrFile, _ := os.ReadFile(h.lib.cartPath(Barcode(2)))
	if bytes.Contains(encFile, secret[:32]) {
		t.Fatal("plaintext found in the cartridge written with a key")
	}
	if bytes.Contains(encFile, key) || bytes.Contains(encFile, key[:16]) {
		t.Fatal("key bytes found in the cartridge file")
	}
	if !bytes.Contains(clrFile, secret[:32]) {
		t.Fatal("plaintext written without a key not found in its cartridge (test would be vacuous)")
	}
	// The status shows the fingerprint, never the key.
	st := h.lib.Status()
	if !st.Drives[0].KeyLoaded || len(st.Drives[0].Fingerprint) != 16 || st.Drives[0].KIC != 1 || st.Drives[1].KeyLoaded {
		t.Fatalf("status: %+v", st.Drives)
	}
}

// A cartridge whose file header is damaged loads as "corrupt": media
// commands answer 03/31/00 and the changer can still take it out. A torn
// tail (crash mid-append) is cut off at load and the data before it reads.
func TestDamagedCartridgeFiles(t *testing.T) {
	h := newTestLib(t, nil)
	p1 := h.lib.cartPath(Barcode(1))
	b, _ := os.ReadFile(p1)
	b[3] ^= 0xFF
	os.WriteFile(p1, b, 0o644)
	h.load(1, 0)
	c := h.dial("drive0")
	drainUA(t, c)
	expect(t, c, "3/31/00", tur(), nil, 0)
	expect(t, c, "3/31/00", read6(10, true), nil, 10)
	if _, err := h.lib.PanelUnload(0); err != nil {
		t.Fatal(err)
	}

	h.load(2, 1)
	d := h.dial("drive1")
	settle(t, d)
	must(t, d, write6(1000), pattern(1000, 1), 0)
	must(t, d, write6(1000), pattern(1000, 2), 0)
	if _, err := h.lib.PanelUnload(1); err != nil {
		t.Fatal(err)
	}
	p2 := h.lib.cartPath(Barcode(2))
	f, _ := openRW(p2)
	st, _ := f.Stat()
	f.Truncate(st.Size() - 300) // the second block was torn by a crash
	f.Close()
	h.load(2, 1)
	settle(t, d)
	r := must(t, d, read6(1000, true), nil, 1000)
	eqBytes(t, "block before the torn tail", r.data, pattern(1000, 1))
	expect(t, d, "8/00/05", read6(1000, true), nil, 1000)
	must(t, d, write6(500), pattern(500, 3), 0) // appending after the repair works
	must(t, d, rewind(), nil, 0)
	must(t, d, space6(0, 1), nil, 0)
	r = must(t, d, read6(500, true), nil, 500)
	eqBytes(t, "appended after repair", r.data, pattern(500, 3))
}

// HP: ten consecutive wrong-key reads lock SPOUT out with 07/26/10 until
// the cartridge is unloaded; IBM has no such lockout.
func TestWrongKeyLockout(t *testing.T) {
	for _, pers := range []string{"hp", "ibm"} {
		h := newTestLib(t, func(c *Config) { c.DefaultPersonality = pers })
		h.load(1, 0)
		c := h.dial("drive0")
		settle(t, c)
		setKey(t, c, testKey(1))
		must(t, c, write6(10), pattern(10, 1), 0)
		setKey(t, c, testKey(2))
		must(t, c, rewind(), nil, 0)
		for range 10 {
			expect(t, c, "7/74/03", read6(10, true), nil, 10)
		}
		p := sde(0x40, 0, 2, 3, testKey(1))
		if pers == "ibm" {
			must(t, c, spoutCDB(len(p)), p, 0)
			continue
		}
		expect(t, c, "7/26/10", spoutCDB(len(p)), p, 0)
		must(t, c, []byte{0x1B, 0, 0, 0, 0, 0}, nil, 0)
		must(t, c, []byte{0x1B, 0, 0, 0, 1, 0}, nil, 0)
		must(t, c, spoutCDB(len(p)), p, 0)
		r := must(t, c, read6(10, true), nil, 10)
		eqBytes(t, "after lockout", r.data, pattern(10, 1))
	}
}
