//go:build linux

package fileset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// makeFlat creates n files named f000000… in dir (in reverse order, so
// the walk's order is its own), each of size bytes.
func makeFlat(tb testing.TB, dir string, n, size int) {
	tb.Helper()
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer unix.Close(dfd)
	data := bytes.Repeat([]byte{'x'}, size)
	for i := n - 1; i >= 0; i-- {
		fd, err := unix.Openat(dfd, fmt.Sprintf("f%06d", i), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			tb.Fatal(err)
		}
		if size > 0 {
			if _, err := unix.Write(fd, data); err != nil {
				tb.Fatal(err)
			}
		}
		unix.Close(fd)
	}
}

var errOrder = errors.New("not in byte order")

// Test100kFiles: 100,000 files in one directory come out in byte
// order, and the walk's live heap stays within the documented bound
// (names + 4 bytes a name, not a struct per entry); allocations per
// entry are bounded too.
func Test100kFiles(t *testing.T) {
	const n = 100_000
	root := t.TempDir()
	big := filepath.Join(root, "big")
	os.Mkdir(big, 0o755)
	makeFlat(t, big, n, 0)

	var before, mid, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	count := 0
	prev := ""
	bigPrefix := big + "/"
	_, err := Walk(context.Background(), FileSet{Name: "big", Include: []string{root}}, WalkOptions{
		Warn: func(w Warning) { t.Errorf("warning %v", w) },
	}, func(e Entry) error {
		if !strings.HasPrefix(e.Path, bigPrefix) {
			return nil
		}
		if e.Path <= prev {
			return errOrder // no allocation in the callback
		}
		prev = e.Path
		if count++; count == n/2 {
			runtime.GC()
			runtime.ReadMemStats(&mid)
		}
		return nil
	})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("%v at entry %d (after %s)", err, count, prev)
	}
	if count != n || prev != filepath.Join(big, fmt.Sprintf("f%06d", n-1)) {
		t.Fatalf("%d entries, last %s", count, prev)
	}
	// Names here are 7 bytes: 8 with the NUL + 4 for the offset = 1.2
	// MB, at most doubled by append growth, + the 64 KiB getdents
	// buffer. A walker holding an os.DirEntry or an Entry per name
	// would need 10–25 MB.
	live := int64(mid.HeapAlloc) - int64(before.HeapAlloc)
	const bound = 4 << 20
	if live > bound {
		t.Errorf("live heap in a 100k directory: %d bytes, bound %d", live, bound)
	}
	// One allocation per entry: its Path.
	allocs := float64(after.Mallocs-before.Mallocs) / n
	if allocs > 1.2 {
		t.Errorf("%.2f allocations per entry, want ≤ 1.2", allocs)
	}
	t.Logf("100k entries: live heap %d KiB, %.2f allocations per entry", live>>10, allocs)
}

// TestOneFileSystem: /dev/shm is a tmpfs under /dev (devtmpfs). With
// OneFileSystem the walk of /dev keeps /dev/shm as an entry and does
// not descend; an include root under it is walked on its own device;
// two roots on different devices are both walked.
func TestOneFileSystem(t *testing.T) {
	if statT(t, "/dev").Dev == statT(t, "/dev/shm").Dev {
		t.Skip("/dev/shm is not a separate file system here: no device boundary to test")
	}
	shm, err := os.MkdirTemp("/dev/shm", "fileset-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	mk(t, shm, "inner/file")
	inner := filepath.Join(shm, "inner/file")

	has := func(r result, p string) bool {
		for _, e := range r.entries {
			if e.Path == p {
				return true
			}
		}
		return false
	}
	r := walk(t, FileSet{Include: []string{"/dev"}, OneFileSystem: true}, WalkOptions{})
	if !has(r, "/dev/shm") || has(r, inner) || r.stats.MountPoints < 1 {
		t.Fatalf("one filesystem: /dev/shm %t, %s %t, mount points %d", has(r, "/dev/shm"), inner, has(r, inner), r.stats.MountPoints)
	}
	for _, e := range r.entries {
		if strings.HasPrefix(e.Path, "/dev/shm/") {
			t.Fatalf("descended into /dev/shm: %s", e.Path)
		}
	}
	noted := false
	for _, n := range r.notes {
		noted = noted || (n.Path == "/dev/shm" && strings.Contains(n.Msg, "another filesystem"))
	}
	if !noted {
		t.Errorf("no note for /dev/shm: %v", r.notes)
	}

	r = walk(t, FileSet{Include: []string{"/dev"}}, WalkOptions{})
	if !has(r, inner) {
		t.Fatalf("without OneFileSystem %s is not walked", inner)
	}

	// An include root under the boundary is walked, once.
	r = walk(t, FileSet{Include: []string{"/dev", shm}, OneFileSystem: true}, WalkOptions{})
	seen := map[string]int{}
	for _, e := range r.entries {
		seen[e.Path]++
	}
	if seen[inner] != 1 || seen[shm] != 1 || seen["/dev/shm"] != 1 {
		t.Fatalf("nested root: %s ×%d, %s ×%d, /dev/shm ×%d", inner, seen[inner], shm, seen[shm], seen["/dev/shm"])
	}
	// Each root has its own device.
	disk := t.TempDir()
	mk(t, disk, "d/f")
	r = walk(t, FileSet{Include: []string{disk, shm}, OneFileSystem: true}, WalkOptions{})
	if !has(r, inner) || !has(r, filepath.Join(disk, "d/f")) || r.stats.MountPoints != 0 {
		t.Fatalf("two roots on two devices: %q", r.paths())
	}
}
