package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/dial"
	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

func TestStartupProbesAndClears(t *testing.T) {
	e := newEnv(t, envOpts{})
	log := e.log()
	for _, want := range []string{
		`drive0 IBM ULT3580-TD6 (vtl:` + e.vtlSock + `#drive0): AME yes — AES-256-GCM index 1, U-KAD ≤ 32 bytes, CKOD yes; key cleared`,
		`drive1 IBM ULT3580-TD6 (vtl:` + e.vtlSock + `#drive1): AME no — SECURITY PROTOCOL IN not supported (ILLEGAL REQUEST 20/00)`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("start-up log lacks %q:\n%s", want, log)
		}
	}
	inv, err := e.client.Inventory(e.ctx(), &pb.InventoryRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Changers) != 1 || len(inv.Changers[0].Slots) != 6 || inv.Changers[0].Slots[2].Barcode != "TW0003L6" {
		t.Fatalf("inventory = %v", inv)
	}
	hello, err := e.client.Hello(e.ctx(), &pb.HelloRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hello.KekIds, e.ring.IDs()) {
		t.Fatalf("storaged reports KEKs %v, want %v", hello.KekIds, e.ring.IDs())
	}
}

// Label → mount → write → read back identical; the key is loaded only
// while mounted, and the data is unreadable without it.
func TestLabelMountWriteRead(t *testing.T) {
	e := newEnv(t, envOpts{})
	lr, err := e.label(1, "TW0001L6", "", true)
	if err != nil {
		t.Fatalf("label: %v", err)
	}
	if !lr.Encrypted || !lr.EncryptionVerified || lr.Drive != "drive0" || lr.Barcode != "TW0001L6" {
		t.Fatalf("label reply = %v, want encrypted and verified on drive0", lr)
	}
	e.requireNoKeyLoaded()
	cacheOut, err := exec.Command(bins.tapekey, "cache", "dump", filepath.Join(e.dir, "work", "storaged.cryptocache")).CombinedOutput()
	if err != nil || !strings.Contains(string(cacheOut), "TW0001L6") || !strings.Contains(string(cacheOut), lr.KeyFingerprint) {
		t.Fatalf("crypto cache after label (%v):\n%s", err, cacheOut)
	}

	mr, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: true})
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	if mr.Volume != "TW0001L6" || !mr.Encrypted || mr.KeySource != "director" || mr.KeyFingerprint != lr.KeyFingerprint {
		t.Fatalf("mount reply = %v", mr)
	}
	if st := e.vtlStatus(); !strings.Contains(st, "key "+lr.KeyFingerprint) {
		t.Fatalf("vtl does not show the volume key loaded after mount:\n%s", st)
	}
	data := randomData(t, 3<<20+12345)
	wr, err := e.write("drive0", data, 0, 1<<20+7)
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	if wr.Bytes != uint64(len(data)) || wr.VolumeFull || !wr.EncryptionVerified || len(wr.Marks) != 2 {
		t.Fatalf("write reply = %v", wr)
	}
	got, err := e.read("drive0", wr.Marks[0])
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, differing from the %d written", len(got), len(data))
	}
	got, err = e.read("drive0", wr.Marks[1])
	if err != nil || !bytes.Equal(got, data[1<<20+7:]) {
		t.Fatalf("read from the second mark: %v (%d bytes)", err, len(got))
	}
	if ev := e.director.events("TW0001L6"); !slices.Contains(ev, "loaded") || !slices.Contains(ev, "verified") {
		t.Fatalf("director got events %v, want loaded and verified", ev)
	}
	st, err := e.client.Status(e.ctx(), &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if d0 := st.Drives[0]; d0.Volume != "TW0001L6" || !d0.Key.KeyLoaded || d0.Key.KeyFingerprint != lr.KeyFingerprint || d0.Key.EncryptionMode != "encrypt" {
		t.Fatalf("status of drive0 = %v", d0)
	}

	if _, err := e.client.Unmount(e.ctx(), &pb.UnmountRequest{Drive: "drive0"}); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	e.requireNoKeyLoaded()

	// The blocks on tape are encrypted: without the key the drive refuses
	// them (74/xx); with it, they are exactly the data.
	// storaged holds its drives exclusively: stop it to look at drive0.
	e.stopStoraged(syscall.SIGTERM)
	if out, err := exec.Command(bins.vtl, "load", "--socket", e.vtlSock, "--slot", "1", "--drive", "0").CombinedOutput(); err != nil {
		t.Fatalf("vtl load: %v\n%s", err, out)
	}
	dev, err := dial.OpenDevice("vtl:"+e.vtlSock+"#drive0", scsi.TypeTape)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	waitFor(t, "drive ready", func() bool { return dev.TestUnitReady() == nil })
	if err := dev.Locate(scsi.LocateBlock, wr.Marks[0].Block); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	if _, err := dev.Read(buf, true); !scsi.IsEncryptionError(err) {
		t.Fatalf("reading an encrypted block with no key: err = %v, want a 74/xx decryption error", err)
	}
	raw, err := e.ring.Unwrap(e.director.keys["TW0001L6"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.SetKey(raw, scsi.SetKeyOpts{}); err != nil {
		t.Fatal(err)
	}
	if err := dev.Locate(scsi.LocateBlock, wr.Marks[0].Block); err != nil {
		t.Fatal(err)
	}
	r, err := dev.Read(buf, true)
	if err != nil || !bytes.Equal(buf[:r.N], data[:256<<10]) {
		t.Fatalf("with the key: %v; first block equal = %v", err, err == nil && bytes.Equal(buf[:r.N], data[:256<<10]))
	}
	dev.Clear()
}

func TestWrongKEKRefusesMount(t *testing.T) {
	e := newEnv(t, envOpts{})
	if _, err := e.label(2, "TW0002L6", "", true); err != nil {
		t.Fatal(err)
	}
	good := e.director.keys["TW0002L6"]

	// The director hands out the same key wrapped under a KEK storaged
	// does not have: the mount fails naming that KEK id.
	other, _ := keys.GenerateKEK()
	ring2, _ := keys.NewKeyring(other)
	raw, _ := e.ring.Unwrap(good)
	e.secrets = append(e.secrets, keys.EncodeKEKHex(other)[:64])
	sk2, err := ring2.Wrap(raw)
	if err != nil {
		t.Fatal(err)
	}
	e.director.setKey("TW0002L6", sk2)
	_, err = e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 2, Drive: "drive0"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), other.ID()) {
		t.Fatalf("mount with a key under an unknown KEK: err = %v, want FailedPrecondition naming KEK %s", err, other.ID())
	}
	e.requireNoKeyLoaded()

	// A corrupt stored string claiming the right KEK: the integrity check
	// fails and names the KEK it expected.
	bad := good
	b := []byte(bad.Value)
	b[10] = map[bool]byte{true: 'B', false: 'A'}[b[10] == 'A'] // still valid base64, a different wrap
	bad.Value = string(b)
	e.director.setKey("TW0002L6", bad)
	_, err = e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 2, Drive: "drive0"})
	if err == nil || !strings.Contains(err.Error(), "not wrapped with KEK "+good.KEKID) {
		t.Fatalf("mount with a corrupt stored key: err = %v, want the integrity failure naming KEK %s", err, good.KEKID)
	}
	e.requireNoKeyLoaded()
	inv, _ := e.client.Inventory(e.ctx(), &pb.InventoryRequest{})
	if !inv.Changers[0].Slots[1].Full {
		t.Fatalf("the cartridge did not go back to slot 2: %v", inv)
	}
}

