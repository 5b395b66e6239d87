package catalog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// File records (schema 3): one row per member of a job's pax stream with
// its exact address, written by FileBatch while the tape streams.
//
// Invariant 9 (architecture.md §4): storaged forwards the records of the
// members it has put into tape blocks, and separately reports the stream
// offset up to which the blocks are written and flushed. FileBatch.Flush(upTo)
// commits only the rows whose data ends at or before upTo (FileRow.EndOffset),
// together with jobs.flushed_offset = upTo, in one transaction. A crash
// loses the buffered rows only; InterruptRunning then ends the job E with
// the offset its committed rows reach, and its incomplete tape file stays
// job_media.complete = false so NextTapeFile points the next job at it.
//
// Load strategy (migration 003): files has a BRIN index on job_id and no
// btree, no foreign key. Measured by BenchmarkFileRows (the same rows
// loaded several ways in one run; PostgreSQL 15 from pgtest on the shared
// 2-core machine, 2026-12-02, whose speed drifted by ±30 % within runs).
//
// 1,000,000 rows, two runs (07:08 and 07:13 UTC):
//
//	TAPEWARD_BENCH_FILES=1000000 go test -run '^$' -bench FileRows -benchtime 1x ./director/catalog/
//
//	                                          rows/s         × raw COPY
//	raw CopyFrom, unindexed table             477k, 475k     1
//	FileBatch, BRIN on job_id (kept)          393k, 383k     0.87, 0.83 (pairs 0.92 0.83, 0.80 0.85)
//	FileBatch, no index at all                469k, 436k     0.98, 0.92
//	FileBatch, primary key (job_id, offset)   312k, 312k     0.65, 0.66
//	FileBatch, BRIN + (job_id, path) btree    156k, 139k     0.33, 0.29
//	CREATE INDEX (job_id, path) after load    0.81 s, 1.12 s
//	brin_summarize_new_values after load      0.27 s, 0.31 s
//	ListFiles: 100-row job / 1,000,000-row job  2.0 ms, 2.2 ms / 6.2 s, 5.7 s
//
// 200,000 rows (make bench's default), eight runs between 07:02 and 07:13:
// raw 287k–486k rows/s; FileBatch with BRIN 189k–356k (0.62–0.95× the
// mean raw, pairs 0.54–1.18); no index 0.69–1.08×; primary key 0.52–0.85×;
// with the (job_id, path) btree 0.23–0.51×.
//
//	go test -run '^$' -bench FileRows -benchtime 1x -count 2 ./director/catalog/
//
// The BRIN index costs a little more than no index; a btree maintained
// during COPY costs far more (the path btree most), and building one after
// the load costs about as much as the load. The rest of the gap to a
// single raw COPY is the FileBatch path itself (a transaction per flush,
// the job row, Go-side buffering).
//
// Encoding (2026-12-02, 13:48 UTC, load ~5): FileBatch and the raw
// baseline now send the binary COPY stream fileCopy builds (~0.12 µs of
// director CPU per row) instead of pgx.CopyFrom's generic encoding (~2 µs
// per row: per-value plan lookups and boxing, and a column lookup round
// trip per COPY). In one run of 200,000 rows: raw COPY 340k rows/s (the
// same through pgx.CopyFrom 164k), FileBatch with BRIN 234k (0.79× the
// raw, pairs 0.85 0.73), no index 240k. PostgreSQL's side is now the
// bound of both, so their ratio stays where it was; the rows/s of the
// catalog path rose by ~1.4×.
//
// Two commits in flight (2026-12-03): with one, PostgreSQL's COPY backend
// was the bound and the BRIN index's per-row upkeep (a revmap lookup per
// row in PG 15) cost a quarter of the rows/s (200,000 rows at 17:39 UTC:
// FileBatch 0.66× the raw COPY, no index 0.89×). FileBatch now COPYs a
// batch on a second connection while the one before it commits
// (FlushAsync, Streams), so two backends share the load; the commits keep
// their order. Same benchmark, one run each, batch/raw as the mean of two
// turns' ratios (Streams 2 / Streams 1):
//
//	200,000 rows, 17:40–17:42         0.92, 1.11 / 0.66, 0.77
//	1,000,000 rows, 17:43             1.11 / 0.72   (494,712 rows/s; raw 437,377)
//
// Reads: ListFiles and CurrentView read whole jobs (a bitmap scan of the
// job's BRIN ranges, then a sort); a path lookup filters a job's rows.
// ListFiles builds the whole list in memory (an iterator is left for the
// restore planner).

// File types (the files.type CHECK; the archive index's "type").
const (
	FileRegular = "file"
	FileDir     = "dir"
	FileSymlink = "symlink"
	FileLink    = "link" // hard link to an earlier member
	FileChar    = "char"
	FileBlock   = "block"
	FileFIFO    = "fifo"
)

// Address is where a member's first header block is: volume, tape file
// number on it, logical block counted from the start of that tape file,
// byte in the block.
type Address struct {
	Volume   string
	TapeFile int
	Block    int64
	Offset   int // byte in the block
}

// FilePart is a continuation of a member cut by the end of a volume.
type FilePart struct {
	Part       int // 2, 3, … (the job part holding it)
	At         Address
	DataOffset int64 // offset in the member's stored data where it starts
}

// FileRow is one file record.
type FileRow struct {
	Path    []byte // exact bytes (newlines, invalid UTF-8 kept)
	Type    string // FileRegular, …
	Size    int64
	Mode    uint32 // permission bits (st_mode & 07777)
	UID     int64
	GID     int64
	Uname   string
	Gname   string
	MtimeNS int64
	Link    []byte // symlink target or hard link's first path; nil if none
	SHA256  []byte // 32 bytes for regular files; nil otherwise
	At      Address
	// StreamOffset is the stream offset of the member's first header
	// block; EndOffset the stream offset just past its data (padding
	// included). The row is committed by Flush(upTo) once EndOffset ≤ upTo.
	StreamOffset int64
	EndOffset    int64
	Parts        []FilePart
	// StoredSize is how many data bytes the member has in the stream
	// when that differs from Size (a sparse file's data without its
	// holes); 0: the same as Size.
	StoredSize int64
}

