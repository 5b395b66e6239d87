// Package jobtape writes one backup job to tape in layout v2 (README.md):
// one data tape file per part, each starting with an archive.PartHeader,
// continuing across volumes (a member cut by the end of a volume goes on
// in the next part as a continuation member), then the job's index tape
// file. It maps every member's stream offset to its exact address and
// reports records only once the bytes holding them are on tape and
// flushed (architecture invariant 9).
//
// jobtape is part of the tape library layer: it is handed ready devices
// and never loads or verifies a key itself (storaged/sd does, and the
// Options.NextVolume callback must return a device whose key is loaded and
// verified when the volume is encrypted).
package jobtape

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/tapeio"
	"github.com/tapeward/tapeward/tools/lib/archive"
)

// preferDataCut: past early warning, member boundaries within this many
// stream bytes are passed over for a cut inside a member's data.
const preferDataCut = 16 << 10

// ErrMaxVolumeBytes is the reason (errors.Is) a part ended because the
// volume reached the bytes Options.VolumeLimit allows.
var ErrMaxVolumeBytes = errors.New("max_volume_bytes reached")

// DefaultFlushEvery is the flush cadence when Options.FlushEvery is 0.
const DefaultFlushEvery = 256 << 20

// JobInfo is what the part headers say about the job and the first volume.
type JobInfo struct {
	JobID   int64
	Job     string
	Client  string
	FileSet string
	Level   string
	// Volume is the name of the volume in the device given to New.
	Volume  string
	Created time.Time // zero: now
}

// Flushed is one batch of records whose bytes are on tape and flushed.
type Flushed struct {
	// StreamOffset: every stream byte before it is on tape and flushed.
	StreamOffset int64
	// Records, in stream order, each with its address.
	Records []Placed
}

// Placed is a member's record with its address on tape and, when it was
// cut by the end of a volume, the addresses of its continuation members.
type Placed struct {
	Record  archive.Record
	Address archive.Address
	Parts   []archive.PartAddress
}

// Entry is the index entry of p.
func (p Placed) Entry() archive.IndexEntry {
	e := archive.IndexEntryOf(p.Record, p.Address)
	e.Parts = p.Parts
	return e
}

// Options configure a JobWriter.
type Options struct {
	// BlockSize of the data blocks (0: tapeio.DefaultBlockSize).
	BlockSize int
	// FlushEvery is how many stream bytes may be written between two
	// synchronous flushes (WRITE FILEMARKS 0) after which the records
	// whose bytes are all on tape are reported; 0 means
	// DefaultFlushEvery. Every end of a tape file (its filemark) flushes
	// too.
	FlushEvery int64
	// NextVolume is called when a volume is full: reason is the
	// *VolumeFullError ending the previous part. It returns the next
	// volume's device, positioned where the part should start (at end of
	// data, after the label and key-check files) and ready: for an
	// encrypted volume its key loaded and verified (storaged/sd's mount
	// does that; jobtape never touches keys), and the volume's name.
	NextVolume func(ctx context.Context, reason error) (dev *scsi.Device, volume string, err error)
	// VolumeLimit, if set, returns how many bytes this job may write on
	// volume (its max_volume_bytes less what it held; 0: no limit). It is
	// asked when a part starts on a volume. Reaching it is treated like
	// early warning: the part ends at the next point where the stream may
	// be cut and NextVolume is asked with a reason wrapping
	// ErrMaxVolumeBytes (a volume holds at most the limit plus about a
	// block). The index tape file may still follow on that volume when
	// the stream ends there.
	VolumeLimit func(volume string) int64
	// OnFlushed receives the batches of placed records (see Flushed). It
	// runs on the writer's goroutine, between tape writes: hand the
	// batch on (a channel to the catalog forwarder) and return; never
	// wait for the catalog here. The batch is the callee's to keep.
	OnFlushed func(Flushed)
	// MaxBatch bounds the records of one OnFlushed call (0: no bound): a
	// larger batch is handed on in several calls. When that many records
	// are pending and all of their bytes are on tape, the writer flushes
	// at the next block boundary without waiting for FlushEvery, so the
	// records' receiver never gets a huge batch.
	MaxBatch int
	// OnPart runs when a tape file starts — a data part (its part header
	// is encoded, before any record on it is reported) or the index
	// (Part.Index, before its first block) —; OnPartDone when it ended
	// (its filemark written). An index tape file that did not fit gets
	// no OnPartDone (it stays incomplete; the index is written whole on
	// the next volume as a new part). An error from OnPart (the part
	// could not be recorded) fails the job before a byte of that tape
	// file is written. Both run on the writer's goroutine:
	// hand the part on and return. p.Drive is the device's address.
	OnPart     func(p Part) error
	OnPartDone func(p Part)
	// AfterFirstBlock runs after the first block of each tape file
	// (e.g. tapeio.VerifyFirstBlock(ukad) for an encrypted volume);
	// VerifyPart, if set, is used instead and gets the volume's name.
	AfterFirstBlock func(d *scsi.Device, first tapeio.Addr) error
	VerifyPart      func(volume string) func(d *scsi.Device, first tapeio.Addr) error
	// Context for NextVolume (nil: context.Background()).
	Context context.Context
	// SpoolDir is where the members' index entries wait, in a file, for
	// the index tape file (""; os.TempDir()): a job's memory does not
	// grow with its members. The file is unlinked as soon as it is
	// created and closed by Close and Abort; it takes about 100 bytes a
	// member plus its path and names.
	SpoolDir string
}