func TestDirectorUnreachableUsesCache(t *testing.T) {
	e := newEnv(t, envOpts{})
	lr, err := e.label(3, "TW0003L6", "", true)
	if err != nil {
		t.Fatal(err)
	}
	e.dirSrv.Stop() // the director is gone
	mr, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 3, Drive: "drive0", ForWrite: true})
	if err != nil {
		t.Fatalf("mount with the director down: %v", err)
	}
	if mr.KeySource != "cache" || mr.KeyFingerprint != lr.KeyFingerprint {
		t.Fatalf("mount reply = %v, want the key from the cache", mr)
	}
	if !strings.Contains(e.log(), "director unreachable: using the crypto cache") {
		t.Fatalf("storaged did not say it used the cache:\n%s", e.log())
	}
	// Reading works with the cached key, but no session writes without
	// the director recording that the volume holds data (BeginWrite).
	_, err = e.write("drive0", randomData(t, 100000))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "director could not be reached") || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("write with the director down: err = %v, want Unavailable saying nothing was written", err)
	}
	vs, err := e.client.VolumeState(e.ctx(), &pb.VolumeStateRequest{Volume: "TW0003L6"})
	if err != nil || !vs.Mounted || !vs.DataKnown || vs.HoldsData {
		t.Fatalf("volume state after the refused write = %v, %v; want mounted, no data on tape", vs, err)
	}
	if _, err := e.client.Unmount(e.ctx(), &pb.UnmountRequest{Drive: "drive0"}); err != nil {
		t.Fatal(err)
	}
	e.requireNoKeyLoaded()
}

