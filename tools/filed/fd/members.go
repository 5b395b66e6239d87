package fd

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/tools/filed/fileset"
	"github.com/tapeward/tapeward/tools/lib/archive"
)

// memberPath is the path an entry is stored (and reported as seen)
// under: its absolute path, a directory's ending in '/' — what
// archive.Record.Path gives, so the director can compare seen paths
// with the catalog's.
func memberPath(p string, t fileset.Type) string {
	if t == fileset.TypeDir && !strings.HasSuffix(p, "/") {
		return p + "/"
	}
	return p
}

// archiveType maps a walk entry's type to the archive's.
func archiveType(t fileset.Type) archive.Type {
	switch t {
	case fileset.TypeRegular:
		return archive.TypeReg
	case fileset.TypeDir:
		return archive.TypeDir
	case fileset.TypeSymlink:
		return archive.TypeSymlink
	case fileset.TypeHardlink:
		return archive.TypeLink
	case fileset.TypeFifo:
		return archive.TypeFifo
	case fileset.TypeChar:
		return archive.TypeChar
	case fileset.TypeBlock:
		return archive.TypeBlock
	}
	return 0
}

// member builds the archive member of a walk entry. A later sighting of
// a hard-linked inode is passed as a regular file with the inode's
// Dev/Ino: the writer stores it as a link to the first path, with that
// member's digest.
func member(e *fileset.Entry) archive.Member {
	m := archive.Member{
		Path: e.Path, Type: archiveType(e.Type), Size: e.Size, Mode: int64(e.Mode),
		UID: int64(e.UID), GID: int64(e.GID), Uname: e.Uname, Gname: e.Gname,
		Mtime: e.Mtime, Linkname: e.Linkname, Xattrs: e.Xattrs,
		Dev: e.Dev, Ino: e.Ino, Nlink: e.Nlink,
	}
	switch e.Type {
	case fileset.TypeHardlink:
		m.Type, m.Linkname, m.Size = archive.TypeReg, "", 0
	case fileset.TypeChar, fileset.TypeBlock:
		m.Devmajor, m.Devminor = int64(unix.Major(e.Rdev)), int64(unix.Minor(e.Rdev))
	case fileset.TypeRegular:
		if e.Sparse {
			m.Sparse = make([]archive.Span, len(e.Data))
			for i, x := range e.Data {
				m.Sparse[i] = archive.Span{Offset: x.Offset, Length: x.Length}
			}
		}
	}
	if e.Type != fileset.TypeRegular && e.Type != fileset.TypeHardlink {
		m.Nlink = 0 // only regular files are stored once per inode
	}
	return m
}

// recordAlloc hands out wire records and their byte fields from slabs
// (a few allocations per 256 members instead of three per member). A
// slab lives until the last record taken from it has been sent.
type recordAlloc struct {
	recs []pb.MemberRecord
	buf  []byte
}

const (
	recordSlab = 256
	bytesSlab  = 64 << 10
)

func (a *recordAlloc) record() *pb.MemberRecord {
	if len(a.recs) == 0 {
		a.recs = make([]pb.MemberRecord, recordSlab)
	}
	r := &a.recs[0]
	a.recs = a.recs[1:]
	return r
}

// bytes returns n bytes of the slab, capped (an append to them cannot
// reach the next field).
func (a *recordAlloc) bytes(n int) []byte {
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, max(bytesSlab, n))
	}
	l := len(a.buf)
	a.buf = a.buf[:l+n]
	return a.buf[l : l+n : l+n]
}

// record converts a writer record to the wire form.
func (a *recordAlloc) wire(r *archive.Record) *pb.MemberRecord {
	m := a.record()
	m.Path = a.bytes(len(r.Path))
	copy(m.Path, r.Path)
	m.Type, m.Size, m.Mode = r.Type.String(), r.Size, uint32(r.Mode)
	m.Uid, m.Gid, m.Uname, m.Gname, m.MtimeNs = r.UID, r.GID, r.Uname, r.Gname, r.Mtime
	m.Sparse, m.Devmajor, m.Devminor = r.Sparse, r.Devmajor, r.Devminor
	m.HeaderOffset, m.DataOffset, m.StoredSize = r.HeaderOffset, r.DataOffset, r.StoredSize
	m.Warnings = uint32(r.Warnings)
	if r.Linkname != "" {
		m.Linkname = a.bytes(len(r.Linkname))
		copy(m.Linkname, r.Linkname)
	}
	if r.Type == archive.TypeReg || r.Type == archive.TypeLink {
		m.Sha256 = a.bytes(len(r.SHA256))
		copy(m.Sha256, r.SHA256[:])
	}
	return m
}

// dataReader feeds archive.Writer a regular file's stored bytes: the
// whole file, or a sparse file's data extents one after the other. A
// read error ends the data (the writer pads with zeros, so the stream
// stays valid) and is kept for a warning.
type dataReader struct {
	r      *fileset.Reader
	sparse bool
	ext    []fileset.Extent
	i      int
	off    int64 // within ext[i]
	err    error
}

func (d *dataReader) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, io.EOF
	}
	if !d.sparse {
		n, err := d.r.Read(p)
		if err != nil && err != io.EOF {
			d.err = err
			return n, io.EOF
		}
		return n, err
	}
	for d.i < len(d.ext) {
		x := d.ext[d.i]
		rest := x.Length - d.off
		if rest == 0 {
			d.i, d.off = d.i+1, 0
			continue
		}
		if int64(len(p)) > rest {
			p = p[:rest]
		}
		n, err := d.r.ReadAt(p, x.Offset+d.off)
		d.off += int64(n)
		switch {
		case err == io.EOF && n == 0:
			return 0, io.EOF // the file shrank: zeros follow
		case err != nil && err != io.EOF:
			d.err = err
			return n, io.EOF
		}
		return n, nil
	}
	return 0, io.EOF
}

// parents lists the directories above the include roots that no root
// contains (for include /home/a/docs: /home and /home/a, unless /home or
// /home/a is itself included), shallowest first, without "/". They are
// stored as directory members before the walk, so that a restore
// recreates them with their owner and mode (a home directory's 0700).
// Only directories: a symlink on the way is not stored (the walk does
// not follow it either).
func parents(roots []string) []string {
	clean := make([]string, 0, len(roots))
	for _, r := range roots {
		clean = append(clean, filepath.Clean(r))
	}
	covered := func(p string) bool {
		for _, r := range clean {
			if p == r || r == "/" || strings.HasPrefix(p, r+"/") {
				return true
			}
		}
		return false
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range clean {
		var chain []string
		for p := filepath.Dir(r); p != "/" && p != "."; p = filepath.Dir(p) {
			chain = append(chain, p)
		}
		for i := len(chain) - 1; i >= 0; i-- {
			p := chain[i]
			if seen[p] || covered(p) {
				continue
			}
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// parentMember lstats a parent directory for its member (names from
// ids); ok is false when it is not a directory (or gone).
func parentMember(p string, ids *fileset.IDNames) (archive.Member, bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return archive.Member{}, false, nil
		}
		return archive.Member{}, false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return archive.Member{}, false, nil
	}
	return archive.Member{
		Path: p, Type: archive.TypeDir, Mode: int64(st.Mode & 07777), UID: int64(st.Uid), GID: int64(st.Gid),
		Uname: ids.User(st.Uid), Gname: ids.Group(st.Gid), Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
	}, true, nil
}
