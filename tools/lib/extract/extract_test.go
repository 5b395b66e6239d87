//go:build linux

package extract

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapeward/tapeward/tools/lib/archive"
	"github.com/tapeward/tapeward/tools/lib/relocate"
	"github.com/tapeward/tapeward/tools/lib/testtree"
)

// item is one member as storaged would send it: the record and its pax
// bytes.
type item struct {
	m   Member
	pax []byte
}

// memberOf is the catalog's record of a written member.
func memberOf(r archive.Record) Member {
	m := Member{Path: r.Path, Type: r.Type.String(), Size: r.Size, Mode: uint32(r.Mode), UID: r.UID, GID: r.GID,
		MtimeNs: r.Mtime, Linkname: r.Linkname, Sparse: r.Sparse, Devmajor: r.Devmajor, Devminor: r.Devminor}
	if r.Type == archive.TypeReg || r.Type == archive.TypeLink {
		m.SHA256 = append([]byte(nil), r.SHA256[:]...)
	}
	return m
}

// archiveOf writes members with archive.Writer (one stream, as filed
// does) and cuts it into each member's bytes. data[i] is member i's
// content (a sparse member's regions one after the other).
func archiveOf(t testing.TB, ms []archive.Member, data [][]byte) []item {
	t.Helper()
	var buf bytes.Buffer
	w := archive.NewWriter(&buf)
	var out []item
	var starts []int64
	for i, m := range ms {
		var r io.Reader
		if i < len(data) && data[i] != nil {
			r = bytes.NewReader(data[i])
		}
		rec, err := w.WriteMember(m, r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, item{m: memberOf(rec)})
		starts = append(starts, rec.HeaderOffset)
	}
	end := w.Offset()
	b := buf.Bytes()
	for i := range out {
		stop := end
		if i+1 < len(out) {
			stop = starts[i+1]
		}
		out[i].pax = b[starts[i]:stop]
	}
	return out
}

type harness struct {
	t    *testing.T
	w    *Writer
	errs []*FileError
}

// newHarness's Options.Workers (TestRestoreWithWorkers) and noTmpfile
// (TestRestoreNamedTemporaries).
var (
	harnessWorkers   int
	harnessNoTmpfile bool
)

func newHarness(t *testing.T, rules relocate.Rules, replace Replace, noOpenat2 bool) *harness {
	t.Helper()
	rl, err := relocate.New(rules)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t}
	w, err := New(Options{Relocator: rl, Replace: replace, Report: func(e *FileError) { h.errs = append(h.errs, e) },
		noOpenat2: noOpenat2, Workers: harnessWorkers, noTmpfile: harnessNoTmpfile})
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	return h
}

func (h *harness) restore(items ...item) {
	h.t.Helper()
	for _, it := range items {
		if err := h.w.Restore(context.Background(), it.m, bytes.NewReader(it.pax)); err != nil {
			h.t.Fatalf("Restore(%q): %v", it.m.Path, err)
		}
	}
	h.w.drain() // with workers: what the test looks at next is written
}

// errorFor returns the reported error of the member path (nil if none).
func (h *harness) errorFor(path string) *FileError {
	for _, e := range h.errs {
		if e.Path == path {
			return e
		}
	}
	return nil
}

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// tempFiles lists temporary files left anywhere under root.
func tempFiles(t *testing.T, root string) []string {
	t.Helper()
	var left []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tapeward-restore-") {
			left = append(left, p)
		}
		return nil
	})
	return left
}