func TestDrivesThatCannotEncrypt(t *testing.T) {
	e := newEnv(t, envOpts{})
	// no-ame drive configured crypto = true: refused with the probe's reason.
	_, err := e.label(4, "TW0004L6", "drive1", true)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "SECURITY PROTOCOL IN not supported (ILLEGAL REQUEST 20/00)") {
		t.Fatalf("label encrypt on the no-AME drive: err = %v", err)
	}
	// The lying drive accepts the key and reports encryption on, but the
	// key-check block reads back clear: refused, naming the drive.
	_, err = e.label(4, "TW0004L6", "drive2", true)
	if err == nil || !strings.Contains(err.Error(), "drive2") || !strings.Contains(err.Error(), "not encrypted") {
		t.Fatalf("label encrypt on the lying drive: err = %v, want a refusal naming drive2", err)
	}
	e.requireNoKeyLoaded()
	// The cartridge is back and was not labelled... but its key is kept
	// in the crypto cache (keys are never deleted because a label failed).
	inv, _ := e.client.Inventory(e.ctx(), &pb.InventoryRequest{})
	if !inv.Changers[0].Slots[3].Full {
		t.Fatalf("slot 4 is empty after the failed label: %v", inv)
	}
}

func TestExistingLabelIsNotOverwritten(t *testing.T) {
	e := newEnv(t, envOpts{})
	if _, err := e.label(5, "TW0005L6", "", false); err != nil {
		t.Fatal(err)
	}
	_, err := e.label(5, "OTHER", "", true)
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "TW0005L6") {
		t.Fatalf("relabel: err = %v, want AlreadyExists naming the existing volume", err)
	}
	e.requireNoKeyLoaded()
}

func TestSpanningTwoVolumes(t *testing.T) {
	e := newEnv(t, envOpts{capacity: "8MiB"})
	for i, v := range []string{"TW0001L6", "TW0002L6"} {
		if _, err := e.label(uint32(i+1), v, "", true); err != nil {
			t.Fatal(err)
		}
	}
	data := randomData(t, 12<<20)
	if _, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: true}); err != nil {
		t.Fatal(err)
	}
	w1, err := e.write("drive0", data, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !w1.VolumeFull || w1.Bytes == 0 || w1.Bytes >= uint64(len(data)) {
		t.Fatalf("first volume: %v, want volume full part-way", w1)
	}
	first, err := e.read("drive0", w1.Marks[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Unmount(e.ctx(), &pb.UnmountRequest{Drive: "drive0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 2, Drive: "drive0", ForWrite: true}); err != nil {
		t.Fatal(err)
	}
	w2, err := e.write("drive0", data[w1.Bytes:], 0)
	if err != nil || w2.VolumeFull || w2.Bytes != uint64(len(data))-w1.Bytes {
		t.Fatalf("second volume: %v %v", w2, err)
	}
	second, err := e.read("drive0", w2.Marks[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(first, second...), data) {
		t.Fatalf("the two volumes hold %d+%d bytes that differ from the %d written", len(first), len(second), len(data))
	}
	if _, err := e.client.Unmount(e.ctx(), &pb.UnmountRequest{Drive: "drive0"}); err != nil {
		t.Fatal(err)
	}
}

// SIGTERM during a write: storaged ends the session and clears the key
// before it exits. kill -9: the key stays until the next start clears it.
func TestSignalsLeaveNoKey(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			e := newEnv(t, envOpts{capacity: "256MiB"})
			if _, err := e.label(1, "TW0001L6", "", true); err != nil {
				t.Fatal(err)
			}
			if _, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: true}); err != nil {
				t.Fatal(err)
			}
			st, err := e.client.WriteData(e.ctx())
			if err != nil {
				t.Fatal(err)
			}
			st.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Open{Open: &pb.WriteOpen{Drive: "drive0"}}})
			chunk := randomData(t, 1<<20)
			for i := 0; i < 8; i++ {
				if err := st.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Data{Data: chunk}}); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(100 * time.Millisecond) // data is flowing to the drive
			if !strings.Contains(e.vtlStatus(), "key ") {
				t.Fatalf("no key loaded during the write:\n%s", e.vtlStatus())
			}
			e.stopStoraged(sig)
			if sig == syscall.SIGTERM {
				e.requireNoKeyLoaded()
				if !strings.Contains(e.log(), "every drive's key cleared") {
					t.Fatalf("storaged's last words:\n%s", e.log())
				}
				return
			}
			e.startStoraged()
			e.requireNoKeyLoaded()
		})
	}
}

