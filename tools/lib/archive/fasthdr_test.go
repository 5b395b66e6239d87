package archive

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// countingReader counts what archive/tar reads.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// sameAsTar parses the member headers at the start of b with fastHeader
// and with archive/tar. Where fastHeader parses them, archive/tar must
// return the same header, having read as many bytes; where archive/tar
// fails, fastHeader must leave the bytes to it. It reports whether
// fastHeader parsed them.
func sameAsTar(t *testing.T, what string, b []byte) bool {
	t.Helper()
	hdr, size, read, err := fastHeader(bytes.NewReader(b), nil)
	ok := hdr != nil
	if !bytes.Equal(read, b[:len(read)]) {
		t.Fatalf("%s: fastHeader's read bytes are not the input's", what)
	}
	cr := &countingReader{r: bytes.NewReader(b)}
	want, terr := tar.NewReader(cr).Next()
	if !ok {
		if err != nil && len(read) != len(b) {
			t.Fatalf("%s: fastHeader failed reading (%v) after %d of %d bytes", what, err, len(read), len(b))
		}
		return false
	}
	if terr != nil {
		t.Fatalf("%s: fastHeader parsed %+v where archive/tar fails: %v", what, hdr, terr)
	}
	if !reflect.DeepEqual(hdr, want) {
		t.Fatalf("%s: fastHeader\n%+v\narchive/tar\n%+v", what, *hdr, *want)
	}
	if len(read) != cr.n {
		t.Fatalf("%s: fastHeader read %d bytes, archive/tar %d", what, len(read), cr.n)
	}
	wantSize := want.Size
	switch want.Typeflag {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		wantSize = 0
	}
	if size != wantSize {
		t.Fatalf("%s: fastHeader says %d data bytes, want %d", what, size, wantSize)
	}
	return true
}

// TestFastHeaderMatchesTar: every member of the test set (written by the
// Writer) and hand-made variants of the header blocks archive/tar
// accepts: fastHeader parses the ordinary ones, leaves sparse ones to
// archive/tar, and gives archive/tar's header for each.
func TestFastHeaderMatchesTar(t *testing.T) {
	var buf bytes.Buffer
	recs := writeTo(t, &buf, memberSet())
	stream := buf.Bytes()
	fast := 0
	for _, r := range recs {
		if sameAsTar(t, r.Path, stream[r.HeaderOffset:]) {
			fast++
		} else if !r.Sparse {
			t.Errorf("%s (%s): left to archive/tar", strings.ToValidUTF8(r.Path, "?"), r.Type)
		}
	}
	if fast != len(recs)-2 {
		t.Errorf("fastHeader parsed %d members of %d, want all but the 2 sparse ones", fast, len(recs))
	}
	if sameAsTar(t, "end of archive", stream[len(stream)-2*BlockSize:]) {
		t.Error("fastHeader parsed the end-of-archive blocks")
	}

	// Variants of one member: the ustar block alone, then edits of its
	// fields (the checksum put right after each).
	plain := recs[1] // top/plain.txt
	xhdr := stream[plain.HeaderOffset : plain.DataOffset-BlockSize]
	ustar := append([]byte(nil), stream[plain.DataOffset-BlockSize:plain.DataOffset]...)
	edit := func(b []byte, off int, val string) []byte {
		b = append([]byte(nil), b...)
		copy(b[off:], val)
		putOctal(b[offChksum:offChksum+7], HeaderSum((*[BlockSize]byte)(b)))
		b[offChksum+7] = ' '
		return b
	}
	pax := func(recs ...string) []byte {
		var p []byte
		for i := 0; i+1 < len(recs); i += 2 {
			p = appendPAXRecord(p, recs[i], recs[i+1])
		}
		x := edit(xhdr[:BlockSize], offSize, fmt.Sprintf("%011o\x00", len(p)))
		return append(x, append(p, make([]byte, (BlockSize-len(p)%BlockSize)%BlockSize)...)...)
	}
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, c := range []struct {
		name string
		b    []byte
		fast bool
	}{
		{"ustar alone", ustar, true},
		{"regular 'NUL' typeflag", edit(ustar, offTypeflag, "\x00"), true},
		{"'NUL' typeflag, name ending in /", edit(edit(ustar, offTypeflag, "\x00"), offName, "dir/\x00"), true},
		{"name prefix", edit(ustar, offPrefix, "some/prefix"), true},
		{"non-ASCII name", edit(ustar, offName, "n\xc3\xa4me\x00"), true},
		{"size ending in a space", edit(ustar, offSize, "00000000014 "), true},
		{"mode with leading spaces", edit(ustar, offMode, "   644 \x00"), true},
		{"pax times", join(pax("path", "p", "mtime", "-1.5", "atime", "12.1234567891", "ctime", "7"), ustar), true},
		{"pax ids, names, size", join(pax("uid", "4000000000", "gid", "-3", "uname", "ü", "gname", "", "size", "12"), ustar), true},
		{"pax xattrs and other keys", join(pax("SCHILY.xattr.user.a", "1", "SCHILY.xattr.user.b", "", "comment", "c", "TAPEWARD.x", "y"), ustar), true},
		{"pax linkpath on a symlink", join(pax("linkpath", "/t"), edit(ustar, offTypeflag, "2")), true},
		{"directory with a size", edit(edit(ustar, offTypeflag, "5"), offSize, "00000001000\x00"), true},
		{"bad checksum", func() []byte { b := append([]byte(nil), ustar...); b[0] ^= 1; return b }(), false},
		{"GNU magic", edit(ustar, offMagic, "ustar  \x00"), false},
		{"star trailer", edit(ustar, 508, "tar\x00"), false},
		{"base-256 size", edit(ustar, offSize, "\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0c"), false},
		{"signed octal", edit(ustar, offUID, "+001750\x00"), false},
		{"global header", edit(ustar, offTypeflag, "g"), false},
		{"GNU long name", edit(ustar, offTypeflag, "L"), false},
		{"contiguous file", edit(ustar, offTypeflag, "7"), false},
		{"sparse pax", join(pax("GNU.sparse.major", "1", "GNU.sparse.minor", "0"), ustar), false},
		{"pax bad mtime", join(pax("mtime", "1.x"), ustar), false},
		{"pax bad uid", join(pax("uid", "u"), ustar), false},
		{"pax NUL in path", join(pax("path", "a\x00b"), ustar), false},
		{"pax NUL in a key", join(pax("k\x00", "v"), ustar), false},
		{"pax record length with a sign", join(edit(xhdr[:BlockSize], offSize, "00000000013\x00"), []byte("+11 path=p\n"), make([]byte, 501), ustar), false},
		{"two pax headers", join(pax("path", "a"), pax("path", "b"), ustar), false},
		{"cut inside the pax header", pax("path", "p")[:700], false},
		{"cut before the ustar block", pax("path", "p"), false},
		{"cut inside the ustar block", join(pax("path", "p"), ustar[:100]), false},
	} {
		if got := sameAsTar(t, c.name, c.b); got != c.fast {
			t.Errorf("%s: parsed by fastHeader %v, want %v", c.name, got, c.fast)
		}
	}
}

