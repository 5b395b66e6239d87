package iscsi

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	ini "github.com/tapeward/tapeward/storaged/scsi/iscsi"
)

// iscsi-ls (libiscsi-bin) discovers the target with SendTargets, logs in
// and lists the LUNs with their device types: the changer at LUN 0, the
// drives after it.
func TestIscsiLs(t *testing.T) {
	ls := need(t, "iscsi-ls", "libiscsi-bin")
	w := newWorld(t, nil)
	out, err := exec.Command(ls, "-s", "iscsi://"+w.addr+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("iscsi-ls: %v\n%s", err, out)
	}
	for _, want := range []string{"Target:" + DefaultName + " Portal:" + w.addr + ",1",
		"Lun:0    Type:MEDIA_CHANGER", "Lun:1    Type:SEQUENTIAL_ACCESS", "Lun:2    Type:SEQUENTIAL_ACCESS"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("iscsi-ls output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "Lun:3") {
		t.Errorf("iscsi-ls lists a LUN the library does not have:\n%s", out)
	}
	if !strings.Contains(w.logs.String(), `msg="iSCSI login" initiator=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-ls`) {
		t.Errorf("login not logged:\n%s", w.logs)
	}
}

// iscsi-inq reads the standard INQUIRY and the VPD pages of the changer
// and a drive.
func TestIscsiInq(t *testing.T) {
	inq := need(t, "iscsi-inq", "libiscsi-bin")
	w := newWorld(t, nil)
	for _, c := range []struct {
		lun  int
		args []string
		want []string
	}{
		{0, nil, []string{"Peripheral Device Type:MEDIA_CHANGER", "Vendor:IBM", "Removable:1"}},
		{1, nil, []string{"Peripheral Device Type:SEQUENTIAL_ACCESS", "Product:ULT3580-TD6"}},
		{1, []string{"-e", "1", "-c", "0"}, []string{"0x80", "0x83"}},
		{2, []string{"-e", "1", "-c", "128"}, []string{"TWDRV00001"}},
		{1, []string{"-e", "1", "-c", "131"}, []string{"Designator"}},
	} {
		args := append(append([]string{}, c.args...), w.url("", c.lun))
		out, err := exec.Command(inq, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("iscsi-inq %v: %v\n%s", args, err, out)
		}
		for _, want := range c.want {
			if !strings.Contains(string(out), want) {
				t.Errorf("iscsi-inq %v lacks %q:\n%s", args, want, out)
			}
		}
	}
	// A LUN past the last drive has no logical unit: INQUIRY answers
	// peripheral qualifier 3 and other commands 05/25/00.
	j := startJudge(t, w.url("", 0), "iqn.2026-12.test:judge")
	if j.first != "connected" {
		t.Fatal(j.first)
	}
	j.do("lun 7")
	if r := j.cdb(inquiry(36), "r", 36, ""); !strings.HasPrefix(r, "status=0 ") || !strings.Contains(r, "data=7f") {
		t.Errorf("INQUIRY of LUN 7: %s, want peripheral qualifier 3 (0x7f)", r)
	}
	if r := j.cdb(tur(), "n", 0, ""); !strings.Contains(r, "sense=5/2500") {
		t.Errorf("TEST UNIT READY on LUN 7: %s, want 5/25/00", r)
	}
	// Residuals: an allocation length above the expected transfer length
	// is an overflow; less data than expected an underflow.
	j.do("lun 1")
	if r := j.cdb(inquiry(96), "r", 36, ""); !strings.HasPrefix(r, "status=0 ") || !strings.Contains(r, "resid=-60 n=36 ") {
		t.Errorf("INQUIRY of 96 bytes with 36 expected: %s, want an overflow of 60", r)
	}
	r := j.cdb(inquiry(255), "r", 255, "")
	var resid, n int
	if _, err := fmt.Sscanf(r[strings.Index(r, "resid="):], "resid=%d n=%d", &resid, &n); err != nil || resid <= 0 || resid+n != 255 {
		t.Errorf("INQUIRY of 255 bytes: %s, want an underflow of 255 minus the data", r)
	}
}

// The data path through libiscsi: a key set with SECURITY PROTOCOL OUT,
// 1 MiB blocks written with R2T (and with immediate/unsolicited data and
// CRC32C header digests), read back in Data-In PDUs, residuals, and the
// data unreadable once the key is cleared.
func TestLibiscsiEncryptedWriteRead(t *testing.T) {
	for _, opts := range [][]string{{"r2t"}, {"crc32c"}} {
		t.Run(strings.Join(opts, ","), func(t *testing.T) {
			w := newWorld(t, nil)
			if err := w.lib.PanelLoad(1, 0); err != nil {
				t.Fatal(err)
			}
			j := startJudge(t, w.url("", 1), "iqn.2026-12.test:judge", opts...)
			if j.first != "connected" {
				t.Fatal(j.first)
			}
			for range 100 {
				if r := j.cdb(tur(), "n", 0, ""); strings.HasPrefix(r, "status=0 ") {
					break
				}
			}
			key := make([]byte, 32)
			for i := range key {
				key[i] = byte(i + 1)
			}
			p := sde(2, 3, key)
			j.must(spoutCDB(len(p)), "w", len(p), fmt.Sprintf("%x", p))
			const n = 1 << 20
			for i := range 3 {
				j.must(write6(n), "w", n, fmt.Sprintf("p%d", i))
			}
			j.must(wfm(1), "n", 0, "")
			j.must(rewind(), "n", 0, "")
			for i := range 3 {
				r := j.must(read6(n), "r", n, "")
				if want := fmt.Sprintf("resid=0 n=%d data=%s", n, fnv(pat(n, i))); !strings.Contains(r, want) {
					t.Fatalf("block %d read back: %s, want %s", i, r, want)
				}
			}
			// A filemark: CHECK CONDITION with the whole length as residual.
			if r := j.cdb(read6(n), "r", n, ""); !strings.HasPrefix(r, "status=2 sense=0/0001") {
				t.Fatalf("READ at the filemark: %s", r)
			}
			// A short block into a larger buffer: residual underflow.
			j.must(write6(1000), "w", 1000, "p7")
			j.must([]byte{0x11, 0x00, 0xff, 0xff, 0xff, 0}, "n", 0, "") // SPACE back over it
			r := j.must(read6(4096), "r", 4096, "")
			if want := fmt.Sprintf("resid=3096 n=1000 data=%s", fnv(pat(1000, 7))); !strings.Contains(r, want) {
				t.Fatalf("short block: %s, want %s", r, want)
			}
			// No key: the encrypted blocks are unreadable.
			p = sde(0, 0, nil)
			j.must(spoutCDB(len(p)), "w", len(p), fmt.Sprintf("%x", p))
			j.must(rewind(), "n", 0, "")
			if r := j.cdb(read6(n), "r", n, ""); !strings.HasPrefix(r, "status=2 sense=7/74") {
				t.Fatalf("READ of an encrypted block without the key: %s, want 7/74/xx", r)
			}
			if strings.Contains(w.logs.String(), fmt.Sprintf("%x", key)) {
				t.Fatal("key material in the logs")
			}
		})
	}
}

const chapSecret = "correct-horse-battery"

// CHAP: the right secret logs in; a wrong one or none is refused with
// "authentication failed", and the secret is never logged.
func TestCHAP(t *testing.T) {
	ls := need(t, "iscsi-ls", "libiscsi-bin")
	w := newWorld(t, func(c *Config) { c.CHAPUser, c.CHAPSecret = "backup", []byte(chapSecret) })
	out, err := exec.Command(ls, "-s", "iscsi://backup%"+chapSecret+"@"+w.addr+"/").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Lun:1    Type:SEQUENTIAL_ACCESS") {
		t.Fatalf("iscsi-ls with CHAP: %v\n%s", err, out)
	}
	for _, cred := range []string{"backup%wrong-secret-123@", "intruder%" + chapSecret + "@", ""} {
		j := startJudge(t, w.url(cred, 1), "iqn.2026-12.test:judge")
		if !strings.HasPrefix(j.first, "error:") || !strings.Contains(strings.ToLower(j.first), "auth") {
			t.Errorf("login with %q: %q, want an authentication failure", cred, j.first)
		}
	}
	logs := w.logs.String()
	if n := strings.Count(logs, `msg="iSCSI login refused"`); n != 3 || !strings.Contains(logs, "status=0x0201") {
		t.Errorf("want 3 refusals with status 0x0201 in the log:\n%s", logs)
	}
	if strings.Contains(logs, chapSecret) || strings.Contains(logs, "wrong-secret") {
		t.Errorf("a secret is in the log:\n%s", logs)
	}
}

