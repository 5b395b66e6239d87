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
// size; blocks, if not nil, counts the blocks read.
type Cursor struct {
	dev    *scsi.Device
	buf    []byte
	n, r   int    // the buffered block's length, and the read position in it
	have   bool   // buf holds block cur
	at     bool   // the drive is at cur+1
	eof    bool   // the tape file ended (filemark)
	cur    uint64 // logical object number of the buffered block
	file   uint64 // its tape file
	blocks *atomic.Uint64
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
	*c = Cursor{dev: dev, buf: buf, blocks: blocks}
}

// Seek makes the byte at offset off of logical block abs (in tape file
// file) the next one Read returns.
func (c *Cursor) Seek(abs uint64, off int, file uint64) error {
	c.eof = false
	switch {
	case c.have && abs == c.cur:
	case c.have && c.at && abs == c.cur+1:
		if err := c.read(); err != nil {
			return err
		}
	default:
		c.have, c.at = false, false
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

// read reads the block after cur; io.EOF at the filemark ending the tape
// file.
func (c *Cursor) read() error {
	next := c.cur + 1
	res, err := c.dev.Read(c.buf, false)
	if err != nil {
		c.have, c.at = false, false
		return fmt.Errorf("reading block %d: %w", next, err)
	}
	switch {
	case res.Filemark:
		c.have, c.at, c.eof = false, false, true
		return io.EOF
	case res.EOD:
		c.have, c.at = false, false
		return fmt.Errorf("block %d: end of data", next)
	case res.Overlength:
		c.have, c.at = false, false
		return fmt.Errorf("block %d is %d bytes, longer than the volume's block size %d", next, res.BlockLen, len(c.buf))
	case res.N == 0:
		c.have, c.at = false, false
		return fmt.Errorf("block %d: empty read", next)
	}
	c.have, c.at, c.cur, c.n, c.r = true, true, next, res.N, 0
	if c.blocks != nil {
		c.blocks.Add(1)
	}
	return nil
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