// Part is one data tape file of the job (or, in Summary.Index, the
// index tape file).
type Part struct {
	Part      int    `json:"part"`
	Volume    string `json:"volume"`
	VolumeSeq int    `json:"volume_seq"`
	Drive     string `json:"drive"`
	TapeFile  uint64 `json:"tape_file"`
	// FirstBlock, LastBlock: logical object numbers of its first and last
	// data block (as LOCATE takes them).
	FirstBlock uint64 `json:"first_block"`
	LastBlock  uint64 `json:"last_block"`
	Blocks     uint64 `json:"blocks"`
	// Bytes of the tape file (part header included).
	Bytes int64 `json:"bytes"`
	// HeaderLen: bytes of the part header (with a continuation member's
	// headers); StreamOffset, StreamBytes: the job stream it carries.
	HeaderLen    int          `json:"header_len"`
	StreamOffset int64        `json:"stream_offset"`
	StreamBytes  int64        `json:"stream_bytes"`
	BlockSize    int          `json:"block_size"`
	Cut          *archive.Cut `json:"cut,omitempty"`
	// EarlyWarning: the part ended because the volume was full.
	EarlyWarning bool `json:"early_warning,omitempty"`
	// MaxBytes: it was full because it reached its byte limit
	// (Options.VolumeLimit), not the tape's early warning.
	MaxBytes bool `json:"max_bytes,omitempty"`
	// Index: the job's index tape file (numbered after the last data
	// part; StreamOffset is the stream's end).
	Index bool `json:"index,omitempty"`

	contAt int64 // byte of the continuation member's header in the tape file
}

// Summary is what Close returns.
type Summary struct {
	Parts       []Part `json:"parts"`
	Members     int    `json:"members"`
	StreamBytes int64  `json:"stream_bytes"`
	Index       Part   `json:"index"`
}

// Error is a failure of the job's tape writing, naming where.
type Error struct {
	Volume   string
	TapeFile uint64
	Part     int
	Op       string
	Err      error
}

