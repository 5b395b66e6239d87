package fd

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/tools/lib/archive"
	"github.com/tapeward/tapeward/tools/lib/testenv"
	"github.com/tapeward/tapeward/tools/lib/testtree"
)

// backedUp backs include up through filed into the fake storage and
// returns the members as storaged would send them for a restore of
// everything: each record (in stream order) with its pax bytes.
func backedUp(t *testing.T, e *env, include ...string) *restoreFeed {
	t.Helper()
	r := e.backup(ctxT(t), e.request(include...))
	if r.err != nil || len(r.warnings) > 0 {
		t.Fatalf("backup: %v, warnings %v", r.err, r.warnings)
	}
	_, data, recs, _, problems := e.sd.snapshot()
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	feed := &restoreFeed{}
	for i, rec := range recs {
		end := rec.DataOffset + (rec.StoredSize+archive.BlockSize-1)/archive.BlockSize*archive.BlockSize
		feed.members = append(feed.members, &pb.RestoreMember{Seq: uint64(i + 1), Record: rec})
		feed.bytes = append(feed.bytes, data[rec.HeaderOffset:end])
	}
	return feed
}

// tempLeft lists restore temporary files under root.
func tempLeft(t *testing.T, root string) []string {
	t.Helper()
	var left []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tapeward-restore-") {
			left = append(left, p)
		}
		return nil
	})
	return left
}

// unnamedOpen counts the unnamed files (O_TMPFILE) this process has
// open under root: /proc shows each as DIR/#INODE (deleted).
func unnamedOpen(t *testing.T, root string) int {
	n := 0
	for _, l := range testenv.OpenFilesUnder(t, root) {
		if strings.HasPrefix(filepath.Base(l), "#") && strings.HasSuffix(l, " (deleted)") {
			n++
		}
	}
	return n
}

