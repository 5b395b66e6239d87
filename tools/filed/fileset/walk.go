//go:build linux

package fileset

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WalkOptions tune a walk; the zero value walks a Full.
type WalkOptions struct {
	// Since, when not zero, is the since-time of an Incremental or
	// Differential: non-directory entries whose mtime and ctime are both
	// before it are marked Unchanged.
	Since time.Time
	// SkipUnchanged: do not call fn for Unchanged entries (they are
	// still counted in Stats.Unchanged). Leave it false when the job
	// records deletions from the list of paths the client saw.
	SkipUnchanged bool
	// Warn receives each warning (may be nil: they are still counted).
	Warn func(Warning)
	// Note receives each note (may be nil).
	Note func(Note)
	// Unlisted (may be nil) receives each path whose contents the walk
	// could not see although they may exist: a directory it could not
	// open or read to the end, an entry it could not lstat (for another
	// reason than being gone). What lies there is unknown, not deleted.
	Unlisted func(path string)
	// FileXattrsAtOpen (with FileSet.Xattrs): the walk does not read a
	// regular file's xattrs; OpenForBackup reads them from the open
	// descriptor (flistxattr, fgetxattr: no path lookup, which through
	// /proc/self/fd costs ~9× more), and Reader.Xattrs returns them.
	// Directories, symlinks and the rest still get theirs from the walk.
	FileXattrsAtOpen bool

	// noData (Estimate) skips what only the archive needs: sparse
	// maps and xattrs.
	noData bool
}

// Stats counts what a walk saw. The counts by type (Dirs … Specials)
// and Bytes, Allocated, Sparse are of the entries the job stores: not
// of the Unchanged ones, which Unchanged counts.
type Stats struct {
	Entries                int64 // calls of fn
	Dirs, Files, Symlinks  int64
	Hardlinks, Specials    int64 // Specials: fifos and devices
	Unchanged              int64 // entries marked Unchanged
	Bytes, Allocated       int64 // apparent and allocated size of the regular files not Unchanged
	Sparse                 int64 // regular files with holes
	Excluded               int64 // entries an Exclude pattern matched (a directory counts once)
	CachesExcluded         int64 // directories whose contents CACHEDIR.TAG excluded
	MountPoints            int64 // directories on another filesystem not descended (OneFileSystem)
	Sockets                int64 // sockets skipped
	Warnings, MissingRoots int64
}

// readdirBuf is the size of the buffer handed to getdents64: one
// system call returns up to ~2,000 names.
const readdirBuf = 64 << 10

// Walk walks the fileset and calls fn for each entry: roots in byte
// order, depth first, a directory before its contents, names within a
// directory in byte order. It never follows a symlink. An error from fn
// stops the walk and is returned, except fs.SkipDir returned for a
// directory: its contents are skipped. Problems with single paths are
// warnings (opts.Warn); the walk goes on. Walk returns a non-nil error
// only for an invalid fileset, a cancelled ctx, or fn's error.
//
// Memory: a directory's names are read in batches with getdents64 and
// kept, sorted, in one byte arena per open directory level (name bytes
// + 5 bytes per name: a NUL and an offset), so a walk holds the names of the directories on
// the current path — not the tree — plus one open descriptor per level
// and, for inodes with several links not yet all seen, their first
// path.
func Walk(ctx context.Context, fset FileSet, opts WalkOptions, fn func(Entry) error) (Stats, error) {
	if err := fset.Validate(); err != nil {
		return Stats{}, err
	}
	if fn == nil {
		fn = func(Entry) error { return nil }
	}
	w := &walker{ctx: ctx, fs: fset, opts: opts, fn: fn, roots: fset.roots(),
		links: map[devIno]*firstLink{}}
	for _, src := range fset.Exclude {
		p, _ := compilePattern(src)
		w.excl = append(w.excl, p)
	}
	w.visited = map[string]bool{}
	for _, r := range w.roots {
		var st unix.Stat_t
		if err := unix.Lstat(r, &st); errors.Is(err, unix.ENOENT) {
			w.stats.MissingRoots++
			w.warn(r, "include root", errors.New("does not exist"))
			w.visited[r] = true
		}
	}
	for _, r := range w.roots {
		if w.visited[r] || w.ancestorRoot(r) {
			continue // missing, or walked from its ancestor
		}
		if err := w.root(r); err != nil {
			return w.stats, err
		}
	}
	// A nested root the walk did not reach (its parent vanished
	// meanwhile, say) is walked now rather than lost.
	for _, r := range w.roots {
		if !w.visited[r] {
			if err := w.root(r); err != nil {
				return w.stats, err
			}
		}
	}
	return w.stats, nil
}

