package fd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/tools/lib/archive"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// streamFile backs root up through filed into a file (the pax stream,
// end-of-archive included) and returns the feed of every member read
// from it.
func streamFile(b *testing.B, e *env, root string) (*restoreFeed, string) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "stream.pax")
	f, err := os.Create(path)
	must(b, err)
	b.Cleanup(func() { f.Close() })
	e.sd.mu.Lock()
	e.sd.sink = f
	e.sd.mu.Unlock()
	r := e.backup(ctxT(b), e.request(root))
	if r.err != nil || len(r.warnings) > 0 {
		b.Fatalf("backup: %v %v", r.err, r.warnings)
	}
	_, _, recs, _, _ := e.sd.snapshot()
	feed := &restoreFeed{src: f}
	for i, rec := range recs {
		end := rec.DataOffset + (rec.StoredSize+archive.BlockSize-1)/archive.BlockSize*archive.BlockSize
		feed.members = append(feed.members, &pb.RestoreMember{Seq: uint64(i + 1), Record: rec})
		feed.at = append(feed.at, [2]int64{rec.HeaderOffset, end - rec.HeaderOffset})
	}
	return feed, path
}

// untarTime runs `tar xf STREAM -C DIR` into a fresh directory.
func untarTime(b *testing.B, stream, dir string) time.Duration {
	b.Helper()
	must(b, os.MkdirAll(dir, 0o755))
	start := time.Now()
	if out, err := exec.Command("tar", "xf", stream, "-C", dir).CombinedOutput(); err != nil {
		b.Fatalf("tar xf: %v\n%s", err, out)
	}
	return time.Since(start)
}

// BenchmarkRestoreVsTar: filed restores a tree's pax stream (as filed
// backed it up) over mutual TLS from a fake storage into a fresh
// directory, and `tar xf` extracts the same bytes into another fresh
// directory, in the same iterations; ratio = tar's time / filed's time
// (≥ 0.5 is the goal). Sizes as BenchmarkBackupVsTar's
// (TAPEWARD_BENCH_SMALL=1 for 1/16 of the data, 1/10 of the files).
func BenchmarkRestoreVsTar(b *testing.B) {
	for _, kind := range []string{"large", "small"} {
		b.Run(kind, func(b *testing.B) {
			root, files, size := benchTree(b, kind)
			e := newEnv(b, nil)
			feed, stream := streamFile(b, e, root)
			e.sd.mu.Lock()
			e.sd.sink, e.sd.feed = nil, feed
			e.sd.mu.Unlock()
			out := b.TempDir()
			if kind == "small" {
				testenv.InodeReuseOf(out).Warn(b)
			}
			var filedT, tarT time.Duration
			b.ResetTimer()
			for i := range b.N {
				where := filepath.Join(out, "filed-"+strconv.Itoa(i))
				start := time.Now()
				r := e.restore(ctxT(b), e.restoreRequest(&pb.Relocation{Where: where}, ""))
				filedT += time.Since(start)
				if r.err != nil || r.done == nil || r.done.Bytes != size || len(r.errors) > 0 {
					b.Fatalf("restore: %v, done %v, errors %v (want %d bytes)", r.err, r.done, r.errors, size)
				}
				// Both trees stay until the benchmark ends (out is its
				// temporary directory): see testenv.InodeReuse.
				tarT += untarTime(b, stream, filepath.Join(out, "tar-"+strconv.Itoa(i)))
			}
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(float64(size)/1e6/(filedT.Seconds()/n), "filed-MB/s")
			b.ReportMetric(float64(size)/1e6/(tarT.Seconds()/n), "tar-MB/s")
			b.ReportMetric(float64(files)/(filedT.Seconds()/n), "filed-files/s")
			b.ReportMetric(float64(files)/(tarT.Seconds()/n), "tar-files/s")
			b.ReportMetric(tarT.Seconds()/filedT.Seconds(), "ratio")
		})
	}
}
