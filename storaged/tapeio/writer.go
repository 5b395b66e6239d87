// Package tapeio is storaged's data path: a Writer that turns a byte
// stream into fixed-size blocks in one tape file per session (with marks,
// early-warning handling and an encryption check after the first block),
// Extent and Resolve to address a stream written over several tape files
// (storaged/jobtape spans job streams), and a Reader that streams a tape
// file back from any marked address.
//
// The blocks hold exactly the caller's bytes, with no framing: a session
// written from a tar stream reads back with `dd bs=1M | tar` once the key
// is loaded in the drive.
package tapeio

import (
	"errors"
	"fmt"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// DefaultBlockSize is the data block size when WriterOptions.BlockSize is 0.
const DefaultBlockSize = 1 << 20

// Addr is where a byte of a session lives on tape.
type Addr struct {
	// File is the tape file number (filemarks between BOP and the block).
	File uint64 `json:"file"`
	// Block is the logical object number of the block as READ POSITION
	// counts it (blocks and filemarks from BOP); LOCATE takes it.
	Block uint64 `json:"block"`
	// Offset is the byte offset within that block.
	Offset int `json:"offset"`
}

func (a Addr) String() string {
	return fmt.Sprintf("file %d block %d offset %d", a.File, a.Block, a.Offset)
}

// WriterOptions configure a Writer.
type WriterOptions struct {
	// BlockSize in bytes; 0 means DefaultBlockSize. It is lowered to the
	// drive's READ BLOCK LIMITS maximum, the transport's largest transfer
	// and the drive's granularity (scsi.EffectiveBlockSize).
	BlockSize int
	// AfterFirstBlock, if set, runs once right after the first data block
	// of the session is written (first is that block's address), before
	// anything else is written. An error stops the session: the Writer
	// fails with it and writes nothing more, not even the filemark.
	// VerifyFirstBlock(ukad) is the ready-made encryption check.
	AfterFirstBlock func(d *scsi.Device, first Addr) error
	// HoldEarlyWarning: early warning after a block does not end the
	// session. EarlyWarning() turns true and the caller goes on writing
	// until a point where its stream may be cut, then ends the tape file
	// with Close (storaged/jobtape ends a part at a member boundary or
	// inside a member's data, never inside its headers). Overflow
	// (0D/00/02) still ends the session at once (*VolumeFullError).
	HoldEarlyWarning bool
}

// ErrVolumeFull is matched (errors.Is) by a *VolumeFullError.
var ErrVolumeFull = errors.New("volume full")

// VolumeFullError ends a session at the end of a volume: either the drive
// reported early warning after a block (the block is on tape) or it
// refused a block with VOLUME OVERFLOW 0D/00/02 (that block is not on
// tape: see Writer.Unwritten). The session's filemark was written after
// the last block on tape unless FilemarkErr says otherwise.
type VolumeFullError struct {
	Drive string
	// File is the tape file of the session.
	File uint64
	// OnVolume is the number of the session's stream bytes on this volume
	// (bytes 0..OnVolume-1 of what the session accepted).
	OnVolume int64
	// Blocks is the number of data blocks on this volume.
	Blocks uint64
	// Overflow: the drive refused the last block (0D/00/02); false means
	// early warning (00/00/02, EOM) after a block that was written.
	Overflow bool
	// FilemarkErr is the failure to write the filemark, if any.
	FilemarkErr error
	// PositionErr (a *PositionError) is set when the drive's READ
	// POSITION after the filemark disagrees with the blocks it accepted.
	// The counts above are still exact — they are the blocks the drive
	// acknowledged — but the position report is not to be trusted (some
	// drives and emulators report oddly past EOM: tgt's READ POSITION is
	// a stub). errors.As reaches it.
	PositionErr error
}

func (e *VolumeFullError) Error() string {
	why := "early warning"
	if e.Overflow {
		why = "volume overflow (last block not written)"
	}
	s := fmt.Sprintf("%s: volume full (%s): %d bytes in %d blocks of tape file %d are on this volume",
		e.Drive, why, e.OnVolume, e.Blocks, e.File)
	if e.FilemarkErr != nil {
		s += fmt.Sprintf("; the filemark ending the file could not be written: %v", e.FilemarkErr)
	}
	if e.PositionErr != nil {
		s += fmt.Sprintf("; and %v", e.PositionErr)
	}
	return s
}

// Is makes errors.Is(err, ErrVolumeFull) true.
func (e *VolumeFullError) Is(target error) bool { return target == ErrVolumeFull }

// Unwrap reaches PositionErr (errors.As(err, new(*PositionError))).
func (e *VolumeFullError) Unwrap() error { return e.PositionErr }

// ErrPosition is matched (errors.Is) by a *PositionError.
var ErrPosition = errors.New("tape position disagrees with the blocks written")

// PositionError: after a tape file was ended, the drive's READ POSITION
// does not match the blocks and filemark the drive accepted (or could not
// be read). Either blocks were lost or added — or the drive's position
// report is wrong. The tape must be checked before anything is appended.
type PositionError struct {
	Drive string
	File  uint64 // the session's tape file
	// WantBlock, WantFile: where the accepted blocks and filemark put the
	// tape (logical object number, tape file).
	WantBlock, WantFile uint64
	// Got is what the drive reported (zero when Err is set).
	Got scsi.Position
	// Err is the READ POSITION failure, if it failed.
	Err error
}

func (e *PositionError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: reading the position after tape file %d: %v", e.Drive, e.File, e.Err)
	}
	return fmt.Sprintf("%s: after tape file %d the drive reports %v, but the blocks it accepted put it at block %d file %d: blocks were lost or added, or the drive's position report is wrong; verify the volume before appending to it",
		e.Drive, e.File, e.Got, e.WantBlock, e.WantFile)
}

