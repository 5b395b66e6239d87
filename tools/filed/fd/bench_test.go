package fd

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// Benchmark sizes: `make bench` runs the measures (2 GiB in 16
// files; 100,000 files of 4 KiB); TAPEWARD_BENCH_SMALL=1 runs 1/16 of
// the data and 1/10 of the files (~20 s on the 2-core machine).
func benchSizes() (largeEach int64, smallCount int) {
	if os.Getenv("TAPEWARD_BENCH_SMALL") != "" {
		return 8 << 20, 10_000
	}
	return 128 << 20, 100_000
}

var (
	benchTrees   = map[string]string{}
	benchTreesMu sync.Mutex
)

// benchTree makes (once per run) the tree of a benchmark. With
// TAPEWARD_BENCH_DIR set, the tree is made there once and kept across
// runs (a file "complete" marks it done), so that a CPU profile
// (-cpuprofile) shows the backup, not the making of the tree.
func benchTree(b *testing.B, kind string) (root string, files int, bytes int64) {
	b.Helper()
	largeEach, smallCount := benchSizes()
	benchTreesMu.Lock()
	defer benchTreesMu.Unlock()
	root = benchTrees[kind]
	switch kind {
	case "large":
		files, bytes = 16, 16*largeEach
	case "small":
		files, bytes = smallCount, int64(smallCount)*4096
	}
	if root != "" {
		return root, files, bytes
	}
	var marker string
	if keep := os.Getenv("TAPEWARD_BENCH_DIR"); keep != "" {
		root = filepath.Join(keep, fmt.Sprintf("%s-%d", kind, files))
		marker = root + ".complete"
		if _, err := os.Stat(marker); err == nil {
			benchTrees[kind] = root
			return root, files, bytes
		}
		must(b, os.RemoveAll(root))
	} else {
		root = filepath.Join(b.TempDir(), kind)
	}
	must(b, os.MkdirAll(root, 0o755))
	switch kind {
	case "large":
		for i := range 16 {
			must(b, os.WriteFile(filepath.Join(root, fmt.Sprintf("big%02d", i)), randomBytes(uint64(i), int(largeEach)), 0o644))
		}
	case "small":
		data := randomBytes(7, 4096)
		for i := range smallCount {
			d := filepath.Join(root, fmt.Sprintf("d%03d", i/1000))
			if i%1000 == 0 {
				must(b, os.Mkdir(d, 0o755))
			}
			data[0], data[1], data[2] = byte(i), byte(i>>8), byte(i>>16)
			must(b, os.WriteFile(filepath.Join(d, fmt.Sprintf("f%06d", i)), data, 0o644))
		}
	}
	benchTrees[kind] = root
	if marker != "" {
		must(b, os.WriteFile(marker, nil, 0o644))
		return root, files, bytes
	}
	b.Cleanup(func() {
		benchTreesMu.Lock()
		delete(benchTrees, kind)
		benchTreesMu.Unlock()
	})
	return root, files, bytes
}

// tarTime runs `tar cf - DIR` into a pipe that is read and discarded
// (GNU tar skips reading files when its output is /dev/null itself).
func tarTime(b *testing.B, dir string) time.Duration {
	b.Helper()
	cmd := exec.Command("tar", "cf", "-", "-C", filepath.Dir(dir), filepath.Base(dir))
	out, err := cmd.StdoutPipe()
	must(b, err)
	start := time.Now()
	must(b, cmd.Start())
	if _, err := io.Copy(io.Discard, out); err != nil {
		b.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("tar cf - %s: %v", dir, err)
	}
	return time.Since(start)
}

