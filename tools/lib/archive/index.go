package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Address is where a member's first header block is on tape.
type Address struct {
	Volume   string `json:"volume"`
	TapeFile int64  `json:"file"`   // tape file number on the volume
	Block    int64  `json:"block"`  // logical block within the tape file
	Offset   int64  `json:"offset"` // byte offset within that block
}

// PartAddress is where a continuation member is: its header's address
// and the offset in the member's stored data its bytes start at.
type PartAddress struct {
	Address
	Part       int   `json:"part"`
	DataOffset int64 `json:"data_offset"`
}

// IndexEntry is one member in the job's index.
type IndexEntry struct {
	Path     string
	Type     Type
	Size     int64
	Mtime    int64 // Unix nanoseconds
	Mode     int64
	UID, GID int64
	Uname    string
	Gname    string
	Linkname string
	Sparse   bool
	SHA256   [32]byte // zero: no digest (not a regular file)
	Address  Address
	// Parts lists the continuation members, in order, when the member
	// was cut by the end of a volume.
	Parts []PartAddress
}

// IndexEntryOf is rec's index entry at address a.
func IndexEntryOf(rec Record, a Address) IndexEntry {
	return IndexEntry{Path: rec.Path, Type: rec.Type, Size: rec.Size, Mtime: rec.Mtime, Mode: rec.Mode,
		UID: rec.UID, GID: rec.GID, Uname: rec.Uname, Gname: rec.Gname, Linkname: rec.Linkname,
		Sparse: rec.Sparse, SHA256: rec.SHA256, Address: a}
}

// indexLine is an index entry as one JSON line. A string that is not
// UTF-8 (JSON cannot carry it) goes base64 in the *_b64 field instead.
type indexLine struct {
	Path        string        `json:"path,omitempty"`
	PathB64     string        `json:"path_b64,omitempty"`
	Type        string        `json:"type"`
	Size        int64         `json:"size"`
	Mtime       int64         `json:"mtime_ns"`
	Mode        string        `json:"mode"`
	UID         int64         `json:"uid"`
	GID         int64         `json:"gid"`
	Uname       string        `json:"uname,omitempty"`
	Gname       string        `json:"gname,omitempty"`
	Linkname    string        `json:"link,omitempty"`
	LinknameB64 string        `json:"link_b64,omitempty"`
	Sparse      bool          `json:"sparse,omitempty"`
	SHA256      string        `json:"sha256,omitempty"`
	Address     Address       `json:"at"`
	Parts       []PartAddress `json:"parts,omitempty"`
}

// IndexChunk is the most JSON text one index member holds: the encoder
// keeps at most this much in memory, whatever the number of entries.
const IndexChunk = 1 << 20

// IndexMemberName is the name of the index tape file's n-th member
// (n from 1); `tar -xOf -` prints the members in order, one JSON
// line a tape member.
func IndexMemberName(jobID int64, n int) string {
	return fmt.Sprintf("TAPEWARD-INDEX-job%d.%06d.jsonl", jobID, n)
}

// IndexWriter writes a job's index tape file: a part header (kind
// index), then members of at most IndexChunk bytes of JSON lines, then
// the end-of-archive marker.
type IndexWriter struct {
	w       *Writer
	hdr     PartHeader
	buf     bytes.Buffer
	n       int
	entries int64
	err     error
}

// NewIndexWriter starts the index tape file with hdr (its Kind is set to
// KindIndex).
func NewIndexWriter(w io.Writer, hdr PartHeader) (*IndexWriter, error) {
	hdr.Kind, hdr.Cut = KindIndex, nil
	b, err := hdr.Encode()
	if err != nil {
		return nil, err
	}
	iw := &IndexWriter{w: NewWriterSize(w, 64<<10), hdr: hdr}
	iw.w.write(b)
	return iw, iw.w.err
}

// Add appends one entry.
func (iw *IndexWriter) Add(e IndexEntry) error {
	if iw.err != nil {
		return iw.err
	}
	l := indexLine{Type: e.Type.String(), Size: e.Size, Mtime: e.Mtime, Mode: fmt.Sprintf("%04o", e.Mode),
		UID: e.UID, GID: e.GID, Uname: e.Uname, Gname: e.Gname, Sparse: e.Sparse, Address: e.Address, Parts: e.Parts}
	if utf8.ValidString(e.Path) {
		l.Path = e.Path
	} else {
		l.PathB64 = base64.StdEncoding.EncodeToString([]byte(e.Path))
	}
	if utf8.ValidString(e.Linkname) {
		l.Linkname = e.Linkname
	} else {
		l.LinknameB64 = base64.StdEncoding.EncodeToString([]byte(e.Linkname))
	}
	if e.SHA256 != ([32]byte{}) {
		l.SHA256 = hex.EncodeToString(e.SHA256[:])
	}
	if e.Path == "" {
		return errors.New("archive: index entry with an empty path")
	}
	line, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("archive: index entry %q: %w", e.Path, err)
	}
	if iw.buf.Len() > 0 && iw.buf.Len()+len(line)+1 > IndexChunk {
		if err := iw.flush(); err != nil {
			return err
		}
	}
	iw.buf.Write(line)
	iw.buf.WriteByte('\n')
	iw.entries++
	return nil
}

func (iw *IndexWriter) flush() error {
	iw.n++
	m := Member{Path: IndexMemberName(iw.hdr.JobID, iw.n), Type: TypeReg, Size: int64(iw.buf.Len()), Mode: 0o644, Mtime: iw.hdr.Created.Truncate(time.Second)}
	if _, err := iw.w.WriteMember(m, bytes.NewReader(iw.buf.Bytes())); err != nil {
		iw.err = err
		return err
	}
	iw.buf.Reset()
	return nil
}

