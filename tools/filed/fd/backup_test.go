package fd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/tools/lib/archive"
)

// tree is a test tree and what the test knows about it.
type tree struct {
	root       string
	content    map[string][]byte // regular files by path
	long       string            // a 4096-byte path
	hardA      string            // first path of a hard-linked file
	hardB      string            // its second path
	sparse     string
	sparseSize int64
	xattrs     bool   // the file system took a user.* xattr
	unreadable string // a regular file filed cannot open
	extra      []string
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// makeTree builds a tree with the names and types filed must store.
func makeTree(t testing.TB) *tree {
	t.Helper()
	tr := &tree{root: filepath.Join(t.TempDir(), "src"), content: map[string][]byte{}}
	must(t, os.MkdirAll(filepath.Join(tr.root, "dir/sub"), 0o750))
	file := func(rel string, data []byte) string {
		p := filepath.Join(tr.root, rel)
		must(t, os.WriteFile(p, data, 0o640))
		tr.content[p] = data
		return p
	}
	file("small.txt", []byte("hello\n"))
	file("empty", nil)
	file("big.bin", randomBytes(1, 3<<20+123)) // crosses several data messages
	file("dir/sub/inner", randomBytes(2, 70000))
	file(strings.Repeat("L", 150)+".txt", []byte("long name"))
	file("new\nline", []byte("newline"))
	file("bad\xffutf8", []byte("invalid UTF-8"))
	tr.hardA = file("hl-a", []byte("one inode, two names"))
	tr.hardB = filepath.Join(tr.root, "hl-b")
	must(t, os.Link(tr.hardA, tr.hardB))
	must(t, os.Symlink("dir/sub/inner", filepath.Join(tr.root, "symlink")))
	must(t, unix.Mkfifo(filepath.Join(tr.root, "fifo"), 0o600))

	// Sparse: 64 MiB with 8 KiB of data.
	tr.sparse, tr.sparseSize = filepath.Join(tr.root, "sparse.img"), 64<<20
	f, err := os.Create(tr.sparse)
	must(t, err)
	must(t, f.Truncate(tr.sparseSize))
	d1, d2 := randomBytes(3, 4096), randomBytes(4, 4096)
	_, err = f.WriteAt(d1, 1<<20)
	must(t, err)
	_, err = f.WriteAt(d2, 40<<20)
	must(t, err)
	must(t, f.Close())
	full := make([]byte, tr.sparseSize)
	copy(full[1<<20:], d1)
	copy(full[40<<20:], d2)
	tr.content[tr.sparse] = full

	x := file("with-xattr", []byte("xattrs"))
	tr.xattrs = unix.Setxattr(x, "user.tapeward", []byte("value\x00with NUL"), 0) == nil

	// A 4096-byte path (longer than PATH_MAX can open in one call).
	dfd, err := unix.Open(tr.root, unix.O_DIRECTORY|unix.O_RDONLY, 0)
	must(t, err)
	p := tr.root
	for i := 0; 4096-len(p) > 256; i++ {
		name := strings.Repeat(string(rune('a'+i%26)), 200)
		must(t, unix.Mkdirat(dfd, name, 0o755))
		nfd, err := unix.Openat(dfd, name, unix.O_DIRECTORY|unix.O_RDONLY, 0)
		must(t, err)
		unix.Close(dfd)
		dfd, p = nfd, p+"/"+name
	}
	name := strings.Repeat("z", 4096-len(p)-1)
	fd, err := unix.Openat(dfd, name, unix.O_CREAT|unix.O_WRONLY, 0o644)
	must(t, err)
	_, err = unix.Write(fd, []byte("at the end of a long path"))
	must(t, err)
	unix.Close(fd)
	unix.Close(dfd)
	tr.long = p + "/" + name
	tr.content[tr.long] = []byte("at the end of a long path")
	if len(tr.long) != 4096 {
		t.Fatalf("long path is %d bytes", len(tr.long))
	}

	// An unreadable file: mode 000 for a user; root reads any mode, so
	// as root a write-only sysfs attribute plays it (open(O_RDONLY)
	// fails with EACCES even for root).
	if os.Geteuid() != 0 {
		tr.unreadable = file("unreadable", []byte("secret"))
		must(t, os.Chmod(tr.unreadable, 0))
		delete(tr.content, tr.unreadable)
	} else {
		for _, p := range []string{"/sys/bus/pci/rescan", "/sys/bus/cpu/uevent"} {
			if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o444 == 0 {
				tr.unreadable = p
				tr.extra = append(tr.extra, p)
				break
			}
		}
		if tr.unreadable == "" {
			t.Fatal("running as root and no write-only sysfs file (/sys/bus/pci/rescan) to play an unreadable file: run the test as an unprivileged user")
		}
	}
	return tr
}

func (tr *tree) include() []string { return append([]string{tr.root}, tr.extra...) }

// runTool pipes stream into a tar program's -tvf - and returns its lines.
func listWith(t *testing.T, tool string, stream []byte) []string {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		pkg := map[string]string{"tar": "tar", "bsdtar": "libarchive-tools"}[tool]
		t.Fatalf("%s is not installed: apt-get install -y %s", tool, pkg)
	}
	cmd := exec.Command(tool, "-tvf", "-")
	cmd.Stdin = bytes.NewReader(stream)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s -tvf -: %v\n%s", tool, err, stderr.String())
	}
	return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
}

