package archive

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Span is one data region of a sparse file: Length bytes at Offset.
type Span struct {
	Offset, Length int64
}

// Member is what filed knows about one file before its data is read.
type Member struct {
	Path     string
	Type     Type
	Size     int64 // regular files: the file's size (a sparse file's apparent size)
	Mode     int64 // permission bits and setuid/setgid/sticky (07777)
	UID, GID int64
	Uname    string
	Gname    string
	Mtime    time.Time
	Linkname string // a symlink's target
	Devmajor int64  // char and block devices
	Devminor int64
	Xattrs   map[string]string // stored as SCHILY.xattr.NAME, in name order

	// Sparse, if not nil, lists the data regions of a sparse regular
	// file in offset order; data then yields only those regions' bytes,
	// one after the other, and the holes are not stored.
	Sparse []Span

	// Dev, Ino and Nlink identify hard links: a regular file with
	// Nlink > 1 whose (Dev, Ino) was already written is stored as a
	// hard link to the first path, with no data.
	Dev, Ino uint64
	Nlink    uint64
}

// Warning flags of a Record.
const (
	// WarnShrunk: the data ended before the header's size; the rest was
	// written as zeros.
	WarnShrunk = 1 << iota
	// WarnGrew: the data went on past the header's size; it was cut at
	// the size.
	WarnGrew
)

// Record is what the writer reports for one member.
type Record struct {
	Path     string // as stored (a directory ends in '/')
	Type     Type
	Size     int64 // the file's size (a sparse file's apparent size); 0 for non-files
	Mode     int64
	UID, GID int64
	Uname    string
	Gname    string
	Mtime    int64 // Unix nanoseconds
	Linkname string
	Xattrs   map[string]string
	Devmajor int64
	Devminor int64
	Sparse   bool

	// HeaderOffset is the stream offset of the member's first header
	// block (its 'x' header when it has one); DataOffset that of its
	// first data byte; StoredSize how many data bytes follow on tape (a
	// sparse file's map and regions), before the padding to BlockSize.
	HeaderOffset int64
	DataOffset   int64
	StoredSize   int64

	// SHA256 is the digest of the file's content as a restore writes it
	// (a sparse file's holes as zeros), computed while streaming; for a
	// hard link, the digest of the member it links to. Zero for other
	// types.
	SHA256 [32]byte

	Warnings int // WarnShrunk, WarnGrew
}

// Writer writes a pax stream member by member, reporting each member's
// offsets and digest. It keeps no file in memory: data goes through one
// reusable buffer.
type Writer struct {
	w    io.Writer
	off  int64
	err  error
	buf  []byte
	buf2 []byte  // copyN's second buffer, for large files
	lent [2]bool // buf, buf2 lent to copyLent (ownBuffers)
	warn int     // the current member's warnings
	// noHoleHash leaves holes out of the digest: tests only (a 1 EiB
	// sparse file cannot be hashed).
	noHoleHash bool
	path       string // the current member's path (for errors)
	pax        []byte
	hash       hash.Hash
	links      map[[2]uint64]linkTarget
	closed     bool
	blk        [BlockSize]byte // scratch (fields: no allocation per member)
	one        [1]byte
	sum        [32]byte
	xname      []byte
	tb         []byte
}

type linkTarget struct {
	path string
	sum  [32]byte
}

// copyBufSize is the data buffer: large, so each Write to the tape path
// is large.
const copyBufSize = 1 << 20

// NewWriter returns a Writer writing to w from stream offset 0.
func NewWriter(w io.Writer) *Writer {
	return NewWriterSize(w, copyBufSize)
}

// Offset is the stream offset of the next byte the writer writes.
func (w *Writer) Offset() int64 { return w.off }

var zeroBlock [BlockSize]byte

func (w *Writer) write(p []byte) error {
	if w.err != nil {
		return w.err
	}
	n, err := w.w.Write(p)
	w.off += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return w.failWrite(err)
	}
	return nil
}

func (w *Writer) pad() error {
	if r := w.off % BlockSize; r != 0 {
		return w.write(zeroBlock[:BlockSize-r])
	}
	return nil
}