// RenderPath renders a stored path for people: the text itself when it is
// valid UTF-8 without control characters, else a Go-quoted string
// ("/tmp/a\nb", "/x\xff"), so one path is one line.
func RenderPath(p []byte) string {
	if utf8.Valid(p) {
		ok := true
		for _, r := range string(p) {
			if unicode.IsControl(r) {
				ok = false
				break
			}
		}
		if ok {
			return string(p)
		}
	}
	return strconv.Quote(string(p))
}

// BatchFullError says that a FileBatch holds its limit of rows not yet
// flushed: the caller must wait for storaged to flush (and call Flush)
// before adding more.
type BatchFullError struct {
	JobID int64
	Limit int
}

func (e *BatchFullError) Error() string {
	return fmt.Sprintf("job %d: %d file records wait for storaged to flush their data; no more can be buffered until Flush", e.JobID, e.Limit)
}

// FileRowError says that a file record was refused (out of stream order,
// on a tape file the job did not record, malformed). Nothing was buffered.
type FileRowError struct {
	JobID  int64
	Path   string // rendered
	Reason string
}

func (e *FileRowError) Error() string {
	return fmt.Sprintf("job %d: file record %s refused: %s", e.JobID, e.Path, e.Reason)
}

// DefaultMaxBuffered is FileBatch's default bound on rows waiting for a
// flush. A row takes about 240 bytes plus its path, link and names (paths
// of ~45 bytes: ~300 bytes), so 262,144 rows are about 80 MB.
const DefaultMaxBuffered = 1 << 18

// FileBatch streams a running backup's file records into the catalog.
// Add buffers rows (in stream order); Flush(upTo) commits, in one
// transaction with COPY, exactly the buffered rows whose data ends at or
// before upTo (the stream offset storaged reported written and flushed),
// and records upTo as the job's flushed offset. Rows beyond it stay
// buffered. Dropping a FileBatch without Flush loses its buffered rows and
// nothing else (invariant 9: the catalog lists only data on tape).
//
// Memory: at most MaxBuffered rows (Add returns *BatchFullError beyond)
// and the rows of Streams commits in flight (FlushAsync), plus the job's
// parts. A FileBatch is not safe for concurrent use (its commits in
// flight run on their own, each on a connection of the store's pool).
type FileBatch struct {
	s           *Store
	jobID       int64
	job         string
	MaxBuffered int
	// Streams bounds the commits in flight (FlushAsync); 1 commits one
	// batch of rows at a time.
	Streams int
	// OnCommit, when set, is called (from the committing goroutine) after
	// each commit with its row count and flushed offset.
	OnCommit func(rows int, upTo int64)

	buf      []FileRow
	media    []int64 // media_id of buf[i].At
	lastOff  int64
	haveLast bool
	flushed  int64 // handed to a commit (FlushAsync)
	// The commits in flight, oldest first; err is the first failure.
	flights   []*flight
	err       error
	committed atomic.Int64
	spares    chan spareArrays  // arrays of ended commits, for buf's next
	parts     map[partKey]int64 // (volume, tape file) → media_id, from job_media
	lastKey   partKey           // the tape file of the previous row, and its media_id
	lastID    int64
}

type partKey struct {
	volume   string
	tapeFile int
}

// BeginFiles opens a FileBatch on a running (or waiting) job.
func (s *Store) BeginFiles(ctx context.Context, jobID int64) (*FileBatch, error) {
	j, err := s.GetJob(ctx, jobID)
	if err != nil {
		return nil, err
	}
	if j.Status != JobRunning && !j.Status.Waiting() {
		return nil, &JobStateError{JobID: jobID, Job: j.Name, Op: "write file records of", Status: j.Status, Want: []JobStatus{JobRunning}}
	}
	b := &FileBatch{s: s, jobID: jobID, job: j.Name, MaxBuffered: DefaultMaxBuffered, Streams: DefaultStreams, flushed: j.FlushedOffset,
		parts: map[partKey]int64{}, spares: make(chan spareArrays, DefaultStreams)}
	b.committed.Store(j.FlushedOffset)
	// Rows go on after the last committed one. (Not after the flushed
	// offset: a member whose header is before it and whose data goes on
	// past it is committed by a later flush.) A running job's files_count
	// counts its committed rows (commit): a job that has none, the usual
	// case, skips the query (a BRIN scan of the ranges not summarized yet,
	// ~18 ms after a 100,000-file Full).
	var last *int64
	if j.Files > 0 || j.FlushedOffset > 0 {
		if err := s.pool.QueryRow(ctx, `SELECT max(stream_offset) FROM files WHERE job_id = $1`, jobID).Scan(&last); err != nil {
			return nil, dbErr(fmt.Sprintf("reading the last file record of job %d", jobID), err)
		}
	}
	if last != nil {
		b.lastOff, b.haveLast = *last, true
	}
	return b, b.loadParts(ctx)
}

func (b *FileBatch) loadParts(ctx context.Context) error {
	rows, err := b.s.pool.Query(ctx, `
		SELECT m.volume_name, jm.tape_file, jm.media_id FROM job_media jm JOIN media m ON m.id = jm.media_id
		WHERE jm.job_id = $1`, b.jobID)
	if err != nil {
		return dbErr(fmt.Sprintf("reading the tape files of job %d", b.jobID), err)
	}
	var (
		k  partKey
		id int64
	)
	_, err = pgx.ForEachRow(rows, []any{&k.volume, &k.tapeFile, &id}, func() error {
		b.parts[k] = id
		return nil
	})
	return dbErr(fmt.Sprintf("reading the tape files of job %d", b.jobID), err)
}

// Buffered is the number of rows waiting for a flush.
func (b *FileBatch) Buffered() int { return len(b.buf) }

// Flushed is the stream offset up to which rows are committed or being
// committed (FlushAsync).
func (b *FileBatch) Flushed() int64 { return b.flushed }

// Committed is the stream offset up to which rows are committed (safe
// from any goroutine).
func (b *FileBatch) Committed() int64 { return b.committed.Load() }

func (b *FileBatch) refuse(r *FileRow, format string, args ...any) error {
	return &FileRowError{JobID: b.jobID, Path: RenderPath(r.Path), Reason: fmt.Sprintf(format, args...)}
}