// TestBackupStream: a Full of a tree with every kind of name and file
// arrives at the storage as a pax stream GNU tar and bsdtar list
// completely; every record points at its member's header and carries
// the content's digest; the token is in the first message; an
// unreadable file is a warning and the backup goes on.
func TestBackupStream(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	e := newEnv(t, func(o *Options) { o.Metrics = m })
	tr := makeTree(t)
	r := e.backup(ctxT(t), e.request(tr.include()...))
	if r.err != nil {
		t.Fatalf("backup: %v\nlog:\n%s", r.err, e.log.String())
	}
	kinds, data, recs, end, problems := e.sd.snapshot()
	if len(problems) > 0 {
		t.Fatalf("the storage saw: %v", problems)
	}

	// The message sequence: open (with the token) first, end last.
	if len(kinds) < 4 || kinds[0] != "open" || kinds[len(kinds)-1] != "end" || slices.Contains(kinds, "keepalive") {
		t.Fatalf("message kinds = %v, want open, data/records…, end (no keepalive)", kinds)
	}
	if e.sd.open.Session != testSession || e.sd.open.Token != testToken {
		t.Fatalf("open = %v", e.sd.open)
	}
	if r.done == nil || end == nil {
		t.Fatalf("done = %v, end = %v", r.done, end)
	}
	if end.StreamBytes != int64(len(data)) || r.done.StreamBytes != int64(len(data)) || end.Members != uint64(len(recs)) || r.done.Files != int64(len(recs)) {
		t.Fatalf("end %v, done %v; received %d bytes and %d records", end, r.done, len(data), len(recs))
	}
	if r.progress == 0 || r.events[len(r.events)-1].GetDone() == nil {
		t.Fatalf("%d progress events; last event %v", r.progress, r.events[len(r.events)-1])
	}

	// Both tar programs list every member.
	for _, tool := range []string{"tar", "bsdtar"} {
		if lines := listWith(t, tool, data); len(lines) != len(recs) {
			t.Errorf("%s -tvf - listed %d members, the records say %d:\n%s", tool, len(lines), len(recs), strings.Join(lines, "\n"))
		}
	}

	// Every record: header at header_offset, digest of the content.
	byPath := map[string]*pb.MemberRecord{}
	last := int64(-1)
	for _, rec := range recs {
		p := string(rec.Path)
		byPath[p] = rec
		if rec.HeaderOffset <= last {
			t.Errorf("%q: header offset %d not after the previous member's %d", p, rec.HeaderOffset, last)
		}
		last = rec.HeaderOffset
		rd := archive.NewMemberReader(bytes.NewReader(data[rec.HeaderOffset:]), rec.HeaderOffset)
		ent, err := rd.Next()
		if err != nil {
			t.Errorf("%q: no member at header offset %d: %v", p, rec.HeaderOffset, err)
			continue
		}
		name := ent.Header.Name
		if ent.Offset != rec.HeaderOffset || name != p {
			t.Errorf("member at %d is %q (offset %d), record says %q", rec.HeaderOffset, name, ent.Offset, p)
		}
		if rec.Type == "file" {
			h := sha256.New()
			if _, err := io.Copy(h, rd); err != nil {
				t.Errorf("%q: reading data: %v", p, err)
			}
			if !bytes.Equal(h.Sum(nil), rec.Sha256) {
				t.Errorf("%q: record sha256 %x, the stored content's %x", p, rec.Sha256, h.Sum(nil))
			}
			if want, ok := tr.content[p]; ok {
				if s := sha256.Sum256(want); !bytes.Equal(s[:], rec.Sha256) {
					t.Errorf("%q: record sha256 %x, the file's %x", p, rec.Sha256, s)
				}
			}
		}
	}
	for p := range tr.content {
		if rec := byPath[p]; rec == nil || (rec.Type != "file" && p != tr.hardB) {
			t.Errorf("%q not stored as a file (%v)", p, rec)
		}
	}
	for _, p := range []string{tr.root + "/", tr.root + "/dir/", tr.root + "/dir/sub/"} {
		if rec := byPath[p]; rec == nil || rec.Type != "dir" {
			t.Errorf("directory %q: record %v", p, rec)
		}
	}
	// The include root's parents come first, as directories.
	for i, p := range parents(tr.include()) {
		if string(recs[i].Path) != p+"/" || recs[i].Type != "dir" {
			t.Errorf("record %d = %q %s, want the parent directory %q", i, recs[i].Path, recs[i].Type, p+"/")
		}
	}
	if rec := byPath[tr.root+"/symlink"]; rec == nil || rec.Type != "symlink" || string(rec.Linkname) != "dir/sub/inner" {
		t.Errorf("symlink: %v", rec)
	}
	if rec := byPath[tr.root+"/fifo"]; rec == nil || rec.Type != "fifo" {
		t.Errorf("fifo: %v", rec)
	}
	a, b := byPath[tr.hardA], byPath[tr.hardB]
	if a == nil || b == nil || a.Type != "file" || b.Type != "link" || string(b.Linkname) != tr.hardA || b.StoredSize != 0 || !bytes.Equal(a.Sha256, b.Sha256) {
		t.Errorf("hard link: first %v, second %v: want a file and a link to it with its digest and no data", a, b)
	}
	if rec := byPath[tr.long]; rec == nil || len(rec.Path) != 4096 {
		t.Errorf("the 4096-byte path is not stored")
	}
	sp := byPath[tr.sparse]
	if sp == nil || !sp.Sparse || sp.Size != tr.sparseSize || sp.StoredSize > 64<<10 {
		t.Errorf("sparse file: %v: want sparse, size %d, holes not stored", sp, tr.sparseSize)
	} else if int64(len(data)) > 8<<20 {
		t.Errorf("the stream is %d bytes: the sparse file's holes went on tape", len(data))
	}
	if tr.xattrs {
		if !bytes.Contains(data, []byte("SCHILY.xattr.user.tapeward=value\x00with NUL\n")) {
			t.Errorf("the xattr user.tapeward is not in the stream")
		}
	} else {
		t.Log("the file system takes no user.* xattr: not checked")
	}

	// The unreadable file: a warning, not stored, the job went on.
	var found bool
	for _, w := range r.warnings {
		if string(w.Path) == tr.unreadable && w.Op == "open" && strings.Contains(w.Message, "permission denied") {
			found = true
		}
	}
	if !found || byPath[tr.unreadable] != nil || r.done.Warnings != int64(len(r.warnings)) {
		t.Errorf("unreadable %s: warnings %v, done %v, stored %v", tr.unreadable, r.warnings, r.done, byPath[tr.unreadable])
	}
	if len(r.seen) != 0 {
		t.Errorf("a Full without send_seen reported %d seen paths", len(r.seen))
	}

	// Metrics.
	if v := metricValue(t, reg, "tapeward_filed_jobs_total", "result", ResultWarnings); v != 1 {
		t.Errorf("jobs_total{result=warnings} = %v", v)
	}
	if v := metricValue(t, reg, "tapeward_filed_files_sent_total", "", ""); v != float64(len(recs)) {
		t.Errorf("files_sent_total = %v, want %d", v, len(recs))
	}
	if v := metricValue(t, reg, "tapeward_filed_stream_bytes_sent_total", "", ""); v != float64(len(data)) {
		t.Errorf("stream_bytes_sent_total = %v, want %d", v, len(data))
	}
	if v := metricValue(t, reg, "tapeward_filed_warnings_total", "op", "open"); v != 1 {
		t.Errorf("warnings_total{op=open} = %v", v)
	}
	if v := metricValue(t, reg, "tapeward_filed_jobs_running", "", ""); v != 0 {
		t.Errorf("jobs_running = %v after the job", v)
	}
}