func rnd(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := testtree.Rand(seed)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestRestoreEveryType(t *testing.T) {
	for _, walk := range []bool{false, true} {
		name := "openat2"
		if walk {
			name = "nofollow-walk"
		}
		t.Run(name, func(t *testing.T) { testEveryType(t, walk) })
	}
}

func testEveryType(t *testing.T, walk bool) {
	base := time.Date(2026, 11, 3, 10, 0, 0, 123456789, time.UTC)
	mt := func(h int) time.Time { return base.Add(time.Duration(h) * time.Hour) }
	big := rnd(1, 3<<20+17)
	sparseData := append(rnd(2, 64<<10), rnd(3, 64<<10)...)
	const sparseSize = 64 << 20
	ms := []archive.Member{
		{Path: "/home", Type: archive.TypeDir, Mode: 0o755, Mtime: mt(1)},
		{Path: "/home/ann", Type: archive.TypeDir, Mode: 0o750, UID: 1000, GID: 1000, Mtime: mt(2)},
		{Path: "/home/ann/notes.txt", Type: archive.TypeReg, Size: 6, Mode: 0o640, UID: 1000, GID: 100, Mtime: mt(3),
			Xattrs: map[string]string{"user.color": "blue\x00bin"}, Dev: 1, Ino: 10, Nlink: 2},
		{Path: "/home/ann/empty", Type: archive.TypeReg, Mode: 0o600, Mtime: mt(4)},
		{Path: "/home/ann/big.bin", Type: archive.TypeReg, Size: int64(len(big)), Mode: 0o4755, Mtime: mt(5)},
		{Path: "/home/ann/sparse.img", Type: archive.TypeReg, Size: sparseSize, Mode: 0o644, Mtime: mt(6),
			Sparse: []archive.Span{{Offset: 0, Length: 64 << 10}, {Offset: 32 << 20, Length: 64 << 10}}},
		{Path: "/home/ann/link-to-notes", Type: archive.TypeSymlink, Linkname: "notes.txt", Mode: 0o777, Mtime: mt(7)},
		{Path: "/home/ann/dangling", Type: archive.TypeSymlink, Linkname: "/etc/nonexistent/x", Mtime: mt(7)},
		{Path: "/home/ann/hard", Type: archive.TypeReg, Mode: 0o640, Mtime: mt(3), Dev: 1, Ino: 10, Nlink: 2},
		{Path: "/home/ann/fifo", Type: archive.TypeFifo, Mode: 0o620, Mtime: mt(8)},
		{Path: "/home/ann/null", Type: archive.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, Mtime: mt(9)},
		{Path: "/home/ann/sub/deeper", Type: archive.TypeDir, Mode: 0o700, Mtime: mt(10)},
		{Path: "/home/ann/sub", Type: archive.TypeDir, Mode: 0o751, Mtime: mt(11)}, // after its child (another job)
		{Path: "/home/ann/sub/deeper/f", Type: archive.TypeReg, Size: 3, Mode: 0o444, Mtime: mt(12)},
		{Path: "/home/ann/odd\nname\xff", Type: archive.TypeReg, Size: 1, Mode: 0o644, Mtime: mt(13)},
	}
	data := [][]byte{nil, nil, []byte("hello\n"), nil, big, sparseData, nil, nil, nil, nil, nil, nil, nil, []byte("abc"), []byte("x")}
	items := archiveOf(t, ms, data)
	if items[8].m.Type != "link" {
		t.Fatalf("the second path of the inode is a %s, want a hard link", items[8].m.Type)
	}
	where := filepath.Join(t.TempDir(), "r")
	h := newHarness(t, relocate.Rules{Where: where}, ReplaceAlways, walk)
	h.restore(items...)
	h.w.Close()
	if len(h.errs) > 0 {
		t.Fatalf("errors: %v", h.errs)
	}
	if st := h.w.Stats(); st.Files != int64(len(items)) || st.Bytes != 6+int64(len(big))+sparseSize+3+1 || st.Errors != 0 {
		t.Errorf("stats %+v", st)
	}
	for i, m := range ms {
		p := where + strings.TrimSuffix(m.Path, "/")
		st := lstat(t, p)
		if got, want := st.Mtim.Nano(), m.Mtime.UnixNano(); got != want {
			t.Errorf("%q: mtime %v, want %v", m.Path, time.Unix(0, got).UTC(), m.Mtime)
		}
		if m.Type != archive.TypeSymlink && st.Mode&0o7777 != uint32(m.Mode) && items[i].m.Type != "link" {
			t.Errorf("%q: mode %04o, want %04o", m.Path, st.Mode&0o7777, m.Mode)
		}
		if int64(st.Uid) != m.UID || int64(st.Gid) != m.GID {
			if items[i].m.Type != "link" {
				t.Errorf("%q: owner %d:%d, want %d:%d", m.Path, st.Uid, st.Gid, m.UID, m.GID)
			}
		}
		switch items[i].m.Type {
		case "file":
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(b) != [32]byte(items[i].m.SHA256) {
				t.Errorf("%q: content differs", m.Path)
			}
		case "symlink":
			l, _ := os.Readlink(p)
			if l != m.Linkname {
				t.Errorf("%q: symlink to %q, want %q", m.Path, l, m.Linkname)
			}
		case "fifo":
			if st.Mode&unix.S_IFMT != unix.S_IFIFO {
				t.Errorf("%q: not a fifo", m.Path)
			}
		case "char":
			if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
				t.Errorf("%q: not char device 1,3 (mode %o rdev %d)", m.Path, st.Mode, st.Rdev)
			}
		case "dir":
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				t.Errorf("%q: not a directory", m.Path)
			}
		}
	}
	a, b := lstat(t, where+"/home/ann/notes.txt"), lstat(t, where+"/home/ann/hard")
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hard link: inodes %d and %d, nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(where+"/home/ann/notes.txt", "user.color", buf)
	if err != nil || string(buf[:n]) != "blue\x00bin" {
		t.Errorf("xattr user.color = %q, %v", buf[:n], err)
	}
	sp := lstat(t, where+"/home/ann/sparse.img")
	if sp.Size != sparseSize || sp.Blocks*512 > 1<<20 {
		t.Errorf("sparse file: size %d, %d bytes allocated (want %d, holes kept: at most 1 MiB)", sp.Size, sp.Blocks*512, sparseSize)
	}
	if left := tempFiles(t, where); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

// TestRestoreParentsCreated: a file restored alone gets its parents
// made 0700 while restoring and, with no record of them, the default
// mode at the end; recorded parents get their attributes.
func TestRestoreParentsCreated(t *testing.T) {
	items := archiveOf(t, []archive.Member{
		{Path: "/srv/www/a/b/index.html", Type: archive.TypeReg, Size: 2, Mode: 0o644, Mtime: time.Unix(1e9, 0)},
		{Path: "/srv/www", Type: archive.TypeDir, Mode: 0o710, Mtime: time.Unix(1e9+5, 0)},
	}, [][]byte{[]byte("hi")})
	where := filepath.Join(t.TempDir(), "r")
	h := newHarness(t, relocate.Rules{Where: where}, ReplaceAlways, false)
	h.restore(items[0])
	if st := lstat(t, where+"/srv/www/a"); st.Mode&0o777 != 0o700 {
		t.Errorf("a parent made while restoring has mode %04o, want 0700", st.Mode&0o777)
	}
	h.restore(items[1])
	h.w.Close()
	if len(h.errs) > 0 {
		t.Fatal(h.errs)
	}
	if st := lstat(t, where+"/srv/www"); st.Mode&0o777 != 0o710 || st.Mtim.Sec != 1e9+5 {
		t.Errorf("/srv/www: mode %04o mtime %d, want the record's 0710 and %d", st.Mode&0o777, st.Mtim.Sec, int64(1e9+5))
	}
	want := 0o777 &^ readUmask()
	if st := lstat(t, where+"/srv/www/a/b"); st.Mode&0o777 != want {
		t.Errorf("a parent with no record: mode %04o, want %04o", st.Mode&0o777, want)
	}
}

