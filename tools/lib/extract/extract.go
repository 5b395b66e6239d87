//go:build linux

// Package extract writes the members of a restore under a target
// directory, safely (architecture §4, invariant 10):
//
//   - every path is mapped by a relocate.Relocator and must lie under its
//     Root; a stored path with a ".." element, a NUL, or a pax header
//     whose path differs from the catalog's record is refused;
//   - the root is opened once, and every directory beneath it is reached
//     with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) where the kernel
//     has it, else by an O_NOFOLLOW walk one element at a time: a symlink
//     in the target (planted there, or restored a moment ago) is never
//     followed;
//   - a regular file is written to a temporary name in its directory
//     (O_EXCL, 0600), its SHA-256 computed while writing and compared
//     with the record's, and only then renamed into place: wrong bytes
//     never appear under the real name, and no temporary file is left;
//   - directories are made 0700 while the restore runs; their recorded
//     mode, owner and mtime are applied at the end, deepest first;
//   - mode, owner (when running as root), mtime, xattrs, symlinks, hard
//     links, fifos, devices (root) and sparse holes are restored;
//   - replace= is decided per file against what is on disk.
//
// Memory does not grow with a file's size: data is streamed through one
// buffer.
package extract

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tapeward/tapeward/tools/lib/archive"
	"github.com/tapeward/tapeward/tools/lib/relocate"
)

// Replace says what a restore does with a file that is already on disk.
type Replace int

// The replace= modes (Bareos).
const (
	ReplaceAlways  Replace = iota // write over it
	ReplaceIfNewer                // only when the backup's mtime is newer than the file's
	ReplaceIfOlder                // only when the backup's mtime is older
	ReplaceNever                  // keep it
)

var replaceNames = []string{"always", "ifnewer", "ifolder", "never"}

func (r Replace) String() string {
	if int(r) < len(replaceNames) {
		return replaceNames[r]
	}
	return "replace(" + strconv.Itoa(int(r)) + ")"
}

// ParseReplace reads a replace= value ("" is always, as in Bareos).
func ParseReplace(s string) (Replace, error) {
	if s == "" {
		return ReplaceAlways, nil
	}
	for i, n := range replaceNames {
		if s == n {
			return Replace(i), nil
		}
	}
	return 0, fmt.Errorf("replace=%q: must be always, ifnewer, ifolder or never", s)
}

// Member is one member to restore as the catalog records it (proto
// RestoreMember and its MemberRecord).
type Member struct {
	Path string // the stored path (a directory's ends in '/')
	// WriteAs, when set, is the stored path to write the data under
	// instead of Path: a hard link selected without its first path.
	WriteAs  string
	Type     string // archive.Type.String(): "file", "dir", "symlink", "link", "char", "block", "fifo"
	Size     int64
	Mode     uint32 // 07777
	UID, GID int64
	MtimeNs  int64
	Linkname string // a symlink's target, or a hard link's first path
	SHA256   []byte // 32 bytes for files and hard links
	Sparse   bool
	Devmajor int64
	Devminor int64
	// FromRecord: a directory restored from these attributes alone; the
	// pax bytes are empty (a parent directory the plan added; its xattrs,
	// which only the tape holds, are not restored).
	FromRecord bool
}

// FileError is a file the restore could not write as recorded; the
// restore goes on with the next member.
type FileError struct {
	Path    string // the member's stored path
	Target  string // where it was to be written ("" when not known)
	Op      string // "refused", "digest", "open", "write", "mkdir", "attrs", "xattr", "link", "mknod", "read", "replace"
	Message string
}

func (e *FileError) Error() string {
	if e.Target != "" && e.Target != e.Path {
		return fmt.Sprintf("%s %q (to %q): %s", e.Op, e.Path, e.Target, e.Message)
	}
	return fmt.Sprintf("%s %q: %s", e.Op, e.Path, e.Message)
}

// Options configure a Writer.
type Options struct {
	// Relocator maps stored paths to targets; its Root is the directory
	// nothing is written outside of (created 0700 if missing).
	Relocator *relocate.Relocator
	Replace   Replace
	// Fsync: each regular file is fsynced before its rename.
	Fsync bool
	// Report receives every FileError (nil: they are only counted), one
	// call at a time, from Restore or, with Workers, from a worker.
	Report func(*FileError)
	// Workers: regular files of up to 64 KiB (asyncMax) are written by this
	// many goroutines once Restore has read them (0: by Restore itself),
	// so that the creations, writes, attributes and renames of many
	// small files use every core. Close waits for them.
	Workers int
	// AsRoot: restore owners, devices and every xattr namespace. The
	// zero value means: when running as root (euid 0).
	AsRoot *bool

	// noOpenat2, in tests, takes the O_NOFOLLOW walk as on a kernel
	// without openat2; noTmpfile writes named temporary files as on a
	// file system without O_TMPFILE.
	noOpenat2, noTmpfile bool
}

// Stats are a restore's counters.
type Stats struct {
	Files   int64 // members written (every type)
	Bytes   int64 // file bytes written
	Skipped int64 // kept by replace=
	Errors  int64 // FileErrors
}

// Writer restores members one at a time (not safe for concurrent use,
// but Stats may be read from another goroutine). With Options.Workers a
// small regular file is written after Restore returns; a later member
// that depends on it (a hard link, the same path again, a member in
// another directory) waits for the files in flight.
type Writer struct {
	o      Options
	rel    *relocate.Relocator
	root   string
	rootfd int
	asRoot bool
	umask  uint32

	openat2 bool
	// The last parent directory resolved (most members share it).
	lastRel string
	lastFd  int

	dirs    []dirAttr
	dirIdx  map[string]int  // rel → index in dirs
	created map[string]bool // rel of directories this restore made
	// named: hashes of the rels Restore has handled in directories this
	// restore made (any other name there cannot exist: it need not be
	// looked up before it is written).
	named map[uint64]struct{}

	seed     maphash.Seed
	restored map[uint64]struct{} // hashes of stored paths of regular files written
	writeAs  map[string]string   // first path → the stored path its data was written as

	fs fileState // Restore's own (workers have theirs)

	// Small files written by workers (Options.Workers): the queue, the
	// files in flight (the keys of their stored paths), the workers;
	// mu orders the workers' updates of restored and writeAs and the
	// calls of Report.
	jobs     chan fileJob
	inflight sync.WaitGroup
	pending  map[uint64]struct{} // Restore's goroutine only
	workers  sync.WaitGroup
	mu       sync.Mutex
	ar       archive.Reader // reads each member's headers (ResetMember)
	tmpN     atomic.Int64
	tmpP     string
	// noTmpfile: the target's file system makes no unnamed files
	// (O_TMPFILE): writeFile names each file it writes.
	noTmpfile atomic.Bool

	files, bytes, skipped, errors atomic.Int64
	closed                        bool
}

