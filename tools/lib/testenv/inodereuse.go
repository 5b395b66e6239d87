package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// InodeReuse says whether a directory is on an ext4 file system without
// a journal. There ext4's inode allocator passes over every inode freed
// in the last minute (six while its inode table block is not written
// back), scanning past them at each allocation, so creating many files
// soon after many were deleted is slow: on the 2-core development VM
// (2026-12-04) `tar xf` of 100,000 files of 4 KiB took 17.6 s into a
// fresh directory and 60 s and 77 s right after a tree of 100,000 was
// removed. A benchmark that creates many files measures both sides
// after the same removals, or neither: it keeps what it created until
// it ends.
type InodeReuse struct {
	Dir     string // the directory looked at
	Delayed bool   // ext4 without a journal
	Device  string // the file system's block device (its kernel name)
}

// InodeReuseOf looks at the file system dir is on.
func InodeReuseOf(dir string) InodeReuse {
	var fs unix.Statfs_t
	var st unix.Stat_t
	if unix.Statfs(dir, &fs) != nil || fs.Type != unix.EXT4_SUPER_MAGIC || unix.Stat(dir, &st) != nil {
		return InodeReuse{}
	}
	r := ext4InodeReuse("/", unix.Major(st.Dev), unix.Minor(st.Dev))
	r.Dir = dir
	return r
}

// ext4InodeReuse finds the block device major:minor in sysfs under root
// and whether jbd2 runs a journal for it (procfs names an internal
// journal DEVICE-8, after its inode).
func ext4InodeReuse(root string, major, minor uint32) InodeReuse {
	link, err := os.Readlink(filepath.Join(root, "sys/dev/block", fmt.Sprintf("%d:%d", major, minor)))
	if err != nil {
		return InodeReuse{}
	}
	dev := filepath.Base(link)
	if _, err := os.Stat(filepath.Join(root, "proc/fs/jbd2", dev+"-8")); err == nil {
		return InodeReuse{Device: dev}
	}
	return InodeReuse{Delayed: true, Device: dev}
}

// Warn logs, when Delayed, what the figures of a benchmark that creates
// many files are worth and how to measure the code instead.
func (r InodeReuse) Warn(tb testing.TB) {
	tb.Helper()
	if !r.Delayed {
		return
	}
	tb.Logf("WARNING: %s is on ext4 without a journal (/dev/%s): for a minute or more after many files were "+
		"deleted (the benchmark before this one, or a tree removed by hand), creating files there runs up to 4× "+
		"slower, on whichever side comes first. To measure the code, leave six minutes after such a removal, or "+
		"set TMPDIR to a file system with a journal", r.Dir, r.Device)
}
