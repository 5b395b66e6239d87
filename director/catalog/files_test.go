package catalog

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// row is a regular file record of path at stream offset off (1024 bytes
// of stream) in tape file 2 of vol.
func row(path, vol string, off int64) FileRow {
	sum := sha256.Sum256([]byte(path))
	return FileRow{Path: []byte(path), Type: FileRegular, Size: 100, Mode: 0o644, UID: 1000, GID: 100, Uname: "alice", Gname: "users",
		MtimeNS: 1748781000123456789, SHA256: sum[:], At: Address{Volume: vol, TapeFile: 2, Block: off / 4096, Offset: int(off % 4096)},
		StreamOffset: off, EndOffset: off + 1024}
}

// testRing is a keyring for the encrypted volumes of these tests (their
// first data tape file is 2, after the label and the key-check file).
func (f *fixture) testRing(t testing.TB) *keys.Keyring {
	t.Helper()
	k := newKEKs(t, 1)[0]
	return ring(t, k, k)
}

// part labels vol (an encrypted volume) if needed and records part 1 of job at
// the volume's next tape file, which it returns (2 on a new volume).
func (f *fixture) part(t *testing.T, job int64, vol string) int {
	t.Helper()
	if _, err := f.s.GetMedia(f.ctx, vol); errors.Is(err, ErrNotFound) {
		f.label(t, vol, "", "sd1", NoSlot, f.testRing(t))
	}
	tf, err := f.s.NextTapeFile(f.ctx, vol)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.s.RecordPart(f.ctx, job, Part{Part: 1, Volume: vol, VolumeIndex: 1, TapeFile: tf}); err != nil {
		t.Fatal(err)
	}
	return tf
}

func paths(fs []File) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = string(f.Path)
	}
	return out
}