// A parent directory the plan added is restored from its record alone
// (FromRecord, no pax bytes): created with the record's attributes. Only
// a directory may come without bytes.
func TestRestoreFromRecord(t *testing.T) {
	items := archiveOf(t, []archive.Member{
		{Path: "/srv/www/index.html", Type: archive.TypeReg, Size: 2, Mode: 0o644, Mtime: time.Unix(1e9, 0)},
	}, [][]byte{[]byte("hi")})
	where := filepath.Join(t.TempDir(), "r")
	h := newHarness(t, relocate.Rules{Where: where}, ReplaceAlways, false)
	dir := item{m: Member{Path: "/srv/www/", Type: "dir", Mode: 0o751, MtimeNs: 1e9 * 1e9, FromRecord: true}}
	h.restore(dir, items[0])
	noBytes := items[0]
	noBytes.m.Path, noBytes.m.FromRecord, noBytes.pax = "/srv/other.html", true, nil
	h.restore(noBytes)
	h.w.Close()
	if st := lstat(t, where+"/srv/www"); st.Mode&0o777 != 0o751 || st.Mtim.Sec != 1e9 {
		t.Errorf("/srv/www from its record: mode %04o mtime %d, want 0751 and %d", st.Mode&0o777, st.Mtim.Sec, int64(1e9))
	}
	if b, err := os.ReadFile(where + "/srv/www/index.html"); err != nil || string(b) != "hi" {
		t.Errorf("the file below it: %q, %v", b, err)
	}
	if e := h.errorFor("/srv/other.html"); e == nil || e.Op != "refused" || !strings.Contains(e.Message, "only a directory") {
		t.Errorf("a file without bytes: %v, want refused (only a directory is restored from its record)", e)
	}
	if _, err := os.Lstat(where + "/srv/other.html"); !os.IsNotExist(err) {
		t.Errorf("a file without bytes was written: %v", err)
	}
}

func TestRestoreReplace(t *testing.T) {
	disk := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		replace  Replace
		backup   time.Time
		replaced bool
	}{
		{ReplaceAlways, disk.Add(-time.Hour), true},
		{ReplaceAlways, disk.Add(time.Hour), true},
		{ReplaceNever, disk.Add(time.Hour), false},
		{ReplaceNever, disk.Add(-time.Hour), false},
		{ReplaceIfNewer, disk.Add(time.Hour), true},
		{ReplaceIfNewer, disk.Add(-time.Hour), false},
		{ReplaceIfNewer, disk, false},
		{ReplaceIfOlder, disk.Add(-time.Hour), true},
		{ReplaceIfOlder, disk.Add(time.Hour), false},
	} {
		t.Run(c.replace.String()+"/"+c.backup.Sub(disk).String(), func(t *testing.T) {
			where := t.TempDir()
			p := filepath.Join(where, "etc/hosts")
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("on disk\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, disk, disk); err != nil {
				t.Fatal(err)
			}
			items := archiveOf(t, []archive.Member{
				{Path: "/etc/hosts", Type: archive.TypeReg, Size: 11, Mode: 0o644, Mtime: c.backup},
				{Path: "/etc/new", Type: archive.TypeReg, Size: 3, Mode: 0o644, Mtime: c.backup},
			}, [][]byte{[]byte("from backup"), []byte("new")})
			h := newHarness(t, relocate.Rules{Where: where}, c.replace, false)
			h.restore(items...)
			h.w.Close()
			if len(h.errs) > 0 {
				t.Fatal(h.errs)
			}
			got, _ := os.ReadFile(p)
			want := "on disk\n"
			if c.replaced {
				want = "from backup"
			}
			if string(got) != want {
				t.Errorf("replace=%s, backup %v, disk %v: file holds %q, want %q", c.replace, c.backup, disk, got, want)
			}
			if b, _ := os.ReadFile(filepath.Join(where, "etc/new")); string(b) != "new" {
				t.Errorf("a file not on disk is restored whatever replace= says: got %q", b)
			}
			st := h.w.Stats()
			if skipped := int64(1); c.replaced {
				if st.Skipped != 0 || st.Files != 2 {
					t.Errorf("stats %+v, want 2 files, 0 skipped", st)
				}
			} else if st.Skipped != skipped || st.Files != 1 {
				t.Errorf("stats %+v, want 1 file, 1 skipped", st)
			}
		})
	}
	if _, err := ParseReplace("sometimes"); err == nil || !strings.Contains(err.Error(), "always, ifnewer, ifolder or never") {
		t.Errorf("ParseReplace(sometimes): %v", err)
	}
}

// TestRestoreHostile: nothing is ever written outside the target.
func TestRestoreHostile(t *testing.T) {
	for _, walk := range []bool{false, true} {
		t.Run(map[bool]string{false: "openat2", true: "nofollow-walk"}[walk], func(t *testing.T) { testHostile(t, walk) })
	}
}

