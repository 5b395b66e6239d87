package main

import (
	"bytes"
	"strings"
	"testing"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// TestLabelMountWriteReadOverISCSI: storaged reaches the vtl's changer
// and drives only through iscsi:// addresses (its userspace initiator
// against the vtl's iSCSI target): an encrypted label, a mount that loads
// the key with SECURITY PROTOCOL OUT over iSCSI, a write and read back,
// and the key cleared at unmount.
func TestLabelMountWriteReadOverISCSI(t *testing.T) {
	e := newEnv(t, envOpts{iscsi: true})
	st, err := e.client.Status(e.ctx(), &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if d0 := st.Drives[0]; !strings.HasPrefix(d0.Address, "iscsi://127.0.0.1:") || !d0.Ame {
		t.Fatalf("drive0 = %v, want an AME drive at an iscsi:// address", d0)
	}
	if d1 := st.Drives[1]; d1.Ame || !strings.Contains(d1.AmeReason, "no application-managed encryption") {
		t.Fatalf("drive1 (no-AME personality) = %v, want the no-AME reason", d1)
	}
	lr, err := e.label(1, "TW0001L6", "drive0", true)
	if err != nil {
		t.Fatalf("label: %v", err)
	}
	if !lr.Encrypted || !lr.EncryptionVerified {
		t.Fatalf("label reply = %v, want encrypted and verified", lr)
	}
	e.requireNoKeyLoaded()
	mr, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: true})
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	if !mr.Encrypted || mr.KeyFingerprint != lr.KeyFingerprint {
		t.Fatalf("mount reply = %v", mr)
	}
	if st := e.vtlStatus(); !strings.Contains(st, "key "+lr.KeyFingerprint) {
		t.Fatalf("vtl does not show the volume key loaded after mount:\n%s", st)
	}
	data := randomData(t, 2<<20+4321)
	wr, err := e.write("drive0", data, 0)
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	if wr.Bytes != uint64(len(data)) || !wr.EncryptionVerified {
		t.Fatalf("write reply = %v", wr)
	}
	got, err := e.read("drive0", wr.Marks[0])
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back over iSCSI: %v (%d bytes, equal %v)", err, len(got), bytes.Equal(got, data))
	}
	if _, err := e.client.Unmount(e.ctx(), &pb.UnmountRequest{Drive: "drive0"}); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	e.requireNoKeyLoaded()
}

// TestLibraryPowerCycleOverISCSI: the vtl (the iSCSI target) restarted
// while a volume is mounted: storaged's initiator logs in again, the
// drive's unit attention and lost key are noticed, the write is refused
// rather than going to tape in clear, and a remount writes again.
func TestLibraryPowerCycleOverISCSI(t *testing.T) {
	powerCycleRefusesClearWrite(t, newEnv(t, envOpts{loadDelay: "0s", iscsi: true}))
}
