package archive

import (
	"encoding/binary"
	"strconv"
	"strings"
	"unicode/utf8"
)

// BlockSize is the tar record size: every header and every member's data
// is padded to a multiple of it.
const BlockSize = 512

// Type is a member's tar typeflag.
type Type byte

// The member types the writer stores (the tar typeflags).
const (
	TypeReg     Type = '0'
	TypeLink    Type = '1' // a hard link to an earlier member (no data)
	TypeSymlink Type = '2'
	TypeChar    Type = '3'
	TypeBlock   Type = '4'
	TypeDir     Type = '5'
	TypeFifo    Type = '6'
)

// String names the type as the index spells it.
func (t Type) String() string {
	switch t {
	case TypeReg:
		return "file"
	case TypeLink:
		return "link"
	case TypeSymlink:
		return "symlink"
	case TypeChar:
		return "char"
	case TypeBlock:
		return "block"
	case TypeDir:
		return "dir"
	case TypeFifo:
		return "fifo"
	}
	return "type-" + strconv.Quote(string(rune(t)))
}

// typeByName is String's inverse (for the index).
func typeByName(s string) (Type, bool) {
	for _, t := range []Type{TypeReg, TypeLink, TypeSymlink, TypeChar, TypeBlock, TypeDir, TypeFifo} {
		if t.String() == s {
			return t, true
		}
	}
	return 0, false
}

// Field widths and offsets of the ustar header (POSIX.1-1988 as kept by
// POSIX.1-2001).
const (
	offName     = 0
	lenName     = 100
	offMode     = 100
	offUID      = 108
	offGID      = 116
	offSize     = 124
	offMtime    = 136
	offChksum   = 148
	offTypeflag = 156
	offLinkname = 157
	lenLinkname = 100
	offMagic    = 257 // "ustar\x00" then version "00"
	offUname    = 265
	lenUname    = 32
	offGname    = 297
	offDevmajor = 329
	offDevminor = 337
)

// ustar is what goes into one ustar header block.
type ustar struct {
	nameB            []byte // the name, when not in name
	name, linkname   string
	uname, gname     string
	typ              byte
	mode, uid, gid   int64
	size, mtime      int64
	devmajor, devmin int64
}

// putUstar fills blk (which must be zero) with h and its checksum.
// Numbers too large for their octal field are written in the base-256
// form GNU tar, bsdtar and Go read (the pax record, when there is one,
// is what a pax reader uses).
func putUstar(blk *[BlockSize]byte, h *ustar) {
	copy(blk[offName:offName+lenName], h.name)
	copy(blk[offName:offName+lenName], h.nameB)
	putNumber(blk[offMode:offMode+8], h.mode)
	putNumber(blk[offUID:offUID+8], h.uid)
	putNumber(blk[offGID:offGID+8], h.gid)
	putNumber(blk[offSize:offSize+12], h.size)
	putNumber(blk[offMtime:offMtime+12], h.mtime)
	blk[offTypeflag] = h.typ
	copy(blk[offLinkname:offLinkname+lenLinkname], h.linkname)
	copy(blk[offMagic:], "ustar\x0000")
	copy(blk[offUname:offUname+lenUname], h.uname)
	copy(blk[offGname:offGname+lenUname], h.gname)
	if h.typ == byte(TypeChar) || h.typ == byte(TypeBlock) {
		putNumber(blk[offDevmajor:offDevmajor+8], h.devmajor)
		putNumber(blk[offDevminor:offDevminor+8], h.devmin)
	}
	// Six octal digits, NUL, space: as GNU tar writes it.
	putOctal(blk[offChksum:offChksum+7], HeaderSum(blk))
	blk[offChksum+7] = ' '
}