type dirAttr struct {
	rel, path string // target relative to the root; the stored path
	m         Member
	xattrs    map[string]string
	gone      bool // removed since (a file replaced it)
}

// bufSize is the data buffer.
const bufSize = 1 << 20

// New opens (or creates, 0700) the relocator's root.
func New(o Options) (*Writer, error) {
	if o.Relocator == nil {
		return nil, errors.New("restore: no relocator")
	}
	root := o.Relocator.Root()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("restore: creating the target directory %s: %w", root, err)
	}
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("restore: opening the target directory %s: %w", root, err)
	}
	w := &Writer{o: o, rel: o.Relocator, root: root, rootfd: fd, openat2: !o.noOpenat2, lastFd: -1,
		dirIdx: map[string]int{}, created: map[string]bool{}, named: map[uint64]struct{}{}, seed: maphash.MakeSeed(),
		restored: map[uint64]struct{}{}, writeAs: map[string]string{},
		fs: fileState{buf: make([]byte, bufSize), hash: sha256.New()}, umask: readUmask()}
	w.noTmpfile.Store(o.noTmpfile)
	if o.AsRoot != nil {
		w.asRoot = *o.AsRoot
	} else {
		w.asRoot = os.Geteuid() == 0
	}
	var rb [6]byte
	rand.Read(rb[:])
	w.tmpP = ".tapeward-restore-" + hex.EncodeToString(rb[:]) + "-"
	if o.Workers > 0 {
		w.jobs, w.pending = make(chan fileJob, 16*o.Workers), map[uint64]struct{}{}
		w.workers.Add(o.Workers)
		for range o.Workers {
			go w.work()
		}
	}
	return w, nil
}

// asyncMax is the size up to which a regular file goes to a worker
// (Options.Workers): read into memory by Restore, then written.
const asyncMax = 64 << 10

// fileJob is a small file for a worker: its data read, its parent open
// (pfd stays open until the files in flight are done: drain).
type fileJob struct {
	ctx          context.Context
	pfd          int
	base, target string
	m            Member
	data         []byte
	xattrs       map[string]string
	exists       bool // something is at base (writeFile)
	inNew        bool // pfd is a directory this restore made (writeWhole)
	key          uint64
}

// work writes the queued files until Close.
func (w *Writer) work() {
	defer w.workers.Done()
	fs := &fileState{buf: make([]byte, asyncMax), hash: sha256.New()}
	for j := range w.jobs {
		if fe := w.writeWhole(j.ctx, fs, j.pfd, j.base, j.m, j.data, j.xattrs, j.exists, j.inNew); fe != nil {
			if j.ctx.Err() == nil { // cancelled: Restore says so, as without workers
				fe.Path, fe.Target = j.m.Path, j.target
				w.fail(fe)
			}
		} else {
			w.written(j.key, j.m)
		}
		w.inflight.Done()
	}
}

// queue reads a small file's data and hands it to a worker.
func (w *Writer) queue(ctx context.Context, pfd int, base, target string, m Member, data io.Reader, xattrs map[string]string, exists, inNew bool, key uint64) *FileError {
	buf := make([]byte, m.Size)
	if n, err := io.ReadFull(data, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		fe := errRead(int64(n), m.Size, err)
		fe.Path, fe.Target = m.Path, target
		return fe
	}
	m.SHA256 = bytes.Clone(m.SHA256) // the caller's may be reused
	w.pending[key] = struct{}{}
	w.inflight.Add(1)
	select {
	case w.jobs <- fileJob{ctx: ctx, pfd: pfd, base: base, target: target, m: m, data: buf, xattrs: xattrs, exists: exists, inNew: inNew, key: key}:
		return nil
	case <-ctx.Done():
		w.inflight.Done()
		return errCancelled()
	}
}

// drain waits for the files in flight.
func (w *Writer) drain() {
	if len(w.pending) == 0 {
		return
	}
	w.inflight.Wait()
	clear(w.pending)
}

// written records a regular file written (for hard links to it).
func (w *Writer) written(key uint64, m Member) {
	w.mu.Lock()
	w.restored[key] = struct{}{}
	if m.WriteAs != "" {
		w.writeAs[m.Path] = m.WriteAs
	}
	w.mu.Unlock()
	w.files.Add(1)
	w.bytes.Add(m.Size)
}

// readUmask reads the process umask from /proc (Umask(2) would change it
// for every thread while read); 022 if it cannot be read.
func readUmask() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Umask:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return uint32(n)
				}
			}
		}
	}
	return 0o022
}

// Root is the target directory.
func (w *Writer) Root() string { return w.root }

// Stats returns the counters so far.
func (w *Writer) Stats() Stats {
	return Stats{Files: w.files.Load(), Bytes: w.bytes.Load(), Skipped: w.skipped.Load(), Errors: w.errors.Load()}
}

func (w *Writer) fail(e *FileError) {
	w.errors.Add(1)
	if w.o.Report != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.o.Report(e)
	}
}

// sourceError marks an error of the member's byte source (the data
// stream): the restore cannot go on.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

type srcReader struct {
	r   io.Reader
	err error
}

func (s *srcReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	return n, s.check(err)
}

// check records an error of the source (io.EOF is not one).
func (s *srcReader) check(err error) error {
	if err != nil && err != io.EOF {
		s.err = err
		return &sourceError{err}
	}
	return err
}

// A Lender is a byte source that hands out the bytes it holds instead of
// copying them into a buffer of the caller's (filed's data messages,
// tapextract's queue). Restore takes a regular file's data from pax
// through Lend when pax is a Lender: the bytes are hashed and written
// where they are.
type Lender interface {
	// Lend appends to dst one or more slices holding the next bytes of
	// the stream, at most max in all and at least one unless err is set
	// (io.EOF at the end). They stay valid until the next Lend or Read.
	Lend(max int, dst [][]byte) ([][]byte, error)
}

