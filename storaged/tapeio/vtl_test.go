package tapeio

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/dial"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// lib is one running vtl.
type lib struct {
	bin, sock, dir string
	srv            *testenv.Server
}

var (
	tmpRoot string
	vtlBin  string
	small   *lib // 8 MiB cartridges, drive2 lying
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	var err error
	tmpRoot, err = os.MkdirTemp("", "tapeward-tapeio-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmpRoot)
	vtlBin = filepath.Join(tmpRoot, "vtl")
	if _, err := testenv.Build(filepath.Dir(vtlBin), "tools/vtl"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	small, err = startLib("small", "8MiB", 14, "drive2=lying")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer small.stop()
	code := m.Run()
	if big != nil { // started lazily by the benchmarks
		big.stop()
	}
	if code != 0 {
		log, _ := os.ReadFile(filepath.Join(small.dir, "vtl.log"))
		fmt.Fprintf(os.Stderr, "---- vtl log ----\n%s", log)
	}
	return code
}

func startLib(name, capacity string, slots int, personality string) (*lib, error) {
	dir := filepath.Join(tmpRoot, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	args := []string{"--slots", fmt.Sprint(slots), "--drives", "3", "--capacity", capacity}
	if personality != "" {
		args = append(args, "--personality", personality)
	}
	srv, err := testenv.ServeVTL(vtlBin, dir, args...)
	if err != nil {
		return nil, fmt.Errorf("vtl %s: %w", name, err)
	}
	return &lib{bin: vtlBin, sock: srv.Socket, dir: dir, srv: srv}, nil
}

func (l *lib) stop() { l.srv.Stop() }

// mount puts the cartridge of slot (1-based) into drive (unloading what
// the drive held) and returns the drive, ready.
func (l *lib) mount(t testing.TB, slot, drive int) *scsi.Device {
	t.Helper()
	exec.Command(l.bin, "unload", "--socket", l.sock, "--drive", fmt.Sprint(drive)).Run()
	out, err := exec.Command(l.bin, "load", "--socket", l.sock, "--slot", fmt.Sprint(slot), "--drive", fmt.Sprint(drive)).CombinedOutput()
	if err != nil {
		t.Fatalf("vtl load slot %d drive %d: %v\n%s", slot, drive, err, out)
	}
	d, err := dial.OpenDevice(fmt.Sprintf("vtl:%s#drive%d", l.sock, drive), scsi.TypeTape)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Clear()
		d.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.WaitReady(ctx, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return d
}
