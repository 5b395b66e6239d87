package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi/dial"
	"github.com/tapeward/tapeward/storaged/scsi/iscsi/tgttest"
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
