package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// buildVTL builds the command into a temp dir.
func buildVTL(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "vtl")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func do(t *testing.T, c *vtlwire.Client, cdb []byte, dir scsi.Direction, data []byte) (scsi.Result, []byte) {
	t.Helper()
	cmd := &scsi.Command{CDB: cdb, Dir: dir, Data: data, Timeout: time.Minute}
	r, err := c.Do(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if dir == scsi.DirFromDevice {
		return r, data[:r.Transferred(cmd)]
	}
	return r, nil
}

func senseKey(r scsi.Result) string {
	if len(r.Sense) < 14 {
		return ""
	}
	return string([]byte{"0123456789ABCDEF"[r.Sense[2]&0xF], '/', "0123456789ABCDEF"[r.Sense[12]>>4], "0123456789ABCDEF"[r.Sense[12]&0xF], '/', "0123456789ABCDEF"[r.Sense[13]>>4], "0123456789ABCDEF"[r.Sense[13]&0xF]})
}

// TestServeBinary execs the built `vtl serve`, drives it through
// vtlwire.Dial and the panel subcommands, stops it with SIGTERM (the socket
// must go), and restarts it on the same directory (a power cycle).
func TestServeBinary(t *testing.T) {
	bin := buildVTL(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "vtl.sock")
	start := func() (*exec.Cmd, *bytes.Buffer) {
		var logBuf bytes.Buffer
		cmd := exec.Command(bin, "serve", "--dir", filepath.Join(dir, "lib"), "--socket", sock, "--slots", "3", "--drives", "2",
			"--capacity", "8MiB", "--personality", "drive1=no-ame", "--load-delay", "0s", "--trace",
			"--fault", "drive1:max_block=1MiB,max_transfer=2MiB")
		cmd.Stderr = &logBuf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for range 250 {
			// The socket file appears at bind, just before listen: wait
			// for a connection to succeed.
			if c, err := net.Dial("unix", sock); err == nil {
				c.Close()
				return cmd, &logBuf
			}
			time.Sleep(20 * time.Millisecond)
		}
		cmd.Process.Kill()
		t.Fatalf("vtl serve did not create its socket; log:\n%s", logBuf.String())
		return nil, nil
	}
	stop := func(cmd *exec.Cmd) {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("vtl serve exit: %v", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatal("vtl serve ignored SIGTERM")
		}
		if _, err := os.Stat(sock); !os.IsNotExist(err) {
			t.Fatalf("socket left behind: %v", err)
		}
	}
	srv, logBuf := start()
	defer func() {
		if srv.ProcessState == nil {
			srv.Process.Kill()
		}
	}()
	if out, err := exec.Command(bin, "load", "--socket", sock, "--slot", "2", "--drive", "0").CombinedOutput(); err != nil {
		t.Fatalf("vtl load: %v %s", err, out)
	}
	c, err := vtlwire.Dial(sock, "drive0")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := do(t, c, []byte{0, 0, 0, 0, 0, 0}, scsi.DirNone, nil)
	if senseKey(r) != "6/29/00" {
		t.Fatalf("first TUR: %s", senseKey(r))
	}
	key := bytes.Repeat([]byte{0xA7}, 32)
	p := append([]byte{0x00, 0x10, 0x00, 0x30, 0x40, 0x00, 0x02, 0x03, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x20}, key...)
	if r, _ := do(t, c, []byte{0xB5, 0x20, 0x00, 0x10, 0, 0, 0, 0, 0, 52, 0, 0}, scsi.DirToDevice, p); r.Status != 0 {
		t.Fatalf("SPOUT: %s", senseKey(r))
	}
	data := bytes.Repeat([]byte("vtl binary test "), 4096)
	if r, _ := do(t, c, []byte{0x0A, 0, 0x01, 0x00, 0x00, 0}, scsi.DirToDevice, data); r.Status != 0 {
		t.Fatalf("WRITE: %s", senseKey(r))
	}
	do(t, c, []byte{0x10, 0, 0, 0, 1, 0}, scsi.DirNone, nil)
	do(t, c, []byte{0x01, 0, 0, 0, 0, 0}, scsi.DirNone, nil)
	r, got := do(t, c, []byte{0x08, 2, 0x01, 0x00, 0x00, 0}, scsi.DirFromDevice, make([]byte, 65536))
	if r.Status != 0 || !bytes.Equal(got, data) {
		t.Fatalf("READ: %s, %d bytes", senseKey(r), len(got))
	}
	n1, err := vtlwire.Dial(sock, "drive1")
	if err != nil {
		t.Fatal(err)
	}
	do(t, n1, []byte{0, 0, 0, 0, 0, 0}, scsi.DirNone, nil)
	if r, _ := do(t, n1, []byte{0xA2, 0x20, 0, 0x20, 0, 0, 0, 0, 1, 0, 0, 0}, scsi.DirFromDevice, make([]byte, 256)); senseKey(r) != "5/20/00" {
		t.Fatalf("no-ame SPIN: %s", senseKey(r))
	}
	if _, err := vtlwire.Dial(sock, "drive7"); err == nil {
		t.Fatal("hello for a missing unit accepted")
	}
	// --fault: drive1's READ BLOCK LIMITS says 1 MiB, its hello 2 MiB.
	if r, got := do(t, n1, []byte{0x05, 0, 0, 0, 0, 0}, scsi.DirFromDevice, make([]byte, 6)); r.Status != 0 || !bytes.Equal(got, []byte{0x00, 0x10, 0x00, 0x00, 0x00, 0x01}) || n1.MaxTransfer() != 2<<20 {
		t.Fatalf("READ BLOCK LIMITS with max_block=1MiB: % X (%s), max transfer %d", got, senseKey(r), n1.MaxTransfer())
	}
	if out, err := exec.Command(bin, "fault", "--socket", sock, "drive1:none").CombinedOutput(); err != nil {
		t.Fatalf("vtl fault drive1:none: %v %s", err, out)
	}
	if _, got := do(t, n1, []byte{0x05, 0, 0, 0, 0, 0}, scsi.DirFromDevice, make([]byte, 6)); !bytes.Equal(got, []byte{0x00, 0x80, 0x00, 0x00, 0x00, 0x01}) {
		t.Fatalf("READ BLOCK LIMITS after vtl fault drive1:none: % X", got)
	}
	if out, err := exec.Command(bin, "fault", "--socket", sock, "drive1:position=sideways").CombinedOutput(); err == nil || !strings.Contains(string(out), `position fault "sideways"`) {
		t.Fatalf("a bad fault accepted: %v %s", err, out)
	}

	out, err := exec.Command(bin, "status", "--socket", sock, "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Drives []struct {
			Barcode     string `json:"barcode"`
			KeyLoaded   bool   `json:"key_loaded"`
			Fingerprint string `json:"key_fingerprint"`
			KIC         int    `json:"key_instance_counter"`
			Personality string `json:"personality"`
		} `json:"drives"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	if st.Drives[0].Barcode != "TW0002L6" || !st.Drives[0].KeyLoaded || len(st.Drives[0].Fingerprint) != 16 || st.Drives[0].KIC != 1 || st.Drives[1].Personality != "no-ame" {
		t.Fatalf("status: %s", out)
	}
	text, _ := exec.Command(bin, "status", "--socket", sock).Output()
	if !strings.Contains(string(text), "TW0002L6") || !strings.Contains(string(text), st.Drives[0].Fingerprint) {
		t.Fatalf("status text:\n%s", text)
	}
	c.Close()
	n1.Close()
	stop(srv)
	logs := logBuf.String()
	if !strings.Contains(logs, "SECURITY PROTOCOL OUT") || !strings.Contains(logs, "WRITE(6)") {
		t.Fatalf("trace missing opcode names:\n%s", logs)
	}
	if strings.Contains(strings.ToLower(logs), "a7a7a7a7") || strings.Contains(logs, string(key[:8])) {
		t.Fatal("key bytes in the trace log")
	}

	// Power cycle: same directory, cartridge still in drive0, key gone.
	srv, _ = start()
	c, err = vtlwire.Dial(sock, "drive0")
	if err != nil {
		t.Fatal(err)
	}
	r, _ = do(t, c, []byte{0, 0, 0, 0, 0, 0}, scsi.DirNone, nil)
	if senseKey(r) != "6/29/00" {
		t.Fatalf("after restart: %s", senseKey(r))
	}
	r, des := do(t, c, []byte{0xA2, 0x20, 0, 0x20, 0, 0, 0, 0, 1, 0, 0, 0}, scsi.DirFromDevice, make([]byte, 256))
	if r.Status != 0 || des[5] != 0 || des[6] != 0 || des[11] != 0 {
		t.Fatalf("DES after restart: % X", des)
	}
	r, _ = do(t, c, []byte{0x08, 2, 0x01, 0x00, 0x00, 0}, scsi.DirFromDevice, make([]byte, 65536))
	if senseKey(r) != "7/74/01" {
		t.Fatalf("encrypted read without a key after restart: %s", senseKey(r))
	}
	c.Close()
	if out, err := exec.Command(bin, "unload", "--socket", sock, "--drive", "0").CombinedOutput(); err != nil || !strings.Contains(string(out), "slot 2") {
		t.Fatalf("vtl unload: %v %s", err, out)
	}
	stop(srv)
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"2GiB": 2 << 30, "64MiB": 64 << 20, "4M": 4 << 20, "1000000": 1000000, "1GB": 1e9} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1GiB", "0"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
	if m, err := parsePersonalities([]string{"drive1=no-ame,drive0=hp"}); err != nil || m[1] != "no-ame" || m[0] != "hp" {
		t.Errorf("parsePersonalities: %v %v", m, err)
	}
	if _, err := parsePersonalities([]string{"drive1=sony"}); err == nil {
		t.Error("unknown personality accepted")
	}
}

// TestServeISCSIBinary execs `vtl serve` with both the unix socket and
// the iSCSI target (CHAP from a secret file, an allow-list) and lists the
// target with libiscsi's iscsi-ls while the panel answers on the socket.
func TestServeISCSIBinary(t *testing.T) {
	ls, err := exec.LookPath("iscsi-ls")
	if err != nil {
		t.Fatal("iscsi-ls not found: apt-get install -y libiscsi-bin")
	}
	bin := buildVTL(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "vtl.sock")
	secretFile := filepath.Join(dir, "chap.secret")
	const secret = "a-long-chap-secret-42"
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{
		{"--iscsi-allow", "iqn.2026-12.test:ok"},
		{"--iscsi", "127.0.0.1:0", "--iscsi-chap-user", "backup"},
		{"--iscsi-advertise", "192.0.2.7:3260"},
		{"--iscsi", "127.0.0.1:0", "--iscsi-advertise", "192.0.2.7"},
		{"--iscsi", "127.0.0.1:0", "--iscsi-chap-user", "backup", "--iscsi-chap-secret-file", secretFile, "--iscsi-chap-target-user", "vtl"},
		{"--iscsi", "127.0.0.1:0", "--iscsi-chap-user", "backup", "--iscsi-chap-secret-file", secretFile, "--iscsi-chap-target-user", "vtl", "--iscsi-chap-target-secret-file", secretFile},
	} {
		args := append([]string{"serve", "--dir", filepath.Join(dir, "lib"), "--socket", sock}, bad...)
		if out, err := exec.Command(bin, args...).CombinedOutput(); err == nil {
			t.Fatalf("vtl %v accepted:\n%s", args, out)
		}
	}
	cmd := exec.Command(bin, "serve", "--dir", filepath.Join(dir, "lib"), "--socket", sock, "--slots", "3", "--drives", "2",
		"--capacity", "8MiB", "--iscsi", "127.0.0.1:0", "--iscsi-allow", "iqn.2026-12.test:ok",
		"--iscsi-chap-user", "backup", "--iscsi-chap-secret-file", secretFile, "--trace")
	logs := &testenv.LogBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	var portal string
	testenv.WaitFor(t, "the iscsi= address in the vtl log", func() bool {
		if _, rest, ok := strings.Cut(logs.String(), " iscsi="); ok {
			portal, _, _ = strings.Cut(rest, " ")
		}
		return portal != ""
	})
	out, err := exec.Command(ls, "-i", "iqn.2026-12.test:ok", "-s", "iscsi://backup%"+secret+"@"+portal+"/").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Lun:0    Type:MEDIA_CHANGER") || !strings.Contains(string(out), "Lun:2    Type:SEQUENTIAL_ACCESS") {
		t.Fatalf("iscsi-ls: %v\n%s", err, out)
	}
	if out, err := exec.Command(ls, "-i", "iqn.2026-12.test:stranger", "-s", "iscsi://backup%"+secret+"@"+portal+"/").CombinedOutput(); err == nil {
		t.Fatalf("iscsi-ls from an initiator not in --iscsi-allow succeeded:\n%s", out)
	}
	if out, err := exec.Command(bin, "status", "--socket", sock).CombinedOutput(); err != nil || !strings.Contains(string(out), "drive 1") {
		t.Fatalf("status over the socket beside iSCSI: %v\n%s", err, out)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("vtl serve exit: %v\n%s", err, logs)
	}
	l := logs.String()
	if !strings.Contains(l, `msg="iSCSI login" initiator=iqn.2026-12.test:ok`) || !strings.Contains(l, "status=0x0202") {
		t.Errorf("logins and the refusal are not logged:\n%s", l)
	}
	if strings.Contains(l, secret) {
		t.Errorf("the CHAP secret is in the log:\n%s", l)
	}
	if !strings.Contains(l, `msg=cdb op=INQUIRY`) || !strings.Contains(l, "unit=drive1") {
		t.Errorf("--trace does not log the CDBs that came over iSCSI:\n%s", l)
	}
}
