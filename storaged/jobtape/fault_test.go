package jobtape

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/scsifault"
	"github.com/tapeward/tapeward/tools/lib/archive"
)

// TestWriteFailsMidJob: the drive fails a WRITE mid-job (MEDIUM ERROR
// 03/0C/00 injected on the 20th data block, the real emulator
// underneath). Every record OnFlushed reported is readable afterwards at
// its address with its digest; the records whose bytes were not flushed
// are not reported; the error names the volume and tape file.
func TestWriteFailsMidJob(t *testing.T) {
	const bs = 64 << 10
	lib := newLib(t, 2, 1, 64<<20)
	v := mount(t, lib, 1, 0, "TW0009L8", true, bs)
	v.f.Add(scsifault.Rule{Op: scsi.OpWrite6, Nth: 20, Sense: scsifault.Sense(0x03, 0x0C, 0x00)})
	files := makeFiles(9, 400)
	j := runJob(t, []*vol{v}, files, Options{BlockSize: bs, FlushEvery: 256 << 10})
	var je *Error
	if !errors.As(j.err, &je) || je.Volume != v.name || je.TapeFile != 1 || !strings.Contains(j.err.Error(), "volume TW0009L8 tape file 1") {
		t.Fatalf("error %v: want a *jobtape.Error naming volume %s tape file 1", j.err, v.name)
	}
	placed := j.reported()
	if len(placed) == 0 || len(placed) >= len(files) {
		t.Fatalf("%d of %d records reported before the failure; want some, not all", len(placed), len(files))
	}
	flushed := j.batches[len(j.batches)-1].StreamOffset
	// 19 blocks reached the tape; the flushed offset cannot be beyond them.
	if flushed > 19*bs {
		t.Fatalf("flushed offset %d is beyond the %d bytes on tape", flushed, 19*bs)
	}
	for i, p := range placed {
		if p.Record.Path != files[i].m.Path || end(p.Record) > flushed {
			t.Fatalf("reported record %d: %q ends at %d, flushed %d", i, p.Record.Path, end(p.Record), flushed)
		}
		b := readMember(t, []*vol{v}, p.Address, bs, p.Record.Path)
		if p.Record.Type == archive.TypeReg && sha256.Sum256(b) != p.Record.SHA256 {
			t.Errorf("%s at %+v: digest differs", p.Record.Path, p.Address)
		}
	}
	if next := j.recs[len(placed)]; end(next) <= flushed {
		t.Errorf("%q ends at %d, before the flushed offset %d, but was not reported", next.Path, end(next), flushed)
	}
}