// Close writes the last member and the end-of-archive marker.
func (iw *IndexWriter) Close() error {
	if iw.err != nil {
		return iw.err
	}
	if iw.buf.Len() > 0 || iw.n == 0 {
		if err := iw.flush(); err != nil {
			return err
		}
	}
	iw.err = iw.w.Close()
	return iw.err
}

// EncodeIndex writes a whole index tape file: hdr, then every entry next
// yields until it returns false.
func EncodeIndex(w io.Writer, hdr PartHeader, next func() (IndexEntry, bool, error)) error {
	iw, err := NewIndexWriter(w, hdr)
	if err != nil {
		return err
	}
	for {
		e, ok, err := next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := iw.Add(e); err != nil {
			return err
		}
	}
	return iw.Close()
}

// IndexReader reads an index tape file entry by entry.
type IndexReader struct {
	r    *Reader
	br   *bufio.Reader
	hdr  PartHeader
	line int
}

// maxIndexLine bounds one JSON line (a 4096-byte path, base64, fits
// many times).
const maxIndexLine = 1 << 20

// NewIndexReader reads the index tape file's part header.
func NewIndexReader(r io.Reader) (*IndexReader, error) {
	pr, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	if pr.PartHeader().Kind != KindIndex {
		return nil, fmt.Errorf("archive: tape file of job %d part %d is a %s part, not an index", pr.part.JobID, pr.part.Part, pr.part.Kind)
	}
	return &IndexReader{r: pr, hdr: pr.PartHeader()}, nil
}

// Header is the index tape file's part header.
func (ir *IndexReader) Header() PartHeader { return ir.hdr }

// Next returns the next entry, or io.EOF after the last.
func (ir *IndexReader) Next() (IndexEntry, error) {
	for {
		if ir.br == nil {
			e, err := ir.r.Next()
			if err != nil {
				if err == io.EOF && ir.r.Cut() != nil {
					return IndexEntry{}, fmt.Errorf("archive: index member %q is cut short", ir.r.Cut().Path)
				}
				return IndexEntry{}, err
			}
			if e.Header.Typeflag != tar.TypeReg || !strings.HasPrefix(e.Header.Name, "TAPEWARD-INDEX-") {
				return IndexEntry{}, fmt.Errorf("archive: index tape file holds %q, not an index member", e.Header.Name)
			}
			ir.br = bufio.NewReaderSize(io.LimitReader(ir.r, e.Header.Size), 64<<10)
		}
		b, err := ir.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			var long []byte
			long = append(long, b...)
			for err == bufio.ErrBufferFull && len(long) <= maxIndexLine {
				b, err = ir.br.ReadSlice('\n')
				long = append(long, b...)
			}
			b = long
		}
		if err == io.EOF && len(b) == 0 {
			ir.br = nil
			continue
		}
		if err != nil {
			if err == io.EOF {
				return IndexEntry{}, fmt.Errorf("archive: index line %d does not end with a newline", ir.line+1)
			}
			if err == bufio.ErrBufferFull {
				return IndexEntry{}, fmt.Errorf("archive: index line %d is longer than %d bytes", ir.line+1, maxIndexLine)
			}
			return IndexEntry{}, fmt.Errorf("archive: reading index line %d: %w", ir.line+1, err)
		}
		ir.line++
		return decodeIndexLine(b, ir.line)
	}
}

func decodeIndexLine(b []byte, n int) (IndexEntry, error) {
	var l indexLine
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return IndexEntry{}, fmt.Errorf("archive: index line %d: %w", n, err)
	}
	e := IndexEntry{Path: l.Path, Size: l.Size, Mtime: l.Mtime, UID: l.UID, GID: l.GID, Uname: l.Uname,
		Gname: l.Gname, Linkname: l.Linkname, Sparse: l.Sparse, Address: l.Address, Parts: l.Parts}
	bad := func(what string, err error) (IndexEntry, error) {
		return IndexEntry{}, fmt.Errorf("archive: index line %d: %s: %v", n, what, err)
	}
	if l.PathB64 != "" {
		p, err := base64.StdEncoding.DecodeString(l.PathB64)
		if err != nil {
			return bad("path_b64", err)
		}
		e.Path = string(p)
	}
	if l.LinknameB64 != "" {
		p, err := base64.StdEncoding.DecodeString(l.LinknameB64)
		if err != nil {
			return bad("link_b64", err)
		}
		e.Linkname = string(p)
	}
	if e.Path == "" {
		return bad("path", errors.New("empty"))
	}
	t, ok := typeByName(l.Type)
	if !ok {
		return bad("type", fmt.Errorf("unknown type %q", l.Type))
	}
	e.Type = t
	var mode int64
	if _, err := fmt.Sscanf(l.Mode, "%o", &mode); err != nil || mode < 0 || mode > 07777 {
		return bad("mode", fmt.Errorf("%q is not an octal mode", l.Mode))
	}
	e.Mode = mode
	if l.SHA256 != "" {
		d, err := hex.DecodeString(l.SHA256)
		if err != nil || len(d) != 32 {
			return bad("sha256", fmt.Errorf("%q is not 64 hex digits", l.SHA256))
		}
		copy(e.SHA256[:], d)
	}
	return e, nil
}

// DecodeIndex reads an index tape file, calling fn for every entry in
// order; it returns the index's part header.
func DecodeIndex(r io.Reader, fn func(IndexEntry) error) (PartHeader, error) {
	ir, err := NewIndexReader(r)
	if err != nil {
		return PartHeader{}, err
	}
	for {
		e, err := ir.Next()
		if err == io.EOF {
			return ir.Header(), nil
		}
		if err != nil {
			return ir.Header(), err
		}
		if err := fn(e); err != nil {
			return ir.Header(), err
		}
	}
}
