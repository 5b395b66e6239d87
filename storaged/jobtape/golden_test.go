package jobtape

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden-*.tar")

// TestGolden: a small job on a clear volume, its data tape file and its
// index tape file as read back through the drive, byte for byte
// (go test ./storaged/jobtape -run Golden -update rewrites them).
func TestGolden(t *testing.T) {
	lib := newLib(t, 1, 1, 16<<20)
	v := mount(t, lib, 1, 0, "GOLD01L8", false, 64<<10)
	files := makeFiles(4, 24)
	j := runJob(t, []*vol{v}, files, Options{BlockSize: 64 << 10})
	if j.err != nil {
		t.Fatal(j.err)
	}
	p, ix := j.sum.Parts[0], j.sum.Index
	got := map[string][]byte{
		"golden-part1.tar": readFile(t, v.d, p.TapeFile, p.FirstBlock, 64<<10),
		"golden-index.tar": readFile(t, v.d, ix.TapeFile, ix.FirstBlock, 64<<10),
	}
	for name, b := range got {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test ./storaged/jobtape -run Golden -update writes it)", err)
		}
		if !bytes.Equal(b, want) {
			i := 0
			for i < len(b) && i < len(want) && b[i] == want[i] {
				i++
			}
			t.Errorf("%s: %d bytes read, golden %d; first difference at byte %d", name, len(b), len(want), i)
		}
	}
	if p.TapeFile != 1 || ix.TapeFile != 2 || ix.FirstBlock != p.LastBlock+2 {
		t.Errorf("part %+v, index %+v", p, ix)
	}
}