// The allow-list: a listed initiator logs in, another is refused with
// the authorization-failure status.
func TestAllowList(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.Allow = []string{"iqn.2026-12.test:allowed"} })
	if j := startJudge(t, w.url("", 1), "iqn.2026-12.test:allowed"); j.first != "connected" {
		t.Fatalf("allowed initiator: %s", j.first)
	}
	j := startJudge(t, w.url("", 1), "iqn.2026-12.test:stranger")
	if !strings.HasPrefix(j.first, "error:") || !strings.Contains(strings.ToLower(j.first), "author") {
		t.Fatalf("stranger: %q, want an authorization failure", j.first)
	}
	if !strings.Contains(w.logs.String(), "status=0x0202") {
		t.Errorf("refusal not logged with 0x0202:\n%s", w.logs)
	}
}

// Two initiators on one drive: RESERVE(6) from one gives the other
// RESERVATION CONFLICT (INQUIRY still answers); RELEASE, the holder's
// logout and a LUN reset end the reservation; the reset is a unit
// attention for the other session.
func TestTwoInitiatorsReservation(t *testing.T) {
	w := newWorld(t, nil)
	a := startJudge(t, w.url("", 1), "iqn.2026-12.test:a")
	b := startJudge(t, w.url("", 1), "iqn.2026-12.test:b")
	if a.first != "connected" || b.first != "connected" {
		t.Fatal(a.first, b.first)
	}
	a.must(reserve6(), "n", 0, "")
	if r := b.cdb(tur(), "n", 0, ""); !strings.HasPrefix(r, "status=24 ") {
		t.Fatalf("TUR from b while a holds the drive: %s, want status 24 (RESERVATION CONFLICT)", r)
	}
	b.must(inquiry(36), "r", 36, "")
	a.must(release6(), "n", 0, "")
	b.must(reserve6(), "n", 0, "")
	if r := a.cdb(reserve6(), "n", 0, ""); !strings.HasPrefix(r, "status=24 ") {
		t.Fatalf("RESERVE from a while b holds the drive: %s", r)
	}
	// a resets the LUN: b's reservation goes, b sees 06/29/00.
	if r := a.do("reset"); r != "tmf=0" {
		t.Fatalf("LUN reset: %s", r)
	}
	if r := b.cdb(tur(), "n", 0, ""); !strings.Contains(r, "sense=6/2900") {
		t.Fatalf("b after a's LUN reset: %s, want 6/29/00", r)
	}
	a.must(reserve6(), "n", 0, "")
	a.close() // logout: the nexus ends, the reservation with it
	b.must(reserve6(), "n", 0, "")
}

// --iscsi-advertise: SendTargets reports the configured addresses (a
// target behind NAT) instead of the one the initiator connected to, to
// libiscsi's iscsi-ls and to the project's initiator alike.
func TestAdvertisedAddresses(t *testing.T) {
	ls := need(t, "iscsi-ls", "libiscsi-bin")
	adv := []string{"192.0.2.7:3260", "[2001:db8::7]:3260"}
	w := newWorld(t, func(c *Config) { c.Advertise = adv })
	out, err := exec.Command(ls, "iscsi://"+w.addr+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("iscsi-ls: %v\n%s", err, out)
	}
	if want := "Target:" + DefaultName + " Portal:192.0.2.7:3260,1"; !strings.Contains(string(out), want) || strings.Contains(string(out), w.addr) {
		t.Fatalf("iscsi-ls printed\n%s\nwant %q and not the connected-to %s", out, want, w.addr)
	}
	ts, err := ini.Discover(context.Background(), w.addr, ini.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Name != DefaultName || fmt.Sprint(ts[0].Portals) != "[192.0.2.7:3260,1 [2001:db8::7]:3260,1]" {
		t.Fatalf("Discover = %+v", ts)
	}
}
