package jobtape

import (
	"bytes"
	"testing"

	"github.com/tapeward/tapeward/tools/lib/archive"
)

// TestOneVolume writes a job of a few hundred members onto an encrypted
// and onto a clear volume, reads the data tape file back through the
// drive and has GNU tar and bsdtar list it and GNU tar extract it.
func TestOneVolume(t *testing.T) {
	needTars(t)
	for _, encrypted := range []bool{true, false} {
		name := map[bool]string{true: "encrypted", false: "clear"}[encrypted]
		t.Run(name, func(t *testing.T) {
			lib := newLib(t, 2, 1, 64<<20)
			v := mount(t, lib, 1, 0, "TW0001L8", encrypted, 1<<20)
			files := makeFiles(1, 300)
			j := runJob(t, []*vol{v}, files, Options{FlushEvery: 1 << 20})
			if j.err != nil {
				t.Fatal(j.err)
			}
			if len(j.sum.Parts) != 1 || j.sum.Members != len(files) {
				t.Fatalf("summary: %d parts, %d members; want 1, %d", len(j.sum.Parts), j.sum.Members, len(files))
			}
			if got := len(j.reported()); got != len(files) {
				t.Fatalf("%d records reported, want %d", got, len(files))
			}
			p := j.sum.Parts[0]
			if p.TapeFile != 1 || p.Volume != v.name {
				t.Fatalf("part %+v", p)
			}
			data := readFile(t, v.d, p.TapeFile, p.FirstBlock, 1<<20)
			if int64(len(data)) != p.Bytes {
				t.Fatalf("read %d bytes, the summary says %d", len(data), p.Bytes)
			}
			ph, err := archive.ParsePartHeader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if ph.JobID != 42 || ph.Part != 1 || ph.Volume != v.name || ph.TapeFile != 1 || ph.BlockSize != 1<<20 {
				t.Fatalf("part header %+v", ph)
			}
			var paths []string
			for _, f := range files {
				paths = append(paths, f.m.Path)
			}
			listsAll(t, "tar", tarList(t, "tar", data, true), paths)
			listsAll(t, "bsdtar", tarList(t, "bsdtar", data, true), paths)
			extractCompare(t, files, bytes.NewReader(data), "-f", "-")
			if !encrypted {
				return
			}
			// Without the key, the drive refuses the data.
			if _, err := v.d.Clear(); err != nil {
				t.Fatal(err)
			}
			r, err := readNoKey(v, p)
			if err == nil {
				t.Fatalf("read %d bytes of the encrypted tape file with no key", len(r))
			}
		})
	}
}
