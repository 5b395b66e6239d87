//go:build linux

// Package testtree makes the file trees Tapeward's backup tests and
// benchmarks back up — large and small files of random data, a symlink,
// a hard link, symlink loops, a long name, names with a newline and
// invalid UTF-8, a 4096-byte path, a sparse file, many files in one
// directory — takes a Snapshot of a tree (paths, types, sizes, modes,
// SHA-256 of regular files; paths longer than PATH_MAX included), and
// compares a job's file list as the director's console prints it
// (`tapectl --json "list files jobid=N"`, ParseListFiles) with a
// snapshot (Compare).
//
// It imports the standard library and golang.org/x/sys/unix only.
package testtree

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Options says what Make puts in a tree. The zero value makes an empty
// root directory.
type Options struct {
	Seed uint64 // of the random file contents (0 is a seed too)
	// LargeFiles files of LargeSize bytes in big/.
	LargeFiles int
	LargeSize  int64
	// SmallFiles files of SmallSize bytes in small/dNN/ (100 a directory).
	SmallFiles int
	SmallSize  int64
	// FlatFiles files of FlatSize bytes in one directory, flat/.
	FlatFiles int
	FlatSize  int64
	// Links: in links/, a file, a relative symlink to it, a hard-linked
	// pair, a dangling symlink and a symlink loop (loop-a → loop-b →
	// loop-a).
	Links bool
	// LongName: a file with a 150-byte name in names/.
	LongName bool
	// OddNames: files in names/ whose names hold a newline and invalid
	// UTF-8.
	OddNames bool
	// DeepPath: a file whose absolute path is exactly 4096 bytes
	// (PATH_MAX counts the NUL: no single system call takes it), under
	// deep/.
	DeepPath bool
	// SparseSize: sparse.img, a file of this apparent size that is holes
	// but for 64 KiB of data at its start, middle and end (0: none).
	SparseSize int64
}

// Paths of the entries Make creates, relative to the root (the tests
// mutate them).
const (
	LinkTarget = "links/target.txt"
	Symlink    = "links/sym"
	HardA      = "links/hard-a.bin"
	HardB      = "links/hard-b.bin"
	LoopA      = "links/loop-a"
	Dangling   = "links/dangling"
	Sparse     = "sparse.img"
)

// LongName, NewlineName and BadUTF8Name are the odd names under names/.
var (
	LongName    = "names/" + strings.Repeat("long-name-", 15) // 150 bytes
	NewlineName = "names/new\nline.txt"
	BadUTF8Name = "names/bad-\xff\xfe-utf8.bin"
)

// Make creates root (which must not exist or be empty) and fills it as o
// says. It returns the first error.
func Make(root string, o Options) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewChaCha8(seed(o.Seed)))
	for i := 0; i < o.LargeFiles; i++ {
		if err := WriteRandom(filepath.Join(root, "big", fmt.Sprintf("large-%02d.bin", i)), o.LargeSize, rng); err != nil {
			return err
		}
	}
	for i := 0; i < o.SmallFiles; i++ {
		if err := WriteRandom(filepath.Join(root, "small", fmt.Sprintf("d%02d", i/100), fmt.Sprintf("s%04d.bin", i)), o.SmallSize, rng); err != nil {
			return err
		}
	}
	for i := 0; i < o.FlatFiles; i++ {
		if err := WriteRandom(filepath.Join(root, "flat", fmt.Sprintf("f%06d", i)), o.FlatSize, rng); err != nil {
			return err
		}
	}
	if o.Links {
		if err := WriteRandom(filepath.Join(root, LinkTarget), 3000, rng); err != nil {
			return err
		}
		if err := WriteRandom(filepath.Join(root, HardA), 70000, rng); err != nil {
			return err
		}
		for _, e := range []error{
			os.Link(filepath.Join(root, HardA), filepath.Join(root, HardB)),
			os.Symlink("target.txt", filepath.Join(root, Symlink)),
			os.Symlink("loop-b", filepath.Join(root, LoopA)),
			os.Symlink("loop-a", filepath.Join(root, "links/loop-b")),
			os.Symlink("/nonexistent/tapeward-test", filepath.Join(root, Dangling)),
		} {
			if e != nil {
				return e
			}
		}
	}
	if o.LongName {
		if err := WriteRandom(filepath.Join(root, LongName), 1234, rng); err != nil {
			return err
		}
	}
	if o.OddNames {
		for _, n := range []string{NewlineName, BadUTF8Name} {
			if err := WriteRandom(filepath.Join(root, n), 777, rng); err != nil {
				return err
			}
		}
	}
	if o.DeepPath {
		if err := makeDeep(root, rng); err != nil {
			return err
		}
	}
	if o.SparseSize > 0 {
		if err := makeSparse(filepath.Join(root, Sparse), o.SparseSize, rng); err != nil {
			return err
		}
	}
	return nil
}

