package archive

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestGNUTarAndBsdtarList: both list every member of a written part.
func TestGNUTarAndBsdtarList(t *testing.T) {
	set := memberSet()
	part, _ := writeSet(t, testPartHeader(), set)
	for _, tool := range []string{"tar", "bsdtar"} {
		out, stderr := runTool(t, part, t.TempDir(), tool, "-tvf", "-")
		t.Logf("%s -tvf - stderr: %s", tool, stderr)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != len(set) {
			t.Errorf("%s -tvf - listed %d lines, want %d members:\n%s", tool, len(lines), len(set), out)
			continue
		}
		for i, tm := range set {
			want := tm.m.Path
			if i := strings.IndexAny(want, "\n\xff"); i >= 0 {
				want = want[:i] // the tools print such bytes escaped
			}
			if len(want) > 200 {
				want = want[len(want)-50:]
			}
			if !strings.Contains(lines[i], want) {
				t.Errorf("%s line %d = %q, want it to name %q", tool, i, lines[i], want)
			}
		}
	}
}

// TestGNUTarExtracts: tar -xf gives byte-identical files, links, a
// sparse file with its content and size, and the nanosecond mtime.
func TestGNUTarExtracts(t *testing.T) {
	// Linux refuses to create a 4096-byte path (PATH_MAX counts the NUL):
	// the listing test has it, extraction gets a 4000-byte one.
	var set []testMember
	for _, tm := range memberSet() {
		if len(tm.m.Path) >= 4096 {
			tm.m.Path = tm.m.Path[len(tm.m.Path)-4000:]
		}
		set = append(set, tm)
	}
	part, _ := writeSet(t, testPartHeader(), set)
	for _, tool := range []string{"tar", "bsdtar"} {
		dir := t.TempDir()
		args := []string{"-xf", "-", "--no-same-owner"}
		if tool == "tar" {
			args = append(args, "--xattrs", "--xattrs-include=user.*")
		}
		runTool(t, part, dir, tool, args...)
		for _, tm := range set {
			p := filepath.Join(dir, tm.m.Path)
			fi, err := os.Lstat(p)
			if err != nil {
				if tm.m.Type == TypeChar || tm.m.Type == TypeBlock {
					continue // device nodes need privileges the test may lack
				}
				t.Errorf("%s: %q not extracted: %v", tool, tm.m.Path, err)
				continue
			}
			switch tm.m.Type {
			case TypeReg:
				got, err := os.ReadFile(p)
				if err != nil || string(got) != string(tm.data) {
					t.Errorf("%s: %q extracted with %d bytes (%v), want %d identical bytes", tool, tm.m.Path, len(got), err, len(tm.data))
				}
				if tool == "tar" && !fi.ModTime().Equal(tm.m.Mtime) {
					t.Errorf("%s: %q mtime %v, want %v", tool, tm.m.Path, fi.ModTime(), tm.m.Mtime)
				}
			case TypeSymlink:
				if got, err := os.Readlink(p); err != nil || got != tm.m.Linkname {
					t.Errorf("%s: symlink %q -> %q (%v), want -> %q", tool, tm.m.Path, got, err, tm.m.Linkname)
				}
			case TypeFifo:
				if fi.Mode()&os.ModeNamedPipe == 0 {
					t.Errorf("%s: %q is %v, want a fifo", tool, tm.m.Path, fi.Mode())
				}
			}
		}
		val := make([]byte, 64)
		n, err := syscall.Getxattr(filepath.Join(dir, "top/xattrs"), "user.binary", val)
		if err != nil || string(val[:max(n, 0)]) != "\x01\x00\x00\x02 NUL bytes" {
			t.Errorf("%s: xattr user.binary of top/xattrs = %q (%v), want the bytes with NULs", tool, val[:max(n, 0)], err)
		}
		a, _ := os.Stat(filepath.Join(dir, "top/hard-1"))
		b, _ := os.Stat(filepath.Join(dir, "top/hard-2"))
		if a == nil || b == nil || !os.SameFile(a, b) {
			t.Errorf("%s: top/hard-1 and top/hard-2 are not one file", tool)
		}
	}
}

// TestDecimalDigits: the pax record length's digit count, at every
// power-of-ten boundary.
func TestDecimalDigits(t *testing.T) {
	for _, n := range []int{0, 1, 9, 10, 11, 99, 100, 999, 1000, 99999, 100000, 1 << 40} {
		if got, want := decimalDigits(n), len(strconv.Itoa(n)); got != want {
			t.Errorf("decimalDigits(%d) = %d, want %d", n, got, want)
		}
	}
}