// lendSrc is the source's Lend, its errors recorded as Read's are.
type lendSrc struct {
	s *srcReader
	l Lender
}

func (l lendSrc) Read(p []byte) (int, error) { return l.s.Read(p) }

func (l lendSrc) Lend(max int, dst [][]byte) ([][]byte, error) {
	bufs, err := l.l.Lend(max, dst)
	return bufs, l.s.check(err)
}

// Restore writes one member from its pax bytes (headers, data, padding:
// pax need not be read to its end; the caller discards the rest). A
// file that cannot be written as recorded is a FileError given to
// Options.Report, and Restore returns nil; it returns an error only
// when the restore must stop: ctx ended, or reading pax failed.
func (w *Writer) Restore(ctx context.Context, m Member, pax io.Reader) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.closed {
		return errors.New("restore: Restore after Close")
	}
	src := &srcReader{r: pax}
	fe := w.restore(ctx, m, src)
	if src.err != nil {
		return fmt.Errorf("reading %q: %w", m.Path, src.err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if fe != nil {
		w.fail(fe)
	}
	return nil
}

// stored is the path the member is written under.
func (m *Member) stored() string {
	if m.WriteAs != "" {
		return m.WriteAs
	}
	return m.Path
}

func (w *Writer) restore(ctx context.Context, m Member, src *srcReader) *FileError {
	path := m.stored()
	bad := func(target, op, format string, a ...any) *FileError {
		return &FileError{Path: m.Path, Target: target, Op: op, Message: fmt.Sprintf(format, a...)}
	}
	target, err := w.rel.Target(path)
	if err != nil {
		return bad("", "refused", "%v", err)
	}
	rel, ok := w.relOf(target)
	if !ok {
		return bad(target, "refused", "the target is outside %s", w.root)
	}
	typ, ok := typeOf(m.Type)
	if !ok {
		return bad(target, "refused", "unknown member type %q", m.Type)
	}
	var (
		xattrs map[string]string
		ar     *archive.Reader // the member's pax bytes (nil: from its record)
	)
	if m.FromRecord {
		// No pax bytes: a directory restored from its record alone.
		if typ != archive.TypeDir {
			return bad(target, "refused", "only a directory is restored from its record alone, not a %s", m.Type)
		}
	} else {
		// The member's headers must say what the record says.
		w.ar.ResetMember(src, 0)
		ar = &w.ar
		e, err := ar.Next()
		if err != nil {
			if err == io.EOF {
				return bad(target, "read", "the member's bytes hold no pax member")
			}
			return bad(target, "read", "%v", err)
		}
		h := e.Header
		if h.Name != m.Path {
			return bad(target, "refused", "the member's header names %q, not the record's path %q", h.Name, m.Path)
		}
		if archive.Type(h.Typeflag) != typ && !(typ == archive.TypeReg && h.Typeflag == 0) {
			return bad(target, "refused", "the member's header says type %s, the record %s", archive.Type(h.Typeflag), m.Type)
		}
		if (typ == archive.TypeSymlink || typ == archive.TypeLink) && h.Linkname != m.Linkname {
			return bad(target, "refused", "the member's header links to %q, the record to %q", h.Linkname, m.Linkname)
		}
		if typ == archive.TypeReg && h.Size != m.Size {
			return bad(target, "refused", "the member's header says %d bytes, the record %d", h.Size, m.Size)
		}
		xattrs = xattrsOf(h.PAXRecords)
	}

	if rel == "" {
		if typ != archive.TypeDir {
			return bad(target, "refused", "a %s cannot be written as the target directory %s itself", m.Type, w.root)
		}
		var st unix.Stat_t
		if err := unix.Fstat(w.rootfd, &st); err != nil {
			return bad(target, "open", "fstat: %v", err)
		}
		if !w.replaces(m.MtimeNs, &st) {
			w.skipped.Add(1)
			return nil
		}
		w.dirAttrs(rel, m, xattrs)
		w.files.Add(1)
		return nil
	}
	dirRel, base := splitRel(rel)
	pfd, ferr := w.parent(dirRel)
	if ferr != nil {
		ferr.Path, ferr.Target = m.Path, target
		return ferr
	}

	// replace=: what is on disk? (A file of this path still in flight
	// is written first.)
	key := w.key(path)
	if _, busy := w.pending[key]; busy {
		w.drain()
	}
	var st unix.Stat_t
	exists := true
	if w.fresh(dirRel, rel) {
		// In a directory this restore made, a name it has not handled
		// is not there. (The lookup would also wait for the directory
		// while a worker links a file into it.)
		exists = false
	} else if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if !errors.Is(err, unix.ENOENT) {
			return bad(target, "open", "lstat: %v", err)
		}
		exists = false
	}
	if exists && st.Mode&unix.S_IFMT == unix.S_IFDIR && len(w.pending) > 0 {
		// Files in flight may be in it (a file replaces only an empty
		// directory): they are written first.
		w.drain()
	}
	if exists {
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if typ == archive.TypeDir && isDir && w.created[rel] {
			// Made by this restore as a parent: the member's attributes apply.
			w.dirAttrs(rel, m, xattrs)
			w.files.Add(1)
			return nil
		}
		if !w.replaces(m.MtimeNs, &st) {
			w.skipped.Add(1)
			if typ == archive.TypeReg && st.Mode&unix.S_IFMT == unix.S_IFREG {
				// Kept as it is: a later hard link to it links to it.
				w.mu.Lock()
				w.restored[key] = struct{}{}
				if m.WriteAs != "" {
					w.writeAs[m.Path] = m.WriteAs
				}
				w.mu.Unlock()
			}
			return nil
		}
		if typ == archive.TypeDir && isDir {
			w.dirAttrs(rel, m, xattrs)
			w.files.Add(1)
			return nil
		}
		if isDir {
			// A file where a directory is: only an empty one goes.
			if err := unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR); err != nil {
				return bad(target, "replace", "a directory is there and could not be removed (%v)", err)
			}
			w.dirGone(rel)
		}
	}

	switch typ {
	case archive.TypeDir:
		if exists && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := unix.Unlinkat(pfd, base, 0); err != nil {
				return bad(target, "replace", "removing the %s there: %v", typeName(st.Mode), err)
			}
		}
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return bad(target, "mkdir", "%v", err)
		}
		w.created[rel] = true
		w.dirAttrs(rel, m, xattrs)
		w.files.Add(1)
		return nil
	case archive.TypeReg:
		data := io.Reader(ar)
		start, end, stored := ar.StoredData()
		if l, ok := src.r.(Lender); ok && stored && end-start == m.Size && !m.Sparse {
			// The data are the next m.Size bytes of src, as they are
			// stored: taken from the lending source without the tar
			// reader (which is not used again: the rest of pax is
			// discarded).
			data = lendSrc{src, l}
		}
		if w.jobs != nil && m.Size <= asyncMax && !m.Sparse {
			return w.queue(ctx, pfd, base, target, m, data, xattrs, exists, w.created[dirRel], key)
		}
		if fe := w.writeFile(ctx, &w.fs, pfd, base, m, data, xattrs, exists); fe != nil {
			fe.Path, fe.Target = m.Path, target
			return fe
		}
		w.written(key, m)
		return nil
	case archive.TypeLink:
		w.drain() // its target may be in flight
		return w.link(pfd, base, m, target)
	}
	// Symlinks, fifos and devices: made under a temporary name, their
	// attributes set, then renamed into place.
	tmp := w.tmpName()
	var err2 error
	op := "symlink"
	switch typ {
	case archive.TypeSymlink:
		err2 = unix.Symlinkat(m.Linkname, pfd, tmp)
	case archive.TypeFifo:
		op = "mknod"
		err2 = unix.Mkfifoat(pfd, tmp, 0o600)
	case archive.TypeChar, archive.TypeBlock:
		op = "mknod"
		mode := uint32(unix.S_IFCHR)
		if typ == archive.TypeBlock {
			mode = unix.S_IFBLK
		}
		if !w.asRoot {
			return bad(target, "mknod", "a %s device (%d,%d) can only be made by root: filed does not run as root", m.Type, m.Devmajor, m.Devminor)
		}
		err2 = unix.Mknodat(pfd, tmp, mode|0o600, int(unix.Mkdev(uint32(m.Devmajor), uint32(m.Devminor))))
	default:
		return bad(target, "refused", "unsupported member type %s", m.Type)
	}
	if err2 != nil {
		return bad(target, op, "%v", err2)
	}
	if fe := w.attrsAt(pfd, tmp, m, typ != archive.TypeSymlink); fe != nil {
		unix.Unlinkat(pfd, tmp, 0)
		fe.Path, fe.Target = m.Path, target
		return fe
	}
	if err := unix.Renameat(pfd, tmp, pfd, base); err != nil {
		unix.Unlinkat(pfd, tmp, 0)
		return bad(target, "rename", "%v", err)
	}
	w.files.Add(1)
	return nil
}

