package archive

import (
	"archive/tar"
	"bytes"
	"io"
	"strconv"
	"strings"
	"time"
)

// The Reader parses the headers of an ordinary member itself — an
// optional pax extended header ('x') and a POSIX ustar header of a
// regular file, hard link, symlink, device, directory or fifo, every
// number in octal — and hands everything else to archive/tar: the end of
// the archive, global headers, GNU long names, sparse files, base-256
// numbers, bad checksums, malformed records. archive/tar cost 15–18 µs a
// member in storaged and again in filed restoring 100,000 files of 4 KiB
// (a third of storaged's CPU time, a sixth of filed's; perf, 2026-12-04):
// it allocates for every header field and record and decodes every
// header block as UTF-8 to guess its format. The header made here is the one
// archive/tar makes from the same bytes (TestFastHeaderMatchesTar and
// FuzzFastHeader hold them equal, field by field). It does not apply
// GODEBUG tarinsecurepath=0 (archive/tar's ErrInsecurePath for absolute
// or ".." names): stored names are absolute paths, and where a member may
// be written is decided by relocate and extract.

// maxFastPAX is the largest pax extended header parsed here (archive/tar
// refuses those over 1 MiB).
const maxFastPAX = 1 << 20

// fastHeader reads a member's header blocks from r, appending them to
// buf, and parses them. It returns a nil hdr when archive/tar must parse
// what was read (read holds it) and whatever follows; if reading failed,
// err is what r returned, for archive/tar to meet after those bytes.
// size is how many data bytes follow the headers.
func fastHeader(r io.Reader, buf []byte) (hdr *tar.Header, size int64, read []byte, err error) {
	buf, first, err := readBlocks(r, buf, BlockSize)
	if err != nil {
		return nil, 0, buf, err
	}
	h, ok := ustarFields(first)
	if !ok {
		return nil, 0, buf, nil
	}
	format := tar.FormatUSTAR | tar.FormatPAX | tar.FormatGNU
	format &= h.format
	var pax map[string]string
	if h.Typeflag == tar.TypeXHeader {
		n := h.Size
		if n < 0 || n > maxFastPAX {
			return nil, 0, buf, nil
		}
		var recs []byte
		if buf, recs, err = readBlocks(r, buf, int((n+BlockSize-1)/BlockSize*BlockSize)); err != nil {
			return nil, 0, buf, err
		}
		if pax, err = parsePAX(recs[:n]); err != nil || sparsePAX(pax) {
			return nil, 0, buf, nil // archive/tar says what is wrong, or reads the sparse member
		}
		format &= tar.FormatPAX
		var next []byte
		if buf, next, err = readBlocks(r, buf, BlockSize); err != nil {
			return nil, 0, buf, err
		}
		if h, ok = ustarFields(next); !ok {
			return nil, 0, buf, nil
		}
		format &= h.format
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
	default:
		return nil, 0, buf, nil
	}
	hdr = &h.Header
	if !mergeFastPAX(hdr, pax) {
		return nil, 0, buf, nil
	}
	if hdr.Typeflag == tar.TypeRegA {
		if strings.HasSuffix(hdr.Name, "/") {
			hdr.Typeflag = tar.TypeDir
		} else {
			hdr.Typeflag = tar.TypeReg
		}
	}
	size = hdr.Size
	switch hdr.Typeflag {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		size = 0 // header only, whatever the size field says
	}
	if size < 0 {
		return nil, 0, buf, nil
	}
	if format&tar.FormatUSTAR != 0 && format&tar.FormatPAX != 0 {
		format &= tar.FormatUSTAR
	}
	hdr.Format = format
	return hdr, size, buf, nil
}

// readBlocks appends n bytes read from r to buf and returns them too;
// if r ends or fails first, buf holds what was read and err is
// io.ReadFull's (replayed to archive/tar, it fails there as r's own
// error would have).
func readBlocks(r io.Reader, buf []byte, n int) (_ []byte, got []byte, err error) {
	start := len(buf)
	buf = append(buf, make([]byte, n)...)
	m, err := io.ReadFull(r, buf[start:])
	if err != nil {
		return buf[:start+m], nil, err
	}
	return buf, buf[start:], nil
}