type devIno struct{ dev, ino uint64 }

type firstLink struct {
	path string
	left uint64 // sightings still expected
}

// dirHandle is an open directory. OpenForBackup opens a file relative
// to it while it is open; mu orders that against the close.
type dirHandle struct {
	mu     sync.RWMutex
	fd     int
	closed bool
}

// cwd stands for "no parent": names are whole paths.
var cwd = &dirHandle{fd: unix.AT_FDCWD}

func (d *dirHandle) close() {
	d.mu.Lock()
	d.closed = true
	unix.Close(d.fd)
	d.mu.Unlock()
}

// nameList is a directory's names: NUL-terminated in one arena,
// referenced by offset.
type nameList struct {
	arena []byte
	refs  []nameRef
}

// nameRef is a name in the arena (NUL-terminated there) with its first 8
// bytes as a big-endian number (zero-padded: a name has no NUL), so that
// most comparisons of a sort need not read the arena.
type nameRef struct {
	key uint64
	off uint32
	n   uint32
}

func (l *nameList) add(name []byte) {
	var k [8]byte
	copy(k[:], name)
	l.refs = append(l.refs, nameRef{key: binary.BigEndian.Uint64(k[:]), off: uint32(len(l.arena)), n: uint32(len(name))})
	l.arena = append(l.arena, name...)
	l.arena = append(l.arena, 0)
}

// of is r's name.
func (l *nameList) of(r nameRef) []byte { return l.arena[r.off : r.off+r.n] }

// sort puts the names in byte order.
func (l *nameList) sort() {
	slices.SortFunc(l.refs, func(a, b nameRef) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		return bytes.Compare(l.of(a), l.of(b))
	})
}

func (l *nameList) reset() {
	// Keep capacity for the next directory at this depth, unless a
	// huge directory inflated it.
	if cap(l.arena) > 4<<20 {
		l.arena = nil
		l.refs = nil
	}
	l.arena = l.arena[:0]
	l.refs = l.refs[:0]
}

func (l *nameList) name(i int) []byte { return l.of(l.refs[i]) }

// cname is name i NUL-terminated (for a system call).
func (l *nameList) cname(i int) []byte {
	r := l.refs[i]
	return l.arena[r.off : r.off+r.n+1]
}

type walker struct {
	ctx   context.Context
	fs    FileSet
	opts  WalkOptions
	fn    func(Entry) error
	roots []string
	excl  []pattern
	links map[devIno]*firstLink
	// visited records the include roots walked (or reported missing).
	visited map[string]bool
	ids     IDNames
	stats   Stats
	buf     []byte      // getdents64 buffer
	lbuf    []byte      // readlink buffer
	lists   []*nameList // one per open directory
	level   int         // lists in use
	tick    int
}

func (w *walker) warn(path, op string, err error) {
	w.stats.Warnings++
	if w.opts.Warn != nil {
		w.opts.Warn(Warning{Path: path, Op: op, Err: err})
	}
}

func (w *walker) unlisted(path string) {
	if w.opts.Unlisted != nil {
		w.opts.Unlisted(path)
	}
}

func (w *walker) note(path, msg string) {
	if w.opts.Note != nil {
		w.opts.Note(Note{Path: path, Msg: msg})
	}
}

