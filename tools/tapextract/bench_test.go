package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/tapeio"
	"github.com/tapeward/tapeward/tools/lib/testenv"
	"github.com/tapeward/tapeward/tools/lib/testtree"
)

// The ls and extract benchmarks: one volume holding one job of
// $TAPEWARD_BENCH_LARGE_BYTES (default 2 GiB) of random data in 16
// files, written once as storaged writes it (storaged/jobtape, its
// default 1 MiB blocks, on a real vtl process) before the timer starts.
//
//	go test ./tools/tapextract -run '^$' -bench 'Ls|Extract' -benchtime 1x -timeout 30m
//	TAPEWARD_BENCH_LARGE_BYTES=$((512<<20)) go test ./tools/tapextract -run '^$' -bench 'Ls|Extract' -benchtime 1x

const benchFiles = 16

func benchBytes(b *testing.B) int64 {
	size := int64(2 << 30)
	if v := os.Getenv("TAPEWARD_BENCH_LARGE_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < benchFiles {
			b.Fatalf("TAPEWARD_BENCH_LARGE_BYTES=%q is not a number of bytes (at least %d)", v, benchFiles)
		}
		size = n
	}
	return size / benchFiles * benchFiles
}

// benchVolume makes the world, the 16-file tree (returned) and job 42 of
// it on the volume in slot 1, whose key is in the crypto cache. It
// returns the tree's root and the job's stream bytes.
func benchVolume(b *testing.B) (*world, string, int64) {
	b.Helper()
	size := benchBytes(b)
	w := newWorld(b, fmt.Sprintf("%dMiB", size*5/4>>20+64))
	src := filepath.Join(w.dir, "src")
	if err := testtree.Make(src, testtree.Options{Seed: 13, LargeFiles: benchFiles, LargeSize: size / benchFiles}); err != nil {
		b.Fatal(err)
	}
	ks := map[int]tapeKey{1: w.v1Key()}
	tp := w.openTapes(func(slot int) tapeKey { return ks[slot] })
	tp.blockSize = tapeio.DefaultBlockSize // storaged's default block size
	sum := tp.backup(42, src, 1)
	tp.close()
	w.putCache(w.cache, ks)
	return w, src, sum.StreamBytes
}

// runMeasured runs a command and returns its wall time and peak RSS
// (the kernel's ru_maxrss, the process's VmHWM, in bytes); it logs the
// command's user and system CPU time.
func runMeasured(b *testing.B, name string, argv ...string) (time.Duration, int64) {
	b.Helper()
	cmd := exec.Command(name, argv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Both sides start with no dirty pages: the writeback of earlier
	// steps (the source tree, the tarball, the cartridge, the other
	// side's output) is not charged to whichever runs next.
	syscall.Sync()
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(argv, " "), err, out.String())
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss << 10
		b.Logf("%s: wall %v user %v sys %v", filepath.Base(name), elapsed, time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano()))
	}
	return elapsed, rss
}

// BenchmarkLs: `tapextract ls -l --job 42` of the volume: the bytes the
// vtl returned to READ as a percentage of the job's data (goal ≤ 1 %),
// and the wall time of the command.
func BenchmarkLs(b *testing.B) {
	w, _, data := benchVolume(b)
	cmd := args([]string{"ls", "-l", "--job", "42", "--volume", barcode(1)}, w.lib(), w.keysV1())
	var read int64
	var elapsed time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		w.vtl.Reads(b, true)
		b.StartTimer()
		start := time.Now()
		out := w.ok(cmd...)
		elapsed += time.Since(start)
		b.StopTimer()
		_, n := w.vtl.Reads(b, false).Cartridge(barcode(1))
		read += n
		if got := strings.Count(out, "big/large-"); got != benchFiles {
			b.Fatalf("ls -l lists %d of the %d files:\n%s", got, benchFiles, out)
		}
		b.StartTimer()
	}
	b.StopTimer()
	pct := float64(read) * 100 / float64(data) / float64(b.N)
	b.ReportMetric(pct, "%read")
	b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/ls")
	b.Logf("ls -l of a %d-byte job read %d bytes (%.4f %%), %v a run", data, read/int64(b.N), pct, elapsed/time.Duration(b.N))
	if pct > 1 {
		b.Errorf("ls read %.4f %% of the data (goal ≤ 1 %%)", pct)
	}
}

// BenchmarkExtract: `tapextract extract --job 42 --to DIR` against `tar
// xf` of a tar of the same 16 files, each into a fresh directory on the
// same filesystem in the same run: MB/s of both, their ratio (goal
// ≥ 0.5×) and tapextract's peak RSS.
func BenchmarkExtract(b *testing.B) {
	testenv.HostMemoryReclaim().Warn(b)
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		b.Fatal("tar is not installed: apt-get install tar")
	}
	w, src, _ := benchVolume(b)
	data := benchBytes(b)
	tarball := filepath.Join(w.dir, "src.tar")
	if out, err := exec.Command(tarBin, "cf", tarball, "-C", src, "big").CombinedOutput(); err != nil {
		b.Fatalf("tar cf: %v\n%s", err, out)
	}
	cmd := args([]string{"extract", "--job", "42"}, w.lib(), w.keysV1())
	var tx, tt time.Duration
	var peak int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		to := filepath.Join(w.dir, fmt.Sprintf("x%d", i))
		el, rss := runMeasured(b, bins["tapextract"], append(cmd, "--to", to)...)
		tx += el
		peak = max(peak, rss)
		b.StopTimer()
		sameTree(b, filepath.Join(src, "big"), filepath.Join(to, "big"))
		if err := os.RemoveAll(to); err != nil {
			b.Fatal(err)
		}
		tdir := filepath.Join(w.dir, fmt.Sprintf("t%d", i))
		if err := os.Mkdir(tdir, 0o755); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		el, _ = runMeasured(b, tarBin, "xf", tarball, "-C", tdir)
		tt += el
		b.StopTimer()
		if err := os.RemoveAll(tdir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	mb := float64(data) * float64(b.N) / 1e6
	xr, tr := mb/tx.Seconds(), mb/tt.Seconds()
	b.ReportMetric(xr, "tapextract-MB/s")
	b.ReportMetric(tr, "tar-MB/s")
	b.ReportMetric(xr/tr, "ratio")
	b.ReportMetric(float64(peak)/(1<<20), "tapextract-peak-RSS-MiB")
	b.Logf("extract of %d bytes: tapextract %.1f MB/s, tar xf %.1f MB/s, ratio %.2f (goal ≥ 0.5), tapextract peak RSS %d MiB", data, xr, tr, xr/tr, peak>>20)
}
