package main

import (
	"encoding/json"
	"fmt"
	"github.com/tapeward/tapeward/tools/lib/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// startVTL starts a vtl with two drives (drive1 without application-
// managed encryption), loads slot 1 into drive0 and returns its socket.
func startVTL(t *testing.T, dir string) string {
	t.Helper()
	v := testenv.StartVTL(t, vtlBin, dir, "--slots", "4", "--drives", "2", "--capacity", "64MiB", "--personality", "drive1=no-ame")
	out, err := exec.Command(vtlBin, "load", "--socket", v.Socket, "--slot", "1", "--drive", "0").CombinedOutput()
	if err != nil {
		t.Fatalf("vtl load: %v\n%s", err, out)
	}
	return v.Socket
}

// vtlStatus returns `vtl status` for the library at sock.
func vtlStatus(t *testing.T, sock string) string {
	t.Helper()
	out, err := exec.Command(vtlBin, "status", "--socket", sock).CombinedOutput()
	if err != nil {
		t.Fatalf("vtl status: %v\n%s", err, out)
	}
	return string(out)
}

func TestDriveCommandsAgainstVTL(t *testing.T) {
	dir := t.TempDir()
	sock := startVTL(t, dir)
	drive0 := "vtl:" + sock + "#drive0"
	drive1 := "vtl:" + sock + "#drive1"

	// probe: the AME drive reports the AES-256-GCM index from its
	// capabilities page; the no-AME drive says why not.
	var probe struct {
		AME            bool   `json:"ame"`
		AlgorithmIndex int    `json:"algorithm_index"`
		MaxUKAD        int    `json:"max_ukad_bytes"`
		Reason         string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(ok(t, dir, "", "drive", "probe", drive0, "--json")), &probe); err != nil {
		t.Fatal(err)
	}
	if !probe.AME || probe.AlgorithmIndex == 0 || probe.MaxUKAD != 32 {
		t.Fatalf("probe drive0 = %+v, want AME with an algorithm index and U-KAD ≤ 32", probe)
	}
	out := ok(t, dir, "", "drive", "probe", drive1)
	if !strings.Contains(out, "no application-managed encryption: SECURITY PROTOCOL IN not supported (ILLEGAL REQUEST 20/00)") {
		t.Fatalf("probe drive1 = %q, want the no-AME reason", out)
	}

	// set-key from a stored (wrapped) string: the drive reports
	// encrypt + mixed, and vtl shows the same fingerprint loaded.
	kek, _, kekBytes := newKEK(t, dir, "kek.key")
	var nk storedKeyInfo
	if err := json.Unmarshal([]byte(ok(t, dir, "", "key", "new", "--kek", kek, "--json")), &nk); err != nil {
		t.Fatal(err)
	}
	volKeyHex := strings.TrimSpace(ok(t, dir, nk.StoredKey+"\n", "unwrap", "--kek", kek))
	var loaded struct {
		Fingerprint string `json:"fingerprint"`
		UKAD        string `json:"ukad"`
		KICBefore   uint32 `json:"key_instance_counter_before"`
		Status      *struct {
			EncryptionMode string `json:"encryption_mode"`
			DecryptionMode string `json:"decryption_mode"`
			KIC            uint32 `json:"key_instance_counter"`
		} `json:"status"`
	}
	setOut := ok(t, dir, "", "drive", "set-key", drive0, "--stored", nk.StoredKey, "--kek", kek, "--json")
	if err := json.Unmarshal([]byte(setOut), &loaded); err != nil {
		t.Fatal(err)
	}
	if loaded.Fingerprint != nk.Fingerprint || loaded.Status == nil ||
		loaded.Status.EncryptionMode != "encrypt" || loaded.Status.DecryptionMode != "mixed" ||
		loaded.Status.KIC == loaded.KICBefore || loaded.UKAD != nk.Fingerprint {
		t.Fatalf("set-key reported %s; want fingerprint %s, encrypt+mixed, a new key instance counter, U-KAD = fingerprint", setOut, nk.Fingerprint)
	}
	if st := vtlStatus(t, sock); !strings.Contains(st, "key "+nk.Fingerprint) {
		t.Fatalf("vtl status does not show key %s loaded:\n%s", nk.Fingerprint, st)
	}
	status := ok(t, dir, "", "drive", "status", drive0)
	if !strings.Contains(status, "encryption encrypt, decryption mixed") || !strings.Contains(status, nk.Fingerprint) {
		t.Fatalf("drive status = %q", status)
	}
	noLeak(t, [][]byte{kekBytes, mustHex(t, volKeyHex)}, setOut, status, vtlStatus(t, sock))

	// clear: verified by read-back, and vtl agrees no key is loaded.
	out = ok(t, dir, "", "drive", "clear", drive0)
	if !strings.Contains(out, "key cleared and verified") {
		t.Fatalf("clear = %q", out)
	}
	if st := vtlStatus(t, sock); strings.Contains(st, nk.Fingerprint) {
		t.Fatalf("vtl still shows key %s after clear:\n%s", nk.Fingerprint, st)
	}

	// set-key from a key file holding the hex key.
	keyFile := filepath.Join(dir, "vol.key")
	if err := os.WriteFile(keyFile, []byte(volKeyHex+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = ok(t, dir, "", "drive", "set-key", drive0, "--key-file", keyFile)
	if !strings.Contains(out, "key "+nk.Fingerprint+" loaded and verified") {
		t.Fatalf("set-key --key-file = %q", out)
	}
	ok(t, dir, "", "drive", "clear", drive0)

	// Bad input: each names the thing and loads nothing.
	other, otherID, _ := newKEK(t, dir, "other.key")
	fails(t, 1, dir, "", []string{"drive", "set-key", drive0, "--stored", nk.StoredKey, "--kek", other},
		"not wrapped with KEK "+otherID)
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte(volKeyHex[:40]+"\n"), 0o600)
	fails(t, 1, dir, "", []string{"drive", "set-key", drive0, "--key-file", short}, "32")
	open := filepath.Join(dir, "open.key")
	os.WriteFile(open, []byte(volKeyHex+"\n"), 0o644)
	fails(t, 1, dir, "", []string{"drive", "set-key", drive0, "--key-file", open}, "chmod 600")
	fails(t, 1, dir, "", []string{"drive", "set-key", drive1, "--key-file", keyFile},
		"no application-managed encryption")
	fails(t, 1, dir, "", []string{"drive", "status", drive1}, "no application-managed encryption")
	fails(t, 1, dir, "", []string{"drive", "probe", "vtl:" + sock + "#drive7"}, "drive7")
	fails(t, 1, dir, "", []string{"drive", "probe", "vtl:" + sock + "#changer"}, "medium changer")
	fails(t, 1, dir, "", []string{"drive", "probe", "tape0"}, "/dev/sgN")
	fails(t, 2, dir, "", []string{"drive", "set-key", drive0}, "--key-file")
	if st := vtlStatus(t, sock); !strings.Contains(st, "no key") || strings.Contains(st, nk.Fingerprint) {
		t.Fatalf("a failed set-key left a key loaded:\n%s", st)
	}

	// Right after a load the drive is "becoming ready" (vtl simulates the
	// load time): next-block waits for it instead of failing.
	vtlBin := vtlBin
	for _, args := range [][]string{{"unload", "--drive", "0"}, {"load", "--slot", "2", "--drive", "0"}} {
		if out, err := exec.Command(vtlBin, append(args, "--socket", sock)...).CombinedOutput(); err != nil {
			t.Fatalf("vtl %v: %v\n%s", args, err, out)
		}
	}
	if out := ok(t, dir, "", "drive", "next-block", drive0); !strings.Contains(out, "not a logical block") {
		t.Fatalf("next-block on a blank tape right after a load: %q", out)
	}

	// No cartridge: the drive's 02/3A/00 is said plainly.
	unload := exec.Command(vtlBin, "unload", "--socket", sock, "--drive", "0")
	if out, err := unload.CombinedOutput(); err != nil {
		t.Fatalf("vtl unload: %v\n%s", err, out)
	}
	fails(t, 1, dir, "", []string{"drive", "next-block", drive0}, "no cartridge in drive")
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b := make([]byte, len(s)/2)
	if _, err := fmt.Sscanf(s, "%x", &b); err != nil {
		t.Fatalf("not hex: %v", err)
	}
	return b
}