func seed(s uint64) [32]byte {
	var b [32]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(s >> (8 * i))
	}
	copy(b[8:], "tapeward testtree")
	return b
}

// WriteRandom writes a file of n random bytes at path (its directory is
// made), mode 0644.
func WriteRandom(path string, n int64, rng *rand.Rand) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, randReader{rng}, n); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Rand is a random source for WriteRandom.
func Rand(seed uint64) *rand.Rand {
	var b [32]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(seed >> (8 * i))
	}
	return rand.New(rand.NewChaCha8(b))
}

type randReader struct{ r *rand.Rand }

func (r randReader) Read(p []byte) (int, error) {
	i := 0
	for ; i+8 <= len(p); i += 8 {
		v := r.r.Uint64()
		for k := 0; k < 8; k++ {
			p[i+k] = byte(v >> (8 * k))
		}
	}
	for ; i < len(p); i++ {
		p[i] = byte(r.r.Uint32())
	}
	return len(p), nil
}

// DeepPathOf returns the path Make's DeepPath file gets under root: the
// directories below root/deep and the file name.
func DeepPathOf(root string) (dirs []string, name string) {
	rest := 4096 - len(root) - len("/deep")
	for rest > 256 {
		dirs = append(dirs, strings.Repeat("d", 199))
		rest -= 200
	}
	return dirs, strings.Repeat("f", rest-1)
}

// DeepPath returns the absolute path (4096 bytes) of the DeepPath file.
func DeepPath(root string) string {
	dirs, name := DeepPathOf(root)
	return root + "/deep/" + strings.Join(append(dirs, name), "/")
}

// makeDeep creates the 4096-byte path with *at calls (a single path of
// that length is too long for the kernel).
func makeDeep(root string, rng *rand.Rand) error {
	dirs, name := DeepPathOf(root)
	if err := os.Mkdir(filepath.Join(root, "deep"), 0o755); err != nil {
		return err
	}
	fd, err := unix.Open(filepath.Join(root, "deep"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if err := unix.Mkdirat(fd, d, 0o755); err != nil {
			unix.Close(fd)
			return err
		}
		next, err := unix.Openat(fd, d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return err
		}
		fd = next
	}
	ffd, err := unix.Openat(fd, name, unix.O_CREAT|unix.O_WRONLY|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	unix.Close(fd)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(ffd), "deep file")
	if _, err := io.CopyN(f, randReader{rng}, 4321); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// makeSparse makes a file of size bytes that is holes but for 64 KiB of
// random data at its start, middle and end.
func makeSparse(path string, size int64, rng *rand.Rand) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for _, at := range []int64{0, size / 2 &^ 4095, size - chunk} {
		if at < 0 {
			continue
		}
		randReader{rng}.Read(buf)
		n := min(int64(chunk), size-at)
		if _, err := f.WriteAt(buf[:n], at); err != nil {
			return err
		}
	}
	return f.Close()
}
