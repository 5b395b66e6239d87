package jobtape

import (
	"archive/tar"
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/tools/lib/archive"
)

// TestTrackerCutPoints follows a real archive.Writer stream (long names
// with 'x' headers, symlinks, directories, empty and large files) fed in
// uneven pieces and checks, at every 512-byte offset, that a cut is
// allowed exactly at member boundaries and inside a regular member's
// data (past its first byte), with the Cut archive.CutAt gives.
func TestTrackerCutPoints(t *testing.T) {
	files := makeFiles(5, 120, 100000)
	files = append(files, file{m: archive.Member{Path: strings.Repeat("x", 300), Type: archive.TypeReg, Mtime: testTime}, data: nil})
	var buf bytes.Buffer
	aw := archive.NewWriter(&buf)
	var recs []archive.Record
	for _, f := range files {
		rec, err := aw.WriteMember(f.m, bytes.NewReader(f.data))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	stream := buf.Bytes()
	var tr tracker
	for p, step := stream, 1; len(p) > 0; step = step*7%1999 + 1 {
		n := min(step, len(p))
		if err := tr.feed(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if !tr.complete() {
		t.Fatal("the tracker does not see the stream end at a member boundary")
	}
	last := end(recs[len(recs)-1])
	cuts := 0
	for c := int64(0); c <= int64(len(stream)); c += 512 {
		want, wantCut := true, (*archive.Cut)(nil)
		for _, r := range recs {
			switch {
			case c > r.HeaderOffset && c < r.DataOffset, c == r.DataOffset && r.StoredSize > 0:
				want = false
			case c > r.DataOffset && c < end(r):
				ct, err := archive.CutAt(r, c)
				if err != nil {
					t.Fatal(err)
				}
				wantCut = &ct
			}
		}
		if c > last && c < int64(len(stream)) {
			want = false
		}
		ok, cut, err := tr.cutAt(c)
		if err != nil {
			t.Fatalf("cut at %d: %v", c, err)
		}
		if ok != want || fmt.Sprint(cut) != fmt.Sprint(wantCut) {
			t.Fatalf("cut at %d: ok %v cut %+v; want %v %+v", c, ok, cut, want, wantCut)
		}
		if cut != nil {
			cuts++
		}
	}
	if cuts == 0 {
		t.Fatal("no cut inside data was found")
	}
	// Not a tar stream.
	var bad tracker
	if err := bad.feed(bytes.Repeat([]byte("z"), 512)); err == nil || !strings.Contains(err.Error(), "byte 0") {
		t.Fatalf("garbage: %v", err)
	}
}

// TestHeaderFields: octal fields as tar writers leave them (NUL or space
// terminated, space padded, GNU base-256) and the header checksum, on a
// header Go's archive/tar wrote; a changed byte fails the checksum.
func TestHeaderFields(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0000644\x00", 0o644, true}, {"  1750 \x00", 0o1750, true}, {"\x00\x00\x00", 0, true}, {"", 0, true},
		{"00000000017\x00", 0o17, true}, {"12 34", 0, false}, {"0009", 0, false}, {"-1", 0, false},
		{"\x80\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00", 1 << 32, true},
	} {
		got, ok := octal([]byte(c.in))
		if got != c.want || ok != c.ok {
			t.Errorf("octal(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "a/b.txt", Mode: 0o640, Size: 12345, ModTime: testTime, Typeflag: tar.TypeReg, Uname: "alice", Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	var blk [512]byte
	copy(blk[:], buf.Bytes())
	if !checksumOK(&blk) {
		t.Fatal("archive/tar's header fails the checksum")
	}
	if size, ok := octal(blk[124:136]); !ok || size != 12345 {
		t.Errorf("size field %q read as %d, %v", blk[124:136], size, ok)
	}
	for _, i := range []int{0, 147, 156, 511} {
		b := blk
		b[i]++
		if checksumOK(&b) {
			t.Errorf("byte %d changed, the checksum still holds", i)
		}
	}
}

// TestPaxValues: the pax records the tracker uses, parsed without a map:
// times with and without fractions, negative ones, a later record for a
// key winning, a bad size leaving the ustar size.
func TestPaxValues(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1700000000", 1700000000e9, true}, {"1700000000.5", 1700000000e9 + 5e8, true}, {"1.123456789123", 1e9 + 123456789, true},
		{"-1.25", -1e9 - 25e7, true}, {"-0.5", -5e8, true}, {"", 0, false}, {"x.1", 0, false}, {"1.x", 0, false},
	} {
		got, ok := paxTime([]byte(c.in))
		if got != c.want || ok != c.ok {
			t.Errorf("paxTime(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	var p paxVals
	for _, kv := range [][2]string{{"size", "100"}, {"path", "a/b"}, {"mtime", "12.5"}, {"size", "7"}, {"uname", "x"}, {"GNU.sparse.name", "s"}} {
		p.set([]byte(kv[0]), []byte(kv[1]))
	}
	if p.size != 7 || p.path != "a/b" || p.mtime != 12e9+5e8 || p.sparseName != "s" || p.has != paxSize|paxPath|paxMtime|paxSparseName {
		t.Errorf("pax values %+v", p)
	}
	p.set([]byte("size"), []byte("-3"))
	if p.has&paxSize != 0 {
		t.Errorf("a size of -3 was taken: %+v", p)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		var q paxVals
		q.set([]byte("size"), []byte("4096"))
		q.set([]byte("mtime"), []byte("1700000000.123456789"))
	}); allocs != 0 {
		t.Errorf("size and mtime records allocate %.0f times", allocs)
	}
}

// TestTrackerBounded: members whose records have not come (a client that
// sends its records late) are not followed by the tracker without bound:
// those on tape are forgotten at block boundaries.
func TestTrackerBounded(t *testing.T) {
	lib := newLib(t, 1, 1, 256<<20)
	v := mount(t, lib, 1, 0, "TW0001L8", false, 64<<10)
	jw, err := New(v.d, JobInfo{JobID: 44, Job: "nightly", Volume: v.name, Created: testTime}, Options{BlockSize: 64 << 10, NextVolume: noVolume, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	aw := archive.NewWriter(jw)
	most := 0
	var recs []archive.Record
	for i := range 20000 {
		rec, err := aw.WriteMember(archive.Member{Path: fmt.Sprintf("f%05d", i), Type: archive.TypeReg, Size: 100, Mode: 0o644, Mtime: testTime}, bytes.NewReader(make([]byte, 100)))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
		most = max(most, len(jw.tr.recent))
	}
	if most > 1300 {
		t.Errorf("the tracker followed %d members at once, want at most about 1,024", most)
	}
	for _, r := range recs {
		if err := jw.AddRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	sum, err := jw.Close()
	if err != nil || sum.Members != len(recs) {
		t.Fatalf("close: %d members, %v", sum.Members, err)
	}
}
