package jobtape

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/tapeio"
	"github.com/tapeward/tapeward/tools/lib/archive"
)

// spanFiles: small members, one member larger than an 8 MiB volume, more
// small members.
func spanFiles() []file {
	fs := makeFiles(2, 150, 18<<20)
	for _, f := range makeFiles(3, 150) {
		f.m.Path = "second/" + f.m.Path
		if f.m.Type == archive.TypeSymlink {
			continue
		}
		fs = append(fs, f)
	}
	return fs
}

// TestSpanThreeVolumes writes a job across three 8 MiB encrypted volumes
// with a member larger than a volume: the index lists its continuation
// parts, archive.Reader over the parts yields every member with the right
// bytes, GNU tar -M stitches the parts, and members located by their
// index address read back with their digests.
func TestSpanThreeVolumes(t *testing.T) {
	needTars(t)
	const bs = 64 << 10
	lib := newLib(t, 3, 3, 8<<20)
	var vols []*vol
	for i := range 3 {
		vols = append(vols, mount(t, lib, i+1, i, fmt.Sprintf("TW%04dL8", i+1), true, bs))
	}
	files := spanFiles()
	j := runJob(t, vols, files, Options{BlockSize: bs, FlushEvery: 1 << 20})
	if j.err != nil {
		t.Fatal(j.err)
	}
	for _, p := range j.sum.Parts {
		t.Logf("part %d: volume %s file %d blocks %d..%d, %d bytes, stream %d+%d, cut %+v", p.Part, p.Volume, p.TapeFile, p.FirstBlock, p.LastBlock, p.Bytes, p.StreamOffset, p.StreamBytes, p.Cut)
	}
	if len(j.sum.Parts) != 3 {
		t.Fatalf("%d parts, want 3: %+v", len(j.sum.Parts), j.sum.Parts)
	}
	for i, p := range j.sum.Parts {
		if p.Volume != vols[i].name || p.VolumeSeq != i+1 || p.Part != i+1 || p.TapeFile != 1 {
			t.Errorf("part %d: %+v", i+1, p)
		}
		if i < 2 && !p.EarlyWarning {
			t.Errorf("part %d did not end at early warning", i+1)
		}
		if i > 0 && p.StreamOffset != j.sum.Parts[i-1].StreamOffset+j.sum.Parts[i-1].StreamBytes {
			t.Errorf("part %d starts at stream offset %d, the previous ended at %d", i+1, p.StreamOffset, j.sum.Parts[i-1].StreamOffset+j.sum.Parts[i-1].StreamBytes)
		}
	}
	if j.sum.Index.Volume != vols[2].name || j.sum.Index.TapeFile != 2 {
		t.Errorf("index at %+v, want volume %s tape file 2", j.sum.Index, vols[2].name)
	}
	placed := j.reported()
	if len(placed) != len(files) {
		t.Fatalf("%d records reported, want %d", len(placed), len(files))
	}

	// The index tape file lists every member at the reported address;
	// the big member has its continuation parts.
	ix := readFile(t, vols[2].d, j.sum.Index.TapeFile, j.sum.Index.FirstBlock, bs)
	var entries []archive.IndexEntry
	hdr, err := archive.DecodeIndex(bytes.NewReader(ix), func(e archive.IndexEntry) error { entries = append(entries, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Kind != archive.KindIndex || hdr.JobID != 42 {
		t.Errorf("index header %+v", hdr)
	}
	if len(entries) != len(files) {
		t.Fatalf("index lists %d members, want %d", len(entries), len(files))
	}
	cutMembers := 0
	for i, e := range entries {
		p := placed[i]
		if e.Path != files[i].m.Path || e.Address != p.Address || len(e.Parts) != len(p.Parts) || e.SHA256 != p.Record.SHA256 {
			t.Errorf("index entry %d: %q at %+v parts %v; reported %q at %+v parts %v", i, e.Path, e.Address, e.Parts, p.Record.Path, p.Address, p.Parts)
		}
		if len(e.Parts) > 0 {
			cutMembers++
		}
		if strings.HasPrefix(e.Path, "big/") && len(e.Parts) == 0 {
			t.Errorf("%s spans volumes, but the index lists no continuation part", e.Path)
		}
	}
	if cutMembers == 0 {
		t.Error("no member was cut")
	}

	// Read each part through its drive; archive.Reader yields every
	// member, the continuations joined to the members they continue.
	got := map[string][]byte{}
	var tarFiles []string
	dir := t.TempDir()
	var order []string
	for i, p := range j.sum.Parts {
		data := readFile(t, vols[i].d, p.TapeFile, p.FirstBlock, bs)
		if int64(len(data)) != p.Bytes {
			t.Fatalf("part %d: read %d bytes, summary says %d", i+1, len(data), p.Bytes)
		}
		name := filepath.Join(dir, fmt.Sprintf("part%d.tar", i+1))
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
		tarFiles = append(tarFiles, name)
		r, err := archive.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if ph := r.PartHeader(); ph.Part != i+1 || ph.Volume != vols[i].name || ph.StreamOffset != p.StreamOffset {
			t.Errorf("part %d header %+v", i+1, ph)
		}
		for {
			e, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("part %d: %v", i+1, err)
			}
			b, err := io.ReadAll(r)
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("part %d %s: %v", i+1, e.Header.Name, err)
			}
			path := e.Header.Name
			if e.Continues != nil {
				path = e.Continues.Path
				if int64(len(got[path])) != e.Continues.Offset {
					t.Errorf("part %d continues %s at %d, have %d bytes of it", i+1, path, e.Continues.Offset, len(got[path]))
				}
			} else {
				order = append(order, path)
			}
			got[path] = append(got[path], b...)
		}
	}
	if len(order) != len(files) {
		t.Errorf("archive.Reader yields %d members over the parts, want %d", len(order), len(files))
	}
	for _, f := range files {
		p := strings.TrimSuffix(f.m.Path, "/")
		if _, ok := got[p]; !ok {
			if _, ok := got[f.m.Path]; !ok {
				t.Errorf("%s not read", f.m.Path)
				continue
			}
		}
		if f.m.Type == archive.TypeReg && sha256.Sum256(got[f.m.Path]) != sha256.Sum256(f.data) {
			t.Errorf("%s: %d bytes read over the parts, want %d (or different bytes)", f.m.Path, len(got[f.m.Path]), len(f.data))
		}
	}

	// GNU tar stitches the parts (archive README §5).
	var args []string
	for _, n := range tarFiles {
		args = append(args, "-f", n)
	}
	extractCompare(t, files, nil, append([]string{"-M"}, args...)...)

	// Both tars list each part alone (a part cut inside a member ends
	// with an error after listing what it holds).
	for i, p := range j.sum.Parts {
		data, _ := os.ReadFile(tarFiles[i])
		cut := i+1 < len(j.sum.Parts) && j.sum.Parts[i+1].Cut != nil
		var want []string
		for _, pl := range placed {
			if pl.Address.Volume == p.Volume {
				want = append(want, pl.Record.Path)
			}
		}
		if p.Cut != nil {
			want = append(want, archive.ContinuationName(*p.Cut, p.Part))
		}
		listsAll(t, "tar", tarList(t, "tar", data, !cut), want)
		listsAll(t, "bsdtar", tarList(t, "bsdtar", data, !cut), want)
	}

	// LOCATE to members by their index address (first, a middle one,
	// the big one, its continuations, the last) and read them.
	for _, i := range []int{0, len(entries) / 3, len(entries) - 1} {
		e := entries[i]
		b := readMember(t, vols, e.Address, bs, e.Path)
		if e.Type == archive.TypeReg && sha256.Sum256(b) != e.SHA256 {
			t.Errorf("%s read at %+v: digest differs", e.Path, e.Address)
		}
	}
	for _, e := range entries {
		if len(e.Parts) == 0 {
			continue
		}
		b := readMember(t, vols, e.Address, bs, e.Path)
		for _, pa := range e.Parts {
			if int64(len(b)) != pa.DataOffset {
				t.Errorf("%s: continuation part %d starts at data offset %d, %d bytes before it", e.Path, pa.Part, pa.DataOffset, len(b))
			}
			b = append(b, readMember(t, vols, pa.Address, bs, "")...)
		}
		if sha256.Sum256(b) != e.SHA256 {
			t.Errorf("%s read over %d parts by index addresses: digest differs (%d bytes)", e.Path, len(e.Parts)+1, len(b))
		}
	}
}

// readMember locates to a and reads the member there (its data up to the
// end of the tape file for a cut member); path "" accepts any name.
func readMember(t *testing.T, vols []*vol, a archive.Address, bs int, path string) []byte {
	t.Helper()
	var v *vol
	for _, x := range vols {
		if x.name == a.Volume {
			v = x
		}
	}
	if v == nil {
		t.Fatalf("address on unknown volume %q", a.Volume)
	}
	// Addresses count blocks from the tape file's first block.
	if err := v.d.Rewind(false); err != nil {
		t.Fatal(err)
	}
	if _, err := v.d.Space(scsi.SpaceFilemarks, a.TapeFile); err != nil {
		t.Fatal(err)
	}
	pos, err := v.d.ReadPosition()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tapeio.NewReader(v.d, tapeio.Addr{File: uint64(a.TapeFile), Block: pos.Block + uint64(a.Block), Offset: int(a.Offset)}, tapeio.ReaderOptions{BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	r := archive.NewMemberReader(tr, a.Block*int64(bs)+a.Offset)
	e, err := r.Next()
	if err != nil {
		t.Fatalf("member at %+v: %v", a, err)
	}
	if path != "" && strings.TrimSuffix(e.Header.Name, "/") != strings.TrimSuffix(path, "/") {
		t.Fatalf("member at %+v is %q, want %q", a, e.Header.Name, path)
	}
	b, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("member %q at %+v: %v", e.Header.Name, a, err)
	}
	return b
}