// Add buffers r. Rows come in stream order (increasing StreamOffset); the
// row's tape files must have been recorded (RecordPart) — Add re-reads the
// job's parts once when it meets an unknown one.
func (b *FileBatch) Add(ctx context.Context, r FileRow) error {
	if len(b.buf) >= b.MaxBuffered {
		return &BatchFullError{JobID: b.jobID, Limit: b.MaxBuffered}
	}
	switch {
	case len(r.Path) == 0:
		return b.refuse(&r, "empty path")
	case r.Type != FileRegular && r.Type != FileDir && r.Type != FileSymlink && r.Type != FileLink &&
		r.Type != FileChar && r.Type != FileBlock && r.Type != FileFIFO:
		return b.refuse(&r, "unknown type %q", r.Type)
	case r.SHA256 != nil && len(r.SHA256) != 32:
		return b.refuse(&r, "a SHA-256 digest has 32 bytes, not %d", len(r.SHA256))
	case b.haveLast && r.StreamOffset <= b.lastOff:
		return b.refuse(&r, "stream offset %d is not after the previous record's (%d)", r.StreamOffset, b.lastOff)
	case r.EndOffset <= r.StreamOffset:
		return b.refuse(&r, "end offset %d is not after its stream offset %d", r.EndOffset, r.StreamOffset)
	case r.At.Block < 0 || r.At.Offset < 0:
		return b.refuse(&r, "negative address")
	}
	id := b.lastID
	if id == 0 || r.At.TapeFile != b.lastKey.tapeFile || r.At.Volume != b.lastKey.volume {
		var err error
		if id, err = b.mediaOf(ctx, &r, r.At); err != nil {
			return err
		}
		b.lastKey, b.lastID = partKey{r.At.Volume, r.At.TapeFile}, id
	}
	for _, p := range r.Parts {
		if _, err := b.mediaOf(ctx, &r, p.At); err != nil {
			return err
		}
	}
	b.buf = append(b.buf, r)
	b.media = append(b.media, id)
	b.lastOff, b.haveLast = r.StreamOffset, true
	return nil
}

// mediaOf returns the media_id of a's tape file if the job recorded it.
func (b *FileBatch) mediaOf(ctx context.Context, r *FileRow, a Address) (int64, error) {
	k := partKey{a.Volume, a.TapeFile}
	if id, ok := b.parts[k]; ok {
		return id, nil
	}
	if err := b.loadParts(ctx); err != nil {
		return 0, err
	}
	if id, ok := b.parts[k]; ok {
		return id, nil
	}
	return 0, b.refuse(r, "tape file %d of volume %s is not a recorded tape file of the job", a.TapeFile, quoteName(a.Volume))
}

// fileColumns are the COPY columns of files.
var fileColumns = []string{"job_id", "path", "type", "size", "mode", "uid", "gid", "uname", "gname", "mtime_ns",
	"link", "sha256", "media_id", "tape_file", "block", "block_offset", "stream_offset", "parts", "stored_size"}

// copyFiles is the COPY statement of files' rows (fileCopy's format).
func copyFiles(table string) string {
	return "COPY " + pgx.Identifier{table}.Sanitize() + " (" + strings.Join(fileColumns, ", ") + ") FROM STDIN (FORMAT binary)"
}

// fileCopy encodes file rows, fileColumns of each, in PostgreSQL's binary
// COPY format, a chunk at a time, for pgconn's CopyFrom: the bytes
// pgx.CopyFrom would send, without its per-value type planning, boxing
// and column lookup round trip (that was most of the director's CPU per
// row: BenchmarkFileRows).
type fileCopy struct {
	jobID int64
	rows  []FileRow
	media []int64 // media_id per row
	i     int     // next row to encode
	buf   []byte
	off   int // read up to here in buf
	state int // 0: header not written, 1: rows, 2: trailer written
}

// copySignature starts a binary COPY stream: the signature, flags 0 and
// no header extension.
const copySignature = "PGCOPY\n\xff\r\n\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00"

const copyChunk = 64 << 10

func (c *fileCopy) Read(p []byte) (int, error) {
	for c.off == len(c.buf) {
		if c.state == 2 {
			return 0, io.EOF
		}
		c.fill()
	}
	n := copy(p, c.buf[c.off:])
	c.off += n
	return n, nil
}

func (c *fileCopy) fill() {
	b := c.buf[:0]
	c.off = 0
	if c.state == 0 {
		b = append(b, copySignature...)
		c.state = 1
	}
	for ; c.i < len(c.rows) && len(b) < copyChunk; c.i++ {
		r := &c.rows[c.i]
		b = binary.BigEndian.AppendUint16(b, uint16(len(fileColumns)))
		b = copyInt8(b, c.jobID)
		b = copyBytes(b, r.Path)
		b = copyBytes(b, r.Type)
		b = copyInt8(b, r.Size)
		b = copyInt4(b, int32(r.Mode))
		b = copyInt8(b, r.UID)
		b = copyInt8(b, r.GID)
		b = copyBytes(b, r.Uname)
		b = copyBytes(b, r.Gname)
		b = copyInt8(b, r.MtimeNS)
		b = copyNullBytes(b, r.Link)
		b = copyNullBytes(b, r.SHA256)
		b = copyInt8(b, c.media[c.i])
		b = copyInt4(b, int32(r.At.TapeFile))
		b = copyInt8(b, r.At.Block)
		b = copyInt4(b, int32(r.At.Offset))
		b = copyInt8(b, r.StreamOffset)
		b = binary.BigEndian.AppendUint32(b, 2)
		b = binary.BigEndian.AppendUint16(b, uint16(int16(len(r.Parts))))
		if r.StoredSize != 0 && r.StoredSize != r.Size {
			b = copyInt8(b, r.StoredSize)
		} else {
			b = binary.BigEndian.AppendUint32(b, 0xffffffff) // NULL: the same as size
		}
	}
	if c.i == len(c.rows) && len(b) < copyChunk {
		b = binary.BigEndian.AppendUint16(b, 0xffff) // the trailer: -1 fields
		c.state = 2
	}
	c.buf = b
}

