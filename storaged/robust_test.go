package main

// Drives and changers as they really behave (issue 9): loads that never
// become ready, daemons and directors that die mid-way, a configuration
// whose drive_index names another drive, a second storaged on the same
// library. Every test ends with what the library holds (vtl's own word):
// each cartridge in its slot, no key in any drive.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// vtlSlotHolds says whether vtl shows barcode in slot n (1-based) — the
// library's own word, not storaged's.
func (e *env) vtlSlotHolds(n int, barcode string) bool {
	for _, line := range strings.Split(e.vtlStatus(), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "slot" && f[1] == itoa(n) {
			return f[3] == barcode
		}
	}
	return false
}

// vtlDrive is vtl's status line of drive n.
func (e *env) vtlDrive(n int) string {
	for _, line := range strings.Split(e.vtlStatus(), "\n") {
		if strings.HasPrefix(line, "drive "+itoa(n)+" ") {
			return line
		}
	}
	e.t.Fatalf("vtl status has no drive %d:\n%s", n, e.vtlStatus())
	return ""
}

func itoa(n int) string { return strconv.Itoa(n) }

// driveStatus is storaged's status of the named drive.
func (e *env) driveStatus(name string) *pb.DriveStatus {
	e.t.Helper()
	st, err := e.client.Status(e.ctx(), &pb.StatusRequest{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range st.Drives {
		if d.Name == name {
			return d
		}
	}
	e.t.Fatalf("status has no %s: %v", name, st)
	return nil
}

// A load whose wait for ready fails — the drive never becomes ready
// (timeout), or the cartridge is unreadable (03/31/00) — puts the
// cartridge back in its slot: nothing is stranded, and the next mount of
// the drive is not refused with "already holds a cartridge".
func TestFailedLoadReturnsCartridge(t *testing.T) {
	t.Run("never ready", func(t *testing.T) {
		e := newEnv(t, envOpts{loadDelay: "1h", mountTimeout: "1s"})
		for try := 0; try < 2; try++ {
			_, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0"})
			if err == nil || !strings.Contains(err.Error(), "waiting for the cartridge from slot 1") {
				t.Fatalf("mount %d on a drive that never becomes ready: err = %v", try+1, err)
			}
			if !e.vtlSlotHolds(1, "TW0001L6") {
				t.Fatalf("after the failed load, TW0001L6 is not back in slot 1:\n%s", e.vtlStatus())
			}
			if d0 := e.driveStatus("drive0"); d0.Barcode != "" || d0.Volume != "" || d0.State != "idle" {
				t.Fatalf("status of drive0 after the failed load = %v, want idle and empty", d0)
			}
		}
		if !strings.Contains(e.log(), "the cartridge went back to its slot after the failed mount") {
			t.Fatalf("storaged does not say where the cartridge went:\n%s", e.log())
		}
		e.requireNoKeyLoaded()
	})
	t.Run("hardware error", func(t *testing.T) {
		e := newEnv(t, envOpts{loadDelay: "0s"})
		// A cartridge whose header is damaged: the drive answers 03/31/00
		// (medium format corrupted) instead of becoming ready.
		cart := filepath.Join(e.dir, "lib", "TW0002L6.cart")
		f, err := os.OpenFile(cart, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("GARBAGE!"), 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
		_, err = e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 2, Drive: "drive0"})
		if err == nil || !strings.Contains(err.Error(), "waiting for the cartridge from slot 2") {
			t.Fatalf("mount of a damaged cartridge: err = %v", err)
		}
		if !e.vtlSlotHolds(2, "TW0002L6") {
			t.Fatalf("the damaged cartridge is not back in slot 2:\n%s", e.vtlStatus())
		}
		// The drive is free: a good cartridge labels and mounts there.
		if _, err := e.label(3, "TW0003L6", "drive0", true); err != nil {
			t.Fatalf("label on drive0 after the failed load: %v", err)
		}
		if _, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 3, Drive: "drive0"}); err != nil {
			t.Fatalf("mount on drive0 after the failed load: %v", err)
		}
		if _, err := e.client.Unmount(e.ctx(), &pb.UnmountRequest{Drive: "drive0"}); err != nil {
			t.Fatal(err)
		}
		e.requireNoKeyLoaded()
	})
}