// fresh says whether rel, in the directory dirRel, is certainly not on
// disk: dirRel was made by this restore (empty), rel is not one of the
// directories it made, and no member was handled at rel before (each
// call records rel). A false answer means: look. Something else writing
// into the target at the same time is met at the write instead (EEXIST:
// writeFile then replaces the name, as it would after a look).
func (w *Writer) fresh(dirRel, rel string) bool {
	if !w.created[dirRel] {
		return false
	}
	k := w.key(rel)
	if _, seen := w.named[k]; seen || w.created[rel] {
		return false
	}
	w.named[k] = struct{}{}
	return true
}

// relOf is target relative to the root ("" : the root itself).
func (w *Writer) relOf(target string) (string, bool) {
	if w.root == "/" {
		return strings.TrimPrefix(target, "/"), true
	}
	if target == w.root {
		return "", true
	}
	rel, ok := strings.CutPrefix(target, w.root+"/")
	return rel, ok && rel != ""
}

func splitRel(rel string) (dir, base string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return "", rel
}

func typeOf(s string) (archive.Type, bool) {
	for _, t := range []archive.Type{archive.TypeReg, archive.TypeLink, archive.TypeSymlink, archive.TypeChar, archive.TypeBlock, archive.TypeDir, archive.TypeFifo} {
		if t.String() == s {
			return t, true
		}
	}
	return 0, false
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFREG:
		return "file"
	}
	return "special file"
}

const xattrPrefix = "SCHILY.xattr."

func xattrsOf(recs map[string]string) map[string]string {
	var out map[string]string
	for k, v := range recs {
		if name, ok := strings.CutPrefix(k, xattrPrefix); ok {
			if out == nil {
				out = map[string]string{}
			}
			out[name] = v
		}
	}
	return out
}

// key hashes a path (a stored one, or one relative to the root) for the
// Writer's sets.
func (w *Writer) key(path string) uint64 { return maphash.String(w.seed, path) }

// replaces decides replace= for an entry on disk.
func (w *Writer) replaces(mtimeNs int64, st *unix.Stat_t) bool {
	disk := st.Mtim.Nano()
	switch w.o.Replace {
	case ReplaceNever:
		return false
	case ReplaceIfNewer:
		return mtimeNs > disk
	case ReplaceIfOlder:
		return mtimeNs < disk
	}
	return true
}

func (w *Writer) tmpName() string {
	return w.tmpP + strconv.FormatInt(w.tmpN.Add(1), 10)
}

// fileState is what writing one regular file uses: buffers and the
// digest. Restore has one, each worker its own.
type fileState struct {
	buf  []byte
	buf2 []byte // copyData's second buffer, for large files
	hash hash.Hash
	sum  [32]byte
}

// dirGone forgets the directory rel (removed to make way for a file):
// no cached descriptor of it, no attributes to apply to it at Close.
// (The cached directory is never pfd's parent here: rel is not an
// ancestor of its own parent.)
func (w *Writer) dirGone(rel string) {
	if w.lastRel == rel || strings.HasPrefix(w.lastRel, rel+"/") {
		w.dropCache()
	}
	delete(w.created, rel)
	if i, ok := w.dirIdx[rel]; ok {
		w.dirs[i].gone = true
		delete(w.dirIdx, rel)
	}
}