// ancestorRoot reports whether another include root contains p.
func (w *walker) ancestorRoot(p string) bool {
	for q := parentPath(p); q != ""; q = parentPath(q) {
		if w.isRoot(q) {
			return true
		}
	}
	return false
}

func parentPath(p string) string {
	if p == "/" {
		return ""
	}
	i := strings.LastIndexByte(p, '/')
	if i == 0 {
		return "/"
	}
	return p[:i]
}

func (w *walker) isRoot(p string) bool {
	_, ok := slices.BinarySearch(w.roots, p)
	return ok
}

func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// prunedRoots walks the include roots below p, a path the walk does not
// descend into (excluded, another filesystem, a cache directory, a
// symlink): an explicit include is always walked.
func (w *walker) prunedRoots(p string) error {
	if len(w.roots) < 2 {
		return nil
	}
	prefix := p + "/"
	if p == "/" {
		prefix = "/"
	}
	i, _ := slices.BinarySearch(w.roots, prefix)
	for ; i < len(w.roots) && strings.HasPrefix(w.roots[i], prefix); i++ {
		r := w.roots[i]
		if w.visited[r] {
			continue // a cache directory's tag, say
		}
		// Only the outermost roots below p; the others are reached
		// from them.
		nested := false
		for q := parentPath(r); q != p && q != ""; q = parentPath(q) {
			if w.isRoot(q) {
				nested = true
				break
			}
		}
		if nested {
			continue
		}
		if err := w.root(r); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) root(r string) error {
	w.visited[r] = true
	var st unix.Stat_t
	if err := unix.Lstat(r, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			w.stats.MissingRoots++
			w.warn(r, "include root", errors.New("does not exist"))
			return nil
		}
		w.warn(r, "lstat", err)
		return nil
	}
	return w.visit(cwd, r, r, &st, st.Dev, 0, true)
}

func (w *walker) checkCtx() error {
	w.tick++
	if w.tick&63 == 0 {
		return w.ctx.Err()
	}
	return nil
}

