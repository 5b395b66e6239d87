package jobtape

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/tapeio"
	"github.com/tapeward/tapeward/tools/lib/archive"
)

// benchStream is a 128 MiB pax stream (8 × 12 MiB files and 3,000 files
// of up to 8 KiB, shuffled by directory) with its records.
func benchStream(b *testing.B) ([]byte, []archive.Record) {
	files := makeFiles(11, 3000)
	for i := range 8 {
		data := bytes.Repeat([]byte(fmt.Sprintf("%07d|", i)), (12<<20)/8)
		files = append(files, file{m: archive.Member{Path: fmt.Sprintf("big/%d", i), Type: archive.TypeReg, Size: int64(len(data)), Mode: 0o600, Mtime: testTime}, data: data})
	}
	var buf bytes.Buffer
	aw := archive.NewWriter(&buf)
	var recs []archive.Record
	for _, f := range files {
		rec, err := aw.WriteMember(f.m, bytes.NewReader(f.data))
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, rec)
	}
	if err := aw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes(), recs
}

// benchJob starts a JobWriter of job 1 on v with opts (no next volume).
func benchJob(b *testing.B, v *vol, opts Options) *JobWriter {
	opts.NextVolume = func(context.Context, error) (*scsi.Device, string, error) {
		return nil, "", fmt.Errorf("no next volume in the benchmark")
	}
	jw, err := New(v.d, JobInfo{JobID: 1, Volume: v.name, Created: testTime}, opts)
	if err != nil {
		b.Fatal(err)
	}
	return jw
}

// feed writes stream to jw in pieces of piece bytes (as messages arrive),
// adding each record once its member's bytes are written.
func feed(b *testing.B, jw *JobWriter, stream []byte, recs []archive.Record, piece int) {
	r := 0
	for off := 0; off < len(stream); {
		n := min(piece, len(stream)-off)
		if _, err := jw.Write(stream[off : off+n]); err != nil {
			b.Fatal(err)
		}
		off += n
		for r < len(recs) && end(recs[r]) <= int64(off) {
			if err := jw.AddRecord(recs[r]); err != nil {
				b.Fatal(err)
			}
			r++
		}
	}
	for ; r < len(recs); r++ {
		if err := jw.AddRecord(recs[r]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJobWriterVsTapeio writes the same pax stream in 256 KiB
// pieces (as messages arrive) to an encrypted in-process vtl volume with
// 1 MiB blocks, once through tapeio.Writer alone and once through a
// JobWriter (tracking, addressing, flushes, records, part header and the
// index tape file), alternately in the same run; it reports both rates
// and jobtape/tapeio. The sub-benchmarks vary the flush cadence.
func BenchmarkJobWriterVsTapeio(b *testing.B) {
	stream, recs := benchStream(b)
	const bs = 1 << 20
	lib := newLib(b, 2, 1, 512<<20)
	v := mount(b, lib, 1, 0, "BENCH1", true, bs)
	const piece = 256 << 10
	rewind := func() {
		if err := v.d.Locate(scsi.LocateBlock, 2); err != nil {
			b.Fatal(err)
		}
	}
	runTapeio := func() time.Duration {
		rewind()
		start := time.Now()
		w, err := tapeio.NewWriter(v.d, tapeio.WriterOptions{BlockSize: bs, AfterFirstBlock: v.hook()})
		if err != nil {
			b.Fatal(err)
		}
		for p := stream; len(p) > 0; p = p[min(piece, len(p)):] {
			if _, err := w.Write(p[:min(piece, len(p))]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	runJob := func(flushEvery int64) (time.Duration, int) {
		rewind()
		start := time.Now()
		batches := 0
		jw := benchJob(b, v, Options{BlockSize: bs, FlushEvery: flushEvery, AfterFirstBlock: v.hook(), OnFlushed: func(Flushed) { batches++ }})
		feed(b, jw, stream, recs, piece)
		sum, err := jw.Close()
		if err != nil {
			b.Fatal(err)
		}
		if sum.Members != len(recs) {
			b.Fatalf("%d members, want %d", sum.Members, len(recs))
		}
		return time.Since(start), batches
	}
	for _, fe := range []int64{DefaultFlushEvery, 64 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("flush=%dMiB", fe>>20), func(b *testing.B) {
			var tt, tj time.Duration
			batches := 0
			for i := range b.N {
				if i%2 == 0 {
					tt += runTapeio()
					d, n := runJob(fe)
					tj += d
					batches = n
				} else {
					d, n := runJob(fe)
					tj += d
					batches = n
					tt += runTapeio()
				}
			}
			mb := float64(len(stream)) * float64(b.N) / 1e6
			b.ReportMetric(mb/tt.Seconds(), "tapeio-MB/s")
			b.ReportMetric(mb/tj.Seconds(), "jobtape-MB/s")
			b.ReportMetric(tt.Seconds()/tj.Seconds(), "jobtape/tapeio")
			b.ReportMetric(float64(batches), "batches")
		})
	}
}

// BenchmarkJobWriterSmallFiles writes a pax stream of 100,000 members of
// 4 KiB (in 256 KiB pieces, their records added as their data arrives)
// to an encrypted in-process vtl volume with 1 MiB blocks, and reports
// the time of the stream and, apart, of Close: the index tape file
// written after the data, which the job waits for at its end.
//
//	go test -run '^$' -bench JobWriterSmallFiles -benchtime 3x ./storaged/jobtape/
func BenchmarkJobWriterSmallFiles(b *testing.B) {
	const n, size = 100000, 4096
	data := bytes.Repeat([]byte{0xa5}, size)
	var buf bytes.Buffer
	aw := archive.NewWriter(&buf)
	recs := make([]archive.Record, 0, n)
	for i := range n {
		rec, err := aw.WriteMember(archive.Member{Path: fmt.Sprintf("home/user%02d/project/src/file%06d.go", i%100, i), Type: archive.TypeReg,
			Size: size, Mode: 0o644, UID: 1000, GID: 100, Uname: "alice", Gname: "users", Mtime: testTime}, bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		rec.SHA256[0] = byte(i) // a digest, as filed sends
		recs = append(recs, rec)
	}
	if err := aw.Close(); err != nil {
		b.Fatal(err)
	}
	stream := buf.Bytes()
	const bs, piece = 1 << 20, 256 << 10
	lib := newLib(b, 2, 1, 2<<30)
	v := mount(b, lib, 1, 0, "BENCH1", true, bs)
	var streamT, closeT time.Duration
	for b.Loop() {
		if err := v.d.Locate(scsi.LocateBlock, 2); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		jw := benchJob(b, v, Options{BlockSize: bs, AfterFirstBlock: v.hook()})
		feed(b, jw, stream, recs, piece)
		mid := time.Now()
		sum, err := jw.Close()
		if err != nil || sum.Members != n {
			b.Fatalf("Close: %d members, %v", sum.Members, err)
		}
		streamT += mid.Sub(start)
		closeT += time.Since(mid)
	}
	b.ReportMetric(float64(streamT.Milliseconds())/float64(b.N), "stream-ms")
	b.ReportMetric(float64(closeT.Milliseconds())/float64(b.N), "close-ms")
}
