package jobtape

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/tools/lib/archive"
)

// TestEarlyWarningInHeaders: a job of members that are mostly headers
// (long names: 'x' header, records, ustar block; little or no data) on
// small volumes with small blocks, so that early warning falls inside a
// member's headers: the part goes on past early warning to the next cut
// point and ends with a short block; every part starts with a whole
// member (or a continuation), archive.Reader yields every member once,
// and GNU tar -M extracts them all.
func TestEarlyWarningInHeaders(t *testing.T) {
	needTars(t)
	drained, stitched := 0, 0
	for _, bs := range []int{4096, 5120, 7168} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			lib := newLib(t, 10, 10, 1<<20)
			var vols []*vol
			for i := range 10 {
				vols = append(vols, mount(t, lib, i+1, i, fmt.Sprintf("HC%04dL8", i+1), i%2 == 0, bs))
			}
			var files []file
			for i := range 900 {
				m := archive.Member{Path: fmt.Sprintf("h/%03d-%s", i, strings.Repeat("n", 150)), Type: archive.TypeReg, Mode: 0o600, Mtime: testTime}
				data := bytes.Repeat([]byte{byte(i)}, (i%5)*700+1000)
				m.Size = int64(len(data))
				files = append(files, file{m, data})
			}
			j := runJob(t, vols, files, Options{BlockSize: bs, FlushEvery: 64 << 10})
			if j.err != nil {
				t.Fatal(j.err)
			}
			if len(j.sum.Parts) < 2 {
				t.Fatalf("%d parts: the job did not span", len(j.sum.Parts))
			}
			if len(j.reported()) != len(files) {
				t.Fatalf("%d records reported, want %d", len(j.reported()), len(files))
			}
			var names []string
			seen := map[string]int{}
			dir := t.TempDir()
			for i, p := range j.sum.Parts {
				t.Logf("part %d: volume %s, %d bytes (%d blocks), stream %d+%d, cut %v", p.Part, p.Volume, p.Bytes, p.Blocks, p.StreamOffset, p.StreamBytes, p.Cut != nil)
				if i+1 < len(j.sum.Parts) && p.Bytes%int64(bs) != 0 {
					drained++
				}
				data := readFile(t, vols[i].d, p.TapeFile, p.FirstBlock, bs)
				n := filepath.Join(dir, fmt.Sprint(i))
				if err := os.WriteFile(n, data, 0o600); err != nil {
					t.Fatal(err)
				}
				names = append(names, "-f", n)
				r, err := archive.NewReader(bytes.NewReader(data))
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
					if e.Continues == nil {
						seen[e.Header.Name]++
					}
				}
			}
			for _, f := range files {
				if seen[f.m.Path] != 1 {
					t.Errorf("%s yielded %d times", f.m.Path, seen[f.m.Path])
				}
			}
			// GNU tar -M stitches parts when every part after the first
			// starts with a continuation; when a part ends at a member
			// boundary it skips the next part's first member (GNU tar
			// 1.34 takes the header after the volume header for the
			// continued file's), so such parts are extracted one by one:
			// each is then complete by itself.
			stitch := true
			for _, p := range j.sum.Parts[1:] {
				stitch = stitch && p.Cut != nil
			}
			if !stitch {
				t.Fatal("a part ends at a member boundary although members with data follow within 16 KiB")
			}
			stitched++
			extractCompare(t, files, nil, append([]string{"-M"}, names...)...)
		})
	}
	if stitched == 0 {
		t.Error("tar -M never ran")
	}
	if drained == 0 {
		t.Error("no part ended past early warning with a short block: the header case was not exercised")
	}
}

// TestBoundaryCuts: members with at most 400 bytes of data (no 512-byte
// boundary inside any member's data): every part ends at a member
// boundary, starts with no continuation, and lists and extracts alone
// with GNU tar (exit 0) and lists with bsdtar.
func TestBoundaryCuts(t *testing.T) {
	needTars(t)
	const bs = 4096
	lib := newLib(t, 6, 6, 1<<20)
	var vols []*vol
	for i := range 6 {
		vols = append(vols, mount(t, lib, i+1, i, fmt.Sprintf("BC%04dL8", i+1), i%2 == 1, bs))
	}
	var files []file
	for i := range 1500 {
		m := archive.Member{Path: fmt.Sprintf("s/%04d-%s", i, strings.Repeat("b", 120)), Type: archive.TypeReg, Mode: 0o600, Mtime: testTime}
		data := bytes.Repeat([]byte{byte(i)}, (i%5)*100)
		m.Size = int64(len(data))
		files = append(files, file{m, data})
	}
	j := runJob(t, vols, files, Options{BlockSize: bs})
	if j.err != nil {
		t.Fatal(j.err)
	}
	if len(j.sum.Parts) < 2 {
		t.Fatalf("%d parts: the job did not span", len(j.sum.Parts))
	}
	placed := j.reported()
	for i, p := range j.sum.Parts {
		if p.Cut != nil {
			t.Fatalf("part %d continues %q: no member has a 512-byte boundary inside its data", p.Part, p.Cut.Path)
		}
		data := readFile(t, vols[i].d, p.TapeFile, p.FirstBlock, bs)
		var mine []file
		var paths []string
		for k, pl := range placed {
			if pl.Address.Volume == p.Volume {
				mine = append(mine, files[k])
				paths = append(paths, pl.Record.Path)
			}
		}
		if len(mine) == 0 {
			t.Fatalf("part %d holds no member", p.Part)
		}
		listsAll(t, "tar", tarList(t, "tar", data, true), paths)
		listsAll(t, "bsdtar", tarList(t, "bsdtar", data, true), paths)
		extractCompare(t, mine, bytes.NewReader(data), "-f", "-")
	}
	if n := len(placed); n != len(files) {
		t.Fatalf("%d records reported, want %d", n, len(files))
	}
}
