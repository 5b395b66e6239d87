package sd

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"os"
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

// BenchmarkJobDataVsTapeio writes the same 64 MiB pax stream (8 files of
// 8 MiB, random bytes) to encrypted volumes of an in-process vtl (1 MiB
// blocks) two ways, alternately in one run: as a job session end to end
// (the client's JobData over mTLS → the receiving goroutine → the queue
// of received buffers → the tape goroutine's JobWriter, with records,
// flushes and the index tape file), and with a raw tapeio.Writer on the
// drive; and a third way, the bytes over a plain TLS 1.3 connection on
// loopback (the same certificates) copied into a tapeio.Writer, one piece
// at a time: the cost of a data stream of its own per session (the
// architecture's alternative to gRPC framing), without its pipelining.
// Mounts are not timed. It reports the rates, jobdata/tapeio, and the CPU
// time the process (client, session and vtl alike) used per MB of each:
//
//	go test -run '^$' -bench JobDataVsTapeio -benchtime 5x ./storaged/sd/
func BenchmarkJobDataVsTapeio(b *testing.B) {
	dir := b.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "sdbench"); err == nil {
			dir = d
			b.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	elib, err := emu.NewLibrary(emu.Config{Dir: dir, Slots: 4, Drives: 1, Capacity: 4 << 30})
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
	e.label(b, 3, "V3", true)

	// The stream and its records, made once.
	var stream bytes.Buffer
	aw := archive.NewWriter(&stream)
	var recs []*pb.MemberRecord
	for i := range 8 {
		data := make([]byte, 8<<20)
		rand.Read(data)
		rec, err := aw.WriteMember(archive.Member{Path: fmt.Sprintf("big%d.bin", i), Type: archive.TypeReg, Size: int64(len(data)), Mode: 0o644, Mtime: time.Unix(1e9, 0)}, bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, memberRecord(rec))
	}
	if err := aw.Close(); err != nil {
		b.Fatal(err)
	}
	data := stream.Bytes()
	const piece = 256 << 10
	client := e.connect(b, "web1", tlsconf.RoleClient)

	var jobT, rawT, tlsT, jobCPU, rawCPU, tlsCPU time.Duration
	tlsPair := newTLSPair(b, e)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := range b.N {
		// A job session on V1 (data and index: two tape files a job).
		b.StopTimer()
		r, err := e.openJob(b, jobOpen("V1", 1, uint32(2+2*i)))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0, c0 := time.Now(), testenv.ProcessCPU(b)
		s, err := e.attach(b, client, r.opened.Session, r.opened.Token)
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < len(data); off += piece {
			if err := s.st.Send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_Data{Data: data[off:min(off+piece, len(data))]}}); err != nil {
				b.Fatal(err)
			}
		}
		s.st.Send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_Records{Records: &pb.MemberRecords{Records: recs}}})
		s.st.Send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_End{End: &pb.JobDataEnd{StreamBytes: int64(len(data)), Members: uint64(len(recs))}}})
		reply, err := s.st.CloseAndRecv()
		if err != nil || reply.StreamBytes != int64(len(data)) {
			b.Fatalf("JobData: %v %v", reply, err)
		}
		jobT += time.Since(t0)
		jobCPU += testenv.ProcessCPU(b) - c0
		b.StopTimer()
		if err := r.wait(b); err != nil {
			b.Fatal(err)
		}

		// The same bytes with a raw tapeio.Writer on V2.
		d, c := onDrive(b, e, 2, func(dr *Drive) {
			w, err := tapeio.NewWriter(dr.dev, tapeio.WriterOptions{BlockSize: 1 << 20, AfterFirstBlock: tapeio.VerifyFirstBlock([]byte(dr.keyFP))})
			if err != nil {
				b.Fatal(err)
			}
			for off := 0; off < len(data); off += piece {
				if _, err := w.Write(data[off:min(off+piece, len(data))]); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
		rawT, rawCPU = rawT+d, rawCPU+c

		// The same bytes over a plain TLS 1.3 connection (the client's
		// and storaged's certificates, loopback) into a tapeio.Writer on
		// V3: what a data stream of its own per session would cost.
		d, c = onDrive(b, e, 3, func(dr *Drive) { tlsWrite(b, tlsPair, dr, data, piece) })
		tlsT, tlsCPU = tlsT+d, tlsCPU+c
		b.StartTimer()
	}
	b.StopTimer()
	mb := float64(len(data)) * float64(b.N) / 1e6
	b.ReportMetric(mb/jobT.Seconds(), "jobdata-MB/s")
	b.ReportMetric(mb/rawT.Seconds(), "tapeio-MB/s")
	b.ReportMetric(mb/tlsT.Seconds(), "tls-MB/s")
	b.ReportMetric(rawT.Seconds()/jobT.Seconds(), "jobdata/tapeio")
	b.ReportMetric(jobCPU.Seconds()*1e3/mb, "jobdata-cpu-ms/MB")
	b.ReportMetric(rawCPU.Seconds()*1e3/mb, "tapeio-cpu-ms/MB")
	b.ReportMetric(tlsCPU.Seconds()*1e3/mb, "tls-cpu-ms/MB")
}

// onDrive mounts slot's volume on drive0 for writing, runs f on the drive
// (timed: wall and process CPU time) and unmounts it; the timer runs
// during f only.
func onDrive(b *testing.B, e *jobEnv, slot uint32, f func(*Drive)) (wall, cpu time.Duration) {
	b.StopTimer()
	defer b.StartTimer()
	if _, err := e.d.Mount(context.Background(), MountRequest{Changer: "changer0", Slot: slot, Drive: "drive0", ForWrite: true}); err != nil {
		b.Fatal(err)
	}
	dr, _ := e.d.Drive("drive0")
	dr.mu.Lock()
	b.StartTimer()
	t0, c0 := time.Now(), testenv.ProcessCPU(b)
	f(dr)
	wall, cpu = time.Since(t0), testenv.ProcessCPU(b)-c0
	b.StopTimer()
	dr.mu.Unlock()
	if _, _, err := e.d.Unmount(context.Background(), "drive0"); err != nil {
		b.Fatal(err)
	}
	return wall, cpu
}

// tlsConfigs is a TLS 1.3 client and server configuration made as the
// daemons make theirs (a client's certificate, storaged's).
type tlsConfigs struct{ client, server *tls.Config }

func newTLSPair(b *testing.B, e *jobEnv) tlsConfigs {
	sc, err := tlsconf.Server(e.pki.Issue(b, "sd1", tlsconf.RoleStorage), AcceptPeer(tlsconf.RoleClient))
	if err != nil {
		b.Fatal(err)
	}
	cc, err := tlsconf.Client(e.pki.Issue(b, "web1", tlsconf.RoleClient), tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}, "")
	if err != nil {
		b.Fatal(err)
	}
	return tlsConfigs{client: cc, server: sc}
}