func copyInt8(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

func copyInt4(b []byte, v int32) []byte {
	b = binary.BigEndian.AppendUint32(b, 4)
	return binary.BigEndian.AppendUint32(b, uint32(v))
}

func copyBytes[T string | []byte](b []byte, v T) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// copyNullBytes is NULL for a nil slice (as pgx encodes one).
func copyNullBytes(b []byte, v []byte) []byte {
	if v == nil {
		return binary.BigEndian.AppendUint32(b, 0xffffffff)
	}
	return copyBytes(b, v)
}

// Flush commits the buffered rows whose data ends at or before upTo — the
// stream offset up to which storaged reported the data written and
// flushed — with their continuation parts, the job's file and byte counts
// and flushed offset, in one transaction. It returns how many rows it
// committed. A job that is no longer running (ended, or marked E by
// InterruptRunning) is a *JobStateError and nothing is committed. It is
// FlushAsync then Sync.
func (b *FileBatch) Flush(ctx context.Context, upTo int64) (int, error) {
	n, err := b.FlushAsync(ctx, upTo)
	if err != nil {
		return 0, err
	}
	return n, b.Sync()
}

// FlushAsync is Flush that commits in its own goroutine: it hands the rows
// over and returns their number while they are committed, so the caller
// adds the next rows meanwhile. Up to Streams commits are in flight, each
// on its own connection: a commit COPYs its rows while the one before it
// is still running, and commits only after that one committed (flushed
// offsets and OnCommit calls keep their order; when a commit fails, the
// ones after it roll back). When Streams are in flight FlushAsync first
// waits for the oldest to end. The first failed commit's error is
// returned, and nothing more is committed. Sync waits for every commit
// (call it before ending the job, and before dropping the FileBatch).
func (b *FileBatch) FlushAsync(ctx context.Context, upTo int64) (int, error) {
	if err := b.reap(false); err != nil {
		return 0, err
	}
	if upTo < b.flushed {
		return 0, invalid("flushed offset", "job %d: %d is before the offset already flushed (%d)", b.jobID, upTo, b.flushed)
	}
	if len(b.flights) >= max(b.Streams, 1) {
		<-b.flights[0].done
		if err := b.reap(false); err != nil {
			return 0, err
		}
	}
	n := 0
	for n < len(b.buf) && b.buf[n].EndOffset <= upTo {
		n++
	}
	rows, media := b.buf[:n], b.media[:n]
	var bytes int64
	var parts [][]any
	for i := range rows {
		if rows[i].Type == FileRegular {
			bytes += rows[i].Size
		}
		for _, p := range rows[i].Parts {
			parts = append(parts, []any{b.jobID, rows[i].StreamOffset, int32(p.Part), b.parts[partKey{p.At.Volume, p.At.TapeFile}], int32(p.At.TapeFile), p.At.Block, int32(p.At.Offset), p.DataOffset})
		}
	}
	// The rest moves to spare arrays (those of an ended commit, if any);
	// the committed ones become spares once their commit ended.
	var spare spareArrays
	select {
	case spare = <-b.spares:
	default:
	}
	b.buf = append(spare.rows, b.buf[n:]...)
	b.media = append(spare.media, b.media[n:]...)
	b.flushed = upTo
	var prev *flight
	if len(b.flights) > 0 {
		prev = b.flights[len(b.flights)-1]
	}
	fl := &flight{done: make(chan struct{}), connected: make(chan struct{})}
	b.flights = append(b.flights, fl)
	// The rows are of data on tape: their commit goes on if the job is
	// cancelled or fails meanwhile (as a synchronous Flush would have
	// ended first), within a bound.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	go func() {
		defer close(fl.done)
		defer cancel()
		fl.err = b.commit(cctx, prev, fl, upTo, rows, media, parts, bytes)
		if fl.err == nil {
			b.committed.Store(upTo)
			if b.OnCommit != nil {
				b.OnCommit(len(rows), upTo)
			}
		}
		clear(rows) // drop references to committed rows so their memory goes
		select {
		case b.spares <- spareArrays{rows[:0], media[:0]}:
		default:
		}
	}()
	return n, nil
}

// DefaultStreams is FileBatch's default number of commits in flight. Two
// load 1.37–1.55× the rows of one on this 2-core machine (PostgreSQL's
// side of a COPY is the bound; BenchmarkFileRows, three runs 2026-12-03).
const DefaultStreams = 2

// flight is a commit in flight.
type flight struct {
	done      chan struct{} // closed when the commit ended, with err set
	err       error
	connected chan struct{} // closed once it holds its connection (or ended without one)
}

// spareArrays are the row and media arrays of an ended commit, for buf's
// next.
type spareArrays struct {
	rows  []FileRow
	media []int64
}

// errEarlierCommit is the error of a commit rolled back because the one
// before it failed (FileBatch returns that one's error).
var errEarlierCommit = errors.New("an earlier commit of the batch failed")

// reap forgets the commits that ended (all of them, waiting, when wait)
// and returns the first failure, kept for every later call.
func (b *FileBatch) reap(wait bool) error {
	for len(b.flights) > 0 {
		fl := b.flights[0]
		if wait {
			<-fl.done
		} else {
			select {
			case <-fl.done:
			default:
				return b.err
			}
		}
		if b.err == nil {
			b.err = fl.err
		}
		b.flights = b.flights[1:]
	}
	return b.err
}

// commitTimeout bounds a FlushAsync commit (a few hundred milliseconds for
// 65,536 rows here).
const commitTimeout = 2 * time.Minute

// Sync waits for the commits in flight, if any, and returns the first
// failure (again on every later call: a FileBatch whose commit failed
// commits nothing more).
func (b *FileBatch) Sync() error { return b.reap(true) }

