//go:build linux

package fileset

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ChunkSize is the read size of (*Reader).WriteTo (io.Copy uses it).
const ChunkSize = 1 << 20

var chunks = sync.Pool{New: func() any { b := make([]byte, ChunkSize); return &b }}

// Reader reads a regular file's data for the archive: exactly the
// entry's Size bytes, whatever the file does meanwhile. It holds the raw
// descriptor (no os.File: no fcntl, finalizer or allocation of its own
// per file): a small file costs open, fstat, one read, fstat, close.
type Reader struct {
	fd      int
	e       Entry
	off     int64 // bytes delivered
	padFrom int64 // -1, or the offset where the file ended early
	changed *ChangedError
	checked bool
	blocked bool // O_NONBLOCK cleared after a read said EAGAIN
	xattrs  map[string]string
	xwarn   []Warning
}

// OpenForBackup opens a regular file of the walk for reading, with
// O_NOFOLLOW (a path swapped for a symlink is not followed),
// O_NONBLOCK (a FIFO swapped in does not block the open; it is then
// refused) and O_NOATIME (retried without it where the kernel refuses
// it: EPERM for a file the process does not own without CAP_FOWNER).
// Called from the walk's callback, it opens relative to the open parent
// directory, so a path longer than PATH_MAX works and a parent renamed
// meanwhile is not a problem; later, it opens by path. A path that is
// no longer a regular file is a *Warning (op "open"); another regular
// file there is read, and Changed reports it.
func OpenForBackup(e Entry) (*Reader, error) {
	if e.Type != TypeRegular {
		return nil, fmt.Errorf("open for backup %s: a %s, not a regular file", showPath(e.Path), e.Type)
	}
	fd, err := openEntry(e)
	if err != nil {
		return nil, &Warning{Path: e.Path, Op: "open", Err: err}
	}
	r := &Reader{fd: fd, e: e, padFrom: -1}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &Warning{Path: e.Path, Op: "open", Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, &Warning{Path: e.Path, Op: "open", Err: fmt.Errorf("no longer a regular file (replaced by another type after it was listed)")}
	}
	if st.Dev != e.Dev || st.Ino != e.Ino {
		r.changed = &ChangedError{Path: e.Path, Reason: fmt.Sprintf("replaced by another file (inode %d, was %d) after it was listed", st.Ino, e.Ino)}
	}
	if e.xattrsAtOpen {
		r.xattrs = fdXattrs(fd, func(op string, err error) {
			r.xwarn = append(r.xwarn, Warning{Path: e.Path, Op: op, Err: err})
		})
	}
	if e.Size > ChunkSize {
		// Larger read-ahead; a small file is read in one call anyway
		// (one system call less per file).
		_ = unix.Fadvise(fd, 0, 0, unix.FADV_SEQUENTIAL)
	}
	return r, nil
}

