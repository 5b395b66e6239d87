package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/archive"
)

// BenchmarkStoragedJobSmallFiles runs b.N job sessions through the real
// storaged and vtl processes, each a pax stream of 40,000 members of
// 4 KiB (random bytes) sent over JobData as filed sends it (256 KiB data
// messages, each followed by the records of the members it completes);
// the test is the director (Storage.Job, every flushed record read). It
// reports members/s, storaged's CPU time per job (user + system, from
// /proc) and its peak RSS (VmHWM):
//
//	go test -run '^$' -bench StoragedJobSmallFiles -benchtime 2x ./storaged/
//
// -job-members and -job-member-size set the members' number and size
// (e.g. 100000 for the issue's 100k-file job; 512 of 4 MiB for a 2 GiB
// job).
func BenchmarkStoragedJobSmallFiles(b *testing.B) {
	members, size := *jobMembers, *jobMemberSize
	e := newEnv(b, envOpts{capacity: "8GiB", drives: 1, personalities: "drive1=no-ame"})
	if _, err := e.label(1, "TW0001L6", "drive0", true); err != nil {
		b.Fatal(err)
	}
	msgs, recs, streamBytes := smallFileStream(b, members, size)
	tc, err := tlsconf.Client(e.issue("web1", tlsconf.RoleClient), tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}, "")
	if err != nil {
		b.Fatal(err)
	}
	cc, err := grpc.NewClient(e.sdAddr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	client := pb.NewStorageClient(cc)
	pid := e.sd.Cmd.Process.Pid

	var elapsed, cpu time.Duration
	b.ResetTimer()
	for i := range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		job, err := e.client.Job(ctx)
		if err != nil {
			b.Fatal(err)
		}
		open := &pb.JobOpen{Job: &pb.JobSpec{JobId: int64(100 + i), Job: "bench", Client: "web1", Fileset: "home", Level: "Full", Pool: "Offsite"},
			Volume: &pb.JobVolume{Volume: "TW0001L6", Changer: "changer0", Slot: 1, TapeFile: uint32(2 + 2*i), VolumeSeq: 1}, Client: "web1"}
		if err := job.Send(&pb.JobControl{Msg: &pb.JobControl_Open{Open: open}}); err != nil {
			b.Fatal(err)
		}
		ev, err := job.Recv()
		if err == nil && ev.GetStarted() != nil {
			ev, err = job.Recv() // opened follows started once the volume is mounted
		}
		if err != nil || ev.GetOpened() == nil {
			b.Fatalf("job open: %v %v", ev, err)
		}
		opened := ev.GetOpened()
		flushed := make(chan int, 1)
		go func() {
			n := 0
			for {
				ev, err := job.Recv()
				if err != nil {
					if err != io.EOF {
						b.Errorf("Job stream: %v", err)
					}
					flushed <- n
					return
				}
				n += len(ev.GetFlushed().GetRecords())
			}
		}()
		t0, c0 := time.Now(), procCPU(b, pid)
		st, err := client.JobData(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_Open{Open: &pb.JobDataOpen{Session: opened.Session, Token: opened.Token}}}); err != nil {
			b.Fatal(err)
		}
		for _, m := range msgs {
			if err := st.Send(m); err != nil {
				_, serr := st.CloseAndRecv()
				b.Fatalf("JobData: %v (%v)", err, serr)
			}
		}
		st.Send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_End{End: &pb.JobDataEnd{StreamBytes: streamBytes, Members: uint64(recs)}}})
		if r, err := st.CloseAndRecv(); err != nil || r.StreamBytes != streamBytes {
			b.Fatalf("JobData: %v %v", r, err)
		}
		if n := <-flushed; n != recs {
			b.Fatalf("%d records flushed, want %d", n, recs)
		}
		elapsed += time.Since(t0)
		cpu += procCPU(b, pid) - c0
		cancel()
	}
	b.StopTimer()
	n := float64(members) * float64(b.N)
	b.ReportMetric(n/elapsed.Seconds(), "members/s")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "storaged-CPU-s/job")
	b.ReportMetric(float64(rssKiB(b, pid, "VmHWM"))/1024, "storaged-peak-RSS-MiB")
}

var (
	jobMembers    = flag.Int("job-members", 40000, "members of BenchmarkStoragedJobSmallFiles's job")
	jobMemberSize = flag.Int("job-member-size", 4<<10, "bytes of each member of BenchmarkStoragedJobSmallFiles's job")
)

// smallFileStream is a pax stream of n members of size bytes as JobData
// messages: 256 KiB of data, then the records of the members it ends.
func smallFileStream(b testing.TB, n, size int) ([]*pb.JobDataRequest, int, int64) {
	var stream bytes.Buffer
	aw := archive.NewWriter(&stream)
	var ends []int64
	var recs []*pb.MemberRecord
	data := make([]byte, size)
	for i := range n {
		rand.Read(data)
		rec, err := aw.WriteMember(archive.Member{Path: fmt.Sprintf("home/user/src/project%03d/file%05d.txt", i/100, i), Type: archive.TypeReg,
			Size: int64(size), Mode: 0o644, Mtime: time.Unix(1.7e9, 0), UID: 1000, GID: 1000, Uname: "user", Gname: "user"}, bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		m := &pb.MemberRecord{Path: []byte(rec.Path), Type: rec.Type.String(), Size: rec.Size, Mode: uint32(rec.Mode), Uid: rec.UID, Gid: rec.GID,
			Uname: rec.Uname, Gname: rec.Gname, MtimeNs: rec.Mtime, HeaderOffset: rec.HeaderOffset, DataOffset: rec.DataOffset,
			StoredSize: rec.StoredSize, Sha256: bytes.Clone(rec.SHA256[:])}
		recs = append(recs, m)
		ends = append(ends, rec.DataOffset+(rec.StoredSize+511)/512*512)
	}
	if err := aw.Close(); err != nil {
		b.Fatal(err)
	}
	const piece = 256 << 10
	all := stream.Bytes()
	var msgs []*pb.JobDataRequest
	next := 0
	for off := 0; off < len(all); off += piece {
		end := min(off+piece, len(all))
		msgs = append(msgs, &pb.JobDataRequest{Msg: &pb.JobDataRequest_Data{Data: all[off:end]}})
		k := next
		for k < len(recs) && ends[k] <= int64(end) {
			k++
		}
		if k > next {
			msgs = append(msgs, &pb.JobDataRequest{Msg: &pb.JobDataRequest_Records{Records: &pb.MemberRecords{Records: recs[next:k]}}})
			next = k
		}
	}
	return msgs, len(recs), int64(len(all))
}

// procCPU is the user and system time process pid used so far.
func procCPU(b testing.TB, pid int) time.Duration {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command's closing parenthesis: state is 3rd, utime 14th, stime 15th.
	f := strings.Fields(string(s[bytes.LastIndexByte(s, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}
