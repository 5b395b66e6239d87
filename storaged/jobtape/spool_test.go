package jobtape

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/tapeio"
	"github.com/tapeward/tapeward/tools/lib/archive"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// spoolEntry is the i-th of a varied set of index entries.
func spoolEntry(i int) archive.IndexEntry {
	e := archive.IndexEntry{Path: fmt.Sprintf("home/user/project%03d/file%06d.txt", i/100, i), Type: archive.TypeReg, Size: int64(i * 37),
		Mtime: int64(i)*1e9 + 123, Mode: 0o644, UID: 1000, GID: int64(i % 3), Uname: "user", Gname: "staff",
		Address: archive.Address{Volume: "TW0001L8", TapeFile: 3, Block: int64(i / 200), Offset: int64(i%200) * 5120}}
	e.SHA256[0], e.SHA256[31] = byte(i), byte(i>>8)
	switch i % 7 {
	case 1:
		e.Type, e.Size, e.SHA256, e.Mode = archive.TypeDir, 0, [32]byte{}, 0o755
	case 2:
		e.Type, e.Size, e.SHA256, e.Linkname = archive.TypeSymlink, 0, [32]byte{}, "../target\xff"
	case 3:
		e.Path, e.Mtime, e.UID = "bad-utf8-\xfe\xff/"+strings.Repeat("long/", 300)+"x", -1_234_567_891, -1
	case 4:
		e.Sparse = true
		e.Parts = []archive.PartAddress{{Address: archive.Address{Volume: "TW0002L8", TapeFile: 1, Block: 0, Offset: 1536}, Part: 2, DataOffset: 1 << 40},
			{Address: archive.Address{Volume: "TW0003L8", TapeFile: 5, Block: 0, Offset: 2048}, Part: 3, DataOffset: 1<<40 + 7<<20}}
	}
	return e
}