// commit is FlushAsync's transaction: the rows are copied, then, after the
// commit before it (prev) committed, the job is checked, its counters and
// flushed offset updated, and the transaction committed. It takes its
// connection only after prev took one: a commit waiting for the one before
// it never holds the pool's last connection while that one waits for it.
func (b *FileBatch) commit(ctx context.Context, prev, fl *flight, upTo int64, rows []FileRow, media []int64, parts [][]any, bytes int64) error {
	n := len(rows)
	op := fmt.Sprintf("committing %d file records of job %d", n, b.jobID)
	if prev != nil {
		select {
		case <-prev.connected:
		case <-prev.done:
		}
	}
	conn, err := b.s.pool.Acquire(ctx)
	close(fl.connected)
	if err != nil {
		return dbErr(op, err)
	}
	defer conn.Release()
	return inTxOn(ctx, conn, op, func(tx pgx.Tx) error {
		if n > 0 {
			if _, err := tx.Conn().PgConn().CopyFrom(ctx, &fileCopy{jobID: b.jobID, rows: rows, media: media}, copyFiles("files")); err != nil {
				return dbErr(op, err)
			}
			if len(parts) > 0 {
				if _, err := tx.CopyFrom(ctx, pgx.Identifier{"file_parts"},
					[]string{"job_id", "stream_offset", "part", "media_id", "tape_file", "block", "block_offset", "data_offset"},
					pgx.CopyFromRows(parts)); err != nil {
					return dbErr(op, err)
				}
			}
		}
		if prev != nil {
			if <-prev.done; prev.err != nil {
				return errEarlierCommit
			}
		}
		name, st, err := lockJob(ctx, tx, b.jobID)
		if err != nil {
			return err
		}
		if st != JobRunning && !st.Waiting() {
			return &JobStateError{JobID: b.jobID, Job: name, Op: "write file records of", Status: st, Want: []JobStatus{JobRunning}}
		}
		_, err = tx.Exec(ctx, `UPDATE jobs SET flushed_offset = $2, files_count = files_count + $3, bytes_count = bytes_count + $4 WHERE id = $1`,
			b.jobID, upTo, n, bytes)
		return dbErr(op, err)
	})
}

// File is a stored file record with its job.
type File struct {
	JobID int64
	FileRow
}

const fileSelect = `
	SELECT f.job_id, f.path, f.type, f.size, f.mode, f.uid, f.gid, f.uname, f.gname, f.mtime_ns, f.link, f.sha256,
		m.volume_name, f.tape_file, f.block, f.block_offset, f.stream_offset,
		CASE WHEN f.parts = 0 THEN NULL ELSE (
			SELECT array_agg(ARRAY[p.part, p.tape_file, p.block, p.block_offset, p.data_offset] ORDER BY p.part)
			FROM file_parts p WHERE p.job_id = f.job_id AND p.stream_offset = f.stream_offset) END,
		CASE WHEN f.parts = 0 THEN NULL ELSE (
			SELECT array_agg(pm.volume_name ORDER BY p.part)
			FROM file_parts p JOIN media pm ON pm.id = p.media_id
			WHERE p.job_id = f.job_id AND p.stream_offset = f.stream_offset) END`

// scanFile scans fileSelect's columns.
func scanFile(r pgx.CollectableRow) (File, error) {
	var (
		f     File
		mode  int32
		parts [][]int64
		vols  []string
	)
	err := r.Scan(&f.JobID, &f.Path, &f.Type, &f.Size, &mode, &f.UID, &f.GID, &f.Uname, &f.Gname, &f.MtimeNS, &f.Link, &f.SHA256,
		&f.At.Volume, &f.At.TapeFile, &f.At.Block, &f.At.Offset, &f.StreamOffset, &parts, &vols)
	f.Mode = uint32(mode)
	if err == nil && len(parts) != len(vols) {
		err = fmt.Errorf("file %s of job %d: %d parts but %d part volumes", RenderPath(f.Path), f.JobID, len(parts), len(vols))
	}
	for i, p := range parts {
		if err != nil {
			break
		}
		f.Parts = append(f.Parts, FilePart{Part: int(p[0]), At: Address{Volume: vols[i], TapeFile: int(p[1]), Block: p[2], Offset: int(p[3])}, DataOffset: p[4]})
	}
	return f, err
}

// ListFiles returns a job's file records in stream order (tape order).
func (s *Store) ListFiles(ctx context.Context, jobID int64) ([]File, error) {
	op := fmt.Sprintf("listing the files of job %d", jobID)
	if _, err := s.GetJob(ctx, jobID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, fileSelect+` FROM files f JOIN media m ON m.id = f.media_id WHERE f.job_id = $1 ORDER BY f.stream_offset`, jobID)
	if err != nil {
		return nil, dbErr(op, err)
	}
	out, err := pgx.CollectRows(rows, scanFile)
	return out, dbErr(op, err)
}

// Chain names the backups of one (job, client, fileset). Job "" means any
// job of the client and fileset name.
type Chain struct {
	Job     string
	Client  string
	Fileset string // fileset name
}

func (c Chain) String() string {
	if c.Job == "" {
		return fmt.Sprintf("client %q fileset %q", c.Client, c.Fileset)
	}
	return fmt.Sprintf("job %q client %q fileset %q", c.Job, c.Client, c.Fileset)
}

// RestoreChain returns the successful (T/W) backups a restore of c as it
// was before `before` uses, oldest first: the last Full started before it,
// the last Differential after that Full, every Incremental after both.
// No Full is a *NotFoundError.
func (s *Store) RestoreChain(ctx context.Context, c Chain, before time.Time) ([]int64, error) {
	return restoreChain(ctx, s.pool, c, before, 0)
}

// restoreChain is RestoreChain limited to jobs other than exclude (0: none)
// started strictly before `before`.
func restoreChain(ctx context.Context, q querier, c Chain, before time.Time, exclude int64) ([]int64, error) {
	op := "selecting the backups of " + c.String()
	rows, err := q.Query(ctx, `
		SELECT id, level FROM jobs
		WHERE ($1 = '' OR name = $1) AND client = $2 AND fileset = $3 AND job_type = 'Backup'
			AND status IN ('T', 'W') AND started_at IS NOT NULL AND purged_at IS NULL AND started_at < $4 AND id <> $5
		ORDER BY started_at, id`, c.Job, c.Client, c.Fileset, before.UTC(), exclude)
	if err != nil {
		return nil, dbErr(op, err)
	}
	type jl struct {
		id    int64
		level string
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (jl, error) {
		var x jl
		return x, r.Scan(&x.id, &x.level)
	})
	if err != nil {
		return nil, dbErr(op, err)
	}
	var chain []int64
	for _, j := range all {
		switch j.level {
		case LevelFull:
			chain = []int64{j.id}
		case LevelDifferential:
			if len(chain) > 0 {
				chain = []int64{chain[0], j.id}
			}
		case LevelIncremental:
			if len(chain) > 0 {
				chain = append(chain, j.id)
			}
		}
	}
	if len(chain) == 0 {
		return nil, notFound("backup", fmt.Sprintf("Full of %s before %s", c, before.UTC().Format("2006-01-02 15:04:05Z")))
	}
	return chain, nil
}

