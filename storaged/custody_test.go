package main

// Key custody end to end (storaged side): every label read at mount is
// checked against the director (or, unreachable, the crypto cache); no data
// block is written before the director confirmed the write session; and
// VolumeState tells the director what is mounted and what the tape holds.

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/storaged/label"
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/dial"
)

// forgeLabel writes lbl over the label of the cartridge in slot, through
// vtl drive n (as anyone with access to the library could), and puts the
// cartridge back.
func forgeLabel(t *testing.T, vtlBin, sock string, slot, n int, lbl label.Label) {
	t.Helper()
	if out, err := exec.Command(vtlBin, "load", "--socket", sock, "--slot", fmt.Sprint(slot), "--drive", fmt.Sprint(n)).CombinedOutput(); err != nil {
		t.Fatalf("vtl load: %v\n%s", err, out)
	}
	dev, err := dial.OpenDevice(fmt.Sprintf("vtl:%s#drive%d", sock, n), scsi.TypeTape)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the forger's drive ready", func() bool { return dev.TestUnitReady() == nil })
	if err := label.Write(dev, lbl); err != nil {
		t.Fatal(err)
	}
	dev.Close()
	if out, err := exec.Command(vtlBin, "unload", "--socket", sock, "--drive", fmt.Sprint(n)).CombinedOutput(); err != nil {
		t.Fatalf("vtl unload: %v\n%s", err, out)
	}
}

// tapeObjects is where the end of data of the cartridge in slot is (files
// and objects), read through vtl drive n.
func tapeEOD(t *testing.T, vtlBin, sock string, slot, n int) scsi.Position {
	t.Helper()
	if out, err := exec.Command(vtlBin, "load", "--socket", sock, "--slot", fmt.Sprint(slot), "--drive", fmt.Sprint(n)).CombinedOutput(); err != nil {
		t.Fatalf("vtl load: %v\n%s", err, out)
	}
	defer func() {
		if out, err := exec.Command(vtlBin, "unload", "--socket", sock, "--drive", fmt.Sprint(n)).CombinedOutput(); err != nil {
			t.Fatalf("vtl unload: %v\n%s", err, out)
		}
	}()
	dev, err := dial.OpenDevice(fmt.Sprintf("vtl:%s#drive%d", sock, n), scsi.TypeTape)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	waitFor(t, "drive ready", func() bool { return dev.TestUnitReady() == nil })
	if _, err := dev.Space(scsi.SpaceEndOfData, 0); err != nil {
		t.Fatal(err)
	}
	pos, err := dev.ReadPosition()
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

// A forged label saying "not encrypted" on the cartridge of an encrypted
// volume: the mount is refused naming both sides — by the director, and by
// the crypto cache when the director is unreachable — no key is loaded,
// the cartridge goes back, and nothing is written.
func TestForgedClearLabelIsRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	lr, err := e.label(1, "TW0001L6", "drive0", true)
	if err != nil {
		t.Fatal(err)
	}
	forged := label.Label{Volume: "TW0001L6", Pool: "Offsite", MediaType: "LTO-6", LabelTime: time.Now().UTC(), BlockSize: 262144, Storage: "sd1"}
	forgeLabel(t, bins.vtl, e.vtlSock, 1, e.spare, forged)
	before := tapeEOD(t, bins.vtl, e.vtlSock, 1, e.spare)

	_, err = e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: true})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "the label says no") || !strings.Contains(err.Error(), lr.KeyFingerprint) {
		t.Fatalf("mount of a forged clear label: err = %v, want FailedPrecondition naming both sides (label: no, catalog: key %s)", err, lr.KeyFingerprint)
	}
	e.director.mu.Lock()
	seen := e.director.labels[len(e.director.labels)-1]
	e.director.mu.Unlock()
	if seen.Volume != "TW0001L6" || seen.Encrypted || seen.Barcode != "TW0001L6" || seen.Storage != "sd1" {
		t.Fatalf("the director was sent label %v", seen)
	}
	// Nothing is mounted, so no session can write.
	if _, err := e.write("drive0", randomData(t, 4096)); err == nil {
		t.Fatal("a write after the refused mount succeeded")
	}
	e.requireNoKeyLoaded()

	// The director unreachable: the crypto cache holds a key for the volume,
	// so a clear label is refused too.
	e.dirSrv.Stop()
	_, err = e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: true})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "the label says not encrypted") ||
		!strings.Contains(err.Error(), "crypto cache has key "+lr.KeyFingerprint) {
		t.Fatalf("mount of a forged clear label with the director down: err = %v", err)
	}
	e.requireNoKeyLoaded()
	inv, _ := e.client.Inventory(e.ctx(), &pb.InventoryRequest{})
	if !inv.Changers[0].Slots[0].Full {
		t.Fatalf("the cartridge did not go back to slot 1: %v", inv)
	}
	if after := tapeEOD(t, bins.vtl, e.vtlSock, 1, e.spare); after.File != before.File || after.Block != before.Block {
		t.Fatalf("the tape changed: end of data %d/%d, was %d/%d", after.File, after.Block, before.File, before.Block)
	}
	if !strings.Contains(e.log(), "volume refused: its label does not match") {
		t.Fatalf("storaged did not log the refusal:\n%s", e.log())
	}
}

