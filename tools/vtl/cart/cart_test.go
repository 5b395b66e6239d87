package cart

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
)

func newCart(t testing.TB) (string, *Cartridge) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "TW0001L6.cart")
	if err := Create(p, "TW0001L6", 0x5A, 64<<20); err != nil {
		t.Fatal(err)
	}
	c, rep, err := Open(p)
	if err != nil || rep != nil {
		t.Fatalf("open: %v %+v", err, rep)
	}
	return p, c
}

func blk(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func TestRoundTripAndIndex(t *testing.T) {
	p, c := newCart(t)
	m := &Meta{PlainLen: 100}
	if err := c.AppendBlock(m, blk(100, 1)); err != nil {
		t.Fatal(err)
	}
	c.AppendFilemark()
	em := &Meta{Flags: FlagEncrypted | FlagNotRawReadable, KADFormat: 2, UKAD: []byte("ukad"), AKAD: []byte("akad!"), PlainLen: 200}
	copy(em.Fingerprint[:], "0123456789abcdef")
	copy(em.Nonce[:], "nonce-nonce!")
	c.AppendBlock(em, blk(216, 2))
	c.AppendFilemark()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, rep, err := Open(p)
	if err != nil || rep != nil {
		t.Fatalf("reopen: %v %+v", err, rep)
	}
	defer c.Close()
	if c.EOD() != 4 || c.Filemarks() != 2 || c.EncryptedBlocks() != 1 || c.FilemarksBefore(3) != 1 || c.FilemarkAt(1) != 3 {
		t.Fatalf("index: eod %d fms %d enc %d", c.EOD(), c.Filemarks(), c.EncryptedBlocks())
	}
	if h := c.Header(); h.Barcode != "TW0001L6" || h.Density != 0x5A || h.Capacity != 64<<20 {
		t.Fatalf("header %+v", h)
	}
	var buf []byte
	var got Meta
	pay, err := c.ReadBlock(2, &buf, &got)
	if err != nil || !bytes.Equal(pay, blk(216, 2)) {
		t.Fatalf("read: %v", err)
	}
	if got.Flags != em.Flags || got.KADFormat != 2 || string(got.UKAD) != "ukad" || string(got.AKAD) != "akad!" ||
		got.Fingerprint != em.Fingerprint || got.Nonce != em.Nonce || got.PlainLen != 200 {
		t.Fatalf("meta %+v", got)
	}
	// Truncate (write in the middle): everything after goes.
	if err := c.Truncate(1); err != nil {
		t.Fatal(err)
	}
	if c.EOD() != 1 || c.Filemarks() != 0 || c.EncryptedBlocks() != 0 {
		t.Fatalf("after truncate: eod %d", c.EOD())
	}
	st, _ := os.Stat(p)
	if st.Size() != HeaderSize+RecordSize(0, 100) {
		t.Fatalf("file size %d after truncate", st.Size())
	}
}

// A crash in the middle of an append leaves a torn tail: it is cut off at
// the next Open and every complete record before it survives.
func TestTornTail(t *testing.T) {
	p, c := newCart(t)
	for i := range 5 {
		c.AppendBlock(&Meta{PlainLen: 1000}, blk(1000, byte(i)))
	}
	c.Close()
	full, _ := os.ReadFile(p)
	rec := RecordSize(0, 1000)
	for _, cut := range []int64{1, 10, RecHeaderSize, RecHeaderSize + 500, rec - 1} {
		os.WriteFile(p, full[:int64(len(full))-cut], 0o644)
		c, rep, err := Open(p)
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if rep == nil || rep.At != HeaderSize+4*rec || c.EOD() != 4 {
			t.Fatalf("cut %d: repair %+v eod %d", cut, rep, c.EOD())
		}
		var buf []byte
		var m Meta
		if pay, err := c.ReadBlock(3, &buf, &m); err != nil || !bytes.Equal(pay, blk(1000, 3)) {
			t.Fatalf("cut %d: block 3: %v", cut, err)
		}
		c.Close()
		if st, _ := os.Stat(p); st.Size() != HeaderSize+4*rec {
			t.Fatalf("cut %d: not truncated (%d)", cut, st.Size())
		}
	}
	// Garbage (zeros, as after a crash with delayed allocation) in the tail.
	os.WriteFile(p, append(full[:HeaderSize+4*rec], make([]byte, rec)...), 0o644)
	c, rep, err := Open(p)
	if err != nil || rep == nil || c.EOD() != 4 {
		t.Fatalf("zero tail: %v %+v", err, rep)
	}
	c.Close()
	// A flipped payload byte in the last record: checksum → torn.
	bad := append([]byte{}, full...)
	bad[len(bad)-100] ^= 1
	os.WriteFile(p, bad, 0o644)
	c, rep, err = Open(p)
	if err != nil || rep == nil || c.EOD() != 4 {
		t.Fatalf("bad tail payload: %v %+v", err, rep)
	}
	c.Close()
}

func TestCorruptFile(t *testing.T) {
	p, c := newCart(t)
	// Enough data that a damaged early record is far from the tail.
	big := blk(MaxPayload-64, 1)
	for range 2 {
		c.AppendBlock(&Meta{PlainLen: len(big)}, big)
	}
	c.Close()
	full, _ := os.ReadFile(p)
	for name, mutate := range map[string]func([]byte){
		"header magic":    func(b []byte) { b[0] = 'X' },
		"header checksum": func(b []byte) { b[30] ^= 1 },
		"first record":    func(b []byte) { b[HeaderSize+9] ^= 0xFF },
	} {
		b := append([]byte{}, full...)
		mutate(b)
		os.WriteFile(p, b, 0o644)
		if _, _, err := Open(p); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: err %v, want ErrCorrupt", name, err)
		}
	}
	// A short file is corrupt, not a panic.
	os.WriteFile(p, full[:10], 0o644)
	if _, _, err := Open(p); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short: %v", err)
	}
}