// TestRestoreTreeEqualsOriginal: a tree backed up by filed and restored
// by filed (under where=) is the original: paths, types, sizes, modes,
// owners, mtimes, symlinks, hard links, SHA-256, xattrs, sparse holes,
// a 4096-byte path, odd names, fifos and devices.
func TestRestoreTreeEqualsOriginal(t *testing.T) {
	e := newEnv(t, nil)
	base := t.TempDir()
	src := filepath.Join(base, "src")
	must(t, testtree.Make(src, testtree.Options{Seed: 3, LargeFiles: 2, LargeSize: 3<<20 + 5, SmallFiles: 120, SmallSize: 999,
		Links: true, LongName: true, OddNames: true, DeepPath: true, SparseSize: 32 << 20}))
	must(t, unix.Mkfifo(filepath.Join(src, "fifo"), 0o620))
	if os.Geteuid() == 0 {
		must(t, unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o640, int(unix.Mkdev(1, 3))))
		must(t, os.Lchown(filepath.Join(src, testtree.Symlink), 123, 456))
		must(t, os.Chown(filepath.Join(src, "small"), 1000, 1000))
	}
	xattrs := unix.Lsetxattr(filepath.Join(src, testtree.LinkTarget), "user.tapeward", []byte("v\x00\xff"), 0) == nil
	must(t, os.Chmod(filepath.Join(src, "small/d00"), 0o750))
	must(t, os.Chmod(filepath.Join(src, testtree.HardA), 0o4750))
	old := time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.UTC)
	must(t, os.Chtimes(filepath.Join(src, "small/d01"), old, old))
	must(t, os.Chtimes(src, old, old))
	feed := backedUp(t, e, src)
	feed.chunk = 64<<10 + 7 // members cut across data messages at odd places

	before, err := testtree.Take(src)
	must(t, err)
	e.sd.mu.Lock()
	e.sd.feed = feed
	e.sd.mu.Unlock()
	where := filepath.Join(base, "r")
	res := e.restore(ctxT(t), e.restoreRequest(&pb.Relocation{Where: where}, "always"))
	if res.err != nil || len(res.errors) > 0 {
		t.Fatalf("restore: %v, errors %v", res.err, res.errors)
	}
	if res.done == nil || res.done.Files != int64(len(feed.members)) || res.done.Errors != 0 || res.done.Skipped != 0 {
		t.Fatalf("done %v, want %d files", res.done, len(feed.members))
	}
	after, err := testtree.Take(where + src)
	must(t, err)
	if len(after) != len(before) {
		t.Errorf("%d paths restored, the tree has %d", len(after), len(before))
	}
	for p, b := range before {
		a, ok := after[where+p]
		if !ok {
			t.Errorf("%q not restored", p)
			continue
		}
		if a.Type != b.Type || a.Size != b.Size || a.Mode != b.Mode || a.Link != b.Link || a.SHA256 != b.SHA256 || a.Nlink != b.Nlink {
			t.Errorf("%q restored as %s size %d mode %04o link %q nlink %d sha %x; the original is %s size %d mode %04o link %q nlink %d sha %x",
				p, a.Type, a.Size, a.Mode, a.Link, a.Nlink, a.SHA256[:4], b.Type, b.Size, b.Mode, b.Link, b.Nlink, b.SHA256[:4])
		}
		if !a.Mtime.Equal(b.Mtime) {
			t.Errorf("%q: mtime %v, the original's %v", p, a.Mtime, b.Mtime)
		}
	}
	if os.Geteuid() == 0 {
		for _, rel := range []string{"null", testtree.Symlink, "small", testtree.HardA} {
			var so, sr unix.Stat_t
			must(t, unix.Lstat(filepath.Join(src, rel), &so))
			must(t, unix.Lstat(where+filepath.Join(src, rel), &sr))
			if so.Uid != sr.Uid || so.Gid != sr.Gid || so.Rdev != sr.Rdev {
				t.Errorf("%s: owner %d:%d rdev %d, the original %d:%d rdev %d", rel, sr.Uid, sr.Gid, sr.Rdev, so.Uid, so.Gid, so.Rdev)
			}
		}
	}
	if xattrs {
		buf := make([]byte, 16)
		n, err := unix.Lgetxattr(where+filepath.Join(src, testtree.LinkTarget), "user.tapeward", buf)
		if err != nil || string(buf[:n]) != "v\x00\xff" {
			t.Errorf("xattr: %q, %v", buf[:max(n, 0)], err)
		}
	}
	var so, sr unix.Stat_t
	must(t, unix.Lstat(filepath.Join(src, testtree.Sparse), &so))
	must(t, unix.Lstat(where+filepath.Join(src, testtree.Sparse), &sr))
	if sr.Blocks > so.Blocks+16 || sr.Size != so.Size {
		t.Errorf("sparse file: %d blocks allocated for %d bytes; the original %d blocks (holes must be kept)", sr.Blocks, sr.Size, so.Blocks)
	}
	// The parents filed stored (the test's temporary directories) are
	// restored with their recorded attributes too.
	for _, p := range testtree.Parents(src) {
		if !strings.HasPrefix(p, filepath.Dir(base)) {
			continue
		}
		var o, r unix.Stat_t
		must(t, unix.Lstat(p, &o))
		must(t, unix.Lstat(where+p, &r))
		if o.Mode != r.Mode {
			t.Errorf("parent %s: mode %o, the original %o", p, r.Mode, o.Mode)
		}
	}
	if left := tempLeft(t, where); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
	if res.progress == 0 {
		t.Error("no progress event")
	}
}

// TestRestoreRelocationAndReplace: where, strip_prefix, add_prefix,
// add_suffix and regexwhere as filed applies them; replace=never keeps
// what is there and counts it.
func TestRestoreRelocationAndReplace(t *testing.T) {
	e := newEnv(t, nil)
	base := t.TempDir()
	src := filepath.Join(base, "srv")
	must(t, os.MkdirAll(filepath.Join(src, "www/img"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "www/index.html"), []byte("<html>"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "www/img/logo.png"), []byte("png"), 0o644))
	feed := backedUp(t, e, src)
	e.sd.mu.Lock()
	e.sd.feed = feed
	e.sd.mu.Unlock()
	out := filepath.Join(base, "out")
	for _, c := range []struct {
		name string
		rel  *pb.Relocation
		want map[string]string // path → content ("" : a directory)
	}{
		{"strip and add", &pb.Relocation{Where: out + "/1", StripPrefix: src, AddPrefix: "/restored"}, map[string]string{
			out + "/1/restored/www/index.html": "<html>", out + "/1/restored/www/img": ""}},
		{"suffix", &pb.Relocation{Where: out + "/2", AddSuffix: ".bak"}, map[string]string{
			out + "/2" + src + "/www/index.html.bak": "<html>", out + "/2" + src + "/www/img/logo.png.bak": "png", out + "/2" + src + "/www/img": ""}},
		{"regexwhere", &pb.Relocation{Regexwhere: "!^" + src + "!" + out + "/3!,!\\.html$!.htm!"}, map[string]string{
			out + "/3/www/index.htm": "<html>", out + "/3/www/img/logo.png": "png"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := e.restore(ctxT(t), e.restoreRequest(c.rel, ""))
			if res.err != nil || len(res.errors) > 0 {
				t.Fatalf("restore: %v, errors %v", res.err, res.errors)
			}
			for p, want := range c.want {
				if want == "" {
					if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
						t.Errorf("%s: not a directory (%v)", p, err)
					}
					continue
				}
				if b, err := os.ReadFile(p); err != nil || string(b) != want {
					t.Errorf("%s: %q, %v; want %q", p, b, err, want)
				}
			}
		})
	}
	// replace=never over the first restore: every member kept.
	must(t, os.WriteFile(out+"/1/restored/www/index.html", []byte("edited"), 0o644))
	res := e.restore(ctxT(t), e.restoreRequest(&pb.Relocation{Where: out + "/1", StripPrefix: src, AddPrefix: "/restored"}, "never"))
	if res.err != nil || res.done == nil {
		t.Fatal(res.err)
	}
	if b, _ := os.ReadFile(out + "/1/restored/www/index.html"); string(b) != "edited" {
		t.Errorf("replace=never overwrote the file: %q", b)
	}
	// The stored parents of src map outside /restored (strip_prefix does
	// not apply to them) and were restored by the first run too.
	if res.done.Skipped != int64(len(feed.members)) || res.done.Files != 0 {
		t.Errorf("replace=never: done %v, want every one of the %d members skipped", res.done, len(feed.members))
	}
}

