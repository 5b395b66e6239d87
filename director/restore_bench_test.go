package main

// Benchmarks of restore jobs end to end through real processes (issue 12,
// "Measure"): vtl → storaged (decrypting drive) → filed over mutual TLS,
// run by tapectl as an operator would, the backup made once outside the
// timer; each against `tar xf` of a tar of the same tree into a fresh
// directory in the same run. Worlds and sizes as the backup benchmarks'
// (backup_bench_test.go):
//
//	TAPEWARD_BENCH_LARGE_BYTES   2GiB    random data in 16 files
//	TAPEWARD_BENCH_SMALL_FILES   100000  files of 4 KiB
//
// Metrics: MB/s and tar-MB/s, files/s and tar-files/s, ratio-vs-tar (our
// rate over tar's: goal ≥ 0.5); for one file from the middle of the
// large tape file, blocks-read (vtl counters, the mount's label blocks
// excluded: goal ≤ 2) and s; filed-peak-MiB and storaged-peak-MiB (VmHWM
// over the restores only: reset after the backup where the kernel allows).
//
// Full size:
//
//	go test ./director -run '^$' -bench 'BenchmarkRestore' -benchtime 1x -timeout 60m
//
// Quick:
//
//	TAPEWARD_BENCH_LARGE_BYTES=64MiB TAPEWARD_BENCH_SMALL_FILES=2000 go test ./director -run '^$' -bench 'BenchmarkRestore' -benchtime 1x

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/testenv"
	"github.com/tapeward/tapeward/tools/lib/testtree"
)

// benchRestore runs `restore … yes` and waits for the job (up to 30
// minutes), failing unless it ends T; it returns the job row and how
// long the command took (the selection and the plan, until the job is
// queued).
func (w *backupWorld) benchRestore(b *testing.B, line string) (jobRow, time.Duration) {
	b.Helper()
	t0 := time.Now()
	out := w.ok(line + " yes")
	planned := time.Since(t0)
	m := restoreIDRe.FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("%q printed no JobId:\n%s", line+" yes", out)
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	j, report := w.waitJob(id, 30*time.Minute)
	if j.Status != "T" {
		b.Fatalf("restore %q: job %d status %s: %q\n%s\njob log:\n%s", line, id, j.Status, j.ErrorReason, report,
			w.tapectlOut(fmt.Sprintf("list joblog jobid=%d", id)))
	}
	return j, planned
}

// benchBackup runs a Full of web1-home and waits for it (up to 30
// minutes: w.backup allows 90 s), failing unless it ends T.
func (w *backupWorld) benchBackup(b *testing.B) jobRow {
	b.Helper()
	id := w.runJob("web1-home", "Full")
	j, report := w.waitJob(id, 30*time.Minute)
	if j.Status != "T" {
		b.Fatalf("Full %d: %s: %q\n%s", id, j.Status, j.ErrorReason, report)
	}
	return j
}

// resetPeakRSS starts filed's and storaged's VmHWM again from their
// current RSS (clear_refs 5), so that the peaks reported are the
// restores' and not the backup's. Kernels without it leave the backup's
// peak in (said in the log).
func resetPeakRSS(b *testing.B, w *backupWorld) {
	for _, pid := range []int{w.filed["web1"].proc.Cmd.Process.Pid, w.sd.Cmd.Process.Pid} {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
			b.Logf("peak RSS of pid %d not reset (%v): the figure includes the backup", pid, err)
		}
	}
}

// cpuSeconds is a process's user+system CPU time so far (/proc/PID/stat,
// clock ticks of 1/100 s).
func cpuSeconds(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("reading the CPU time of pid %d: %v", pid, err)
	}
	// The fields after the command name (which may hold spaces): state is
	// field 3, utime 14 and stime 15.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// cpuMeter reports the CPU seconds vtl, storaged and filed spent between
// start and report, per iteration: where a restore's time goes.
type cpuMeter struct {
	pids  [3]int
	start [3]float64
	spent [3]float64
}

func newCPUMeter(w *backupWorld) *cpuMeter {
	return &cpuMeter{pids: [3]int{w.vtl.Cmd.Process.Pid, w.sd.Cmd.Process.Pid, w.filed["web1"].proc.Cmd.Process.Pid}}
}

func (c *cpuMeter) begin(b *testing.B) {
	for i, pid := range c.pids {
		c.start[i] = cpuSeconds(b, pid)
	}
}

func (c *cpuMeter) end(b *testing.B) {
	for i, pid := range c.pids {
		c.spent[i] += cpuSeconds(b, pid) - c.start[i]
	}
}

func (c *cpuMeter) report(b *testing.B) {
	for i, name := range []string{"vtl", "storaged", "filed"} {
		b.ReportMetric(c.spent[i]/float64(b.N), name+"-cpu-s")
	}
}