// dirAttrs records a directory's attributes for Close.
func (w *Writer) dirAttrs(rel string, m Member, x map[string]string) {
	a := dirAttr{rel: rel, path: m.Path, m: m, xattrs: x}
	if i, ok := w.dirIdx[rel]; ok {
		w.dirs[i] = a
		return
	}
	w.dirIdx[rel] = len(w.dirs)
	w.dirs = append(w.dirs, a)
}

// writeFile writes a regular file's data to an unnamed file in its
// directory (O_TMPFILE), checks its digest, sets its attributes and
// links it into place. Where a file is there to be replaced (exists),
// or the file system makes no unnamed files, it writes to a temporary
// name and renames it over. Creating and renaming a named file cost two
// directory updates where linking an unnamed one costs one (files of
// 4 KiB, one goroutine, journalled ext4, 2026-12-04: 14,200 and 14,800
// a second named, 18,700 and 21,000 unnamed), and a file that fails
// leaves no name behind.
func (w *Writer) writeFile(ctx context.Context, fs *fileState, pfd int, base string, m Member, data io.Reader, xattrs map[string]string, exists bool) (fe *FileError) {
	bad := func(op, format string, a ...any) *FileError {
		return &FileError{Op: op, Message: fmt.Sprintf(format, a...)}
	}
	if fe := noDigest(m); fe != nil {
		return fe
	}
	fd, tmp := -1, "" // tmp: the temporary name, if the file has one
	if !exists && !w.noTmpfile.Load() {
		var err error
		fd, err = unix.Openat(pfd, ".", unix.O_WRONLY|unix.O_TMPFILE|unix.O_CLOEXEC, 0o600)
		switch {
		case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL):
			fd = -1
			w.noTmpfile.Store(true) // not on this file system (or kernel)
		case err != nil:
			return bad("open", "creating a file in its directory: %v", err)
		}
	}
	if fd < 0 {
		tmp = w.tmpName()
		var err error
		if fd, err = unix.Openat(pfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600); err != nil {
			return bad("open", "creating a temporary file in its directory: %v", err)
		}
	}
	placed := false
	defer func() {
		unix.Close(fd)
		if tmp != "" && !placed {
			unix.Unlinkat(pfd, tmp, 0)
		}
	}()
	fs.hash.Reset()
	if fe := w.copyData(ctx, fs, fd, m, data); fe != nil {
		return fe
	}
	if m.Sparse {
		if err := unix.Ftruncate(fd, m.Size); err != nil {
			return bad("write", "setting the size %d: %v", m.Size, err)
		}
	}
	fs.hash.Sum(fs.sum[:0])
	if fe := fs.mismatch(m); fe != nil {
		return fe
	}
	if fe := w.settle(fd, m, xattrs, nil); fe != nil {
		return fe
	}
	if tmp == "" {
		err := linkIn(fd, pfd, base)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return bad("link", "naming the file written: %v (without root, it is linked through /proc/self/fd)", err)
		}
		// Made since it was looked at: replaced, as a named file is.
		tmp = w.tmpName()
		if err := linkIn(fd, pfd, tmp); err != nil {
			tmp = ""
			return bad("link", "naming the file written: %v", err)
		}
	}
	if err := unix.Renameat(pfd, tmp, pfd, base); err != nil {
		return bad("rename", "%v", err)
	}
	placed = true
	return nil
}

// writeWhole writes a file whose data are all in hand (a worker's small
// file). Its digest is checked before anything is written, so where
// nothing is at base the file is created under its own name (O_EXCL)
// instead of unnamed and linked into place: one directory update, and no
// entry on the file system's list of orphans to add and remove. A file
// that fails after it was created is removed: as with writeFile, no name
// is left behind, and bytes that do not match the record never have one.
//
// In a directory this restore made (inNew: mode 0700 until Close gives it
// its own attributes, so no one else reaches the file meanwhile) the file
// is created with its permission bits; an owner or mode it already has
// is not set again (fdAttrs), which saves two inode updates a file.
func (w *Writer) writeWhole(ctx context.Context, fs *fileState, pfd int, base string, m Member, data []byte, xattrs map[string]string, exists, inNew bool) *FileError {
	if exists {
		return w.writeFile(ctx, fs, pfd, base, m, bytes.NewReader(data), xattrs, true)
	}
	bad := func(op, format string, a ...any) *FileError {
		return &FileError{Op: op, Message: fmt.Sprintf(format, a...)}
	}
	if fe := noDigest(m); fe != nil {
		return fe
	}
	fs.hash.Reset()
	fs.hash.Write(data)
	fs.hash.Sum(fs.sum[:0])
	if fe := fs.mismatch(m); fe != nil {
		return fe
	}
	if ctx.Err() != nil {
		return errCancelled()
	}
	perm := uint32(0o600)
	if inNew {
		perm = m.Mode & 0o777
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if errors.Is(err, unix.EEXIST) {
		// Made since it was looked at: replaced, as a file that was there.
		return w.writeFile(ctx, fs, pfd, base, m, bytes.NewReader(data), xattrs, true)
	}
	if err != nil {
		return bad("open", "creating the file: %v", err)
	}
	done := false
	defer func() {
		unix.Close(fd)
		if !done {
			unix.Unlinkat(pfd, base, 0)
		}
	}()
	if err := writeAll(fd, data, 0); err != nil {
		return errWrite(0, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return bad("attrs", "fstat: %v", err)
	}
	if fe := w.settle(fd, m, xattrs, &st); fe != nil {
		return fe
	}
	done = true
	return nil
}

// noDigest refuses a file whose record holds no SHA-256: its data could
// not be verified.
func noDigest(m Member) *FileError {
	if len(m.SHA256) == sha256.Size {
		return nil
	}
	return &FileError{Op: "digest", Message: fmt.Sprintf("the record holds no SHA-256 digest (%d bytes): the data cannot be verified, so it is not written", len(m.SHA256))}
}

// mismatch compares the digest summed in fs.sum with the record's.
func (fs *fileState) mismatch(m Member) *FileError {
	if bytes.Equal(fs.sum[:], m.SHA256) {
		return nil
	}
	return &FileError{Op: "digest", Message: fmt.Sprintf("the data read has SHA-256 %x, the backup recorded %x: not restored (no file was left under its name)", fs.sum[:], m.SHA256)}
}

// settle finishes a regular file written and verified: fsync (Options.
// Fsync), owner, mode and xattrs (fdAttrs, has as there), then its times.
func (w *Writer) settle(fd int, m Member, xattrs map[string]string, has *unix.Stat_t) *FileError {
	if w.o.Fsync {
		if err := unix.Fsync(fd); err != nil {
			return &FileError{Op: "write", Message: fmt.Sprintf("fsync: %v", err)}
		}
	}
	if fe := w.fdAttrs(fd, m, xattrs, has); fe != nil {
		return fe
	}
	if err := futimens(fd, times(m.MtimeNs)); err != nil {
		return &FileError{Op: "attrs", Message: fmt.Sprintf("mtime: %v", err)}
	}
	return nil
}

// linkIn names the unnamed file fd name in pfd: with AT_EMPTY_PATH,
// which needs CAP_DAC_READ_SEARCH (root), else through /proc/self/fd.
func linkIn(fd, pfd int, name string) error {
	err := unix.Linkat(fd, "", pfd, name, unix.AT_EMPTY_PATH)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOENT) {
		err = linkThroughProc(fd, pfd, name)
	}
	return err
}

// linkThroughProc is linkIn without the capability: linkat(2) following
// the file's /proc/self/fd link.
func linkThroughProc(fd, pfd int, name string) error {
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), pfd, name, unix.AT_SYMLINK_FOLLOW)
}

