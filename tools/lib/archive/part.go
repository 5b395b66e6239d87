package archive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FormatVersion is the on-tape layout version the part header states.
const FormatVersion = 2

// Kinds of tape file a part header starts.
const (
	KindData  = "data"
	KindIndex = "index"
)

// PartHeader is the pax global header that starts every tape file of a
// job: one data part, or the job's index.
type PartHeader struct {
	Kind         string // KindData (default) or KindIndex
	JobID        int64
	Job          string
	Client       string
	FileSet      string
	Level        string // Full, Differential, Incremental
	Part         int    // 1, 2, … over the job's data tape files
	VolumeSeq    int    // 1, 2, … over the job's volumes
	StreamOffset int64  // stream offset of this part's first stream byte
	BlockSize    int    // tape block size, bytes
	Volume       string
	TapeFile     int // this tape file's number on the volume (0: not stated)
	Created      time.Time

	// Cut, if not nil, is the member the previous part ended in the
	// middle of: this part starts with its remaining bytes.
	Cut *Cut
}

// Cut is a member cut by the end of a volume.
type Cut struct {
	Path   string // the member's path as stored
	Size   int64  // the member's stored data size (all parts)
	Offset int64  // stored data bytes written on earlier parts (a multiple of BlockSize)
	Mode   int64
	Mtime  int64 // Unix nanoseconds
}

// Remaining is how many stored data bytes the continuation carries.
func (c Cut) Remaining() int64 { return c.Size - c.Offset }

// CutAt is the Cut of rec when the stream is cut at stream offset at
// (the first byte of the next part). at must fall inside rec's data, at
// a multiple of BlockSize from its start; a cut inside the headers or
// padding is not a continuation (end the part before the header, or
// after the padding).
func CutAt(rec Record, at int64) (Cut, error) {
	n := at - rec.DataOffset
	if rec.Type != TypeReg || n < 0 || n >= rec.StoredSize || n%BlockSize != 0 {
		return Cut{}, fmt.Errorf("archive: cut at stream offset %d is not inside the data of %q (data %d..%d) at a %d-byte boundary", at, rec.Path, rec.DataOffset, rec.DataOffset+rec.StoredSize, BlockSize)
	}
	return Cut{Path: rec.Path, Size: rec.StoredSize, Offset: n, Mode: rec.Mode, Mtime: rec.Mtime}, nil
}

// Keys of the part header.
const (
	keyPrefix   = "TAPEWARD."
	keyFormat   = keyPrefix + "format"
	keyVolFile  = "GNU.volume.filename"
	keyVolSize  = "GNU.volume.size"
	keyVolOff   = "GNU.volume.offset"
	keyComment  = "comment"
	maxPAXBytes = 1 << 20
)

// RestoreHint is the one-line recipe the part header's comment carries.
func (h PartHeader) RestoreHint() string {
	file := "N"
	if h.TapeFile > 0 {
		file = strconv.Itoa(h.TapeFile)
	}
	bs := h.BlockSize
	if bs <= 0 {
		bs = 1 << 20
	}
	what := fmt.Sprintf("tapeward job %d part %d (%s)", h.JobID, h.Part, h.kind())
	rest := fmt.Sprintf("load the key (tapekey drive set-key), then: mt -f /dev/nst0 rewind; mt -f /dev/nst0 fsf %s; dd if=/dev/nst0 bs=%d | tar -xvf - (tar -tvf - lists it", file, bs)
	if h.kind() == KindIndex {
		rest += "; tar -xOf - prints the index, one JSON line a member)"
	} else {
		rest += "; a member cut at a volume's end continues as GNUFileParts/NAME.PART in the next part: tar -M stitches those two parts; a part without GNU.volume keys is extracted alone)"
	}
	return what + ": " + rest
}

func (h PartHeader) kind() string {
	if h.Kind == "" {
		return KindData
	}
	return h.Kind
}

