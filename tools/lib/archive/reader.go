package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Entry is one member of a part as the Reader yields it.
type Entry struct {
	// Header is the member's header as archive/tar parses it: a sparse
	// file's Name is its real path and Size its apparent size.
	Header *tar.Header
	// Offset is the offset in the tape file of the member's first header
	// block (its 'x' header when it has one).
	Offset int64
	// Continues is set on the member that carries a cut member's
	// remaining bytes: Continues.Path is the member it continues and
	// Continues.Offset where, in that member's stored data, this
	// member's data starts. For a cut sparse member the data is its
	// stored bytes (map and regions), not the expanded file.
	Continues *Cut
}

// Reader reads one tape file of a job: the part header, then members
// (the first one may continue a member cut at the end of the previous
// part), then the end-of-archive marker or, on a part that is not the
// last, the end of the tape file, possibly inside a member (see Cut).
type Reader struct {
	cr    *countReader
	tr    *tar.Reader
	part  PartHeader
	cur   *Entry
	read  int64 // data bytes read of cur
	first bool
	cut   *Cut
	done  bool
	// For a sparse member whose headers were parsed: where its stored
	// data (map, then regions) starts and ends in the tape file.
	sparseStart, sparseEnd int64
	// dataStart is where the current member's data starts in the tape
	// file (right after its headers).
	dataStart int64
	// fast: the current member's headers were parsed here (fastHeader)
	// and left of its data bytes are still to be read from cr; otherwise
	// tr, which read its headers, reads its data.
	fast bool
	left int64
}

type countReader struct {
	r io.Reader
	n int64
	// While capturing, the bytes read (up to maxCapture) are kept: the
	// Reader parses a sparse member's headers itself to learn its stored
	// size, which archive/tar does not report.
	capturing bool
	capStart  int64
	capture   []byte
}

const maxCapture = 1 << 20

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.capturing && len(c.capture)+n <= maxCapture {
		c.capture = append(c.capture, p[:n]...)
	} else {
		c.capturing = false
	}
	c.n += int64(n)
	return n, err
}

func (c *countReader) startCapture() {
	c.capturing, c.capStart, c.capture = true, c.n, c.capture[:0]
}

// NewReader reads the part header at the start of r.
func NewReader(r io.Reader) (*Reader, error) {
	cr := &countReader{r: r}
	tr := tar.NewReader(cr)
	hdr, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("archive: reading the part header: %w", err)
	}
	if hdr.Typeflag != tar.TypeXGlobalHeader {
		return nil, fmt.Errorf("archive: the tape file starts with %q (typeflag %q), not a part header (a pax global header)", hdr.Name, hdr.Typeflag)
	}
	ph, err := partHeaderFrom(hdr.PAXRecords)
	if err != nil {
		return nil, err
	}
	return &Reader{cr: cr, tr: tr, part: ph, first: true}, nil
}

// NewMemberReader reads members from r, which is positioned at a
// member's first header block at byte offset of its tape file (a restore
// that located to the member's block and skipped to its offset in the
// block): no part header is expected, and entries' offsets count from
// offset. PartHeader is then the zero value.
func NewMemberReader(r io.Reader, offset int64) *Reader {
	ar := new(Reader)
	ar.ResetMember(r, offset)
	return ar
}

// ResetMember makes r read as NewMemberReader(src, offset) does, keeping
// the buffers it has: a restore reads member after member through one
// Reader.
func (r *Reader) ResetMember(src io.Reader, offset int64) {
	if offset%BlockSize != 0 {
		offset = (offset + BlockSize - 1) / BlockSize * BlockSize
	}
	cr := r.cr
	if cr == nil {
		cr = new(countReader)
	}
	*cr = countReader{r: src, n: offset, capture: cr.capture[:0]}
	*r = Reader{cr: cr}
}

// PartHeader is the part's header.
func (r *Reader) PartHeader() PartHeader { return r.part }