func (e *Error) Error() string {
	return fmt.Sprintf("jobtape: volume %s tape file %d (part %d): %s: %v", e.Volume, e.TapeFile, e.Part, e.Op, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// JobWriter writes a job's pax stream (Write) with its members' records
// (AddRecord) to tape. Not safe for concurrent use.
type JobWriter struct {
	ctx  context.Context
	info JobInfo
	opts Options

	dev    *scsi.Device
	volume string
	volSeq int
	w      *tapeio.Writer
	bs     int
	cur    Part
	parts  []Part

	tr       tracker
	off      int64 // stream bytes accepted (all in the current tape file or before)
	draining bool  // past early warning: end the part at the next cut point
	ewAt     int64 // stream offset where early warning was seen
	// The volume's byte limit (Options.VolumeLimit; 0: none), the bytes
	// this job wrote on it in earlier tape files, and whether the limit
	// (not early warning) started the draining.
	limit, volBytes int64
	limitHit        bool

	flushed   int64 // stream offset flushed
	lastFlush int64 // stream offset on tape at the last flush
	pending   []archive.Record
	lastHdr   int64
	index     *spool // the index entries of the members reported

	err    error
	closed bool
	// indexParts counts index tape files started (one more when the
	// first did not fit on its volume).
	indexParts int
}

// New starts the job's first part at dev's current position (the caller
// positions it at end of data; the device is ready and, for an encrypted
// volume, has its key loaded and verified).
func New(dev *scsi.Device, info JobInfo, opts Options) (*JobWriter, error) {
	if opts.NextVolume == nil {
		return nil, errors.New("jobtape: Options.NextVolume is required")
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = DefaultFlushEvery
	}
	if opts.Context == nil {
		opts.Context = context.Background()
	}
	if info.Created.IsZero() {
		info.Created = time.Now()
	}
	sp, err := newSpool(opts.SpoolDir)
	if err != nil {
		return nil, err
	}
	j := &JobWriter{ctx: opts.Context, info: info, opts: opts, lastHdr: -1, index: sp}
	if err := j.startPart(dev, info.Volume, nil); err != nil {
		sp.close()
		return nil, err
	}
	return j, nil
}

func (j *JobWriter) fail(op string, err error) error {
	if j.err == nil {
		j.err = &Error{Volume: j.volume, TapeFile: j.cur.TapeFile, Part: j.cur.Part, Op: op, Err: err}
	}
	return j.err
}

func (j *JobWriter) hook() func(*scsi.Device, tapeio.Addr) error {
	if j.opts.VerifyPart != nil {
		return j.opts.VerifyPart(j.volume)
	}
	return j.opts.AfterFirstBlock
}

// startPart opens the next tape file on dev with its part header.
func (j *JobWriter) startPart(dev *scsi.Device, volume string, cut *archive.Cut) error {
	j.dev, j.volume = dev, volume
	j.volSeq++
	j.limit, j.volBytes, j.limitHit = 0, 0, false
	if j.opts.VolumeLimit != nil {
		j.limit = j.opts.VolumeLimit(volume)
	}
	for _, p := range j.parts {
		if p.Volume == volume {
			j.volBytes += p.Bytes
		}
	}
	w, err := tapeio.NewWriter(dev, tapeio.WriterOptions{BlockSize: j.opts.BlockSize, AfterFirstBlock: j.hook(), HoldEarlyWarning: true})
	if err != nil {
		return j.fail("starting the tape file", err)
	}
	j.w, j.bs = w, w.BlockSize()
	start := w.Start()
	ph := archive.PartHeader{Kind: archive.KindData, JobID: j.info.JobID, Job: j.info.Job, Client: j.info.Client,
		FileSet: j.info.FileSet, Level: j.info.Level, Part: len(j.parts) + 1, VolumeSeq: j.volSeq,
		StreamOffset: j.off, BlockSize: j.bs, Volume: volume, TapeFile: int(start.File), Created: j.info.Created, Cut: cut}
	hdr, err := ph.Encode()
	if err != nil {
		return j.fail("encoding the part header", err)
	}
	j.cur = Part{Part: ph.Part, Volume: volume, VolumeSeq: j.volSeq, Drive: dev.Addr(), TapeFile: start.File,
		FirstBlock: start.Block, HeaderLen: len(hdr), StreamOffset: j.off, BlockSize: j.bs, Cut: cut}
	if cut != nil {
		// The continuation member's header follows the global header.
		r := bytes.NewReader(hdr)
		if _, err := archive.ParsePartHeader(r); err != nil {
			return j.fail("re-reading the part header", err)
		}
		j.cur.contAt = int64(len(hdr) - r.Len())
	}
	if j.opts.OnPart != nil {
		if err := j.opts.OnPart(j.cur); err != nil {
			return j.fail("recording the tape file before writing it", err)
		}
	}
	if _, err := j.w.Write(hdr); err != nil {
		return j.fail("writing the part header", err)
	}
	return nil
}

// AddRecord adds the record of a member whose bytes were written (or are
// being written): records come in stream order. It is reported through
// OnFlushed once all of its bytes are on tape and flushed.
func (j *JobWriter) AddRecord(rec archive.Record) error {
	if j.err != nil {
		return j.err
	}
	if rec.HeaderOffset <= j.lastHdr || rec.DataOffset < rec.HeaderOffset || rec.StoredSize < 0 {
		return fmt.Errorf("jobtape: record %q: header at stream offset %d, data at %d (after a record at %d): records must come in stream order", rec.Path, rec.HeaderOffset, rec.DataOffset, j.lastHdr)
	}
	j.lastHdr = rec.HeaderOffset
	j.pending = append(j.pending, rec)
	return nil
}

// Offset is the stream offset of the next byte Write takes.
func (j *JobWriter) Offset() int64 { return j.off }

// Write takes the next bytes of the job's pax stream.
func (j *JobWriter) Write(p []byte) (int, error) {
	if j.err != nil {
		return 0, j.err
	}
	if j.closed {
		return 0, errors.New("jobtape: write after Close")
	}
	total := 0
	for len(p) > 0 {
		var n int
		if j.draining {
			// Past early warning: one 512-byte step at a time to the
			// next point where the part may end.
			n = min(len(p), 512-int(j.off%512))
		} else {
			// Up to the end of the current block, so that early
			// warning is seen at the block it follows.
			n = min(len(p), j.bs-int(j.w.Offset()%int64(j.bs)))
		}
		if err := j.put(p[:n], true); err != nil {
			return total, err
		}
		p = p[n:]
		total += n
	}
	return total, nil
}

// put writes b (stream bytes at j.off) to the current tape file; track
// says whether the tracker has yet to see them.
func (j *JobWriter) put(b []byte, track bool) error {
	if track {
		if err := j.tr.feed(b); err != nil {
			return j.fail("following the stream", err)
		}
	}
	n, err := j.w.Write(b)
	j.off += int64(n)
	if err != nil {
		var vf *tapeio.VolumeFullError
		if !errors.As(err, &vf) {
			return j.fail("writing", err)
		}
		return j.overflow(vf, b[n:])
	}
	if !j.draining && j.w.EarlyWarning() {
		j.draining, j.ewAt = true, j.off
	}
	if !j.draining && j.overLimit() {
		j.draining, j.ewAt, j.limitHit = true, j.off, true
	}
	if j.draining {
		ok, cut, err := j.tr.cutAt(j.off)
		if err != nil {
			return j.fail("cutting the stream", err)
		}
		if ok && cut == nil && j.off-j.ewAt < preferDataCut {
			// A member boundary: a cut inside the next member's data
			// a little further on lets GNU tar -M join the parts
			// (it takes the header after a volume header for a
			// continuation's; README).
			ok = false
		}
		if ok {
			if j.limitHit {
				return j.nextPart(cut, nil, fmt.Errorf("%w (%d bytes allowed on it)", ErrMaxVolumeBytes, j.limit))
			}
			return j.nextPart(cut, nil, tapeio.ErrVolumeFull)
		}
		return nil
	}
	if j.w.Offset()%int64(j.bs) == 0 {
		if j.onTape()-j.lastFlush >= j.opts.FlushEvery || j.batchReady() {
			return j.flush()
		}
		if len(j.tr.recent) >= maxRecent {
			// Members whose bytes are all on tape can no longer be cut
			// (every cut is at or past onTape): forgotten without
			// waiting for a flush, whose records may come late.
			j.tr.prune(j.onTape())
		}
	}
	return nil
}

// overLimit says whether the current part, with what the job wrote on
// the volume before it, reached the volume's byte limit (once it carries
// some stream data: a part is never ended empty).
func (j *JobWriter) overLimit() bool {
	return j.limit > 0 && j.w.Offset() > int64(j.cur.HeaderLen) && j.volBytes+j.w.Offset() >= j.limit
}

// maxRecent: past this many members followed by the tracker, those
// already on tape are forgotten at the next block boundary.
const maxRecent = 1024

// batchReady says MaxBatch records are pending and all of their bytes are
// on tape (a flush now reports at least that many).
func (j *JobWriter) batchReady() bool {
	n := j.opts.MaxBatch
	return n > 0 && len(j.pending) >= n && end(j.pending[n-1]) <= j.onTape()
}

// onTape is the stream offset up to which bytes are on tape (written
// blocks; the partial block in the Writer's buffer is not).
func (j *JobWriter) onTape() int64 {
	return j.cur.StreamOffset + max(j.w.OnTape()-int64(j.cur.HeaderLen), 0)
}

// overflow: the drive refused a block (VOLUME OVERFLOW); rest are the
// bytes of the current put that the Writer did not take.
func (j *JobWriter) overflow(vf *tapeio.VolumeFullError, rest []byte) error {
	cutOff := j.onTape()
	if vf.OnVolume <= int64(j.cur.HeaderLen) {
		return j.fail("volume full", fmt.Errorf("the volume took no data of this part: %w", vf))
	}
	ok, cut, err := j.tr.cutAt(cutOff)
	if err != nil {
		return j.fail("cutting the stream", err)
	}
	if !ok {
		return j.fail("volume full", fmt.Errorf("the drive refused a block (volume overflow) and the stream on tape ends inside a member's headers at stream offset %d: %w", cutOff, vf))
	}
	carry := append(bytes.Clone(j.w.Unwritten()), rest...)
	j.off = cutOff
	if err := j.nextPart(cut, vf, vf); err != nil {
		return err
	}
	for len(carry) > 0 {
		n := min(len(carry), j.bs-int(j.w.Offset()%int64(j.bs)))
		if err := j.put(carry[:n], false); err != nil {
			return err
		}
		carry = carry[n:]
	}
	return nil
}

// nextPart ends the current part (unless vf says the volume already
// ended it), reports what it flushed, and starts the next part on the
// next volume.
func (j *JobWriter) nextPart(cut *archive.Cut, vf *tapeio.VolumeFullError, reason error) error {
	if vf == nil {
		if err := j.endPart(true); err != nil {
			return err
		}
	} else {
		if vf.FilemarkErr != nil {
			return j.fail("writing the filemark", vf.FilemarkErr)
		}
		if vf.PositionErr != nil {
			return j.fail("checking the position", vf.PositionErr)
		}
		j.record(true)
		if err := j.report(j.off); err != nil {
			return err
		}
		j.partDone()
	}
	j.draining = false
	last := j.parts[len(j.parts)-1]
	what := "full"
	if errors.Is(reason, ErrMaxVolumeBytes) {
		what = "at its byte limit"
	}
	dev, vol, err := j.opts.NextVolume(j.ctx, fmt.Errorf("volume %s %s after part %d (tape file %d): %w", j.volume, what, last.Part, last.TapeFile, reason))
	if err != nil {
		return j.fail("asking for the next volume", err)
	}
	return j.startPart(dev, vol, cut)
}

// endPart closes the current tape file (partial block, filemark: a
// synchronous flush) and reports the records it completes.
func (j *JobWriter) endPart(full bool) error {
	if err := j.w.Close(); err != nil {
		var vf *tapeio.VolumeFullError
		if errors.As(err, &vf) {
			// The last, partial block was refused: nothing can follow
			// it on this volume, and the stream may not be cut there.
			return j.fail("ending the tape file", fmt.Errorf("the drive refused the part's last block past early warning: %w", err))
		}
		return j.fail("ending the tape file", err)
	}
	j.record(full || j.w.EarlyWarning())
	if err := j.report(j.off); err != nil {
		return err
	}
	j.partDone()
	return nil
}

func (j *JobWriter) record(full bool) {
	p := j.cur
	p.Blocks = j.w.Blocks()
	p.LastBlock = p.FirstBlock + p.Blocks - 1
	p.Bytes = j.w.OnTape()
	p.StreamBytes = p.Bytes - int64(p.HeaderLen)
	p.EarlyWarning = full
	p.MaxBytes = j.limitHit
	j.parts = append(j.parts, p)
	j.cur = Part{}
}

// partDone tells OnPartDone of the part record ended, after the records
// its end flushed were reported.
func (j *JobWriter) partDone() {
	if j.opts.OnPartDone != nil && len(j.parts) > 0 {
		j.opts.OnPartDone(j.parts[len(j.parts)-1])
	}
}

// flush makes the drive write its buffer (WRITE FILEMARKS 0) and reports
// the records whose bytes are all before the flushed offset.
func (j *JobWriter) flush() error {
	off := j.onTape()
	if _, err := j.dev.WriteFilemarks(0, false); err != nil {
		return j.fail("flushing", err)
	}
	j.lastFlush = off
	return j.report(off)
}

// extents are the parts as tapeio extents, in stream order, each offset
// back by its header so that tapeio.Resolve gives the address in the
// tape file (the current part last).
func (j *JobWriter) extents() ([]tapeio.Extent, []Part) {
	parts := j.parts
	if j.cur.Part != 0 {
		c := j.cur
		c.Bytes = j.w.Offset()
		parts = append(parts[:len(parts):len(parts)], c)
	}
	exts := make([]tapeio.Extent, len(parts))
	for i, p := range parts {
		exts[i] = tapeio.Extent{Volume: i, File: p.TapeFile, FirstBlock: p.FirstBlock, Bytes: p.Bytes,
			Offset: p.StreamOffset - int64(p.HeaderLen), BlockSize: p.BlockSize}
	}
	return exts, parts
}

// report sends the pending records whose bytes end at or before off.
func (j *JobWriter) report(off int64) error {
	j.flushed = max(j.flushed, off)
	j.tr.prune(off)
	n := 0
	for n < len(j.pending) && end(j.pending[n]) <= off {
		n++
	}
	if n == 0 {
		return nil
	}
	exts, parts := j.extents()
	batch := make([]Placed, 0, n)
	for _, rec := range j.pending[:n] {
		pl := Placed{Record: rec}
		e, a, ok := tapeio.Resolve(exts, rec.HeaderOffset)
		if !ok || rec.HeaderOffset < parts[e.Volume].StreamOffset {
			return j.fail("addressing", fmt.Errorf("record %q: header at stream offset %d is in no part written", rec.Path, rec.HeaderOffset))
		}
		// Blocks count from the tape file's first block (archive.Address):
		// the index and the catalog stay true if the tape file is copied
		// to another position or volume.
		pl.Address = archive.Address{Volume: parts[e.Volume].Volume, TapeFile: int64(a.File), Block: int64(a.Block - parts[e.Volume].FirstBlock), Offset: int64(a.Offset)}
		for _, p := range parts {
			if p.Cut != nil && p.StreamOffset > rec.DataOffset && p.StreamOffset < end(rec) {
				x := p.contAt
				pl.Parts = append(pl.Parts, archive.PartAddress{
					Address:    archive.Address{Volume: p.Volume, TapeFile: int64(p.TapeFile), Block: x / int64(p.BlockSize), Offset: x % int64(p.BlockSize)},
					Part:       p.Part,
					DataOffset: p.Cut.Offset})
			}
		}
		batch = append(batch, pl)
		ie := pl.Entry()
		if err := j.index.add(&ie); err != nil {
			return j.fail("keeping the index", err)
		}
	}
	j.pending = append(j.pending[:0], j.pending[n:]...)
	if j.opts.OnFlushed != nil {
		for len(batch) > 0 {
			k := len(batch)
			if j.opts.MaxBatch > 0 {
				k = min(k, j.opts.MaxBatch)
			}
			j.opts.OnFlushed(Flushed{StreamOffset: off, Records: batch[:k:k]})
			batch = batch[k:]
		}
	}
	return nil
}

// end is the stream offset after rec's padded data.
func end(rec archive.Record) int64 { return rec.DataOffset + (rec.StoredSize+511)/512*512 }

// Close ends the last part (partial block and filemark), reports the
// remaining records, writes the job's index tape file on the last volume
// and returns the summary. The stream must end at a member boundary and
// every record must be within it.
func (j *JobWriter) Close() (Summary, error) {
	if j.err != nil {
		j.index.close()
		return Summary{}, j.err
	}
	if j.closed {
		return Summary{}, errors.New("jobtape: Close called twice")
	}
	j.closed = true
	defer j.index.close()
	if !j.tr.complete() {
		return Summary{}, j.fail("closing", fmt.Errorf("the stream ends inside a member (at stream offset %d)", j.off))
	}
	if err := j.endPart(false); err != nil {
		return Summary{}, err
	}
	if len(j.pending) > 0 {
		r := j.pending[0]
		return Summary{}, j.fail("closing", fmt.Errorf("%d records are beyond the stream's end (%q ends at stream offset %d, the stream at %d)", len(j.pending), r.Path, end(r), j.off))
	}
	if last := j.parts[len(j.parts)-1]; last.EarlyWarning {
		// The last volume is past early warning: the index goes to
		// the next one (an index tape file does not span).
		dev, vol, err := j.opts.NextVolume(j.ctx, fmt.Errorf("volume %s is past early warning after part %d (tape file %d): the job's index tape file needs another volume: %w", j.volume, last.Part, last.TapeFile, tapeio.ErrVolumeFull))
		if err != nil {
			return Summary{}, j.fail("asking for a volume for the index", err)
		}
		j.dev, j.volume = dev, vol
		j.volSeq++
	}
	idx, err := j.writeIndex()
	if err != nil && errors.Is(err, tapeio.ErrVolumeFull) {
		// The index did not fit on the volume: the incomplete index
		// tape file stays (its filemark ends it), and the whole index
		// is written again on the next volume.
		j.err = nil
		dev, vol, nerr := j.opts.NextVolume(j.ctx, fmt.Errorf("volume %s: the job's index tape file did not fit: %w", j.volume, err))
		if nerr != nil {
			return Summary{}, j.fail("asking for a volume for the index", nerr)
		}
		j.dev, j.volume = dev, vol
		j.volSeq++
		idx, err = j.writeIndex()
	}
	if err != nil {
		return Summary{}, err
	}
	return Summary{Parts: j.parts, Members: j.index.n, StreamBytes: j.off, Index: idx}, nil
}

// Abort ends the job early (its client was dropped, the job cancelled):
// the current part is ended cleanly — its last, partial block written and
// its filemark (a synchronous flush) — and the records whose bytes are
// all on tape are reported through OnFlushed; no index tape file is
// written. The stream may end inside a member: that member is not
// reported. It returns the parts written. After a failure (a tape error)
// nothing more is written and the error is returned.
func (j *JobWriter) Abort() ([]Part, error) {
	defer j.index.close()
	if j.closed {
		return j.parts, errors.New("jobtape: Abort after Close")
	}
	j.closed = true
	if j.err != nil {
		return j.parts, j.err
	}
	if j.cur.Part == 0 {
		return j.parts, nil
	}
	err := j.endPart(false)
	return j.parts, err
}

// writeIndex writes the index tape file after the last part.
func (j *JobWriter) writeIndex() (Part, error) {
	w, err := tapeio.NewWriter(j.dev, tapeio.WriterOptions{BlockSize: j.bs, HoldEarlyWarning: true})
	if err != nil {
		return Part{}, j.fail("starting the index tape file", err)
	}
	start := w.Start()
	last := j.parts[len(j.parts)-1]
	j.indexParts++
	p := Part{Part: last.Part + j.indexParts, Index: true, Volume: j.volume, VolumeSeq: j.volSeq, Drive: j.dev.Addr(), TapeFile: start.File,
		FirstBlock: start.Block, StreamOffset: j.off, BlockSize: w.BlockSize()}
	if j.opts.OnPart != nil {
		if err := j.opts.OnPart(p); err != nil {
			j.err = &Error{Volume: j.volume, TapeFile: start.File, Part: p.Part, Op: "recording the index tape file before writing it", Err: err}
			return Part{}, j.err
		}
	}
	ph := archive.PartHeader{Kind: archive.KindIndex, JobID: j.info.JobID, Job: j.info.Job, Client: j.info.Client,
		FileSet: j.info.FileSet, Level: j.info.Level, Part: last.Part, VolumeSeq: j.volSeq, StreamOffset: j.off,
		BlockSize: w.BlockSize(), Volume: j.volume, TapeFile: int(start.File), Created: j.info.Created}
	idxFail := func(op string, err error) error {
		j.err = &Error{Volume: j.volume, TapeFile: start.File, Part: last.Part, Op: op, Err: err}
		return j.err
	}
	iw, err := archive.NewIndexWriter(w, ph)
	if err != nil {
		return Part{}, idxFail("writing the index", err)
	}
	if err := j.index.each(iw.AddLine); err != nil {
		return Part{}, idxFail("writing the index", err)
	}
	if err := iw.Close(); err != nil {
		return Part{}, idxFail("writing the index", err)
	}
	if err := w.Close(); err != nil {
		return Part{}, idxFail("ending the index tape file", err)
	}
	p.LastBlock, p.Blocks, p.Bytes, p.EarlyWarning = start.Block+w.Blocks()-1, w.Blocks(), w.OnTape(), w.EarlyWarning()
	if j.opts.OnPartDone != nil {
		j.opts.OnPartDone(p)
	}
	return p, nil
}
