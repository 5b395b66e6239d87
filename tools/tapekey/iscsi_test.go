package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi/dial"
	"github.com/tapeward/tapeward/storaged/scsi/iscsi"
	"github.com/tapeward/tapeward/storaged/scsi/iscsi/tgttest"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// TestDriveOverISCSI: `tapekey drive` takes an iscsi:// address, logging
// in with CHAP (secret from --iscsi-chap-secret-file or the environment),
// against tgt's tape drive: it works in clear and gives the usual no-AME
// refusal; a missing secret is a clear refusal naming the settings, and
// the secret is never printed.
func TestDriveOverISCSI(t *testing.T) {
	dir := t.TempDir()
	srv := tgttest.Start(t)
	tg := srv.AddTape(t, "tapekey", 8)
	const secret = "tapekey-chap-secret"
	srv.CHAP(t, tg, "tk", secret, "", "")
	secretFile := filepath.Join(dir, "chap.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := strings.Replace(tg.Drive, "iscsi://", "iscsi://tk@", 1)

	out := ok(t, dir, "", "drive", "probe", addr, "--iscsi-chap-secret-file", secretFile, "--iscsi-initiator-name", "iqn.2026-12.io.tapeward.test:tapekey")
	if !strings.Contains(out, "no application-managed encryption: SECURITY PROTOCOL IN not supported") {
		t.Fatalf("probe of tgt's tape over iSCSI = %q, want the no-AME reason", out)
	}
	fails(t, 1, dir, "", []string{"drive", "status", addr}, "names CHAP user \"tk\" but no CHAP secret file is configured", "--iscsi-chap-secret-file")
	t.Setenv(dial.EnvCHAPSecretFile, secretFile)
	if out := ok(t, dir, "", "drive", "probe", addr); !strings.Contains(out, "no application-managed encryption") {
		t.Fatalf("probe with the secret file from %s = %q", dial.EnvCHAPSecretFile, out)
	}
	wrong := filepath.Join(dir, "wrong.secret")
	os.WriteFile(wrong, []byte("not-the-secret\n"), 0o600)
	r := fails(t, 1, dir, "", []string{"drive", "probe", addr, "--iscsi-chap-secret-file", wrong}, "authentication failed (check the CHAP user name and secret on both sides)")
	if strings.Contains(r.stderr, "not-the-secret") || strings.Contains(r.stderr, secret) {
		t.Fatalf("stderr shows a secret: %q", r.stderr)
	}
}

// TestDriveSetKeyOverISCSI: through the vtl's iSCSI target, tapekey loads
// a key (SECURITY PROTOCOL OUT over iSCSI), reads the status back and
// clears it; a drive LUN another initiator holds (its RESERVE(6)) is the
// usual "device busy", and free again once that initiator logs out.
func TestDriveSetKeyOverISCSI(t *testing.T) {
	dir := t.TempDir()
	v := testenv.StartVTL(t, vtlBin, dir, "--slots", "2", "--drives", "1", "--capacity", "16MiB", "--iscsi", "127.0.0.1:0")
	if out, err := exec.Command(vtlBin, "load", "--socket", v.Socket, "--slot", "1", "--drive", "0").CombinedOutput(); err != nil {
		t.Fatalf("vtl load: %v\n%s", err, out)
	}
	drive := v.ISCSIPrefix(t) + "1"

	kek, _, kekBytes := newKEK(t, dir, "kek.key")
	var nk storedKeyInfo
	if err := json.Unmarshal([]byte(ok(t, dir, "", "key", "new", "--kek", kek, "--json")), &nk); err != nil {
		t.Fatal(err)
	}
	out := ok(t, dir, "", "drive", "set-key", drive, "--stored", nk.StoredKey, "--kek", kek)
	if !strings.Contains(out, "key "+nk.Fingerprint+" loaded and verified") {
		t.Fatalf("set-key over iSCSI = %q", out)
	}
	if st := vtlStatus(t, v.Socket); !strings.Contains(st, "key "+nk.Fingerprint) {
		t.Fatalf("vtl status does not show key %s loaded:\n%s", nk.Fingerprint, st)
	}
	status := ok(t, dir, "", "drive", "status", drive)
	if !strings.Contains(status, "encryption encrypt, decryption mixed") || !strings.Contains(status, nk.Fingerprint) {
		t.Fatalf("drive status over iSCSI = %q", status)
	}
	noLeak(t, [][]byte{kekBytes}, out, status)

	a, err := iscsi.ParseAddress(drive)
	if err != nil {
		t.Fatal(err)
	}
	holder, err := iscsi.Dial(context.Background(), a, iscsi.Options{InitiatorName: "iqn.2026-12.io.tapeward.test:holder"})
	if err != nil {
		t.Fatal(err)
	}
	fails(t, 1, dir, "", []string{"drive", "clear", drive}, "device busy", drive, "RESERVATION CONFLICT")
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	if out := ok(t, dir, "", "drive", "clear", drive); !strings.Contains(out, "key cleared and verified") {
		t.Fatalf("clear over iSCSI = %q", out)
	}
	if st := vtlStatus(t, v.Socket); strings.Contains(st, nk.Fingerprint) {
		t.Fatalf("vtl still shows key %s after clear:\n%s", nk.Fingerprint, st)
	}
}