// tarOf writes `tar cf FILE DIR` once (outside the timers).
func tarOf(b *testing.B, dir, out string) {
	b.Helper()
	if o, err := exec.Command("tar", "cf", out, dir).CombinedOutput(); err != nil {
		b.Fatalf("tar cf %s %s: %v\n%s", out, dir, err, o)
	}
}

// timeUntar runs `tar xf FILE -C DIR` into a fresh directory and returns
// how long it took.
func timeUntar(b *testing.B, tarFile, dir string) time.Duration {
	b.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if o, err := exec.Command("tar", "xf", tarFile, "-C", dir).CombinedOutput(); err != nil {
		b.Fatalf("tar xf %s -C %s: %v\n%s", tarFile, dir, err, o)
	}
	return time.Since(t0)
}

// restoreVsTar is the loop of the two full-restore benchmarks: each
// iteration restores everything into a fresh directory, checks it
// against the snapshot, and extracts the tar into another (both removed
// with the benchmark's directory); it returns the two times summed. It
// reports plan-s, the part of a restore's time that tapectl's command
// took (the view read, the selection, the plan).
func restoreVsTar(b *testing.B, w *backupWorld, snap testtree.Snapshot, check func(j jobRow)) (ours, tar time.Duration) {
	root := w.root["web1"]
	tarFile := filepath.Join(w.dir, "bench.tar")
	tarOf(b, root, tarFile)
	resetPeakRSS(b, w)
	cpu := newCPUMeter(w)
	var planned time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		where := filepath.Join(w.dir, fmt.Sprintf("r%d", i))
		cpu.begin(b)
		t0 := time.Now()
		j, p := w.benchRestore(b, "restore client=web1 current all where="+where)
		planned += p
		ours += time.Since(t0)
		b.StopTimer()
		cpu.end(b)
		check(j)
		if i == 0 {
			// The tree restored is the tree backed up (once: comparing is slow).
			if diffs := treeDiff(b, where+root, snap, root); len(diffs) > 0 {
				b.Fatalf("restored tree differs (%d): %s", len(diffs), strings.Join(diffs[:min(len(diffs), 10)], "\n"))
			}
		}
		// Both trees stay until the benchmark ends: removing ours
		// here made tar create its files among inodes just freed
		// (testenv.InodeReuse), which measured it 3–4× slow.
		tdir := filepath.Join(w.dir, fmt.Sprintf("t%d", i))
		tar += timeUntar(b, tarFile, tdir)
		b.StartTimer()
	}
	b.StopTimer()
	cpu.report(b)
	b.ReportMetric(planned.Seconds()/float64(b.N), "plan-s")
	return ours, tar
}

// restoreBlockSize is the restore benchmarks' block size: storaged's
// default (configs/storaged.toml), as the volumes users restore from are
// written, rather than the 256 KiB of the tests' worlds. (Each block is a
// READ through vtl's socket and a hand-over in each daemon: a 2 GiB
// restore cost about 1.3 CPU-s more in 256 KiB blocks, 2026-12-05.)
const restoreBlockSize = "1MiB"

// BenchmarkRestoreLargeFiles: a full restore of 16 files of random data
// (2 GiB in all by default) against `tar xf` of the same tree. Goal:
// ≥ 0.5× tar's MB/s.
func BenchmarkRestoreLargeFiles(b *testing.B) {
	testenv.HostMemoryReclaim().Warn(b)
	total := envSize(b, "TAPEWARD_BENCH_LARGE_BYTES", 2<<30)
	per := total / 16
	w := newBackupWorld(b, backupOpts{worldOpts: worldOpts{slots: 8, drives: 1, capacity: fmt.Sprintf("%dMiB", (total>>20)+256), blockSize: restoreBlockSize}, volumes: 8})
	snap := w.makeTree("web1", testtree.Options{Seed: 16, LargeFiles: 16, LargeSize: per})
	if j := w.benchBackup(b); j.Bytes < 16*per {
		b.Fatalf("backup %d: %d bytes, want %d", j.ID, j.Bytes, 16*per)
	}
	ours, tar := restoreVsTar(b, w, snap, func(j jobRow) {
		if j.Bytes < 16*per {
			b.Fatalf("restore %d: %d bytes, want %d", j.ID, j.Bytes, 16*per)
		}
	})
	mb := float64(16*per) * float64(b.N) / 1e6
	b.ReportMetric(mb/ours.Seconds(), "MB/s")
	b.ReportMetric(mb/tar.Seconds(), "tar-MB/s")
	b.ReportMetric(tar.Seconds()/ours.Seconds(), "ratio-vs-tar")
	reportRSS(b, w)
}