// futimens sets fd's access and modification times (utimensat(2) with
// no path: every kernel has it, AT_EMPTY_PATH only newer ones).
func futimens(fd int, ts []unix.Timespec) error {
	if _, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0); e != 0 {
		return e
	}
	return nil
}

// copyData writes the member's m.Size bytes from data at the start of
// fd, hashing them. From parallelHash bytes on, a chunk is hashed by
// another goroutine while it is written and the next one read (two
// buffers): SHA-256 and the copy into the page cache use both cores.
func (w *Writer) copyData(ctx context.Context, fs *fileState, fd int, m Member, data io.Reader) *FileError {
	if l, ok := data.(Lender); ok { // restore lends only a non-sparse file's data
		return w.copyLent(ctx, fs, fd, m, l)
	}
	read := func(buf []byte, pos int64) ([]byte, *FileError) {
		if ctx.Err() != nil {
			return nil, errCancelled()
		}
		chunk := buf
		if int64(len(chunk)) > m.Size-pos {
			chunk = chunk[:m.Size-pos]
		}
		if n, err := io.ReadFull(data, chunk); err != nil {
			return nil, errRead(pos+int64(n), m.Size, err)
		}
		return chunk, nil
	}
	write := func(chunk []byte, pos int64) *FileError {
		var err error
		if m.Sparse {
			err = writeSparse(fd, chunk, pos)
		} else {
			err = writeAll(fd, chunk, pos)
		}
		if err != nil {
			return errWrite(pos, err)
		}
		return nil
	}
	if m.Size < parallelHash {
		for pos := int64(0); pos < m.Size; {
			chunk, fe := read(fs.buf, pos)
			if fe != nil {
				return fe
			}
			fs.hash.Write(chunk)
			if fe := write(chunk, pos); fe != nil {
				return fe
			}
			pos += int64(len(chunk))
		}
		return nil
	}
	if fs.buf2 == nil {
		fs.buf2 = make([]byte, len(fs.buf))
	}
	spare := fs.buf2
	chunk, fe := read(fs.buf, 0)
	if fe != nil {
		return fe
	}
	for pos := int64(0); ; {
		done := make(chan struct{})
		go func(c []byte) {
			fs.hash.Write(c)
			close(done)
		}(chunk)
		fe := write(chunk, pos)
		pos += int64(len(chunk))
		var next []byte
		if fe == nil && pos < m.Size {
			next, fe = read(spare, pos)
		}
		<-done
		if fe != nil || pos >= m.Size {
			return fe
		}
		chunk, spare = next, chunk[:cap(chunk)]
	}
}

// copyLent is copyData from a Lender: each piece lent is hashed (by
// another goroutine from parallelHash bytes on) while it is written with
// one pwritev, then the next is taken.
func (w *Writer) copyLent(ctx context.Context, fs *fileState, fd int, m Member, l Lender) *FileError {
	var bufs [][]byte
	for pos := int64(0); pos < m.Size; {
		if ctx.Err() != nil {
			return errCancelled()
		}
		var err error
		bufs, err = l.Lend(int(min(m.Size-pos, bufSize)), bufs[:0])
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return errRead(pos, m.Size, err)
		}
		var done chan struct{}
		if m.Size >= parallelHash {
			done = make(chan struct{})
			go func() {
				for _, b := range bufs {
					fs.hash.Write(b)
				}
				close(done)
			}()
		} else {
			for _, b := range bufs {
				fs.hash.Write(b)
			}
		}
		n, err := writevAll(fd, bufs, pos)
		if done != nil {
			<-done
		}
		if err != nil {
			return errWrite(pos+n, err)
		}
		pos += n
	}
	return nil
}

// copyData's and copyLent's errors: cancelled, the data ended or failed
// after pos of size bytes, writing failed at pos.
func errCancelled() *FileError { return &FileError{Op: "write", Message: "cancelled"} }

func errRead(pos, size int64, err error) *FileError {
	return &FileError{Op: "read", Message: fmt.Sprintf("after %d of %d bytes: %v", pos, size, err)}
}

func errWrite(pos int64, err error) *FileError {
	return &FileError{Op: "write", Message: fmt.Sprintf("at offset %d: %v", pos, err)}
}

// writevAll writes bufs at off with pwritev (again for what a short
// write left, at most maxIov slices a call); it returns the bytes
// written. bufs itself is not changed (another goroutine may be reading
// it).
func writevAll(fd int, bufs [][]byte, off int64) (int64, error) {
	var total int64
	for len(bufs) > 0 {
		n, err := unix.Pwritev(fd, bufs[:min(len(bufs), maxIov)], off+total)
		total += int64(n)
		if err == nil && n == 0 {
			err = io.ErrShortWrite
		}
		if err != nil {
			return total, err
		}
		for len(bufs) > 0 && n >= len(bufs[0]) {
			n -= len(bufs[0])
			bufs = bufs[1:]
		}
		if n > 0 {
			// A short write inside bufs[0]: the rest of it, then the others.
			bufs = append([][]byte{bufs[0][n:]}, bufs[1:]...)
		}
	}
	return total, nil
}