func testHostile(t *testing.T, walk bool) {
	dir := t.TempDir()
	where := filepath.Join(dir, "r")
	outside := filepath.Join(dir, "outside")
	if err := os.MkdirAll(filepath.Join(outside, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "etc/passwd"), []byte("root:x:0:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := testtree.Take(outside)
	if err != nil {
		t.Fatal(err)
	}
	// A symlink planted in the target: r/etc → outside/etc.
	if err := os.MkdirAll(where, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "etc"), filepath.Join(where, "etc")); err != nil {
		t.Fatal(err)
	}
	mt := time.Unix(2e9, 0)
	file := func(p string) archive.Member {
		return archive.Member{Path: p, Type: archive.TypeReg, Size: 4, Mode: 0o644, Mtime: mt}
	}
	x := []byte("evil")
	items := archiveOf(t, []archive.Member{
		file("/etc/passwd"),     // 0: through the planted symlink
		file("/etc/cron.d/job"), // 1: a directory to make through it
		file("/x"),              // 2: its record will be renamed ../../x
		file("/ok/a"),           // 3: its header will differ from its record
		{Path: "/esc", Type: archive.TypeSymlink, Linkname: outside, Mtime: mt}, // 4: a symlink out, restored as a symlink
		file("/esc/etc/passwd"), // 5: through the symlink the restore just made
		file("/esc"),            // 6: a file over that symlink: replaces the link, not its target
		file("/fine/y"),         // 7: an honest file
		{Path: "/fine/y/z", Type: archive.TypeDir, Mtime: mt}, // 8: under a file
	}, [][]byte{x, x, x, x, nil, x, x, x})
	items[2].m.Path = "../../x" // a record naming ../../x
	items[3].m.Path = "/ok/b"   // the header says /ok/a
	h := newHarness(t, relocate.Rules{Where: where}, ReplaceAlways, walk)
	h.restore(items...)
	// A member whose header itself names ../../x (and the record too).
	var evil bytes.Buffer
	tw := archive.NewWriter(&evil)
	rec, err := tw.WriteMember(file("/placeholder"), bytes.NewReader(x))
	if err != nil {
		t.Fatal(err)
	}
	raw := bytes.Replace(evil.Bytes()[:512], []byte("/placeholder"), []byte("../../xyzzy!"), 1)
	fixChecksum(raw)
	m := memberOf(rec)
	m.Path = "../../xyzzy!"
	h.restore(item{m: m, pax: append(raw, evil.Bytes()[512:]...)})
	h.w.Close()

	for _, c := range []struct{ path, op, says string }{
		{"/etc/passwd", "refused", "is a symlink: never followed"},
		{"/etc/cron.d/job", "refused", "is a symlink: never followed"},
		{"../../x", "refused", `has a ".." element`},
		{"/ok/b", "refused", `header names "/ok/a", not the record's path "/ok/b"`},
		{"/esc/etc/passwd", "refused", "is a symlink: never followed"},
		{"/fine/y/z/", "refused", "is a file, not a directory"},
		{"../../xyzzy!", "refused", `has a ".." element`},
	} {
		e := h.errorFor(c.path)
		if e == nil {
			t.Errorf("%q: no error, want %s (%s)", c.path, c.op, c.says)
			continue
		}
		if e.Op != c.op || !strings.Contains(e.Message, c.says) {
			t.Errorf("%q: error %v, want op %s saying %q", c.path, e, c.op, c.says)
		}
	}
	if len(h.errs) != 7 {
		t.Errorf("%d errors, want 7: %v", len(h.errs), h.errs)
	}
	after, err := testtree.Take(outside)
	if err != nil {
		t.Fatal(err)
	}
	if !sameTree(before, after) {
		t.Errorf("the directory outside the target changed:\nbefore %v\nafter %v", before, after)
	}
	for _, p := range []string{filepath.Join(dir, "x"), filepath.Join(filepath.Dir(dir), "x"), filepath.Join(dir, "xyzzy!")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was written", p)
		}
	}
	if st := lstat(t, filepath.Join(where, "esc")); st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("r/esc: mode %o, want the regular file that replaced the symlink", st.Mode)
	}
	if b, _ := os.ReadFile(filepath.Join(where, "fine/y")); string(b) != "evil" {
		t.Errorf("the honest file: %q", b)
	}
	if left := tempFiles(t, dir); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

func sameTree(a, b testtree.Snapshot) bool {
	if len(a) != len(b) {
		return false
	}
	for p, e := range a {
		f, ok := b[p]
		if !ok || e.Type != f.Type || e.Size != f.Size || e.SHA256 != f.SHA256 || e.Mode != f.Mode || !e.Mtime.Equal(f.Mtime) || e.Link != f.Link {
			return false
		}
	}
	return true
}

// fixChecksum recomputes a ustar header block's checksum.
func fixChecksum(blk []byte) {
	copy(blk[148:156], "        ")
	sum := 0
	for _, c := range blk[:512] {
		sum += int(c)
	}
	s := []byte("0000000\x00")
	for i := 5; i >= 0; i-- {
		s[i] = byte('0' + sum&7)
		sum >>= 3
	}
	copy(blk[148:156], append(s[:6], 0, ' '))
}

