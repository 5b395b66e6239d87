package tapeio

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// NextVolume returns the next mounted volume's drive, positioned where the
// session should start (after the label), with the key loaded if the pool
// is encrypted. It is called when a volume is full.
type NextVolume func(ctx context.Context) (*scsi.Device, error)

// Extent is the part of a spanned stream on one volume: one tape file.
type Extent struct {
	// Volume is the index of the volume in the span (0 = the first).
	Volume int `json:"volume"`
	// Drive is the address of the drive that wrote it.
	Drive string `json:"drive"`
	// File is the tape file number.
	File uint64 `json:"file"`
	// FirstBlock and LastBlock are the logical object numbers of the
	// extent's first and last data block (LastBlock = FirstBlock-1 when
	// the extent is empty).
	FirstBlock uint64 `json:"first_block"`
	LastBlock  uint64 `json:"last_block"`
	// Bytes of the stream in the extent; Offset is the stream offset of
	// its first byte.
	Bytes  int64 `json:"bytes"`
	Offset int64 `json:"offset"`
	// BlockSize is the size of every block of the extent but its last.
	BlockSize int `json:"block_size"`
	// EarlyWarning: the volume was full (early warning or overflow).
	EarlyWarning bool `json:"early_warning,omitempty"`
}

// Start is the address of the extent's first byte.
func (e Extent) Start() Addr { return Addr{File: e.File, Block: e.FirstBlock} }

// Resolve maps a stream offset (a SpanWriter.Offset or Writer.Offset
// mark) to the extent holding it and its address. Every block of an
// extent but the last is full, so the address is exact. ok is false for an
// offset outside the extents.
func Resolve(exts []Extent, off int64) (e Extent, a Addr, ok bool) {
	for _, e := range exts {
		if off >= e.Offset && off < e.Offset+e.Bytes {
			rel := off - e.Offset
			bs := int64(e.BlockSize)
			return e, Addr{File: e.File, Block: e.FirstBlock + uint64(rel/bs), Offset: int(rel % bs)}, true
		}
	}
	return Extent{}, Addr{}, false
}

// SpanWriter writes one stream across as many volumes as it needs: one
// session (tape file) per volume, switching to NextVolume's drive when a
// volume is full. Bytes refused by a volume (overflow) are written first
// on the next one, so the concatenation of the extents is the stream.
// Marks are stream offsets (Offset); resolve them with Resolve(Extents(),
// off) once the byte is on tape (always true after Close). Each volume's
// session runs WriterOptions.AfterFirstBlock.
type SpanWriter struct {
	ctx    context.Context
	opts   WriterOptions
	next   NextVolume
	w      *Writer
	vol    int
	base   int64 // stream offset of the current session's first byte
	exts   []Extent
	err    error
	closed bool
}

// NewSpanWriter starts the first session on d at its current position.
func NewSpanWriter(ctx context.Context, d *scsi.Device, opts WriterOptions, next NextVolume) (*SpanWriter, error) {
	w, err := NewWriter(d, opts)
	if err != nil {
		return nil, err
	}
	return &SpanWriter{ctx: ctx, opts: opts, next: next, w: w}, nil
}

// Offset is the stream offset of the next byte written: the mark to pass
// to Resolve.
func (s *SpanWriter) Offset() int64 { return s.base + s.w.Offset() }

// Extents returns the extents completed so far (all of them after Close).
func (s *SpanWriter) Extents() []Extent { return s.exts }

// Current is the Writer of the volume being written.
func (s *SpanWriter) Current() *Writer { return s.w }

// Write implements io.Writer; volume changes are invisible to the caller
// except through Extents. Errors other than a full volume end the span.
func (s *SpanWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.closed {
		return 0, errors.New("tapeio: write after Close")
	}
	total := 0
	for len(p) > 0 {
		n, err := s.w.Write(p)
		total += n
		p = p[n:]
		if err == nil {
			continue
		}
		if err := s.rollover(err); err != nil {
			return total, err
		}
	}
	return total, nil
}

// rollover handles an error of the current Writer: a full volume moves to
// the next one (carrying any refused bytes); anything else is final.
func (s *SpanWriter) rollover(err error) error {
	var vf *VolumeFullError
	if !errors.As(err, &vf) {
		s.err = err
		return err
	}
	if s.w.OnTape() == 0 {
		s.err = fmt.Errorf("volume %d (%s) took no data: %w", s.vol, s.w.d.Addr(), err)
		return s.err
	}
	carry := s.w.Unwritten()
	s.record(true)
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return err
	}
	d, err := s.next(s.ctx)
	if err != nil {
		s.err = fmt.Errorf("next volume after volume %d: %w", s.vol, err)
		return s.err
	}
	w, err := NewWriter(d, s.opts)
	if err != nil {
		s.err = fmt.Errorf("volume %d: %w", s.vol+1, err)
		return s.err
	}
	s.base += s.w.OnTape()
	s.w = w
	s.vol++
	return s.writeCarry(carry)
}

// writeCarry writes the bytes a full volume refused (they precede
// everything not yet written) on the current volume, rolling over again
// if needed.
func (s *SpanWriter) writeCarry(b []byte) error {
	for len(b) > 0 {
		n, err := s.w.Write(b)
		b = b[n:]
		if err != nil {
			if err := s.rollover(err); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *SpanWriter) record(full bool) {
	w := s.w
	s.exts = append(s.exts, Extent{
		Volume:       s.vol,
		Drive:        w.d.Addr(),
		File:         w.start.File,
		FirstBlock:   w.start.Block,
		LastBlock:    w.start.Block + w.blocks - 1,
		Bytes:        w.onTape,
		Offset:       s.base,
		BlockSize:    w.bs,
		EarlyWarning: full || w.ew,
	})
}

// Close ends the last session (partial block and filemark) and records
// its extent. If the last block does not fit, it goes to a next volume.
func (s *SpanWriter) Close() error {
	if s.err != nil {
		return s.err
	}
	if s.closed {
		return nil
	}
	for {
		err := s.w.Close()
		if err == nil {
			break
		}
		if err := s.rollover(err); err != nil {
			return err
		}
	}
	s.record(false)
	s.closed = true
	return nil
}

// Span copies r to tape across volumes (NewSpanWriter, io.Copy, Close)
// and returns the extents, in stream order.
func Span(ctx context.Context, d *scsi.Device, r io.Reader, opts WriterOptions, next NextVolume) ([]Extent, error) {
	s, err := NewSpanWriter(ctx, d, opts, next)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, s.w.bs)
	if _, err := io.CopyBuffer(struct{ io.Writer }{s}, r, buf); err != nil {
		return s.Extents(), err
	}
	if err := s.Close(); err != nil {
		return s.Extents(), err
	}
	return s.Extents(), nil
}