// visit handles one path: full is its absolute path, name its name in
// parent (the whole path for a root), dev the device of its root.
func (w *walker) visit(parent *dirHandle, full, name string, st *unix.Stat_t, dev uint64, depth int, isRoot bool) error {
	if err := w.checkCtx(); err != nil {
		return err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if !isRoot && len(w.roots) > 1 && w.isRoot(full) {
		isRoot = true // an include root inside another one
	}
	if isRoot {
		dev = st.Dev
		w.visited[full] = true
	} else if w.excluded(full, name, isDir) {
		w.stats.Excluded++
		return w.prunedRoots(full)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFSOCK {
		w.stats.Sockets++
		w.note(full, "socket skipped")
		return nil
	}
	e := w.entry(parent, full, name, st)
	if !isDir {
		if err := w.emit(&e); err != nil {
			return err
		}
		if e.Type == TypeSymlink {
			return w.prunedRoots(full)
		}
		return nil
	}
	if err := w.emit(&e); err != nil {
		if err == fs.SkipDir {
			return w.prunedRoots(full)
		}
		return err
	}
	if w.fs.OneFileSystem && st.Dev != dev {
		w.stats.MountPoints++
		w.note(full, "on another filesystem: kept as an empty directory, not descended (one filesystem)")
		return w.prunedRoots(full)
	}
	return w.dir(parent, full, name, dev, depth)
}

func (w *walker) excluded(full, name string, isDir bool) bool {
	for i := range w.excl {
		if w.excl[i].match(full, name, isDir) {
			return true
		}
	}
	return false
}

func (w *walker) emit(e *Entry) error {
	if e.Unchanged {
		w.stats.Unchanged++
		if w.opts.SkipUnchanged {
			return nil
		}
		w.stats.Entries++
		return w.fn(*e)
	}
	switch e.Type {
	case TypeDir:
		w.stats.Dirs++
	case TypeRegular:
		w.stats.Files++
	case TypeSymlink:
		w.stats.Symlinks++
	case TypeHardlink:
		w.stats.Hardlinks++
	default:
		w.stats.Specials++
	}
	if e.Type == TypeRegular {
		w.stats.Bytes += e.Size
		w.stats.Allocated += e.Allocated
	}
	w.stats.Entries++
	return w.fn(*e)
}

// entry builds the Entry of a path from its lstat.
func (w *walker) entry(parent *dirHandle, full, name string, st *unix.Stat_t) Entry {
	e := Entry{
		Path:      full,
		Mode:      st.Mode & 07777,
		UID:       st.Uid,
		GID:       st.Gid,
		Allocated: st.Blocks * 512,
		Mtime:     time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Ctime:     time.Unix(st.Ctim.Sec, st.Ctim.Nsec),
		Atime:     time.Unix(st.Atim.Sec, st.Atim.Nsec),
		Dev:       st.Dev,
		Ino:       st.Ino,
		Nlink:     uint64(st.Nlink),
		dir:       parent,
		name:      name,
	}
	e.Uname = w.ids.User(st.Uid)
	e.Gname = w.ids.Group(st.Gid)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		e.Type = TypeDir
	case unix.S_IFREG:
		e.Type = TypeRegular
		e.Size = st.Size
	case unix.S_IFLNK:
		e.Type = TypeSymlink
		e.Linkname = w.readlink(parent, full, name)
	case unix.S_IFIFO:
		e.Type = TypeFifo
	case unix.S_IFCHR:
		e.Type = TypeChar
		e.Rdev = st.Rdev
	case unix.S_IFBLK:
		e.Type = TypeBlock
		e.Rdev = st.Rdev
	}
	if e.Type != TypeDir && st.Nlink > 1 {
		k := devIno{st.Dev, st.Ino}
		if first, ok := w.links[k]; ok {
			e.Type = TypeHardlink
			e.Linkname = first.path
			e.Size = 0
			e.Allocated = 0
			if first.left--; first.left == 0 {
				delete(w.links, k)
			}
		} else {
			w.links[k] = &firstLink{path: full, left: uint64(st.Nlink) - 1}
		}
	}
	if e.Type != TypeDir && !w.opts.Since.IsZero() && !e.Changed(w.opts.Since) {
		// Only its path will be recorded: no sparse map, no xattrs.
		e.Unchanged = true
		return e
	}
	if w.opts.noData {
		return e
	}
	if e.Type == TypeRegular && st.Blocks*512 < st.Size {
		w.sparseMap(parent, &e)
	}
	if w.fs.Xattrs {
		if e.Type == TypeRegular && w.opts.FileXattrsAtOpen {
			e.xattrsAtOpen = true
		} else {
			w.xattrs(parent, &e)
		}
	}
	return e
}

func (w *walker) readlink(parent *dirHandle, full, name string) string {
	if w.lbuf == nil {
		w.lbuf = make([]byte, 4096)
	}
	for {
		n, err := unix.Readlinkat(parent.fd, name, w.lbuf)
		if err != nil {
			w.warn(full, "readlink", err)
			return ""
		}
		if n < len(w.lbuf) {
			return string(w.lbuf[:n])
		}
		w.lbuf = make([]byte, 2*len(w.lbuf))
	}
}

// sparseMap fills Data with the data regions of a regular file that
// occupies fewer blocks than its size, using SEEK_DATA / SEEK_HOLE.
// A file system without them, or a file that has no hole after all
// (compression, inline data), leaves the entry not Sparse. A file that
// cannot be opened is left as is: OpenForBackup reports it.
func (w *walker) sparseMap(parent *dirHandle, e *Entry) {
	fd, err := openFile(parent, e.name)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	data := []Extent{}
	for off := int64(0); off < e.Size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break // only a hole up to the end
		}
		if err != nil {
			return
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return
		}
		if end > e.Size {
			end = e.Size // the file grew since the lstat
		}
		if end > start {
			data = append(data, Extent{Offset: start, Length: end - start})
		}
		off = end
	}
	if len(data) == 1 && data[0].Offset == 0 && data[0].Length == e.Size {
		return
	}
	e.Sparse = true
	e.Data = data
	w.stats.Sparse++
}