// viewSQL selects, over the jobs $1 (oldest first), the latest version of
// every path not deleted by a later job of the list: job_id, stream_offset,
// path, and fileSelect's columns from "files f" when cols.
func viewSQL(cols bool) string {
	sel := "f.job_id, f.stream_offset, f.path"
	if cols {
		sel = "f.*"
	}
	return `
	WITH chain AS (SELECT id, rank FROM unnest($1::bigint[]) WITH ORDINALITY AS c(id, rank)),
	latest AS (
		SELECT DISTINCT ON (f.path) ` + sel + `, c.rank AS chain_rank
		FROM files f JOIN chain c ON c.id = f.job_id
		ORDER BY f.path, c.rank DESC, f.stream_offset DESC)
	SELECT * FROM latest l
	WHERE NOT EXISTS (
		SELECT 1 FROM file_deletions d JOIN chain c ON c.id = d.job_id
		WHERE d.path = l.path AND c.rank > l.chain_rank)`
}

// CurrentView returns the files a restore of c as it was before `before`
// brings back (time.Time{}: now), with their addresses, in path byte
// order: over RestoreChain, the latest version of every path that no later
// job of the chain saw deleted.
func (s *Store) CurrentView(ctx context.Context, c Chain, before time.Time) ([]File, error) {
	if before.IsZero() {
		before = s.nowUTC().Add(time.Microsecond)
	}
	chain, err := s.RestoreChain(ctx, c, before)
	if err != nil {
		return nil, err
	}
	op := "reading the restore view of " + c.String()
	rows, err := s.pool.Query(ctx, fileSelect+`
		FROM (`+viewSQL(true)+`) f JOIN media m ON m.id = f.media_id ORDER BY f.path`, chain)
	if err != nil {
		return nil, dbErr(op, err)
	}
	out, err := pgx.CollectRows(rows, scanFile)
	return out, dbErr(op, err)
}

// RecordDeletions compares the paths the client saw in job jobID (every
// path of its walk, unchanged ones included) with the view of the backups
// the job is relative to — an Incremental all the earlier jobs of its
// chain, a Differential its Full alone — and records as deleted in jobID
// every path of that view the client did not see and the job did not
// store. A Full records none. Run it once the walk is over (before
// EndJob). It is BeginDeletions, Add of every path, Finish.
func (s *Store) RecordDeletions(ctx context.Context, jobID int64, seen iter.Seq[[]byte]) (int64, error) {
	d, err := s.BeginDeletions(ctx, jobID)
	if err != nil {
		return 0, err
	}
	batch := make([][]byte, 0, 1024)
	for p := range seen {
		batch = append(batch, p)
		if len(batch) == cap(batch) {
			if err := d.Add(batch, nil, nil); err != nil {
				d.Abort()
				return 0, err
			}
			batch = make([][]byte, 0, 1024)
		}
	}
	if err := d.Add(batch, nil, nil); err != nil {
		d.Abort()
		return 0, err
	}
	return d.Finish(ctx)
}

// Deletions records the deletions of a running Incremental or
// Differential while its client walks. A chain of up to WithMemCompareRows
// file rows is compared in memory as the paths arrive (memView: its paths
// are read while the client starts). A larger one has the paths copied
// into a temporary table as they arrive (COPY, on one connection held for
// the walk), so only the comparisons are left when the walk ends. Add from
// one goroutine, then optionally Unknown, then Finish (or Abort), one
// after the other. A Full's Deletions takes every path and records
// nothing.
type Deletions struct {
	s      *Store
	jobID  int64
	op     string
	none   bool // a Full, or no earlier backup: nothing to compare with
	chain  []int64
	mem    *memView // nil: compared by PostgreSQL (tx, ch, done)
	tx     pgx.Tx
	ch     chan seenBatch
	done   chan struct{}
	err    error // the COPY's, once done is closed
	closed bool  // ch closed (the COPY ended or ends)
	// unlisted: paths whose contents the client could not see (no
	// deletion at or below them); few, kept in memory.
	unlisted [][]byte
	// compared: the seen paths were joined with the chain's rows (once).
	compared bool
	seen     int64
}

// seenBatch is one Add: paths and the bitmap of the unchanged ones.
type seenBatch struct {
	paths     [][]byte
	unchanged []byte
}

// isUnchanged says whether paths[i] is unchanged by its times (its bit
// in the bitmap: byte i/8, value 1<<(i%8); none past the bitmap's end).
func (b seenBatch) isUnchanged(i int) bool {
	return i/8 < len(b.unchanged) && b.unchanged[i/8]&(1<<(i%8)) != 0
}