// A label naming a key the volume had before (its key changed in the
// catalog, the tape was not relabelled): the director hands out the history
// key, storaged loads it and says so; the crypto cache, with the director
// down, answers from its history too; an unknown fingerprint is refused.
func TestLabelNamingAHistoryKey(t *testing.T) {
	e := newEnv(t, envOpts{})
	lr, err := e.label(2, "TW0002L6", "drive0", true)
	if err != nil {
		t.Fatal(err)
	}
	old := e.director.keys["TW0002L6"]
	sk, err := e.ring.WrapNew()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := e.ring.Unwrap(sk)
	e.secrets = append(e.secrets, raw)
	e.director.rotate("TW0002L6", sk)

	mr, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 2, Drive: "drive0"})
	if err != nil {
		t.Fatalf("mount with a history key: %v", err)
	}
	if mr.KeyFingerprint != lr.KeyFingerprint || !strings.Contains(mr.KeySource, "director (history") {
		t.Fatalf("mount reply = %v, want the history key %s from the director", mr, old.Fingerprint)
	}
	if st := e.vtlStatus(); !strings.Contains(st, "key "+old.Fingerprint) {
		t.Fatalf("vtl does not show the history key loaded:\n%s", st)
	}
	if !strings.Contains(e.log(), "loaded a key from the volume's history") {
		t.Fatalf("storaged did not say it loaded a history key:\n%s", e.log())
	}
	if _, err := e.client.Unmount(e.ctx(), &pb.UnmountRequest{Drive: "drive0"}); err != nil {
		t.Fatal(err)
	}
	e.requireNoKeyLoaded()

	// A fingerprint neither current nor in the history: refused.
	e.director.mu.Lock()
	e.director.history["TW0002L6"] = nil
	e.director.mu.Unlock()
	_, err = e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 2, Drive: "drive0"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), lr.KeyFingerprint) || !strings.Contains(err.Error(), sk.Fingerprint) {
		t.Fatalf("mount naming an unknown key: %v", err)
	}
	e.requireNoKeyLoaded()
}

// No data block before BeginWrite answered: a refused session writes
// nothing; VolumeState reports mounted / writing / holds data from the tape.
func TestWriteSessionNeedsTheDirector(t *testing.T) {
	e := newEnv(t, envOpts{})
	if _, err := e.label(3, "TW0003L6", "drive0", true); err != nil {
		t.Fatal(err)
	}
	vs, err := e.client.VolumeState(e.ctx(), &pb.VolumeStateRequest{Volume: "TW0003L6"})
	if err != nil || vs.Mounted || vs.DataKnown || !strings.Contains(vs.Detail, "not in any drive") {
		t.Fatalf("volume state before mount = %v, %v", vs, err)
	}
	if _, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 3, Drive: "drive0", ForWrite: true}); err != nil {
		t.Fatal(err)
	}
	e.director.mu.Lock()
	e.director.refuseWrites = "the test says no"
	e.director.mu.Unlock()
	_, err = e.write("drive0", randomData(t, 3<<20))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "the test says no") || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("write refused by the director: err = %v", err)
	}
	vs, err = e.client.VolumeState(e.ctx(), &pb.VolumeStateRequest{Volume: "TW0003L6"})
	if err != nil || !vs.Mounted || vs.Drive != "drive0" || vs.Writing || !vs.DataKnown || vs.HoldsData {
		t.Fatalf("volume state after the refused write = %v, %v; want mounted in drive0 with no data", vs, err)
	}

	e.director.mu.Lock()
	e.director.refuseWrites = ""
	e.director.mu.Unlock()
	// An open session: VolumeState says writing (the drive is busy).
	st, err := e.client.WriteData(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Open{Open: &pb.WriteOpen{Drive: "drive0"}}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Data{Data: randomData(t, 1<<20)}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "VolumeState to report the open session", func() bool {
		vs, err := e.client.VolumeState(e.ctx(), &pb.VolumeStateRequest{Volume: "TW0003L6"})
		return err == nil && vs.Mounted && vs.Writing
	})
	if n := e.director.beganWrites("TW0003L6"); n != 1 {
		t.Fatalf("BeginWrite calls = %d, want 1 (before the first block)", n)
	}
	if _, err := st.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	vs, err = e.client.VolumeState(e.ctx(), &pb.VolumeStateRequest{Volume: "TW0003L6"})
	if err != nil || !vs.Mounted || vs.Writing || !vs.DataKnown || !vs.HoldsData || !strings.Contains(vs.Detail, "1 tape files") {
		t.Fatalf("volume state after a session = %v, %v; want holds data", vs, err)
	}
	// The check put the tape back: a second session appends.
	wr, err := e.write("drive0", randomData(t, 1000))
	if err != nil || wr.TapeFile != 3 {
		t.Fatalf("second session: %v, %v; want tape file 3", wr, err)
	}
	if _, err := e.client.Unmount(context.Background(), &pb.UnmountRequest{Drive: "drive0"}); err != nil {
		t.Fatal(err)
	}
	if vs, _ := e.client.VolumeState(e.ctx(), &pb.VolumeStateRequest{Volume: "TW0003L6"}); vs.Mounted {
		t.Fatalf("volume state after unmount = %v", vs)
	}
}

