//go:build linux

package fileset

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The benchmark tree: 100 directories of 1,000 files of 4 KiB (400
// MB), made once per test binary run, removed by TestMain.
const benchDirs, benchPerDir, benchSize = 100, 1000, 4096

var (
	benchOnce sync.Once
	benchRoot string
	benchErr  error
)

func benchTree(b *testing.B) string {
	benchOnce.Do(func() {
		benchRoot, benchErr = os.MkdirTemp("", "fileset-bench-")
		if benchErr != nil {
			return
		}
		for d := 0; d < benchDirs; d++ {
			dir := filepath.Join(benchRoot, fmt.Sprintf("d%03d", d))
			if benchErr = os.Mkdir(dir, 0o755); benchErr != nil {
				return
			}
			makeFlat(b, dir, benchPerDir, benchSize)
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchRoot
}

func cleanupBench() {
	if benchRoot != "" {
		os.RemoveAll(benchRoot)
	}
}

func runFind(b *testing.B, args ...string) int {
	b.Helper()
	out, err := exec.Command("find", args...).Output()
	if err != nil {
		b.Fatalf("find %v: %v", args, err)
	}
	return bytes.Count(out, []byte("\n"))
}

// BenchmarkWalkVsFind walks 100,000 files of 4 KiB (lstat, names,
// hard-link check, no xattrs) and, in the same iteration, runs
// `find DIR -printf FORMAT` with an empty FORMAT (which need not stat a file) and
// `find DIR -printf '%s %T@ %m\n'` (which must lstat each file, as
// the walk does; %u is left out: find looks the user up for every file
// and that alone takes 3× longer); it reports each time and the ratios.
func BenchmarkWalkVsFind(b *testing.B) {
	root := benchTree(b)
	fs := FileSet{Name: "bench", Include: []string{root}}
	var walkD, findD, findStatD time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		st, err := Walk(context.Background(), fs, WalkOptions{}, func(Entry) error { return nil })
		walkD += time.Since(t0)
		if err != nil || st.Files != benchDirs*benchPerDir {
			b.Fatalf("walk: %+v, %v", st, err)
		}
		t1 := time.Now()
		runFind(b, root, "-printf", "")
		findD += time.Since(t1)
		t2 := time.Now()
		if n := runFind(b, root, "-printf", "%s %T@ %m\n"); n != benchDirs*benchPerDir+benchDirs+1 {
			b.Fatalf("find printed %d lines", n)
		}
		findStatD += time.Since(t2)
	}
	n := float64(b.N)
	b.ReportMetric(walkD.Seconds()*1e3/n, "walk-ms")
	b.ReportMetric(findD.Seconds()*1e3/n, "find-ms")
	b.ReportMetric(findStatD.Seconds()*1e3/n, "find-stat-ms")
	b.ReportMetric(float64(benchDirs*benchPerDir)*n/walkD.Seconds(), "walk-files/s")
	b.ReportMetric(walkD.Seconds()/findD.Seconds(), "walk/find")
	b.ReportMetric(walkD.Seconds()/findStatD.Seconds(), "walk/find-stat")
}

// BenchmarkChangedVsFindNewer: 1% of the files are touched after a
// reference file; an Incremental walk (Since = just after the
// reference, SkipUnchanged) against `find DIR -newer REF`, in the same
// iteration. Both must find the same files.
func BenchmarkChangedVsFindNewer(b *testing.B) {
	root := benchTree(b)
	refDir := b.TempDir()
	ref := filepath.Join(refDir, "ref")
	os.WriteFile(ref, nil, 0o644)
	var st unix.Stat_t
	unix.Stat(ref, &st)
	since := time.Unix(st.Mtim.Unix()).Add(time.Nanosecond)
	// Wait (polling, no sleep) for the file system clock to pass it.
	probe := filepath.Join(refDir, "probe")
	for {
		os.WriteFile(probe, nil, 0o644)
		var p unix.Stat_t
		unix.Stat(probe, &p)
		if !time.Unix(p.Mtim.Unix()).Before(since) {
			break
		}
	}
	now := time.Now()
	changed := 0
	for d := 0; d < benchDirs; d++ {
		for f := 0; f < benchPerDir; f += 100 {
			if err := os.Chtimes(filepath.Join(root, fmt.Sprintf("d%03d/f%06d", d, f)), now, now); err != nil {
				b.Fatal(err)
			}
			changed++
		}
	}
	fs := FileSet{Name: "bench", Include: []string{root}}
	var walkD, findD time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		st, err := Walk(context.Background(), fs, WalkOptions{Since: since, SkipUnchanged: true}, func(Entry) error { return nil })
		walkD += time.Since(t0)
		if err != nil || st.Files != int64(changed) {
			b.Fatalf("walk: %d changed files, want %d (%v)", st.Files, changed, err)
		}
		t1 := time.Now()
		cmd := exec.Command("find", root, "-newer", ref)
		out, err := cmd.Output()
		findD += time.Since(t1)
		if err != nil {
			b.Fatal(err)
		}
		lines := 0
		for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
			lines++
		}
		if lines != changed {
			b.Fatalf("find -newer: %d lines, want %d", lines, changed)
		}
	}
	n := float64(b.N)
	b.ReportMetric(walkD.Seconds()*1e3/n, "walk-ms")
	b.ReportMetric(findD.Seconds()*1e3/n, "find-ms")
	b.ReportMetric(walkD.Seconds()/findD.Seconds(), "walk/find")
}

// BenchmarkWalkOneDir100k: 100,000 empty files in one directory (the
// sort of a 100k-name arena is part of it), against find with lstat.
func BenchmarkWalkOneDir100k(b *testing.B) {
	root := b.TempDir()
	makeFlat(b, root, 100_000, 0)
	fs := FileSet{Name: "bench", Include: []string{root}}
	var walkD, findD time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		st, err := Walk(context.Background(), fs, WalkOptions{}, nil)
		walkD += time.Since(t0)
		if err != nil || st.Files != 100_000 {
			b.Fatalf("walk: %+v, %v", st, err)
		}
		t1 := time.Now()
		runFind(b, root, "-printf", "%s %T@ %m\n")
		findD += time.Since(t1)
	}
	b.ReportMetric(walkD.Seconds()*1e3/float64(b.N), "walk-ms")
	b.ReportMetric(findD.Seconds()*1e3/float64(b.N), "find-stat-ms")
	b.ReportMetric(walkD.Seconds()/findD.Seconds(), "walk/find-stat")
}