// procFD says whether /proc/self/fd/N/name reaches a file relative to
// an open directory (for the *xattr calls, which have no *at form).
var procFD = sync.OnceValue(func() bool {
	var st unix.Stat_t
	return unix.Stat("/proc/self/fd", &st) == nil
})

// xattrPath names the entry for the l*xattr calls.
func xattrPath(e *Entry) (string, bool) {
	if e.dir == cwd {
		return e.Path, true
	}
	if procFD() {
		return "/proc/self/fd/" + strconv.Itoa(e.dir.fd) + "/" + e.name, true
	}
	return e.Path, len(e.Path) < 4096
}

// ignoredXattrErr: no xattr support or nothing to read is not a
// problem.
func ignoredXattrErr(err error) bool {
	return err == unix.ENOTSUP || err == unix.ENODATA || err == unix.EOPNOTSUPP
}

func (w *walker) xattrs(parent *dirHandle, e *Entry) {
	p, ok := xattrPath(e)
	if !ok {
		w.warn(e.Path, "xattr", errors.New("path too long and /proc is not mounted"))
		return
	}
	e.Xattrs = readXattrs(
		func(b []byte) (int, error) { return unix.Llistxattr(p, b) },
		func(name string, b []byte) (int, error) { return unix.Lgetxattr(p, name, b) },
		func(op string, err error) { w.warn(e.Path, op, err) })
}

// fdXattrs reads the xattrs of an open file; warn gets each problem.
func fdXattrs(fd int, warn func(op string, err error)) map[string]string {
	return readXattrs(
		func(b []byte) (int, error) { return unix.Flistxattr(fd, b) },
		func(name string, b []byte) (int, error) { return unix.Fgetxattr(fd, name, b) },
		warn)
}

