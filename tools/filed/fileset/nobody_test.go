//go:build linux

package fileset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The unprivileged checks need a process that is not root: as root,
// TestUnprivileged copies the test binary to a world-readable directory
// and runs it as nobody (65534) with childEnv set; TestMain then runs
// unprivilegedChecks instead of the tests.
const childEnv = "FILESET_TEST_UNPRIVILEGED_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		fails := unprivilegedChecks(dir)
		for _, f := range fails {
			fmt.Println("FAIL:", f)
		}
		if len(fails) > 0 {
			os.Exit(1)
		}
		fmt.Println("unprivileged checks ok")
		os.Exit(0)
	}
	code := m.Run()
	cleanupBench()
	os.Exit(code)
}

// makeUnprivilegedTree builds, in dir, what unprivilegedChecks reads.
// Made by root, it is owned by root.
func makeUnprivilegedTree(t *testing.T, dir string) {
	mk(t, dir, "a-readable", "locked/hidden", "secret", "z-after/f")
	for p, mode := range map[string]uint32{"locked": 0, "secret": 0, "a-readable": 0o644} {
		if err := unix.Chmod(filepath.Join(dir, p), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// unprivilegedChecks runs as a non-root user on the tree of
// makeUnprivilegedTree and returns what failed.
func unprivilegedChecks(dir string) []string {
	var fails []string
	failf := func(f string, a ...any) { fails = append(fails, fmt.Sprintf(f, a...)) }
	if os.Geteuid() == 0 {
		return []string{"running as root"}
	}
	var entries []Entry
	var warns []Warning
	var unlisted []string
	_, err := Walk(context.Background(), FileSet{Name: "u", Include: []string{dir}}, WalkOptions{
		Warn:     func(w Warning) { warns = append(warns, w) },
		Unlisted: func(p string) { unlisted = append(unlisted, p) },
	}, func(e Entry) error { entries = append(entries, e); return nil })
	if err != nil {
		failf("walk: %v", err)
	}
	var rel []string
	for _, e := range entries {
		rel = append(rel, strings.TrimPrefix(e.Path, dir))
	}
	// The unreadable directory is an entry (restored empty, with its
	// mode); its contents are a warning; the walk goes on.
	if want := []string{"", "/a-readable", "/locked", "/secret", "/z-after", "/z-after/f"}; strings.Join(rel, ",") != strings.Join(want, ",") {
		failf("entries %q, want %q", rel, want)
	}
	if len(warns) != 1 || warns[0].Path != filepath.Join(dir, "locked") || warns[0].Op != "open" || !errors.Is(warns[0], unix.EACCES) {
		failf("warnings %v, want one: open %s: permission denied", warns, filepath.Join(dir, "locked"))
	}
	// Its contents are unknown, not gone: a job records no deletion below.
	if len(unlisted) != 1 || unlisted[0] != filepath.Join(dir, "locked") {
		failf("unlisted %q, want only %s", unlisted, filepath.Join(dir, "locked"))
	}
	for _, e := range entries {
		switch filepath.Base(e.Path) {
		case "secret":
			_, err := OpenForBackup(e)
			var w *Warning
			if !errors.As(err, &w) || w.Op != "open" || !errors.Is(err, unix.EACCES) || !strings.Contains(err.Error(), "secret: permission denied") {
				failf("open secret: %v, want a permission warning", err)
			}
		case "a-readable":
			// Not ours: O_NOATIME is refused, the open retries without.
			if fd, err := unix.Open(e.Path, unix.O_RDONLY|unix.O_NOATIME, 0); err != unix.EPERM {
				failf("O_NOATIME on a file of another user: %v, want EPERM (the check is void)", err)
				if err == nil {
					unix.Close(fd)
				}
			}
			r, err := OpenForBackup(e)
			if err != nil {
				failf("open a-readable without NOATIME: %v", err)
				continue
			}
			b, err := io.ReadAll(r)
			r.Close()
			if err != nil || string(b) != "data of a-readable" || r.Changed() != nil {
				failf("read a-readable: %q, %v, %v", b, err, r.Changed())
			}
		}
	}
	// Device nodes need CAP_MKNOD.
	if err := unix.Mknod(filepath.Join(os.TempDir(), "fileset-nobody-chr"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); !errors.Is(err, unix.EPERM) {
		failf("mknod as uid %d: %v, want EPERM", os.Geteuid(), err)
	}
	return fails
}

// TestUnprivileged: an unreadable directory and file are warnings and
// the walk goes on; O_NOATIME falls back; mknod is refused. Root reads
// everything, so as root the checks run in a child process as nobody.
func TestUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		dir := t.TempDir()
		makeUnprivilegedTree(t, dir)
		t.Cleanup(func() { os.Chmod(filepath.Join(dir, "locked"), 0o755) })
		for _, f := range unprivilegedChecks(dir) {
			t.Error(f)
		}
		return
	}
	base, err := os.MkdirTemp("", "fileset-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Chmod(filepath.Join(base, "tree", "locked"), 0o755)
		os.RemoveAll(base)
	})
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	child := filepath.Join(base, "fileset.test")
	if err := os.WriteFile(child, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(base, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	makeUnprivilegedTree(t, tree)
	tmp := filepath.Join(base, "tmp") // writable, for the mknod check
	if err := os.Mkdir(tmp, 0o777); err != nil || os.Chmod(tmp, 0o777) != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(child)
	cmd.Dir = base
	cmd.Env = []string{childEnv + "=" + tree, "TMPDIR=" + tmp, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "unprivileged checks ok") {
		t.Fatalf("child as nobody: %v\n%s", err, out)
	}
	t.Logf("child as uid 65534: %s", strings.TrimSpace(string(out)))
}
