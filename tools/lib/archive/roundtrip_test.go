package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/golden-part.tar from the writer")

// TestGolden: the deterministic member set encodes to exactly the bytes
// in testdata (go test ./tools/lib/archive -run Golden -update rewrites them after a
// deliberate format change; the other tests judge the new bytes).
func TestGolden(t *testing.T) {
	part, _ := writeSet(t, testPartHeader(), memberSet())
	golden := filepath.Join("testdata", "golden-part.tar")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, part, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./tools/lib/archive -run Golden -update writes it)", err)
	}
	if !bytes.Equal(part, want) {
		i := 0
		for i < len(part) && i < len(want) && part[i] == want[i] {
			i++
		}
		t.Fatalf("the part differs from %s at byte %d (block %d): got %d bytes, want %d", golden, i, i/BlockSize, len(part), len(want))
	}
}

// TestRoundTrip: the Reader gives back every member with the writer's
// header offsets, attributes and digests.
func TestRoundTrip(t *testing.T) {
	set := memberSet()
	ph := testPartHeader()
	part, recs := writeSet(t, ph, set)
	r, err := NewReader(bytes.NewReader(part))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.PartHeader(); got.JobID != ph.JobID || got.Volume != ph.Volume || !got.Created.Equal(ph.Created) || got.Kind != KindData || got.FileSet != ph.FileSet {
		t.Errorf("part header %+v, want %+v", got, ph)
	}
	for i, tm := range set {
		e, err := r.Next()
		if err != nil {
			t.Fatalf("member %d (%q): %v", i, tm.m.Path, err)
		}
		rec, h := recs[i], e.Header
		if e.Offset != rec.HeaderOffset {
			t.Errorf("%q: reader offset %d, writer's header offset %d", rec.Path, e.Offset, rec.HeaderOffset)
		}
		if !rec.Sparse && rec.Type == TypeReg && r.cr.n != rec.DataOffset {
			t.Errorf("%q: data starts at %d, writer said %d", rec.Path, r.cr.n, rec.DataOffset)
		}
		if h.Name != rec.Path || Type(h.Typeflag) != rec.Type || h.Linkname != rec.Linkname || h.Size != rec.Size {
			t.Errorf("%q: read name %q type %c link %q size %d, wrote %q %c %q %d", tm.m.Path, h.Name, h.Typeflag, h.Linkname, h.Size, rec.Path, rec.Type, rec.Linkname, rec.Size)
		}
		if h.Mode != tm.m.Mode || int64(h.Uid) != tm.m.UID || int64(h.Gid) != tm.m.GID || h.Uname != tm.m.Uname || h.Gname != tm.m.Gname {
			t.Errorf("%q: read mode %o ids %d/%d %q/%q", rec.Path, h.Mode, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if !h.ModTime.Equal(tm.m.Mtime) || rec.Mtime != tm.m.Mtime.UnixNano() {
			t.Errorf("%q: mtime %v (record %d), want %v", rec.Path, h.ModTime, rec.Mtime, tm.m.Mtime)
		}
		if h.Devmajor != tm.m.Devmajor || h.Devminor != tm.m.Devminor {
			t.Errorf("%q: device %d,%d", rec.Path, h.Devmajor, h.Devminor)
		}
		for k, v := range tm.m.Xattrs {
			if got := h.PAXRecords["SCHILY.xattr."+k]; got != v {
				t.Errorf("%q: xattr %s = %q, want %q", rec.Path, k, got, v)
			}
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%q: %v", rec.Path, err)
		}
		if rec.Type == TypeReg {
			if !bytes.Equal(data, tm.data) {
				t.Errorf("%q: read %d bytes, wrote %d", rec.Path, len(data), len(tm.data))
			}
			if rec.SHA256 != sum(tm.data) || rec.Warnings != 0 {
				t.Errorf("%q: record digest %x warnings %d, want %x and none", rec.Path, rec.SHA256, rec.Warnings, sum(tm.data))
			}
		}
		if rec.Type == TypeLink && (rec.SHA256 != sum(tm.data) || len(data) != 0 || h.Linkname != "top/hard-1") {
			t.Errorf("hard link %q: %d data bytes, link %q, digest %x", rec.Path, len(data), h.Linkname, rec.SHA256)
		}
	}
	if e, err := r.Next(); err != io.EOF || r.Cut() != nil {
		t.Fatalf("after the last member: %v, %v, cut %v; want io.EOF and no cut", e, err, r.Cut())
	}
}

// TestChangingFile: a file that shrinks is padded with zeros, one that
// grows is cut at its size; the stream stays readable and the records
// say so.
func TestChangingFile(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	mk := func(p string, size int64) Member {
		return Member{Path: p, Type: TypeReg, Size: size, Mode: 0o600, Mtime: testTime}
	}
	shrunk, err := w.WriteMember(mk("shrunk", 1000), strings.NewReader("only 16 bytes!!\n"))
	if err != nil {
		t.Fatal(err)
	}
	grew, err := w.WriteMember(mk("grew", 4), strings.NewReader("more than four"))
	if err != nil {
		t.Fatal(err)
	}
	same, err := w.WriteMember(mk("same", 4), strings.NewReader("four"))
	if err != nil {
		t.Fatal(err)
	}
	// Large files go through the two-buffer pipeline.
	bigData := pattern(3<<20+77, 5)
	bigShrunk, err := w.WriteMember(mk("big-shrunk", 5<<20), bytes.NewReader(bigData))
	if err != nil {
		t.Fatal(err)
	}
	bigGrew, err := w.WriteMember(mk("big-grew", 2<<20+1), bytes.NewReader(bigData))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	bigShrunkWant := append(append([]byte(nil), bigData...), make([]byte, 5<<20-len(bigData))...)
	if bigShrunk.Warnings != WarnShrunk || bigGrew.Warnings != WarnGrew ||
		bigShrunk.SHA256 != sha256.Sum256(bigShrunkWant) || bigGrew.SHA256 != sha256.Sum256(bigData[:2<<20+1]) {
		t.Errorf("large files: warnings %d and %d, or digests not of the bytes stored", bigShrunk.Warnings, bigGrew.Warnings)
	}
	if shrunk.Warnings != WarnShrunk || grew.Warnings != WarnGrew || same.Warnings != 0 {
		t.Fatalf("warnings: shrunk %d grew %d same %d; want %d %d 0", shrunk.Warnings, grew.Warnings, same.Warnings, WarnShrunk, WarnGrew)
	}
	want := append([]byte("only 16 bytes!!\n"), make([]byte, 1000-16)...)
	if shrunk.SHA256 != sha256.Sum256(want) || grew.SHA256 != sha256.Sum256([]byte("more")) {
		t.Errorf("digests are not of the bytes stored")
	}
	tr := tar.NewReader(&buf)
	for _, c := range []struct {
		name string
		data []byte
	}{{"shrunk", want}, {"grew", []byte("more")}, {"same", []byte("four")}, {"big-shrunk", bigShrunkWant}, {"big-grew", bigData[:2<<20+1]}} {
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(tr)
		if err != nil || h.Name != c.name || !bytes.Equal(got, c.data) {
			t.Errorf("member %q: %q (%v), want %q with %q", h.Name, got, err, c.name, c.data)
		}
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("after the members: %v, want io.EOF", err)
	}
}

// TestWriterRefuses: members the writer cannot store are refused with an
// error naming them, and nothing is written for them.
func TestWriterRefuses(t *testing.T) {
	for _, m := range []Member{
		{Path: "", Type: TypeReg},
		{Path: "nul\x00name", Type: TypeReg},
		{Path: "neg", Type: TypeReg, Size: -1},
		{Path: "sym", Type: TypeSymlink},
		{Path: "sparse", Type: TypeReg, Size: 10, Sparse: []Span{{5, 10}}},
		{Path: "sparse2", Type: TypeReg, Size: 100, Sparse: []Span{{50, 10}, {40, 5}}},
		{Path: "x", Type: TypeReg, Xattrs: map[string]string{"a=b": "c"}},
		{Path: "file/", Type: TypeReg},
		{Path: "weird", Type: 'Z'},
	} {
		var buf bytes.Buffer
		w := NewWriter(&buf)
		_, err := w.WriteMember(m, strings.NewReader(""))
		if err == nil || buf.Len() != 0 {
			t.Errorf("member %q: err %v, %d bytes written; want an error and nothing", m.Path, err, buf.Len())
			continue
		}
		if m.Path != "" && !strings.Contains(err.Error(), strings.Split(m.Path, "\x00")[0]) {
			t.Errorf("error %q does not name %q", err, m.Path)
		}
	}
}

// TestPartHeaderRoundTrip: Encode gives whole records that
// ParsePartHeader reads back, leaving the reader at the first member.
func TestPartHeaderRoundTrip(t *testing.T) {
	ph := testPartHeader()
	ph.Part, ph.VolumeSeq, ph.StreamOffset = 3, 2, 123<<20
	ph.Created = time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	ph.Cut = &Cut{Path: "dir/big file", Size: 10 << 20, Offset: 4 << 20, Mode: 0o640, Mtime: testTime.UnixNano()}
	b, err := ph.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(b)%BlockSize != 0 {
		t.Fatalf("Encode gave %d bytes, not whole %d-byte records", len(b), BlockSize)
	}
	r := bytes.NewReader(b)
	got, err := ParsePartHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != KindData || got.JobID != 42 || got.Job != "nightly" || got.Client != "web1-fd" || got.FileSet != "Full Set" ||
		got.Level != "Full" || got.Part != 3 || got.VolumeSeq != 2 || got.StreamOffset != 123<<20 || got.BlockSize != 1<<20 ||
		got.Volume != "TW0001L8" || got.TapeFile != 2 || !got.Created.Equal(ph.Created) {
		t.Errorf("parsed %+v, encoded %+v", got, ph)
	}
	if got.Cut == nil || got.Cut.Path != "dir/big file" || got.Cut.Offset != 4<<20 || got.Cut.Size != 10<<20 {
		t.Errorf("cut %+v, want %+v", got.Cut, ph.Cut)
	}
	// What is left is the continuation member's header.
	rest, _ := io.ReadAll(r)
	h, err := tar.NewReader(bytes.NewReader(rest)).Next()
	if err != nil || h.Name != "GNUFileParts/big file.3" || h.Size != 6<<20 {
		t.Errorf("after the part header: %+v, %v; want GNUFileParts/big file.3 of %d bytes", h, err, 6<<20)
	}
	if !strings.Contains(string(b), "dd if=/dev/nst0 bs=1048576 | tar -xvf -") || !strings.Contains(string(b), "fsf 2;") {
		t.Errorf("the part header's comment lacks the restore recipe:\n%s", b)
	}
	// A bad cut is refused.
	ph.Cut.Offset = 1000
	if _, err := ph.Encode(); err == nil || !strings.Contains(err.Error(), "dir/big file") {
		t.Errorf("cut at 1000: %v, want an error naming the member", err)
	}
	// Not a part header.
	if _, err := ParsePartHeader(bytes.NewReader(make([]byte, 1024))); err == nil {
		t.Error("zeros parsed as a part header")
	}
}

// TestHardLinkedSparse: the second path of a hard-linked sparse file is
// a plain link entry that keeps its long name.
func TestHardLinkedSparse(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	m := Member{Path: "a", Type: TypeReg, Size: 8192, Mode: 0o644, Mtime: testTime, Sparse: []Span{{4096, 4}},
		Dev: 9, Ino: 9, Nlink: 2}
	if _, err := w.WriteMember(m, strings.NewReader("data")); err != nil {
		t.Fatal(err)
	}
	m.Path = strings.Repeat("long/", 40) + "b"
	rec, err := w.WriteMember(m, strings.NewReader("data"))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if rec.Type != TypeLink || rec.Sparse || rec.Linkname != "a" {
		t.Fatalf("second path: %+v, want a link to a", rec)
	}
	tr := tar.NewReader(&buf)
	tr.Next()
	h, err := tr.Next()
	if err != nil || h.Name != m.Path || h.Typeflag != tar.TypeLink || h.Linkname != "a" {
		t.Fatalf("second entry %+v, %v; want a link named %q", h, err, m.Path)
	}
}