// TestSpoolRoundTrip: the lines read back from the spool are the index
// lines of the entries added, in order, twice (the index written again on another volume);
// the file is in no directory, and closed by close.
func TestSpoolRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := newSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	for i := range n {
		e := spoolEntry(i)
		if err := s.add(&e); err != nil {
			t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the spool directory holds %v; the spool file should be unlinked at once", ents)
	}
	if got := spoolFDs(t, dir); got != 1 {
		t.Fatalf("%d open files in %s, want the spool's 1", got, dir)
	}
	for round := range 2 {
		i := 0
		err := s.each(func(line []byte) error {
			e := spoolEntry(i)
			if want, _ := archive.AppendIndexLine(nil, &e); !bytes.Equal(line, want) {
				return fmt.Errorf("entry %d read back as %s, added %s", i, line, want)
			}
			i++
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if i != n {
			t.Fatalf("round %d: %d entries read back, want %d", round, i, n)
		}
	}
	s.close()
	if got := spoolFDs(t, dir); got != 0 {
		t.Errorf("%d files in %s still open after close", got, dir)
	}
	if err := s.each(func([]byte) error { return nil }); err == nil {
		t.Error("a closed spool was read")
	}
}

// TestSpoolMemory: adding 100,000 entries neither allocates nor keeps
// them in memory (in memory they would take well over 20 MB).
func TestSpoolMemory(t *testing.T) {
	s, err := newSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	const n = 100000
	ents := make([]archive.IndexEntry, 1000)
	for i := range ents {
		ents[i] = spoolEntry(i)
		ents[i].Path = fmt.Sprintf("%s/%d", ents[i].Path, i) // a distinct path each
	}
	e := ents[4]
	if allocs := testing.AllocsPerRun(1000, func() { s.add(&e) }); allocs != 0 {
		t.Errorf("add allocates %.1f times an entry, want 0", allocs)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		if err := s.add(&ents[i%len(ents)]); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap after %d entries: %+d bytes", n, grew)
	if grew > 1<<20 {
		t.Errorf("the heap grew by %d bytes over %d entries, want under 1 MiB", grew, n)
	}
	st, err := s.f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.w.Flush(); err != nil {
		t.Fatal(err)
	}
	if st, err = s.f.Stat(); err != nil || st.Size() < n*50 {
		t.Errorf("spool file %v bytes after %d entries (%v)", st.Size(), n, err)
	}
}

// spoolFDs counts this process's open files in dir (unlinked ones too).
func spoolFDs(t testing.TB, dir string) int { return len(testenv.OpenFilesUnder(t, dir)) }

// TestJobSpoolRemoved: a job's index spool is in Options.SpoolDir while
// it runs (unlinked: the directory stays empty) and closed by Close and
// by Abort; the index on tape lists every member reported.
func TestJobSpoolRemoved(t *testing.T) {
	lib := newLib(t, 2, 2, 64<<20)
	for _, abort := range []bool{false, true} {
		v := mount(t, lib, map[bool]int{false: 1, true: 2}[abort], map[bool]int{false: 0, true: 1}[abort], map[bool]string{false: "TW0001L8", true: "TW0002L8"}[abort], true, 64<<10)
		dir := t.TempDir()
		files := makeFiles(3, 500)
		opts := Options{BlockSize: 64 << 10, FlushEvery: 256 << 10, SpoolDir: dir, OnFlushed: func(Flushed) {
			if got := spoolFDs(t, dir); got != 1 {
				t.Errorf("%d files open in the spool directory during the job, want 1", got)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("the spool directory holds %v during the job", ents)
			}
		}}
		if !abort {
			j := runJob(t, []*vol{v}, files, opts)
			if j.err != nil {
				t.Fatal(j.err)
			}
			if got := spoolFDs(t, dir); got != 0 {
				t.Errorf("%d files still open in the spool directory after Close", got)
			}
			placed := j.reported()
			ix := readFile(t, v.d, j.sum.Index.TapeFile, j.sum.Index.FirstBlock, 64<<10)
			i := 0
			if _, err := archive.DecodeIndex(bytes.NewReader(ix), func(e archive.IndexEntry) error {
				if i >= len(placed) || !reflect.DeepEqual(e, placed[i].Entry()) {
					return fmt.Errorf("index entry %d %+v is not the record reported", i, e)
				}
				i++
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if i != len(files) || len(placed) != len(files) {
				t.Fatalf("index lists %d members, %d reported, want %d", i, len(placed), len(files))
			}
			continue
		}
		jw, err := New(v.d, JobInfo{JobID: 43, Job: "nightly", Volume: v.name, Created: testTime}, Options{BlockSize: 64 << 10, FlushEvery: 256 << 10, SpoolDir: dir,
			NextVolume: noVolume, VerifyPart: func(string) func(*scsi.Device, tapeio.Addr) error { return v.hook() }})
		if err != nil {
			t.Fatal(err)
		}
		aw := archive.NewWriter(jw)
		for _, f := range files[:200] {
			rec, err := aw.WriteMember(f.m, bytes.NewReader(f.data))
			if err != nil {
				t.Fatal(err)
			}
			if err := jw.AddRecord(rec); err != nil {
				t.Fatal(err)
			}
		}
		if got := spoolFDs(t, dir); got != 1 {
			t.Errorf("%d files open in the spool directory during the job, want 1", got)
		}
		if _, err := jw.Abort(); err != nil {
			t.Fatal(err)
		}
		if got := spoolFDs(t, dir); got != 0 {
			t.Errorf("%d files still open in the spool directory after Abort", got)
		}
	}
}

// TestSpoolDirMissing: a spool directory that cannot be written refuses
// the job before anything is written, naming the directory.
func TestSpoolDirMissing(t *testing.T) {
	lib := newLib(t, 1, 1, 64<<20)
	v := mount(t, lib, 1, 0, "TW0001L8", false, 64<<10)
	dir := filepath.Join(t.TempDir(), "missing")
	_, err := New(v.d, JobInfo{JobID: 45, Job: "nightly", Volume: v.name}, Options{BlockSize: 64 << 10, NextVolume: noVolume, SpoolDir: dir})
	if err == nil || !strings.Contains(err.Error(), "index spool file in "+dir) || !strings.Contains(err.Error(), "must be a writable directory") {
		t.Fatalf("New with spool directory %s: %v", dir, err)
	}
	pos, perr := v.d.ReadPosition()
	if perr != nil || pos.File != 1 || pos.Block != 2 {
		t.Errorf("after the refusal the tape is at %+v (%v), want right after the label", pos, perr)
	}
}
