package catalog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BenchmarkCreateLabeling is the catalog's share of labeling one slot:
// make and wrap a key, insert the row + "generated" event (one committed
// transaction). The goal for the whole label flow is 100 slots in ≤ 10 s.
func BenchmarkCreateLabeling(b *testing.B) {
	f := newFixture(b)
	k := newKEKs(b, 1)[0]
	r := ring(b, k, k)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sk, err := r.WrapNew()
		if err != nil {
			b.Fatal(err)
		}
		_, err = f.s.CreateLabeling(f.ctx, MediaNew{Volume: fmt.Sprintf("B%06d", i), Barcode: fmt.Sprintf("B%05dL6", i),
			Pool: "Offsite", Storage: "sd1", Slot: i, Encrypted: true, Key: &sk})
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkLabelSlot is CreateLabeling + MarkLabeled: every catalog write
// of one slot's label flow.
func BenchmarkLabelSlot(b *testing.B) {
	f := newFixture(b)
	k := newKEKs(b, 1)[0]
	r := ring(b, k, k)
	now := time.Now()
	i := 0
	for b.Loop() {
		sk, err := r.WrapNew()
		if err != nil {
			b.Fatal(err)
		}
		v := fmt.Sprintf("B%06d", i)
		if _, err = f.s.CreateLabeling(f.ctx, MediaNew{Volume: v, Pool: "Offsite", Storage: "sd1", Slot: i, Encrypted: true, Key: &sk}); err != nil {
			b.Fatal(err)
		}
		if err := f.s.MarkLabeled(f.ctx, v, now, &now); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkVolumeKey is one key fetch by the owning storage (the mount
// path) over a catalog of 200 volumes.
func BenchmarkVolumeKey(b *testing.B) {
	f := newFixture(b)
	k := newKEKs(b, 1)[0]
	r := ring(b, k, k)
	const n = 200
	for i := range n {
		f.label(b, fmt.Sprintf("V%04d", i), "", "sd1", i, r)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sk, err := f.s.VolumeKey(f.ctx, fmt.Sprintf("V%04d", i%n), "sd1")
		if err != nil || sk.Value == "" {
			b.Fatal(err)
		}
		i++
	}
}

// benchFiles is the number of file rows BenchmarkFileRows loads per
// strategy: $TAPEWARD_BENCH_FILES, default 200,000 (make bench). The
// issue's figure is for 1,000,000:
//
//	TAPEWARD_BENCH_FILES=1000000 go test -run '^$' -bench FileRows -benchtime 1x ./director/catalog/
func benchFiles(b *testing.B) int {
	if v := os.Getenv("TAPEWARD_BENCH_FILES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("TAPEWARD_BENCH_FILES=%q is not a positive number", v)
		}
		return n
	}
	return 200_000
}

// benchRows makes n file rows like a home directory's: paths of ~45
// bytes, a 32-byte digest, addresses in tape file 2 of vol.
func benchRows(n int, vol string) []FileRow {
	rows := make([]FileRow, n)
	paths := make([]byte, 0, n*48)
	sums := make([]byte, n*32)
	var off int64
	for i := range rows {
		start := len(paths)
		paths = fmt.Appendf(paths, "/home/user%03d/projects/src/module%02d/file%06d.go", i%997, (i/1000)%100, i)
		sum := sums[i*32 : i*32+32 : i*32+32]
		binary.LittleEndian.PutUint64(sum, uint64(i)*0x9e3779b97f4a7c15)
		binary.LittleEndian.PutUint64(sum[8:], uint64(i)^0xdeadbeefcafef00d)
		size := int64(1000 + i%50000)
		stored := 512 + (size+511)/512*512
		rows[i] = FileRow{Path: paths[start:len(paths):len(paths)], Type: FileRegular, Size: size, Mode: 0o644, UID: 1000, GID: 100,
			Uname: "alice", Gname: "users", MtimeNS: 1748781000123456789 + int64(i), SHA256: sum,
			At: Address{Volume: vol, TapeFile: 2, Block: off >> 20, Offset: int(off & (1<<20 - 1))}, StreamOffset: off, EndOffset: off + stored}
		off += stored
	}
	return rows
}

// BenchmarkFileRows loads the same rows (benchFiles of them) several ways
// in one run and reports rows/s for each, their ratios to the raw COPY, and
// the cost of building a (job_id, path) index after a load:
//
//   - raw: one pgx CopyFrom of every row into files_raw, a table with the
//     columns of files and no index or constraint (the §9 baseline);
//   - batch (measured twice, mean): FileBatch.Add of every row with a
//     FlushAsync every 16,384 rows (one transaction each: COPY, job row
//     lock, job counters; the next rows are added while it commits, as
//     the runner does; DefaultStreams commits in flight) and a Sync at the
//     end, into files as migration 003 makes it (a BRIN index on job_id
//     only): the catalog path a backup takes; brin_summarize_s is
//     EndJob's summarizing of the BRIN ranges the load filled;
//   - batch1 (twice, mean): batch with Streams = 1 (one commit in flight,
//     FileBatch until 2026-12-03);
//   - noidx: the same with no index at all (what the FileBatch path costs
//     by itself: transactions, job row, Go side);
//   - pk: the same with a primary key (job_id, stream_offset) instead of
//     the BRIN index (the first design);
//   - pathidx: batch with a btree on (job_id, path) maintained during the
//     load too (the alternative: an index for path lookups);
//   - idx_after: CREATE INDEX (job_id, path) on files_raw after its load,
//     seconds (the other alternative: index after the job).
//
// raw, batch and batch1 run in turns twice (batch/raw and batch1/raw are
// the means of each turn's ratio to its raw run); raw once more at the end
// (raw_rows/s is the mean of three).
func BenchmarkFileRows(b *testing.B) {
	f := newFixture(b)
	ctx := f.ctx
	n := benchFiles(b)
	f.label(b, "BENCH1", "", "sd1", NoSlot, nil)
	rows := benchRows(n, "BENCH1")
	pool := f.s.Pool()
	exec := func(sql string) {
		if _, err := pool.Exec(ctx, sql); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`CREATE TABLE files_raw (LIKE files)`)
	newJob := func() int64 {
		id, err := f.s.CreateJob(ctx, JobNew{Name: "bench", Type: TypeBackup, Level: LevelFull, Client: "c", Fileset: "fs", FilesetIdentity: idBench})
		if err != nil {
			b.Fatal(err)
		}
		if err := f.s.StartJob(ctx, id, LevelDecision{Level: LevelFull}, f.clock.Now()); err != nil {
			b.Fatal(err)
		}
		if err := f.s.RecordPart(ctx, id, Part{Part: 1, Volume: "BENCH1", VolumeIndex: 1, TapeFile: 2}); err != nil {
			b.Fatal(err)
		}
		// Complete at once: every bench job writes "tape file 2", and a job
		// starting at an incomplete tape file of an ended job would remove
		// that job's rows (overwriteTx).
		if err := f.s.CompletePart(ctx, id, 1, 0, 0); err != nil {
			b.Fatal(err)
		}
		return id
	}
	var mediaID int64
	if err := pool.QueryRow(ctx, `SELECT id FROM media WHERE volume_name = 'BENCH1'`).Scan(&mediaID); err != nil {
		b.Fatal(err)
	}
	media := make([]int64, n)
	for i := range media {
		media[i] = mediaID
	}
	// raw: one COPY of every row, encoded as FileBatch encodes them
	// (fileCopy), on one connection; rawPgx the same through pgx.CopyFrom
	// (generic per-value encoding, FileBatch's until 2026-12-02).
	raw := func() float64 {
		exec(`TRUNCATE files_raw`)
		exec(`CHECKPOINT`)
		c, err := pool.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Release()
		start := time.Now()
		tag, err := c.Conn().PgConn().CopyFrom(ctx, &fileCopy{jobID: 1, rows: rows, media: media}, copyFiles("files_raw"))
		if err != nil || tag.RowsAffected() != int64(n) {
			b.Fatalf("raw COPY: %d rows, %v", tag.RowsAffected(), err)
		}
		return float64(n) / time.Since(start).Seconds()
	}
	rawPgx := func() float64 {
		exec(`TRUNCATE files_raw`)
		exec(`CHECKPOINT`)
		start := time.Now()
		cn, err := pool.CopyFrom(ctx, pgx.Identifier{"files_raw"}, fileColumns, &rowSource{jobID: 1, rows: rows, media: media})
		if err != nil || cn != int64(n) {
			b.Fatalf("raw CopyFrom: %d rows, %v", cn, err)
		}
		return float64(n) / time.Since(start).Seconds()
	}
	var lastJob int64
	batch := func(streams int) float64 {
		exec(`TRUNCATE files`)
		exec(`CHECKPOINT`)
		job := newJob()
		lastJob = job
		start := time.Now()
		fb, err := f.s.BeginFiles(ctx, job)
		if err != nil {
			b.Fatal(err)
		}
		fb.Streams = streams
		const every = 16384
		total := 0
		for i := range rows {
			if err := fb.Add(ctx, rows[i]); err != nil {
				b.Fatal(err)
			}
			if (i+1)%every == 0 || i == len(rows)-1 {
				k, err := fb.FlushAsync(ctx, rows[i].EndOffset) // as the runner: the next rows are added meanwhile
				if err != nil {
					b.Fatal(err)
				}
				total += k
			}
		}
		if err := fb.Sync(); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start).Seconds()
		if total != n {
			b.Fatalf("FileBatch committed %d rows, want %d", total, n)
		}
		return float64(n) / el
	}
	b.ResetTimer()
	for b.Loop() {
		// raw, batch and batch1 take turns (the machine is shared: its
		// speed drifts during a run); each turn gives two ratios to its raw.
		var raws, batches, ratios, ones, oneRatios []float64
		for range 2 {
			r, bt, b1 := raw(), batch(DefaultStreams), batch(1)
			raws, batches, ratios = append(raws, r), append(batches, bt), append(ratios, bt/r)
			ones, oneRatios = append(ones, b1), append(oneRatios, b1/r)
		}
		start := time.Now()
		exec(`SELECT brin_summarize_new_values('files_job_brin'::regclass)`)
		summarize := time.Since(start).Seconds()
		// A restore reads a job's rows through the BRIN index. A small job
		// loaded after the big one must not read the big one's pages.
		big := lastJob
		small := newJob()
		fb, err := f.s.BeginFiles(ctx, small)
		if err != nil {
			b.Fatal(err)
		}
		for i := range 100 {
			if err := fb.Add(ctx, rows[i]); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := fb.Flush(ctx, rows[99].EndOffset); err != nil {
			b.Fatal(err)
		}
		if err := f.s.EndJob(ctx, small, JobOK, JobSummary{EndedAt: f.clock.Now()}); err != nil {
			b.Fatal(err)
		}
		exec(`ANALYZE files`)
		var plan string
		if err := pool.QueryRow(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM files WHERE job_id = $1`, small).Scan(&plan); err != nil {
			b.Fatal(err)
		}
		if !strings.Contains(plan, `"Index Name": "files_job_brin"`) {
			b.Fatalf("the rows of a job are not read through files_job_brin: %s", plan)
		}
		start = time.Now()
		smallList, err := f.s.ListFiles(ctx, small)
		if err != nil || len(smallList) != 100 {
			b.Fatalf("ListFiles(small job) = %d rows, %v", len(smallList), err)
		}
		listSmall := time.Since(start).Seconds()
		start = time.Now()
		bigList, err := f.s.ListFiles(ctx, big)
		if err != nil || len(bigList) != n {
			b.Fatalf("ListFiles(big job) = %d rows, %v", len(bigList), err)
		}
		listBig := time.Since(start).Seconds()
		bigList = nil
		exec(`CHECKPOINT`)
		start = time.Now()
		exec(`CREATE INDEX files_raw_job_path ON files_raw (job_id, path)`)
		idxAfter := time.Since(start).Seconds()
		exec(`DROP INDEX files_raw_job_path`)
		exec(`CREATE INDEX files_bench_job_path ON files (job_id, path)`)
		bp := batch(DefaultStreams)
		exec(`DROP INDEX files_bench_job_path`)
		exec(`DROP INDEX files_job_brin`)
		bn := batch(DefaultStreams)
		exec(`ALTER TABLE files ADD PRIMARY KEY (job_id, stream_offset)`)
		bk := batch(DefaultStreams)
		exec(`ALTER TABLE files DROP CONSTRAINT files_pkey`)
		exec(`CREATE INDEX files_job_brin ON files USING brin (job_id) WITH (pages_per_range = 32, autosummarize = on)`)
		r3 := raw()
		raws = append(raws, r3)
		rp := rawPgx()
		b.ReportMetric(rp, "raw_pgx_rows/s")
		rawMean, bt, ratio := mean(raws), mean(batches), mean(ratios)
		b.ReportMetric(float64(n), "rows")
		b.ReportMetric(rawMean, "raw_rows/s")
		b.ReportMetric(bt, "batch_rows/s")
		b.ReportMetric(ratio, "batch/raw")
		b.ReportMetric(mean(ones), "batch1_rows/s")
		b.ReportMetric(mean(oneRatios), "batch1/raw")
		b.ReportMetric(bp, "pathidx_rows/s")
		b.ReportMetric(bp/rawMean, "pathidx/raw")
		b.ReportMetric(bn, "noidx_rows/s")
		b.ReportMetric(bk, "pk_rows/s")
		b.ReportMetric(bk/rawMean, "pk/raw")
		b.ReportMetric(idxAfter, "idx_after_s")
		b.ReportMetric(summarize, "brin_summarize_s")
		b.ReportMetric(listSmall*1000, "list100_ms")
		b.ReportMetric(listBig, "list_all_s")
		b.ReportMetric(float64(n)/(float64(n)/rawMean+idxAfter), "raw+idx_rows/s")
		b.Logf("%d rows: raw %.0f rows/s (runs %.0f); FileBatch (BRIN on job_id) %.0f rows/s (runs %.0f; ratios to the raw run before each %.2f), with one commit in flight %.0f rows/s (runs %.0f; ratios %.2f), summarizing the BRIN after it %.3f s; "+
			"with a (job_id, path) btree too %.0f rows/s (%.2f× mean raw); with no index at all %.0f rows/s (%.2f×); with a primary key (job_id, stream_offset) instead %.0f rows/s (%.2f×); CREATE INDEX (job_id, path) after the raw load %.2f s; "+
			"ListFiles of a 100-row job loaded after the big one %.1f ms, of the big job %.2f s",
			n, rawMean, raws, bt, batches, ratios, mean(ones), ones, oneRatios, summarize, bp, bp/rawMean, bn, bn/rawMean, bk, bk/rawMean, idxAfter, listSmall*1000, listBig)
	}
}

// rowSource feeds rows to pgx.CopyFrom with one reused value slice (the
// generic encoding, for the raw_pgx comparison).
type rowSource struct {
	jobID int64
	rows  []FileRow
	media []int64 // media_id per row
	i     int
	vals  []any
}

func (s *rowSource) Next() bool { s.i++; return s.i <= len(s.rows) }
func (s *rowSource) Err() error { return nil }
func (s *rowSource) Values() ([]any, error) {
	r := &s.rows[s.i-1]
	if s.vals == nil {
		s.vals = make([]any, len(fileColumns))
	}
	v := s.vals
	v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9] = s.jobID, r.Path, r.Type, r.Size, int32(r.Mode), r.UID, r.GID, r.Uname, r.Gname, r.MtimeNS
	v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17] = r.Link, r.SHA256, s.media[s.i-1], int32(r.At.TapeFile), r.At.Block, int32(r.At.Offset), r.StreamOffset, int16(len(r.Parts))
	v[18] = nil // NULL: the same as size
	if r.StoredSize != 0 && r.StoredSize != r.Size {
		v[18] = r.StoredSize
	}
	return v, nil
}

func mean(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t / float64(len(xs))
}

const idBench = "3333333333333333333333333333333333333333333333333333333333333333"

// BenchmarkDeletions is the catalog's share of an Incremental over an
// unchanged tree (issue 10's "≤ 2× find -newer"): the client reports
// every path it saw, all unchanged by their times (benchFiles of them:
// all in the Full before it but one, which must be recorded deleted, and
// one path new to the catalog, which must be fetched).
//
// memory (the chain's view in the director's memory): BeginDeletions
// reads the chain's paths (load_ms: done while the client walks, which
// takes longer: find -newer over 100,000 files takes 120–200 ms here;
// view_bytes/path: the heap it holds, per path),
// Add marks the seen paths (add_ms: as they arrive), Unknown sorts the
// ones to fetch (compare_ms: what the client waits for once its walk is
// over), Finish records the deletion (finish_ms).
//
// postgres (WithMemCompareRows(0), chains over DefaultMemCompareRows):
// Add copies the paths into a temporary table while the walk runs
// (add_ms), Unknown joins them with the chain's rows once the walk is
// over (compare_ms), Finish records the deletion (finish_ms).
// *_pg_cpu_ms: the COPY backend's CPU time for the same steps.
//
//	TAPEWARD_BENCH_FILES=100000 go test -run '^$' -bench Deletions -benchtime 3x ./director/catalog/
func BenchmarkDeletions(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchDeletions(b, newFixture(b)) })
	b.Run("postgres", func(b *testing.B) { benchDeletions(b, newFixture(b, WithMemCompareRows(0))) })
}

func benchDeletions(b *testing.B, f *fixture) {
	ctx := f.ctx
	n := benchFiles(b)
	f.label(b, "BENCH1", "", "sd1", NoSlot, nil)
	rows := benchRows(n, "BENCH1")
	start := func(level string) int64 {
		id, err := f.s.CreateJob(ctx, JobNew{Name: "bench", Type: TypeBackup, Level: level, Client: "c", Fileset: "fs", FilesetIdentity: idBench})
		if err != nil {
			b.Fatal(err)
		}
		d, err := f.s.SinceTime(ctx, "bench", "c", idBench, level, f.clock.Now(), 0)
		if err != nil || d.Level != level {
			b.Fatalf("SinceTime(%s) = %+v, %v", level, d, err)
		}
		if err := f.s.StartJob(ctx, id, d, f.clock.Now()); err != nil {
			b.Fatal(err)
		}
		return id
	}
	end := func(id int64, st JobStatus) {
		sum := JobSummary{EndedAt: f.clock.Now()}
		if st == JobError {
			sum.Error = "benchmark: not part of the next run's chain"
		}
		if err := f.s.EndJob(ctx, id, st, sum); err != nil {
			b.Fatal(err)
		}
		f.clock.Advance(time.Hour)
	}
	full := start(LevelFull)
	if err := f.s.RecordPart(ctx, full, Part{Part: 1, Volume: "BENCH1", VolumeIndex: 1, TapeFile: 2}); err != nil {
		b.Fatal(err)
	}
	fb, err := f.s.BeginFiles(ctx, full)
	if err != nil {
		b.Fatal(err)
	}
	for i := range rows {
		if err := fb.Add(ctx, rows[i]); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := fb.Flush(ctx, rows[n-1].EndOffset); err != nil {
		b.Fatal(err)
	}
	if err := f.s.CompletePart(ctx, full, 1, 0, rows[n-1].EndOffset); err != nil {
		b.Fatal(err)
	}
	end(full, JobOK)
	// Every path but the last, and one new path, in batches as filed
	// sends them, all unchanged by their times.
	seen := make([][]byte, n)
	for i := range n - 1 {
		seen[i] = rows[i].Path
	}
	seen[n-1] = []byte("/bench/moved-in/new-path")
	unchanged := bytes.Repeat([]byte{0xff}, 4096/8)
	var load, add, compare, finish, compareCPU, finishCPU time.Duration
	var viewBytes int64
	b.ResetTimer()
	for b.Loop() {
		id := start(LevelIncremental)
		b.StopTimer()
		heap0 := heapAfterGC()
		b.StartTimer()
		t0 := time.Now()
		d, err := f.s.BeginDeletions(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if d.mem != nil {
			<-d.mem.done
			t := time.Now()
			load += t.Sub(t0)
			t0 = t
			b.StopTimer()
			viewBytes += heapAfterGC() - heap0
			b.StartTimer()
		}
		for p := seen; len(p) > 0; {
			k := min(len(p), 4096)
			if err := d.Add(p[:k:k], unchanged, nil); err != nil {
				b.Fatal(err)
			}
			p = p[k:]
		}
		cpu := func() time.Duration { return 0 }
		if d.mem == nil {
			var pid int
			// The backend of the COPY (its connection is busy with it).
			if err := f.s.Pool().QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE query ILIKE 'copy%seen_paths%' AND pid <> pg_backend_pid()`).Scan(&pid); err != nil {
				b.Fatal(err)
			}
			cpu = func() time.Duration { return backendCPU(b, pid) }
		}
		t1, cpu0 := time.Now(), cpu()
		var fetch [][]byte
		if _, err := d.Unknown(ctx, func(batch [][]byte) error { fetch = append(fetch, batch...); return nil }); err != nil || len(fetch) != 1 || !bytes.Equal(fetch[0], seen[n-1]) {
			b.Fatalf("Unknown = %q, %v (want only %s)", fetch, err, seen[n-1])
		}
		t2, cpu1 := time.Now(), cpu()
		got, err := d.Finish(ctx)
		t3 := time.Now()
		add, compare, finish = add+t1.Sub(t0), compare+t2.Sub(t1), finish+t3.Sub(t2)
		compareCPU += cpu1 - cpu0
		finishCPU += cpu() - cpu1
		if err != nil || got != 1 {
			b.Fatalf("Finish = %d deletions, %v (want 1: %s)", got, err, rows[n-1].Path)
		}
		// E: the next iteration compares with the Full alone again.
		end(id, JobError)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(add), "add_ms")
	b.ReportMetric(ms(compare), "compare_ms")
	b.ReportMetric(ms(finish), "finish_ms")
	if f.s.memCompareRows > 0 {
		b.ReportMetric(ms(load), "load_ms")
		b.ReportMetric(float64(viewBytes)/float64(b.N)/float64(n), "view_bytes/path")
	} else {
		b.ReportMetric(ms(compareCPU), "compare_pg_cpu_ms")
		b.ReportMetric(ms(finishCPU), "finish_pg_cpu_ms")
	}
}

// heapAfterGC is the live heap after a collection.
func heapAfterGC() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// backendCPU is the CPU time (user + system) a PostgreSQL backend used so
// far, from /proc (the machine's load does not change it as it changes
// wall-clock times).
func backendCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("reading the CPU time of backend %d: %v", pid, err)
	}
	// Fields after the command (which is in parentheses): utime and
	// stime are the 12th and 13th, in clock ticks (100 Hz on Linux).
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// BenchmarkRestoreView is a restore of everything from a Full of
// $TAPEWARD_BENCH_FILES files (default 200,000) and an Incremental of 1 %
// of them: the view read in one query, the selection and the plan.
//
//	TAPEWARD_BENCH_FILES=100000 go test -run '^$' -bench RestoreView -benchtime 1x ./director/catalog/
//
// Measured 2026-12-02 13:0x-13:4x UTC on the shared 2-core machine (other
// builds running; wall times drifted 2× between runs), 100,000 files:
// the view 1.8–5.2 s, select all + plan 0.7–1.6 s (its CPU profile: about
// 0.65 s, the rest waiting for the cores).
func BenchmarkRestoreView(b *testing.B) {
	f := newFixture(b)
	n := benchFiles(b)
	load := func(level string, rows []FileRow) {
		job, err := f.s.CreateJob(f.ctx, JobNew{Name: "nightly", Type: TypeBackup, Level: level, Client: "web1", Fileset: "home", FilesetIdentity: idHome})
		if err != nil {
			b.Fatal(err)
		}
		if err := f.s.StartJob(f.ctx, job, LevelDecision{Level: level}, f.clock.Now()); err != nil {
			b.Fatal(err)
		}
		if _, err := f.s.GetMedia(f.ctx, "V00001"); err != nil {
			f.label(b, "V00001", "", "sd1", NoSlot, nil)
		}
		tf, _ := f.s.NextTapeFile(f.ctx, "V00001")
		if err := f.s.RecordPart(f.ctx, job, Part{Part: 1, Volume: "V00001", VolumeIndex: 1, TapeFile: tf}); err != nil {
			b.Fatal(err)
		}
		fb, err := f.s.BeginFiles(f.ctx, job)
		if err != nil {
			b.Fatal(err)
		}
		fb.MaxBuffered = len(rows) + 1
		for _, r := range rows {
			r.At.TapeFile = tf
			if err := fb.Add(f.ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		end := rows[len(rows)-1].EndOffset
		if _, err := fb.Flush(f.ctx, end); err != nil {
			b.Fatal(err)
		}
		if err := f.s.CompletePart(f.ctx, job, 1, 1, end); err != nil {
			b.Fatal(err)
		}
		if err := f.s.EndJob(f.ctx, job, JobOK, JobSummary{}); err != nil {
			b.Fatal(err)
		}
		f.clock.Advance(time.Hour)
	}
	full := benchRows(n, "V00001")
	load(LevelFull, full)
	load(LevelIncremental, benchRows(n/100, "V00001"))
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		v, err := f.s.LoadRestoreView(f.ctx, ViewSpec{Client: "web1"})
		if err != nil || len(v.Members) != n {
			b.Fatalf("view: %d members, %v", len(v.Members), err)
		}
		t1 := time.Now()
		sel, err := f.s.SelectCriteria(f.ctx, v, Criteria{All: true})
		if err != nil {
			b.Fatal(err)
		}
		plan := PlanRestore(sel, []int64{v.Jobs[0].ID, v.Jobs[1].ID})
		if len(plan) != 1 || len(plan[0].Entries) != n {
			b.Fatalf("plan: %d volumes", len(plan))
		}
		b.ReportMetric(t1.Sub(t0).Seconds(), "view-s")
		b.ReportMetric(time.Since(t1).Seconds(), "select+plan-s")
	}
}