// maxCtime is the latest ctime under root.
func maxCtime(t *testing.T, root string) int64 {
	var max int64
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return nil // the long path: not needed here
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) == nil {
			if c := st.Ctim.Nano(); c > max {
				max = c
			}
		}
		return nil
	})
	must(t, err)
	return max
}

// TestIncrementalSinceAndSeen: with a since-time, only entries whose
// mtime or ctime reaches it are stored (directories always); with
// send_seen every path is reported, unchanged ones too, in the stored
// form (a directory ends in '/').
func TestIncrementalSinceAndSeen(t *testing.T) {
	e := newEnv(t, nil)
	root := filepath.Join(t.TempDir(), "inc")
	must(t, os.MkdirAll(filepath.Join(root, "d"), 0o755))
	for _, n := range []string{"same-1", "same-2", "d/same-3", "by-mtime", "by-ctime"} {
		must(t, os.WriteFile(filepath.Join(root, n), []byte(n), 0o644))
	}
	must(t, os.Symlink("same-1", filepath.Join(root, "link")))
	// by-mtime: an mtime in the future (its ctime stays in the past).
	future := unix.NsecToTimespec(4102444800e9) // 2100-01-01
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, "by-mtime"), []unix.Timespec{future, future}, unix.AT_SYMLINK_NOFOLLOW))
	since := maxCtime(t, root) + 1
	// by-ctime: chmod until its ctime reaches since (the clock ticks).
	for i := 0; ; i++ {
		p := filepath.Join(root, "by-ctime")
		must(t, os.Chmod(p, os.FileMode(0o600+i%2*0o40)))
		var st unix.Stat_t
		must(t, unix.Lstat(p, &st))
		if st.Ctim.Nano() >= since {
			break
		}
	}
	req := e.request(root)
	req.Level, req.SinceUnixNs, req.SendSeen = "Incremental", since, true
	// After the walk the director fetches two unchanged files (as if the
	// catalog lacked their paths) and one gone since (no warning).
	r := e.backupFetch(ctxT(t), req, [][]byte{[]byte(root + "/d/same-3"), []byte(root + "/gone")}, [][]byte{[]byte(root + "/same-1")})
	if r.err != nil {
		t.Fatal(r.err)
	}
	_, _, recs, _, _ := e.sd.snapshot()
	var stored []string
	for _, rec := range recs {
		if rec.Type != "dir" {
			stored = append(stored, strings.TrimPrefix(string(rec.Path), root))
		}
	}
	if want := []string{"/by-ctime", "/by-mtime", "/d/same-3", "/same-1"}; !slices.Equal(stored, want) {
		t.Errorf("stored %v, want %v (the walk's changed files, then the fetched ones)", stored, want)
	}
	if want := []string{root + "/d/same-3", root + "/link", root + "/same-1", root + "/same-2"}; !slices.Equal(r.unchanged, want) {
		t.Errorf("marked unchanged %q, want %q", r.unchanged, want)
	}
	if r.walkDone != 1 || r.done.Fetched != 2 || len(r.warnings) != 0 {
		t.Errorf("walk_done %d, fetched %d, warnings %v", r.walkDone, r.done.Fetched, r.warnings)
	}
	var seen []string
	for _, p := range r.seen {
		seen = append(seen, string(p))
	}
	var want []string
	for _, p := range parents([]string{root}) {
		want = append(want, p+"/")
	}
	for _, n := range []string{"/", "/by-ctime", "/by-mtime", "/d/", "/d/same-3", "/link", "/same-1", "/same-2"} {
		want = append(want, root+n)
	}
	if !slices.Equal(seen, want) {
		t.Errorf("seen\n%q\nwant\n%q", seen, want)
	}
	if r.done.Seen != int64(len(want)) || r.done.Unchanged != 4 || r.done.Files != int64(len(recs)) {
		t.Errorf("done = %v", r.done)
	}
}

