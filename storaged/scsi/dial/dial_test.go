package dial

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/iscsi/tgttest"
	"github.com/tapeward/tapeward/tools/vtl/emu"
)

func TestParse(t *testing.T) {
	good := map[string]Address{
		"/dev/sg3":                      {Path: "/dev/sg3"},
		"/dev/tape/by-id/scsi-123-sg":   {Path: "/dev/tape/by-id/scsi-123-sg"},
		"vtl:/run/vtl.sock#drive0":      {VTL: true, Path: "/run/vtl.sock", Unit: "drive0"},
		"vtl:/run/vtl.sock#drive12":     {VTL: true, Path: "/run/vtl.sock", Unit: "drive12", Drive: 12},
		"vtl:/tmp/a#b/vtl.sock#changer": {VTL: true, Path: "/tmp/a#b/vtl.sock", Unit: "changer", Change: true},
		"vtl:relative/vtl.sock#drive1":  {VTL: true, Path: "relative/vtl.sock", Unit: "drive1", Drive: 1},
	}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "sg3", "tape0", "vtl:/run/vtl.sock", "vtl:#drive0", "vtl:/s#robot", "vtl:/s#drive", "vtl:/s#drive-1", "vtl:/s#drive01", "nst0"} {
		_, err := Parse(in)
		if !errors.Is(err, ErrAddress) || !strings.Contains(err.Error(), Forms) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open("drive0"); !errors.Is(err, ErrAddress) || !strings.Contains(err.Error(), "vtl:<socket path>#drive<N>") {
		t.Fatalf("bad address: %v", err)
	}
	sock := filepath.Join(t.TempDir(), "none.sock")
	_, err := Open("vtl:" + sock + "#drive0")
	if err == nil || !strings.Contains(err.Error(), "cannot reach the vtl socket") {
		t.Fatalf("absent vtl: %v", err)
	}
	if runtime.GOOS == "linux" {
		_, err = Open("/dev/null")
		if err == nil || !strings.Contains(err.Error(), "not a SCSI generic (sg) device") {
			t.Fatalf("/dev/null: %v", err)
		}
		_, err = Open("/dev/sg-absent-tapeward")
		if err == nil || !strings.Contains(err.Error(), "no such device node") {
			t.Fatalf("absent node: %v", err)
		}
	}
}

// TestOpenExclusiveVTL: dial opens exclusively by default (finding 3): a
// second open of a held vtl unit — exclusive or shared — is a typed
// *scsi.BusyDeviceError naming the device; Shared opens coexist; closing
// releases the unit.
func TestOpenExclusiveVTL(t *testing.T) {
	lib, err := emu.NewLibrary(emu.Config{Dir: t.TempDir(), Slots: 2, Drives: 1, Capacity: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	sock := filepath.Join(t.TempDir(), "v.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- emu.NewServer(lib).Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	addr := "vtl:" + sock + "#drive0"
	first, err := OpenDevice(addr, scsi.TypeTape)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{{}, {Shared: true}} {
		_, err = OpenWith(addr, o)
		var busy *scsi.BusyDeviceError
		if !errors.As(err, &busy) || !errors.Is(err, scsi.ErrBusy) || busy.Addr != addr ||
			!strings.Contains(err.Error(), "device busy: another storaged or tapekey has "+addr+" open") {
			t.Fatalf("second open (%+v) of a held drive: %v", o, err)
		}
	}
	first.Close()
	// Released at once: the vtl finds the holder's socket closed.
	again, err := OpenDevice(addr, scsi.TypeTape)
	if err != nil {
		t.Fatalf("after the holder closed: %v", err)
	}
	again.Close()
	// Shared opens coexist (tests that want several nexuses).
	a, err := OpenWith(addr, Options{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenWith(addr, Options{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}

func TestParseISCSI(t *testing.T) {
	a, err := Parse("iscsi://backup@tapehost/iqn.2026-12.com.example:lib/2")
	if err != nil || a.ISCSI == nil || a.VTL || a.Path != "" {
		t.Fatalf("%+v %v", a, err)
	}
	if got := *a.ISCSI; got.User != "backup" || got.Host != "tapehost" || got.Port != 3260 || got.Target != "iqn.2026-12.com.example:lib" || got.LUN != 2 {
		t.Fatalf("%+v", got)
	}
	for _, in := range []string{"iscsi://h/iqn.x:y", "iscsi://u:pw@h/iqn.x:y/1", "iscsi:///iqn.x:y/1", "iscsi://h/target/1"} {
		_, err := Parse(in)
		if !errors.Is(err, ErrAddress) || !strings.Contains(err.Error(), "iscsi://[USER@]HOST[:PORT]/TARGET-IQN/LUN") || strings.Contains(err.Error(), "pw") {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// TestOpenISCSITypeCheck: an iscsi:// address opens through the initiator
// against tgt, and the INQUIRY type check refuses a changer opened as a
// drive, as for an sg node.
func TestOpenISCSITypeCheck(t *testing.T) {
	srv := tgttest.Start(t)
	lib := srv.AddLibrary(t, "dial", tgttest.Library{Slots: 1})
	d, err := OpenDevice(lib.Drive, scsi.TypeTape)
	if err != nil {
		t.Fatal(err)
	}
	if d.Addr() != lib.Drive {
		t.Fatalf("Addr %q, want %q", d.Addr(), lib.Drive)
	}
	if scsi.MaxTransfer(d.T) < 1<<20 {
		t.Fatalf("MaxTransfer %d", scsi.MaxTransfer(d.T))
	}
	d.Close()
	_, err = OpenDevice(lib.Changer, scsi.TypeTape)
	if err == nil || !strings.Contains(err.Error(), "refusing "+lib.Changer) || !strings.Contains(err.Error(), "expected a sequential-access device") {
		t.Fatalf("a changer opened as a drive: %v", err)
	}
	t.Setenv(EnvCHAPSecretFile, filepath.Join(t.TempDir(), "absent"))
	_, err = OpenDevice(lib.Drive, scsi.TypeTape)
	if err == nil || !strings.Contains(err.Error(), "reading the CHAP secret file") {
		t.Fatalf("%s naming an absent file: %v", EnvCHAPSecretFile, err)
	}
}