// The director unreachable: the crypto cache answers for a label naming
// the volume's current key or a key in the entry's history, and refuses a
// fingerprint it does not hold, naming both sides.
func TestCacheAnswersFromItsHistory(t *testing.T) {
	e := newEnv(t, envOpts{})
	lr, err := e.label(4, "TW0004L6", "drive0", true)
	if err != nil {
		t.Fatal(err)
	}
	// The volume is relabelled with a new key (its key changed with no
	// data on it): the cache's entry now has the new key, the old one in
	// its history.
	newKey := e.newKey("TW0004L6")
	rr, err := e.client.LabelVolume(e.ctx(), &pb.LabelVolumeRequest{Changer: "changer0", Slot: 4, Drive: "drive0", Volume: "TW0004L6",
		Pool: "Offsite", MediaType: "LTO-6", Encrypt: true, Relabel: true, Key: wrapped(newKey)})
	if err != nil || rr.KeyFingerprint != newKey.Fingerprint {
		t.Fatalf("relabel with a new key: %v, %v", rr, err)
	}
	// A tape whose label names the old key (say, a copy made before).
	old := label.Label{Volume: "TW0004L6", Pool: "Offsite", MediaType: "LTO-6", LabelTime: time.Now().UTC(), BlockSize: 262144, Storage: "sd1",
		Encryption: label.Encryption{Encrypted: true, Scheme: "v1", KEKID: newKey.KEKID, Fingerprint: lr.KeyFingerprint}}
	forgeLabel(t, bins.vtl, e.vtlSock, 4, e.spare, old)

	e.dirSrv.Stop()
	mr, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 4, Drive: "drive0"})
	if err != nil || mr.KeyFingerprint != lr.KeyFingerprint || !strings.HasPrefix(mr.KeySource, "cache (history") {
		t.Fatalf("mount of a label naming the cache's history key: %v, %v", mr, err)
	}
	if st := e.vtlStatus(); !strings.Contains(st, "key "+lr.KeyFingerprint) {
		t.Fatalf("vtl does not show the old key loaded:\n%s", st)
	}
	if _, err := e.client.Unmount(e.ctx(), &pb.UnmountRequest{Drive: "drive0"}); err != nil {
		t.Fatal(err)
	}
	// The cache still has the new key as the current one.
	out, err := exec.Command(bins.tapekey, "cache", "dump", e.dir+"/work/storaged.cryptocache", "--json").Output()
	var dump struct {
		Entries []struct {
			Fingerprint string `json:"fingerprint"`
			History     []struct {
				Fingerprint string `json:"fingerprint"`
			} `json:"history"`
		} `json:"entries"`
	}
	if err != nil || json.Unmarshal(out, &dump) != nil || len(dump.Entries) != 1 || dump.Entries[0].Fingerprint != newKey.Fingerprint ||
		len(dump.Entries[0].History) != 1 || dump.Entries[0].History[0].Fingerprint != lr.KeyFingerprint {
		t.Fatalf("the cache after mounting with a history key: %v\n%s", err, out)
	}

	// A fingerprint the cache does not hold: refused.
	old.Encryption.Fingerprint = "00112233445566ff"
	forgeLabel(t, bins.vtl, e.vtlSock, 4, e.spare, old)
	_, err = e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 4, Drive: "drive0"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "00112233445566ff") || !strings.Contains(err.Error(), newKey.Fingerprint) {
		t.Fatalf("mount naming a key the cache lacks: %v", err)
	}
	e.requireNoKeyLoaded()
}