// storaged stopped (SIGTERM) or killed (kill -9) with a volume mounted:
// the key is cleared (at shutdown, or at the next start-up) and the
// director told so; the restarted storaged learns from the changer that
// the drive holds the cartridge, reads its label with no key loaded, shows
// it in status, and unmount returns it to its slot. With kill -9 the
// director is down when storaged comes back: the start-up clear is
// reported once it is reachable again.
func TestRestartWithCartridgeMounted(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			e := newEnv(t, envOpts{loadDelay: "0s"})
			lr, err := e.label(1, "TW0001L6", "drive0", true)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: true}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(e.vtlDrive(0), "key "+lr.KeyFingerprint) {
				t.Fatalf("no key after mount:\n%s", e.vtlStatus())
			}
			e.stopStoraged(sig)
			detail := "at shutdown"
			if sig == syscall.SIGTERM {
				e.requireNoKeyLoaded()
			} else {
				detail = "at start-up"
				e.dirSrv.Stop() // the director is down while storaged comes back
			}
			e.startStoraged()
			e.requireNoKeyLoaded()
			if sig == syscall.SIGKILL {
				if n := len(e.director.cleared("TW0001L6", detail)); n != 0 {
					t.Fatalf("the director, down, got %d start-up clears", n)
				}
				e.serveDirector(e.dirAddr)
			}
			waitFor(t, "the director to hear that the key was cleared "+detail, func() bool {
				return len(e.director.cleared("TW0001L6", detail)) == 1
			})
			if r := e.director.cleared("TW0001L6", detail)[0]; r.KeyFingerprint != lr.KeyFingerprint || r.Drive != "drive0" {
				t.Fatalf("cleared report = %v, want drive0 and fingerprint %s", r, lr.KeyFingerprint)
			}

			d0 := e.driveStatus("drive0")
			if d0.Volume != "TW0001L6" || d0.Barcode != "TW0001L6" || !strings.HasPrefix(d0.State, "loaded") || d0.Key == nil || d0.Key.KeyLoaded {
				t.Fatalf("status of drive0 after the restart = %v, want TW0001L6 loaded, not mounted, no key", d0)
			}
			// Mounting the slot again says where its cartridge is.
			_, err = e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive1"})
			if err == nil || !strings.Contains(err.Error(), "is in drive0; unmount drive0 first") {
				t.Fatalf("mount of slot 1 while its cartridge is in drive0: err = %v", err)
			}
			ur, err := e.client.Unmount(e.ctx(), &pb.UnmountRequest{Drive: "drive0"})
			if err != nil {
				t.Fatalf("unmount after the restart: %v", err)
			}
			if ur.Volume != "TW0001L6" || ur.Slot != 1 {
				t.Fatalf("unmount reply = %v, want TW0001L6 back to slot 1", ur)
			}
			if !e.vtlSlotHolds(1, "TW0001L6") {
				t.Fatalf("TW0001L6 is not back in slot 1:\n%s", e.vtlStatus())
			}
			e.requireNoKeyLoaded()
			// And the volume works again.
			if _, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: true}); err != nil {
				t.Fatalf("mount after the unmount: %v", err)
			}
			if _, err := e.client.Unmount(e.ctx(), &pb.UnmountRequest{Drive: "drive0"}); err != nil {
				t.Fatal(err)
			}
			e.requireNoKeyLoaded()
		})
	}
}

// The director dies while a mount waits for the drive: the request's
// context ends, storaged abandons the mount, says so in its log, and the
// cartridge goes back to its slot with no key loaded.
func TestDirectorGoneMidMount(t *testing.T) {
	e := newEnv(t, envOpts{loadDelay: "1h"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.client.Mount(ctx, &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0"})
		done <- err
	}()
	waitFor(t, "drive0 to be loading the cartridge", func() bool {
		return strings.Contains(e.vtlDrive(0), "TW0001L6") && strings.Contains(e.vtlDrive(0), "loading")
	})
	cancel() // the director's end of the call is gone
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Fatalf("mount: err = %v, want Canceled", err)
	}
	waitFor(t, "TW0001L6 back in slot 1", func() bool { return e.vtlSlotHolds(1, "TW0001L6") })
	waitFor(t, "storaged to log the abandoned mount", func() bool {
		return strings.Contains(e.log(), "mount abandoned: the director's request ended") &&
			strings.Contains(e.log(), "the cartridge went back to its slot after the failed mount")
	})
	e.requireNoKeyLoaded()
	if d0 := e.driveStatus("drive0"); d0.Barcode != "" || d0.State != "idle" {
		t.Fatalf("status of drive0 = %v, want idle and empty", d0)
	}
}

// A configuration whose drive_index values are swapped is refused at
// start-up, naming the drive, its serial, the identifier the changer
// reports for that index and the index that does carry the serial.
func TestSwappedDriveIndexRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.stopStoraged(syscall.SIGTERM)
	b, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer("drive_index = 0", "drive_index = 1", "drive_index = 1", "drive_index = 0").Replace(string(b))
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testenv.Start(t, "storaged", filepath.Join(e.dir, "storaged.log"), "", bins.storaged, "-c", e.cfgPath, "--addr-file", filepath.Join(e.dir, "sd.addr"))
	waitFor(t, "storaged to refuse the configuration", p.Exited)
	if code := p.Cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("storaged exited with %d, want 1; log:\n%s", code, p.Output())
	}
	out := p.Output()
	for _, want := range []string{
		"drive0 (vtl:" + e.vtlSock + "#drive0) has serial number TWDRV00000, but changer changer0 reports drive_index 1 as the drive with serial TWDRV00001 (DVCID); serial TWDRV00000 is the changer's drive_index 0: set drive_index = 0 for drive0 in " + e.cfgPath,
		"drive1 (vtl:" + e.vtlSock + "#drive1) has serial number TWDRV00001, but changer changer0 reports drive_index 0 as the drive with serial TWDRV00000 (DVCID)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("storaged's refusal lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(e.dir, "sd.addr")); err == nil {
		t.Error("storaged refused its configuration but listened")
	}
}

