package archive

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// splitJob writes three members and cuts the stream inside the second
// one's data, returning the two parts, the big member's data and its
// record.
func splitJob(t *testing.T) (p1, p2, big []byte, rec Record) {
	t.Helper()
	big = pattern(300000, 9)
	var stream bytes.Buffer
	w := NewWriter(&stream)
	mk := func(p string, n int) Member {
		return Member{Path: p, Type: TypeReg, Size: int64(n), Mode: 0o640, Uname: "root", Gname: "root", Mtime: testTime}
	}
	if _, err := w.WriteMember(mk("dir/a", 5), bytes.NewReader([]byte("first"))); err != nil {
		t.Fatal(err)
	}
	rec, err := w.WriteMember(mk("dir/big", len(big)), bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteMember(mk("dir/c", 4), bytes.NewReader([]byte("last"))); err != nil {
		t.Fatal(err)
	}
	w.Close()
	at := rec.DataOffset + 100*BlockSize
	cut, err := CutAt(rec, at)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CutAt(rec, at+1); err == nil {
		t.Fatal("CutAt accepted a cut off the 512-byte grid")
	}
	if _, err := CutAt(rec, rec.HeaderOffset); err == nil {
		t.Fatal("CutAt accepted a cut in the header")
	}
	ph := testPartHeader()
	h1, err := ph.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ph.Part, ph.VolumeSeq, ph.StreamOffset, ph.Volume, ph.Cut = 2, 2, at, "TW0002L8", &cut
	h2, err := ph.Encode()
	if err != nil {
		t.Fatal(err)
	}
	s := stream.Bytes()
	return append(h1, s[:at]...), append(h2, s[at:]...), big, rec
}

// TestContinuationReader: the Reader reports where part 1 ended inside a
// member and that part 2 continues it at that offset; the pieces make
// the member.
func TestContinuationReader(t *testing.T) {
	p1, p2, big, _ := splitJob(t)
	r1, err := NewReader(bytes.NewReader(p1))
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	var names []string
	for {
		e, err := r1.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, e.Header.Name)
		if e.Header.Name == "dir/big" {
			got, err = io.ReadAll(r1)
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("reading the cut member: %v, want io.ErrUnexpectedEOF", err)
			}
		}
	}
	c := r1.Cut()
	if len(names) != 2 || c == nil || c.Path != "dir/big" || c.Offset != 100*BlockSize || c.Size != int64(len(big)) {
		t.Fatalf("part 1: members %q, cut %+v; want dir/a, dir/big cut at %d", names, c, 100*BlockSize)
	}
	r2, err := NewReader(bytes.NewReader(p2))
	if err != nil {
		t.Fatal(err)
	}
	if ph := r2.PartHeader(); ph.Part != 2 || ph.Cut == nil || ph.Cut.Offset != c.Offset {
		t.Fatalf("part 2 header %+v", ph)
	}
	e, err := r2.Next()
	if err != nil {
		t.Fatal(err)
	}
	if e.Continues == nil || e.Continues.Path != "dir/big" || e.Continues.Offset != c.Offset || e.Header.Name != "GNUFileParts/big.2" {
		t.Fatalf("part 2 starts with %q continuing %+v", e.Header.Name, e.Continues)
	}
	rest, err := io.ReadAll(r2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(got, rest...), big) {
		t.Fatalf("the two pieces (%d + %d bytes) are not the member (%d bytes)", len(got), len(rest), len(big))
	}
	e, err = r2.Next()
	if err != nil || e.Header.Name != "dir/c" || e.Continues != nil {
		t.Fatalf("after the continuation: %v, %v", e, err)
	}
	if _, err := r2.Next(); err != io.EOF || r2.Cut() != nil {
		t.Fatalf("end of part 2: %v, cut %v", err, r2.Cut())
	}
}

// TestGNUTarMultiVolume: GNU tar -M reads part 1 and part 2 as two
// volumes and extracts every member, the cut one byte-identical; part 2
// alone lists with both tars.
func TestGNUTarMultiVolume(t *testing.T) {
	p1, p2, big, _ := splitJob(t)
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "part1.tar"), filepath.Join(dir, "part2.tar")
	os.WriteFile(v1, p1, 0o644)
	os.WriteFile(v2, p2, 0o644)
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	runTool(t, nil, out, "tar", "-M", "-xf", v1, "-f", v2)
	for name, want := range map[string][]byte{"dir/a": []byte("first"), "dir/big": big, "dir/c": []byte("last")} {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("tar -M extracted %s with %d bytes (%v), want %d identical bytes", name, len(got), err, len(want))
		}
	}
	for _, tool := range []string{"tar", "bsdtar"} {
		list, _ := runTool(t, p2, dir, tool, "-tf", "-")
		if list != "GNUFileParts/big.2\ndir/c\n" {
			t.Errorf("%s -tf part 2 = %q, want the continuation and dir/c", tool, list)
		}
	}
}
