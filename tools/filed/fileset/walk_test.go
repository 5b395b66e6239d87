//go:build linux

package fileset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOrder: byte order within a directory, depth first, a directory
// before its contents — not a sort of whole paths ("a-b" < "a/x").
func TestOrder(t *testing.T) {
	root := t.TempDir()
	mk(t, root, "aa", "a.c", "a-b", "a/x", "a/B", "Z", "a/x2/deep", "b/")
	r := walk(t, FileSet{Include: []string{root}}, WalkOptions{})
	equal(t, "order", r.rel(root), []string{".", "Z", "a", "a/B", "a/x", "a/x2", "a/x2/deep", "a-b", "a.c", "aa", "b"})
}

// TestEntryTypes: every type, with its attributes; sockets skipped
// with a note; devices made as root (else the permission error).
func TestEntryTypes(t *testing.T) {
	root := t.TempDir()
	mk(t, root, "dir/", "file")
	if err := os.Symlink("file", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(root, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	errChr := unix.Mknod(filepath.Join(root, "chr"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3)))
	errBlk := unix.Mknod(filepath.Join(root, "blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0)))
	root0 := os.Geteuid() == 0
	if !root0 {
		if !errors.Is(errChr, unix.EPERM) || !errors.Is(errBlk, unix.EPERM) {
			t.Fatalf("mknod as uid %d: %v, %v; want EPERM", os.Geteuid(), errChr, errBlk)
		}
	} else if errChr != nil || errBlk != nil {
		t.Fatalf("mknod as root: %v, %v", errChr, errBlk)
	}
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)
	if err := os.Chtimes(filepath.Join(root, "file"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(filepath.Join(root, "file"), 0o4751); err != nil {
		t.Fatal(err)
	}

	r := walk(t, FileSet{Include: []string{root}}, WalkOptions{})
	want := []string{".", "blk", "chr", "dir", "fifo", "file", "link"}
	if !root0 {
		want = []string{".", "dir", "fifo", "file", "link"}
	}
	equal(t, "entries", r.rel(root), want)
	types := map[string]Type{"dir": TypeDir, "fifo": TypeFifo, "file": TypeRegular, "link": TypeSymlink, "chr": TypeChar, "blk": TypeBlock}
	for _, e := range r.entries[1:] {
		if want := types[filepath.Base(e.Path)]; e.Type != want {
			t.Errorf("%s: type %s, want %s", e.Path, e.Type, want)
		}
	}
	if r.stats.Sockets != 1 || len(r.notes) != 1 || r.notes[0].Path != filepath.Join(root, "sock") || !strings.Contains(r.notes[0].Msg, "socket") {
		t.Errorf("socket: stats %d, notes %v", r.stats.Sockets, r.notes)
	}
	f := r.find(t, filepath.Join(root, "file"))
	st := statT(t, filepath.Join(root, "file"))
	if f.Size != int64(len("data of file")) || f.Mode != 0o4751 || !f.Mtime.Equal(mtime) || f.UID != uint32(os.Getuid()) ||
		f.Ino != st.Ino || f.Dev != st.Dev || f.Nlink != 1 || f.Ctime.IsZero() || f.Atime.IsZero() {
		t.Errorf("file entry %+v", f)
	}
	if root0 && (f.Uname != "root" || f.Gname != "root") {
		t.Errorf("names %q %q, want root root", f.Uname, f.Gname)
	}
	if ln := r.find(t, filepath.Join(root, "link")); ln.Linkname != "file" || ln.Size != 0 {
		t.Errorf("symlink %+v", ln)
	}
	if fi := r.find(t, filepath.Join(root, "fifo")); fi.Mode != 0o640 {
		t.Errorf("fifo mode %o", fi.Mode)
	}
	if root0 {
		if c := r.find(t, filepath.Join(root, "chr")); c.Rdev != unix.Mkdev(1, 3) {
			t.Errorf("chr rdev %x", c.Rdev)
		}
		if b := r.find(t, filepath.Join(root, "blk")); b.Rdev != unix.Mkdev(7, 0) {
			t.Errorf("blk rdev %x", b.Rdev)
		}
	}
	if r.stats.Dirs != 2 || r.stats.Files != 1 || r.stats.Symlinks != 1 || r.stats.Entries != int64(len(r.entries)) {
		t.Errorf("stats %+v", r.stats)
	}
}

// TestHardlinks: an inode with several links is stored once; later
// sightings name the first path; a single-link file is no hardlink.
func TestHardlinks(t *testing.T) {
	root := t.TempDir()
	mk(t, root, "a", "d/", "single")
	for _, n := range []string{"b", "d/c"} {
		if err := os.Link(filepath.Join(root, "a"), filepath.Join(root, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(filepath.Join(root, "p1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, "p1"), filepath.Join(root, "p2")); err != nil {
		t.Fatal(err)
	}
	r := walk(t, FileSet{Include: []string{root}}, WalkOptions{})
	a := r.find(t, filepath.Join(root, "a"))
	if a.Type != TypeRegular || a.Size != int64(len("data of a")) || a.Nlink != 3 {
		t.Fatalf("first sighting %+v", a)
	}
	for _, n := range []string{"b", "d/c"} {
		e := r.find(t, filepath.Join(root, n))
		if e.Type != TypeHardlink || e.Linkname != a.Path || e.Size != 0 {
			t.Errorf("%s: %s → %q size %d, want hardlink → %q size 0", n, e.Type, e.Linkname, e.Size, a.Path)
		}
	}
	if p2 := r.find(t, filepath.Join(root, "p2")); p2.Type != TypeHardlink || p2.Linkname != filepath.Join(root, "p1") {
		t.Errorf("fifo link %+v", p2)
	}
	if s := r.find(t, filepath.Join(root, "single")); s.Type != TypeRegular {
		t.Errorf("single %s", s.Type)
	}
	if r.stats.Hardlinks != 3 || r.stats.Files != 2 || r.stats.Bytes != int64(len("data of a")+len("data of single")) {
		t.Errorf("stats %+v", r.stats)
	}
}

// TestSymlinkLoops: links are never followed, so loops are harmless.
func TestSymlinkLoops(t *testing.T) {
	root := t.TempDir()
	mk(t, root, "d/")
	for name, target := range map[string]string{"a": "b", "b": "a", "self": "self", "d/up": "..", "d/root": "/"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	r := walk(t, FileSet{Include: []string{root}}, WalkOptions{})
	equal(t, "entries", r.rel(root), []string{".", "a", "b", "d", "d/root", "d/up", "self"})
	if up := r.find(t, filepath.Join(root, "d/up")); up.Type != TypeSymlink || up.Linkname != ".." {
		t.Errorf("d/up %+v", up)
	}
	if len(r.warns) != 0 {
		t.Errorf("warnings %v", r.warns)
	}
	// An include root that is a symlink is recorded as one, not followed.
	r = walk(t, FileSet{Include: []string{filepath.Join(root, "d/up")}}, WalkOptions{})
	if len(r.entries) != 1 || r.entries[0].Type != TypeSymlink {
		t.Errorf("symlink root: %v", r.paths())
	}
}

// TestOddNames: newlines, invalid UTF-8 and other bytes are preserved
// in Path and Linkname; warnings quote them to stay on one line.
func TestOddNames(t *testing.T) {
	root := t.TempDir()
	names := []string{"new\nline", "bad\xff\xfeutf8", "tab\there", " lead space", "-dash", "back\\slash", "é"}
	for _, n := range names {
		mk(t, root, n)
	}
	if err := os.Symlink("to\nwhere\xff", filepath.Join(root, "sym\n")); err != nil {
		t.Fatal(err)
	}
	r := walk(t, FileSet{Include: []string{root}}, WalkOptions{})
	equal(t, "entries", r.rel(root), []string{".", " lead space", "-dash", "back\\slash", "bad\xff\xfeutf8", "new\nline", "sym\n", "tab\there", "é"})
	for _, n := range names {
		e := r.find(t, filepath.Join(root, n))
		rd, err := OpenForBackup(e)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rd)
		rd.Close()
		if err != nil || string(b) != "data of "+n {
			t.Errorf("%q: read %q, %v", n, b, err)
		}
	}
	if s := r.find(t, filepath.Join(root, "sym\n")); s.Linkname != "to\nwhere\xff" {
		t.Errorf("linkname %q", s.Linkname)
	}
	w := Warning{Path: "/x/new\nline\xff", Op: "open", Err: unix.EACCES}
	if got := w.Error(); strings.Contains(got, "\n") || !strings.Contains(got, `"/x/new\nline\xff"`) {
		t.Errorf("warning text %q", got)
	}
	if got := (Warning{Path: "/x/é y", Op: "open", Err: unix.EACCES}).Error(); got != "open /x/é y: permission denied" {
		t.Errorf("plain warning text %q", got)
	}
}

// TestLongPath: a file whose path is exactly 4096 bytes (more than
// PATH_MAX allows in one system call) is walked, opened during the walk
// (relative to its directory) and after it (component by component).
func TestLongPath(t *testing.T) {
	root := t.TempDir()
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	cur := root
	elem := strings.Repeat("d", 200)
	for len(cur)+1+len(elem)+1+10 < 4096 {
		if err := unix.Mkdirat(fd, elem, 0o755); err != nil {
			t.Fatal(err)
		}
		nfd, err := unix.Openat(fd, elem, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd, cur = nfd, cur+"/"+elem
	}
	name := strings.Repeat("f", 4096-len(cur)-1)
	want := cur + "/" + name
	if len(want) != 4096 {
		t.Fatalf("built a path of %d bytes", len(want))
	}
	ffd, err := unix.Openat(fd, name, unix.O_CREAT|unix.O_WRONLY, 0o644)
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	unix.Write(ffd, []byte("deep"))
	unix.Close(ffd)
	t.Cleanup(func() { os.RemoveAll(root) })

	var found Entry
	var during []byte
	_, err = Walk(context.Background(), FileSet{Name: "long", Include: []string{root}, Xattrs: true}, WalkOptions{
		Warn: func(w Warning) { t.Errorf("warning: %v", w) },
	}, func(e Entry) error {
		if e.Type == TypeRegular {
			found = e
			r, err := OpenForBackup(e)
			if err != nil {
				return err
			}
			defer r.Close()
			during, err = io.ReadAll(r)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found.Path != want || string(during) != "deep" {
		t.Fatalf("found %d-byte path, read %q", len(found.Path), during)
	}
	r, err := OpenForBackup(found)
	if err != nil {
		t.Fatalf("open after the walk: %v", err)
	}
	defer r.Close()
	if b, err := io.ReadAll(r); err != nil || string(b) != "deep" || r.Changed() != nil {
		t.Fatalf("read after the walk %q, %v, changed %v", b, err, r.Changed())
	}
}

// TestMissingRootAndNested: a missing include root is a warning and the
// walk goes on; an include inside another is not walked twice, and is
// walked even under an excluded directory.
func TestMissingRootAndNested(t *testing.T) {
	root := t.TempDir()
	mk(t, root, "a/b/f", "a/g", "c/h")
	missing := filepath.Join(root, "nope")
	r := walk(t, FileSet{Include: []string{filepath.Join(root, "c"), missing, root, filepath.Join(root, "c") + "/", filepath.Join(root, "a/b")}, Exclude: []string{"a"}},
		WalkOptions{})
	equal(t, "entries", r.rel(root), []string{".", "a/b", "a/b/f", "c", "c/h"})
	if len(r.warns) != 1 || r.warns[0].Path != missing || r.stats.MissingRoots != 1 || !strings.Contains(r.warns[0].Error(), "does not exist") {
		t.Fatalf("warnings %v, stats %+v", r.warns, r.stats)
	}
	if r.stats.Excluded != 1 {
		t.Errorf("excluded %d", r.stats.Excluded)
	}
}

// TestVanishedAndReplaced: as root nothing is unreadable by mode, so
// the walk's warning paths are driven by changing the tree from the
// callback: a file removed before its lstat, a directory replaced by a
// file before it is opened. Each is a warning; the walk goes on.
func TestVanishedAndReplaced(t *testing.T) {
	root := t.TempDir()
	mk(t, root, "a", "b", "c/x", "d")
	r := result{}
	_, err := Walk(context.Background(), FileSet{Name: "t", Include: []string{root}}, WalkOptions{
		Warn: func(w Warning) { r.warns = append(r.warns, w) },
	}, func(e Entry) error {
		r.entries = append(r.entries, e)
		switch e.Path {
		case filepath.Join(root, "a"):
			return os.Remove(filepath.Join(root, "b"))
		case filepath.Join(root, "c"):
			if err := os.RemoveAll(e.Path); err != nil {
				return err
			}
			return os.WriteFile(e.Path, nil, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "entries", r.rel(root), []string{".", "a", "c", "d"})
	if len(r.warns) != 2 {
		t.Fatalf("warnings %v", r.warns)
	}
	if w := r.warns[0]; w.Path != filepath.Join(root, "b") || w.Op != "lstat" || !strings.Contains(w.Error(), "removed") {
		t.Errorf("warning 0: %v", w)
	}
	if w := r.warns[1]; w.Path != filepath.Join(root, "c") || w.Op != "open" || !errors.Is(w, unix.ENOTDIR) {
		t.Errorf("warning 1: %v", w)
	}
}

// TestSkipDirAndCancel: fs.SkipDir skips a directory's contents; fn's
// error and a cancelled context stop the walk.
func TestSkipDirAndCancel(t *testing.T) {
	root := t.TempDir()
	mk(t, root, "a/1", "a/2", "b/3")
	var got []string
	_, err := Walk(context.Background(), FileSet{Name: "t", Include: []string{root}}, WalkOptions{}, func(e Entry) error {
		got = append(got, e.Path)
		if e.Path == filepath.Join(root, "a") {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "skipdir", got, []string{root, root + "/a", root + "/b", root + "/b/3"})

	stop := errors.New("stop")
	n := 0
	_, err = Walk(context.Background(), FileSet{Name: "t", Include: []string{root}}, WalkOptions{}, func(e Entry) error {
		if n++; n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Fatalf("fn error: %v after %d entries", err, n)
	}

	for i := 0; i < 200; i++ {
		mk(t, root, "many/"+strings.Repeat("x", i+1))
	}
	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	_, err = Walk(ctx, FileSet{Name: "t", Include: []string{root}}, WalkOptions{}, func(e Entry) error {
		if n++; n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n > 10+64 {
		t.Fatalf("cancel: %v after %d entries", err, n)
	}
	if _, err := Walk(context.Background(), FileSet{Include: []string{"rel"}}, WalkOptions{}, nil); err == nil || !strings.Contains(err.Error(), "Include[0]") {
		t.Fatalf("invalid fileset: %v", err)
	}
}

// TestCacheDirTag: a tagged directory keeps its entry and its tag, not
// the rest; a wrong signature, a symlink tag, or the option off keep
// everything.
func TestCacheDirTag(t *testing.T) {
	root := t.TempDir()
	mk(t, root, "cache/a", "cache/sub/b", "bad/a", "lnk/a", "plain/a")
	sig := cacheSignature + "\n# This file is a cache directory tag.\n"
	os.WriteFile(filepath.Join(root, "cache", "CACHEDIR.TAG"), []byte(sig), 0o644)
	os.WriteFile(filepath.Join(root, "bad", "CACHEDIR.TAG"), []byte("Signature: 8a477f597d28d172789f06886806bc5"), 0o644)
	os.WriteFile(filepath.Join(root, "tag"), []byte(sig), 0o644)
	os.Symlink("../tag", filepath.Join(root, "lnk", "CACHEDIR.TAG"))
	// A FIFO tag is not opened for reading (that would block): not a cache.
	mk(t, root, "fifo/")
	if err := unix.Mkfifo(filepath.Join(root, "fifo", "CACHEDIR.TAG"), 0o644); err != nil {
		t.Fatal(err)
	}

	r := walk(t, FileSet{Include: []string{root}, ExcludeCaches: true}, WalkOptions{})
	equal(t, "exclude caches", r.rel(root), []string{".", "bad", "bad/CACHEDIR.TAG", "bad/a", "cache", "cache/CACHEDIR.TAG",
		"fifo", "fifo/CACHEDIR.TAG", "lnk", "lnk/CACHEDIR.TAG", "lnk/a", "plain", "plain/a", "tag"})
	if r.stats.CachesExcluded != 1 || len(r.notes) != 1 || r.notes[0].Path != filepath.Join(root, "cache") {
		t.Errorf("stats %+v notes %v", r.stats, r.notes)
	}
	// Include roots inside a cache directory are walked, once each.
	r = walk(t, FileSet{Include: []string{root, filepath.Join(root, "cache/sub"), filepath.Join(root, "cache/CACHEDIR.TAG")}, ExcludeCaches: true}, WalkOptions{})
	equal(t, "roots in a cache", r.rel(filepath.Join(root, "cache")), []string{".", "CACHEDIR.TAG", "sub", "sub/b"})

	r = walk(t, FileSet{Include: []string{root}}, WalkOptions{})
	if n := len(r.entries); n != 17 {
		t.Errorf("without ExcludeCaches: %d entries %q", n, r.rel(root))
	}
}

// TestExcludes: the glob semantics, on a real tree.
func TestExcludes(t *testing.T) {
	root := t.TempDir()
	mk(t, root, "home/al/.cache/x", "home/al/keep.tmp/y", "home/al/doc", "home/bo/.cache/", "home/bo/sub/.cache/z",
		"var/log/a.log", "var/log/old/b.log", "var/c.log", "srv/s", "x.tmp", "node_modules/m")
	all := walk(t, FileSet{Include: []string{root}}, WalkOptions{}).rel(root)
	for _, tc := range []struct {
		exclude []string
		gone    []string // the entries that must disappear (with their contents)
	}{
		{[]string{"*.tmp"}, []string{"home/al/keep.tmp", "x.tmp"}},
		{[]string{"*.tmp/"}, []string{"home/al/keep.tmp"}}, // directories only
		{[]string{".cache"}, []string{"home/al/.cache", "home/bo/.cache", "home/bo/sub/.cache"}},
		{[]string{root + "/home/*/.cache"}, []string{"home/al/.cache", "home/bo/.cache"}},
		{[]string{root + "/home/**/.cache"}, []string{"home/al/.cache", "home/bo/.cache", "home/bo/sub/.cache"}},
		{[]string{root + "/var/**/*.log"}, []string{"var/c.log", "var/log/a.log", "var/log/old/b.log"}},
		{[]string{root + "/var/*/*.log"}, []string{"var/log/a.log"}},
		{[]string{root + "/srv/**"}, []string{"srv/s"}}, // the directory stays
		{[]string{root + "/srv"}, []string{"srv"}},
		{[]string{"**/node_modules"}, []string{"node_modules"}},
		{[]string{root + "/home/al/doc", "[xy].tmp"}, []string{"home/al/doc", "x.tmp"}},
		{[]string{root + "/hom?/[a-b]l"}, []string{"home/al"}},
		{[]string{"nothing*matches"}, nil},
	} {
		r := walk(t, FileSet{Include: []string{root}, Exclude: tc.exclude}, WalkOptions{})
		var want []string
		for _, p := range all {
			drop := false
			for _, g := range tc.gone {
				drop = drop || p == g || strings.HasPrefix(p, g+"/")
			}
			if !drop {
				want = append(want, p)
			}
		}
		equal(t, strings.Join(tc.exclude, " "), r.rel(root), want)
		if r.stats.Excluded != int64(len(tc.gone)) {
			t.Errorf("%v: Excluded %d, want %d", tc.exclude, r.stats.Excluded, len(tc.gone))
		}
	}
}

// TestPatternMatch: the matcher alone, including edge cases.
func TestPatternMatch(t *testing.T) {
	for _, tc := range []struct {
		pat, path string
		dir, want bool
	}{
		{"*.o", "/a/b.o", false, true},
		{"*.o", "/a.o/b", false, false},
		{"/a/**/b", "/a/b", false, true},
		{"/a/**/b", "/a/x/y/b", false, true},
		{"/a/**/b", "/a/x/y/c", false, false},
		{"/a/**", "/a", true, false},
		{"/a/**", "/a/x", false, true},
		{"/**", "/anything", false, true},
		{"/a/*", "/a/x/y", false, false},
		{"/a/*", "/a/x", false, true},
		{"/a/\\*", "/a/*", false, true},
		{"/a/\\*", "/a/x", false, false},
		{"/a/b", "/a/bc", false, false},
		{"/a/b", "/a", true, false},
		{"tmp/", "/x/tmp", false, false},
		{"tmp/", "/x/tmp", true, true},
		{"/**/x/**/y", "/p/x/q/r/y", false, true},
		{"/**/x/**/y", "/p/x/y", false, true},
		{"/**/x/**/y", "/p/y", false, false},
		{"bad\n*", "/d/bad\nname", false, true},
	} {
		p, err := compilePattern(tc.pat)
		if err != nil {
			t.Fatalf("%q: %v", tc.pat, err)
		}
		if got := p.match(tc.path, filepath.Base(tc.path), tc.dir); got != tc.want {
			t.Errorf("%q matches %q (dir %t): %t, want %t", tc.pat, tc.path, tc.dir, got, tc.want)
		}
	}
}

// TestValidate: each error names the field, the index and the value.
func TestValidate(t *testing.T) {
	good := FileSet{Name: "home", Include: []string{"/home"}, Exclude: []string{"*.o", "/home/*/.cache", "**/tmp"}}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid fileset: %v", err)
	}
	for _, tc := range []struct {
		fs   FileSet
		want []string
	}{
		{FileSet{Include: []string{"/a"}}, []string{"Name is empty"}},
		{FileSet{Name: "n"}, []string{"fileset n: Include is empty"}},
		{FileSet{Name: "n", Include: []string{"rel/x", ""}}, []string{`Include[0] "rel/x" is not an absolute path`, "Include[1] is empty"}},
		{FileSet{Name: "n", Include: []string{"/a\x00b"}}, []string{"Include[0]", "NUL"}},
		{FileSet{Name: "n", Include: []string{"/" + strings.Repeat("x", 4100)}}, []string{"Include[0] is 4101 bytes long"}},
		{FileSet{Name: "n", Include: []string{"/a"}, Exclude: []string{"a/b"}}, []string{`Exclude[0]: pattern "a/b" contains / but is not absolute`}},
		{FileSet{Name: "n", Include: []string{"/a"}, Exclude: []string{"ok", "[x"}}, []string{`Exclude[1]: pattern "[x": malformed glob`}},
		{FileSet{Name: "n", Include: []string{"/a"}, Exclude: []string{"/a/[x/b"}}, []string{`Exclude[0]`, `malformed glob in "[x"`}},
		{FileSet{Name: "n", Include: []string{"/a"}, Exclude: []string{""}}, []string{"Exclude[0]: empty pattern"}},
		{FileSet{Name: "n", Include: []string{"/a"}, Exclude: []string{"/a//b"}}, []string{"Exclude[0]", "empty element"}},
		{FileSet{Name: "n", Include: []string{"/a"}, Exclude: []string{"/a/../b"}}, []string{"Exclude[0]", ".. element"}},
		{FileSet{Name: "n", Include: []string{"/a"}, Exclude: []string{"/"}}, []string{"Exclude[0]", "everything"}},
	} {
		err := tc.fs.Validate()
		if err == nil {
			t.Errorf("%+v: no error, want %q", tc.fs, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q, want it to contain %q", tc.fs, err, w)
			}
		}
	}
}

// TestChangedSince: an entry is changed when mtime or ctime ≥ since;
// chmod changes ctime only; directories are always emitted and never
// Unchanged; SkipUnchanged hides the others.
func TestChangedSince(t *testing.T) {
	root := t.TempDir()
	mk(t, root, "old", "chmod", "write", "touch-old", "d/old2")
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, n := range []string{"old", "chmod", "write", "touch-old", "d/old2", "d", "."} {
		if err := os.Chtimes(filepath.Join(root, n), old, old); err != nil {
			t.Fatal(err)
		}
	}
	// since = just after the last ctime of the tree: wait (by polling a
	// probe, not sleeping) until the file system clock has moved on.
	ref := statT(t, filepath.Join(root, "d/old2")).Ctim
	since := time.Unix(ref.Sec, ref.Nsec).Add(time.Nanosecond)
	probe := filepath.Join(t.TempDir(), "probe")
	for i := 0; ; i++ {
		os.WriteFile(probe, nil, 0o644)
		c := statT(t, probe).Ctim
		if !time.Unix(c.Sec, c.Nsec).Before(since) {
			break
		}
		if i > 10_000_000 {
			t.Fatal("the file system clock does not advance")
		}
	}
	if err := os.Chmod(filepath.Join(root, "chmod"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "write"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A file restored with an old mtime: only its ctime is new.
	if err := os.Chtimes(filepath.Join(root, "touch-old"), old, old.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	r := walk(t, FileSet{Include: []string{root}}, WalkOptions{Since: since})
	unchanged := map[string]bool{}
	for _, e := range r.entries {
		unchanged[strings.TrimPrefix(e.Path, root+"/")] = e.Unchanged
	}
	want := map[string]bool{root: false, "chmod": false, "d": false, "d/old2": true, "old": true, "touch-old": false, "write": false}
	if len(unchanged) != len(want) {
		t.Fatalf("entries %v", unchanged)
	}
	for k, v := range want {
		if unchanged[k] != v {
			t.Errorf("%s: Unchanged %t, want %t", k, unchanged[k], v)
		}
	}
	if c := r.find(t, filepath.Join(root, "chmod")); !c.Mtime.Equal(old) || c.Ctime.Before(since) {
		t.Errorf("chmod: mtime %v ctime %v", c.Mtime, c.Ctime)
	}
	if r.stats.Unchanged != 2 || r.stats.Bytes != int64(len("data of chmod")+len("new")+len("data of touch-old")) {
		t.Errorf("stats %+v", r.stats)
	}
	r = walk(t, FileSet{Include: []string{root}}, WalkOptions{Since: since, SkipUnchanged: true})
	equal(t, "skip unchanged", r.rel(root), []string{".", "chmod", "d", "touch-old", "write"})

	st, err := Estimate(context.Background(), FileSet{Name: "t", Include: []string{root}}, since, nil)
	if err != nil || st.Files != 3 || st.Dirs != 2 || st.Unchanged != 2 || st.Bytes != r.stats.Bytes {
		t.Errorf("estimate %+v, %v", st, err)
	}
	var listed []string
	if _, err := Estimate(context.Background(), FileSet{Name: "t", Include: []string{root}}, since, func(e Entry) error {
		listed = append(listed, e.Path)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	equal(t, "estimate listing", listed, r.paths())
}

// TestXattrs: user xattrs are read when asked, with their raw values;
// a file system or type without support is not a warning.
func TestXattrs(t *testing.T) {
	root := t.TempDir()
	mk(t, root, "f", "d/")
	val := "v\x00\xff1"
	if err := unix.Lsetxattr(filepath.Join(root, "f"), "user.tapeward", []byte(val), 0); err != nil {
		t.Fatalf("setxattr: %v", err)
	}
	if err := unix.Lsetxattr(filepath.Join(root, "d"), "user.empty", nil, 0); err != nil {
		t.Fatalf("setxattr: %v", err)
	}
	os.Symlink("f", filepath.Join(root, "l"))
	// trusted.* needs CAP_SYS_ADMIN; an unprivileged run checks the refusal.
	errTrusted := unix.Lsetxattr(filepath.Join(root, "f"), "trusted.tapeward", []byte("t"), 0)
	if os.Geteuid() == 0 && errTrusted != nil {
		t.Fatalf("trusted xattr as root: %v", errTrusted)
	} else if os.Geteuid() != 0 && !errors.Is(errTrusted, unix.EPERM) {
		t.Fatalf("trusted xattr as uid %d: %v, want EPERM", os.Geteuid(), errTrusted)
	}
	r := walk(t, FileSet{Include: []string{root}, Xattrs: true}, WalkOptions{})
	f := r.find(t, filepath.Join(root, "f"))
	if f.Xattrs["user.tapeward"] != val || (errTrusted == nil) != (f.Xattrs["trusted.tapeward"] == "t") {
		t.Errorf("f xattrs %q", f.Xattrs)
	}
	if d := r.find(t, filepath.Join(root, "d")); len(d.Xattrs) != 1 || d.Xattrs["user.empty"] != "" {
		t.Errorf("d xattrs %q", d.Xattrs)
	}
	if len(r.warns) != 0 {
		t.Errorf("warnings %v", r.warns)
	}
	r = walk(t, FileSet{Include: []string{root}}, WalkOptions{})
	if f := r.find(t, filepath.Join(root, "f")); f.Xattrs != nil {
		t.Errorf("xattrs read without the option: %q", f.Xattrs)
	}
}

// TestXattrsAtOpen: with FileXattrsAtOpen a regular file's xattrs come
// from OpenForBackup (read from the descriptor), the same values the
// walk would read; a directory's still come from the walk.
func TestXattrsAtOpen(t *testing.T) {
	root := t.TempDir()
	mk(t, root, "f", "d/", "plain")
	val := "v\x00\xff2"
	if err := unix.Lsetxattr(filepath.Join(root, "f"), "user.tapeward", []byte(val), 0); err != nil {
		t.Fatalf("setxattr: %v", err)
	}
	if err := unix.Lsetxattr(filepath.Join(root, "d"), "user.dir", []byte("x"), 0); err != nil {
		t.Fatalf("setxattr: %v", err)
	}
	r := walk(t, FileSet{Include: []string{root}, Xattrs: true}, WalkOptions{FileXattrsAtOpen: true})
	if d := r.find(t, filepath.Join(root, "d")); d.Xattrs["user.dir"] != "x" {
		t.Errorf("d xattrs %q", d.Xattrs)
	}
	for name, want := range map[string]map[string]string{"f": {"user.tapeward": val}, "plain": nil} {
		e := r.find(t, filepath.Join(root, name))
		if e.Xattrs != nil {
			t.Errorf("%s: the walk read xattrs %q", name, e.Xattrs)
		}
		rd, err := OpenForBackup(e)
		if err != nil {
			t.Fatal(err)
		}
		x, warns := rd.Xattrs()
		rd.Close()
		if len(warns) != 0 || len(x) != len(want) || x["user.tapeward"] != want["user.tapeward"] {
			t.Errorf("%s: xattrs at open %q, warnings %v; want %q", name, x, warns, want)
		}
	}
	// Without the option the Reader gives the walk's.
	r = walk(t, FileSet{Include: []string{root}, Xattrs: true}, WalkOptions{})
	rd, err := OpenForBackup(r.find(t, filepath.Join(root, "f")))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if x, _ := rd.Xattrs(); x["user.tapeward"] != val {
		t.Errorf("reader's xattrs without the option: %q", x)
	}
}

// TestSparse10GiB: a 10 GiB file with one 4 KiB data block, and one
// that is all hole: Size 10 GiB, almost nothing allocated, the data map
// shows the holes.
func TestSparse10GiB(t *testing.T) {
	root := t.TempDir()
	const size = 10 << 30
	const at = 3 << 30
	f, err := os.Create(filepath.Join(root, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	block := bytes.Repeat([]byte("x"), 4096)
	if _, err := f.WriteAt(block, at); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Truncate(filepath.Join(root, "hole"), 0); err == nil {
		t.Fatal("truncate of a missing file succeeded")
	}
	os.WriteFile(filepath.Join(root, "hole"), nil, 0o644)
	os.Truncate(filepath.Join(root, "hole"), size)
	mk(t, root, "dense")

	r := walk(t, FileSet{Include: []string{root}}, WalkOptions{})
	s := r.find(t, filepath.Join(root, "sparse"))
	if s.Size != size || !s.Sparse || s.Allocated > 1<<20 {
		t.Fatalf("sparse: size %d sparse %t allocated %d", s.Size, s.Sparse, s.Allocated)
	}
	if len(s.Data) != 1 || s.Data[0].Offset > at || s.Data[0].Offset+s.Data[0].Length < at+4096 || s.Data[0].Length > 1<<20 {
		t.Fatalf("data map %v, want one extent around [%d, %d)", s.Data, at, at+4096)
	}
	h := r.find(t, filepath.Join(root, "hole"))
	if h.Size != size || !h.Sparse || h.Data == nil || len(h.Data) != 0 || h.Allocated != 0 {
		t.Fatalf("hole: %+v", h)
	}
	if d := r.find(t, filepath.Join(root, "dense")); d.Sparse || d.Data != nil {
		t.Fatalf("dense: %+v", d)
	}
	if r.stats.Sparse != 2 {
		t.Errorf("stats %+v", r.stats)
	}
	rd, err := OpenForBackup(s)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	buf := make([]byte, 4096)
	if _, err := rd.ReadAt(buf, at); err != nil || !bytes.Equal(buf, block) || rd.Changed() != nil {
		t.Fatalf("ReadAt the data: %v, changed %v", err, rd.Changed())
	}
	est, err := Estimate(context.Background(), FileSet{Name: "t", Include: []string{root}}, time.Time{}, nil)
	if err != nil || est.Bytes != 2*size+int64(len("data of dense")) || est.Allocated > 2<<20 || est.Files != 3 {
		t.Errorf("estimate %+v, %v", est, err)
	}
}

// TestUnchangedReadsNoXattrsOrSparseMap: an Unchanged file's xattrs and
// sparse map are not read (only its path is recorded): the entry has
// neither, though the file has both.
func TestUnchangedReadsNoXattrsOrSparseMap(t *testing.T) {
	root := t.TempDir()
	mk(t, root, "x")
	if err := unix.Lsetxattr(filepath.Join(root, "x"), "user.tapeward", []byte("v"), 0); err != nil {
		t.Fatalf("setxattr: %v", err)
	}
	f, err := os.Create(filepath.Join(root, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(64 << 20)
	f.Close()
	since := time.Now().Add(time.Hour) // everything is before it
	fs := FileSet{Include: []string{root}, Xattrs: true}
	full := walk(t, fs, WalkOptions{})
	if x := full.find(t, filepath.Join(root, "x")); x.Xattrs["user.tapeward"] != "v" {
		t.Fatalf("Full: xattrs %q", x.Xattrs)
	}
	if s := full.find(t, filepath.Join(root, "sparse")); !s.Sparse {
		t.Fatalf("Full: the 64 MiB hole is not sparse")
	}
	inc := walk(t, fs, WalkOptions{Since: since})
	for _, name := range []string{"x", "sparse"} {
		e := inc.find(t, filepath.Join(root, name))
		if !e.Unchanged || e.Xattrs != nil || e.Sparse || e.Data != nil {
			t.Errorf("%s: Unchanged %t, xattrs %q, sparse %t %v", name, e.Unchanged, e.Xattrs, e.Sparse, e.Data)
		}
	}
	if inc.stats.Sparse != 0 {
		t.Errorf("Stats.Sparse %d for unchanged files", inc.stats.Sparse)
	}
}

// nameList sorts in byte order: names shorter than, as long as and longer
// than its 8-byte keys, sharing prefixes, with bytes above 0x7f.
func TestNameListSortsInByteOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab\x01\x7f\x80\xff.")
	var l nameList
	var want [][]byte
	seen := map[string]bool{}
	for len(want) < 3000 {
		// Many share their first 8 bytes or more (the key).
		name := []byte([]string{"", "abcdefgh", "abcdefg\xff", "abcdefghij"}[rng.IntN(4)])
		for range 1 + rng.IntN(6) {
			name = append(name, alphabet[rng.IntN(len(alphabet))])
		}
		if seen[string(name)] {
			continue
		}
		seen[string(name)] = true
		l.add(name)
		want = append(want, name)
	}
	l.sort()
	slices.SortFunc(want, bytes.Compare)
	for i := range want {
		if got := l.name(i); !bytes.Equal(got, want[i]) {
			t.Fatalf("name %d = %q, want %q", i, got, want[i])
		}
		if c := l.cname(i); c[len(c)-1] != 0 || !bytes.Equal(c[:len(c)-1], want[i]) {
			t.Fatalf("cname %d = %q", i, c)
		}
	}
}

// IDNames looks each id up once, whatever the order the ids come in,
// and gives the name of the id asked (not the one before it).
func TestIDNamesCache(t *testing.T) {
	var c idCache
	lookups := map[string]int{}
	lookup := func(s string) string {
		lookups[s]++
		if s == "7" {
			return "" // no such id
		}
		return "name" + s
	}
	for _, id := range []uint32{0, 0, 1000, 0, 7, 1000, 1000, 7, 0} {
		want := fmt.Sprintf("name%d", id)
		if id == 7 {
			want = ""
		}
		if got := c.name(id, lookup); got != want {
			t.Fatalf("name(%d) = %q, want %q", id, got, want)
		}
	}
	if len(lookups) != 3 || lookups["0"] != 1 || lookups["1000"] != 1 || lookups["7"] != 1 {
		t.Fatalf("lookups %v, want one per id", lookups)
	}
	var ids IDNames
	if u := ids.User(uint32(os.Getuid())); u == "" {
		t.Fatalf("User(%d) = \"\": this process's user has no name?", os.Getuid())
	}
}
