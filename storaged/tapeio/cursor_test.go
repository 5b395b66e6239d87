package tapeio

import (
	"bytes"
	"io"
	"sync/atomic"
	"testing"
)

// TestCursorReadDirect: ReadDirect gives the same bytes as Read whether
// it reads a block straight into the caller's buffer (used-up buffer, a
// whole block wanted) or copies (the rest of a buffered block, a limit
// or a buffer smaller than a block); a Seek back into a block read
// straight locates and reads it again; the tape file's short last block
// and its filemark end it.
func TestCursorReadDirect(t *testing.T) {
	d := small.mount(t, 9, 0)
	labelled(t, d, DefaultBlockSize)
	bs := DefaultBlockSize
	data := randomData(3*bs + 5000) // three whole blocks and a short one
	w, err := NewWriter(d, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	first, file := w.Start().Block, w.Start().File

	var blocks atomic.Uint64
	var c Cursor
	c.Reset(d, bs, &blocks)
	if err := c.Seek(first, 512, file); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, bs)
	var got []byte
	step := func(limit int64, want int) {
		t.Helper()
		n, err := c.ReadDirect(p, limit)
		if err != nil || n != want {
			t.Fatalf("ReadDirect(limit %d) after %d bytes: %d, %v; want %d, nil", limit, len(got), n, err, want)
		}
		got = append(got, p[:n]...)
	}
	step(1<<40, bs-512)     // the rest of the buffered block: copied
	step(1<<40, bs)         // block 1: straight into p
	step(int64(bs-1), bs-1) // block 2, a limit short of it: copied
	step(1<<40, 1)          // its last byte
	step(1<<40, 5000)       // the short last block: straight into p
	if n, err := c.ReadDirect(p, 1<<40); n != 0 || err != io.EOF {
		t.Fatalf("ReadDirect at the filemark: %d, %v; want 0, EOF", n, err)
	}
	if !bytes.Equal(got, data[512:]) {
		t.Fatalf("read %d bytes, not the %d from offset 512", len(got), len(data)-512)
	}
	if n := blocks.Load(); n != 4 {
		t.Fatalf("%d blocks counted, want 4", n)
	}

	// Back into block 1 right after reading it straight (the cursor's
	// buffer does not hold it): located and read again. A buffer
	// smaller than a block copies.
	if err := c.Seek(first, 0, file); err != nil {
		t.Fatal(err)
	}
	got = nil
	step(1<<40, bs) // block 0, buffered: copied
	step(1<<40, bs) // block 1: straight into p
	if !bytes.Equal(got, data[:2*bs]) {
		t.Fatal("blocks 0 and 1 differ from the tape's")
	}
	if n := blocks.Load(); n != 6 {
		t.Fatalf("%d blocks counted, want 6", n)
	}
	if err := c.Seek(first+1, 4096, file); err != nil {
		t.Fatal(err)
	}
	small := make([]byte, 1000)
	if n, err := c.ReadDirect(small, 1<<40); err != nil || !bytes.Equal(small[:n], data[bs+4096:bs+4096+n]) || n != len(small) {
		t.Fatalf("after seeking back: %d bytes, %v (or not the tape's)", n, err)
	}
	if n := blocks.Load(); n != 7 {
		t.Fatalf("%d blocks counted after seeking back, want 7", n)
	}
	// The next block follows without a locate, straight into p once the
	// buffered one is used up.
	rest := make([]byte, 0, 2*bs)
	for len(rest) < 2*bs-4096-1000 {
		n, err := c.ReadDirect(p, int64(2*bs-4096-1000-len(rest)))
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, p[:n]...)
	}
	if !bytes.Equal(rest, data[bs+5096:3*bs]) {
		t.Fatal("the bytes after seeking back differ from the tape's")
	}
}

// TestCursorBufferedOnDrive: Buffered is what is left of the block read
// last (nothing after ReadDirect took a block whole, or at the
// filemark); OnDrive runs once each time the cursor goes to the drive
// — a Seek that locates, each block read — and not for a Seek or Read
// inside the block it holds; Reset keeps it.
func TestCursorBufferedOnDrive(t *testing.T) {
	d := small.mount(t, 9, 0)
	labelled(t, d, DefaultBlockSize)
	bs := DefaultBlockSize
	w, err := NewWriter(d, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(randomData(2*bs + 1000)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	first, file := w.Start().Block, w.Start().File

	var c Cursor
	drive := 0
	c.OnDrive(func() { drive++ })
	c.Reset(d, bs, nil)
	if c.BlockSize() != bs || c.Buffered() != 0 {
		t.Fatalf("after Reset: block size %d, buffered %d", c.BlockSize(), c.Buffered())
	}
	check := func(what string, buffered, calls int) {
		t.Helper()
		if c.Buffered() != buffered || drive != calls {
			t.Fatalf("%s: buffered %d, OnDrive ran %d times; want %d and %d", what, c.Buffered(), drive, buffered, calls)
		}
	}
	if err := c.Seek(first, 512, file); err != nil {
		t.Fatal(err)
	}
	check("Seek that locates", bs-512, 2) // LOCATE (+ READ POSITION), READ
	if _, err := c.Read(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	check("Read in the block", bs-612, 2)
	if err := c.Seek(first, 1024, file); err != nil {
		t.Fatal(err)
	}
	check("Seek in the block", bs-1024, 2)
	if _, err := c.Read(make([]byte, bs)); err != nil {
		t.Fatal(err)
	}
	check("Read of the block's rest", 0, 2)
	if _, err := c.ReadDirect(make([]byte, bs), 1<<40); err != nil {
		t.Fatal(err)
	}
	check("ReadDirect of block 1", 0, 3)
	if _, err := c.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	check("Read into block 2", 990, 4)
	c.Reset(d, bs, nil)
	if err := c.Seek(first, 0, file); err != nil {
		t.Fatal(err)
	}
	check("Seek after Reset", bs, 6)
}