// BenchmarkRestoreSmallFiles: a full restore of 100,000 files of 4 KiB
// (by default) against `tar xf`'s files/s. Goal: ≥ 0.5×.
func BenchmarkRestoreSmallFiles(b *testing.B) {
	testenv.HostMemoryReclaim().Warn(b)
	n := int(envSize(b, "TAPEWARD_BENCH_SMALL_FILES", 100000))
	w := newBackupWorld(b, backupOpts{worldOpts: worldOpts{slots: 8, drives: 1, capacity: fmt.Sprintf("%dMiB", n*5/1024+256), blockSize: restoreBlockSize}, volumes: 8})
	testenv.InodeReuseOf(w.dir).Warn(b)
	snap := w.makeTree("web1", testtree.Options{Seed: 100, SmallFiles: n, SmallSize: 4096})
	if j := w.benchBackup(b); j.Files < int64(n) {
		b.Fatalf("backup %d: %d files, want %d", j.ID, j.Files, n)
	}
	ours, tar := restoreVsTar(b, w, snap, func(j jobRow) {
		if j.Files < int64(n) {
			b.Fatalf("restore %d: %d files, want %d", j.ID, j.Files, n)
		}
	})
	files := float64(n+(n+99)/100+2) * float64(b.N) // files, small/dNN, small/, the root
	b.ReportMetric(files/ours.Seconds(), "files/s")
	b.ReportMetric(files/tar.Seconds(), "tar-files/s")
	b.ReportMetric(tar.Seconds()/ours.Seconds(), "ratio-vs-tar")
	reportRSS(b, w)
}

// BenchmarkRestoreOneFile: one 4,000-byte file whose member sits in the
// middle of the large set's tape file (between big/large-07.bin and
// big/large-08.bin); blocks-read are the vtl's data blocks for the
// restore beyond what mounting the volume reads (goal ≤ 2), s its wall
// time, tapectl to job end.
func BenchmarkRestoreOneFile(b *testing.B) {
	total := envSize(b, "TAPEWARD_BENCH_LARGE_BYTES", 2<<30)
	per := total / 16
	w := newBackupWorld(b, backupOpts{worldOpts: worldOpts{slots: 8, drives: 1, capacity: fmt.Sprintf("%dMiB", (total>>20)+256), blockSize: restoreBlockSize}, volumes: 8})
	root := w.root["web1"]
	if err := testtree.Make(root, testtree.Options{Seed: 16, LargeFiles: 16, LargeSize: per}); err != nil {
		b.Fatal(err)
	}
	f := filepath.Join(root, "big", "large-08-note.txt") // walked after large-07.bin, before large-08.bin
	want := []byte(strings.Repeat("one small file in the middle of the tape file\n", 87))[:4000]
	if err := os.WriteFile(f, want, 0o644); err != nil {
		b.Fatal(err)
	}
	full := w.benchBackup(b)
	vol := w.jobVolumes(full.ID)[0]
	var block, lastBlock int64
	if err := w.q(`SELECT f.block, (SELECT max(block) FROM files WHERE job_id = $1) FROM files f WHERE f.job_id = $1 AND f.path = $2`,
		full.ID, []byte(f)).Scan(&block, &lastBlock); err != nil || block < lastBlock/3 {
		b.Fatalf("%s at block %d of %d (%v): not in the middle of the tape file", f, block, lastBlock, err)
	}
	var slot int
	if err := w.q(`SELECT slot FROM media WHERE volume_name = $1`, vol).Scan(&slot); err != nil {
		b.Fatal(err)
	}
	w.vtl.Reads(b, true)
	w.ok(fmt.Sprintf("mount storage=sd1 slot=%d drive=0", slot))
	w.ok("unmount storage=sd1 drive=0")
	mountBlocks, _ := w.vtl.Reads(b, true).Cartridge(vol)
	resetPeakRSS(b, w)

	var wall time.Duration
	var data int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		where := filepath.Join(w.dir, fmt.Sprintf("r%d", i))
		t0 := time.Now()
		w.benchRestore(b, "restore client=web1 file="+f+" where="+where)
		wall += time.Since(t0)
		b.StopTimer()
		blocks, _ := w.vtl.Reads(b, true).Cartridge(vol)
		data += blocks - mountBlocks
		if got, err := os.ReadFile(where + f); err != nil || string(got) != string(want) {
			b.Fatalf("restored %s: %d bytes, %v; want the original 4000", where+f, len(got), err)
		}
		if err := os.RemoveAll(where); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.Logf("the file at block %d of %d in its tape file; the mount reads %d blocks", block, lastBlock, mountBlocks)
	b.ReportMetric(float64(data)/float64(b.N), "blocks-read")
	b.ReportMetric(wall.Seconds()/float64(b.N), "s")
	reportRSS(b, w)
}
