package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/tapeward/tapeward/configs"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/storaged/sd"
	"github.com/tapeward/tapeward/storaged/tapeio"
	"github.com/tapeward/tapeward/tools/lib/testenv"
	"github.com/tapeward/tapeward/tools/vtl/emu"
)

// clearDirector is a director for clear volumes only: it confirms every
// clear label and every write, and holds no keys.
type clearDirector struct{}

func (clearDirector) GetVolumeKey(_ context.Context, lbl *pb.LabelView, _ string) (sd.KeyAnswer, error) {
	if lbl.Encrypted {
		return sd.KeyAnswer{}, fmt.Errorf("volume %s: this test director holds no keys", lbl.Volume)
	}
	return sd.KeyAnswer{}, nil
}
func (clearDirector) CurrentKey(context.Context, string, string) (sd.KeyAnswer, error) {
	return sd.KeyAnswer{}, nil
}
func (clearDirector) LabelWritten(context.Context, *pb.LabelVolumeReply) error { return nil }
func (clearDirector) BeginWrite(context.Context, *pb.BeginWriteRequest) error  { return nil }
func (clearDirector) Report(context.Context, *pb.ReportVolumeRequest) error    { return nil }
func (clearDirector) Hello(context.Context, *pb.StorageHelloRequest) (*pb.StorageHelloReply, error) {
	return &pb.StorageHelloReply{}, nil
}
func (clearDirector) Close() error { return nil }

// inProcessDaemon is storaged's drive logic (sd) over an in-process vtl:
// no socket, no process — the harness for fast daemon tests.
func inProcessDaemon(t *testing.T, lib *emu.Library, blockSize string) *sd.Daemon {
	t.Helper()
	dir := t.TempDir()
	pki := testenv.NewPKI(t, dir)
	kek := filepath.Join(dir, "kek.key")
	testenv.WriteKEK(t, kek)
	conf := testenv.Storaged{Name: "sd1", Listen: "127.0.0.1:1", WorkDir: filepath.Join(dir, "work"),
		TLS: pki.Issue(t, "sd1", tlsconf.RoleStorage), DirectorName: "director", DirectorAddr: "127.0.0.1:1",
		KEKFiles: []string{kek}, VTLSocket: "/in-process", Drives: 1, BlockSize: blockSize}
	path := filepath.Join(dir, "storaged.toml")
	conf.Write(t, path)
	cfg, err := configs.LoadStoraged(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := sd.New(context.Background(), sd.Options{Config: cfg, Director: clearDirector{},
		OpenDevice: lib.OpenDevice, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestInProcessVolumeFullPositionLies: finding 5 through the daemon. Past
// early warning the drive's READ POSITION answers block 0 (tgt's stub);
// the session still reports a full volume with the exact bytes on it, and
// its Close succeeds — the caller is no longer told "written" and "full"
// while the call fails.
func TestInProcessVolumeFullPositionLies(t *testing.T) {
	lib, err := emu.NewLibrary(emu.Config{Dir: t.TempDir(), Slots: 2, Drives: 1, Capacity: 8 << 20,
		Faults: map[string]emu.Faults{"drive0": {Position: "zero", PositionPastEW: true}}})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	d := inProcessDaemon(t, lib, "64KiB")
	ctx := context.Background()
	lr, err := d.Label(ctx, sd.LabelRequest{Changer: "changer0", Slot: 1, Volume: "TW0001L6"})
	if err != nil {
		t.Fatal(err)
	}
	if lr.Label.BlockSize != 64<<10 {
		t.Fatalf("label block size %d", lr.Label.BlockSize)
	}
	if _, err := d.Mount(ctx, sd.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: true}); err != nil {
		t.Fatal(err)
	}
	s, err := d.OpenSession(ctx, "drive0")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 10<<20)
	n, werr := s.Write(data)
	var pe *tapeio.PositionError
	if !errors.Is(werr, tapeio.ErrVolumeFull) || !errors.As(werr, &pe) || n == 0 || n%(64<<10) != 0 {
		t.Fatalf("Write past early warning: n=%d err=%v; want a volume full with whole blocks counted", n, werr)
	}
	res, err := s.Close(ctx)
	if err != nil || !res.VolumeFull || res.Bytes != int64(n) || res.Blocks != uint64(n/(64<<10)) {
		t.Fatalf("Close: %+v %v; want volume full with the %d bytes Write reported", res, err, n)
	}
}

// TestInProcessEffectiveBlockSize: finding 4 through the daemon: with
// 8 MiB configured and an adapter that carries 1 MiB per command, the
// label records 1 MiB, and a session writes 1 MiB blocks.
func TestInProcessEffectiveBlockSize(t *testing.T) {
	lib, err := emu.NewLibrary(emu.Config{Dir: t.TempDir(), Slots: 2, Drives: 1, Capacity: 64 << 20,
		Faults: map[string]emu.Faults{"drive0": {MaxTransfer: 1 << 20}}})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	d := inProcessDaemon(t, lib, "8MiB")
	ctx := context.Background()
	lr, err := d.Label(ctx, sd.LabelRequest{Changer: "changer0", Slot: 1, Volume: "TW0001L6"})
	if err != nil {
		t.Fatal(err)
	}
	if lr.Label.BlockSize != 1<<20 {
		t.Fatalf("label records block size %d, want the effective 1 MiB", lr.Label.BlockSize)
	}
	if _, err := d.Mount(ctx, sd.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: true}); err != nil {
		t.Fatal(err)
	}
	s, err := d.OpenSession(ctx, "drive0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(make([]byte, 3<<20)); err != nil {
		t.Fatal(err)
	}
	res, err := s.Close(ctx)
	if err != nil || res.Blocks != 3 || res.Bytes != 3<<20 {
		t.Fatalf("session %+v %v; want 3 blocks of 1 MiB", res, err)
	}
}
