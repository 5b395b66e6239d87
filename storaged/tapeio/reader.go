package tapeio

import (
	"errors"
	"fmt"
	"io"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// ErrNoFilemark is wrapped when the data ends (BLANK CHECK) before the
// filemark that should end the tape file: a session cut short.
var ErrNoFilemark = errors.New("end of data before the filemark ending the tape file")

// OverlengthError is a block longer than the Reader's buffer: its tail was
// not transferred, so the stream cannot continue.
type OverlengthError struct {
	Drive  string
	File   uint64
	Block  uint64 // logical object number of the block
	Length int    // the block's length on tape, when the drive says
	Buffer int
}

func (e *OverlengthError) Error() string {
	return fmt.Sprintf("%s: block %d of tape file %d is %d bytes, longer than the %d-byte read buffer (written with a larger block size? set ReaderOptions.BlockSize)",
		e.Drive, e.Block, e.File, e.Length, e.Buffer)
}

// ReaderOptions configure a Reader.
type ReaderOptions struct {
	// BlockSize is the read buffer: at least the block size the session
	// was written with. 0 means DefaultBlockSize.
	BlockSize int
}

// Reader streams one tape file from an address to the filemark that ends
// it (io.EOF). Short blocks (the session's last) are read whole; a block
// longer than the buffer is an *OverlengthError naming the block; a
// decryption failure (07/74/xx: no key, wrong key) is returned wrapped with
// the block and the sense (scsi.IsEncryptionError). Not safe for
// concurrent use; one buffer is reused, and reads of at least BlockSize
// bytes go straight into the caller's buffer.
type Reader struct {
	d     *scsi.Device
	buf   []byte
	r, w  int
	file  uint64
	block uint64 // logical object number of the next block
	skip  int    // bytes to drop from the next block
	err   error
}

// NewReader positions d at from (LOCATE to from.Block, checked with READ
// POSITION, including the tape file) and returns a Reader whose first
// byte is the one at from.Offset.
func NewReader(d *scsi.Device, from Addr, opts ReaderOptions) (*Reader, error) {
	bs := opts.BlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	if bs < 1 || bs > 0xFFFFFF {
		return nil, fmt.Errorf("%s: read block size %d (need 1..16777215)", d.Addr(), bs)
	}
	if from.Offset < 0 || from.Offset >= bs {
		return nil, fmt.Errorf("%s: offset %d not within a %d-byte block", d.Addr(), from.Offset, bs)
	}
	if mt := d.MaxTransfer(); mt > 0 && bs > mt {
		// No block larger than the transport carries can have been
		// written through it; a larger one reads as an OverlengthError.
		bs = mt
	}
	if err := d.Locate(scsi.LocateBlock, from.Block); err != nil {
		return nil, fmt.Errorf("%s: locating %v: %w", d.Addr(), from, err)
	}
	pos, err := d.ReadPosition()
	if err != nil {
		return nil, fmt.Errorf("%s: reading the position after locating %v: %w", d.Addr(), from, err)
	}
	if pos.Block != from.Block || pos.File != from.File {
		return nil, fmt.Errorf("%s: locating %v left the drive at %v", d.Addr(), from, pos)
	}
	return &Reader{d: d, buf: make([]byte, bs), file: from.File, block: from.Block, skip: from.Offset}, nil
}

// Block is the logical object number of the next block to be read.
func (r *Reader) Block() uint64 { return r.block }

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for r.r == r.w {
		if r.err != nil {
			return 0, r.err
		}
		if r.skip == 0 && len(p) >= len(r.buf) {
			n, err := r.readBlock(p[:len(r.buf)])
			if err != nil {
				r.err = err
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		n, err := r.readBlock(r.buf)
		if err != nil {
			r.err = err
		}
		if r.skip > 0 && n > 0 {
			if r.skip >= n {
				r.err = fmt.Errorf("%s: offset %d is beyond block %d of tape file %d (%d bytes)", r.d.Addr(), r.skip, r.block-1, r.file, n)
				return 0, r.err
			}
			r.r, r.w = r.skip, n
			r.skip = 0
		} else {
			r.r, r.w = 0, n
		}
	}
	c := copy(p, r.buf[r.r:r.w])
	r.r += c
	return c, nil
}

// readBlock reads the next block into b, returning its length; io.EOF at
// the filemark.
func (r *Reader) readBlock(b []byte) (int, error) {
	res, err := r.d.Read(b, false)
	if err != nil {
		return 0, fmt.Errorf("%s: reading block %d of tape file %d: %w", r.d.Addr(), r.block, r.file, err)
	}
	switch {
	case res.Filemark:
		r.block++
		return 0, io.EOF
	case res.EOD:
		return 0, fmt.Errorf("%s: block %d of tape file %d: %w", r.d.Addr(), r.block, r.file, ErrNoFilemark)
	case res.Overlength:
		return 0, &OverlengthError{Drive: r.d.Addr(), File: r.file, Block: r.block, Length: res.BlockLen, Buffer: len(b)}
	case res.N == 0:
		return 0, fmt.Errorf("%s: block %d of tape file %d: empty read", r.d.Addr(), r.block, r.file)
	}
	r.block++
	return res.N, nil
}