// maxIov is IOV_MAX on Linux.
const maxIov = 1024

// parallelHash is the size from which copyData hashes in parallel.
const parallelHash = 256 << 10

func writeAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// holeBlock is the granularity at which a sparse file's zeros are left
// as holes.
const holeBlock = 4096

var zeros [holeBlock]byte

// writeSparse writes b at off, leaving blocks of zeros as holes.
func writeSparse(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		// Up to the next block boundary of the file, then block by block.
		n := holeBlock - int(off%holeBlock)
		if n > len(b) {
			n = len(b)
		}
		if bytes.Equal(b[:n], zeros[:n]) {
			b, off = b[n:], off+int64(n)
			continue
		}
		// A run of blocks that are not all zeros.
		end := n
		for end < len(b) {
			k := min(holeBlock, len(b)-end)
			if bytes.Equal(b[end:end+k], zeros[:k]) {
				break
			}
			end += k
		}
		if err := writeAll(fd, b[:end], off); err != nil {
			return err
		}
		b, off = b[end:], off+int64(end)
	}
	return nil
}

func times(ns int64) []unix.Timespec {
	t := unix.NsecToTimespec(ns)
	return []unix.Timespec{t, t}
}

// fdAttrs sets owner (root), mode and xattrs on an open file; with has
// (the file's fstat), an owner or mode the file has already is not set
// again. (It is made without set-id bits, so a change of owner, which
// clears them, never makes its mode differ from has.)
func (w *Writer) fdAttrs(fd int, m Member, xattrs map[string]string, has *unix.Stat_t) *FileError {
	if w.asRoot && (has == nil || int64(has.Uid) != m.UID || int64(has.Gid) != m.GID) {
		if err := unix.Fchown(fd, int(m.UID), int(m.GID)); err != nil {
			return &FileError{Op: "attrs", Message: fmt.Sprintf("owner %d:%d: %v", m.UID, m.GID, err)}
		}
	}
	if has == nil || has.Mode&0o7777 != m.Mode&0o7777 {
		if err := unix.Fchmod(fd, m.Mode&0o7777); err != nil {
			return &FileError{Op: "attrs", Message: fmt.Sprintf("mode %04o: %v", m.Mode&0o7777, err)}
		}
	}
	return w.setXattrs(fd, xattrs)
}

// setXattrs sets the member's xattrs: every namespace as root, user.*
// otherwise.
func (w *Writer) setXattrs(fd int, xattrs map[string]string) *FileError {
	if len(xattrs) == 0 {
		return nil
	}
	names := make([]string, 0, len(xattrs))
	for k := range xattrs {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if !w.asRoot && !strings.HasPrefix(k, "user.") {
			continue
		}
		if err := unix.Fsetxattr(fd, k, []byte(xattrs[k]), 0); err != nil {
			return &FileError{Op: "xattr", Message: fmt.Sprintf("%s: %v", k, err)}
		}
	}
	return nil
}