func TestOnlyTheDirectorMayCall(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, id := range []struct{ name, role string }{{"intruder", "director"}, {"director", "storage"}, {"admin", "console"}} {
		e.connect(e.issue(id.name, id.role))
		if _, err := e.client.Hello(e.ctx(), &pb.HelloRequest{}); err == nil {
			t.Errorf("storaged accepted a call from %s %q", id.role, id.name)
		}
	}
	e.connect(e.dirFiles)
	if _, err := e.client.Hello(e.ctx(), &pb.HelloRequest{}); err != nil {
		t.Fatalf("the configured director was refused: %v", err)
	}
}

// A library power cycle (vtl restarted) while a volume is mounted: the
// drive's key is gone, so the next write is refused instead of going to
// tape in clear; a remount loads the key again and writing works.
func TestLibraryPowerCycleRefusesClearWrite(t *testing.T) {
	powerCycleRefusesClearWrite(t, newEnv(t, envOpts{loadDelay: "0s"}))
}

func powerCycleRefusesClearWrite(t *testing.T, e *env) {
	if _, err := e.label(1, "TW0001L6", "drive0", true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: true}); err != nil {
		t.Fatal(err)
	}
	e.vtl.Stop(t, syscall.SIGTERM)
	e.vtl = testenv.StartVTL(t, bins.vtl, e.dir, e.vtlArgs...)
	e.requireNoKeyLoaded()

	// The session's first step is a query (the status page), which is
	// asked again on the new nexus after the broken connection: no key,
	// so the write is refused and nothing reaches the tape.
	_, err := e.write("drive0", randomData(t, 1<<20))
	if err == nil || !strings.Contains(err.Error(), "refusing to write volume TW0001L6") {
		t.Fatalf("write after the power cycle: err = %v, want a refusal", err)
	}
	_, err = e.write("drive0", randomData(t, 1<<20))
	if err == nil || !strings.Contains(err.Error(), "does not hold its key") {
		t.Fatalf("second write after the power cycle: err = %v, want a refusal", err)
	}
	e.requireNoKeyLoaded()
	if _, err := e.client.Unmount(e.ctx(), &pb.UnmountRequest{Drive: "drive0"}); err != nil {
		t.Fatalf("unmount after the power cycle: %v", err)
	}
	if _, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: true}); err != nil {
		t.Fatalf("remount after the power cycle: %v", err)
	}
	wr, err := e.write("drive0", randomData(t, 1<<20))
	if err != nil || !wr.EncryptionVerified {
		t.Fatalf("write after the remount: %v %v", wr, err)
	}
}

// TestSecondStoragedLeavesDrivesAlone: a second storaged started on the
// same library (finding 3) finds every device busy — storaged opens them
// exclusively — and neither clears nor touches the key the first daemon
// has loaded for a mounted volume; the first goes on writing.
func TestSecondStoragedLeavesDrivesAlone(t *testing.T) {
	e := newEnv(t, envOpts{})
	if _, err := e.label(1, "TW0001L6", "", true); err != nil {
		t.Fatal(err)
	}
	mr, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	before := e.vtlStatus()
	if !strings.Contains(before, "key "+mr.KeyFingerprint) {
		t.Fatalf("no key loaded after mount:\n%s", before)
	}
	conf2 := e.sdConf
	conf2.Listen = testenv.FreeAddr(t)
	conf2.WorkDir = filepath.Join(e.dir, "work2")
	cfg2 := filepath.Join(e.dir, "storaged2.toml")
	conf2.Write(t, cfg2)
	second := testenv.Start(t, "storaged2", filepath.Join(e.dir, "storaged2.log"), "", bins.storaged, "-c", cfg2)
	testenv.WaitFor(t, "the second storaged to meet the busy drives", func() bool {
		return second.Exited() || strings.Contains(second.Output(), "storaged ready")
	})
	out := second.Output()
	for _, unit := range []string{"#changer", "#drive0", "#drive1", "#drive2"} {
		if !strings.Contains(out, "device busy: another storaged or tapekey has vtl:"+e.vtlSock+unit+" open") {
			t.Errorf("the second storaged's log does not say %s is busy:\n%s", unit, out)
		}
	}
	second.Stop(t, syscall.SIGTERM)
	if after := e.vtlStatus(); !strings.Contains(after, "key "+mr.KeyFingerprint) {
		t.Fatalf("the first daemon's key is gone after a second storaged started:\n%s", after)
	}
	data := randomData(t, 1<<20+3)
	if wr, err := e.write("drive0", data, 0); err != nil || wr.Bytes != uint64(len(data)) {
		t.Fatalf("the first storaged writing after the second came and went: %v %v", wr, err)
	}
}
