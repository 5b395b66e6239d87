package archive

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
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

// TestThreeParts: a member spanning three volumes (the second cut right
// at its data's start in part 1, then inside the continuation in part
// 2): the Reader's cuts and continuations chain, and GNU tar -M
// extracts it whole from the three parts.
func TestThreeParts(t *testing.T) {
	big := pattern(200000, 4)
	var stream bytes.Buffer
	w := NewWriter(&stream)
	w.WriteMember(Member{Path: "a", Type: TypeReg, Size: 3, Mode: 0o644, Mtime: testTime}, bytes.NewReader([]byte("abc")))
	rec, err := w.WriteMember(Member{Path: "sub dir/span", Type: TypeReg, Size: int64(len(big)), Mode: 0o600, Mtime: testTime}, bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	s := stream.Bytes()
	cuts := []int64{rec.DataOffset, rec.DataOffset + 150*BlockSize}
	var parts [][]byte
	from := int64(0)
	for i := 0; i <= len(cuts); i++ {
		ph := testPartHeader()
		ph.Part, ph.VolumeSeq, ph.StreamOffset = i+1, i+1, from
		if i > 0 {
			c, err := CutAt(rec, from)
			if err != nil {
				t.Fatal(err)
			}
			ph.Cut = &c
		}
		h, err := ph.Encode()
		if err != nil {
			t.Fatal(err)
		}
		to := int64(len(s))
		if i < len(cuts) {
			to = cuts[i]
		}
		parts = append(parts, append(h, s[from:to]...))
		from = to
	}
	var got []byte
	for i, p := range parts {
		r, err := NewReader(bytes.NewReader(p))
		if err != nil {
			t.Fatal(err)
		}
		for {
			e, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("part %d: %v", i+1, err)
			}
			if i > 0 && e.Continues == nil && e.Header.Name != "a" {
				t.Fatalf("part %d: %q does not continue anything", i+1, e.Header.Name)
			}
			if e.Continues != nil && e.Continues.Offset != int64(len(got)) {
				t.Fatalf("part %d continues at %d, %d bytes read so far", i+1, e.Continues.Offset, len(got))
			}
			if e.Header.Name != "a" {
				b, _ := io.ReadAll(r)
				got = append(got, b...)
			}
		}
		if c := r.Cut(); (i < 2) != (c != nil) || (c != nil && (c.Path != "sub dir/span" || c.Offset != int64(len(got)))) {
			t.Fatalf("part %d ends with cut %+v after %d bytes", i+1, c, len(got))
		}
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("the pieces make %d bytes, the member has %d", len(got), len(big))
	}
	dir := t.TempDir()
	args := []string{"-M", "-xf"}
	for i, p := range parts {
		name := filepath.Join(dir, "part"+string(rune('1'+i))+".tar")
		os.WriteFile(name, p, 0o644)
		if i > 0 {
			args = append(args, "-f")
		}
		args = append(args, name)
	}
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	runTool(t, nil, out, "tar", args...)
	if b, err := os.ReadFile(filepath.Join(out, "sub dir/span")); err != nil || !bytes.Equal(b, big) {
		t.Fatalf("tar -M over three parts gave %d bytes (%v), want %d", len(b), err, len(big))
	}
}

// TestMemberReader: reading from a member's address (no part header)
// gives the members from there, with their tape-file offsets.
func TestMemberReader(t *testing.T) {
	set := memberSet()
	part, recs := writeSet(t, testPartHeader(), set)
	i := 5
	r := NewMemberReader(bytes.NewReader(part[recs[i].HeaderOffset:]), recs[i].HeaderOffset)
	for ; i < len(recs); i++ {
		e, err := r.Next()
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		if e.Header.Name != recs[i].Path || e.Offset != recs[i].HeaderOffset {
			t.Fatalf("member %d: %q at %d, want %q at %d", i, e.Header.Name, e.Offset, recs[i].Path, recs[i].HeaderOffset)
		}
		if recs[i].Type == TypeReg {
			b, err := io.ReadAll(r)
			if err != nil || sum(b) != recs[i].SHA256 {
				t.Fatalf("member %q: data does not match its digest (%v)", recs[i].Path, err)
			}
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last member: %v", err)
	}
}

// TestPartEndsAtMemberBoundary: a part that is not the last may end
// right after a member (no end-of-archive marker): both tars list it
// without error and the Reader reports no cut.
func TestPartEndsAtMemberBoundary(t *testing.T) {
	set := memberSet()[:4]
	part, _ := writeSet(t, testPartHeader(), set)
	part = part[:len(part)-2*BlockSize]
	for _, tool := range []string{"tar", "bsdtar"} {
		out, _ := runTool(t, part, t.TempDir(), tool, "-tf", "-")
		if n := strings.Count(out, "\n"); n != len(set) { // the newline in a name is printed as \n
			t.Errorf("%s -tf - listed %q", tool, out)
		}
	}
	r, err := NewReader(bytes.NewReader(part))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := r.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != len(set) || r.Cut() != nil {
		t.Fatalf("read %d members, cut %+v; want %d and no cut", n, r.Cut(), len(set))
	}
}

// TestStoredData: after Next, Offset and StoredData say where each
// member's stored data lies in the tape file (sparse members too: map and
// regions), matching the writer's records, so a restore can copy exactly
// one member's bytes from the tape.
func TestStoredData(t *testing.T) {
	set := memberSet()
	part, recs := writeSet(t, testPartHeader(), set)
	for i, rec := range recs {
		r := NewMemberReader(bytes.NewReader(part[rec.HeaderOffset:]), rec.HeaderOffset)
		if _, _, ok := r.StoredData(); ok {
			t.Fatal("StoredData before Next says ok")
		}
		if _, err := r.Next(); err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		start, end, ok := r.StoredData()
		if !ok || start != rec.DataOffset || end != rec.DataOffset+rec.StoredSize || r.Offset() < start || r.Offset() > end {
			t.Fatalf("member %q: StoredData %d..%d (ok %v), Offset %d; the writer says data %d..%d", rec.Path, start, end, ok, r.Offset(), rec.DataOffset, rec.DataOffset+rec.StoredSize)
		}
	}
}
