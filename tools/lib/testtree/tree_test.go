//go:build linux

package testtree

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMakeTakeCompare(t *testing.T) {
	root := t.TempDir() + "/data"
	o := Options{LargeFiles: 1, LargeSize: 3 << 20, SmallFiles: 150, SmallSize: 100, FlatFiles: 20, FlatSize: 10,
		Links: true, LongName: true, OddNames: true, DeepPath: true, SparseSize: 64 << 20}
	if err := Make(root, o); err != nil {
		t.Fatal(err)
	}
	s, err := Take(root)
	if err != nil {
		t.Fatal(err)
	}
	deep := DeepPath(root)
	if len(deep) != 4096 {
		t.Fatalf("deep path is %d bytes", len(deep))
	}
	for _, p := range []string{root, deep, root + "/" + LongName, root + "/" + NewlineName, root + "/" + BadUTF8Name, root + "/" + LoopA, root + "/" + Sparse, root + "/flat/f000019"} {
		if _, ok := s[p]; !ok {
			t.Errorf("snapshot lacks %q", p)
		}
	}
	if a, b := s[root+"/"+HardA], s[root+"/"+HardB]; a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hard links: %+v %+v", a, b)
	}
	var st unix.Stat_t
	if err := unix.Stat(root+"/"+Sparse, &st); err != nil || st.Blocks*512 >= st.Size/2 {
		t.Errorf("sparse file: %d blocks for %d bytes (%v)", st.Blocks, st.Size, err)
	}
	if n, _ := s.Files(); n != 1+150+20+2+1+2+1+1 {
		t.Errorf("Files() = %d", n)
	}

	// A listing in the catalog's own encoding (bytes as base64, the
	// second hard link as a link row, directories with a trailing '/',
	// no leading '/'), and one in text (Go-quoted odd names, hex digests).
	var b64, text []map[string]any
	for p, e := range s {
		typ, link := e.Type, e.Link
		if p == root+"/"+HardB {
			typ, link = "link", strings.TrimPrefix(root+"/"+HardA, "/")
		}
		stored := strings.TrimPrefix(p, "/")
		if e.Type == "dir" {
			stored += "/"
		}
		row := map[string]any{"Path": []byte(stored), "Type": typ, "Size": e.Size, "Mode": e.Mode}
		trow := map[string]any{"path": strconv.Quote(p), "type": typ, "size": e.Size, "mode": strconv.FormatUint(uint64(e.Mode), 8)}
		if link != "" {
			row["Link"], trow["link_target"] = []byte(link), link
		}
		if e.Type == "file" {
			row["SHA256"], trow["sha256"] = e.SHA256[:], hex.EncodeToString(e.SHA256[:])
		}
		b64, text = append(b64, row), append(text, trow)
	}
	for name, rows := range map[string]any{"base64": b64, "text": map[string]any{"jobid": 7, "files": text}} {
		doc, _ := json.Marshal(rows)
		got, err := ParseListFiles(doc, root)
		if err != nil {
			t.Fatal(err)
		}
		if p := Compare(got, s); len(p) != 0 {
			t.Errorf("%s listing: %q", name, p)
		}
		// Each kind of difference is found.
		for i := range got[1:] {
			if got[1+i].Type == "file" {
				got[1+i].SHA256 = make([]byte, 32)
				break
			}
		}
		got = append(got[1:], File{Path: root + "/extra", Type: "file"})
		if p := Compare(got, s); len(p) < 3 {
			t.Errorf("%s listing with a wrong, a missing and an extra row: only %q", name, p)
		}
	}
	// The since-time is a file's mtime, as the file system's clock gives
	// it (it is coarser than time.Now: a file written after time.Now may
	// carry an earlier mtime).
	ref := t.TempDir() + "/ref"
	if err := os.WriteFile(ref, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(ref)
	old := fi.ModTime()
	if err := os.WriteFile(root+"/small/d00/s0001.bin", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := Take(root)
	if err != nil {
		t.Fatal(err)
	}
	ch := s2.ChangedSince(old)
	if _, ok := ch[root+"/small/d00/s0001.bin"]; !ok || len(ch) != 1 {
		t.Errorf("changed since: %v", len(ch))
	}
}

// Take hashes a sparse file from its data extents and zeros for the
// holes: the digest is that of every byte read through the kernel, for a
// file with data at the start, the middle and the end, and for one that
// is a hole at both ends.
func TestTakeHashesSparseFilesAsRead(t *testing.T) {
	root := t.TempDir()
	f, err := os.Create(root + "/holes-at-ends")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(9 << 20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("data in the middle"), 4<<20+123); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := makeSparse(root+"/"+"sparse", 5<<20+77, Rand(3)); err != nil {
		t.Fatal(err)
	}
	s, err := Take(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"holes-at-ends", "sparse"} {
		b, err := os.ReadFile(root + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := s[root+"/"+name].SHA256, sha256.Sum256(b); got != want {
			t.Errorf("%s: Take's digest %x, the bytes' %x", name, got[:4], want[:4])
		}
	}
}