// WriteMember writes one member: its headers, then (regular files) the
// data read from data. A regular file's data is read exactly up to its
// size: if data ends early the rest is zeros, if it goes on it is cut,
// and Record.Warnings says which. data may be nil for other types.
func (w *Writer) WriteMember(m Member, data io.Reader) (Record, error) {
	if w.closed {
		return Record{}, errors.New("archive: WriteMember after Close")
	}
	if w.err != nil {
		return Record{}, w.err
	}
	if m.Mtime.IsZero() {
		m.Mtime = time.Unix(0, 0) // no time: the epoch, not year 1
	}
	rec, err := w.record(m)
	if err != nil {
		return Record{}, err
	}
	rec.HeaderOffset = w.off
	h := ustar{
		name: rec.Path, linkname: rec.Linkname, uname: m.Uname, gname: m.Gname,
		typ: byte(rec.Type), mode: rec.Mode, uid: m.UID, gid: m.GID,
		mtime: m.Mtime.Unix(), devmajor: m.Devmajor, devmin: m.Devminor,
	}
	pax := w.pax[:0]
	var sparseMap []byte
	stored := int64(0)
	if rec.Type == TypeReg {
		stored = rec.Size
		if rec.Sparse {
			sparseMap, stored = sparseLayout(m.Sparse, rec.Size)
		}
		rec.StoredSize = stored
	}
	h.size = stored
	// pax records in a fixed order (deterministic bytes; README §2).
	binary := false
	if rec.Sparse {
		pax = appendPAXRecord(pax, "GNU.sparse.major", "1")
		pax = appendPAXRecord(pax, "GNU.sparse.minor", "0")
		pax = appendPAXRecord(pax, "GNU.sparse.name", rec.Path)
		pax = appendPAXRecord(pax, "GNU.sparse.realsize", strconv.FormatInt(rec.Size, 10))
		binary = binary || binaryString(rec.Path)
		dir, base := "", rec.Path
		if i := strings.LastIndexByte(rec.Path, '/'); i >= 0 {
			dir, base = rec.Path[:i+1], rec.Path[i+1:]
		}
		h.name = asciiName(dir+"GNUSparseFile.0/"+base, lenName)
	}
	if m.GID > 07777777 || m.GID < 0 {
		pax = appendPAXRecord(pax, "gid", strconv.FormatInt(m.GID, 10))
		h.gid = 0
	}
	if needsPAXString(m.Gname, lenUname) {
		pax = appendPAXRecord(pax, "gname", m.Gname)
		binary = binary || binaryString(m.Gname)
		h.gname = asciiName(m.Gname, lenUname)
	}
	if needsPAXString(rec.Linkname, lenLinkname) {
		pax = appendPAXRecord(pax, "linkpath", rec.Linkname)
		binary = binary || binaryString(rec.Linkname)
		h.linkname = asciiName(rec.Linkname, lenLinkname)
	}
	if ns := m.Mtime.Nanosecond(); ns != 0 || h.mtime < 0 || h.mtime > 077777777777 {
		w.tb = appendPAXTime(w.tb[:0], h.mtime, int64(ns))
		pax = appendPAXRecord(pax, "mtime", w.tb)
		if h.mtime < 0 || h.mtime > 077777777777 {
			h.mtime = 0
		}
	}
	if !rec.Sparse && needsPAXString(rec.Path, lenName) {
		pax = appendPAXRecord(pax, "path", rec.Path)
		binary = binary || binaryString(rec.Path)
		h.name = asciiName(rec.Path, lenName)
	}
	if stored > 077777777777 {
		pax = appendPAXRecord(pax, "size", strconv.FormatInt(stored, 10))
	}
	if m.UID > 07777777 || m.UID < 0 {
		pax = appendPAXRecord(pax, "uid", strconv.FormatInt(m.UID, 10))
		h.uid = 0
	}
	if needsPAXString(m.Uname, lenUname) {
		pax = appendPAXRecord(pax, "uname", m.Uname)
		binary = binary || binaryString(m.Uname)
		h.uname = asciiName(m.Uname, lenUname)
	}
	if len(m.Xattrs) > 0 {
		keys := make([]string, 0, len(m.Xattrs))
		for k := range m.Xattrs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			pax = appendPAXRecord(pax, "SCHILY.xattr."+k, m.Xattrs[k])
		}
	}
	if binary {
		// Before every other record: it applies to the strings that follow.
		pax = append(appendPAXRecord(nil, "hdrcharset", "BINARY"), pax...)
	}
	w.pax = pax
	if err := w.writeHeaders(&h, pax, rec.Path); err != nil {
		return Record{}, err
	}
	rec.DataOffset = w.off
	if rec.Type != TypeReg {
		return rec, nil
	}
	if err := w.writeData(&rec, m.Sparse, sparseMap, data); err != nil {
		return Record{}, err
	}
	if m.Nlink > 1 {
		w.remember(m, rec)
	}
	return rec, nil
}