// TestRestoreHostileStream: through the wire, a record naming ../../x,
// a header that differs from its record, a symlink planted in the
// target and a flipped data byte are each a RestoreFileError naming the
// file; nothing is written outside the target; the restore goes on.
func TestRestoreHostileStream(t *testing.T) {
	e := newEnv(t, nil)
	base := t.TempDir()
	src := filepath.Join(base, "src")
	must(t, os.MkdirAll(filepath.Join(src, "etc"), 0o755))
	for _, n := range []string{"etc/passwd", "a", "b", "c", "d"} {
		must(t, os.WriteFile(filepath.Join(src, n), randomBytes(uint64(len(n)), 5000), 0o644))
	}
	feed := backedUp(t, e, src)
	byPath := func(rel string) int {
		for i, m := range feed.members {
			if string(m.Record.Path) == filepath.Join(src, rel) {
				return i
			}
		}
		t.Fatalf("%s not in the backup", rel)
		return -1
	}
	// A record renamed ../../x (its bytes are a's).
	ia := byPath("a")
	feed.members[ia] = proto.Clone(feed.members[ia]).(*pb.RestoreMember)
	feed.members[ia].Record.Path = []byte("../../x")
	// b's record with c's bytes: the header names another path.
	ib, ic := byPath("b"), byPath("c")
	feed.bytes[ib] = feed.bytes[ic]
	// d's data with a flipped byte.
	id := byPath("d")
	feed.bytes[id] = bytes.Clone(feed.bytes[id])
	feed.bytes[id][len(feed.bytes[id])-512-100] ^= 0x80
	e.sd.mu.Lock()
	e.sd.feed = feed
	e.sd.mu.Unlock()

	where := filepath.Join(base, "r")
	outside := filepath.Join(base, "outside")
	must(t, os.MkdirAll(outside, 0o755))
	must(t, os.WriteFile(filepath.Join(outside, "passwd"), []byte("root:x:0:0\n"), 0o644))
	must(t, os.MkdirAll(where+src, 0o755))
	must(t, os.Symlink(outside, where+src+"/etc")) // r/…/src/etc → outside
	snap, err := testtree.Take(outside)
	must(t, err)

	res := e.restore(ctxT(t), e.restoreRequest(&pb.Relocation{Where: where}, "always"))
	if res.err != nil || res.done == nil {
		t.Fatalf("restore: %v", res.err)
	}
	got := map[string]string{}
	for _, fe := range res.errors {
		got[string(fe.Path)] = fe.Op
	}
	if len(got) != 3 || got["../../x"] != "refused" || got[filepath.Join(src, "b")] != "refused" || got[filepath.Join(src, "d")] != "digest" {
		t.Errorf("errors %v: want ../../x and b refused, d a digest error", res.errors)
	}
	for _, fe := range res.errors {
		if string(fe.Path) == filepath.Join(src, "d") && (!strings.Contains(fe.Message, "SHA-256") || string(fe.Target) != where+filepath.Join(src, "d")) {
			t.Errorf("digest error %v: want the digests and the target", fe)
		}
	}
	if res.done.Errors != int64(len(res.errors)) {
		t.Errorf("done says %d errors, %d reported", res.done.Errors, len(res.errors))
	}
	after, err := testtree.Take(outside)
	must(t, err)
	if len(after) != len(snap) || after[filepath.Join(outside, "passwd")].SHA256 != snap[filepath.Join(outside, "passwd")].SHA256 {
		t.Errorf("outside the target changed: %v", after)
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(base), "x")); err == nil {
		t.Error("../../x was written")
	}
	if _, err := os.Lstat(where + filepath.Join(src, "d")); err == nil {
		t.Error("the file with wrong bytes exists under its name")
	}
	// The etc directory member replaced the planted symlink (replace=
	// always) with a real directory, and passwd went into it.
	if fi, err := os.Lstat(where + filepath.Join(src, "etc")); err != nil || !fi.IsDir() {
		t.Errorf("r/…/etc: %v, %v: want the restored directory in place of the planted symlink", fi, err)
	}
	if left := tempLeft(t, where); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}

	// replace=never keeps the planted symlink: passwd is then refused,
	// never written through it.
	must(t, os.RemoveAll(where))
	must(t, os.MkdirAll(where+src, 0o755))
	must(t, os.Symlink(outside, where+src+"/etc"))
	res = e.restore(ctxT(t), e.restoreRequest(&pb.Relocation{Where: where}, "never"))
	if res.err != nil {
		t.Fatal(res.err)
	}
	found := false
	for _, fe := range res.errors {
		if string(fe.Path) == filepath.Join(src, "etc/passwd") {
			found = fe.Op == "refused" && strings.Contains(fe.Message, "is a symlink: never followed")
		}
	}
	if !found {
		t.Errorf("errors %v: want etc/passwd refused (a symlink on its way)", res.errors)
	}
	after, err = testtree.Take(outside)
	must(t, err)
	if len(after) != len(snap) || after[filepath.Join(outside, "passwd")].SHA256 != snap[filepath.Join(outside, "passwd")].SHA256 {
		t.Errorf("outside the target changed: %v", after)
	}
}

