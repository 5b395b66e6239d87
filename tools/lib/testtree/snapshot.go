//go:build linux

package testtree

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// Entry is one path of a tree as Snapshot saw it.
type Entry struct {
	Path   string // absolute, no trailing '/' (raw bytes)
	Type   string // "file", "dir", "symlink", "fifo", "char", "block", "socket"
	Size   int64  // regular files
	Mode   uint32 // st_mode & 07777
	Link   string // symlink target
	SHA256 [32]byte
	Dev    uint64
	Ino    uint64
	Nlink  uint64
	Mtime  time.Time
	Ctime  time.Time
}

// Snapshot maps every path of a tree (root included) to its entry.
type Snapshot map[string]Entry

// Take walks root without following symlinks, relative to open
// directories (so paths longer than PATH_MAX work), hashing every regular
// file.
func Take(root string) (Snapshot, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("testtree: %s: %w", root, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	s := Snapshot{root: entryOf(root, &st)}
	return s, s.walk(fd, root, make([]byte, 1<<20))
}

// walk adds dir's entries; buf is the read buffer, shared by every file.
func (s Snapshot) walk(dirfd int, dir string, buf []byte) error {
	dup, err := unix.Dup(dirfd)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(dup), dir)
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("testtree: reading %q: %w", dir, err)
	}
	for _, name := range names {
		p := dir + "/" + name
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("testtree: lstat %q: %w", p, err)
		}
		e := entryOf(p, &st)
		switch e.Type {
		case "dir":
			cfd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("testtree: open %q: %w", p, err)
			}
			err = s.walk(cfd, p, buf)
			unix.Close(cfd)
			if err != nil {
				return err
			}
		case "symlink":
			buf := make([]byte, 4096)
			n, err := unix.Readlinkat(dirfd, name, buf)
			if err != nil {
				return fmt.Errorf("testtree: readlink %q: %w", p, err)
			}
			e.Link = string(buf[:n])
		case "file":
			ffd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("testtree: open %q: %w", p, err)
			}
			h := sha256.New()
			err = hashFile(h, ffd, st.Size, st.Blocks*512 < st.Size, buf)
			unix.Close(ffd)
			if err != nil {
				return fmt.Errorf("testtree: read %q: %w", p, err)
			}
			h.Sum(e.SHA256[:0])
		}
		s[p] = e
	}
	return nil
}

// zeros stands for a sparse file's holes.
var zeros = make([]byte, 1<<20)

// hashFile writes the size bytes of the file fd into h, reading with buf.
// A sparse file's holes (between SEEK_DATA and SEEK_HOLE extents) read as
// zeros: they are written from memory instead of read through the kernel.
func hashFile(h io.Writer, fd int, size int64, sparse bool, buf []byte) error {
	for off := int64(0); off < size; {
		data, hole := off, size
		if sparse {
			d, err := unix.Seek(fd, off, unix.SEEK_DATA)
			switch {
			case err == unix.ENXIO: // only a hole up to the end
				d = size
			case err != nil: // no SEEK_DATA here: read it all
				sparse, d = false, off
			}
			data = d
			if data < size && sparse {
				if e, err := unix.Seek(fd, data, unix.SEEK_HOLE); err == nil && e > data {
					hole = e
				}
			}
		}
		for n := data - off; n > 0; {
			k := min(n, int64(len(zeros)))
			h.Write(zeros[:k])
			n -= k
		}
		for off = data; off < hole; {
			n, err := unix.Pread(fd, buf[:min(int64(len(buf)), hole-off)], off)
			if err != nil {
				return err
			}
			if n == 0 {
				return io.ErrUnexpectedEOF
			}
			h.Write(buf[:n])
			off += int64(n)
		}
	}
	return nil
}

func entryOf(p string, st *unix.Stat_t) Entry {
	e := Entry{Path: p, Mode: st.Mode & 0o7777, Dev: st.Dev, Ino: st.Ino, Nlink: uint64(st.Nlink),
		Mtime: time.Unix(st.Mtim.Unix()), Ctime: time.Unix(st.Ctim.Unix())}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Type, e.Size = "file", st.Size
	case unix.S_IFDIR:
		e.Type = "dir"
	case unix.S_IFLNK:
		e.Type = "symlink"
	case unix.S_IFIFO:
		e.Type = "fifo"
	case unix.S_IFCHR:
		e.Type = "char"
	case unix.S_IFBLK:
		e.Type = "block"
	default:
		e.Type = "socket"
	}
	return e
}

// ChangedSince returns the entries whose mtime or ctime is at or after t
// (the rule of an Incremental or Differential, shared/docs/jobs.md §2).
func (s Snapshot) ChangedSince(t time.Time) Snapshot {
	out := Snapshot{}
	for p, e := range s {
		if !e.Mtime.Before(t) || !e.Ctime.Before(t) {
			out[p] = e
		}
	}
	return out
}

// Only returns the entries of the given paths (absolute); a path not in
// s is left out.
func (s Snapshot) Only(paths ...string) Snapshot {
	out := Snapshot{}
	for _, p := range paths {
		if e, ok := s[p]; ok {
			out[p] = e
		}
	}
	return out
}

// Files counts the regular files and their bytes (hard-linked inodes
// once).
func (s Snapshot) Files() (n int, bytes int64) {
	seen := map[[2]uint64]bool{}
	for _, e := range s {
		if e.Type != "file" {
			continue
		}
		k := [2]uint64{e.Dev, e.Ino}
		if e.Nlink > 1 && seen[k] {
			continue
		}
		seen[k] = true
		n++
		bytes += e.Size
	}
	return n, bytes
}

// Parents returns the directories above root, root's parent first (not
// "/"). A backup may store them so that a restore recreates them with
// their owner and mode (filed does, in every job).
func Parents(root string) []string {
	var out []string
	for d := filepath.Dir(root); d != "/" && d != "."; d = filepath.Dir(d) {
		out = append(out, d)
	}
	return out
}

// DropParents returns files without the rows of root's Parents that are
// directories.
func DropParents(files []File, root string) []File {
	var out []File
	for _, f := range files {
		if f.Type == "dir" && slices.Contains(Parents(root), f.Path) {
			continue
		}
		out = append(out, f)
	}
	return out
}