// BeginDeletions starts recording the deletions of job jobID (running).
func (s *Store) BeginDeletions(ctx context.Context, jobID int64) (*Deletions, error) {
	j, err := s.GetJob(ctx, jobID)
	if err != nil {
		return nil, err
	}
	if j.Status != JobRunning && !j.Status.Waiting() {
		return nil, &JobStateError{JobID: jobID, Job: j.Name, Op: "record deletions of", Status: j.Status, Want: []JobStatus{JobRunning}}
	}
	d := &Deletions{s: s, jobID: jobID, op: fmt.Sprintf("recording the deletions of job %d", jobID)}
	if j.Level == LevelFull || j.Level == "" || j.StartedAt == nil {
		d.none = true
		return d, nil
	}
	d.chain, err = restoreChain(ctx, s.pool, Chain{Job: j.Name, Client: j.Client, Fileset: j.Fileset}, *j.StartedAt, jobID)
	if errors.Is(err, ErrNotFound) {
		d.none = true
		return d, nil
	}
	if err != nil {
		return nil, err
	}
	if j.Level == LevelDifferential {
		d.chain = d.chain[:1]
	}
	var rows int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(files_count), 0) FROM jobs WHERE id = ANY($1)`, d.chain).Scan(&rows); err != nil {
		return nil, dbErr(d.op, err)
	}
	if rows <= s.memCompareRows {
		d.mem = s.startMemView(ctx, d.op, d.chain, rows)
		return d, nil
	}
	if d.tx, err = s.pool.Begin(ctx); err != nil {
		return nil, dbErr(d.op, err)
	}
	if _, err := d.tx.Exec(ctx, `CREATE TEMP TABLE seen_paths (path bytea NOT NULL, unchanged boolean NOT NULL) ON COMMIT DROP`); err != nil {
		d.tx.Rollback(context.WithoutCancel(ctx))
		return nil, dbErr(d.op, err)
	}
	d.ch, d.done = make(chan seenBatch, 4), make(chan struct{})
	go func() {
		defer close(d.done)
		_, err := d.tx.Conn().PgConn().CopyFrom(ctx, &pathCopy{ch: d.ch}, `COPY seen_paths (path, unchanged) FROM STDIN (FORMAT binary)`)
		if err != nil {
			d.err = dbErr(d.op, err)
			for range d.ch { // let Add return
			}
		}
	}()
	return d, nil
}

// Add takes a batch of seen paths (kept until the COPY has read them),
// the bitmap of those the client did not store because their times are
// older than the since-time (SeenPaths.unchanged: bit i, byte i/8 value
// 1<<(i%8), for paths[i]; nil: none), and the paths whose contents the
// client could not see (a directory it could not read, an entry it could
// not lstat): Finish records no deletion at or below them.
func (d *Deletions) Add(paths [][]byte, unchanged []byte, unlisted [][]byte) error {
	for _, p := range unlisted {
		d.unlisted = append(d.unlisted, bytes.TrimSuffix(bytes.Clone(p), []byte("/")))
	}
	d.seen += int64(len(paths))
	if d.none || len(paths) == 0 {
		return nil
	}
	if d.closed {
		return fmt.Errorf("%s: paths added after the comparison started", d.op)
	}
	if d.mem != nil {
		return d.mem.add(seenBatch{paths, unchanged})
	}
	select {
	case d.ch <- seenBatch{paths, unchanged}:
		return nil
	case <-d.done:
		return d.err
	}
}

// endCopy ends the COPY of the seen paths (once) and returns its error;
// in memory, it waits for the view's load and the batches before it.
func (d *Deletions) endCopy() error {
	if d.mem != nil {
		d.closed = true
		return d.mem.wait()
	}
	if !d.closed {
		d.closed = true
		close(d.ch)
	}
	<-d.done
	return d.err
}

// Unknown ends the copy of the seen paths and calls fn with the paths,
// in batches in byte order, that the client saw but did not store for
// their times and that the view of the job's chain does not hold: no
// file row of the chain has them, or a later job of the chain recorded
// them deleted. Such a path is new with old times — a file of a
// directory moved or renamed into the backup keeps its mtime and ctime,
// only the directory's ctime changes — and the client must store it, or
// a restore of the latest state would lose it. It returns how many it
// gave fn; fn's error stops it and is returned. The same pass over the
// chain's rows finds the paths the client did not see, which Finish
// then records as deleted.
func (d *Deletions) Unknown(ctx context.Context, fn func([][]byte) error) (int64, error) {
	if d.none {
		return 0, nil
	}
	return d.compare(ctx, fn)
}

// Seen is how many paths Add took.
func (d *Deletions) Seen() int64 { return d.seen }

// Unlisted is how many paths the client could not list (Add).
func (d *Deletions) Unlisted() int { return len(d.unlisted) }

// compare ends the COPY and joins the seen paths with the chain's file
// rows once (a hash full join): the chain's paths not seen go into the
// temporary table unseen_paths with the rank of their latest row (for
// Finish), and the unchanged seen paths the view lacks go to fn (nil:
// not wanted).
func (d *Deletions) compare(ctx context.Context, fn func([][]byte) error) (int64, error) {
	if d.compared {
		return 0, fmt.Errorf("%s: compared twice", d.op)
	}
	d.compared = true
	if err := d.endCopy(); err != nil {
		return 0, err
	}
	if d.mem != nil {
		if fn == nil {
			return 0, nil
		}
		out := pathBatches{fn: fn}
		for _, p := range d.mem.unknownPaths() {
			if err := out.add(p); err != nil {
				return out.n, err
			}
		}
		return out.n, out.flush()
	}
	op := d.op + ": comparing the paths seen with the catalog"
	// The hash of the seen paths: with the default work_mem (4 MB, ×2 for
	// a hash) the hash of 100,000 paths spills to disk in two batches;
	// 64 MB keeps about a million paths in memory for this transaction
	// only (more spill, still correct). No ANALYZE of seen_paths: the
	// planner sizes a table without statistics from its pages, enough to
	// choose the hash, and ANALYZE of 100,000 paths cost more than the
	// comparison (BenchmarkDeletions).
	if _, err := d.tx.Exec(ctx, `SET LOCAL work_mem = '64MB'`); err != nil {
		return 0, dbErr(op, err)
	}
	if _, err := d.tx.Exec(ctx, `CREATE TEMP TABLE unseen_paths (path bytea NOT NULL, rank bigint NOT NULL) ON COMMIT DROP`); err != nil {
		return 0, dbErr(op, err)
	}
	// Under READ COMMITTED each statement sees the file rows committed
	// before it. j keeps, of the full join, the chain's rows not seen,
	// the unchanged seen paths without a row, and those with a row whose
	// path some job of the chain recorded deleted (few): the latter are
	// unknown when the deletion is later than their latest row.
	rows, err := d.tx.Query(ctx, `
		WITH chain AS (SELECT id, rank FROM unnest($1::bigint[]) WITH ORDINALITY AS c(id, rank)),
		dels AS (SELECT x.path, max(c.rank) AS rank FROM file_deletions x JOIN chain c ON c.id = x.job_id GROUP BY x.path),
		j AS (
			SELECT s.path AS spath, f.path AS fpath, f.rank
			FROM seen_paths s FULL JOIN (SELECT f.path, c.rank FROM files f JOIN chain c ON c.id = f.job_id) f ON f.path = s.path
			WHERE s.path IS NULL OR s.unchanged AND (f.path IS NULL OR s.path IN (SELECT path FROM dels))),
		gone AS (INSERT INTO unseen_paths (path, rank) SELECT fpath, max(rank) FROM j WHERE spath IS NULL GROUP BY fpath),
		back AS (SELECT spath, max(rank) AS rank FROM j WHERE spath IS NOT NULL AND fpath IS NOT NULL GROUP BY spath)
		SELECT spath FROM j WHERE fpath IS NULL
		UNION ALL
		SELECT b.spath FROM back b JOIN dels x ON x.path = b.spath WHERE x.rank > b.rank
		ORDER BY 1`, d.chain)
	if err != nil {
		return 0, dbErr(op, err)
	}
	defer rows.Close()
	out := pathBatches{fn: fn}
	for rows.Next() {
		if fn == nil {
			continue // Finish: only unseen_paths is wanted
		}
		var p []byte
		if err := rows.Scan(&p); err != nil {
			return out.n, dbErr(op, err)
		}
		if err := out.add(p); err != nil {
			return out.n, err
		}
	}
	if err := rows.Err(); err != nil {
		return out.n, dbErr(op, err)
	}
	rows.Close()
	return out.n, out.flush()
}

// pathBatches hands paths to fn in batches of up to 1,024 paths or
// 512 KiB (a message well under gRPC's limit); n counts those handed.
type pathBatches struct {
	fn    func([][]byte) error
	batch [][]byte
	size  int
	n     int64
}

func (b *pathBatches) add(p []byte) error {
	b.batch = append(b.batch, p)
	b.size += len(p)
	if len(b.batch) == 1024 || b.size >= 512<<10 {
		return b.flush()
	}
	return nil
}

func (b *pathBatches) flush() error {
	if len(b.batch) == 0 {
		return nil
	}
	b.n += int64(len(b.batch))
	err := b.fn(b.batch)
	b.batch, b.size = nil, 0
	return err
}

// Finish compares (unless Unknown did), records the deletions and
// commits; it returns how many it recorded.
func (d *Deletions) Finish(ctx context.Context) (int64, error) {
	if d.none {
		return 0, nil
	}
	if !d.compared {
		if _, err := d.compare(ctx, nil); err != nil {
			return 0, err
		}
	}
	// The view's paths the client did not see, with the rank of their
	// latest row: unseen_paths (compared by PostgreSQL), or arrays.
	unseen := `unseen_paths`
	var paths [][]byte
	var ranks []int64
	if d.mem != nil {
		paths, ranks = d.mem.unseen()
		unseen = `unnest($4::bytea[], $5::bigint[])`
		var err error
		if d.tx, err = d.s.pool.Begin(ctx); err != nil {
			return 0, dbErr(d.op, err)
		}
	}
	defer d.tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	name, st, err := lockJob(ctx, d.tx, d.jobID)
	if err != nil {
		return 0, err
	}
	if st != JobRunning && !st.Waiting() {
		return 0, &JobStateError{JobID: d.jobID, Job: name, Op: "record deletions of", Status: st, Want: []JobStatus{JobRunning}}
	}
	var n int64
	if d.mem == nil || len(paths) > 0 {
		// Those kept when no later job of the chain recorded them deleted
		// (the view's rule, as viewSQL, applied to those few only), this
		// job did not store them, and they are not at or below a path the
		// client could not list ($3: a directory's rows end in '/').
		args := []any{d.chain, d.jobID, d.unlisted}
		if d.mem != nil {
			args = append(args, paths, ranks)
		}
		tag, err := d.tx.Exec(ctx, `
		WITH chain AS (SELECT id, rank FROM unnest($1::bigint[]) WITH ORDINALITY AS c(id, rank))
		INSERT INTO file_deletions (job_id, path)
		SELECT $2, u.path FROM `+unseen+` AS u(path, rank)
		WHERE NOT EXISTS (SELECT 1 FROM file_deletions x JOIN chain c ON c.id = x.job_id WHERE x.path = u.path AND c.rank > u.rank)
			AND NOT EXISTS (SELECT 1 FROM files f WHERE f.job_id = $2 AND f.path = u.path)
			AND NOT EXISTS (SELECT 1 FROM unnest($3::bytea[]) l(p) WHERE u.path = l.p OR substring(u.path FROM 1 FOR length(l.p) + 1) = l.p || '\x2f'::bytea)
		ON CONFLICT DO NOTHING`, args...)
		if err != nil {
			return 0, dbErr(d.op, err)
		}
		n = tag.RowsAffected()
	}
	if n > 0 {
		if _, err := d.tx.Exec(ctx, `UPDATE jobs SET deletions_count = deletions_count + $2 WHERE id = $1`, d.jobID, n); err != nil {
			return 0, dbErr(d.op, err)
		}
	}
	if err := d.tx.Commit(ctx); err != nil {
		return 0, dbErr(d.op+" (commit)", err)
	}
	return n, nil
}

// pathCopy encodes the batches of paths from ch, until it is closed, as
// a binary COPY of a bytea and a boolean column (fileCopy's format).
type pathCopy struct {
	ch    <-chan seenBatch
	buf   []byte
	off   int
	state int // 0: header not written, 1: paths, 2: trailer written
}

func (c *pathCopy) Read(p []byte) (int, error) {
	for c.off == len(c.buf) {
		if c.state == 2 {
			return 0, io.EOF
		}
		b := c.buf[:0]
		c.off = 0
		if c.state == 0 {
			b = append(b, copySignature...)
			c.state = 1
		}
		if batch, ok := <-c.ch; ok {
			for i, path := range batch.paths {
				b = binary.BigEndian.AppendUint16(b, 2)
				b = copyBytes(b, path)
				u := byte(0)
				if batch.isUnchanged(i) {
					u = 1
				}
				b = append(b, 0, 0, 0, 1, u) // a boolean: length 1, the byte
			}
		} else {
			b = binary.BigEndian.AppendUint16(b, 0xffff)
			c.state = 2
		}
		c.buf = b
	}
	n := copy(p, c.buf[c.off:])
	c.off += n
	return n, nil
}

// Abort drops what was copied (the job failed): nothing is recorded.
func (d *Deletions) Abort() {
	if d.mem != nil {
		d.mem.cancel()
		<-d.mem.done
	}
	if d.none || d.tx == nil {
		return
	}
	d.endCopy()
	d.tx.Rollback(context.Background())
}

// Deletions returns the paths recorded as deleted in a job, in byte order.
func (s *Store) Deletions(ctx context.Context, jobID int64) ([][]byte, error) {
	rows, err := s.pool.Query(ctx, `SELECT path FROM file_deletions WHERE job_id = $1 ORDER BY path`, jobID)
	if err != nil {
		return nil, dbErr(fmt.Sprintf("listing the deletions of job %d", jobID), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	return out, dbErr(fmt.Sprintf("listing the deletions of job %d", jobID), err)
}
