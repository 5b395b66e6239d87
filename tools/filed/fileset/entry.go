//go:build linux

package fileset

import (
	"fmt"
	"os/user"
	"strconv"
	"time"
	"unicode/utf8"
)

// Type is the kind of an entry, as the archive stores it.
type Type uint8

const (
	TypeRegular Type = iota + 1
	TypeDir
	TypeSymlink
	// TypeHardlink is the second and later sighting of an inode with
	// more than one link: Linkname is the path of the first sighting,
	// whose entry carries the data.
	TypeHardlink
	TypeFifo
	TypeChar
	TypeBlock
)

func (t Type) String() string {
	switch t {
	case TypeRegular:
		return "regular"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	case TypeHardlink:
		return "hardlink"
	case TypeFifo:
		return "fifo"
	case TypeChar:
		return "char"
	case TypeBlock:
		return "block"
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// Extent is a data region of a sparse file; what lies between extents
// (and after the last one, up to Size) is a hole that reads as zeros.
type Extent struct {
	Offset, Length int64
}

// Entry is one file system object of the walk. Entries are passed by
// value; the walker keeps no reference to them.
type Entry struct {
	// Path is absolute and clean, made of the raw bytes the kernel
	// returned: newlines and invalid UTF-8 are preserved, and it may be
	// longer than PATH_MAX.
	Path string
	Type Type
	// Mode holds the permission bits with setuid, setgid and sticky
	// (st_mode & 07777), as tar stores them.
	Mode         uint32
	UID, GID     uint32
	Uname, Gname string // "" when the id has no name on this host
	// Size is the length in bytes of a regular file (0 for every other
	// type, hard links included: their data is in the first sighting).
	Size int64
	// Allocated is st_blocks × 512: the bytes the file occupies on disk.
	Allocated           int64
	Mtime, Ctime, Atime time.Time // nanosecond precision
	Dev, Ino, Nlink     uint64
	// Rdev is the device number of a char or block device.
	Rdev uint64
	// Linkname is the target of a symlink (raw bytes) or, for a
	// hardlink, the Path of the inode's first sighting.
	Linkname string
	// Xattrs maps each extended attribute name, as the kernel lists it
	// (user.…, trusted.…, security.…), to its raw value; nil unless
	// FileSet.Xattrs and the entry has any.
	Xattrs map[string]string
	// Sparse is set for a regular file with holes; Data then lists its
	// data regions in order (empty when the file is one hole).
	Sparse bool
	Data   []Extent
	// Unchanged is set, when WalkOptions.Since is set, on a
	// non-directory entry whose mtime and ctime are both before Since:
	// its data need not be read again, only its path recorded (so the
	// job knows it still exists). Directories are never Unchanged.
	Unchanged bool

	dir  *dirHandle // the open parent directory, while the walk is in it
	name string     // the name within dir (the whole Path for a root)
	// xattrsAtOpen: WalkOptions.FileXattrsAtOpen left the xattrs to
	// OpenForBackup.
	xattrsAtOpen bool
}

// Changed reports whether the entry's data or metadata changed at or
// after since: mtime ≥ since or ctime ≥ since (ctime catches renames,
// chmod, and files restored with an old mtime).
func (e *Entry) Changed(since time.Time) bool {
	return !e.Mtime.Before(since) || !e.Ctime.Before(since)
}

// Warning is a problem with one path that does not stop the walk: the
// job goes on and ends with status W.
type Warning struct {
	Path string
	Op   string // what failed: "lstat", "open", "readdir", "readlink", "xattr", "read"
	Err  error
}

func (w Warning) Error() string {
	return w.Op + " " + showPath(w.Path) + ": " + w.Err.Error()
}

func (w Warning) Unwrap() error { return w.Err }

// Note is information about a path that is deliberately not (fully)
// backed up: a socket, a mount point not crossed, a cache directory.
// A note is not a warning.
type Note struct {
	Path string
	Msg  string
}

func (n Note) String() string { return showPath(n.Path) + ": " + n.Msg }

// showPath returns p as is when it is printable UTF-8 without
// newlines, and Go-quoted otherwise, so a log line stays one line.
func showPath(p string) string {
	if !utf8.ValidString(p) {
		return strconv.Quote(p)
	}
	for _, r := range p {
		if !strconv.IsPrint(r) {
			return strconv.Quote(p)
		}
	}
	return p
}

// IDNames caches user and group names by id (lookups are slow and a
// walk meets few distinct ids, mostly the same as the entry before); an
// id with no name has "". Not for concurrent use.
type IDNames struct {
	users, groups idCache
}

// idCache maps ids to names, the last one looked up in front of the map.
type idCache struct {
	last     uint32
	lastName string
	have     bool
	names    map[uint32]string
}

func (c *idCache) name(id uint32, lookup func(id string) string) string {
	if c.have && c.last == id {
		return c.lastName
	}
	n, ok := c.names[id]
	if !ok {
		if c.names == nil {
			c.names = map[uint32]string{}
		}
		n = lookup(strconv.FormatUint(uint64(id), 10))
		c.names[id] = n
	}
	c.last, c.lastName, c.have = id, n, true
	return n
}

// User is the name of user id.
func (c *IDNames) User(id uint32) string { return c.users.name(id, userName) }

// Group is the name of group id.
func (c *IDNames) Group(id uint32) string { return c.groups.name(id, groupName) }

func userName(id string) string {
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return ""
}

func groupName(id string) string {
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name
	}
	return ""
}

// ChangedError says a file changed while it was read. The archive
// holds exactly the Size bytes its header declared (padded with zeros
// if the file shrank); the caller reports it as a warning (job W).
type ChangedError struct {
	Path   string
	Reason string
}

func (e *ChangedError) Error() string {
	return fmt.Sprintf("file changed while read: %s: %s", showPath(e.Path), e.Reason)
}
