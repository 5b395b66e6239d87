package jobtape

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi"

	"github.com/tapeward/tapeward/tools/lib/archive"
)

// TestPartHooksAndMaxBatch: OnPart names each tape file before any record
// on it is reported, OnPartDone follows the records its filemark flushed,
// and no OnFlushed batch holds more than MaxBatch records (the writer
// flushes early when that many are waiting).
func TestPartHooksAndMaxBatch(t *testing.T) {
	lib := newLib(t, 4, 1, 8<<20)
	vols := []*vol{mount(t, lib, 1, 0, "V1", true, 64<<10)}
	var events []string
	var parts, done []Part
	opts := Options{MaxBatch: 7, FlushEvery: 1 << 40,
		OnPart:     func(p Part) error { parts = append(parts, p); events = append(events, "part"); return nil },
		OnPartDone: func(p Part) { done = append(done, p); events = append(events, "done") }}
	opts.OnFlushed = func(Flushed) { events = append(events, "flushed") }
	files := makeFiles(3, 100)
	j := runJob(t, vols, files, opts)
	if j.err != nil {
		t.Fatal(j.err)
	}
	// The data part, then the index tape file (numbered after it).
	if len(parts) != 2 || len(done) != 2 || parts[0].TapeFile != done[0].TapeFile || done[0].Blocks == 0 || parts[0].Index ||
		!parts[1].Index || !done[1].Index || parts[1].Part != 2 || parts[1].TapeFile != parts[0].TapeFile+1 || done[1].Blocks == 0 {
		t.Fatalf("OnPart %+v, OnPartDone %+v", parts, done)
	}
	if events[0] != "part" || events[len(events)-1] != "done" {
		t.Fatalf("events %v: want part first and done last", events)
	}
	n := 0
	for _, b := range j.batches {
		if len(b.Records) > 7 || len(b.Records) == 0 {
			t.Fatalf("a batch of %d records (MaxBatch 7)", len(b.Records))
		}
		n += len(b.Records)
	}
	if n != len(files) || len(j.batches) < len(files)/7 {
		t.Fatalf("%d records in %d batches", n, len(j.batches))
	}
}

// TestAbort: a job aborted inside a member ends its tape file cleanly
// (GNU tar lists the complete members), reports exactly the members whose
// bytes are on tape and writes no index.
func TestAbort(t *testing.T) {
	needTars(t)
	lib := newLib(t, 4, 1, 8<<20)
	v := mount(t, lib, 1, 0, "V1", false, 64<<10)
	var got []Placed
	jw, err := New(v.d, JobInfo{JobID: 7, Job: "j", Volume: "V1", Created: testTime},
		Options{NextVolume: noVolume, OnFlushed: func(f Flushed) { got = append(got, f.Records...) }})
	if err != nil {
		t.Fatal(err)
	}
	files := makeFiles(4, 20)
	aw := archive.NewWriter(jw)
	for _, f := range files[:10] {
		rec, err := aw.WriteMember(f.m, bytes.NewReader(f.data))
		if err != nil {
			t.Fatal(err)
		}
		if err := jw.AddRecord(rec); err != nil {
			t.Fatal(err)
		}
	}
	// The first 512 bytes of the next member's headers, then the abort.
	var next bytes.Buffer
	if _, err := archive.NewWriter(&next).WriteMember(files[10].m, bytes.NewReader(files[10].data)); err != nil {
		t.Fatal(err)
	}
	if _, err := jw.Write(next.Bytes()[:512]); err != nil {
		t.Fatal(err)
	}
	parts, err := jw.Abort()
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 1 || len(got) != 10 {
		t.Fatalf("%d parts, %d records reported; want 1, 10", len(parts), len(got))
	}
	data := readFile(t, v.d, parts[0].TapeFile, parts[0].FirstBlock, 64<<10)
	if int64(len(data)) != parts[0].Bytes {
		t.Fatalf("read %d bytes, the part says %d", len(data), parts[0].Bytes)
	}
	var paths []string
	for _, f := range files[:10] {
		paths = append(paths, f.m.Path)
	}
	listsAll(t, "tar", tarList(t, "tar", data, false), paths)
	if _, err := jw.Close(); err == nil {
		t.Fatal("Close after Abort succeeded")
	}
}

func noVolume(context.Context, error) (*scsi.Device, string, error) {
	return nil, "", errors.New("no next volume in this test")
}

// TestOnPartRefusalWritesNothing: a tape file that cannot be recorded
// (the director refused or is unreachable) is not written: the job fails
// with the tape where it was.
func TestOnPartRefusalWritesNothing(t *testing.T) {
	lib := newLib(t, 4, 1, 8<<20)
	vols := []*vol{mount(t, lib, 1, 0, "V1", true, 64<<10)}
	before, err := vols[0].d.ReadPosition()
	if err != nil {
		t.Fatal(err)
	}
	refusal := errors.New("the director did not record it")
	_, err = New(vols[0].d, JobInfo{JobID: 42, Job: "nightly", Client: "c1", FileSet: "home", Level: "Full", Volume: vols[0].name, Created: testTime},
		Options{OnPart: func(Part) error { return refusal },
			NextVolume: func(context.Context, error) (*scsi.Device, string, error) { return nil, "", errors.New("one volume") }})
	if !errors.Is(err, refusal) || !strings.Contains(err.Error(), "recording the tape file before writing it") {
		t.Fatalf("New: %v", err)
	}
	after, err := vols[0].d.ReadPosition()
	if err != nil {
		t.Fatal(err)
	}
	if after.Block != before.Block || after.File != before.File {
		t.Fatalf("the tape moved from %+v to %+v: something was written", before, after)
	}
}