// writeHeaders writes an 'x' header carrying pax (if any) for the member
// named name, and the ustar header h.
func (w *Writer) writeHeaders(h *ustar, pax []byte, name string) error {
	blk := &w.blk
	*blk = [BlockSize]byte{}
	if len(pax) > 0 {
		w.xname = appendPAXHeaderName(w.xname[:0], name)
		x := ustar{nameB: w.xname, typ: 'x', mode: 0o644, size: int64(len(pax)), mtime: h.mtime}
		putUstar(blk, &x)
		if err := w.write(blk[:]); err != nil {
			return err
		}
		if err := w.write(pax); err != nil {
			return err
		}
		if err := w.pad(); err != nil {
			return err
		}
		*blk = [BlockSize]byte{}
	}
	putUstar(blk, h)
	return w.write(blk[:])
}

// record checks m and derives the member's Record (without offsets and
// digest); a repeated hard link becomes a TypeLink record.
func (w *Writer) record(m Member) (Record, error) {
	if m.Path == "" {
		return Record{}, errors.New("archive: member with an empty path")
	}
	if strings.IndexByte(m.Path, 0) >= 0 || strings.IndexByte(m.Linkname, 0) >= 0 || strings.IndexByte(m.Uname, 0) >= 0 || strings.IndexByte(m.Gname, 0) >= 0 {
		return Record{}, fmt.Errorf("archive: member %q: NUL in its path, link name, uname or gname", m.Path)
	}
	for k := range m.Xattrs {
		// Values are bytes (security.capability holds NULs): the pax
		// record's length carries them.
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return Record{}, fmt.Errorf("archive: member %q: xattr name %q cannot be stored (empty, or '=' or NUL in it)", m.Path, k)
		}
	}
	rec := Record{
		Path: m.Path, Type: m.Type, Mode: m.Mode & 07777, UID: m.UID, GID: m.GID,
		Uname: m.Uname, Gname: m.Gname, Mtime: m.Mtime.UnixNano(), Linkname: m.Linkname,
		Xattrs: m.Xattrs, Devmajor: m.Devmajor, Devminor: m.Devminor,
	}
	switch m.Type {
	case TypeReg:
		if m.Size < 0 {
			return Record{}, fmt.Errorf("archive: member %q: negative size %d", m.Path, m.Size)
		}
		rec.Size = m.Size
		if m.Nlink > 1 {
			if t, ok := w.links[[2]uint64{m.Dev, m.Ino}]; ok {
				rec.Type, rec.Linkname, rec.Size, rec.SHA256 = TypeLink, t.path, 0, t.sum
				return rec, nil
			}
		}
		if m.Sparse != nil {
			if err := checkSparse(m.Sparse, m.Size); err != nil {
				return Record{}, fmt.Errorf("archive: member %q: %w", m.Path, err)
			}
			rec.Sparse = true
		}
	case TypeDir:
		if !strings.HasSuffix(rec.Path, "/") {
			rec.Path += "/"
		}
	case TypeSymlink, TypeLink:
		if m.Linkname == "" {
			return Record{}, fmt.Errorf("archive: %s %q without a target", m.Type, m.Path)
		}
	case TypeChar, TypeBlock, TypeFifo:
	default:
		return Record{}, fmt.Errorf("archive: member %q: unsupported type %s", m.Path, m.Type)
	}
	if strings.HasSuffix(rec.Path, "/") && rec.Type != TypeDir {
		return Record{}, fmt.Errorf("archive: %s %q ends in '/'", rec.Type, m.Path)
	}
	return rec, nil
}

func (w *Writer) remember(m Member, rec Record) {
	if w.links == nil {
		w.links = map[[2]uint64]linkTarget{}
	}
	w.links[[2]uint64{m.Dev, m.Ino}] = linkTarget{path: rec.Path, sum: rec.SHA256}
}