// TestRestoreWriteAs: a hard link selected without its first path gets
// the data (write_as), and a further link to the first path links to it.
func TestRestoreWriteAs(t *testing.T) {
	e := newEnv(t, nil)
	base := t.TempDir()
	src := filepath.Join(base, "src")
	must(t, os.MkdirAll(src, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "a"), []byte("shared inode"), 0o640))
	must(t, os.Link(filepath.Join(src, "a"), filepath.Join(src, "b")))
	must(t, os.Link(filepath.Join(src, "a"), filepath.Join(src, "c")))
	full := backedUp(t, e, src)
	feed := &restoreFeed{}
	for i, m := range full.members {
		switch string(m.Record.Path) {
		case filepath.Join(src, "a"): // the first path, planned for b
			m = proto.Clone(m).(*pb.RestoreMember)
			m.WriteAs = []byte(filepath.Join(src, "b"))
		case filepath.Join(src, "c"):
		default:
			continue
		}
		feed.members = append(feed.members, m)
		feed.bytes = append(feed.bytes, full.bytes[i])
	}
	if len(feed.members) != 2 || feed.members[1].Record.Type != "link" {
		t.Fatalf("plan %v", feed.members)
	}
	e.sd.mu.Lock()
	e.sd.feed = feed
	e.sd.mu.Unlock()
	where := filepath.Join(base, "r")
	res := e.restore(ctxT(t), e.restoreRequest(&pb.Relocation{Where: where}, ""))
	if res.err != nil || len(res.errors) > 0 {
		t.Fatalf("restore: %v %v", res.err, res.errors)
	}
	if _, err := os.Lstat(where + filepath.Join(src, "a")); err == nil {
		t.Error("the first path was written though not selected")
	}
	var sb, sc unix.Stat_t
	must(t, unix.Lstat(where+filepath.Join(src, "b"), &sb))
	must(t, unix.Lstat(where+filepath.Join(src, "c"), &sc))
	if b, _ := os.ReadFile(where + filepath.Join(src, "b")); string(b) != "shared inode" || sb.Ino != sc.Ino {
		t.Errorf("b holds %q, b and c inodes %d %d", b, sb.Ino, sc.Ino)
	}
}

