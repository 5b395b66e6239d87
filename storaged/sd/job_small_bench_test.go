package sd

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/tapeward/tapeward/configs"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/storaged/tapeio"
	"github.com/tapeward/tapeward/tools/lib/archive"
	"github.com/tapeward/tapeward/tools/lib/testenv"
	"github.com/tapeward/tapeward/tools/vtl/emu"
)

// BenchmarkJobDataSmallFiles writes a pax stream of 20,000 members of
// 4 KiB (random bytes) to encrypted volumes of an in-process vtl (1 MiB
// blocks) two ways, alternately in one run: as a job session end to end
// (JobData over mTLS: 256 KiB data messages, each followed by the
// records of the members it completes, as filed sends them; records
// flushed to the director's Job stream, the index tape file at the end)
// and with a raw tapeio.Writer on the drive. Mounts are not timed. It
// reports both rates in members/s, their ratio, and the CPU time per member of
// each (the process's: the client's and the in-process vtl's too;
// storaged's own figures, RSS included, are BenchmarkStoragedJobSmallFiles'
// in package storaged):
//
//	go test -run '^$' -bench JobDataSmallFiles -benchtime 3x ./storaged/sd/
func BenchmarkJobDataSmallFiles(b *testing.B) {
	const members, size = 20000, 4 << 10
	dir := b.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "sdbench"); err == nil {
			dir = d
			b.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	elib, err := emu.NewLibrary(emu.Config{Dir: dir, Slots: 4, Drives: 1, Capacity: 8 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { elib.Close() })
	e := newJobEnvTuned(b, 1, 4, "64MiB", func(cfg *configs.Storaged, o *Options) {
		o.OpenDevice = elib.OpenDevice
		cfg.Drives[0].BlockSize = 1 << 20
	})
	e.label(b, 1, "V1", true)
	e.label(b, 2, "V2", true)

	// The stream, cut in 256 KiB messages, each followed by the records
	// of the members whose bytes it completes.
	var stream bytes.Buffer
	aw := archive.NewWriter(&stream)
	var recs []*pb.MemberRecord
	data := make([]byte, size)
	mt := time.Unix(1.7e9, 0)
	for i := range members {
		rand.Read(data)
		rec, err := aw.WriteMember(archive.Member{Path: fmt.Sprintf("home/user/src/project%03d/file%05d.txt", i/100, i), Type: archive.TypeReg,
			Size: size, Mode: 0o644, Mtime: mt, UID: 1000, GID: 1000, Uname: "user", Gname: "user"}, bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, memberRecord(rec))
	}
	if err := aw.Close(); err != nil {
		b.Fatal(err)
	}
	const piece = 256 << 10
	all := stream.Bytes()
	var msgs []*pb.JobDataRequest
	next := 0
	for off := 0; off < len(all); off += piece {
		endOff := min(off+piece, len(all))
		msgs = append(msgs, &pb.JobDataRequest{Msg: &pb.JobDataRequest_Data{Data: all[off:endOff]}})
		k := next
		for k < len(recs) && recs[k].DataOffset+(recs[k].StoredSize+511)/512*512 <= int64(endOff) {
			k++
		}
		if k > next {
			msgs = append(msgs, &pb.JobDataRequest{Msg: &pb.JobDataRequest_Records{Records: &pb.MemberRecords{Records: recs[next:k]}}})
			next = k
		}
	}
	if next != len(recs) {
		b.Fatalf("%d records not sent", len(recs)-next)
	}
	client := e.connect(b, "web1", tlsconf.RoleClient)

	var jobT, rawT time.Duration
	var jobCPU, rawCPU time.Duration
	b.SetBytes(int64(len(all)))
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		r, err := e.openJob(b, jobOpen("V1", 1, uint32(2+2*i)))
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		b.StartTimer()
		t0, c0 := time.Now(), testenv.ProcessCPU(b)
		s, err := e.attach(b, client, r.opened.Session, r.opened.Token)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range msgs {
			if err := s.st.Send(m); err != nil {
				b.Fatal(err)
			}
		}
		s.st.Send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_End{End: &pb.JobDataEnd{StreamBytes: int64(len(all)), Members: uint64(len(recs))}}})
		reply, err := s.st.CloseAndRecv()
		if err != nil || reply.StreamBytes != int64(len(all)) {
			b.Fatalf("JobData: %v %v", reply, err)
		}
		if err := r.wait(b); err != nil {
			b.Fatal(err)
		}
		jobT += time.Since(t0)
		jobCPU += testenv.ProcessCPU(b) - c0
		b.StopTimer()
		if got := len(r.records()); got != members {
			b.Fatalf("%d records flushed, want %d", got, members)
		}

		if _, err := e.d.Mount(context.Background(), MountRequest{Changer: "changer0", Slot: 2, Drive: "drive0", ForWrite: true}); err != nil {
			b.Fatal(err)
		}
		dr, _ := e.d.Drive("drive0")
		dr.mu.Lock()
		b.StartTimer()
		t0, c0 = time.Now(), testenv.ProcessCPU(b)
		w, err := tapeio.NewWriter(dr.dev, tapeio.WriterOptions{BlockSize: 1 << 20, AfterFirstBlock: tapeio.VerifyFirstBlock([]byte(dr.keyFP))})
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < len(all); off += piece {
			if _, err := w.Write(all[off:min(off+piece, len(all))]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		rawT += time.Since(t0)
		rawCPU += testenv.ProcessCPU(b) - c0
		b.StopTimer()
		dr.mu.Unlock()
		if _, _, err := e.d.Unmount(context.Background(), "drive0"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(members) * float64(b.N)
	b.ReportMetric(n/jobT.Seconds(), "jobdata-members/s")
	b.ReportMetric(n/rawT.Seconds(), "tapeio-members/s")
	b.ReportMetric(rawT.Seconds()/jobT.Seconds(), "jobdata/tapeio")
	b.ReportMetric(float64(jobCPU.Microseconds())/n, "jobdata-cpu-µs/member")
	b.ReportMetric(float64(rawCPU.Microseconds())/n, "tapeio-cpu-µs/member")
}
