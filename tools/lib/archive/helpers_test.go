package archive

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// needTar returns the path of GNU tar or bsdtar; a missing one fails the
// test (CI installs both: .ci/run).
func needTar(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (%v): apt-get install libarchive-tools tar", name, err)
	}
	if name == "tar" {
		out, err := exec.Command(p, "--version").Output()
		if err != nil || !bytes.Contains(out, []byte("GNU tar")) {
			t.Fatalf("%s is not GNU tar (%q, %v): apt-get install tar", p, out, err)
		}
	}
	return p
}

// runTool runs a tar with stdin and returns stdout; it fails the test on
// a non-zero exit, showing stderr.
func runTool(t *testing.T, stdin []byte, dir string, name string, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(needTar(t, name), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstderr:\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.String(), errb.String()
}

// testMember is a member and its data (nil for non-files; for a sparse
// file, the whole file with its holes).
type testMember struct {
	m    Member
	data []byte
}

// sparseData returns the data regions' bytes of a whole file.
func (tm testMember) stream() io.Reader {
	if tm.data == nil {
		return nil
	}
	if tm.m.Sparse == nil {
		return bytes.NewReader(tm.data)
	}
	var rs []io.Reader
	for _, s := range tm.m.Sparse {
		rs = append(rs, bytes.NewReader(tm.data[s.Offset:s.Offset+s.Length]))
	}
	return io.MultiReader(rs...)
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

var testTime = time.Date(2025, 6, 1, 12, 30, 0, 123456789, time.UTC)

// memberSet is the deterministic member set of the golden file and the
// tar tests: every kind of name and member the writer handles.
func memberSet() []testMember {
	long := "deep/" + strings.Repeat("d123456789/", 380) + "f"
	long = long[:4096-len("end")] + "end"
	sparse := make([]byte, 3*4096+100)
	copy(sparse[4096:], pattern(4096, 7))
	copy(sparse[3*4096:], pattern(100, 8))
	base := func(p string, t Type) Member {
		return Member{Path: p, Type: t, Mode: 0o644, UID: 1000, GID: 1000, Uname: "alice", Gname: "staff", Mtime: testTime}
	}
	var set []testMember
	add := func(m Member, data []byte) {
		if m.Type == TypeReg {
			m.Size = int64(len(data))
		}
		set = append(set, testMember{m, data})
	}
	d := base("top", TypeDir)
	d.Mode = 0o755
	add(d, nil)
	add(base("top/plain.txt", TypeReg), []byte("hello, tape\n"))
	add(base("top/with space and ünïcödé.txt", TypeReg), pattern(1000, 1))
	add(base("top/new\nline", TypeReg), []byte("newline in the name\n"))
	add(base("top/bad-utf8-\xff\xfe", TypeReg), []byte("not UTF-8\n"))
	add(base(long, TypeReg), pattern(513, 2))
	add(base("top/empty", TypeReg), []byte{})
	sec := base("top/whole-second", TypeReg)
	sec.Mtime = time.Unix(1700000000, 0)
	add(sec, pattern(512, 3))
	big := base("top/big-ids", TypeReg)
	big.UID, big.GID, big.Uname, big.Gname = 4_000_000_000, 3_000_000, "a-very-long-user-name-over-32-bytes", "gröup"
	add(big, []byte("large ids\n"))
	x := base("top/xattrs", TypeReg)
	x.Xattrs = map[string]string{"user.comment": "a note", "security.selinux": "system_u:object_r:etc_t:s0\x01bin", "user.binary": "\x01\x00\x00\x02 NUL bytes"}
	add(x, []byte("xattrs\n"))
	sl := base("top/link-to-plain", TypeSymlink)
	sl.Linkname = "plain.txt"
	sl.Mode = 0o777
	add(sl, nil)
	sll := base("top/long-symlink", TypeSymlink)
	sll.Linkname = strings.Repeat("x/", 100) + "target"
	add(sll, nil)
	h1 := base("top/hard-1", TypeReg)
	h1.Dev, h1.Ino, h1.Nlink = 1, 42, 2
	add(h1, []byte("stored once\n"))
	h2 := h1
	h2.Path = "top/hard-2"
	add(h2, []byte("stored once\n"))
	add(base("top/fifo", TypeFifo), nil)
	c := base("top/null", TypeChar)
	c.Devmajor, c.Devminor = 1, 3
	add(c, nil)
	b := base("top/sda", TypeBlock)
	b.Devmajor, b.Devminor = 8, 0
	add(b, nil)
	sp := base("top/sparse", TypeReg)
	sp.Sparse = []Span{{4096, 4096}, {3 * 4096, 100}}
	add(sp, sparse)
	hole := base("top/ends-in-hole", TypeReg)
	hole.Sparse = []Span{{0, 10}}
	hd := make([]byte, 10000)
	copy(hd, "ten bytes!")
	add(hole, hd)
	return set
}

// writeSet writes the member set as one whole part (part header, members,
// end of archive) and returns the bytes and the records.
func writeSet(t testing.TB, ph PartHeader, set []testMember) ([]byte, []Record) {
	t.Helper()
	hb, err := ph.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.Write(hb)
	recs := writeTo(t, &buf, set)
	// Records' offsets are stream offsets; the part starts at len(hb).
	for i := range recs {
		recs[i].HeaderOffset += int64(len(hb))
		recs[i].DataOffset += int64(len(hb))
	}
	return buf.Bytes(), recs
}

// writeTo writes the members and the end of archive to dst (a new
// Writer: stream offsets from 0) and returns the records.
func writeTo(t testing.TB, dst io.Writer, set []testMember) []Record {
	t.Helper()
	w := NewWriter(dst)
	var recs []Record
	for _, tm := range set {
		rec, err := w.WriteMember(tm.m, tm.stream())
		if err != nil {
			t.Fatalf("WriteMember %q: %v", tm.m.Path, err)
		}
		recs = append(recs, rec)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return recs
}

func testPartHeader() PartHeader {
	return PartHeader{JobID: 42, Job: "nightly", Client: "web1-fd", FileSet: "Full Set", Level: "Full",
		Part: 1, VolumeSeq: 1, StreamOffset: 0, BlockSize: 1 << 20, Volume: "TW0001L8", TapeFile: 2,
		Created: time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)}
}

func sum(b []byte) [32]byte { return sha256.Sum256(b) }
