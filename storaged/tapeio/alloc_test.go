package tapeio

import (
	"encoding/binary"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// nullTape is a transport that accepts every WRITE and answers READ BLOCK
// LIMITS and READ POSITION, counting blocks.
type nullTape struct{ objects, files uint64 }

func (n *nullTape) Do(cmd *scsi.Command) (scsi.Result, error) {
	switch cmd.CDB[0] {
	case scsi.OpReadBlockLimits:
		copy(cmd.Data, []byte{0, 0xFF, 0xFF, 0xFF, 0, 1})
	case scsi.OpReadPosition:
		clear(cmd.Data)
		binary.BigEndian.PutUint64(cmd.Data[8:], n.objects)
		binary.BigEndian.PutUint64(cmd.Data[16:], n.files)
	case scsi.OpWrite6:
		n.objects++
	case scsi.OpWriteFilemarks6:
		n.objects += uint64(cmd.CDB[4])
		n.files += uint64(cmd.CDB[4])
	}
	return scsi.Result{}, nil
}
func (n *nullTape) Addr() string { return "null" }
func (n *nullTape) Close() error { return nil }

// TestWriterAddsNoAllocations: a block through Writer allocates exactly as
// much as the raw Device.Write underneath it, whether written whole or in
// small pieces.
func TestWriterAddsNoAllocations(t *testing.T) {
	d := scsi.NewDevice(&nullTape{})
	block := make([]byte, DefaultBlockSize)
	raw := testing.AllocsPerRun(50, func() { d.Write(block) })
	w, err := NewWriter(d, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	whole := testing.AllocsPerRun(50, func() {
		if _, err := w.Write(block); err != nil {
			t.Fatal(err)
		}
	})
	pieces := testing.AllocsPerRun(50, func() {
		for off := 0; off < len(block); off += 32 << 10 {
			if _, err := w.Write(block[off : off+32<<10]); err != nil {
				t.Fatal(err)
			}
		}
	})
	if whole != raw || pieces != raw {
		t.Fatalf("allocations per block: raw Device.Write %.1f, Writer whole blocks %.1f, 32 KiB pieces %.1f", raw, whole, pieces)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Blocks() != 2*51 { // AllocsPerRun runs once more than asked
		t.Fatalf("blocks %d", w.Blocks())
	}
}