// fullBatch starts a Full of nightly/web1/home with a part on V00001 and
// opens its FileBatch.
func (f *fixture) fullBatch(t *testing.T) (int64, *FileBatch) {
	t.Helper()
	job, _ := f.backup(t, "nightly", "web1", idHome, LevelFull, 0)
	f.part(t, job, "V00001")
	b, err := f.s.BeginFiles(f.ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	return job, b
}

func TestFlushCommitsOnlyFlushedData(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	job, b := f.fullBatch(t)
	for i := range 10 {
		if err := b.Add(ctx, row("/d/f"+itoa(int64(i)), "V00001", int64(i)*1024)); err != nil {
			t.Fatal(err)
		}
	}
	// Refused rows: out of order, on a tape file the job did not record,
	// a short digest. Nothing is buffered for them.
	var fe *FileRowError
	for _, r := range []FileRow{row("/d/back", "V00001", 5000), row("/d/elsewhere", "V00002", 20000),
		func() FileRow { r := row("/d/short", "V00001", 30000); r.SHA256 = r.SHA256[:5]; return r }()} {
		if err := b.Add(ctx, r); !errors.As(err, &fe) || fe.JobID != job {
			t.Errorf("Add(%s) = %v", r.Path, err)
		}
	}
	if b.Buffered() != 10 {
		t.Fatalf("buffered %d, want 10", b.Buffered())
	}
	// storaged flushed up to 4500: the rows ending at 1024…4096 are on
	// tape, the fifth (4096…5120) is not.
	n, err := b.Flush(ctx, 4500)
	if err != nil || n != 4 || b.Buffered() != 6 || b.Flushed() != 4500 {
		t.Fatalf("Flush(4500) = %d, %v; buffered %d", n, err, b.Buffered())
	}
	got, err := f.s.ListFiles(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(paths(got), ",") != "/d/f0,/d/f1,/d/f2,/d/f3" {
		t.Fatalf("after Flush(4500): %v", paths(got))
	}
	if j, _ := f.s.GetJob(ctx, job); j.FlushedOffset != 4500 || j.Files != 4 || j.Bytes != 400 {
		t.Fatalf("job after Flush(4500) = %+v", j)
	}
	// Exactly at a row's end: that row is committed.
	if n, err := b.Flush(ctx, 5*1024); err != nil || n != 1 {
		t.Fatalf("Flush(5120) = %d, %v", n, err)
	}
	var iv *InvalidError
	if _, err := b.Flush(ctx, 100); !errors.As(err, &iv) {
		t.Fatalf("Flush backwards = %v", err)
	}
	// The director crashes: the batch is dropped with 5 rows unflushed.
	b = nil
	ids, err := f.s.InterruptRunning(ctx, "director restarted")
	if err != nil || !slices.Contains(ids, job) {
		t.Fatalf("InterruptRunning = %v, %v", ids, err)
	}
	j, err := f.s.GetJob(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != JobError || !strings.HasPrefix(j.Error, "interrupted at 2026-01-02 ") ||
		!strings.HasSuffix(j.Error, ": director restarted; file records committed up to stream offset 5120") || j.EndedAt == nil {
		t.Fatalf("interrupted job = %+v", j)
	}
	got, err = f.s.ListFiles(ctx, job)
	if err != nil || len(got) != 5 || string(got[4].Path) != "/d/f4" {
		t.Fatalf("after the crash: %v, %v", paths(got), err)
	}
	// Its tape file was never completed: the next job appends at it again.
	if next, err := f.s.NextTapeFile(ctx, "V00001"); err != nil || next != 2 {
		t.Fatalf("NextTapeFile after the crash = %d, %v", next, err)
	}
	// Nothing else was running; a second start-up ends nothing.
	if ids, err := f.s.InterruptRunning(ctx, "again"); err != nil || len(ids) != 0 {
		t.Fatalf("second InterruptRunning = %v, %v", ids, err)
	}
}

func TestFlushRefusedAfterInterrupt(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	job, b := f.fullBatch(t)
	b.MaxBuffered = 2
	for i := range 2 {
		if err := b.Add(ctx, row("/x"+itoa(int64(i)), "V00001", int64(i)*1024)); err != nil {
			t.Fatal(err)
		}
	}
	var bf *BatchFullError
	if err := b.Add(ctx, row("/x2", "V00001", 2048)); !errors.As(err, &bf) || bf.Limit != 2 {
		t.Fatalf("third Add with MaxBuffered 2 = %v", err)
	}
	if _, err := f.s.InterruptRunning(ctx, "restart"); err != nil {
		t.Fatal(err)
	}
	var se *JobStateError
	if _, err := b.Flush(ctx, 4096); !errors.As(err, &se) || se.JobID != job || se.Status != JobError {
		t.Fatalf("Flush after InterruptRunning = %v", err)
	}
	if got, _ := f.s.ListFiles(ctx, job); len(got) != 0 {
		t.Fatalf("rows committed after the job was interrupted: %v", paths(got))
	}
}

func TestNextTapeFile(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	f.label(t, "V00001", "", "sd1", NoSlot, f.testRing(t))
	if next, err := f.s.NextTapeFile(ctx, "V00001"); err != nil || next != 2 {
		t.Fatalf("empty volume: %d, %v", next, err)
	}
	job, _ := f.backup(t, "nightly", "web1", idHome, LevelFull, 0)
	for i, tf := range []int{2, 3} {
		if err := f.s.RecordPart(ctx, job, Part{Part: i + 1, Kind: []string{"data", "index"}[i], Volume: "V00001", VolumeIndex: 1, TapeFile: tf}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.s.CompletePart(ctx, job, 1, 99, 100<<20); err != nil {
		t.Fatal(err)
	}
	if next, known, err := f.s.TapeFiles(ctx, "V00001"); err != nil || next != 3 || known != 4 {
		t.Fatalf("after a complete tape file 2 and a partial 3: next %d, known %d, %v", next, known, err)
	}
	if err := f.s.CompletePart(ctx, job, 2, 100, 1<<20); err != nil {
		t.Fatal(err)
	}
	if next, err := f.s.NextTapeFile(ctx, "V00001"); err != nil || next != 4 {
		t.Fatalf("after complete tape files 2 and 3: %d, %v", next, err)
	}
	if _, err := f.s.NextTapeFile(ctx, "NOPE"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown volume: %v", err)
	}
	// A clear volume has no key-check file: its first data tape file is 1.
	f.label(t, "C00001", "", "sd1", NoSlot, nil)
	if next, known, err := f.s.TapeFiles(ctx, "C00001"); err != nil || next != 1 || known != 1 {
		t.Fatalf("empty clear volume: next %d, known %d, %v", next, known, err)
	}
	if err := f.s.CompletePart(ctx, job, 7, 1, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown part: %v", err)
	}
	if err := f.s.RecordPart(ctx, job, Part{Part: 3, Volume: "NOPE", VolumeIndex: 2, TapeFile: 2}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("part on an unknown volume: %v", err)
	}
}

func TestOddPathsAndAddressesRoundTrip(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	job, _ := f.backup(t, "nightly", "web1", idHome, LevelFull, 0)
	f.part(t, job, "V00001")
	f.label(t, "V00002", "", "sd1", NoSlot, f.testRing(t))
	if err := f.s.RecordPart(ctx, job, Part{Part: 2, Volume: "V00002", VolumeIndex: 2, TapeFile: 2, FirstStreamOffset: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	long := "/" + strings.Repeat("d/", 2046) + "xyz" // 4096 bytes
	if len(long) != 4096 {
		t.Fatalf("long path has %d bytes", len(long))
	}
	in := []FileRow{
		row("/tmp/bad\xff\xfename", "V00001", 0),
		row("/tmp/new\nline", "V00001", 1024),
		row(long, "V00001", 2048),
		{Path: []byte("/tmp/link"), Type: FileSymlink, Mode: 0o777, Uname: "", Gname: "", Link: []byte("../\xffx"),
			At: Address{Volume: "V00001", TapeFile: 2, Block: 3, Offset: 512}, StreamOffset: 3072, EndOffset: 3584, UID: 4294967294, GID: 4294967294},
		{Path: []byte("/tmp/dir"), Type: FileDir, Mode: 0o1777, MtimeNS: -1,
			At: Address{Volume: "V00001", TapeFile: 2, Block: 4, Offset: 0}, StreamOffset: 4096, EndOffset: 4608},
		func() FileRow {
			r := row("/big", "V00001", 8192)
			r.Size, r.EndOffset = 3<<30, 8192+3<<30
			r.Parts = []FilePart{{Part: 2, At: Address{Volume: "V00002", TapeFile: 2, Block: 0, Offset: 1536}, DataOffset: 1<<30 - 10240}}
			return r
		}(),
	}
	b, err := f.s.BeginFiles(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range in {
		if err := b.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := b.Flush(ctx, 8192+3<<30); err != nil || n != len(in) {
		t.Fatalf("Flush = %d, %v", n, err)
	}
	got, err := f.s.ListFiles(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("ListFiles: %d rows, want %d", len(got), len(in))
	}
	for i := range in {
		want := in[i]
		want.EndOffset = 0 // not stored
		if g := got[i].FileRow; !reflect.DeepEqual(g, want) || got[i].JobID != job {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, g, want)
		}
	}
	if RenderPath(in[0].Path) != `"/tmp/bad\xff\xfename"` || RenderPath(in[1].Path) != `"/tmp/new\nline"` || RenderPath([]byte("/tmp/été")) != "/tmp/été" {
		t.Errorf("RenderPath: %s %s", RenderPath(in[0].Path), RenderPath(in[1].Path))
	}
	if !bytes.Equal(got[2].Path, []byte(long)) {
		t.Errorf("4096-byte path came back as %d bytes", len(got[2].Path))
	}
}

// compareModes runs a test of Deletions with the chain's view compared in
// the director's memory and by PostgreSQL (WithMemCompareRows(0)).
func compareModes(t *testing.T, test func(t *testing.T, f *fixture)) {
	t.Run("memory", func(t *testing.T) { test(t, newFixture(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, newFixture(t, WithMemCompareRows(0))) })
}

// backupWith runs a job of level storing stored and having seen seen, as
// the runner does: the deletions are begun first and the seen paths
// copied while the job's file rows are committed on other connections.
// It returns the job id.
func (f *fixture) backupWith(t *testing.T, level string, stored, seen []string) int64 {
	t.Helper()
	job, _ := f.backupFetch(t, level, stored, seen)
	return job
}

// backupFetch is backupWith that also asks, as the runner does once the
// walk is over, which paths the client must still store (Unknown): a
// seen path not in stored and not a directory counts as unchanged by its
// times. The job then stores them too. It returns the job id and those
// paths, space-separated.
func (f *fixture) backupFetch(t *testing.T, level string, stored, seen []string) (int64, string) {
	t.Helper()
	job, d := f.backup(t, "nightly", "web1", idHome, level, 0)
	if d.Level != level {
		t.Fatalf("level %s ran as %s (%s)", level, d.Level, d.Reason)
	}
	dels, err := f.s.BeginDeletions(f.ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	paths := make([][]byte, len(seen))
	unchanged := make([]byte, (len(seen)+7)/8)
	for i, p := range seen {
		paths[i] = []byte(p)
		if !strings.HasSuffix(p, "/") && !slices.Contains(stored, p) {
			unchanged[i/8] |= 1 << (i % 8)
		}
	}
	if err := dels.Add(paths, unchanged, nil); err != nil {
		t.Fatal(err)
	}
	var fetched []string
	if _, err := dels.Unknown(f.ctx, func(batch [][]byte) error {
		for _, p := range batch {
			fetched = append(fetched, string(p))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stored = append(slices.Clip(stored), fetched...)
	tf := f.part(t, job, "V00001")
	b, err := f.s.BeginFiles(f.ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range stored {
		r := row(p, "V00001", int64(i)*1024)
		r.At.TapeFile = tf
		if err := b.Add(f.ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Flush(f.ctx, int64(len(stored))*1024); err != nil {
		t.Fatal(err)
	}
	if err := f.s.CompletePart(f.ctx, job, 1, 1, int64(len(stored))*1024); err != nil {
		t.Fatal(err)
	}
	if _, err := dels.Finish(f.ctx); err != nil {
		t.Fatal(err)
	}
	if dels.Seen() != int64(len(seen)) {
		t.Fatalf("Seen() = %d, want %d", dels.Seen(), len(seen))
	}
	f.end(t, job, JobOK)
	return job, strings.Join(fetched, " ")
}

// TestFlushAsync: FlushAsync hands the rows over and the next rows are
// added while they commit; Sync waits for the commit; OnCommit counts
// them; a refused commit (the job ended meanwhile) fails Sync and every
// later FlushAsync, and commits nothing.
func TestFlushAsync(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	job, b := f.fullBatch(t)
	var commits []string
	b.OnCommit = func(rows int, upTo int64) { commits = append(commits, fmt.Sprintf("%d@%d", rows, upTo)) }
	add := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := b.Add(ctx, row("/d/f"+itoa(int64(i)), "V00001", int64(i)*1024)); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(0, 3)
	if n, err := b.FlushAsync(ctx, 2048); err != nil || n != 2 || b.Flushed() != 2048 || b.Buffered() != 1 {
		t.Fatalf("FlushAsync(2048) = %d, %v; flushed %d, buffered %d", n, err, b.Flushed(), b.Buffered())
	}
	add(3, 5) // while the first two commit
	if err := b.Sync(); err != nil || b.Committed() != 2048 {
		t.Fatalf("Sync = %v, committed %d", err, b.Committed())
	}
	if n, err := b.FlushAsync(ctx, 4096); err != nil || n != 2 {
		t.Fatalf("FlushAsync(4096) = %d, %v", n, err)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	got, err := f.s.ListFiles(ctx, job)
	if err != nil || strings.Join(paths(got), ",") != "/d/f0,/d/f1,/d/f2,/d/f3" {
		t.Fatalf("committed rows %v, %v", paths(got), err)
	}
	if strings.Join(commits, " ") != "2@2048 2@4096" {
		t.Fatalf("OnCommit calls %q", commits)
	}
	// The job ends (E) before the next commit: it is refused.
	f.end(t, job, JobError)
	if n, err := b.FlushAsync(ctx, 5120); err != nil || n != 1 {
		t.Fatalf("FlushAsync after the end = %d, %v (the refusal comes from Sync)", n, err)
	}
	var se *JobStateError
	if err := b.Sync(); !errors.As(err, &se) {
		t.Fatalf("Sync after the job ended = %v, want a JobStateError", err)
	}
	if _, err := b.FlushAsync(ctx, 5120); !errors.As(err, &se) {
		t.Fatalf("FlushAsync after a refused commit = %v, want the same error", err)
	}
	if got, _ := f.s.ListFiles(ctx, job); len(got) != 4 || b.Committed() != 4096 {
		t.Fatalf("after the refusal: %d rows, committed %d", len(got), b.Committed())
	}
}

// TestFlushAsyncStreams: a second FlushAsync returns while the first
// commit waits (for the job row, held here), and the two commit in order;
// when a commit fails, the one after it rolls back although its own rows
// are fine, and the flushed offset stays at the last commit before.
func TestFlushAsyncStreams(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	job, b := f.fullBatch(t)
	if b.Streams != 2 {
		t.Fatalf("Streams = %d, want 2", b.Streams)
	}
	var commits []string
	b.OnCommit = func(rows int, upTo int64) { commits = append(commits, fmt.Sprintf("%d@%d", rows, upTo)) }
	for i := range 4 {
		if err := b.Add(ctx, row("/d/f"+itoa(int64(i)), "V00001", int64(i)*1024)); err != nil {
			t.Fatal(err)
		}
	}
	lock, err := f.s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx) //nolint:errcheck // committed below
	if _, err := lock.Exec(ctx, `SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE`, job); err != nil {
		t.Fatal(err)
	}
	if n, err := b.FlushAsync(ctx, 1024); err != nil || n != 1 {
		t.Fatalf("FlushAsync(1024) = %d, %v", n, err)
	}
	second := make(chan error, 1)
	go func() { _, err := b.FlushAsync(ctx, 3072); second <- err }()
	select {
	case err := <-second:
		if err != nil {
			t.Fatalf("FlushAsync(3072) = %v", err)
		}
	case <-time.After(20 * time.Second): // a failure bound, not a wait: it returns at once
		t.Fatal("FlushAsync(3072) waited for the commit before it, which waits for the job row")
	}
	if err := lock.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(); err != nil || b.Committed() != 3072 {
		t.Fatalf("Sync = %v, committed %d", err, b.Committed())
	}
	if strings.Join(commits, " ") != "1@1024 2@3072" {
		t.Fatalf("OnCommit calls %q", commits)
	}
	// The next commit fails (a constraint of this test refuses one of its
	// rows); the one after it, with acceptable rows, must not commit.
	if _, err := f.s.Pool().Exec(ctx, `ALTER TABLE files ADD CONSTRAINT test_refused CHECK (path <> '/d/bad')`); err != nil {
		t.Fatal(err)
	}
	for i, p := range []string{"/d/f4", "/d/bad", "/d/f6", "/d/f7"} {
		if err := b.Add(ctx, row(p, "V00001", int64(4+i)*1024)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.FlushAsync(ctx, 6144); err != nil {
		t.Fatalf("FlushAsync(6144) = %v", err)
	}
	if _, err := b.FlushAsync(ctx, 8192); err != nil {
		t.Fatalf("FlushAsync(8192) = %v (the failure comes from Sync)", err)
	}
	err = b.Sync()
	if err == nil || !strings.Contains(err.Error(), "test_refused") {
		t.Fatalf("Sync = %v, want the check violation of the first failed commit", err)
	}
	var flushed int64
	if err := f.s.Pool().QueryRow(ctx, `SELECT flushed_offset FROM jobs WHERE id = $1`, job).Scan(&flushed); err != nil {
		t.Fatal(err)
	}
	got, err := f.s.ListFiles(ctx, job)
	if err != nil || strings.Join(paths(got), ",") != "/d/f0,/d/f1,/d/f2" || flushed != 3072 || b.Committed() != 3072 {
		t.Fatalf("after the failed commit: rows %v (%v), flushed_offset %d, Committed %d; want the first three rows at 3072", paths(got), err, flushed, b.Committed())
	}
	if _, err := b.FlushAsync(ctx, 8192); err == nil || !strings.Contains(err.Error(), "test_refused") {
		t.Fatalf("FlushAsync after a failed commit = %v, want the same error", err)
	}
}

// TestUnknownPaths: after the walk, the paths the client saw unchanged
// by their times but the chain's view lacks are the ones to fetch: the
// files of a directory moved into the backup (never in a row of the
// chain), and of one moved back to where an earlier job recorded them
// deleted. Known paths, stored paths and directories are not fetched; a
// Differential compares with its Full.
func TestUnknownPaths(t *testing.T) { compareModes(t, testUnknownPaths) }

func testUnknownPaths(t *testing.T, f *fixture) {
	f.backupWith(t, LevelFull, []string{"/d/", "/d/a", "/d/x/", "/d/x/1", "/d/x/2"}, []string{"/d/", "/d/a", "/d/x/", "/d/x/1", "/d/x/2"})
	// /d/x moved to /d/y: the directory is stored (its ctime changed), its
	// files keep their times.
	if _, got := f.backupFetch(t, LevelIncremental, []string{"/d/", "/d/y/"}, []string{"/d/", "/d/a", "/d/y/", "/d/y/1", "/d/y/2"}); got != "/d/y/1 /d/y/2" {
		t.Fatalf("after the move: fetch %q", got)
	}
	// Moved back: /d/x/1 has a row of the Full, but the first Incremental
	// recorded it deleted.
	if _, got := f.backupFetch(t, LevelIncremental, []string{"/d/", "/d/x/"}, []string{"/d/", "/d/a", "/d/x/", "/d/x/1", "/d/x/2"}); got != "/d/x/1 /d/x/2" {
		t.Fatalf("after the move back: fetch %q", got)
	}
	// Nothing moved; a new file is stored by its times, not fetched.
	inc, got := f.backupFetch(t, LevelIncremental, []string{"/d/", "/d/new"}, []string{"/d/", "/d/a", "/d/new", "/d/x/", "/d/x/1", "/d/x/2"})
	if got != "" {
		t.Fatalf("nothing moved: fetch %q", got)
	}
	if got := f.deletions(t, inc); got != "" {
		t.Fatalf("nothing moved: deletions %q", got)
	}
	// A Differential's view is its Full's: /d/x/1 is known there, /d/new
	// (stored by an Incremental only) is not.
	if _, got := f.backupFetch(t, LevelDifferential, []string{"/d/"}, []string{"/d/", "/d/a", "/d/new", "/d/x/", "/d/x/1"}); got != "/d/new" {
		t.Fatalf("Differential: fetch %q", got)
	}
}

// TestUnlistedPathsRecordNoDeletions: paths at or below a directory the
// client could not read (and an entry it could not lstat) are not
// recorded deleted; the rest of the comparison is unchanged.
func TestUnlistedPathsRecordNoDeletions(t *testing.T) {
	compareModes(t, testUnlistedPathsRecordNoDeletions)
}

func testUnlistedPathsRecordNoDeletions(t *testing.T, f *fixture) {
	all := []string{"/d/", "/d/a", "/d/locked/", "/d/locked/s/", "/d/locked/s/f", "/d/lockedness", "/d/odd"}
	f.backupWith(t, LevelFull, all, all)
	job, _ := f.backup(t, "nightly", "web1", idHome, LevelIncremental, 0)
	dels, err := f.s.BeginDeletions(f.ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	// Seen: /d/ and /d/locked/ only (its contents unreadable, /d/odd
	// not lstat-able); /d/a and /d/lockedness are gone.
	if err := dels.Add([][]byte{[]byte("/d/"), []byte("/d/locked/")}, nil, [][]byte{[]byte("/d/locked"), []byte("/d/odd")}); err != nil {
		t.Fatal(err)
	}
	if _, err := dels.Finish(f.ctx); err != nil {
		t.Fatal(err)
	}
	if dels.Unlisted() != 2 {
		t.Errorf("Unlisted() = %d", dels.Unlisted())
	}
	f.end(t, job, JobOK)
	if got := f.deletions(t, job); got != "/d/a /d/lockedness" {
		t.Fatalf("deletions %q, want /d/a /d/lockedness", got)
	}
}

// RecordDeletions (the whole walk at once) records what Deletions does,
// and a job interrupted while its client walks records none.
func TestRecordDeletionsAndInterrupted(t *testing.T) {
	compareModes(t, testRecordDeletionsAndInterrupted)
}

func testRecordDeletionsAndInterrupted(t *testing.T, f *fixture) {
	f.backupWith(t, LevelFull, []string{"/d/a", "/d/b"}, []string{"/d/a", "/d/b"})
	job, _ := f.backup(t, "nightly", "web1", idHome, LevelIncremental, 0)
	n, err := f.s.RecordDeletions(f.ctx, job, func(yield func([]byte) bool) { yield([]byte("/d/a")) })
	if err != nil || n != 1 || f.deletions(t, job) != "/d/b" {
		t.Fatalf("RecordDeletions = %d, %v; deletions %q", n, err, f.deletions(t, job))
	}
	f.end(t, job, JobOK)

	job, _ = f.backup(t, "nightly", "web1", idHome, LevelIncremental, 0)
	dels, err := f.s.BeginDeletions(f.ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if err := dels.Add([][]byte{[]byte("/d/a")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.InterruptRunning(f.ctx, "director stopped"); err != nil {
		t.Fatal(err)
	}
	var se *JobStateError
	if _, err := dels.Finish(f.ctx); !errors.As(err, &se) {
		t.Fatalf("Finish of an interrupted job: %v", err)
	}
	if got := f.deletions(t, job); got != "" {
		t.Fatalf("an interrupted job recorded deletions %q", got)
	}
	dels.Abort() // after Finish: a no-op
}

func (f *fixture) view(t *testing.T, before time.Time) string {
	t.Helper()
	v, err := f.s.CurrentView(f.ctx, Chain{Job: "nightly", Client: "web1", Fileset: "home"}, before)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = string(x.Path) + "@" + itoa(x.JobID)
	}
	return strings.Join(out, " ")
}

func (f *fixture) deletions(t *testing.T, job int64) string {
	t.Helper()
	d, err := f.s.Deletions(f.ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.Join(d, []byte(" ")))
}

func TestDeletionsAndCurrentView(t *testing.T) { compareModes(t, testDeletionsAndCurrentView) }

func testDeletionsAndCurrentView(t *testing.T, f *fixture) {
	if _, err := f.s.CurrentView(f.ctx, Chain{Job: "nightly", Client: "web1", Fileset: "home"}, time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("view with no Full: %v", err)
	}
	// Full: a, b, c, x.
	full := f.backupWith(t, LevelFull, []string{"/d/a", "/d/b", "/d/c", "/d/x"}, []string{"/d/a", "/d/b", "/d/c", "/d/x"})
	afterFull := f.clock.Now()
	// Inc1: b renamed to b2 (b2 stored, b gone), x deleted, a and c unchanged.
	inc1 := f.backupWith(t, LevelIncremental, []string{"/d/b2"}, []string{"/d/a", "/d/b2", "/d/c"})
	if got := f.deletions(t, inc1); got != "/d/b /d/x" {
		t.Fatalf("Inc1 deletions = %q", got)
	}
	afterInc1 := f.clock.Now()
	// Diff: c deleted, b re-created. Its chain is the Full alone: x (deleted
	// in Inc1, which a Full+Diff restore does not read) is recorded again.
	diff := f.backupWith(t, LevelDifferential, []string{"/d/b", "/d/b2"}, []string{"/d/a", "/d/b", "/d/b2"})
	if got := f.deletions(t, diff); got != "/d/c /d/x" {
		t.Fatalf("Diff deletions = %q", got)
	}
	// Inc2: a deleted, c re-created.
	inc2 := f.backupWith(t, LevelIncremental, []string{"/d/c"}, []string{"/d/b", "/d/b2", "/d/c"})
	if got := f.deletions(t, inc2); got != "/d/a" {
		t.Fatalf("Inc2 deletions = %q", got)
	}
	if j, _ := f.s.GetJob(f.ctx, inc2); j.Deletions != 1 {
		t.Fatalf("Inc2 deletions_count = %d", j.Deletions)
	}
	d, i := itoa(diff), itoa(inc2)
	if got, want := f.view(t, time.Time{}), "/d/b@"+d+" /d/b2@"+d+" /d/c@"+i; got != want {
		t.Fatalf("current view = %q, want %q", got, want)
	}
	fu, i1 := itoa(full), itoa(inc1)
	if got, want := f.view(t, afterInc1), "/d/a@"+fu+" /d/b2@"+i1+" /d/c@"+fu; got != want {
		t.Fatalf("view before the Diff = %q, want %q", got, want)
	}
	if got, want := f.view(t, afterFull), "/d/a@"+fu+" /d/b@"+fu+" /d/c@"+fu+" /d/x@"+fu; got != want {
		t.Fatalf("view after the Full = %q, want %q", got, want)
	}
	// Addresses come with the view.
	v, err := f.s.CurrentView(f.ctx, Chain{Job: "nightly", Client: "web1", Fileset: "home"}, time.Time{})
	if err != nil || v[2].At.Volume != "V00001" || v[2].At.TapeFile != 5 || v[2].StreamOffset != 0 {
		t.Fatalf("view addresses: %+v, %v", v, err)
	}
	// A path the job stored is not deleted even if the caller left it out
	// of the paths seen.
	inc3 := f.backupWith(t, LevelIncremental, []string{"/d/b"}, []string{"/d/b2", "/d/c"})
	if got := f.deletions(t, inc3); got != "" {
		t.Fatalf("Inc3 deletions = %q", got)
	}
	if got, want := f.view(t, time.Time{}), "/d/b@"+itoa(inc3)+" /d/b2@"+d+" /d/c@"+i; got != want {
		t.Fatalf("view after Inc3 = %q, want %q", got, want)
	}
	// A Full records no deletions.
	full2 := f.backupWith(t, LevelFull, []string{"/e"}, []string{"/e"})
	if got := f.deletions(t, full2); got != "" {
		t.Fatalf("Full deletions = %q", got)
	}
	if got, want := f.view(t, time.Time{}), "/e@"+itoa(full2); got != want {
		t.Fatalf("view after the second Full = %q, want %q", got, want)
	}
}

func TestInterruptRunningEndsEveryActiveJob(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	created, err := f.s.CreateJob(ctx, JobNew{Name: "adm", Type: TypeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	waiting, _ := f.backup(t, "nightly", "web1", idHome, LevelFull, 0)
	if err := f.s.SetJobStatus(ctx, waiting, JobWaitMedia); err != nil {
		t.Fatal(err)
	}
	done, _ := f.backup(t, "nightly", "web2", idHome, LevelFull, 0)
	f.end(t, done, JobOK)
	ids, err := f.s.InterruptRunning(ctx, "director restarted")
	if err != nil || !slices.Equal(ids, []int64{created, waiting}) {
		t.Fatalf("InterruptRunning = %v, %v; want [%d %d]", ids, err, created, waiting)
	}
	for _, id := range ids {
		if j, _ := f.s.GetJob(ctx, id); j.Status != JobError || !strings.Contains(j.Error, "interrupted at") {
			t.Errorf("job %d after InterruptRunning: %+v", id, j)
		}
	}
	if j, _ := f.s.GetJob(ctx, done); j.Status != JobOK || j.Error != "" {
		t.Errorf("an ended job was touched: %+v", j)
	}
}

// Two jobs loading at once interleave their flushes: each lists exactly
// its own rows (the BRIN ranges overlap; the rows do not mix).
func TestInterleavedJobs(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	j1, _ := f.backup(t, "nightly", "web1", idHome, LevelFull, 0)
	j2, _ := f.backup(t, "nightly", "web2", idHome, LevelFull, 0)
	f.part(t, j1, "V00001")
	f.label(t, "V00002", "", "sd1", NoSlot, f.testRing(t))
	if err := f.s.RecordPart(ctx, j2, Part{Part: 1, Volume: "V00002", VolumeIndex: 1, TapeFile: 2}); err != nil {
		t.Fatal(err)
	}
	b1, err := f.s.BeginFiles(ctx, j1)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := f.s.BeginFiles(ctx, j2)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := range n {
		if err := b1.Add(ctx, row("/one/"+itoa(int64(i)), "V00001", int64(i)*1024)); err != nil {
			t.Fatal(err)
		}
		if err := b2.Add(ctx, row("/two/"+itoa(int64(i)), "V00002", int64(i)*1024)); err != nil {
			t.Fatal(err)
		}
		if i%500 == 499 {
			if _, err := b1.Flush(ctx, int64(i+1)*1024); err != nil {
				t.Fatal(err)
			}
			if _, err := b2.Flush(ctx, int64(i+1)*1024); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		job    int64
		prefix string
		vol    string
	}{{j1, "/one/", "V00001"}, {j2, "/two/", "V00002"}} {
		if err := f.s.EndJob(ctx, c.job, JobOK, JobSummary{EndedAt: f.clock.Now()}); err != nil {
			t.Fatal(err)
		}
		got, err := f.s.ListFiles(ctx, c.job)
		if err != nil || len(got) != n {
			t.Fatalf("job %d: %d rows, %v", c.job, len(got), err)
		}
		for i, r := range got {
			if string(r.Path) != c.prefix+itoa(int64(i)) || r.At.Volume != c.vol || r.StreamOffset != int64(i)*1024 {
				t.Fatalf("job %d row %d = %s at %+v offset %d", c.job, i, r.Path, r.At, r.StreamOffset)
			}
		}
		if j, _ := f.s.GetJob(ctx, c.job); j.Files != n || j.Bytes != 100*n || j.Status != JobOK {
			t.Fatalf("job %d = %+v", c.job, j)
		}
	}
}

// A crash leaves job A's tape file 3 incomplete with flushed rows; the next
// job B writes at NextTapeFile (3 again): A's rows there are removed in the
// same transaction, so the catalog never lists bytes written over. While A
// is still running nobody may write over its tape file.
func TestOverwriteIncompleteTapeFile(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	f.label(t, "V00001", "", "sd1", NoSlot, f.testRing(t))
	f.label(t, "V00002", "", "sd1", NoSlot, f.testRing(t))
	a, _ := f.backup(t, "nightly", "web1", idHome, LevelFull, 0)
	// A: tape file 2 of V00001 complete, tape file 3 partial; /two is on
	// tape file 2, /cut starts there and continues on tape file 3, /three
	// is on tape file 3.
	for _, p := range []Part{{Part: 1, Volume: "V00001", VolumeIndex: 1, TapeFile: 2}, {Part: 2, Volume: "V00001", VolumeIndex: 1, TapeFile: 3, FirstStreamOffset: 4096}} {
		if err := f.s.RecordPart(ctx, a, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.s.CompletePart(ctx, a, 1, 10, 1<<20); err != nil {
		t.Fatal(err)
	}
	b, err := f.s.BeginFiles(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	cut := row("/cut", "V00001", 1024)
	cut.EndOffset = 6144
	cut.Parts = []FilePart{{Part: 2, At: Address{Volume: "V00001", TapeFile: 3}, DataOffset: 2048}}
	onThree := row("/three", "V00001", 6144)
	onThree.At.TapeFile = 3
	for _, r := range []FileRow{row("/two", "V00001", 0), cut, onThree} {
		if err := b.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Flush(ctx, 8192); err != nil {
		t.Fatal(err)
	}
	// B may not write over A's tape file while A runs.
	bj, _ := f.backup(t, "nightly", "web2", idHome, LevelFull, 0)
	var se *JobStateError
	if err := f.s.RecordPart(ctx, bj, Part{Part: 1, Volume: "V00001", VolumeIndex: 1, TapeFile: 3}); !errors.As(err, &se) || se.JobID != a {
		t.Fatalf("writing over a running job's tape file: %v", err)
	}
	if _, err := f.s.InterruptRunning(ctx, "crash"); err != nil {
		t.Fatal(err)
	}
	next, err := f.s.NextTapeFile(ctx, "V00001")
	if err != nil || next != 3 {
		t.Fatalf("NextTapeFile = %d, %v", next, err)
	}
	if got, _ := f.s.ListFiles(ctx, a); strings.Join(paths(got), ",") != "/two,/cut,/three" {
		t.Fatalf("A's rows before the overwrite: %v", paths(got))
	}
	c, _ := f.backup(t, "nightly", "web3", idHome, LevelFull, 0)
	if err := f.s.RecordPart(ctx, c, Part{Part: 1, Volume: "V00001", VolumeIndex: 1, TapeFile: next}); err != nil {
		t.Fatal(err)
	}
	got, err := f.s.ListFiles(ctx, a)
	if err != nil || strings.Join(paths(got), ",") != "/two" {
		t.Fatalf("A's rows after job %d wrote over tape file 3: %v, %v", c, paths(got), err)
	}
	j, _ := f.s.GetJob(ctx, a)
	if j.Files != 1 || !strings.Contains(j.Error, "its incomplete tape file 3 of volume V00001 was written over by job "+itoa(c)) {
		t.Fatalf("A after the overwrite: %+v", j)
	}
	var n int
	if err := f.s.Pool().QueryRow(ctx, `SELECT count(*) FROM file_parts WHERE job_id = $1`, a).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d file_parts rows of A left, %v", n, err)
	}
}

// A member whose header is before the flushed offset and whose data goes
// on past it (a large file storaged flushed in the middle of) is added
// after that flush and committed by a later one — also by a FileBatch
// opened again on the job.
func TestMemberStraddlingAFlush(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	job, b := f.fullBatch(t)
	if err := b.Add(ctx, row("/d/a", "V00001", 0)); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Flush(ctx, 50000); err != nil || n != 1 {
		t.Fatalf("Flush(50000) = %d, %v", n, err)
	}
	big := row("/d/big", "V00001", 1024)
	big.EndOffset = 100000
	if err := b.Add(ctx, big); err != nil {
		t.Fatalf("adding the member straddling the flushed offset: %v", err)
	}
	if err := b.Add(ctx, row("/d/a", "V00001", 0)); err == nil {
		t.Fatal("a row before the last one was taken")
	}
	if n, err := b.Flush(ctx, 100000); err != nil || n != 1 {
		t.Fatalf("Flush(100000) = %d, %v", n, err)
	}
	b2, err := f.s.BeginFiles(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.Add(ctx, row("/d/big", "V00001", 1024)); err == nil {
		t.Fatal("a reopened batch took a row already committed")
	}
	if err := b2.Add(ctx, row("/d/c", "V00001", 100000)); err != nil {
		t.Fatal(err)
	}
	if n, err := b2.Flush(ctx, 101024); err != nil || n != 1 {
		t.Fatalf("Flush(101024) = %d, %v", n, err)
	}
	got, _ := f.s.ListFiles(ctx, job)
	if strings.Join(paths(got), ",") != "/d/a,/d/big,/d/c" {
		t.Fatalf("files: %v", paths(got))
	}
}

// RecordPart of a part already recorded: the same tape file is a no-op
// (storaged records each tape file before writing it, and the job's
// event stream names it again); another is refused.
func TestRecordPartTwice(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	job, _ := f.backup(t, "nightly", "web1", idHome, LevelFull, 0)
	tf := f.part(t, job, "V00001")
	if err := f.s.RecordPart(ctx, job, Part{Part: 1, Volume: "V00001", VolumeIndex: 1, TapeFile: tf}); err != nil {
		t.Fatalf("the same part again: %v", err)
	}
	if err := f.s.RecordPart(ctx, job, Part{Part: 1, Volume: "V00001", VolumeIndex: 1, TapeFile: tf + 1}); err == nil ||
		!strings.Contains(err.Error(), "is recorded as data tape file") {
		t.Fatalf("part 1 on another tape file: %v", err)
	}
	if jm, err := f.s.ListJobMedia(ctx, job); err != nil || len(jm) != 1 {
		t.Fatalf("job media %+v, %v", jm, err)
	}
}

// The in-memory comparison marks a batch that comes while the chain's
// paths are still being read once the read is over, the same as one that
// comes after; a failed read fails every later call.
func TestMemViewBatchesDuringAndAfterLoad(t *testing.T) {
	bits := func(n int, set ...int) []byte {
		b := make([]byte, (n+7)/8)
		for _, i := range set {
			b[i/8] |= 1 << (i % 8)
		}
		return b
	}
	m := newMemView(4)
	// During the load: /a (in the view) and /new (unchanged, not in it).
	if err := m.add(seenBatch{[][]byte{[]byte("/a"), []byte("/new")}, bits(2, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	m.tab.put([]byte("/a"), 1)
	m.tab.put([]byte("/b"), 1)
	m.tab.put([]byte("/c"), 1)
	m.tab.put([]byte("/c"), 2)
	m.tab.put([]byte("/gone"), 2)
	m.dels["/c"] = 2 // deleted by the job of its latest row's rank: still in the view
	m.dels["/b"] = 3 // deleted after its latest row: not in the view
	if len(m.unknown) != 0 {
		t.Fatalf("a batch was compared before the load ended: %q", m.unknown)
	}
	m.endLoad(nil)
	close(m.done)
	// After the load: /b and /c, unchanged.
	if err := m.add(seenBatch{[][]byte{[]byte("/c"), []byte("/b")}, bits(2, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := m.wait(); err != nil {
		t.Fatal(err)
	}
	if got := string(bytes.Join(m.unknownPaths(), []byte(" "))); got != "/b /new" {
		t.Fatalf("unknown %q, want /b /new", got)
	}
	if paths, ranks := m.unseen(); len(paths) != 1 || string(paths[0]) != "/gone" || ranks[0] != 2 {
		t.Fatalf("unseen %q ranks %d, want /gone rank 2", paths, ranks)
	}

	m = newMemView(0)
	m.endLoad(errors.New("connection lost"))
	close(m.done)
	if err := m.add(seenBatch{[][]byte{[]byte("/a")}, nil}); err == nil || m.wait() == nil {
		t.Fatalf("after a failed load: add %v, wait %v", err, m.wait())
	}
}
