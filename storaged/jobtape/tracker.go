package jobtape

import (
	"bytes"
	"fmt"

	"github.com/tapeward/tapeward/tools/lib/archive"
)

// member is one member of the caller's pax stream as the tracker saw it:
// where its headers start (H), where its data starts (D) and how many
// stored bytes follow (before the padding to 512).
type member struct {
	h, d, stored int64
	typ          byte
	path         string
	mode, mtime  int64
}

// end is the stream offset after the member's padded data.
func (m member) end() int64 { return m.d + (m.stored+511)/512*512 }

// tracker follows the structure of the pax stream as it goes to tape, so
// that a tape file is only ever ended at a member boundary or inside a
// member's data at a 512-byte boundary (never inside its headers): the
// records the caller adds come after the member's bytes, too late for
// that decision. It reads header blocks only; data is skipped by count.
type tracker struct {
	off int64 // stream offset of the next byte

	blk [512]byte
	bn  int // bytes in blk

	// The member whose headers are being read.
	inHdr  bool
	hStart int64
	pax    paxVals // what the member's 'x' headers say
	ext    []byte  // 'x'/'g' records being read
	extN   int64   // bytes of the records still to read (padded)
	extLen int64   // the records' length (unpadded)
	extTyp byte

	data int64 // padded data bytes still to skip

	zeros    int   // zero blocks seen at a header position
	zeroFrom int64 // where the first of them started

	recent []member // members whose data may still be cut
	err    error
}

// feed follows p, the stream bytes at t.off.
func (t *tracker) feed(p []byte) error {
	for len(p) > 0 && t.err == nil {
		switch {
		case t.data > 0:
			n := min(int64(len(p)), t.data)
			t.data -= n
			t.off += n
			p = p[n:]
		case t.extN > 0:
			n := min(int64(len(p)), t.extN)
			if keep := t.extLen - int64(len(t.ext)); keep > 0 {
				t.ext = append(t.ext, p[:min(n, keep)]...)
			}
			t.extN -= n
			t.off += n
			p = p[n:]
			if t.extN == 0 {
				t.endExt()
			}
		default:
			c := copy(t.blk[t.bn:], p)
			t.bn += c
			t.off += int64(c)
			p = p[c:]
			if t.bn == 512 {
				t.bn = 0
				t.header(t.off - 512)
			}
		}
	}
	return t.err
}

func (t *tracker) fail(at int64, format string, a ...any) {
	t.err = fmt.Errorf("jobtape: the stream is not pax at byte %d: %s", at, fmt.Sprintf(format, a...))
}

// header handles one 512-byte header block that started at at.
func (t *tracker) header(at int64) {
	if t.blk == [512]byte{} {
		if t.inHdr {
			t.fail(at, "a zero block inside a member's headers")
			return
		}
		if t.zeros == 0 {
			t.zeroFrom = at
		}
		t.zeros++
		return
	}
	if t.zeros > 0 {
		t.fail(at, "a header after the end-of-archive blocks")
		return
	}
	if !checksumOK(&t.blk) {
		t.fail(at, "header checksum mismatch")
		return
	}
	if !t.inHdr {
		t.inHdr, t.hStart, t.pax = true, at, paxVals{}
	}
	typ := t.blk[156]
	size, ok := octal(t.blk[124:136])
	if !ok {
		t.fail(at, "bad size field")
		return
	}
	switch typ {
	case 'x', 'g', 'L', 'K':
		if size > 1<<24 {
			t.fail(at, "extended header of %d bytes", size)
			return
		}
		t.extTyp, t.extLen, t.ext = typ, size, t.ext[:0]
		t.extN = (size + 511) / 512 * 512
		if t.extN == 0 {
			t.endExt()
		}
		return
	}
	m := member{h: t.hStart, d: at + 512, stored: size, typ: typ}
	name := cstr(t.blk[0:100])
	if p := cstr(t.blk[345:500]); p != "" && string(t.blk[257:262]) == "ustar" {
		name = p + "/" + name
	}
	m.path = name
	m.mode, _ = octal(t.blk[100:108])
	sec, _ := octal(t.blk[136:148])
	m.mtime = sec * 1e9
	px := &t.pax
	if px.has&paxSize != 0 {
		m.stored = px.size
	}
	if px.has&paxSparseName != 0 {
		m.path = px.sparseName
	}
	if px.has&paxPath != 0 {
		m.path = px.path
	}
	if px.has&paxMtime != 0 {
		m.mtime = px.mtime
	}
	switch typ {
	case '1', '2', '3', '4', '5', '6':
		m.stored = 0 // no data follows these
	}
	t.inHdr, t.pax = false, paxVals{}
	t.recent = append(t.recent, m)
	t.data = m.end() - m.d
}

func (t *tracker) endExt() {
	if t.extTyp == 'x' {
		for b := t.ext; len(b) > 0; {
			sp := bytes.IndexByte(b, ' ')
			if sp <= 0 {
				break
			}
			n64, ok := decimal(b[:sp])
			n := int(n64)
			if !ok || n <= sp+1 || n > len(b) {
				break
			}
			kv := b[sp+1 : n-1]
			if eq := bytes.IndexByte(kv, '='); eq > 0 {
				t.pax.set(kv[:eq], kv[eq+1:])
			}
			b = b[n:]
		}
	}
}