// Is makes errors.Is(err, ErrPosition) true.
func (e *PositionError) Is(target error) bool { return target == ErrPosition }

// Unwrap returns the READ POSITION failure, if any.
func (e *PositionError) Unwrap() error { return e.Err }

// Writer writes one session: the caller's bytes as fixed-size blocks in a
// new tape file starting at the current position, ended by one filemark
// at Close. All blocks are BlockSize bytes except the session's last one,
// which holds what is left (1..BlockSize bytes); a session that ends at
// early warning or overflow has only full blocks. The caller positions
// the tape first (after the label, or at end of data to append).
//
// A Writer is not safe for concurrent use. The hot path does not allocate:
// one block buffer is reused, and full blocks in a caller's buffer are
// written from it directly.
type Writer struct {
	d    *scsi.Device
	opts WriterOptions
	bs   int
	buf  []byte
	n    int // bytes in buf

	start    scsi.Position
	blocks   uint64 // data blocks on tape
	onTape   int64  // stream bytes on tape
	verified bool   // AfterFirstBlock ran

	ew        bool // early warning seen
	full      *VolumeFullError
	unwritten []byte // bytes accepted but refused by the drive
	err       error  // sticky failure
	closed    bool
}

// NewWriter starts a session at the current position of d. It reads the
// drive's block limits and position (a position the drive does not know
// is an error).
func NewWriter(d *scsi.Device, opts WriterOptions) (*Writer, error) {
	bs := opts.BlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	bs, err := d.EffectiveBlockSize(bs)
	if err != nil {
		return nil, err
	}
	pos, err := d.ReadPosition()
	if err != nil {
		return nil, fmt.Errorf("%s: reading the position: %w", d.Addr(), err)
	}
	if pos.LONU || pos.MPU {
		return nil, fmt.Errorf("%s: the drive does not know its position (%v)", d.Addr(), pos)
	}
	opts.BlockSize = bs
	return &Writer{d: d, opts: opts, bs: bs, buf: make([]byte, bs), start: pos}, nil
}

// BlockSize is the block size in use.
func (w *Writer) BlockSize() int { return w.bs }

// Start is the address of the session's first byte.
func (w *Writer) Start() Addr { return Addr{File: w.start.File, Block: w.start.Block} }

// Mark returns the address where the next byte written will land (for
// example the tar header about to be written). A mark in a block that the
// drive then refuses with VOLUME OVERFLOW is not on this volume: marks at
// stream offsets ≥ VolumeFullError.OnVolume moved to the next volume
// (jobtape resolves them with Resolve).
func (w *Writer) Mark() Addr {
	return Addr{File: w.start.File, Block: w.start.Block + w.blocks, Offset: w.n}
}

// Offset is the number of stream bytes the session has accepted: the
// offset of the next byte within the session's stream.
func (w *Writer) Offset() int64 { return w.onTape + int64(w.n) + int64(len(w.unwritten)) }

// OnTape is the number of stream bytes on tape so far.
func (w *Writer) OnTape() int64 { return w.onTape }

// Blocks is the number of data blocks on tape so far.
func (w *Writer) Blocks() uint64 { return w.blocks }

// EarlyWarning reports that the drive is past early warning: true after
// ErrVolumeFull, and also when the last block or the filemark at Close
// crossed it (all data on tape, but the next session needs a new volume).
func (w *Writer) EarlyWarning() bool { return w.ew }

// Unwritten returns the bytes the Writer accepted (counted in earlier
// Write calls' n) that are not on tape because the drive refused the
// block with VOLUME OVERFLOW; they must be written first on the next
// volume. Nil otherwise. Valid until the Writer is dropped.
func (w *Writer) Unwritten() []byte { return w.unwritten }