// HeaderSum is a tar header block's checksum: the (unsigned) sum of its
// bytes, the checksum field (bytes 148–155) counted as eight spaces. It
// adds eight bytes at a time in four 16-bit lanes (a lane takes at most
// 64·2·255 = 32,640), about a seventh of a byte loop's time; each header
// written and read pays it.
func HeaderSum(blk *[BlockSize]byte) int64 {
	const lo = 0x00ff00ff00ff00ff
	var acc uint64
	for i := 0; i < BlockSize; i += 8 {
		x := binary.LittleEndian.Uint64(blk[i:])
		acc += x&lo + x>>8&lo
	}
	x := binary.LittleEndian.Uint64(blk[offChksum:])
	field := x&lo + x>>8&lo
	return int64(lanes(acc) - lanes(field) + 8*' ')
}

// lanes adds the four 16-bit lanes of x.
func lanes(x uint64) uint64 { return x&0xffff + x>>16&0xffff + x>>32&0xffff + x>>48 }

// putNumber writes v as zero-padded octal with a NUL terminator, or in
// base-256 (high bit of the first byte set) when it does not fit or is
// negative.
func putNumber(b []byte, v int64) {
	if v >= 0 && v < int64(1)<<(3*(len(b)-1)) {
		putOctal(b, v)
		return
	}
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	b[0] |= 0x80
}

// putOctal writes v in len(b)-1 octal digits and a NUL.
func putOctal(b []byte, v int64) {
	n := len(b) - 1
	b[n] = 0
	for i := n - 1; i >= 0; i-- {
		b[i] = byte('0' + v&7)
		v >>= 3
	}
}

// appendPAXRecord appends one "LEN key=value\n" record, LEN counting
// itself.
func appendPAXRecord[V string | []byte](b []byte, k string, v V) []byte {
	n := len(k) + len(v) + 3 // ' ', '=', '\n'
	size := n + decimalDigits(n)
	if decimalDigits(size) > decimalDigits(n) {
		size++
	}
	b = strconv.AppendInt(b, int64(size), 10)
	b = append(b, ' ')
	b = append(b, k...)
	b = append(b, '=')
	b = append(b, v...)
	return append(b, '\n')
}

// decimalDigits is len(strconv.Itoa(n)) for n ≥ 0, without formatting.
func decimalDigits(n int) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// appendPAXTime appends sec.nanoseconds as pax writes a time (9 digits,
// correct for times before 1970 too).
func appendPAXTime(b []byte, sec int64, nsec int64) []byte {
	if nsec == 0 {
		return strconv.AppendInt(b, sec, 10)
	}
	if sec < 0 {
		// sec + nsec/1e9 is negative: print -(|sec|-1).(1e9-nsec).
		b = append(b, '-')
		sec = -sec - 1
		nsec = 1e9 - nsec
	}
	b = strconv.AppendInt(b, sec, 10)
	var frac [9]byte
	for i := 8; i >= 0; i-- {
		frac[i] = byte('0' + nsec%10)
		nsec /= 10
	}
	b = append(b, '.')
	return append(b, frac[:]...)
}

// isASCII reports whether s is printable-safe 7-bit text (no NUL).
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] == 0 {
			return false
		}
	}
	return true
}

// asciiName is s cut to max bytes with every byte outside printable
// ASCII replaced by '_': the ustar field of a member whose real name is
// in its pax header.
func asciiName(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	if isPrintable(s) {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			b[i] = '_'
		}
	}
	return string(b)
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// needsPAXString reports whether s cannot be kept in a ustar field of
// width max as it is.
func needsPAXString(s string, max int) bool {
	return len(s) > max || !isASCII(s)
}

// binaryString reports whether s is not UTF-8 (pax then says
// hdrcharset=BINARY so readers keep the bytes as they are).
func binaryString(s string) bool { return !utf8.ValidString(s) }

// appendPAXHeaderName appends the name of a member's 'x' header block
// (readers ignore it; GNU tar's convention, printable ASCII only).
func appendPAXHeaderName(b []byte, p string) []byte {
	p = strings.TrimSuffix(p, "/")
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		p = p[i+1:]
	}
	b = append(b, "PaxHeaders/"...)
	for i := 0; i < len(p) && len(b) < lenName; i++ {
		c := p[i]
		if c < 0x20 || c >= 0x7f {
			c = '_'
		}
		b = append(b, c)
	}
	return b
}