// BenchmarkBackupVsTar: filed backs a tree up over mutual TLS into a
// fake storage that discards the data, and `tar cf -` reads the same
// tree, in the same iterations; ratio = tar's time / filed's time
// (≥ 0.5 is the goal). peak-heap-MiB is the largest in-use heap
// sampled while filed ran (the whole test process: filed, the fake
// storage, the director's client).
func BenchmarkBackupVsTar(b *testing.B) {
	for _, kind := range []string{"large", "small", "small-xattrs"} {
		b.Run(kind, func(b *testing.B) {
			root, files, size := benchTree(b, strings.TrimSuffix(kind, "-xattrs"))
			e := newEnv(b, nil)
			e.sd.discard = true
			req := e.request(root)
			// small-xattrs: as a fileset's default (tar reads none).
			req.Fileset.Xattrs = strings.HasSuffix(kind, "-xattrs")
			tarTime(b, root) // warm the page cache
			var filedT, tarT, filedCPU time.Duration
			var peak, allocs uint64
			b.ResetTimer()
			for range b.N {
				stop := make(chan struct{})
				sampled := make(chan uint64)
				go func() {
					var ms runtime.MemStats
					var max uint64
					t := time.NewTicker(20 * time.Millisecond)
					defer t.Stop()
					for {
						runtime.ReadMemStats(&ms)
						max = Max(max, ms.HeapInuse)
						select {
						case <-stop:
							sampled <- max
							return
						case <-t.C:
						}
					}
				}()
				start, cpu0, m0 := time.Now(), testenv.ProcessCPU(b), mallocs()
				r := e.backup(ctxT(b), req)
				filedT += time.Since(start)
				filedCPU += testenv.ProcessCPU(b) - cpu0
				allocs += mallocs() - m0
				close(stop)
				peak = Max(peak, <-sampled)
				if r.err != nil || r.done == nil || r.done.Bytes != size {
					b.Fatalf("backup: %v, done %v (want %d bytes)", r.err, r.done, size)
				}
				tarT += tarTime(b, root)
			}
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(float64(size)/1e6/(filedT.Seconds()/n), "filed-MB/s")
			b.ReportMetric(float64(size)/1e6/(tarT.Seconds()/n), "tar-MB/s")
			b.ReportMetric(float64(files)/(filedT.Seconds()/n), "filed-files/s")
			b.ReportMetric(float64(files)/(tarT.Seconds()/n), "tar-files/s")
			b.ReportMetric(tarT.Seconds()/filedT.Seconds(), "ratio")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(filedCPU.Microseconds())/n/float64(files), "cpu-µs/file")
			b.ReportMetric(float64(allocs)/n/float64(files), "allocs/file")
		})
	}
}

// findNewerTime runs `find DIR -newer REF` (its output read and
// discarded): the cost of listing what changed since REF's mtime, which
// is what an Incremental's walk must at least do.
func findNewerTime(b *testing.B, dir, ref string) time.Duration {
	b.Helper()
	cmd := exec.Command("find", dir, "-newer", ref)
	out, err := cmd.StdoutPipe()
	must(b, err)
	start := time.Now()
	must(b, cmd.Start())
	if _, err := io.Copy(io.Discard, out); err != nil {
		b.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("find %s -newer %s: %v", dir, ref, err)
	}
	return time.Since(start)
}

// BenchmarkIncrementalVsFind: an Incremental over the small tree with
// nothing changed (since = after the tree was made, send_seen on, as
// the director asks when it records deletions), against
// `find DIR -newer REF` in the same iterations; ratio = filed's time /
// find's time (≤ 2 is the goal).
func BenchmarkIncrementalVsFind(b *testing.B) {
	root, files, _ := benchTree(b, "small")
	ref := filepath.Join(filepath.Dir(root), "incremental-ref")
	must(b, os.WriteFile(ref, nil, 0o644))
	st, err := os.Stat(ref)
	must(b, err)
	e := newEnv(b, nil)
	e.sd.discard = true
	req := e.request(root)
	req.Fileset.Xattrs = false
	// since is just after REF's mtime: find -newer lists what is
	// strictly newer, and a file made in the same clock tick as REF
	// (same timestamp) is unchanged for both.
	req.Level, req.SinceUnixNs, req.SendSeen = "Incremental", st.ModTime().UnixNano()+1, true
	findNewerTime(b, root, ref) // warm the caches
	var filedT, findT, filedCPU time.Duration
	var allocs uint64
	b.ResetTimer()
	for range b.N {
		start, cpu0, m0 := time.Now(), testenv.ProcessCPU(b), mallocs()
		r := e.backup(ctxT(b), req)
		filedT += time.Since(start)
		filedCPU += testenv.ProcessCPU(b) - cpu0
		allocs += mallocs() - m0
		if r.err != nil || r.done == nil || r.done.Unchanged != int64(files) || r.done.Seen < int64(files) {
			b.Fatalf("incremental: %v, done %v (want %d unchanged and seen)", r.err, r.done, files)
		}
		findT += findNewerTime(b, root, ref)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(files)/(filedT.Seconds()/n), "filed-files/s")
	b.ReportMetric(float64(files)/(findT.Seconds()/n), "find-files/s")
	b.ReportMetric(filedT.Seconds()/findT.Seconds(), "ratio")
	b.ReportMetric(float64(filedCPU.Microseconds())/n/float64(files), "cpu-µs/file")
	b.ReportMetric(float64(allocs)/n/float64(files), "allocs/file")
}

// mallocs is the number of heap allocations of the process so far
// (allocs/file: its growth during the backups, per file; the fake
// storage's and the director client's included).
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// Max is the larger of a and b.
func Max(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}