// sparsePAX: the records describe a GNU sparse member.
func sparsePAX(recs map[string]string) bool {
	for k := range recs {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// replay reads b, then fails with err (nil: goes on with r).
func replay(b []byte, err error, r io.Reader) io.Reader {
	if err != nil {
		r = errReader{err}
	}
	return io.MultiReader(bytes.NewReader(b), r)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// ustarHeader is one header block as archive/tar reads it, with the
// format that block allows.
type ustarHeader struct {
	tar.Header
	format tar.Format
}

// ustarFields parses a POSIX ustar header block whose numbers are all
// octal; ok is false for any other block, or one whose checksum or
// fields archive/tar would not accept as they are.
func ustarFields(b []byte) (h ustarHeader, ok bool) {
	blk := (*[BlockSize]byte)(b)
	if string(b[offMagic:offMagic+8]) != "ustar\x0000" || string(b[508:512]) == "tar\x00" {
		return h, false // not POSIX ustar (GNU, v7 or star: archive/tar's)
	}
	sum, ok := octal(b[offChksum : offChksum+8])
	if !ok || sum != HeaderSum(blk) {
		return h, false
	}
	var nums [7]int64
	for i, f := range [7][2]int{{offSize, 12}, {offMode, 8}, {offUID, 8}, {offGID, 8}, {offMtime, 12}, {offDevmajor, 8}, {offDevminor, 8}} {
		if nums[i], ok = octal(b[f[0] : f[0]+f[1]]); !ok {
			return h, false
		}
	}
	h.Typeflag = b[offTypeflag]
	h.Name = cString(b[offName : offName+lenName])
	h.Linkname = cString(b[offLinkname : offLinkname+lenLinkname])
	h.Size, h.Mode, h.Uid, h.Gid = nums[0], nums[1], int(nums[2]), int(nums[3])
	h.ModTime = time.Unix(nums[4], 0)
	h.Uname = cString(b[offUname : offUname+lenUname])
	h.Gname = cString(b[offGname : offGname+lenUname])
	h.Devmajor, h.Devminor = nums[5], nums[6]
	if prefix := cString(b[offPrefix : offPrefix+lenPrefix]); prefix != "" {
		h.Name = prefix + "/" + h.Name
	}
	// archive/tar's guess: a block with a byte outside ASCII, or a
	// number field not ending in NUL, may be of no known format.
	h.format = tar.FormatUSTAR | tar.FormatPAX
	for _, c := range b {
		if c >= 0x80 {
			h.format = tar.FormatUnknown
		}
	}
	for _, end := range []int{offSize + 11, offMode + 7, offUID + 7, offGID + 7, offMtime + 11, offDevmajor + 7, offDevminor + 7} {
		if b[end] != 0 {
			h.format = tar.FormatUnknown
		}
	}
	return h, true
}

// offPrefix and lenPrefix place the ustar name prefix (the Writer leaves
// it empty: long names go in a pax record).
const (
	offPrefix = 345
	lenPrefix = 155
)

// cString is b up to its first NUL.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// octal parses a number field written in octal: digits between leading
// and trailing spaces and NULs (none at all is 0). ok is false for
// anything else (base-256, a sign, a NUL among the digits) and for a
// value over int64.
func octal(b []byte) (v int64, ok bool) {
	i, j := 0, len(b)
	for i < j && (b[i] == ' ' || b[i] == 0) {
		i++
	}
	for j > i && (b[j-1] == ' ' || b[j-1] == 0) {
		j--
	}
	for _, c := range b[i:j] {
		if c < '0' || c > '7' || v > (1<<63-1)>>3 {
			return 0, false
		}
		v = v<<3 | int64(c-'0')
	}
	return v, true
}

// mergeFastPAX applies the pax records to hdr as archive/tar does (an
// empty value keeps the ustar field); false where it would fail.
func mergeFastPAX(hdr *tar.Header, pax map[string]string) bool {
	for k, v := range pax {
		if v == "" {
			continue
		}
		var err error
		switch k {
		case "path":
			hdr.Name = v
		case "linkpath":
			hdr.Linkname = v
		case "uname":
			hdr.Uname = v
		case "gname":
			hdr.Gname = v
		case "uid":
			var id int64
			id, err = strconv.ParseInt(v, 10, 64)
			hdr.Uid = int(id)
		case "gid":
			var id int64
			id, err = strconv.ParseInt(v, 10, 64)
			hdr.Gid = int(id)
		case "atime":
			hdr.AccessTime, err = paxTime(v)
		case "mtime":
			hdr.ModTime, err = paxTime(v)
		case "ctime":
			hdr.ChangeTime, err = paxTime(v)
		case "size":
			hdr.Size, err = strconv.ParseInt(v, 10, 64)
		default:
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if hdr.Xattrs == nil { //nolint:staticcheck // archive/tar still fills it
					hdr.Xattrs = make(map[string]string) //nolint:staticcheck
				}
				hdr.Xattrs[name] = v //nolint:staticcheck
			}
		}
		if err != nil {
			return false
		}
	}
	hdr.PAXRecords = pax
	return true
}

// paxTime parses a pax time, seconds and an optional fraction
// (nanoseconds: further digits are dropped; a negative time's fraction
// counts towards zero, as archive/tar reads it).
func paxTime(s string) (time.Time, error) {
	secStr, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secStr, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	if frac == "" {
		return time.Unix(sec, 0), nil
	}
	var ns int64
	for i := 0; i < 9; i++ {
		ns *= 10
		if i < len(frac) {
			ns += int64(frac[i] - '0')
		}
	}
	for _, c := range frac {
		if c < '0' || c > '9' {
			return time.Time{}, strconv.ErrSyntax
		}
	}
	if secStr != "" && secStr[0] == '-' {
		ns = -ns
	}
	return time.Unix(sec, ns), nil
}