func (h PartHeader) records() map[string]string {
	r := map[string]string{
		keyFormat:                   strconv.Itoa(FormatVersion),
		keyPrefix + "kind":          h.kind(),
		keyPrefix + "job_id":        strconv.FormatInt(h.JobID, 10),
		keyPrefix + "job":           h.Job,
		keyPrefix + "client":        h.Client,
		keyPrefix + "fileset":       h.FileSet,
		keyPrefix + "level":         h.Level,
		keyPrefix + "part":          strconv.Itoa(h.Part),
		keyPrefix + "volume_seq":    strconv.Itoa(h.VolumeSeq),
		keyPrefix + "stream_offset": strconv.FormatInt(h.StreamOffset, 10),
		keyPrefix + "block_size":    strconv.Itoa(h.BlockSize),
		keyPrefix + "volume":        h.Volume,
		keyPrefix + "tape_file":     strconv.Itoa(h.TapeFile),
		keyPrefix + "created":       h.Created.UTC().Format(time.RFC3339Nano),
		keyComment:                  h.RestoreHint(),
	}
	if c := h.Cut; c != nil {
		r[keyVolFile] = c.Path
		r[keyVolSize] = strconv.FormatInt(c.Remaining(), 10)
		r[keyVolOff] = strconv.FormatInt(c.Offset, 10)
	}
	return r
}

// Encode is the part header as whole 512-byte records: a pax global
// header ('g') with the TAPEWARD.* keys, the comment and, when the part
// continues a cut member, GNU tar's GNU.volume.filename/size/offset;
// then, for a cut member, the continuation member's headers (named
// ContinuationName, sized Cut.Remaining). The part's stream bytes follow
// (from the cut on, for a cut member).
func (h PartHeader) Encode() ([]byte, error) {
	for k, v := range map[string]string{"job": h.Job, "client": h.Client, "fileset": h.FileSet, "level": h.Level, "volume": h.Volume} {
		if strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("archive: part header %s %q contains NUL", k, v)
		}
	}
	if h.Cut != nil {
		if c := h.Cut; c.Path == "" || c.Offset < 0 || c.Offset%BlockSize != 0 || c.Offset >= c.Size {
			return nil, fmt.Errorf("archive: part header: cut of %q at %d of %d bytes is not at a %d-byte boundary inside the member", c.Path, c.Offset, c.Size, BlockSize)
		}
	}
	recs := h.records()
	keys := make([]string, 0, len(recs))
	for k := range recs {
		keys = append(keys, k)
	}
	// The comment first (the recipe is then in the tape file's first
	// kilobyte, for `dd … count=1 | strings`), then the keys in order.
	slices.SortFunc(keys, func(a, b string) int {
		switch {
		case a == keyComment:
			return -1
		case b == keyComment:
			return 1
		}
		return strings.Compare(a, b)
	})
	var pax []byte
	for _, k := range keys {
		// No hdrcharset here, even for a path that is not UTF-8: in a
		// global header it would apply to every later member. GNU tar
		// compares GNU.volume.filename byte for byte.
		pax = appendPAXRecord(pax, k, recs[k])
	}
	var buf bytes.Buffer
	w := NewWriterSize(&buf, 0)
	name := fmt.Sprintf("TAPEWARD-job%d-part%d", h.JobID, h.Part)
	if h.kind() == KindIndex {
		name = fmt.Sprintf("TAPEWARD-job%d-index", h.JobID)
	}
	var blk [BlockSize]byte
	putUstar(&blk, &ustar{name: asciiName(name, lenName), typ: 'g', mode: 0o644, size: int64(len(pax)), mtime: max(h.Created.Unix(), 0)})
	w.write(blk[:])
	w.write(pax)
	w.pad()
	if h.Cut != nil {
		if err := w.writeContinuation(*h.Cut, h.Part); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), w.err
}

// ContinuationName is the name of the member that carries a cut member's
// remaining bytes in part part (GNU tar's own convention, so a plain
// `tar -x` of one part never overwrites the real file with its tail).
func ContinuationName(c Cut, part int) string {
	base := strings.TrimSuffix(c.Path, "/")
	if i := strings.LastIndexByte(base, '/'); i >= 0 {
		base = base[i+1:]
	}
	return "GNUFileParts/" + base + "." + strconv.Itoa(part)
}