// FuzzFastHeader: for any bytes, fastHeader either leaves them to
// archive/tar or gives archive/tar's header, having read what it read.
func FuzzFastHeader(f *testing.F) {
	var buf bytes.Buffer
	recs := writeTo(f, &buf, memberSet())
	for _, r := range recs {
		f.Add(buf.Bytes()[r.HeaderOffset:min(int64(buf.Len()), r.DataOffset+BlockSize)])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sameAsTar(t, "fuzzed", b)
	})
}

// TestResetMember: one Reader reset for each member in turn (the sparse
// ones, read by archive/tar, among them) reads what a new Reader reads.
func TestResetMember(t *testing.T) {
	var buf bytes.Buffer
	recs := writeTo(t, &buf, memberSet())
	stream := buf.Bytes()
	var reused Reader
	for _, r := range recs {
		var got, want []byte
		var hdrs [2]*tar.Header
		for i, ar := range []*Reader{&reused, NewMemberReader(bytes.NewReader(stream[r.HeaderOffset:]), r.HeaderOffset)} {
			if i == 0 {
				ar.ResetMember(bytes.NewReader(stream[r.HeaderOffset:]), r.HeaderOffset)
			}
			e, err := ar.Next()
			if err != nil {
				t.Fatalf("%q: %v", r.Path, err)
			}
			if e.Offset != r.HeaderOffset || (!r.Sparse && ar.Offset() != r.DataOffset) {
				t.Fatalf("%q: header at %d, data at %d; want %d, %d", r.Path, e.Offset, ar.Offset(), r.HeaderOffset, r.DataOffset)
			}
			data, err := io.ReadAll(ar)
			if err != nil {
				t.Fatalf("%q: reading: %v", r.Path, err)
			}
			hdrs[i] = e.Header
			if i == 0 {
				got = data
			} else {
				want = data
			}
		}
		if !reflect.DeepEqual(hdrs[0], hdrs[1]) || !bytes.Equal(got, want) || int64(len(got)) != r.Size {
			t.Fatalf("%q: the reset Reader read %+v and %d bytes, a new one %+v and %d (size %d)", r.Path, hdrs[0], len(got), hdrs[1], len(want), r.Size)
		}
	}
}