// Next advances to the next member, skipping what is left of the current
// one. It returns io.EOF at the end of the part (then Cut says whether
// the part ended inside a member).
func (r *Reader) Next() (*Entry, error) {
	if r.done {
		return nil, io.EOF
	}
	if r.cur != nil && r.sparseEnd > 0 && r.cut == nil {
		if err := r.skipSparse(); err != nil {
			return nil, err
		}
		if r.done {
			return nil, io.EOF
		}
	}
	if r.cur != nil {
		if _, err := io.Copy(io.Discard, r); err != nil {
			if r.cut != nil {
				r.done = true
				return nil, io.EOF
			}
			return nil, err
		}
		if r.cut != nil {
			r.done = true
			return nil, io.EOF
		}
	}
	// The padding after the data (or after the part header) is skipped
	// here, not by archive/tar, which reads only the members fastHeader
	// leaves to it, each with a reader of its own.
	off := (r.cr.n + BlockSize - 1) / BlockSize * BlockSize
	if pad := off - r.cr.n; pad > 0 {
		if _, err := io.CopyN(io.Discard, r.cr, pad); err != nil {
			r.done = true
			if err == io.EOF {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("archive: padding before offset %d: %w", off, err)
		}
	}
	// fastHeader appends the header blocks it reads to the capture
	// itself.
	r.cr.startCapture()
	r.cr.capturing = false
	hdr, size, read, rerr := fastHeader(r.cr, r.cr.capture)
	r.cr.capture = read
	r.fast, r.left = hdr != nil, size
	var err error
	if !r.fast {
		// archive/tar reads again what fastHeader read (header blocks
		// only: it has read them all when it returns a header), and
		// then the error that stopped it, or the rest, which the
		// capture takes too.
		r.tr = tar.NewReader(replay(bytes.Clone(read), rerr, r.cr))
		r.cr.capturing = true
		hdr, err = r.tr.Next()
	}
	for err == nil && hdr.Typeflag == tar.TypeXGlobalHeader {
		off = (r.cr.n + BlockSize - 1) / BlockSize * BlockSize
		r.cr.startCapture()
		hdr, err = r.tr.Next()
	}
	r.cr.capturing = false
	r.sparseStart, r.sparseEnd = 0, 0
	if err == nil && hdr.PAXRecords["GNU.sparse.major"] == "1" {
		r.sparseStart, r.sparseEnd = r.cr.storedData(off)
	}
	if err != nil {
		r.done = true
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("archive: member header at offset %d: %w", off, err)
	}
	r.dataStart = r.cr.n
	e := &Entry{Header: hdr, Offset: off}
	if r.first && r.part.Cut != nil {
		c := *r.part.Cut
		if hdr.Typeflag != tar.TypeReg || hdr.Size != c.Remaining() || !strings.HasPrefix(hdr.Name, "GNUFileParts/") {
			r.done = true
			return nil, fmt.Errorf("archive: the part continues %q (%d bytes from offset %d) but starts with %q (%d bytes)", c.Path, c.Remaining(), c.Offset, hdr.Name, hdr.Size)
		}
		e.Continues = &c
	}
	r.first = false
	r.cur, r.read = e, 0
	return e, nil
}

// Read reads the current member's data. At the end of a part that ends
// inside a member it returns io.ErrUnexpectedEOF, and Cut reports it.
func (r *Reader) Read(p []byte) (int, error) {
	if r.cur == nil {
		return 0, errors.New("archive: Read before Next")
	}
	var n int
	var err error
	if r.fast {
		n, err = r.readFast(p)
	} else {
		n, err = r.tr.Read(p)
	}
	r.read += int64(n)
	if err == io.ErrUnexpectedEOF && r.cut == nil {
		h := r.cur.Header
		stored := h.Size
		if r.sparseEnd > 0 {
			// Stored bytes (map and regions), as a continuation counts them.
			stored = r.sparseEnd - r.sparseStart
			r.cut = &Cut{Path: h.Name, Size: stored, Offset: r.cr.n - r.sparseStart, Mode: h.Mode & 07777, Mtime: h.ModTime.UnixNano()}
		} else if r.cur.Continues != nil {
			c := *r.cur.Continues
			r.cut = &Cut{Path: c.Path, Size: c.Size, Offset: c.Offset + r.read, Mode: h.Mode & 07777, Mtime: h.ModTime.UnixNano()}
		} else {
			r.cut = &Cut{Path: h.Name, Size: stored, Offset: r.read, Mode: h.Mode & 07777, Mtime: h.ModTime.UnixNano()}
		}
	}
	return n, err
}

// readFast reads the data of a member fastHeader parsed, as archive/tar
// reads a regular file's: io.EOF with the last byte, io.ErrUnexpectedEOF
// if the tape file ends before it.
func (r *Reader) readFast(p []byte) (n int, err error) {
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	if len(p) > 0 {
		n, err = r.cr.Read(p)
		r.left -= int64(n)
	}
	switch {
	case err == io.EOF && r.left > 0:
		return n, io.ErrUnexpectedEOF
	case err == nil && r.left == 0:
		return n, io.EOF
	}
	return n, err
}

// Offset is how far into the tape file the Reader has read: after Next,
// the end of the member's headers (of a sparse member's map, too).
func (r *Reader) Offset() int64 { return r.cr.n }

// StoredData says where, in the tape file, the current member's stored
// data starts and ends (before its padding to BlockSize): a sparse
// member's map and regions, another member's data. A restore that reads
// one member copies the bytes from Offset to end (and the padding) from
// the tape itself and stops reading there. ok is false before Next, or
// for a sparse member whose headers could not be parsed for it.
func (r *Reader) StoredData() (start, end int64, ok bool) {
	switch {
	case r.cur == nil:
		return 0, 0, false
	case r.sparseEnd > 0:
		return r.sparseStart, r.sparseEnd, true
	case r.cur.Header.PAXRecords["GNU.sparse.major"] == "1":
		return 0, 0, false
	}
	return r.dataStart, r.dataStart + r.cur.Header.Size, true
}

// Cut is the member the part ended inside of (nil if it ended at a
// member boundary): its Offset is how many stored data bytes the parts
// so far held (for a sparse member: map and regions, not the expanded
// file), the offset the next part's continuation starts at.
func (r *Reader) Cut() *Cut { return r.cut }

// storedData parses the captured headers of the member whose first
// header block is at off: where its stored data starts and ends (0, 0
// if the capture does not say).
func (c *countReader) storedData(off int64) (start, end int64) {
	b := c.capture
	p := off - c.capStart
	paxSize := int64(-1)
	for p >= 0 && p+BlockSize <= int64(len(b)) {
		blk := (*[BlockSize]byte)(b[p : p+BlockSize])
		if checkBlock(blk) != nil {
			return 0, 0
		}
		size, err := parseNumber(blk[offSize : offSize+12])
		if err != nil || size < 0 {
			return 0, 0
		}
		switch blk[offTypeflag] {
		case 'x':
			if p+BlockSize+size > int64(len(b)) {
				return 0, 0
			}
			recs, err := parsePAX(b[p+BlockSize : p+BlockSize+size])
			if err != nil {
				return 0, 0
			}
			if v, ok := recs["size"]; ok {
				if paxSize, err = strconv.ParseInt(v, 10, 64); err != nil || paxSize < 0 {
					return 0, 0
				}
			}
			p += BlockSize + (size+BlockSize-1)/BlockSize*BlockSize
		case 'L', 'K':
			p += BlockSize + (size+BlockSize-1)/BlockSize*BlockSize
		default:
			if paxSize >= 0 {
				size = paxSize
			}
			start = c.capStart + p + BlockSize
			if start+size < c.n {
				return 0, 0
			}
			return start, start + size
		}
	}
	return 0, 0
}

// skipSparse skips the rest of the current sparse member's stored bytes
// without expanding its holes.
func (r *Reader) skipSparse() error {
	h := r.cur.Header
	if left := r.sparseEnd - r.cr.n; left > 0 {
		n, err := io.CopyN(io.Discard, r.cr, left)
		if err == io.EOF {
			r.cut = &Cut{Path: h.Name, Size: r.sparseEnd - r.sparseStart, Offset: r.cr.n - r.sparseStart, Mode: h.Mode & 07777, Mtime: h.ModTime.UnixNano()}
			r.done = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("archive: skipping %q after %d bytes: %w", h.Name, n, err)
		}
	}
	if pad := (BlockSize - r.cr.n%BlockSize) % BlockSize; pad > 0 {
		if _, err := io.CopyN(io.Discard, r.cr, pad); err != nil && err != io.EOF {
			return fmt.Errorf("archive: skipping %q's padding: %w", h.Name, err)
		}
	}
	r.cur = nil // Next goes on after the padding
	return nil
}