// TestKeepaliveWhileNothingIsSent: while the walk has nothing to send,
// filed sends keepalives; the walk here waits until the storage got one.
func TestKeepaliveWhileNothingIsSent(t *testing.T) {
	got := make(chan struct{})
	var e *env
	e = newEnv(t, func(o *Options) {
		o.Keepalive = 10e6 // 10 ms
		first := true
		o.beforeEntry = func(fileEntry) {
			if first {
				first = false
				select {
				case <-e.sd.keepalive:
					close(got)
				case <-ctxT(t).Done():
				}
			}
		}
	})
	root := filepath.Join(t.TempDir(), "k")
	must(t, os.MkdirAll(root, 0o755))
	must(t, os.WriteFile(filepath.Join(root, "f"), []byte("x"), 0o644))
	r := e.backup(ctxT(t), e.request(root))
	if r.err != nil {
		t.Fatal(r.err)
	}
	select {
	case <-got:
	default:
		t.Fatal("the walk went on without the storage receiving a keepalive")
	}
	kinds, _, _, _, _ := e.sd.snapshot()
	if len(kinds) < 2 || kinds[0] != "open" || kinds[1] != "keepalive" {
		t.Fatalf("message kinds %v: want open, keepalive, …", kinds)
	}
}

// TestEstimate counts what a Full and an Incremental would take, and
// lists the entries.
func TestEstimate(t *testing.T) {
	e := newEnv(t, nil)
	root := filepath.Join(t.TempDir(), "est")
	must(t, os.MkdirAll(filepath.Join(root, "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "a"), make([]byte, 1000), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "d/b"), make([]byte, 234), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "x.tmp"), make([]byte, 5), 0o644))
	est := func(since int64) (*pb.EstimateTotals, []string) {
		st, err := e.client.Estimate(ctxT(t), &pb.EstimateRequest{Fileset: &pb.FileSetSpec{Name: "est", Include: []string{root}, Exclude: []string{"*.tmp"}},
			SinceUnixNs: since, Listing: true})
		must(t, err)
		var tot *pb.EstimateTotals
		var list []string
		for {
			m, err := st.Recv()
			if err == io.EOF {
				return tot, list
			}
			must(t, err)
			for _, en := range m.Entries {
				list = append(list, string(en.Path))
			}
			if m.Totals != nil {
				tot = m.Totals
			}
		}
	}
	tot, list := est(0)
	np := int64(len(parents([]string{root})))
	if tot == nil || tot.Files != np+4 || tot.Bytes != 1234 || tot.Excluded != 1 || int64(len(list)) != tot.Files {
		t.Fatalf("Full estimate %v, listing %q: want %d parents + 4 entries, 1234 bytes, 1 excluded", tot, list, np)
	}
	if !slices.Contains(list, root+"/d/") || !slices.Contains(list, root+"/d/b") {
		t.Errorf("listing %q lacks %s/d/ or d/b", list, root)
	}
	tot, _ = est(4102444800e9) // nothing changed since 2100
	if tot.Files != np+2 || tot.Bytes != 0 || tot.Unchanged != 2 {
		t.Fatalf("Incremental estimate %v: want the parents and the 2 directories, 2 unchanged", tot)
	}
}

// TestRefusesPeersOtherThanItsDirector: another director, a storage
// and a console certificate (all signed by the CA) are refused at the
// handshake, and filed logs who.
func TestRefusesPeersOtherThanItsDirector(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.client.Hello(ctxT(t), &pb.FiledHelloRequest{}); err != nil {
		t.Fatalf("the configured director: %v", err)
	}
	for _, p := range []struct{ name, role string }{{"rogue", "director"}, {"sd1", "storage"}, {"admin", "console"}} {
		c := e.dial(e.pki.Issue(t, p.name, p.role))
		ctx, cancel := context.WithTimeout(ctxT(t), 5e9)
		_, err := c.Hello(ctx, &pb.FiledHelloRequest{})
		cancel()
		if err == nil {
			t.Errorf("filed answered %s %q", p.role, p.name)
		}
		want := fmt.Sprintf(`peer="%s \"%s\""`, p.role, p.name)
		waitFor(t, "filed to log the refusal of "+p.name, func() bool {
			return strings.Contains(e.log.String(), "refused a connection") && strings.Contains(e.log.String(), want)
		})
	}
}

// TestStorageErrorFailsTheBackup: storaged's error ends the backup with
// its code and message.
func TestStorageErrorFailsTheBackup(t *testing.T) {
	e := newEnv(t, nil)
	e.sd.failAfterData = status.Error(codes.ResourceExhausted, "no appendable volume in pool Full")
	tr := makeTree(t)
	r := e.backup(ctxT(t), e.request(tr.root))
	if status.Code(r.err) != codes.ResourceExhausted || !strings.Contains(r.err.Error(), "storage sd1: no appendable volume in pool Full") || r.done != nil {
		t.Fatalf("backup ended with %v (done %v), want the storage's error", r.err, r.done)
	}
	// A wrong token: refused by the storage, the backup fails.
	req := e.request(tr.root)
	req.Token = "stolen"
	r = e.backup(ctxT(t), req)
	if status.Code(r.err) != codes.PermissionDenied || !strings.Contains(r.err.Error(), "token") {
		t.Fatalf("with a wrong token: %v", r.err)
	}
}

// TestCancelStopsTheBackup: the director cancelling the call cancels
// the data stream and ends the job.
func TestCancelStopsTheBackup(t *testing.T) {
	e := newEnv(t, nil)
	e.sd.hold = true
	tr := makeTree(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	res := make(chan result, 1)
	go func() { res <- e.backup(ctx, e.request(tr.root)) }()
	select {
	case <-e.sd.gotData:
	case <-ctxT(t).Done():
		t.Fatal("no data reached the storage")
	}
	cancel()
	r := <-res
	if status.Code(r.err) != codes.Canceled {
		t.Fatalf("backup ended with %v, want Canceled", r.err)
	}
	select {
	case <-e.sd.ended:
	case <-ctxT(t).Done():
		t.Fatal("the data stream was not cancelled")
	}
	e.sd.mu.Lock()
	callErr := e.sd.callErr
	e.sd.mu.Unlock()
	if !errors.Is(callErr, context.Canceled) {
		t.Fatalf("the storage's call ended with %v, want its context cancelled", callErr)
	}
	waitFor(t, "filed to end the job", func() bool {
		h, err := e.client.Hello(ctxT(t), &pb.FiledHelloRequest{})
		return err == nil && len(h.RunningJobs) == 0
	})
	waitFor(t, "filed to log the cancelled job", func() bool { return strings.Contains(e.log.String(), "result=canceled") })
}

// TestBadRequests: a bad fileset or a request without a session is
// InvalidArgument naming the field.
func TestBadRequests(t *testing.T) {
	e := newEnv(t, nil)
	req := e.request("relative/path", "/ok")
	r := e.backup(ctxT(t), req)
	if status.Code(r.err) != codes.InvalidArgument || !strings.Contains(r.err.Error(), `Include[0] "relative/path" is not an absolute path`) {
		t.Fatalf("bad include: %v", r.err)
	}
	req = e.request("/tmp")
	req.Fileset.Exclude = []string{"a/b"}
	if r := e.backup(ctxT(t), req); status.Code(r.err) != codes.InvalidArgument || !strings.Contains(r.err.Error(), "Exclude[0]") {
		t.Fatalf("bad exclude: %v", r.err)
	}
	req = e.request("/tmp")
	req.Token = ""
	if r := e.backup(ctxT(t), req); status.Code(r.err) != codes.InvalidArgument || !strings.Contains(r.err.Error(), "BackupRequest.token is empty") {
		t.Fatalf("no token: %v", r.err)
	}
}

// TestFileChangedWhileRead: a file that grows between the walk's lstat
// and its read is stored with the size the walk saw, and reported as a
// "changed" warning; the job goes on.
func TestFileChangedWhileRead(t *testing.T) {
	root := filepath.Join(t.TempDir(), "ch")
	must(t, os.MkdirAll(root, 0o755))
	grows := filepath.Join(root, "grows")
	must(t, os.WriteFile(grows, []byte("0123456789"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "z-after"), []byte("after"), 0o644))
	e := newEnv(t, func(o *Options) {
		o.beforeEntry = func(en fileEntry) {
			if en.Path == grows {
				f, err := os.OpenFile(grows, os.O_APPEND|os.O_WRONLY, 0)
				must(t, err)
				_, err = f.WriteString(" and more")
				must(t, err)
				must(t, f.Close())
			}
		}
	})
	r := e.backup(ctxT(t), e.request(root))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.warnings) != 1 || string(r.warnings[0].Path) != grows || r.warnings[0].Op != "changed" || !strings.Contains(r.warnings[0].Message, "size 19 after reading, 10 when listed") {
		t.Fatalf("warnings %v", r.warnings)
	}
	_, _, recs, _, _ := e.sd.snapshot()
	var got []string
	for _, rec := range recs {
		if rec.Type == "file" {
			got = append(got, fmt.Sprintf("%s %d", strings.TrimPrefix(string(rec.Path), root), rec.Size))
		}
	}
	if want := []string{"/grows 10", "/z-after 5"}; !slices.Equal(got, want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
	if r.done.Warnings != 1 {
		t.Fatalf("done %v", r.done)
	}
}

// TestManySeenPathsAndRecords: more paths than a seen batch and more
// members than a record slab: every seen path and every record (path,
// digest, link target) is the member's own, none overwritten by a later
// one sharing its arena.
func TestManySeenPathsAndRecords(t *testing.T) {
	e := newEnv(t, nil)
	root := filepath.Join(t.TempDir(), "many")
	want := map[string][32]byte{}
	var wantSeen []string
	for _, p := range parents([]string{root}) {
		wantSeen = append(wantSeen, p+"/")
	}
	wantSeen = append(wantSeen, root+"/")
	n := seenBatchPaths + recordSlab + 17
	for d := range 3 {
		dir := filepath.Join(root, fmt.Sprintf("dir%d", d))
		must(t, os.MkdirAll(dir, 0o755))
		wantSeen = append(wantSeen, dir+"/")
		var names []string
		for i := d; i < n; i += 3 {
			names = append(names, fmt.Sprintf("f%0*d", 1+i%40, i)) // lengths vary
		}
		slices.Sort(names)
		for _, name := range names {
			p := filepath.Join(dir, name)
			data := []byte("content of " + p)
			must(t, os.WriteFile(p, data, 0o644))
			want[p] = sha256.Sum256(data)
			wantSeen = append(wantSeen, p)
		}
	}
	must(t, os.Symlink("dir0", filepath.Join(root, "zlink")))
	wantSeen = append(wantSeen, filepath.Join(root, "zlink"))
	req := e.request(root)
	req.SendSeen = true
	req.Fileset.Xattrs = false
	r := e.backup(ctxT(t), req)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var seen []string
	for _, p := range r.seen {
		seen = append(seen, string(p))
	}
	if !slices.Equal(seen, wantSeen) {
		t.Fatalf("%d seen paths, want %d; first difference at %d", len(seen), len(wantSeen), firstDiff(seen, wantSeen))
	}
	_, _, recs, _, problems := e.sd.snapshot()
	if len(problems) > 0 {
		t.Fatalf("the storage saw: %v", problems)
	}
	files, links := 0, 0
	for _, rec := range recs {
		switch rec.Type {
		case "file":
			files++
			if sum, ok := want[string(rec.Path)]; !ok || !bytes.Equal(rec.Sha256, sum[:]) {
				t.Fatalf("record %q: digest %x, want %x (known path: %t)", rec.Path, rec.Sha256, sum, ok)
			}
		case "symlink":
			links++
			if string(rec.Path) != filepath.Join(root, "zlink") || string(rec.Linkname) != "dir0" {
				t.Fatalf("symlink record %q → %q", rec.Path, rec.Linkname)
			}
		}
	}
	if files != n || links != 1 {
		t.Fatalf("%d file records, %d symlink records; want %d and 1", files, links, n)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestSeenBatchesKeepTheirPaths: batches queued (not yet sent) keep
// their own paths while later batches are filled.
func TestSeenBatchesKeepTheirPaths(t *testing.T) {
	n := 3*seenBatchPaths + 5
	j := &job{ctx: context.Background(), events: make(chan *pb.BackupEvent, n/seenBatchPaths+2)}
	var want []string
	for i := range n {
		p := fmt.Sprintf("/r/%0*d", 1+i%30, i)
		if err := j.addSeen(p, i%7 == 0, false); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			p += "/"
		}
		want = append(want, p)
	}
	if err := j.flushSeen(); err != nil {
		t.Fatal(err)
	}
	close(j.events)
	var got []string
	batches := 0
	for ev := range j.events {
		batches++
		paths, err := ev.GetSeen().All()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			got = append(got, string(p))
		}
	}
	if batches != 4 || !slices.Equal(got, want) || j.seenN.Load() != int64(n) {
		t.Fatalf("%d batches, %d paths (counted %d), first difference at %d; want 4 batches, %d paths", batches, len(got), j.seenN.Load(), firstDiff(got, want), n)
	}
}

// TestRecordSlabs: records taken from one slab are independent (each
// keeps its own path, link target and digest).
func TestRecordSlabs(t *testing.T) {
	var a recordAlloc
	var recs []*pb.MemberRecord
	n := 3*recordSlab + 1
	for i := range n {
		r := archive.Record{Path: fmt.Sprintf("/f%0*d", 1+i%50, i), Type: archive.TypeReg, Size: int64(i)}
		if i%5 == 0 {
			r.Type, r.Linkname = archive.TypeSymlink, fmt.Sprintf("target-%d", i)
		}
		r.SHA256[0], r.SHA256[31] = byte(i), byte(i>>8)
		recs = append(recs, a.wire(&r))
	}
	for i, m := range recs {
		path := fmt.Sprintf("/f%0*d", 1+i%50, i)
		ok := string(m.Path) == path && m.Size == int64(i) && cap(m.Path) == len(m.Path)
		if i%5 == 0 {
			ok = ok && m.Type == "symlink" && string(m.Linkname) == fmt.Sprintf("target-%d", i) && m.Sha256 == nil
		} else {
			ok = ok && m.Type == "file" && len(m.Sha256) == 32 && m.Sha256[0] == byte(i) && m.Sha256[31] == byte(i>>8) && m.Linkname == nil
		}
		if !ok {
			t.Fatalf("record %d: %v", i, m)
		}
	}
}
