package archive

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// benchFiles writes n files of size random bytes under dir (once per
// benchmark run).
func benchFiles(b *testing.B, dir string, n int, size int) []string {
	b.Helper()
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, 8<<20)
	var paths []string
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("file%02d.bin", i))
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		for left := size; left > 0; left -= len(buf) {
			rng.Read(buf)
			if _, err := f.Write(buf[:min(left, len(buf))]); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// BenchmarkWriterVsTar: the writer (reading the files, pax headers,
// SHA-256 of every byte, into `cat > /dev/null` through a pipe) against
// `tar cf - DIR | cat > /dev/null` (GNU
// tar does not even read the files when its archive is /dev/null itself)
// on the same 16 × 128 MiB of random data in the page cache, in the same
// run. Reports both rates and writer/tar, and the writer's rate into
// io.Discard (what the writer itself costs, no pipe).
func BenchmarkWriterVsTar(b *testing.B) {
	const files, size = 16, 128 << 20
	dir := b.TempDir()
	data := filepath.Join(dir, "data")
	os.Mkdir(data, 0o755)
	paths := benchFiles(b, data, files, size)
	tarPath := needTar(b, "tar")
	// Warm the page cache (the files were just written) so neither side
	// pays for the disk.
	if out, err := exec.Command("sh", "-c", `cat "$0"/* > /dev/null`, data).CombinedOutput(); err != nil {
		b.Fatalf("warming the cache: %v: %s", err, out)
	}
	var ours, theirs, discard time.Duration
	writeAll := func(sink io.Writer) {
		w := NewWriter(sink)
		for _, p := range paths {
			f, err := os.Open(p)
			if err != nil {
				b.Fatal(err)
			}
			fi, _ := f.Stat()
			m := Member{Path: "data/" + filepath.Base(p), Type: TypeReg, Size: fi.Size(), Mode: 0o644, Mtime: fi.ModTime()}
			if _, err := w.WriteMember(m, f); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(files * size)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		writeAll(io.Discard)
		discard += time.Since(start)

		start = time.Now()
		// Into `cat > /dev/null` through a pipe, as tar's output goes.
		cat := exec.Command("sh", "-c", "cat > /dev/null")
		sink, err := cat.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cat.Start(); err != nil {
			b.Fatal(err)
		}
		writeAll(sink)
		sink.Close()
		if err := cat.Wait(); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)

		start = time.Now()
		cmd := exec.Command("sh", "-c", `"$0" cf - data | cat > /dev/null`, tarPath)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("tar cf - data | cat: %v: %s", err, out)
		}
		theirs += time.Since(start)
	}
	total := float64(files*size) * float64(b.N) / 1e6
	b.ReportMetric(total/discard.Seconds(), "writer-discard-MB/s")
	b.ReportMetric(total/ours.Seconds(), "writer-MB/s")
	b.ReportMetric(total/theirs.Seconds(), "tar-MB/s")
	b.ReportMetric(theirs.Seconds()/ours.Seconds(), "writer/tar")
}

// BenchmarkSmallMembers: 100,000 members of 4 KiB from memory; reports
// allocations per member and members per second.
func BenchmarkSmallMembers(b *testing.B) {
	const members = 100000
	data := bytes.Repeat([]byte("0123456789abcdef"), 256)
	names := make([]string, members)
	for i := range names {
		names[i] = fmt.Sprintf("home/user/dir%03d/file%06d.txt", i/1000, i)
	}
	r := bytes.NewReader(data)
	var ms0, ms1 runtime.MemStats
	b.ReportAllocs()
	b.ResetTimer()
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	for range b.N {
		w := NewWriter(io.Discard)
		for _, name := range names {
			r.Reset(data)
			m := Member{Path: name, Type: TypeReg, Size: int64(len(data)), Mode: 0o644, UID: 1000, GID: 1000,
				Uname: "alice", Gname: "users", Mtime: testTime}
			if _, err := w.WriteMember(m, r); err != nil {
				b.Fatal(err)
			}
		}
		w.Close()
	}
	el := time.Since(start)
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N*members), "allocs/member")
	b.ReportMetric(float64(b.N*members)/el.Seconds(), "members/s")
}
