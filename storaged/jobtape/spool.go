package jobtape

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tapeward/tapeward/tools/lib/archive"
)

// spool keeps the job's index entries on disk until the index tape file
// is written (Close), so that a job's memory does not grow with its
// members. The file is unlinked as soon as it is created (a crash leaves
// nothing behind); it is closed by Close and Abort. Entries are encoded
// compactly (varints and length-prefixed strings, encodeEntry); the
// encoding is private to a job and never on tape.
type spool struct {
	f   *os.File
	w   *bufio.Writer
	buf []byte
	n   int
	err error
}

// spoolBuf is the write buffer (and read buffer) of a spool.
const spoolBuf = 64 << 10

func newSpool(dir string) (*spool, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "jobtape-index-*.spool")
	if err != nil {
		return nil, fmt.Errorf("jobtape: creating the job's index spool file in %s (the spool directory, storaged's working_directory, must be a writable directory): %w", dir, err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("jobtape: unlinking the index spool file %s: %w", f.Name(), err)
	}
	return &spool{f: f, w: bufio.NewWriterSize(f, spoolBuf)}, nil
}

// add appends e.
func (s *spool) add(e *archive.IndexEntry) error {
	if s.err != nil {
		return s.err
	}
	s.buf = encodeEntry(s.buf[:0], e)
	if _, err := s.w.Write(s.buf); err != nil {
		s.err = fmt.Errorf("jobtape: writing the index spool file: %w", err)
		return s.err
	}
	s.n++
	return nil
}

// each calls fn with every entry added, in order; it may be called again
// (the index written once more on another volume).
func (s *spool) each(fn func(archive.IndexEntry) error) error {
	if s.err != nil {
		return s.err
	}
	if err := s.w.Flush(); err != nil {
		s.err = fmt.Errorf("jobtape: writing the index spool file: %w", err)
		return s.err
	}
	d := &spoolReader{r: bufio.NewReaderSize(io.NewSectionReader(s.f, 0, 1<<62), spoolBuf)}
	for i := range s.n {
		e, err := d.entry()
		if err != nil {
			return fmt.Errorf("jobtape: reading entry %d of the index spool file: %w", i+1, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// close releases the file (already unlinked).
func (s *spool) close() {
	if s != nil && s.f != nil {
		s.f.Close()
		s.f = nil
		s.err = errors.New("jobtape: the index spool file is closed")
	}
}

// Entry flags.
const (
	spoolSparse = 1 << iota
	spoolDigest
)

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendAddress(b []byte, a archive.Address) []byte {
	b = appendString(b, a.Volume)
	b = binary.AppendVarint(b, a.TapeFile)
	b = binary.AppendVarint(b, a.Block)
	return binary.AppendVarint(b, a.Offset)
}

// encodeEntry appends e's spool encoding to b.
func encodeEntry(b []byte, e *archive.IndexEntry) []byte {
	b = appendString(b, e.Path)
	b = append(b, byte(e.Type))
	for _, v := range [...]int64{e.Size, e.Mtime, e.Mode, e.UID, e.GID} {
		b = binary.AppendVarint(b, v)
	}
	b = appendString(b, e.Uname)
	b = appendString(b, e.Gname)
	b = appendString(b, e.Linkname)
	var fl byte
	if e.Sparse {
		fl |= spoolSparse
	}
	if e.SHA256 != ([32]byte{}) {
		fl |= spoolDigest
	}
	b = append(b, fl)
	if fl&spoolDigest != 0 {
		b = append(b, e.SHA256[:]...)
	}
	b = appendAddress(b, e.Address)
	b = binary.AppendUvarint(b, uint64(len(e.Parts)))
	for _, p := range e.Parts {
		b = appendAddress(b, p.Address)
		b = binary.AppendVarint(b, int64(p.Part))
		b = binary.AppendVarint(b, p.DataOffset)
	}
	return b
}

// maxSpoolString bounds a string read back (paths are at most a few KiB).
const maxSpoolString = 1 << 20

type spoolReader struct {
	r   *bufio.Reader
	err error
	b   []byte
	// The last owner names and volume read: they repeat, and are
	// given again without a new string.
	uname, gname, volume string
}

func (d *spoolReader) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadVarint(d.r)
	d.err = err
	return v
}

func (d *spoolReader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(d.r)
	d.err = err
	return v
}

func (d *spoolReader) str() string {
	if d.err != nil {
		return ""
	}
	n, err := binary.ReadUvarint(d.r)
	if err != nil || n > maxSpoolString {
		d.err = errors.Join(err, fmt.Errorf("a string of %d bytes", n))
		return ""
	}
	if n == 0 {
		return ""
	}
	if uint64(cap(d.b)) < n {
		d.b = make([]byte, n)
	}
	d.b = d.b[:n]
	if _, d.err = io.ReadFull(d.r, d.b); d.err != nil {
		return ""
	}
	return string(d.b)
}

// same reads a string, giving *last again when it is the same.
func (d *spoolReader) same(last *string) string {
	if d.err != nil {
		return ""
	}
	n, err := binary.ReadUvarint(d.r)
	if err != nil || n > maxSpoolString {
		d.err = errors.Join(err, fmt.Errorf("a string of %d bytes", n))
		return ""
	}
	if uint64(cap(d.b)) < n {
		d.b = make([]byte, n)
	}
	d.b = d.b[:n]
	if _, d.err = io.ReadFull(d.r, d.b); d.err != nil {
		return ""
	}
	if string(d.b) != *last {
		*last = string(d.b)
	}
	return *last
}

func (d *spoolReader) byte() byte {
	if d.err != nil {
		return 0
	}
	c, err := d.r.ReadByte()
	d.err = err
	return c
}

func (d *spoolReader) address() archive.Address {
	return archive.Address{Volume: d.same(&d.volume), TapeFile: d.varint(), Block: d.varint(), Offset: d.varint()}
}

// decodeEntry reads one entry encoded by encodeEntry.
func (d *spoolReader) entry() (archive.IndexEntry, error) {
	r := d.r
	var e archive.IndexEntry
	e.Path = d.str()
	e.Type = archive.Type(d.byte())
	e.Size, e.Mtime, e.Mode, e.UID, e.GID = d.varint(), d.varint(), d.varint(), d.varint(), d.varint()
	e.Uname, e.Gname, e.Linkname = d.same(&d.uname), d.same(&d.gname), d.str()
	fl := d.byte()
	e.Sparse = fl&spoolSparse != 0
	if fl&spoolDigest != 0 && d.err == nil {
		_, d.err = io.ReadFull(r, e.SHA256[:])
	}
	e.Address = d.address()
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > 1<<20 {
			return e, fmt.Errorf("%d continuation members", n)
		}
		e.Parts = make([]archive.PartAddress, n)
		for i := range e.Parts {
			e.Parts[i].Address = d.address()
			e.Parts[i].Part = int(d.varint())
			e.Parts[i].DataOffset = d.varint()
		}
	}
	if d.err == io.EOF {
		d.err = io.ErrUnexpectedEOF
	}
	err := d.err
	d.err = nil // the next entry starts afresh
	return e, err
}
