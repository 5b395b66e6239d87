package jobtape

import (
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