// paxVals are the pax records the tracker uses (a later record for the
// same key wins, as in a map): no allocation but for a path's string.
type paxVals struct {
	has              uint8
	size, mtime      int64
	path, sparseName string
}

const (
	paxSize = 1 << iota
	paxMtime
	paxPath
	paxSparseName
)

func (p *paxVals) set(k, v []byte) {
	switch string(k) {
	case "size":
		// A size that is not a non-negative decimal is left out (as
		// before: the ustar field's size stands).
		if n, ok := decimal(v); ok {
			p.size, p.has = n, p.has|paxSize
		} else {
			p.has &^= paxSize
		}
	case "mtime":
		if ns, ok := paxTime(v); ok {
			p.mtime, p.has = ns, p.has|paxMtime
		} else {
			p.has &^= paxMtime
		}
	case "path":
		p.path, p.has = string(v), p.has|paxPath
	case "GNU.sparse.name":
		p.sparseName, p.has = string(v), p.has|paxSparseName
	}
}

// decimal parses a non-negative decimal that fits an int64.
func decimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// prune forgets members that end at or before off (their bytes are on
// tape: no cut can fall in them any more).
func (t *tracker) prune(off int64) {
	i := 0
	for i < len(t.recent) && t.recent[i].end() <= off {
		i++
	}
	if i > 0 {
		t.recent = append(t.recent[:0], t.recent[i:]...)
	}
}

// cutAt says whether the stream may end a tape file at c (≤ t.off, a
// multiple of 512): ok at a member boundary (cut nil) or inside a
// regular member's data, past its first byte (cut set, from
// archive.CutAt); not ok inside a member's headers or the end-of-archive
// blocks.
func (t *tracker) cutAt(c int64) (ok bool, cut *archive.Cut, err error) {
	if c%512 != 0 {
		return false, nil, nil
	}
	for _, m := range t.recent {
		switch {
		case c == m.h:
			return true, nil, nil
		case c > m.h && c < m.d, c == m.d && m.stored > 0:
			return false, nil, nil
		case c > m.d && c < m.end():
			if m.typ != '0' && m.typ != 0 && m.typ != '7' {
				return false, nil, nil
			}
			ct, err := archive.CutAt(archive.Record{Path: m.path, Type: archive.TypeReg, DataOffset: m.d, StoredSize: m.stored, Mode: m.mode, Mtime: m.mtime}, c)
			if err != nil {
				return false, nil, err
			}
			return true, &ct, nil
		}
	}
	if t.inHdr && c > t.hStart {
		return false, nil, nil
	}
	if t.zeros > 0 && c > t.zeroFrom && c < t.off {
		return false, nil, nil
	}
	if t.zeros > 0 && c > t.zeroFrom && c == t.off && t.zeros < 2 {
		return false, nil, nil
	}
	return true, nil, nil
}

// complete reports whether the stream ends at a member boundary.
func (t *tracker) complete() bool {
	return t.err == nil && !t.inHdr && t.bn == 0 && t.data == 0 && t.extN == 0
}

func checksumOK(b *[512]byte) bool {
	want, ok := octal(b[148:156])
	if !ok {
		return false
	}
	return archive.HeaderSum(b) == want
}

// octal reads an octal (NUL/space terminated) or GNU base-256 field.
func octal(b []byte) (int64, bool) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		var v int64
		for i, c := range b {
			if i == 0 {
				c &= 0x7f
			}
			if v > (1<<62)>>8 {
				return 0, false
			}
			v = v<<8 | int64(c)
		}
		return v, true
	}
	// Leading and trailing spaces and NULs around octal digits.
	i, j := 0, len(b)
	for i < j && (b[i] == ' ' || b[i] == 0) {
		i++
	}
	for j > i && (b[j-1] == ' ' || b[j-1] == 0) {
		j--
	}
	var v int64
	for _, c := range b[i:j] {
		if c < '0' || c > '7' || v > (1<<62)>>3 {
			return 0, false
		}
		v = v<<3 | int64(c-'0')
	}
	return v, true
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// paxTime parses "[-]sec[.frac]" into Unix nanoseconds (digits of frac
// past the ninth are dropped).
func paxTime(v []byte) (int64, bool) {
	sec, frac, _ := bytes.Cut(v, []byte("."))
	neg := len(sec) > 0 && sec[0] == '-'
	if neg || len(sec) > 0 && sec[0] == '+' {
		sec = sec[1:]
	}
	s, ok := decimal(sec)
	if !ok {
		return 0, false
	}
	var ns int64
	for i := range 9 {
		ns *= 10
		if i < len(frac) {
			c := frac[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			ns += int64(c - '0')
		}
	}
	if neg {
		s, ns = -s, -ns
	}
	return s*1e9 + ns, true
}