// checkSparse: regions in order, not overlapping, inside size.
func checkSparse(spans []Span, size int64) error {
	end := int64(0)
	for i, s := range spans {
		if s.Offset < end || s.Length < 0 || s.Offset > size || s.Length > size-s.Offset {
			return fmt.Errorf("sparse region %d (offset %d, length %d) out of order, overlapping or past the size %d", i, s.Offset, s.Length, size)
		}
		end = s.Offset + s.Length
	}
	return nil
}

// sparseLayout is the pax 1.0 sparse map (count, then offset and length
// of each region, one decimal number a line, padded to BlockSize) and
// the stored size (map + regions). A file that ends in a hole gets a
// last empty region at its size, as GNU tar writes it, so readers set
// the size.
func sparseLayout(spans []Span, size int64) ([]byte, int64) {
	n := len(spans)
	trailing := n == 0 || spans[n-1].Offset+spans[n-1].Length < size
	if trailing {
		n++
	}
	m := strconv.AppendInt(nil, int64(n), 10)
	m = append(m, '\n')
	data := int64(0)
	for _, s := range spans {
		m = strconv.AppendInt(m, s.Offset, 10)
		m = append(m, '\n')
		m = strconv.AppendInt(m, s.Length, 10)
		m = append(m, '\n')
		data += s.Length
	}
	if trailing {
		m = strconv.AppendInt(m, size, 10)
		m = append(m, "\n0\n"...)
	}
	if r := len(m) % BlockSize; r != 0 {
		m = append(m, zeroBlock[:BlockSize-r]...)
	}
	return m, int64(len(m)) + data
}

// writeData streams a regular file's data, hashing the content a restore
// would write.
func (w *Writer) writeData(rec *Record, spans []Span, sparseMap []byte, data io.Reader) error {
	w.hash.Reset()
	w.warn, w.path = 0, rec.Path
	if data == nil {
		data = eofReader{}
	}
	if spans == nil {
		if err := w.copyN(data, rec.Size); err != nil {
			return err
		}
	} else {
		if err := w.write(sparseMap); err != nil {
			return err
		}
		pos := int64(0)
		for _, s := range spans {
			w.hashZeros(s.Offset - pos)
			if err := w.copyN(data, s.Length); err != nil {
				return err
			}
			pos = s.Offset + s.Length
		}
		w.hashZeros(rec.Size - pos)
	}
	rec.Warnings = w.warn
	if rec.Warnings&WarnShrunk == 0 {
		if n, _ := io.ReadFull(data, w.one[:]); n > 0 {
			rec.Warnings |= WarnGrew
		}
	}
	w.hash.Sum(w.sum[:0])
	rec.SHA256 = w.sum
	return w.pad()
}

// copyN copies n bytes of data to the stream (zeros once data ends).
// From parallelHash bytes on it is a small pipeline over two buffers:
// while one chunk is written, another goroutine hashes it and reads the
// next one, so reading, SHA-256 and writing (into a pipe, a TLS stream)
// overlap.
func (w *Writer) copyN(data io.Reader, n int64) error {
	if n < parallelHash {
		for n > 0 {
			chunk, err := w.fill(data, w.buf, n)
			if err != nil {
				return err
			}
			w.hash.Write(chunk)
			if err := w.write(chunk); err != nil {
				return err
			}
			n -= int64(len(chunk))
		}
		return nil
	}
	return w.copyPipelined(data, n)
}

// copyPipelined is copyN's pipeline (its own function: the goroutine's
// captured variables then cost the small-file path nothing): copyLent,
// into the destination's buffers when it lends them, else into the
// Writer's own two.
func (w *Writer) copyPipelined(data io.Reader, n int64) error {
	if bw, ok := w.w.(BufferWriter); ok {
		return w.copyLent(bw, data, n)
	}
	if w.buf2 == nil {
		w.buf2 = make([]byte, len(w.buf))
	}
	return w.copyLent(ownBuffers{w}, data, n)
}

// ownBuffers lends the Writer's two buffers to copyLent for a
// destination that only has Write (which copies them).
type ownBuffers struct{ w *Writer }

func (o ownBuffers) Write(p []byte) (int, error) { return o.w.w.Write(p) }

func (o ownBuffers) Buffer() ([]byte, error) {
	for i, b := range [2][]byte{o.w.buf, o.w.buf2} {
		if !o.w.lent[i] {
			o.w.lent[i] = true
			return b, nil
		}
	}
	return nil, errors.New("archive: both buffers are lent") // copyLent holds two at most
}