func TestRestoreDigestMismatch(t *testing.T) {
	data := rnd(7, 300000)
	items := archiveOf(t, []archive.Member{
		{Path: "/data/report.pdf", Type: archive.TypeReg, Size: int64(len(data)), Mode: 0o644, Mtime: time.Unix(1e9, 0)},
		{Path: "/data/ok.txt", Type: archive.TypeReg, Size: 2, Mode: 0o644, Mtime: time.Unix(1e9, 0)},
	}, [][]byte{data, []byte("ok")})
	bad := bytes.Clone(items[0].pax)
	bad[len(bad)-1000] ^= 0x01 // a byte of the data (the last block is data and padding)
	items[0].pax = bad
	where := t.TempDir()
	h := newHarness(t, relocate.Rules{Where: where}, ReplaceAlways, false)
	// A file already under the real name stays as it was.
	if err := os.MkdirAll(filepath.Join(where, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(where, "data/report.pdf"), []byte("older"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.restore(items...)
	h.w.Close()
	e := h.errorFor("/data/report.pdf")
	if e == nil || e.Op != "digest" || e.Target != filepath.Join(where, "data/report.pdf") || !strings.Contains(e.Error(), `"/data/report.pdf"`) {
		t.Fatalf("error %v, want a digest error naming /data/report.pdf and its target", e)
	}
	if b, _ := os.ReadFile(filepath.Join(where, "data/report.pdf")); string(b) != "older" {
		t.Errorf("the real name holds %d bytes, want the file that was there", len(b))
	}
	if b, _ := os.ReadFile(filepath.Join(where, "data/ok.txt")); string(b) != "ok" {
		t.Errorf("the next file: %q", b)
	}
	if left := tempFiles(t, where); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
	if st := h.w.Stats(); st.Errors != 1 || st.Files != 1 {
		t.Errorf("stats %+v", st)
	}
}

// blockingReader yields its bytes, then blocks until ctx ends.
type blockingReader struct {
	ctx     context.Context
	r       io.Reader
	drained chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		close(b.drained)
		<-b.ctx.Done()
		return 0, b.ctx.Err()
	}
	return n, err
}

func TestRestoreCancel(t *testing.T) {
	data := rnd(9, 4<<20)
	items := archiveOf(t, []archive.Member{
		{Path: "/big", Type: archive.TypeReg, Size: int64(len(data)), Mode: 0o644, Mtime: time.Unix(1e9, 0)},
	}, [][]byte{data})
	where := t.TempDir()
	h := newHarness(t, relocate.Rules{Where: where}, ReplaceAlways, false)
	ctx, cancel := context.WithCancel(context.Background())
	br := &blockingReader{ctx: ctx, r: bytes.NewReader(items[0].pax[:2<<20]), drained: make(chan struct{})}
	done := make(chan error)
	go func() { done <- h.w.Restore(ctx, items[0].m, br) }()
	<-br.drained
	want := 0 // an unnamed file (O_TMPFILE)
	if harnessNoTmpfile || h.w.noTmpfile.Load() {
		want = 1
	}
	if left := tempFiles(t, where); len(left) != want {
		t.Fatalf("while writing: temporary files %q, want %d", left, want)
	}
	if _, err := os.Lstat(filepath.Join(where, "big")); err == nil {
		t.Fatal("while writing: the file is under its real name")
	}
	cancel()
	err := <-done
	h.w.Close()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Restore after cancel: %v, want context.Canceled", err)
	}
	if left := tempFiles(t, where); len(left) > 0 {
		t.Errorf("temporary files left after cancel: %q", left)
	}
	if _, err := os.Lstat(filepath.Join(where, "big")); err == nil {
		t.Error("the cancelled file exists under its real name")
	}
	if len(h.errs) != 0 {
		t.Errorf("a cancellation is not a file error: %v", h.errs)
	}
}

// TestRestoreBoundedMemory: a 256 MiB file is streamed through, not
// buffered.
func TestRestoreBoundedMemory(t *testing.T) {
	const size = 256 << 20
	pr, pw := io.Pipe()
	recs := make(chan archive.Record, 1)
	go func() {
		w := archive.NewWriter(pw)
		rec, err := w.WriteMember(archive.Member{Path: "/huge", Type: archive.TypeReg, Size: size, Mode: 0o644, Mtime: time.Unix(1e9, 0)},
			io.LimitReader(randReader{testtree.Rand(5)}, size))
		recs <- rec
		pw.CloseWithError(err)
	}()
	// The digest is known only once the bytes are written: compute it
	// from the same random source first.
	hsh := sha256.New()
	io.Copy(hsh, io.LimitReader(randReader{testtree.Rand(5)}, size))
	where := t.TempDir()
	h := newHarness(t, relocate.Rules{Where: where}, ReplaceAlways, false)
	m := Member{Path: "/huge", Type: "file", Size: size, Mode: 0o644, MtimeNs: 1e18, SHA256: hsh.Sum(nil)}
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	if err := h.w.Restore(context.Background(), m, pr); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&ms1)
	<-recs
	h.w.Close()
	if len(h.errs) > 0 {
		t.Fatal(h.errs)
	}
	// The archive writer on the other side of the pipe allocates its
	// own buffers (2 MiB); the restore a few more.
	if alloc := ms1.TotalAlloc - ms0.TotalAlloc; alloc > 16<<20 {
		t.Errorf("restoring a %d MiB file allocated %d MiB", size>>20, alloc>>20)
	}
	if st := lstat(t, filepath.Join(where, "huge")); st.Size != size {
		t.Errorf("size %d", st.Size)
	}
}

type randReader struct{ r *rand.Rand }

func (r randReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.r.Uint64())
	}
	return len(p), nil
}