// attrsAt sets owner (root), mode (when chmod: not for symlinks) and
// mtime of the entry name in pfd, never following a symlink.
func (w *Writer) attrsAt(pfd int, name string, m Member, chmod bool) *FileError {
	if w.asRoot {
		if err := unix.Fchownat(pfd, name, int(m.UID), int(m.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &FileError{Op: "attrs", Message: fmt.Sprintf("owner %d:%d: %v", m.UID, m.GID, err)}
		}
	}
	if chmod {
		if err := chmodNoFollow(pfd, name, m.Mode&0o7777); err != nil {
			return &FileError{Op: "attrs", Message: fmt.Sprintf("mode %04o: %v", m.Mode&0o7777, err)}
		}
	}
	if err := unix.UtimesNanoAt(pfd, name, times(m.MtimeNs), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &FileError{Op: "attrs", Message: fmt.Sprintf("mtime: %v", err)}
	}
	return nil
}

// chmodNoFollow sets the mode of a fifo or device in pfd without ever
// following a symlink (had one been put there since it was made):
// fchmodat2(AT_SYMLINK_NOFOLLOW) (Linux 6.6), else through an O_PATH
// descriptor of the entry itself.
func chmodNoFollow(pfd int, name string, mode uint32) error {
	err := unix.Fchmodat(pfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil || !(errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS)) {
		return err
	}
	return chmodOPath(pfd, name, mode)
}

// chmodOPath is chmodNoFollow on kernels without fchmodat2.
func chmodOPath(pfd int, name string, mode uint32) error {
	fd, err := unix.Openat(pfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("%q is a symlink now: not followed", name)
	}
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}

// link makes a hard link to the member's first path, restored earlier
// in this restore (or written as another path with write_as).
func (w *Writer) link(pfd int, base string, m Member, target string) *FileError {
	bad := func(op, format string, a ...any) *FileError {
		return &FileError{Path: m.Path, Target: target, Op: op, Message: fmt.Sprintf(format, a...)}
	}
	first := m.Linkname
	if as, ok := w.writeAs[first]; ok {
		first = as
	}
	if first == m.stored() {
		// Its data was written under this very path (write_as).
		w.files.Add(1)
		return nil
	}
	if _, ok := w.restored[w.key(first)]; !ok {
		return bad("link", "a hard link to %q, which this restore did not write: select that file too (or let the director plan the data with write_as)", m.Linkname)
	}
	oldTarget, err := w.rel.Target(first)
	if err != nil {
		return bad("link", "%v", err)
	}
	oldRel, ok := w.relOf(oldTarget)
	if !ok || oldRel == "" {
		return bad("link", "its first path %q maps outside %s", first, w.root)
	}
	oldDir, oldBase := splitRel(oldRel)
	ofd, fe := w.openDir(oldDir, false)
	if fe != nil {
		fe.Path, fe.Target = m.Path, target
		return fe
	}
	defer unix.Close(ofd)
	tmp := w.tmpName()
	if err := unix.Linkat(ofd, oldBase, pfd, tmp, 0); err != nil {
		return bad("link", "to %q: %v", oldTarget, err)
	}
	if err := unix.Renameat(pfd, tmp, pfd, base); err != nil {
		unix.Unlinkat(pfd, tmp, 0)
		return bad("rename", "%v", err)
	}
	// Renaming a link over another name of the same file does nothing.
	unix.Unlinkat(pfd, tmp, 0)
	w.files.Add(1)
	return nil
}

// parent returns a directory fd for rel (made as needed), cached: the
// caller does not close it.
func (w *Writer) parent(rel string) (int, *FileError) {
	if rel == "" {
		return w.rootfd, nil
	}
	if w.lastFd >= 0 && w.lastRel == rel {
		return w.lastFd, nil
	}
	w.drain() // a file in flight may be on the way to rel
	fd, fe := w.openDir(rel, true)
	if fe != nil {
		return -1, fe
	}
	w.dropCache()
	w.lastRel, w.lastFd = rel, fd
	return fd, nil
}

func (w *Writer) dropCache() {
	if w.lastFd >= 0 {
		w.drain() // files in flight write in it
		unix.Close(w.lastFd)
	}
	w.lastFd, w.lastRel = -1, ""
}

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// openDir opens the directory rel beneath the root without following
// any symlink (making missing directories 0700 when create is set). The
// caller closes the fd.
func (w *Writer) openDir(rel string, create bool) (int, *FileError) {
	if rel == "" {
		fd, err := unix.Dup(w.rootfd)
		if err != nil {
			return -1, &FileError{Op: "open", Message: err.Error()}
		}
		return fd, nil
	}
	if w.openat2 {
		fd, err := unix.Openat2(w.rootfd, rel, &unix.OpenHow{Flags: dirFlags,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
		if err == nil {
			return fd, nil
		}
		if errors.Is(err, unix.ENOSYS) {
			w.openat2 = false
		}
		// Missing directories, a symlink, a path too long for one call:
		// the walk makes them, or says which element is wrong.
	}
	return w.walk(rel, create)
}

// walk opens rel one element at a time with O_NOFOLLOW.
func (w *Writer) walk(rel string, create bool) (int, *FileError) {
	fd, err := unix.Dup(w.rootfd)
	if err != nil {
		return -1, &FileError{Op: "open", Message: err.Error()}
	}
	done := ""
	for rest := rel; rest != ""; {
		el := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			el, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if el == "" || el == "." || el == ".." {
			unix.Close(fd)
			return -1, &FileError{Op: "refused", Message: fmt.Sprintf("path element %q", el)}
		}
		if done == "" {
			done = el
		} else {
			done += "/" + el
		}
		nfd, err := unix.Openat(fd, el, dirFlags, 0)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(fd, el, 0o700); err == nil || errors.Is(err, unix.EEXIST) {
				if err == nil {
					w.created[done] = true
				}
				nfd, err = unix.Openat(fd, el, dirFlags, 0)
			}
		}
		if err != nil {
			var st unix.Stat_t
			msg := err.Error()
			op := "open"
			if unix.Fstatat(fd, el, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
				switch st.Mode & unix.S_IFMT {
				case unix.S_IFLNK:
					op, msg = "refused", fmt.Sprintf("%s is a symlink: never followed (it could lead outside %s)", w.show(done), w.root)
				case unix.S_IFDIR:
				default:
					op, msg = "refused", fmt.Sprintf("%s is a %s, not a directory", w.show(done), typeName(st.Mode))
				}
			}
			unix.Close(fd)
			return -1, &FileError{Op: op, Message: msg}
		}
		unix.Close(fd)
		fd = nfd
	}
	return fd, nil
}

func (w *Writer) show(rel string) string {
	if w.root == "/" {
		return strconv.Quote("/" + rel)
	}
	return strconv.Quote(w.root + "/" + rel)
}

// Close applies the recorded attributes of the directories restored
// (deepest first, so a directory's mtime is set after its content) and
// gives the directories it made with no record the default mode (0777
// less the umask); it reports failures as FileErrors. Call it once the
// members are written, also after a cancellation.
func (w *Writer) Close() {
	if w.closed {
		return
	}
	w.closed = true
	if w.jobs != nil {
		w.drain()
		close(w.jobs)
		w.workers.Wait()
	}
	w.dropCache()
	defer unix.Close(w.rootfd)
	type item struct {
		rel   string
		depth int
		a     *dirAttr
	}
	var items []item
	for i := range w.dirs {
		if !w.dirs[i].gone {
			items = append(items, item{w.dirs[i].rel, strings.Count(w.dirs[i].rel, "/"), &w.dirs[i]})
		}
	}
	for rel := range w.created {
		if _, ok := w.dirIdx[rel]; !ok {
			items = append(items, item{rel, strings.Count(rel, "/"), nil})
		}
	}
	slices.SortFunc(items, func(a, b item) int {
		if a.depth != b.depth {
			return b.depth - a.depth
		}
		return strings.Compare(a.rel, b.rel)
	})
	for _, it := range items {
		if fe := w.applyDir(it.rel, it.a); fe != nil {
			if it.a != nil {
				fe.Path = it.a.path
			} else {
				fe.Path = w.show(it.rel)
			}
			fe.Target = w.root
			if it.rel != "" {
				fe.Target = strings.TrimSuffix(w.root, "/") + "/" + it.rel
			}
			w.fail(fe)
		}
	}
}

func (w *Writer) applyDir(rel string, a *dirAttr) *FileError {
	fd, fe := w.openDir(rel, false)
	if fe != nil {
		return fe
	}
	defer unix.Close(fd)
	if a == nil {
		if err := unix.Fchmod(fd, 0o777&^w.umask); err != nil {
			return &FileError{Op: "attrs", Message: fmt.Sprintf("mode: %v", err)}
		}
		return nil
	}
	if fe := w.fdAttrs(fd, a.m, a.xattrs, nil); fe != nil {
		return fe
	}
	ts := times(a.m.MtimeNs)
	if rel == "" {
		if err := unix.UtimesNanoAt(w.rootfd, ".", ts, 0); err != nil {
			return &FileError{Op: "attrs", Message: fmt.Sprintf("mtime: %v", err)}
		}
		return nil
	}
	dir, base := splitRel(rel)
	pfd, fe := w.openDir(dir, false)
	if fe != nil {
		return fe
	}
	defer unix.Close(pfd)
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &FileError{Op: "attrs", Message: fmt.Sprintf("mtime: %v", err)}
	}
	return nil
}
