//go:build linux

package extract

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/archive"
	"github.com/tapeward/tapeward/tools/lib/relocate"
)

// lender is a Lender over b, lending copies of pieces of at most piece
// bytes (as gRPC's receive buffers are pieces of a message). Every lent
// piece is overwritten with junk at the next call, so data used after it
// was given back shows up as a digest error; lent counts the bytes lent
// and fail is returned once the source reaches failAt.
type lender struct {
	b      []byte
	off    int
	piece  int
	lent   int
	last   [][]byte
	failAt int
	fail   error
	direct bool // lend b's own bytes, never junked (benchmarks)
}

// failing: the source has reached failAt.
func (l *lender) failing() bool { return l.fail != nil && l.off >= l.failAt }

func (l *lender) giveBack() {
	for _, p := range l.last {
		for i := range p {
			p[i] = 0xA5
		}
	}
	l.last = l.last[:0]
}

func (l *lender) Read(p []byte) (int, error) {
	l.giveBack()
	if l.failing() {
		return 0, l.fail
	}
	if l.off == len(l.b) {
		return 0, io.EOF
	}
	n := copy(p, l.b[l.off:])
	l.off += n
	return n, nil
}

func (l *lender) Lend(max int, dst [][]byte) ([][]byte, error) {
	l.giveBack()
	if l.failing() {
		return dst, l.fail
	}
	if l.off == len(l.b) {
		return dst, io.EOF
	}
	for max > 0 && l.off < len(l.b) {
		if l.failing() {
			break
		}
		n := min(max, l.piece, len(l.b)-l.off)
		p := l.b[l.off : l.off+n : l.off+n]
		if !l.direct {
			p = bytes.Clone(p) // the source's own buffer, junked when given back
			l.last = append(l.last, p)
		}
		dst = append(dst, p)
		l.off, l.lent, max = l.off+n, l.lent+n, max-n
	}
	return dst, nil
}

// TestLentData: a file's data taken from a lending source (whole, in
// 16 KiB pieces, in odd pieces) is written and verified as from a
// reader, and is really taken through Lend; a corrupt byte is a digest
// error; a source that fails inside the data stops the restore with its
// error; one that ends inside it is a read error of that file.
func TestLentData(t *testing.T) {
	big := rnd(21, 3<<20+517)
	small := rnd(22, 1000)
	ms := []archive.Member{
		{Path: "/d", Type: archive.TypeDir, Mode: 0o755, Mtime: time.Unix(1e9, 0)},
		{Path: "/d/big", Type: archive.TypeReg, Size: int64(len(big)), Mode: 0o644, Mtime: time.Unix(1e9, 0)},
		{Path: "/d/small", Type: archive.TypeReg, Size: int64(len(small)), Mode: 0o600, Mtime: time.Unix(1e9, 0)},
		{Path: "/d/empty", Type: archive.TypeReg, Mode: 0o600, Mtime: time.Unix(1e9, 0)},
	}
	items := archiveOf(t, ms, [][]byte{nil, big, small, nil})
	want := map[string][]byte{"/d/big": big, "/d/small": small, "/d/empty": {}}
	for _, piece := range []int{16 << 10, 1 << 20, 4093} {
		where := t.TempDir()
		h := newHarness(t, relocate.Rules{Where: where}, ReplaceAlways, false)
		lent := 0
		for _, it := range items {
			l := &lender{b: it.pax, piece: piece}
			if err := h.w.Restore(context.Background(), it.m, l); err != nil {
				t.Fatalf("piece %d: %q: %v", piece, it.m.Path, err)
			}
			lent += l.lent
		}
		h.w.Close()
		if len(h.errs) > 0 {
			t.Fatalf("piece %d: errors %v", piece, h.errs)
		}
		for p, b := range want {
			got, err := os.ReadFile(where + p)
			if err != nil || !bytes.Equal(got, b) {
				t.Errorf("piece %d: %s: %d bytes (%v), want the %d stored", piece, p, len(got), err, len(b))
			}
		}
		if lent != len(big)+len(small) {
			t.Errorf("piece %d: %d bytes were lent, want the files' %d (their data taken through Lend)", piece, lent, len(big)+len(small))
		}
	}

	// A flipped byte in the data: a digest error, nothing under the name.
	bad := bytes.Clone(items[1].pax)
	bad[len(bad)-2000] ^= 1
	where := t.TempDir()
	h := newHarness(t, relocate.Rules{Where: where}, ReplaceAlways, false)
	h.restore(items[0])
	if err := h.w.Restore(context.Background(), items[1].m, &lender{b: bad, piece: 16 << 10}); err != nil {
		t.Fatal(err)
	}
	if e := h.errorFor("/d/big"); e == nil || e.Op != "digest" {
		t.Fatalf("a corrupt byte: error %v, want a digest error for /d/big", e)
	}
	if _, err := os.Lstat(filepath.Join(where, "d/big")); err == nil {
		t.Error("the corrupt file is there under its name")
	}

	// The source fails inside the data: Restore returns its error.
	broken := errors.New("stream reset by storaged")
	err := h.w.Restore(context.Background(), items[1].m, &lender{b: items[1].pax, piece: 16 << 10, failAt: 2 << 20, fail: broken})
	if !errors.Is(err, broken) {
		t.Fatalf("a source failing inside the data: %v, want its error", err)
	}
	// It ends inside the data: a read error of that file, the restore goes on.
	if err := h.w.Restore(context.Background(), items[1].m, &lender{b: items[1].pax[:1<<20], piece: 16 << 10}); err != nil {
		t.Fatal(err)
	}
	if e := h.errs[len(h.errs)-1]; e.Path != "/d/big" || e.Op != "read" || !strings.Contains(e.Message, "unexpected EOF") {
		t.Fatalf("a source ending inside the data: %v, want a read error for /d/big", e)
	}
	h.w.Close()
	if left := tempFiles(t, where); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
	if _, err := os.Lstat(filepath.Join(where, "d/big")); err == nil {
		t.Error("a file that was not restored is there under its name")
	}
}