func (o ownBuffers) WriteBuffer(b []byte) error {
	i := 0
	if &b[:1][0] == &o.w.buf2[0] {
		i = 1
	}
	o.w.lent[i] = false
	if len(b) == 0 {
		return nil
	}
	n, err := o.w.w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}

// A BufferWriter is a destination that lends the Writer its own
// buffers for a large file's data: the Writer reads the data into a
// buffer from Buffer and hands it over whole with WriteBuffer instead of
// copying it in with Write.
type BufferWriter interface {
	io.Writer
	// Buffer returns a free buffer to fill (its length is what it holds).
	Buffer() ([]byte, error)
	// WriteBuffer writes b, a buffer from Buffer cut to the bytes filled,
	// as Write would, and takes it back; an empty b is only taken back.
	// The Writer does not touch b after the call, and b's bytes are not
	// changed before Buffer gives the buffer out again.
	WriteBuffer(b []byte) error
}

// copyLent is copyPipelined into a BufferWriter's buffers: while one
// is written (handed over), another goroutine hashes it and reads the
// next chunk into a buffer taken before the hand-over (so never the
// same one: the destination may give a buffer out again once written).
func (w *Writer) copyLent(bw BufferWriter, data io.Reader, n int64) error {
	b, err := bw.Buffer()
	if err != nil {
		return w.failWrite(err)
	}
	chunk, err := w.fill(data, b, n)
	if err != nil {
		bw.WriteBuffer(b[:0]) //nolint:errcheck // only taken back
		return err
	}
	for {
		n -= int64(len(chunk))
		var buf, next []byte
		if n > 0 {
			if buf, err = bw.Buffer(); err != nil {
				bw.WriteBuffer(chunk[:0]) //nolint:errcheck // only taken back
				return w.failWrite(err)
			}
		}
		var rerr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.hash.Write(chunk)
			if buf != nil {
				next, rerr = w.fill(data, buf, n)
			}
		}()
		werr := w.writeLent(bw, chunk)
		<-done
		if werr != nil || rerr != nil {
			if buf != nil {
				bw.WriteBuffer(buf[:0]) //nolint:errcheck // only taken back
			}
			return cmp.Or(werr, rerr)
		}
		if n == 0 {
			return nil
		}
		chunk = next
	}
}

// writeLent is write for a buffer of bw's.
func (w *Writer) writeLent(bw BufferWriter, b []byte) error {
	if w.err != nil {
		bw.WriteBuffer(b[:0]) //nolint:errcheck // only taken back
		return w.err
	}
	if err := bw.WriteBuffer(b); err != nil {
		return w.failWrite(err)
	}
	w.off += int64(len(b))
	return nil
}

// failWrite keeps a write error of the destination's (as write does).
func (w *Writer) failWrite(err error) error {
	if w.err == nil {
		w.err = fmt.Errorf("archive: writing at stream offset %d: %w", w.off, err)
	}
	return w.err
}

// fill reads the next chunk of at most n bytes into buf (zeros once
// data has ended, noting it in w.warn).
func (w *Writer) fill(data io.Reader, buf []byte, n int64) ([]byte, error) {
	chunk := buf
	if int64(len(chunk)) > n {
		chunk = chunk[:n]
	}
	got := 0
	if w.warn&WarnShrunk == 0 {
		var err error
		got, err = io.ReadFull(data, chunk)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			w.warn |= WarnShrunk
			err = nil
		}
		if err != nil {
			return nil, fmt.Errorf("archive: reading %q: %w", w.path, err)
		}
	}
	clear(chunk[got:])
	return chunk, nil
}

// hashZeros feeds n zero bytes (a hole) to the digest.
func (w *Writer) hashZeros(n int64) {
	if n <= 0 || w.noHoleHash {
		return
	}
	z := w.buf
	clear(z)
	for n > 0 {
		c := z
		if int64(len(c)) > n {
			c = c[:n]
		}
		w.hash.Write(c)
		n -= int64(len(c))
	}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// Close writes the end-of-archive marker (two zero blocks). It does not
// close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if err := w.write(zeroBlock[:]); err != nil {
		return err
	}
	return w.write(zeroBlock[:])
}

func newHash() hash.Hash { return sha256.New() }

// parallelHash is the size from which a member's data goes through
// copyN's pipeline (smaller files are not worth the hand-off).
const parallelHash = 256 << 10
