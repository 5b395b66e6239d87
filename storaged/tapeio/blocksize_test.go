package tapeio

import (
	"bytes"
	"testing"
)

// TestWriterTransportLimit: a drive behind an adapter that carries at most
// 1 MiB per command (finding 4: 8 MiB SG_IO transfers failed with ENOMEM).
// An 8 MiB configured block size becomes 1 MiB blocks, the label records
// that, and the data reads back — also with the configured size as the
// read buffer.
func TestWriterTransportLimit(t *testing.T) {
	small.fault(t, "drive1:max_transfer=1MiB")
	d := small.mount(t, 13, 1)
	labelled(t, d, 8<<20)
	w, err := NewWriter(d, WriterOptions{BlockSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if w.BlockSize() != 1<<20 {
		t.Fatalf("block size %d, want the transport's 1 MiB", w.BlockSize())
	}
	data := randomData(3<<20 + 5)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Blocks() != 4 {
		t.Fatalf("%d blocks", w.Blocks())
	}
	got, err := readAll(t, d, w.Start(), 8<<20)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
}