func (w *Writer) writeContinuation(c Cut, part int) error {
	name := ContinuationName(c, part)
	sec, ns := c.Mtime/1e9, c.Mtime%1e9
	if ns < 0 {
		sec, ns = sec-1, ns+1e9
	}
	h := ustar{name: name, typ: byte(TypeReg), mode: c.Mode, size: c.Remaining(), mtime: sec}
	var pax []byte
	if needsPAXString(name, lenName) {
		if binaryString(name) {
			pax = appendPAXRecord(pax, "hdrcharset", "BINARY")
		}
		pax = appendPAXRecord(pax, "path", name)
		h.name = asciiName(name, lenName)
	}
	if c.Remaining() > 077777777777 {
		pax = appendPAXRecord(pax, "size", strconv.FormatInt(c.Remaining(), 10))
	}
	if sec < 0 || sec > 077777777777 {
		h.mtime = 0
	}
	_ = ns
	return w.writeHeaders(&h, pax, name)
}

// NewWriterSize is NewWriter with a data buffer of size bytes (0: a
// small one; for headers only).
func NewWriterSize(w io.Writer, size int) *Writer {
	if size <= 0 {
		size = BlockSize
	}
	return &Writer{w: w, buf: make([]byte, size), hash: newHash()}
}

// ParsePartHeader reads a part header's global header from r (exactly
// its records: r is left at the first member, a continuation member
// included).
func ParsePartHeader(r io.Reader) (PartHeader, error) {
	var blk [BlockSize]byte
	if _, err := io.ReadFull(r, blk[:]); err != nil {
		return PartHeader{}, fmt.Errorf("archive: reading the part header: %w", err)
	}
	if err := checkBlock(&blk); err != nil {
		return PartHeader{}, fmt.Errorf("archive: part header: %w", err)
	}
	if blk[offTypeflag] != 'g' {
		return PartHeader{}, fmt.Errorf("archive: part header: typeflag %q, want 'g' (a pax global header): this tape file does not start with a Tapeward part header", blk[offTypeflag])
	}
	size, err := parseNumber(blk[offSize : offSize+12])
	if err != nil || size < 0 || size > maxPAXBytes {
		return PartHeader{}, fmt.Errorf("archive: part header: bad size field %q", blk[offSize:offSize+12])
	}
	data := make([]byte, (size+BlockSize-1)/BlockSize*BlockSize)
	if _, err := io.ReadFull(r, data); err != nil {
		return PartHeader{}, fmt.Errorf("archive: reading the part header's %d bytes of records: %w", size, err)
	}
	recs, err := parsePAX(data[:size])
	if err != nil {
		return PartHeader{}, fmt.Errorf("archive: part header: %w", err)
	}
	return partHeaderFrom(recs)
}

// partHeaderFrom decodes the records of a part header.
func partHeaderFrom(recs map[string]string) (PartHeader, error) {
	v, ok := recs[keyFormat]
	if !ok {
		return PartHeader{}, errors.New("archive: the global header has no " + keyFormat + ": not a Tapeward part header")
	}
	if v != strconv.Itoa(FormatVersion) {
		return PartHeader{}, fmt.Errorf("archive: part header format %q, this reader knows %d", v, FormatVersion)
	}
	var h PartHeader
	var errs []error
	num := func(k string, bits int) int64 {
		s, ok := recs[keyPrefix+k]
		if !ok {
			errs = append(errs, fmt.Errorf("%s%s missing", keyPrefix, k))
			return 0
		}
		n, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s%s=%q is not a number", keyPrefix, k, s))
		}
		return n
	}
	h.Kind = recs[keyPrefix+"kind"]
	if h.Kind != KindData && h.Kind != KindIndex {
		errs = append(errs, fmt.Errorf("%skind=%q, want %s or %s", keyPrefix, h.Kind, KindData, KindIndex))
	}
	h.JobID = num("job_id", 64)
	h.Job = recs[keyPrefix+"job"]
	h.Client = recs[keyPrefix+"client"]
	h.FileSet = recs[keyPrefix+"fileset"]
	h.Level = recs[keyPrefix+"level"]
	h.Part = int(num("part", 32))
	h.VolumeSeq = int(num("volume_seq", 32))
	h.StreamOffset = num("stream_offset", 64)
	h.BlockSize = int(num("block_size", 32))
	h.Volume = recs[keyPrefix+"volume"]
	h.TapeFile = int(num("tape_file", 32))
	if s := recs[keyPrefix+"created"]; s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%screated=%q: %v", keyPrefix, s, err))
		}
		h.Created = t
	}
	if name, ok := recs[keyVolFile]; ok {
		c := Cut{Path: name}
		size, err1 := strconv.ParseInt(recs[keyVolSize], 10, 64)
		off, err2 := strconv.ParseInt(recs[keyVolOff], 10, 64)
		if err1 != nil || err2 != nil || size <= 0 || off < 0 || off > 1<<62 || size > 1<<62 {
			errs = append(errs, fmt.Errorf("%s/%s = %q/%q are not a size and an offset", keyVolSize, keyVolOff, recs[keyVolSize], recs[keyVolOff]))
		}
		c.Offset, c.Size = off, off+size
		h.Cut = &c
	}
	if len(errs) > 0 {
		return PartHeader{}, fmt.Errorf("archive: part header: %w", errors.Join(errs...))
	}
	return h, nil
}