// Write stores p. It returns len(p), nil unless the session ends:
//   - *VolumeFullError (errors.Is ErrVolumeFull): n counts the bytes of p
//     taken by the Writer — on tape or in Unwritten(); continue with
//     Unwritten() and then p[n:] on the next volume.
//   - any other error: the session failed (drive error, AfterFirstBlock);
//     nothing more is written.
func (w *Writer) Write(p []byte) (int, error) {
	if err := w.sticky(); err != nil {
		return 0, err
	}
	total := 0
	for len(p) > 0 {
		if w.n == 0 && len(p) >= w.bs {
			// A whole block in the caller's buffer: write it from there.
			if written, err := w.writeBlock(p[:w.bs], false); err != nil {
				if written {
					total += w.bs // the drive accepted the block: it is on tape
				}
				return total, err
			}
			p = p[w.bs:]
			total += w.bs
			continue
		}
		c := copy(w.buf[w.n:], p)
		w.n += c
		p = p[c:]
		total += c
		if w.n == w.bs {
			if _, err := w.writeBlock(w.buf, true); err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

func (w *Writer) sticky() error {
	switch {
	case w.err != nil:
		return w.err
	case w.full != nil:
		return w.full
	case w.closed:
		return fmt.Errorf("%s: write after Close", w.d.Addr())
	}
	return nil
}

// writeBlock writes one block; buffered says b is w.buf (reset after a
// successful write, kept as Unwritten after an overflow). written reports
// whether the drive accepted the block (it is on tape and counted), also
// when an error follows (early warning, AfterFirstBlock).
func (w *Writer) writeBlock(b []byte, buffered bool) (written bool, err error) {
	addr := w.Mark()
	addr.Offset = 0
	res, err := w.d.Write(b)
	if err != nil {
		if scsi.IsVolumeOverflow(err) {
			if buffered {
				w.unwritten = b
				w.n = 0
			}
			return false, w.endVolume(true)
		}
		w.err = fmt.Errorf("%s: writing %s (session byte %d): %w", w.d.Addr(), addr, w.onTape, err)
		return false, w.err
	}
	w.blocks++
	w.onTape += int64(len(b))
	if buffered {
		w.n = 0
	}
	if res.EarlyWarning {
		w.ew = true
	}
	if !w.verified {
		w.verified = true
		if f := w.opts.AfterFirstBlock; f != nil {
			if err := f(w.d, addr); err != nil {
				w.err = fmt.Errorf("%s: check after the first block of tape file %d: %w", w.d.Addr(), addr.File, err)
				return true, w.err
			}
		}
	}
	if res.EarlyWarning && !w.opts.HoldEarlyWarning {
		return true, w.endVolume(false)
	}
	return true, nil
}

// endVolume writes the filemark after early warning or overflow and
// records the VolumeFullError. A position report that disagrees is kept in
// it (PositionErr), never put in its place: the volume is full whatever
// the drive says its position is.
func (w *Writer) endVolume(overflow bool) error {
	w.ew = true
	e := &VolumeFullError{Drive: w.d.Addr(), File: w.start.File, Overflow: overflow}
	if _, err := w.d.WriteFilemarks(1, false); err != nil {
		e.FilemarkErr = err
	} else if perr := w.checkEnd(); perr != nil {
		e.PositionErr = perr
	}
	e.OnVolume, e.Blocks = w.onTape, w.blocks
	w.full = e
	return e
}

// checkEnd verifies that the drive is where the session's block count
// says: after its blocks and one filemark. The error is a *PositionError.
func (w *Writer) checkEnd() error {
	want := w.start.Block + w.blocks + 1
	e := &PositionError{Drive: w.d.Addr(), File: w.start.File, WantBlock: want, WantFile: w.start.File + 1}
	pos, err := w.d.ReadPosition()
	if err != nil {
		e.Err = err
		return e
	}
	if pos.Block != want || pos.File != w.start.File+1 {
		e.Got = pos
		return e
	}
	return nil
}

// Close writes the partial last block and the filemark ending the tape
// file, then checks the drive's position agrees with the blocks written.
// After ErrVolumeFull, Close does nothing and returns nil (the filemark is
// already there). If the drive refuses the last block with VOLUME
// OVERFLOW, Close returns the *VolumeFullError and Unwritten() holds the
// block. Early warning at Close is not an error (see EarlyWarning).
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.full != nil || w.closed {
		return nil
	}
	if w.n > 0 {
		if written, err := w.writeBlock(w.buf[:w.n], true); err != nil {
			if written && w.full != nil {
				// Early warning on the last block: everything is on
				// tape, and the filemark too unless FilemarkErr.
				if fe := w.full.FilemarkErr; fe != nil {
					w.err = fmt.Errorf("%s: writing the filemark ending tape file %d: %w", w.d.Addr(), w.start.File, fe)
					return w.err
				}
				if pe := w.full.PositionErr; pe != nil {
					// All data and the filemark are on tape, but the
					// drive's position report disagrees: say so.
					w.err = pe
					return w.err
				}
				w.closed = true
				w.full = nil
				return nil
			}
			return err
		}
	}
	res, err := w.d.WriteFilemarks(1, false)
	if err != nil {
		w.err = fmt.Errorf("%s: writing the filemark ending tape file %d: %w", w.d.Addr(), w.start.File, err)
		return w.err
	}
	if res.EarlyWarning {
		w.ew = true
	}
	w.closed = true
	if err := w.checkEnd(); err != nil {
		w.err = err
		return err
	}
	return nil
}