// TestRestoreCancel: the running restore shows in Hello; cancelling the
// call stops it and leaves no temporary file.
func TestRestoreCancel(t *testing.T) {
	e := newEnv(t, nil)
	base := t.TempDir()
	src := filepath.Join(base, "src")
	must(t, os.MkdirAll(src, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "big"), randomBytes(5, 8<<20), 0o644))
	feed := backedUp(t, e, src)
	total := int64(0)
	for _, b := range feed.bytes {
		total += int64(len(b))
	}
	feed.chunk, feed.holdAfter = 256<<10, total-2<<20 // 6 MiB of big's 8 sent
	e.sd.mu.Lock()
	e.sd.feed = feed
	e.sd.mu.Unlock()
	where := filepath.Join(base, "r")
	ctx, cancel := context.WithCancel(ctxT(t))
	done := make(chan restoreResult)
	go func() { done <- e.restore(ctx, e.restoreRequest(&pb.Relocation{Where: where}, "")) }()
	waitFor(t, "the restore in Hello's running jobs and its temporary file", func() bool {
		h, err := e.client.Hello(ctxT(t), &pb.FiledHelloRequest{})
		return err == nil && slices.Contains(h.RunningJobs, 43) && unnamedOpen(t, where) == 1
	})
	cancel()
	res := <-done
	if status.Code(res.err) != codes.Canceled {
		t.Fatalf("restore: %v, want Canceled", res.err)
	}
	waitFor(t, "the restore gone from Hello", func() bool {
		h, err := e.client.Hello(ctxT(t), &pb.FiledHelloRequest{})
		return err == nil && len(h.RunningJobs) == 0
	})
	if left := tempLeft(t, where); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
	if n := unnamedOpen(t, where); n != 0 {
		t.Errorf("%d unnamed files still open after the cancel", n)
	}
	if _, err := os.Lstat(where + filepath.Join(src, "big")); err == nil {
		t.Error("the cancelled file exists under its name")
	}
	waitFor(t, "filed's log of the cancelled restore", func() bool { return strings.Contains(e.log.String(), `msg="restore ended" job_id=43 result=canceled`) })
}

func TestRestoreStorageErrorAndBadRequests(t *testing.T) {
	e := newEnv(t, nil)
	base := t.TempDir()
	src := filepath.Join(base, "src")
	must(t, os.MkdirAll(src, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "big"), randomBytes(5, 3<<20), 0o644))
	feed := backedUp(t, e, src)
	feed.chunk, feed.failAfter = 256<<10, 2
	feed.failErr = status.Error(codes.DataLoss, "volume TW0001L6: medium error reading block 77")
	e.sd.mu.Lock()
	e.sd.feed = feed
	e.sd.mu.Unlock()
	where := filepath.Join(base, "r")
	res := e.restore(ctxT(t), e.restoreRequest(&pb.Relocation{Where: where}, ""))
	if status.Code(res.err) != codes.DataLoss || !strings.Contains(res.err.Error(), "storage sd1: volume TW0001L6: medium error reading block 77") {
		t.Errorf("restore: %v, want the storage's DataLoss naming it", res.err)
	}
	if left := tempLeft(t, where); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
	// A stream that ends without its end message fails the restore.
	feed.failAfter, feed.noEnd = 0, true
	res = e.restore(ctxT(t), e.restoreRequest(&pb.Relocation{Where: where}, ""))
	if status.Code(res.err) != codes.DataLoss || !strings.Contains(res.err.Error(), "ended before its end message") {
		t.Errorf("restore without end: %v", res.err)
	}

	for _, c := range []struct {
		tune func(*pb.RestoreRequest)
		want string
	}{
		{func(r *pb.RestoreRequest) { r.Token = "" }, "RestoreRequest.token is empty"},
		{func(r *pb.RestoreRequest) { r.Relocation = &pb.Relocation{Regexwhere: "!a!b!,!a(!b!"} }, "regexwhere rule 2 `!a(!b!`"},
		{func(r *pb.RestoreRequest) { r.Relocation = &pb.Relocation{Where: "/tmp/../etc"} }, `where "/tmp/../etc"`},
		{func(r *pb.RestoreRequest) { r.Replace = "sometimes" }, `replace="sometimes": must be always, ifnewer, ifolder or never`},
	} {
		req := e.restoreRequest(&pb.Relocation{Where: where}, "")
		c.tune(req)
		res := e.restore(ctxT(t), req)
		if status.Code(res.err) != codes.InvalidArgument || !strings.Contains(res.err.Error(), c.want) {
			t.Errorf("restore: %v, want InvalidArgument saying %q", res.err, c.want)
		}
	}
	req := e.restoreRequest(&pb.Relocation{Where: where}, "")
	req.Token = "tok-wrong"
	if res := e.restore(ctxT(t), req); status.Code(res.err) != codes.PermissionDenied || !strings.Contains(res.err.Error(), "storage sd1: RestoreData: unknown session or wrong token") {
		t.Errorf("wrong token: %v", res.err)
	}
}