// checkBlock verifies a header block's checksum.
func checkBlock(blk *[BlockSize]byte) error {
	want, err := parseNumber(blk[offChksum : offChksum+8])
	if err != nil {
		return fmt.Errorf("bad checksum field %q", blk[offChksum:offChksum+8])
	}
	if sum := HeaderSum(blk); sum != want {
		return fmt.Errorf("header checksum %d, computed %d: not a tar header", want, sum)
	}
	return nil
}

// parseNumber reads an octal (NUL/space terminated) or base-256 field.
func parseNumber(b []byte) (int64, error) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		if len(b) > 9 {
			for _, c := range b[1 : len(b)-8] {
				if c != 0 {
					return 0, errors.New("base-256 number too large")
				}
			}
			b = b[len(b)-8:]
			v := int64(0)
			for _, c := range b {
				v = v<<8 | int64(c)
			}
			return v & (1<<63 - 1), nil
		}
		v := int64(b[0] & 0x7f)
		for _, c := range b[1:] {
			v = v<<8 | int64(c)
		}
		return v, nil
	}
	s := strings.Trim(string(b), " \x00")
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 8, 64)
}

// parsePAX parses "LEN key=value\n" records by archive/tar's rules
// (which the Reader's own header parsing must not loosen): a decimal
// length of at least 5 that ends the record with its newline, a key
// without '=' or NUL, no NUL in a path, linkpath, uname or gname; a
// later record of a key replaces an earlier one.
func parsePAX(b []byte) (map[string]string, error) {
	s := string(b)
	recs := make(map[string]string, 12)
	for len(s) > 0 {
		sp := strings.IndexByte(s, ' ')
		if sp <= 0 || sp > 18 {
			return nil, errors.New("pax record without a length")
		}
		n := 0
		for _, c := range s[:sp] {
			if c < '0' || c > '9' {
				return nil, fmt.Errorf("pax record length %q is not a number", s[:sp])
			}
			n = n*10 + int(c-'0')
		}
		if n < 5 || n > len(s) || n < sp+2 || s[n-1] != '\n' {
			return nil, fmt.Errorf("pax record length %q does not fit the data", s[:sp])
		}
		k, v, found := strings.Cut(s[sp+1:n-1], "=")
		if !found || k == "" {
			return nil, fmt.Errorf("pax record %q has no key=value", s[sp+1:n-1])
		}
		switch k {
		case "path", "linkpath", "uname", "gname":
			if strings.IndexByte(v, 0) >= 0 {
				return nil, fmt.Errorf("pax record %s holds a NUL", k)
			}
		default:
			if strings.IndexByte(k, 0) >= 0 {
				return nil, fmt.Errorf("pax record key %q holds a NUL", k)
			}
		}
		recs[k] = v
		s = s[n:]
	}
	return recs, nil
}