// A cartridge loaded behind storaged's back (the library's panel): a label
// into that drive is refused with advice that works — unmount returns the
// cartridge to its slot — and the label then succeeds.
func TestCartridgeLoadedByHand(t *testing.T) {
	e := newEnv(t, envOpts{loadDelay: "0s"})
	if out, err := exec.Command(bins.vtl, "load", "--socket", e.vtlSock, "--slot", "2", "--drive", "0").CombinedOutput(); err != nil {
		t.Fatalf("vtl load: %v\n%s", err, out)
	}
	_, err := e.label(1, "TW0001L6", "drive0", true)
	if err == nil || !strings.Contains(err.Error(), "drive0 already holds cartridge TW0002L6 (from slot 2), not mounted; unmount drive0 first") {
		t.Fatalf("label into a drive loaded by hand: err = %v", err)
	}
	ur, err := e.client.Unmount(e.ctx(), &pb.UnmountRequest{Drive: "drive0"})
	if err != nil || ur.Slot != 2 {
		t.Fatalf("unmount of the cartridge loaded by hand: %v, %v; want it back to slot 2", ur, err)
	}
	if !e.vtlSlotHolds(2, "TW0002L6") {
		t.Fatalf("TW0002L6 is not back in slot 2:\n%s", e.vtlStatus())
	}
	if _, err := e.label(1, "TW0001L6", "drive0", true); err != nil {
		t.Fatalf("label after the unmount: %v", err)
	}
	e.requireNoKeyLoaded()
}

// A second storaged on the same library while the first has a volume
// mounted: every drive is busy (the exclusive opens fail), so it sends them
// nothing — no probe, no clear — and refuses to start, naming them; the
// first daemon's key stays loaded. Needs exclusive vtl units (branch
// wt-drives): with a vtl that lets a second holder in, it is skipped.
func TestSecondStoragedRefusesBusyDrives(t *testing.T) {
	e := newEnv(t, envOpts{})
	lr, err := e.label(1, "TW0001L6", "drive0", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: true}); err != nil {
		t.Fatal(err)
	}
	conf2 := e.sdConf
	conf2.WorkDir = filepath.Join(e.dir, "work2")
	cfg2 := filepath.Join(e.dir, "storaged2.toml")
	conf2.Write(t, cfg2)
	second := testenv.Start(t, "storaged2", filepath.Join(e.dir, "storaged2.log"), "", bins.storaged, "-c", cfg2)
	waitFor(t, "the second storaged to start or give up", func() bool {
		return second.Exited() || strings.Contains(second.Output(), "storaged ready")
	})
	out := second.Output()
	if !second.Exited() {
		second.Stop(t, syscall.SIGTERM)
		t.Fatalf("a second storaged on the same drives started (vtl must give each unit one exclusive holder):\n%s", out)
	}
	if code := second.Cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("the second storaged exited with %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{"every drive is held by another process", "drive0 (vtl:" + e.vtlSock + "#drive0)", "drive2 (vtl:" + e.vtlSock + "#drive2)"} {
		if !strings.Contains(out, want) {
			t.Errorf("the second storaged's refusal lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(e.vtlDrive(0), "key "+lr.KeyFingerprint) {
		t.Fatalf("the first daemon's key is gone:\n%s", e.vtlStatus())
	}
	if wr, err := e.write("drive0", randomData(t, 1<<20)); err != nil || !wr.EncryptionVerified {
		t.Fatalf("the first storaged writing after the second gave up: %v %v", wr, err)
	}
}