// TestRestoreNotRoot: without root, owners are left as they are,
// devices are a FileError and only user.* xattrs are set.
func TestRestoreNotRoot(t *testing.T) {
	mt := time.Unix(1.5e9, 0)
	items := archiveOf(t, []archive.Member{
		{Path: "/f", Type: archive.TypeReg, Size: 1, Mode: 0o640, UID: 4242, GID: 4343, Mtime: mt,
			Xattrs: map[string]string{"user.a": "1", "trusted.b": "2"}},
		{Path: "/dev-null", Type: archive.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, Mtime: mt},
		{Path: "/fifo", Type: archive.TypeFifo, Mode: 0o600, Mtime: mt},
	}, [][]byte{[]byte("x")})
	where := t.TempDir()
	rl, err := relocate.New(relocate.Rules{Where: where})
	if err != nil {
		t.Fatal(err)
	}
	var errs []*FileError
	asRoot := false
	w, err := New(Options{Relocator: rl, AsRoot: &asRoot, Report: func(e *FileError) { errs = append(errs, e) }})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if err := w.Restore(context.Background(), it.m, bytes.NewReader(it.pax)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	if len(errs) != 1 || errs[0].Path != "/dev-null" || errs[0].Op != "mknod" || !strings.Contains(errs[0].Message, "only be made by root") {
		t.Fatalf("errors %v, want only the device refused (mknod, not root)", errs)
	}
	st := lstat(t, filepath.Join(where, "f"))
	if st.Uid == 4242 || st.Mode&0o777 != 0o640 {
		t.Errorf("f: owner %d mode %04o: want the restoring user's and 0640", st.Uid, st.Mode&0o777)
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(where, "f"), "user.a", buf); err != nil || string(buf[:n]) != "1" {
		t.Errorf("user.a: %q %v", buf[:max(n, 0)], err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(where, "f"), "trusted.b", buf); err == nil {
		t.Error("trusted.b was set though not restoring as root")
	}
	if st := lstat(t, filepath.Join(where, "fifo")); st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Error("the fifo was not made")
	}
}

// TestRestoreTypeChanges: with replace=always a file takes the place of
// an empty directory (not of a non-empty one: an error), a directory
// that of a file, and a directory the restore made for a child that
// then failed can be replaced by a file.
func TestRestoreTypeChanges(t *testing.T) {
	mt := time.Unix(1.6e9, 0)
	where := t.TempDir()
	for _, d := range []string{"empty", "full/inside"} {
		if err := os.MkdirAll(filepath.Join(where, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(where, "was-file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	items := archiveOf(t, []archive.Member{
		{Path: "/empty", Type: archive.TypeReg, Size: 1, Mode: 0o644, Mtime: mt},
		{Path: "/full", Type: archive.TypeReg, Size: 1, Mode: 0o644, Mtime: mt},
		{Path: "/was-file", Type: archive.TypeDir, Mode: 0o755, Mtime: mt},
		{Path: "/made/child", Type: archive.TypeReg, Size: 1, Mode: 0o644, Mtime: mt},
		{Path: "/made", Type: archive.TypeReg, Size: 1, Mode: 0o644, Mtime: mt},
	}, [][]byte{[]byte("a"), []byte("b"), nil, []byte("c"), []byte("d")})
	items[3].m.SHA256[0] ^= 1 // the child fails: /made stays empty
	h := newHarness(t, relocate.Rules{Where: where}, ReplaceAlways, false)
	h.restore(items...)
	h.w.Close()
	if e := h.errorFor("/full"); e == nil || e.Op != "replace" {
		t.Errorf("/full over a non-empty directory: %v, want a replace error", e)
	}
	if e := h.errorFor("/made/child"); e == nil || e.Op != "digest" {
		t.Errorf("/made/child: %v, want a digest error", e)
	}
	if len(h.errs) != 2 {
		t.Errorf("errors %v, want 2", h.errs)
	}
	for p, want := range map[string]string{"empty": "a", "made": "d"} {
		if b, err := os.ReadFile(filepath.Join(where, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", p, b, err, want)
		}
	}
	if fi, err := os.Lstat(filepath.Join(where, "was-file")); err != nil || !fi.IsDir() || !fi.ModTime().Equal(mt) {
		t.Errorf("was-file: %v %v, want a directory with the record's mtime", fi, err)
	}
}

// TestChmodOPath: the chmod of kernels without fchmodat2 changes a fifo
// and refuses a symlink (its target keeps its mode).
func TestChmodOPath(t *testing.T) {
	dir := t.TempDir()
	fd := openDirFd(t, dir)
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "victim"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("victim", filepath.Join(dir, "sym")); err != nil {
		t.Fatal(err)
	}
	if err := chmodOPath(fd, "fifo", 0o4751); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, filepath.Join(dir, "fifo")); st.Mode&0o7777 != 0o4751 {
		t.Errorf("fifo mode %04o", st.Mode&0o7777)
	}
	if err := chmodOPath(fd, "sym", 0o777); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("chmod of a symlink: %v, want refused", err)
	}
	if st := lstat(t, filepath.Join(dir, "victim")); st.Mode&0o777 != 0o600 {
		t.Errorf("the symlink's target became %04o", st.Mode&0o777)
	}
}

// TestRestoreNamedTemporaries runs the restore tests again as on a file
// system without O_TMPFILE: each file is written to a temporary name.
func TestRestoreNamedTemporaries(t *testing.T) {
	harnessNoTmpfile = true
	defer func() { harnessNoTmpfile = false }()
	runRestoreTests(t)
}

// TestRestoreWithWorkers runs the restore tests again with small files
// written by two workers (Options.Workers).
func TestRestoreWithWorkers(t *testing.T) {
	harnessWorkers = 2
	defer func() { harnessWorkers = 0 }()
	runRestoreTests(t)
}

// runRestoreTests runs the tests that write through newHarness.
func runRestoreTests(t *testing.T) {
	for _, c := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"EveryType", TestRestoreEveryType}, {"ParentsCreated", TestRestoreParentsCreated}, {"FromRecord", TestRestoreFromRecord},
		{"Replace", TestRestoreReplace}, {"Hostile", TestRestoreHostile}, {"DigestMismatch", TestRestoreDigestMismatch},
		{"Cancel", TestRestoreCancel}, {"TypeChanges", TestRestoreTypeChanges}, {"ManySmall", testRestoreManySmall},
		{"AgainInNewDirectory", TestRestoreAgainInNewDirectory},
	} {
		t.Run(c.name, c.f)
	}
}