var fuzzN atomic.Int64

// FuzzOpen: any file content is either loaded or reported, never a panic;
// whatever loads can be read back record by record.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	p := filepath.Join(dir, "seed.cart")
	Create(p, "TW0001L6", 0x5A, 1<<20)
	c, _, _ := Open(p)
	c.AppendBlock(&Meta{PlainLen: 10}, blk(10, 1))
	c.AppendFilemark()
	c.AppendBlock(&Meta{Flags: FlagEncrypted, UKAD: []byte("u"), PlainLen: 4}, blk(20, 2))
	c.Close()
	seed, _ := os.ReadFile(p)
	f.Add(seed)
	f.Add(seed[:HeaderSize])
	f.Add(seed[:len(seed)-3])
	// Close fsyncs; on a busy disk that dominates, so fuzz on tmpfs if
	// there is one.
	base := dir
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "vtlfuzz"); err == nil {
			base = d
			f.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		q := filepath.Join(base, fmt.Sprintf("f%d.cart", fuzzN.Add(1)))
		defer os.Remove(q)
		os.WriteFile(q, data, 0o644)
		c, _, err := Open(q)
		if err != nil {
			return
		}
		defer c.Close()
		var buf []byte
		var m Meta
		for i := range c.EOD() {
			if c.Entry(i).Kind == KindBlock {
				c.ReadBlock(i, &buf, &m)
				c.ReadMeta(i, &buf, &m)
			}
		}
		c.AppendFilemark()
		c.Truncate(0)
	})
}

// A failed write makes the cartridge refuse further I/O (its index would no
// longer match the file); reopening recovers everything written before.
func TestStickyWriteError(t *testing.T) {
	p, c := newCart(t)
	c.AppendBlock(&Meta{PlainLen: 100}, blk(100, 1))
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	c.f.Close() // the next write fails with EBADF
	if err := c.AppendBlock(&Meta{PlainLen: 1 << 17}, blk(1<<17, 2)); err == nil {
		t.Fatal("write to a closed file succeeded")
	}
	if err := c.AppendFilemark(); err == nil {
		t.Fatal("append after a failed write succeeded")
	}
	if err := c.Flush(); err == nil {
		t.Fatal("flush after a failed write succeeded")
	}
	c, rep, err := Open(p)
	if err != nil || rep != nil || c.EOD() != 1 {
		t.Fatalf("reopen: %v %+v", err, rep)
	}
	c.Close()
}

// A cartridge larger than TailCheck, with payloads on both sides of
// skipSeek, some buffered and some not: Open rebuilds the same index
// whether it reads a payload past or repositions over it, and still finds
// a damaged header far from the end.
func TestOpenLargeCartridgeIndex(t *testing.T) {
	p, c := newCart(t)
	sizes := []int{256 << 10, 1 << 10, skipSeek - 1, skipSeek, skipSeek + 1, 70 << 10, 100, 1 << 20}
	var total int64
	for i := 0; total < TailCheck+24<<20; i++ {
		n := sizes[i%len(sizes)]
		m := &Meta{PlainLen: n}
		if i%3 == 0 {
			m = &Meta{Flags: FlagEncrypted, KADFormat: 2, UKAD: []byte(fmt.Sprintf("u%d", i)), PlainLen: n}
		}
		if err := c.AppendBlock(m, blk(n, byte(i))); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			c.AppendFilemark()
		}
		total += int64(n)
	}
	want := append([]Entry(nil), c.entries...)
	wantFms, wantEnc := append([]int64(nil), c.fms...), c.nEnc
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, rep, err := Open(p)
	if err != nil || rep != nil {
		t.Fatalf("reopen: %v %+v", err, rep)
	}
	if !slices.Equal(c.entries, want) || !slices.Equal(c.fms, wantFms) || c.nEnc != wantEnc {
		t.Fatalf("index after reopen: %d entries, %d filemarks, %d encrypted; want %d, %d, %d",
			len(c.entries), len(c.fms), c.nEnc, len(want), len(wantFms), wantEnc)
	}
	var buf []byte
	var m Meta
	for _, i := range []int64{1, 2, int64(len(want)) / 2, int64(len(want)) - 1} {
		if want[i].Kind == KindFilemark {
			continue
		}
		if _, err := c.ReadBlock(i, &buf, &m); err != nil || m.PlainLen != int(want[i].PlainLen) {
			t.Fatalf("block %d: %v (length %d, want %d)", i, err, m.PlainLen, want[i].PlainLen)
		}
	}
	c.Close()
	// A damaged record header in the first half (outside the tail) is
	// corruption, found by the repositioning pass too.
	mid := want[len(want)/3]
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xFF}, mid.Off+5); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, _, err := Open(p); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with a damaged header at offset %d: %v, want ErrCorrupt", mid.Off, err)
	}
}

// BenchmarkOpen loads a cartridge of 512 MiB in 256 KiB blocks (what a
// mount costs the vtl before anything is read).
func BenchmarkOpen(b *testing.B) {
	p := filepath.Join(b.TempDir(), "TW0001L6.cart")
	if err := Create(p, "TW0001L6", 0x5A, 1<<30); err != nil {
		b.Fatal(err)
	}
	c, _, err := Open(p)
	if err != nil {
		b.Fatal(err)
	}
	pay := blk(256<<10, 3)
	for range 2048 {
		if err := c.AppendBlock(&Meta{PlainLen: len(pay)}, pay); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		c, _, err := Open(p)
		if err != nil || c.EOD() != 2048 {
			b.Fatalf("open: %v", err)
		}
		c.Close()
	}
}
