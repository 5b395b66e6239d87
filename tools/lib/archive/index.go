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
	"strconv"
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
	line    []byte // the line being encoded (reused)
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
	line, err := AppendIndexLine(iw.line[:0], &e)
	if err != nil {
		return err
	}
	iw.line = line
	return iw.AddLine(line)
}

// AddLine appends one entry already encoded by AppendIndexLine (a writer
// that keeps its entries until the end encodes them as they come).
func (iw *IndexWriter) AddLine(line []byte) error {
	if iw.err != nil {
		return iw.err
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

// AppendIndexLine appends e's index line (without the newline) to b: the
// bytes json.Marshal gives for its indexLine, written by hand because a
// job writes one for each of its members (json.Marshal cost seven
// allocations an entry). TestIndexLineMatchesJSON keeps the two equal.
// An entry without a path is an error.
func AppendIndexLine(b []byte, e *IndexEntry) ([]byte, error) {
	if e.Path == "" {
		return b, errors.New("archive: index entry with an empty path")
	}
	b = append(b, '{')
	if utf8.ValidString(e.Path) {
		b = append(b, `"path":`...)
		b = appendJSONString(b, e.Path)
	} else {
		b = append(b, `"path_b64":"`...)
		b = base64.StdEncoding.AppendEncode(b, []byte(e.Path))
		b = append(b, '"')
	}
	b = append(b, `,"type":`...)
	b = appendJSONString(b, e.Type.String())
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, e.Size, 10)
	b = append(b, `,"mtime_ns":`...)
	b = strconv.AppendInt(b, e.Mtime, 10)
	b = append(b, `,"mode":"`...)
	var mb [24]byte
	mode := strconv.AppendInt(mb[:0], e.Mode, 8) // as %04o
	if e.Mode >= 0 {
		for i := len(mode); i < 4; i++ {
			b = append(b, '0')
		}
		b = append(b, mode...)
	} else {
		b = fmt.Appendf(b, "%04o", e.Mode)
	}
	b = append(b, `","uid":`...)
	b = strconv.AppendInt(b, e.UID, 10)
	b = append(b, `,"gid":`...)
	b = strconv.AppendInt(b, e.GID, 10)
	if e.Uname != "" {
		b = append(b, `,"uname":`...)
		b = appendJSONString(b, e.Uname)
	}
	if e.Gname != "" {
		b = append(b, `,"gname":`...)
		b = appendJSONString(b, e.Gname)
	}
	if utf8.ValidString(e.Linkname) {
		if e.Linkname != "" {
			b = append(b, `,"link":`...)
			b = appendJSONString(b, e.Linkname)
		}
	} else {
		b = append(b, `,"link_b64":"`...)
		b = base64.StdEncoding.AppendEncode(b, []byte(e.Linkname))
		b = append(b, '"')
	}
	if e.Sparse {
		b = append(b, `,"sparse":true`...)
	}
	if e.SHA256 != ([32]byte{}) {
		b = append(b, `,"sha256":"`...)
		b = hex.AppendEncode(b, e.SHA256[:])
		b = append(b, '"')
	}
	b = append(b, `,"at":`...)
	b = appendAddress(b, e.Address, true)
	if len(e.Parts) > 0 {
		b = append(b, `,"parts":[`...)
		for i, p := range e.Parts {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendAddress(b, p.Address, false)
			b = append(b, `,"part":`...)
			b = strconv.AppendInt(b, int64(p.Part), 10)
			b = append(b, `,"data_offset":`...)
			b = strconv.AppendInt(b, p.DataOffset, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// appendAddress appends a's fields as an object ({"volume":…,"offset":N),
// closed when close is set (a PartAddress goes on with its own fields).
func appendAddress(b []byte, a Address, close bool) []byte {
	b = append(b, `{"volume":`...)
	b = appendJSONString(b, a.Volume)
	b = append(b, `,"file":`...)
	b = strconv.AppendInt(b, a.TapeFile, 10)
	b = append(b, `,"block":`...)
	b = strconv.AppendInt(b, a.Block, 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, a.Offset, 10)
	if close {
		b = append(b, '}')
	}
	return b
}

// appendJSONString appends s quoted as encoding/json quotes it (HTML
// characters, U+2028 and U+2029 escaped; invalid UTF-8 as U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
