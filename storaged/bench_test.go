package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// BenchmarkMountKeyVerified measures a mount of an encrypted volume: the
// changer move, the label read with no key, GetVolumeKey over mTLS, the
// unwrap, the crypto-cache update and the key load with its status-page
// read-back. The unmount after each mount is not timed, and vtl's simulated
// load time is set to zero: this is storaged's own overhead. Goal: ≤ 5 ms.
func BenchmarkMountKeyVerified(b *testing.B) {
	e := newEnv(b, envOpts{loadDelay: "0s"})
	if _, err := e.label(1, "TW0001L6", "drive0", true); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0"})
		if err != nil || r.KeySource != "director" {
			b.Fatalf("mount: %v %v", r, err)
		}
		b.StopTimer()
		if _, err := e.client.Unmount(e.ctx(), &pb.UnmountRequest{Drive: "drive0"}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkStoragedWrite streams b.N MiB as one session into an encrypted
// vtl volume through storaged (gRPC over mTLS, 1 MiB blocks) and reports
// storaged's peak resident memory. For the 20 GiB goal (flat RSS ≤ 100 MB):
//
//	go test -run '^$' -bench StoragedWrite -benchtime 20480x ./storaged/
func BenchmarkStoragedWrite(b *testing.B) {
	e := newEnv(b, envOpts{capacity: "64GiB"})
	e.sdConf.BlockSize = "1MiB"
	e.sdConf.Write(b, e.cfgPath)
	e.stopStoraged(os.Interrupt)
	e.startStoraged()
	if _, err := e.label(1, "TW0001L6", "drive0", true); err != nil {
		b.Fatal(err)
	}
	if _, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: true}); err != nil {
		b.Fatal(err)
	}
	chunk := randomData(b, 1<<20)
	b.SetBytes(1 << 20)
	b.ResetTimer()
	ctx, cancel := context.WithCancel(context.Background()) // no deadline: 20 GiB takes minutes
	defer cancel()
	st, err := e.client.WriteData(ctx)
	if err != nil {
		b.Fatal(err)
	}
	st.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Open{Open: &pb.WriteOpen{Drive: "drive0"}}})
	var peak int64
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := st.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Data{Data: chunk}}); err != nil {
			_, serr := st.CloseAndRecv()
			b.Fatalf("after %d MiB: %v (storaged: %v)", i, err, serr)
		}
		if i%256 == 0 {
			peak = max(peak, rssKiB(b, e.sd.Cmd.Process.Pid, "VmRSS"))
		}
	}
	r, err := st.CloseAndRecv()
	if err != nil || r.Bytes != uint64(b.N)<<20 || !r.EncryptionVerified {
		b.Fatalf("write: %v %v", r, err)
	}
	b.StopTimer()
	elapsed := time.Since(start)
	b.ReportMetric(float64(max(peak, rssKiB(b, e.sd.Cmd.Process.Pid, "VmHWM")))/1024, "peak-RSS-MiB")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "MiB/s")
}

func rssKiB(b testing.TB, pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func mustRead(b testing.TB, p string) string {
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	return string(data)
}