// TestRestoreAgainInNewDirectory: in a directory the restore made, a
// name is written without a look first — except one the restore has
// already written: with replace=never a path's second member is kept
// out (skipped), a file, a symlink and a directory alike, and the
// directory member of a parent made earlier gets its attributes.
func TestRestoreAgainInNewDirectory(t *testing.T) {
	ms := []archive.Member{
		{Path: "/n/deep/f", Type: archive.TypeReg, Size: 5, Mode: 0o640, Mtime: time.Unix(1e9, 0)},
		{Path: "/n/deep/s", Type: archive.TypeSymlink, Linkname: "f", Mode: 0o777, Mtime: time.Unix(1e9, 0)},
		{Path: "/n/deep/f", Type: archive.TypeReg, Size: 6, Mode: 0o600, Mtime: time.Unix(2e9, 0)},
		{Path: "/n/deep/s", Type: archive.TypeSymlink, Linkname: "elsewhere", Mode: 0o777, Mtime: time.Unix(2e9, 0)},
		{Path: "/n/deep/", Type: archive.TypeDir, Mode: 0o751, Mtime: time.Unix(1e9, 0)},
	}
	data := [][]byte{[]byte("first"), nil, []byte("second"), nil, nil}
	where := t.TempDir()
	h := newHarness(t, relocate.Rules{Where: where}, ReplaceNever, false)
	h.restore(archiveOf(t, ms, data)...)
	h.w.Close()
	if len(h.errs) != 0 {
		t.Fatalf("errors: %v", h.errs)
	}
	if got, err := os.ReadFile(filepath.Join(where, "n/deep/f")); err != nil || string(got) != "first" {
		t.Errorf("n/deep/f holds %q (%v); replace=never keeps the first copy", got, err)
	}
	if got, err := os.Readlink(filepath.Join(where, "n/deep/s")); err != nil || got != "f" {
		t.Errorf("n/deep/s links to %q (%v); replace=never keeps the first", got, err)
	}
	if st := lstat(t, filepath.Join(where, "n/deep")); st.Mode&0o7777 != 0o751 {
		t.Errorf("n/deep: mode %o, want the member's 751", st.Mode&0o7777)
	}
	if st := h.w.Stats(); st.Skipped != 2 || st.Files != 3 {
		t.Errorf("stats %+v, want 3 files and 2 skipped", st)
	}
}