// readXattrs lists the names (list) and reads each value (get), both
// called with a nil buffer for the size first; nil when there are none.
// An attribute that vanished meanwhile, or a file system without
// xattrs, is not a problem; anything else goes to warn (op "xattr", or
// "xattr NAME").
func readXattrs(list func([]byte) (int, error), get func(string, []byte) (int, error), warn func(op string, err error)) map[string]string {
	var names []byte
	for {
		n, err := list(nil)
		if err != nil {
			if !ignoredXattrErr(err) {
				warn("xattr", err)
			}
			return nil
		}
		if n == 0 {
			return nil
		}
		names = make([]byte, n)
		n, err = list(names)
		if err == unix.ERANGE {
			continue // grew in between
		}
		if err != nil {
			if !ignoredXattrErr(err) {
				warn("xattr", err)
			}
			return nil
		}
		names = names[:n]
		break
	}
	var out map[string]string
	for _, nb := range bytes.Split(names, []byte{0}) {
		if len(nb) == 0 {
			continue
		}
		name := string(nb)
		v, err := getxattr(get, name)
		if err != nil {
			if !ignoredXattrErr(err) {
				warn("xattr "+name, err)
			}
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = v
	}
	return out
}

func getxattr(get func(string, []byte) (int, error), name string) (string, error) {
	for {
		n, err := get(name, nil)
		if err != nil {
			return "", err
		}
		buf := make([]byte, n)
		n, err = get(name, buf)
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

// dir walks the contents of the directory full (already emitted).
func (w *walker) dir(parent *dirHandle, full, name string, dev uint64, depth int) error {
	fd, err := unix.Openat(parent.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		w.warn(full, "open", err)
		w.unlisted(full)
		return w.prunedRoots(full)
	}
	h := &dirHandle{fd: fd}
	defer h.close()
	// One name list per open directory (nested roots walked from a
	// pruned directory stack up too, so the level is the walker's).
	if len(w.lists) <= w.level {
		w.lists = append(w.lists, &nameList{})
	}
	l := w.lists[w.level]
	w.level++
	l.reset()
	defer func() { l.reset(); w.level-- }()
	if err := w.readNames(h.fd, l); err != nil {
		w.warn(full, "readdir", err) // go on with the names read
		w.unlisted(full)
	}
	l.sort()
	if w.fs.ExcludeCaches && w.cacheTagged(h.fd, l) {
		w.stats.CachesExcluded++
		w.note(full, "has a CACHEDIR.TAG: contents skipped but the tag (exclude caches)")
		var st unix.Stat_t
		child := join(full, cacheTag)
		if err := unix.Fstatat(h.fd, cacheTag, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			w.warn(child, "lstat", err)
		} else if err := w.visit(h, child, cacheTag, &st, dev, depth+1, false); err != nil {
			return err
		}
		return w.prunedRoots(full)
	}
	// Children's paths are built in one buffer: one allocation (the
	// path string) per entry.
	pb := make([]byte, 0, len(full)+1+256)
	pb = append(pb, full...)
	if full != "/" {
		pb = append(pb, '/')
	}
	prefix := len(pb)
	for i := range l.refs {
		var st unix.Stat_t
		nb := l.name(i)
		pb = append(pb[:prefix], nb...)
		if err := fstatat(h.fd, l.cname(i), &st); err != nil {
			if err == unix.ENOENT {
				w.warn(string(pb), "lstat", errors.New("removed before it was read"))
			} else {
				w.warn(string(pb), "lstat", err)
				w.unlisted(string(pb))
			}
			continue
		}
		child := string(pb)
		if err := w.visit(h, child, child[prefix:], &st, dev, depth+1, false); err != nil {
			return err
		}
	}
	return nil
}

// cstr is the NUL-terminated string at the start of b.
func cstr(b []byte) []byte { return b[:bytes.IndexByte(b, 0)] }

// fstatat is unix.Fstatat(fd, name, st, AT_SYMLINK_NOFOLLOW) for a
// NUL-terminated name in the arena, without copying it.
func fstatat(fd int, cname []byte, st *unix.Stat_t) error {
	_, _, errno := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(fd), uintptr(unsafe.Pointer(&cname[0])),
		uintptr(unsafe.Pointer(st)), unix.AT_SYMLINK_NOFOLLOW, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// readNames reads every name of the directory (but . and ..) into l,
// in getdents64 batches.
func (w *walker) readNames(fd int, l *nameList) error {
	if w.buf == nil {
		w.buf = make([]byte, readdirBuf)
	}
	for {
		n, err := unix.Getdents(fd, w.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		for b := w.buf[:n]; len(b) >= 19; {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
			reclen := int(b[16]) | int(b[17])<<8
			if reclen < 19 || reclen > len(b) {
				return errors.New("malformed getdents64 record")
			}
			name := cstr(b[19:reclen])
			b = b[reclen:]
			if len(name) == 0 || (name[0] == '.' && (len(name) == 1 || (len(name) == 2 && name[1] == '.'))) {
				continue
			}
			l.add(name)
		}
	}
}

const cacheTag = "CACHEDIR.TAG"

// cacheSignature starts a valid CACHEDIR.TAG (https://bford.info/cachedir/).
const cacheSignature = "Signature: 8a477f597d28d172789f06886806bc55"

// cacheTagged reports whether the directory holds a regular file
// CACHEDIR.TAG that starts with the standard signature.
func (w *walker) cacheTagged(fd int, l *nameList) bool {
	_, found := slices.BinarySearchFunc(l.refs, []byte(cacheTag), func(ref nameRef, t []byte) int {
		return bytes.Compare(l.of(ref), t)
	})
	if !found {
		return false
	}
	tf, err := unix.Openat(fd, cacheTag, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer unix.Close(tf)
	var st unix.Stat_t
	if unix.Fstat(tf, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	buf := make([]byte, len(cacheSignature))
	got := 0
	for got < len(buf) {
		n, err := unix.Read(tf, buf[got:])
		if n <= 0 || err != nil {
			return false
		}
		got += n
	}
	return string(buf) == cacheSignature
}
