package tapeio

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/label"
	"github.com/tapeward/tapeward/storaged/scsi"
)

// testUKAD is a 16-hex-character U-KAD like a key fingerprint (tools/lib/keys
// is not imported: its Tink dependency is not needed here).
func testUKAD() []byte {
	b := make([]byte, 8)
	rand.Read(b)
	return []byte(hex.EncodeToString(b))
}

func randomData(n int) []byte {
	b := make([]byte, n)
	r := mrand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	r.Read(b)
	return b
}

// labelled writes a label (clear, no key) and leaves d at file 1 block 2.
func labelled(t testing.TB, d *scsi.Device, bs int) {
	t.Helper()
	err := label.Write(d, label.Label{Volume: "T" + d.Addr()[len(d.Addr())-1:], BlockSize: bs, LabelTime: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
}

func readAll(t testing.TB, d *scsi.Device, from Addr, bs int) ([]byte, error) {
	t.Helper()
	r, err := NewReader(d, from, ReaderOptions{BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	return io.ReadAll(r)
}

// writeChunks writes data in irregular chunks, taking a mark before each
// chunk; it returns the marks and their stream offsets.
func writeChunks(t *testing.T, w *Writer, data []byte) (marks []Addr, offs []int64) {
	t.Helper()
	sizes := []int{512, 100000, 1 << 20, 3, 2<<20 + 7, 65536, 777}
	for i, off := 0, 0; off < len(data); i++ {
		n := min(sizes[i%len(sizes)], len(data)-off)
		marks = append(marks, w.Mark())
		offs = append(offs, w.Offset())
		if int64(off) != w.Offset() {
			t.Fatalf("Offset %d, want %d", w.Offset(), off)
		}
		m, err := w.Write(data[off : off+n])
		if err != nil || m != n {
			t.Fatalf("Write(%d bytes at %d) = %d, %v", n, off, m, err)
		}
		off += n
	}
	return marks, offs
}

func TestWriteReadMarks(t *testing.T) {
	d := small.mount(t, 1, 0)
	labelled(t, d, DefaultBlockSize)
	data := randomData(3<<20 + 300001) // not a multiple of the block size
	w, err := NewWriter(d, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w.BlockSize() != DefaultBlockSize || w.Start() != (Addr{File: 1, Block: 2}) {
		t.Fatalf("block size %d start %v", w.BlockSize(), w.Start())
	}
	marks, offs := writeChunks(t, w, data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Blocks() != 4 || w.OnTape() != int64(len(data)) || w.EarlyWarning() {
		t.Fatalf("blocks %d on tape %d ew %t", w.Blocks(), w.OnTape(), w.EarlyWarning())
	}
	pos, err := d.ReadPosition()
	if err != nil || pos.Block != 2+4+1 || pos.File != 2 {
		t.Fatalf("position after Close %v %v, want block 7 file 2", pos, err)
	}
	// A second session right after: the first still ends at its filemark.
	w2, err := NewWriter(d, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Write([]byte("second session")); err != nil {
		t.Fatal(err)
	}
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}

	got, err := readAll(t, d, w.Start(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, differ from the %d written", len(got), len(data))
	}
	ext := []Extent{{File: 1, FirstBlock: 2, Bytes: int64(len(data)), BlockSize: w.BlockSize()}}
	for i, m := range marks {
		if _, a, ok := Resolve(ext, offs[i]); !ok || a != m {
			t.Fatalf("mark %d: Resolve(%d) = %v, Mark said %v", i, offs[i], a, m)
		}
	}
	for _, i := range []int{1, len(marks) / 2, len(marks) - 1} {
		got, err := readAll(t, d, marks[i], 0)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data[offs[i]:]) {
			t.Fatalf("from mark %v (offset %d): %d bytes, differ from the %d expected", marks[i], offs[i], len(got), len(data)-int(offs[i]))
		}
	}
	got, err = readAll(t, d, w2.Start(), 0)
	if err != nil || string(got) != "second session" {
		t.Fatalf("second session: %q %v", got, err)
	}
	// Small reads through the buffer give the same bytes.
	r, err := NewReader(d, marks[2], ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var small bytes.Buffer
	if _, err := io.CopyBuffer(&small, r, make([]byte, 4093)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(small.Bytes(), data[offs[2]:]) {
		t.Fatal("small reads differ")
	}

	// Reading with a buffer smaller than the blocks names the block.
	_, err = readAll(t, d, w.Start(), 256<<10)
	var ol *OverlengthError
	if !errors.As(err, &ol) || ol.Block != 2 || ol.File != 1 || ol.Length != DefaultBlockSize {
		t.Fatalf("small buffer: %v, want an OverlengthError for block 2 of 1 MiB", err)
	}
	// A mark that is not where the reader lands is refused.
	if _, err := NewReader(d, Addr{File: 2, Block: 3}, ReaderOptions{}); err == nil {
		t.Fatal("NewReader accepted file 2 for a block of file 1")
	}
}

func TestReaderNoFilemark(t *testing.T) {
	d := small.mount(t, 2, 0)
	labelled(t, d, 4096)
	for range 3 {
		if _, err := d.Write(randomData(4096)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readAll(t, d, Addr{File: 1, Block: 2}, 4096)
	if !errors.Is(err, ErrNoFilemark) || len(got) != 3*4096 {
		t.Fatalf("%d bytes, %v; want 12288 bytes then ErrNoFilemark", len(got), err)
	}
}

// TestEarlyWarning fills an 8 MiB cartridge with 64 KiB blocks: the drive
// reports early warning (the block is written), then the rest of the
// stream goes on a second cartridge in drive1.
func TestEarlyWarning(t *testing.T) {
	const bs = 64 << 10
	d0 := small.mount(t, 3, 0)
	d1 := small.mount(t, 4, 1)
	labelled(t, d0, bs)
	labelled(t, d1, bs)
	data := randomData(10<<20 + 12345)
	w, err := NewWriter(d0, WriterOptions{BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	var taken int
	var full error
	for off := 0; off < len(data) && full == nil; {
		n := min(100003, len(data)-off)
		m, err := w.Write(data[off : off+n])
		taken += m
		off += m
		full = err
	}
	var vf *VolumeFullError
	if !errors.As(full, &vf) || !errors.Is(full, ErrVolumeFull) || vf.Overflow || vf.FilemarkErr != nil {
		t.Fatalf("got %v, want early warning ErrVolumeFull", full)
	}
	if vf.OnVolume != int64(vf.Blocks)*bs || vf.OnVolume != w.OnTape() || int64(taken) != vf.OnVolume || w.Unwritten() != nil {
		t.Fatalf("on volume %d, blocks %d, taken %d, unwritten %d", vf.OnVolume, vf.Blocks, taken, len(w.Unwritten()))
	}
	if vf.OnVolume < 7<<20 || vf.OnVolume > 8<<20 {
		t.Fatalf("early warning after %d bytes of an 8 MiB cartridge", vf.OnVolume)
	}
	if _, err := w.Write([]byte{1}); !errors.Is(err, ErrVolumeFull) {
		t.Fatalf("Write after the volume filled: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Continue the stream on the next volume.
	w1, err := NewWriter(d1, WriterOptions{BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w1.Write(data[taken:]); err != nil {
		t.Fatal(err)
	}
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	a, err := readAll(t, d0, w.Start(), bs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := readAll(t, d1, w1.Start(), bs)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(a)) != vf.OnVolume || !bytes.Equal(append(a, b...), data) {
		t.Fatalf("volumes hold %d + %d bytes, not the %d-byte stream", len(a), len(b), len(data))
	}
}

// TestOverflowSpan writes 1 MiB blocks to an 8 MiB cartridge: the 8th
// block does not fit (0D/00/02, not written) and is left in Unwritten for
// the next volume (storaged/jobtape writes it there).
func TestOverflowSpan(t *testing.T) {
	d0 := small.mount(t, 5, 0)
	d1 := small.mount(t, 6, 1)
	labelled(t, d0, DefaultBlockSize)
	labelled(t, d1, DefaultBlockSize)

	// First the Writer alone: the refused block is Unwritten.
	data := randomData(9<<20 + 4321)
	w, err := NewWriter(d0, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	taken := 0
	var full error
	for full == nil && taken < len(data) {
		n := min(300000, len(data)-taken)
		m, err := w.Write(data[taken : taken+n])
		taken += m
		full = err
	}
	var vf *VolumeFullError
	if !errors.As(full, &vf) || !vf.Overflow || vf.FilemarkErr != nil {
		t.Fatalf("got %v, want a volume overflow", full)
	}
	un := w.Unwritten()
	if len(un) != DefaultBlockSize || int64(taken) != vf.OnVolume+int64(len(un)) || w.Offset() != int64(taken) ||
		!bytes.Equal(un, data[vf.OnVolume:taken]) {
		t.Fatalf("taken %d, on volume %d, unwritten %d", taken, vf.OnVolume, len(un))
	}
	got, err := readAll(t, d0, w.Start(), 0)
	if err != nil || int64(len(got)) != vf.OnVolume || !bytes.Equal(got, data[:vf.OnVolume]) {
		t.Fatalf("volume holds %d bytes (%v), want the first %d", len(got), err, vf.OnVolume)
	}
}

// TestEncryptedSession loads a random key, checks the first block really
// is encrypted, reads back with the key, and fails without it.
func TestEncryptedSession(t *testing.T) {
	d := small.mount(t, 7, 0)
	labelled(t, d, DefaultBlockSize)
	key := make([]byte, 32)
	rand.Read(key)
	ukad := testUKAD()
	if _, err := d.SetKey(key, scsi.SetKeyOpts{UKAD: ukad}); err != nil {
		t.Fatal(err)
	}
	hook := VerifyFirstBlock(ukad)
	var checked []Addr
	w, err := NewWriter(d, WriterOptions{AfterFirstBlock: func(d *scsi.Device, a Addr) error {
		checked = append(checked, a)
		return hook(d, a)
	}})
	if err != nil {
		t.Fatal(err)
	}
	data := randomData(2<<20 + 99)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(checked) != 1 || checked[0] != w.Start() {
		t.Fatalf("hook ran for %v, want once for %v", checked, w.Start())
	}
	// VerifyEncrypted on the last block; with the wrong U-KAD it fails.
	if err := d.Locate(scsi.LocateBlock, 2+3); err != nil {
		t.Fatal(err)
	}
	if nb, err := VerifyEncrypted(d, ukad); err != nil || nb.Status != scsi.BlockStatusDecryptable {
		t.Fatalf("VerifyEncrypted: %v %v", nb, err)
	}
	if pos, _ := d.ReadPosition(); pos.Block != 5 {
		t.Fatalf("VerifyEncrypted moved the tape to %v", pos)
	}
	if _, err := VerifyEncrypted(d, []byte("0000000000000000")); !scsi.IsNotEncrypted(err) {
		t.Fatalf("wrong U-KAD: %v", err)
	}
	got, err := readAll(t, d, w.Start(), 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back with the key: %d bytes, %v", len(got), err)
	}
	if _, err := d.Clear(); err != nil {
		t.Fatal(err)
	}
	got, err = readAll(t, d, w.Start(), 0)
	if !scsi.IsEncryptionError(err) || len(got) != 0 {
		t.Fatalf("read without the key: %d bytes, %v; want a 74/xx error", len(got), err)
	}
	if s, ok := scsi.SenseOf(err); !ok || s.ASC != 0x74 {
		t.Fatalf("sense %v", s)
	}
	// The clear label block fails the check.
	if err := d.Locate(scsi.LocateBlock, 1); err != nil { // after the label block = the filemark
		t.Fatal(err)
	}
	if _, err := VerifyEncrypted(d, nil); !scsi.IsNotEncrypted(err) {
		t.Fatalf("label block passed the encryption check: %v", err)
	}
}

// TestLyingDrive: drive2 accepts the key and reports encryption on, but
// writes clear blocks; the hook stops the session after one block.
func TestLyingDrive(t *testing.T) {
	d := small.mount(t, 8, 2)
	labelled(t, d, DefaultBlockSize)
	key := make([]byte, 32)
	rand.Read(key)
	ukad := testUKAD()
	st, err := d.SetKey(key, scsi.SetKeyOpts{UKAD: ukad})
	if err != nil || !st.Encrypting() {
		t.Fatalf("the lying drive's SPOUT should look fine: %v %v", st, err)
	}
	w, err := NewWriter(d, WriterOptions{AfterFirstBlock: VerifyFirstBlock(ukad)})
	if err != nil {
		t.Fatal(err)
	}
	n, err := w.Write(randomData(3 << 20))
	if !scsi.IsNotEncrypted(err) {
		t.Fatalf("lying drive: Write = %d, %v; want a NotEncryptedError", n, err)
	}
	var ne *scsi.NotEncryptedError
	errors.As(err, &ne)
	if ne.Addr != d.Addr() || ne.Block != 2 {
		t.Fatalf("error names %s block %d", ne.Addr, ne.Block)
	}
	if _, err2 := w.Write([]byte{1}); err2 == nil || w.Close() == nil {
		t.Fatal("the Writer goes on after a failed check")
	}
	if pos, err := d.ReadPosition(); err != nil || pos.Block != 3 {
		t.Fatalf("after the failed check the tape is at %v (%v), want block 3: nothing more written", pos, err)
	}
}