// tlsWrite sends data in pieces over a new TLS connection on loopback and
// writes what arrives to a tapeio.Writer on the drive (the receiver reads
// into a 256 KiB buffer and writes it, as a session writes a message).
func tlsWrite(b *testing.B, c tlsConfigs, dr *Drive, data []byte, piece int) {
	lis, err := tls.Listen("tcp", "127.0.0.1:0", c.server)
	if err != nil {
		b.Fatal(err)
	}
	defer lis.Close()
	sent := make(chan error, 1)
	go func() {
		conn, err := tls.Dial("tcp", lis.Addr().String(), c.client)
		if err != nil {
			sent <- err
			return
		}
		defer conn.Close()
		for off := 0; off < len(data) && err == nil; off += piece {
			_, err = conn.Write(data[off:min(off+piece, len(data))])
		}
		sent <- err
	}()
	conn, err := lis.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	w, err := tapeio.NewWriter(dr.dev, tapeio.WriterOptions{BlockSize: 1 << 20, AfterFirstBlock: tapeio.VerifyFirstBlock([]byte(dr.keyFP))})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{conn}, buf)
	if err != nil || n != int64(len(data)) {
		b.Fatalf("TLS stream: %d of %d bytes, %v", n, len(data), err)
	}
	if err := <-sent; err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}