// openFile opens name in dir for reading: O_NOFOLLOW, O_NONBLOCK,
// O_NOATIME when allowed. O_NONBLOCK stays set: Linux ignores it for
// regular files, and a read that says EAGAIN all the same clears it
// and retries (Reader.read).
func openFile(dir *dirHandle, name string) (int, error) {
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	fd, err := unix.Openat(dir.fd, name, flags|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = unix.Openat(dir.fd, name, flags, 0)
	}
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// openEntry opens e relative to its directory while the walk holds it
// open, else by path (component by component when longer than PATH_MAX).
func openEntry(e Entry) (int, error) {
	if d := e.dir; d != nil {
		d.mu.RLock()
		if !d.closed {
			fd, err := openFile(d, e.name)
			d.mu.RUnlock()
			return fd, err
		}
		d.mu.RUnlock()
	}
	if len(e.Path) < 4096 {
		return openFile(cwd, e.Path)
	}
	// Too long for one open: walk the parents with O_PATH.
	dfd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	elems := strings.Split(e.Path[1:], "/")
	for _, el := range elems[:len(elems)-1] {
		nfd, err := unix.Openat(dfd, el, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(dfd)
		if err != nil {
			return -1, err
		}
		dfd = nfd
	}
	defer unix.Close(dfd)
	return openFile(&dirHandle{fd: dfd}, elems[len(elems)-1])
}

// Read reads the file's data: exactly Size bytes in all, then io.EOF.
// If the file ends early the rest reads as zeros; bytes beyond Size are
// not read. Either way Changed reports it.
func (r *Reader) Read(p []byte) (int, error) {
	if r.off >= r.e.Size {
		r.check()
		return 0, io.EOF
	}
	if rest := r.e.Size - r.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	if r.padFrom >= 0 {
		clear(p)
		r.off += int64(len(p))
		return len(p), nil
	}
	n, err := r.read(p, -1)
	r.off += int64(n)
	if n == 0 && err == nil {
		r.padFrom = r.off
		if n == 0 {
			return r.Read(p)
		}
		return n, nil
	}
	if err != nil {
		return n, &Warning{Path: r.e.Path, Op: "read", Err: err}
	}
	return n, nil
}

// read is one read(2) (off < 0) or pread(2) into p, retried on EINTR;
// EAGAIN (a file system that honours O_NONBLOCK) clears O_NONBLOCK and
// retries. n == 0 with a nil error is the end of the file.
func (r *Reader) read(p []byte, off int64) (int, error) {
	for {
		var n int
		var err error
		if off < 0 {
			n, err = unix.Read(r.fd, p)
		} else {
			n, err = unix.Pread(r.fd, p, off)
		}
		switch {
		case err == nil:
			return n, nil
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN && !r.blocked:
			r.blocked = true
			if serr := unix.SetNonblock(r.fd, false); serr != nil {
				return 0, serr
			}
			continue
		}
		return 0, err
	}
}

// WriteTo copies the file's Size bytes to w in ChunkSize reads.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	bp := chunks.Get().(*[]byte)
	defer chunks.Put(bp)
	buf := *bp
	var total int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			r.check()
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// ReadAt reads the file at off (for a sparse-aware writer that reads
// only Data extents); it does not pad. Call Changed after the last
// read.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	got := 0
	for got < len(p) {
		n, err := r.read(p[got:], off+int64(got))
		if err != nil {
			return got, &Warning{Path: r.e.Path, Op: "read", Err: err}
		}
		if n == 0 {
			return got, io.EOF
		}
		got += n
	}
	return got, nil
}

// check records, once the data is read, whether the file changed.
func (r *Reader) check() {
	if r.checked {
		return
	}
	r.checked = true
	if r.changed == nil {
		r.changed = r.compare()
	}
}

// compare compares the file now with the entry: it must not have
// ended early, nor changed size, mtime or ctime.
func (r *Reader) compare() *ChangedError {
	if r.changed != nil {
		return r.changed
	}
	if r.padFrom >= 0 {
		return &ChangedError{Path: r.e.Path, Reason: fmt.Sprintf("shrank while read: only %d of %d bytes, the rest stored as zeros", r.padFrom, r.e.Size)}
	}
	var st unix.Stat_t
	if err := unix.Fstat(r.fd, &st); err != nil {
		return &ChangedError{Path: r.e.Path, Reason: "fstat after reading: " + err.Error()}
	}
	mtime := time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
	ctime := time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	switch {
	case st.Size != r.e.Size:
		return &ChangedError{Path: r.e.Path, Reason: fmt.Sprintf("size %d after reading, %d when listed; %d bytes stored", st.Size, r.e.Size, r.e.Size)}
	case !mtime.Equal(r.e.Mtime):
		return &ChangedError{Path: r.e.Path, Reason: fmt.Sprintf("modified while read (mtime %s, was %s)", mtime.Format(time.RFC3339Nano), r.e.Mtime.Format(time.RFC3339Nano))}
	case !ctime.Equal(r.e.Ctime):
		return &ChangedError{Path: r.e.Path, Reason: fmt.Sprintf("changed while read (ctime %s, was %s)", ctime.Format(time.RFC3339Nano), r.e.Ctime.Format(time.RFC3339Nano))}
	}
	return nil
}

// Changed returns nil if the file stayed as the walk listed it while it
// was read, else a *ChangedError saying how (the caller turns it into a
// warning: job status W). Call it after reading to the end (or after
// the last ReadAt); called earlier, it checks the file as it is now.
func (r *Reader) Changed() error {
	var c *ChangedError
	if r.checked {
		c = r.changed
	} else {
		c = r.compare()
	}
	if c == nil {
		return nil
	}
	return c
}

// Xattrs returns the file's xattrs read at open, and the problems met
// reading them (ops "xattr" or "xattr NAME"), when the walk ran with
// WalkOptions.FileXattrsAtOpen; else the entry's Xattrs and no
// warnings.
func (r *Reader) Xattrs() (map[string]string, []Warning) {
	if !r.e.xattrsAtOpen {
		return r.e.Xattrs, nil
	}
	return r.xattrs, r.xwarn
}

// Close closes the file.
func (r *Reader) Close() error {
	if r.fd < 0 {
		return errors.New("fileset: Reader closed twice")
	}
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}
