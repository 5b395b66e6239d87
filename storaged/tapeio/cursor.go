package tapeio

import (
	"fmt"
	"io"
	"sync/atomic"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// Cursor reads a volume's blocks for a restore (storaged's restore
// sessions, tapextract): LOCATE only when the block wanted is neither the
// one in its buffer nor the next one. Seek to a member's address, then
// Read (an io.Reader) returns the bytes from there to the end of the tape
// file (io.EOF at its filemark). Reset binds it to a device and block
// size; blocks, if not nil, counts the blocks read. ReadDirect reads
// whole blocks straight into the caller's buffer. OnDrive names a
// function called each time the cursor is about to wait for the drive.
type Cursor struct {
	dev    *scsi.Device
	buf    []byte
	n, r   int    // the buffered block's length, and the read position in it
	have   bool   // block cur was read (into buf, unless n is 0: ReadDirect)
	at     bool   // the drive is at cur+1
	eof    bool   // the tape file ended (filemark)
	cur    uint64 // logical object number of the block read last
	file   uint64 // its tape file
	blocks *atomic.Uint64
	// onDrive (OnDrive) runs before the cursor goes to the drive.
	onDrive func()
}

func (c *Cursor) Reset(dev *scsi.Device, bs int, blocks *atomic.Uint64) {
	buf := c.buf
	if dev != nil {
		if mt := dev.MaxTransfer(); mt > 0 && bs > mt {
			bs = mt
		}
		if cap(buf) < bs {
			buf = make([]byte, bs)
		}
		buf = buf[:bs]
	}
	*c = Cursor{dev: dev, buf: buf, blocks: blocks, onDrive: c.onDrive}
}

// OnDrive sets f (nil: none) to run each time the cursor goes to the
// drive (a LOCATE and its READ POSITION, or a READ), so that a caller streaming
// what it reads knows when it is about to wait for the drive. Reset
// keeps it.
func (c *Cursor) OnDrive(f func()) { c.onDrive = f }

// Seek makes the byte at offset off of logical block abs (in tape file
// file) the next one Read returns.
func (c *Cursor) Seek(abs uint64, off int, file uint64) error {
	c.eof = false
	switch {
	case c.have && c.n > 0 && abs == c.cur:
	case c.have && c.at && abs == c.cur+1:
		if err := c.read(); err != nil {
			return err
		}
	default:
		c.have, c.at = false, false
		if c.onDrive != nil {
			c.onDrive()
		}
		if err := c.dev.Locate(scsi.LocateBlock, abs); err != nil {
			return fmt.Errorf("locating block %d: %w", abs, err)
		}
		pos, err := c.dev.ReadPosition()
		if err != nil {
			return fmt.Errorf("reading the position after locating block %d: %w", abs, err)
		}
		if pos.Block != abs || pos.File != file {
			return fmt.Errorf("locating block %d left the drive at tape file %d block %d: the address does not match the tape", abs, pos.File, pos.Block)
		}
		c.cur, c.file = abs-1, file
		if err := c.read(); err != nil {
			return err
		}
	}
	if off >= c.n {
		return fmt.Errorf("offset %d is beyond block %d (%d bytes)", off, abs, c.n)
	}
	c.r = off
	return nil
}

// read reads the block after cur into buf; io.EOF at the filemark
// ending the tape file.
func (c *Cursor) read() error {
	n, err := c.readInto(c.buf)
	c.n, c.r = n, 0
	return err
}

// readInto reads the block after cur into dst (the block size long)
// and returns its length; io.EOF at the filemark ending the tape file.
func (c *Cursor) readInto(dst []byte) (int, error) {
	next := c.cur + 1
	if c.onDrive != nil {
		c.onDrive()
	}
	res, err := c.dev.Read(dst, false)
	if err != nil {
		c.have, c.at = false, false
		return 0, fmt.Errorf("reading block %d: %w", next, err)
	}
	switch {
	case res.Filemark:
		c.have, c.at, c.eof = false, false, true
		return 0, io.EOF
	case res.EOD:
		c.have, c.at = false, false
		return 0, fmt.Errorf("block %d: end of data", next)
	case res.Overlength:
		c.have, c.at = false, false
		return 0, fmt.Errorf("block %d is %d bytes, longer than the volume's block size %d", next, res.BlockLen, len(dst))
	case res.N == 0:
		c.have, c.at = false, false
		return 0, fmt.Errorf("block %d: empty read", next)
	}
	c.have, c.at, c.cur = true, true, next
	if c.blocks != nil {
		c.blocks.Add(1)
	}
	return res.N, nil
}

// Read returns the bytes after the current position, reading on block by
// block; io.EOF at the end of the tape file.
func (c *Cursor) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for !c.have || c.r == c.n {
		if c.eof || !c.have {
			return 0, io.EOF
		}
		if err := c.read(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.buf[c.r:c.n])
	c.r += n
	return n, nil
}

// BlockSize is the largest block Read and ReadDirect take (set by Reset).
func (c *Cursor) BlockSize() int { return len(c.buf) }

// Buffered is how many bytes of the block read last Read still returns
// before it reads another.
func (c *Cursor) Buffered() int {
	if !c.have {
		return 0
	}
	return c.n - c.r
}

// ReadDirect is Read for a caller that takes at most limit more bytes of
// the tape file. When the buffered block is used up, p holds a whole
// block and limit is at least the block size (the caller takes all of
// the next block), that block is read straight into p: no copy through
// the cursor's buffer, which then holds no block (a Seek back into it
// locates again). Otherwise it is Read(p[:min(len(p), limit)]).
func (c *Cursor) ReadDirect(p []byte, limit int64) (int, error) {
	bs := len(c.buf)
	if !c.have || c.r < c.n || len(p) < bs || limit < int64(bs) { // (at the filemark have is false)
		return c.Read(p[:min(int64(len(p)), max(limit, 0))])
	}
	n, err := c.readInto(p[:bs])
	c.n, c.r = 0, 0
	return n, err
}
