package iscsi

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	ini "github.com/tapeward/tapeward/storaged/scsi/iscsi"
	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
	"github.com/tapeward/tapeward/tools/vtl/emu"
)

// BenchmarkISCSIvsSocket writes encrypted 1 MiB blocks to one vtl library
// (cartridges on tmpfs, so the transports dominate) through the unix
// socket (drive0) and through the iSCSI target with the project's
// initiator (drive1, default options), alternating block by block in the
// same run. Metrics: MB/s of each and their ratio, iscsi/socket (goal
// ≥ 0.7).
func BenchmarkISCSIvsSocket(b *testing.B) {
	w := newWorld(b, nil)
	sock := filepath.Join(b.TempDir(), "vtl.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { emu.NewServer(w.lib).Serve(ctx, ln); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	for i := range 2 {
		if err := w.lib.PanelLoad(i+1, i); err != nil {
			b.Fatal(err)
		}
	}
	cl, err := vtlwire.Dial(sock, "drive0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	viaSocket := scsi.NewDevice(cl)
	viaISCSI, _ := w.dialLUN(b, w.addr, 2, ini.Options{})
	key := bytes.Repeat([]byte{0xA5}, 32)
	for _, d := range []*scsi.Device{viaSocket, viaISCSI} {
		ready(b, d)
		if _, err := d.SetKey(key, scsi.SetKeyOpts{}); err != nil {
			b.Fatal(err)
		}
	}
	const size = 1 << 20
	blk := pat(size, 3)
	var tSock, tISCSI time.Duration
	b.SetBytes(2 * size)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := viaSocket.Write(blk); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := viaISCSI.Write(blk); err != nil {
			b.Fatal(err)
		}
		tSock += t1.Sub(t0)
		tISCSI += time.Since(t1)
	}
	b.StopTimer()
	mbps := func(d time.Duration) float64 { return float64(b.N) * size / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(tSock), "socket-MB/s")
	b.ReportMetric(mbps(tISCSI), "iscsi-MB/s")
	b.ReportMetric(tSock.Seconds()/tISCSI.Seconds(), "iscsi/socket")
}
