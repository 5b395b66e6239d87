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
// nothing behind); it is closed by Close and Abort. Each entry is kept as
// its index line (archive.AppendIndexLine, encoded as the member is
// reported), after its length as a uvarint: writing the index at the
// job's end only copies the lines (decoding a compact encoding and
// encoding each line there took ~180 ms of the end of a 100,000-member
// job). The lines are what the index tape file holds; the length
// prefixes are the spool's own.
type spool struct {
	f    *os.File
	w    *bufio.Writer
	buf  []byte // a line's length
	line []byte // the line being added
	n    int
	err  error
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

// add appends e's index line.
func (s *spool) add(e *archive.IndexEntry) error {
	if s.err != nil {
		return s.err
	}
	line, err := archive.AppendIndexLine(s.line[:0], e)
	if err != nil {
		return err
	}
	s.line = line
	s.buf = binary.AppendUvarint(s.buf[:0], uint64(len(line)))
	s.w.Write(s.buf) // a write error stays in w: the next Write returns it
	if _, err := s.w.Write(line); err != nil {
		s.err = fmt.Errorf("jobtape: writing the index spool file: %w", err)
		return s.err
	}
	s.n++
	return nil
}

// maxSpoolLine bounds a line read back (paths are at most a few KiB).
const maxSpoolLine = 16 << 20

// each calls fn with every entry's line, in order (the slice is valid
// until fn returns); it may be called again (the index written once more
// on another volume).
func (s *spool) each(fn func(line []byte) error) error {
	if s.err != nil {
		return s.err
	}
	if err := s.w.Flush(); err != nil {
		s.err = fmt.Errorf("jobtape: writing the index spool file: %w", err)
		return s.err
	}
	r := bufio.NewReaderSize(io.NewSectionReader(s.f, 0, 1<<62), spoolBuf)
	var line []byte
	for i := range s.n {
		n, err := binary.ReadUvarint(r)
		if err == nil && n > maxSpoolLine {
			err = fmt.Errorf("a line of %d bytes", n)
		}
		if err == nil {
			if uint64(cap(line)) < n {
				line = make([]byte, n)
			}
			line = line[:n]
			_, err = io.ReadFull(r, line)
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return fmt.Errorf("jobtape: reading entry %d of the index spool file: %w", i+1, err)
		}
		if err := fn(line); err != nil {
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