// testRestoreManySmall: small files in several directories, one written
// twice, hard links to some (next to them: no change of directory
// waits for the files in flight) and a file with a wrong digest, in one
// restore: every file as recorded, the link targets written before the
// links, the later copy of the twice-written path kept, the bad one
// reported under its path and absent, no temporary file left.
func testRestoreManySmall(t *testing.T) {
	var ms []archive.Member
	var data [][]byte
	for i := range 300 {
		ms = append(ms, archive.Member{Path: fmt.Sprintf("/d%d/f%03d", i/50, i), Type: archive.TypeReg, Size: 4096, Mode: 0o640,
			Mtime: time.Unix(1e9+int64(i), 0)})
		data = append(data, rnd(uint64(i), 4096))
		if i%50 == 49 {
			ms = append(ms, archive.Member{Path: fmt.Sprintf("/d%d/link%03d", i/50, i), Type: archive.TypeLink,
				Linkname: fmt.Sprintf("/d%d/f%03d", i/50, i), Mode: 0o640, Mtime: time.Unix(1e9, 0)})
			data = append(data, nil)
		}
	}
	ms = append(ms, archive.Member{Path: "/d5/f298", Type: archive.TypeReg, Size: 5, Mode: 0o600, Mtime: time.Unix(2e9, 0)})
	data = append(data, []byte("again"))
	items := archiveOf(t, ms, data)
	bad := items[10]
	bad.m.SHA256 = bytes.Repeat([]byte{1}, sha256.Size)
	items[10] = bad
	where := t.TempDir()
	h := newHarness(t, relocate.Rules{Where: where}, ReplaceAlways, false)
	h.restore(items...)
	h.w.Close()
	if len(h.errs) != 1 || h.errs[0].Path != bad.m.Path || h.errs[0].Op != "digest" {
		t.Fatalf("errors %v, want one digest error for %s", h.errs, bad.m.Path)
	}
	if _, err := os.Lstat(filepath.Join(where, bad.m.Path)); err == nil {
		t.Errorf("%s, whose digest is wrong, was written", bad.m.Path)
	}
	for i, m := range ms {
		p := filepath.Join(where, m.Path)
		switch {
		case m.Path == bad.m.Path || m.Path == "/d5/f298":
			continue
		case m.Type == archive.TypeLink:
			if a, b := lstat(t, p), lstat(t, filepath.Join(where, m.Linkname)); a.Ino != b.Ino {
				t.Errorf("%s is not a hard link to %s", m.Path, m.Linkname)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, data[i]) {
			t.Fatalf("%s: %d bytes (%v), not its data", m.Path, len(got), err)
		}
		if st := lstat(t, p); st.Mode&0o7777 != 0o640 || st.Mtim.Sec != m.Mtime.Unix() {
			t.Errorf("%s: mode %o, mtime %d; want 640, %d", m.Path, st.Mode&0o7777, st.Mtim.Sec, m.Mtime.Unix())
		}
	}
	if got, err := os.ReadFile(filepath.Join(where, "d5/f298")); err != nil || string(got) != "again" {
		t.Errorf("/d3/f003 written twice holds %q (%v), want the later copy", got, err)
	}
	if st := h.w.Stats(); st.Files != int64(len(ms)-1) || st.Errors != 1 {
		t.Errorf("stats %+v, want %d files and 1 error", st, len(ms)-1)
	}
	if left := tempFiles(t, where); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

// TestLinkThroughProc: an unnamed file gets its name through
// /proc/self/fd, as filed running without root links it.
func TestLinkThroughProc(t *testing.T) {
	dir := t.TempDir()
	pfd := openDirFd(t, dir)
	fd, err := unix.Openat(pfd, ".", unix.O_WRONLY|unix.O_TMPFILE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatalf("O_TMPFILE in %s: %v", dir, err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte("unnamed")); err != nil {
		t.Fatal(err)
	}
	if err := linkThroughProc(fd, pfd, "named"); err != nil {
		t.Fatalf("linkThroughProc: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "named")); err != nil || string(b) != "unnamed" {
		t.Fatalf("named: %q %v, want the unnamed file's bytes", b, err)
	}
	if err := linkThroughProc(fd, pfd, "named"); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("linking over an existing name: %v, want EEXIST (writeFile then renames)", err)
	}
}

// openDirFd opens dir for the *at calls, closed when the test ends.
func openDirFd(t *testing.T, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// TestWriteWhole: a worker's small file (writeWhole). Its digest is
// checked before a name is made (a mismatch leaves nothing); a name
// taken since the restore decided it was free (something else writing
// in the target) is replaced as after a look; in a directory the
// restore made, the file gets its mode — set-id bits and all — and its
// owner whether or not it was created with them.
func TestWriteWhole(t *testing.T) {
	where := t.TempDir()
	h := newHarness(t, relocate.Rules{Where: where}, ReplaceAlways, false)
	defer h.w.Close()
	pfd := openDirFd(t, where)
	fs := &fileState{buf: make([]byte, asyncMax), hash: sha256.New()}
	data := []byte("small file\n")
	sum := sha256.Sum256(data)
	member := func(name string, mode uint32, uid int64) Member {
		return Member{Path: "/" + name, Type: "file", Size: int64(len(data)), Mode: mode, UID: uid, GID: uid, MtimeNs: 1e18, SHA256: sum[:]}
	}
	check := func(name string, mode uint32, uid int64) {
		t.Helper()
		p := filepath.Join(where, name)
		if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("%s: %q %v", name, b, err)
		}
		st := lstat(t, p)
		if st.Mode&0o7777 != mode || st.Mtim.Nano() != 1e18 {
			t.Errorf("%s: mode %04o mtime %d, want %04o %d", name, st.Mode&0o7777, st.Mtim.Nano(), mode, int64(1e18))
		}
		if h.w.asRoot && (int64(st.Uid) != uid || int64(st.Gid) != uid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", name, st.Uid, st.Gid, uid, uid)
		}
	}

	bad := member("bad", 0o644, 0)
	bad.SHA256 = make([]byte, 32)
	if fe := h.w.writeWhole(context.Background(), fs, pfd, "bad", bad, data, nil, false, true); fe == nil || fe.Op != "digest" {
		t.Fatalf("a digest mismatch: %v, want a digest error", fe)
	}
	if _, err := os.Lstat(filepath.Join(where, "bad")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after a digest mismatch the name exists (%v)", err)
	}

	if err := os.WriteFile(filepath.Join(where, "taken"), []byte("another writer's"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fe := h.w.writeWhole(context.Background(), fs, pfd, "taken", member("taken", 0o640, 0), data, nil, false, true); fe != nil {
		t.Fatalf("a name taken meanwhile: %v", fe)
	}
	check("taken", 0o640, 0)

	for _, c := range []struct {
		name  string
		mode  uint32
		uid   int64
		inNew bool
	}{{"plain", 0o644, 0, true}, {"wide", 0o666, 0, true}, {"setuid", 0o4755, 0, true}, {"ann", 0o640, 1000, true}, {"elsewhere", 0o644, 1000, false}} {
		uid := c.uid
		if !h.w.asRoot {
			uid = int64(os.Getuid())
		}
		if fe := h.w.writeWhole(context.Background(), fs, pfd, c.name, member(c.name, c.mode, uid), data, nil, false, c.inNew); fe != nil {
			t.Fatalf("%s: %v", c.name, fe)
		}
		check(c.name, c.mode, uid)
	}
	if left := tempFiles(t, where); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
}
