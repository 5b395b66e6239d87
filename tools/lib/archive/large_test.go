package archive

import (
	"archive/tar"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const nineGiB = 9 << 30

// TestLargeSparse: a 9 GiB sparse file takes a few blocks on tape, both
// tars list it with its 9 GiB size, and the digest is that of the whole
// file (holes as zeros).
func TestLargeSparse(t *testing.T) {
	head, tail := pattern(4096, 1), pattern(100, 2)
	m := Member{Path: "vm/disk image.raw", Type: TypeReg, Size: nineGiB, Mode: 0o600, Mtime: testTime,
		Sparse: []Span{{0, 4096}, {nineGiB - 100, 100}}}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	rec, err := w.WriteMember(m, io.MultiReader(bytes.NewReader(head), bytes.NewReader(tail)))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if buf.Len() > 16<<10 {
		t.Fatalf("a 9 GiB sparse file with 4196 data bytes took %d bytes of stream", buf.Len())
	}
	// The digest of the expanded file (head, 9 GiB - 4196 zero bytes,
	// tail), computed once with sha256sum over a file made with dd and
	// truncate; the small sparse members of memberSet check the same code
	// against sha256.Sum256 of their whole content.
	const want = "a9a15fab39cf4e7001aba562d530a451c990782ce9511c6ad11c9e8ac7d9bd6d"
	if got := hex.EncodeToString(rec.SHA256[:]); got != want {
		t.Errorf("digest %s, want %s (the expanded file's)", got, want)
	}
	for _, tool := range []string{"tar", "bsdtar"} {
		out, _ := runTool(t, buf.Bytes(), t.TempDir(), tool, "-tvf", "-")
		if !strings.Contains(out, "9663676416") || !strings.Contains(out, "vm/disk image.raw") || strings.Count(out, "\n") != 1 {
			t.Errorf("%s -tvf - = %q, want one line: vm/disk image.raw of 9663676416 bytes", tool, out)
		}
	}
	hdr, err := tar.NewReader(&buf).Next()
	if err != nil || hdr.Name != m.Path || hdr.Size != nineGiB {
		t.Errorf("archive/tar reads %+v, %v", hdr, err)
	}
}

// stopWriter keeps the first n bytes and then fails.
type stopWriter struct {
	buf bytes.Buffer
	n   int
}

func (s *stopWriter) Write(p []byte) (int, error) {
	if s.buf.Len()+len(p) > s.n {
		return 0, errors.New("enough")
	}
	return s.buf.Write(p)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestLargeSizeHeader: a 9 GiB (not sparse) file's header carries the
// size in a pax record (and base-256 in the ustar field); archive/tar
// and GNU tar read 9 GiB from the header alone (no 9 GiB written here).
func TestLargeSizeHeader(t *testing.T) {
	sw := &stopWriter{n: 8 << 10}
	w := NewWriterSize(sw, 4096)
	_, err := w.WriteMember(Member{Path: "big.bin", Type: TypeReg, Size: nineGiB, Mode: 0o644, Mtime: testTime}, zeroReader{})
	if err == nil || !strings.Contains(err.Error(), "enough") {
		t.Fatalf("writing into a failing writer: %v, want its error", err)
	}
	if !bytes.Contains(sw.buf.Bytes(), []byte(" size=9663676416\n")) {
		t.Fatal("no pax size record")
	}
	hdr, err := tar.NewReader(bytes.NewReader(sw.buf.Bytes())).Next()
	if err != nil || hdr.Size != nineGiB {
		t.Fatalf("archive/tar reads %+v, %v", hdr, err)
	}
	// GNU tar lists the member from its headers, then reports the
	// truncated data (exit status 2): the listing is what is judged.
	cmd := exec.Command(needTar(t, "tar"), "-tvf", "-")
	cmd.Stdin = bytes.NewReader(sw.buf.Bytes())
	out, _ := cmd.Output()
	if !strings.Contains(string(out), "9663676416") || !strings.Contains(string(out), "big.bin") {
		t.Errorf("tar -tvf - = %q, want big.bin of 9663676416 bytes", out)
	}
}

// TestReaderSkipsHoles: the Reader steps over a 1 EiB sparse member
// without expanding its holes (it would never finish), with the next
// member at the writer's offset; a part cut inside a sparse member's
// stored bytes reports the cut in stored bytes, as CutAt does.
func TestReaderSkipsHoles(t *testing.T) {
	const huge = 1 << 60
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.noHoleHash = true
	spans := []Span{{0, 10}, {huge - 2000, 2000}}
	rec, err := w.WriteMember(Member{Path: "huge", Type: TypeReg, Size: huge, Mode: 0o600, Mtime: testTime, Sparse: spans},
		bytes.NewReader(pattern(2010, 3)))
	if err != nil {
		t.Fatal(err)
	}
	after, err := w.WriteMember(Member{Path: "after", Type: TypeReg, Size: 1, Mode: 0o600, Mtime: testTime}, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	ph, _ := testPartHeader().Encode()
	part := append(append([]byte(nil), ph...), buf.Bytes()...)
	r, err := NewReader(bytes.NewReader(part))
	if err != nil {
		t.Fatal(err)
	}
	e, err := r.Next()
	if err != nil || e.Header.Name != "huge" || e.Header.Size != huge {
		t.Fatalf("first member: %+v, %v", e, err)
	}
	e, err = r.Next()
	if err != nil || e.Header.Name != "after" || e.Offset != int64(len(ph))+after.HeaderOffset {
		t.Fatalf("after the sparse member: %+v, %v; want after at %d", e, err, int64(len(ph))+after.HeaderOffset)
	}
	if b, err := io.ReadAll(r); err != nil || string(b) != "x" {
		t.Fatalf("after's data %q, %v", b, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	for _, tool := range []string{"tar", "bsdtar"} {
		out, _ := runTool(t, part, t.TempDir(), tool, "-tf", "-")
		if out != "huge\nafter\n" {
			t.Errorf("%s -tf - = %q", tool, out)
		}
	}
	// Cut one block into the stored bytes (the map's block, then data).
	at := rec.DataOffset + BlockSize
	want, err := CutAt(rec, at)
	if err != nil {
		t.Fatal(err)
	}
	r, err = NewReader(bytes.NewReader(part[:int64(len(ph))+at]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("cut part: %v, want io.EOF", err)
	}
	if c := r.Cut(); c == nil || c.Path != "huge" || c.Offset != want.Offset || c.Size != want.Size {
		t.Fatalf("cut %+v, want %+v", c, want)
	}
}
