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
