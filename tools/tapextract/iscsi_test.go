package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi/iscsi/tgttest"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// TestLibraryOverISCSI: tapextract takes iscsi:// addresses for the
// changer and the drive (tgt's SMC changer and SSC drive, a third-party
// target): it inventories the library, loads each cartridge through the
// changer, reads it over iSCSI (blank tapes here) and returns it. Given
// only the changer, it finds the drive among the target's LUNs (tgt's
// LUN 0 is a controller, the changer is LUN 2, the drive LUN 1).
func TestLibraryOverISCSI(t *testing.T) {
	srv := tgttest.Start(t)
	lib := srv.AddLibrary(t, "tapextract", tgttest.Library{Slots: 2, SizeMB: 8})
	initiator := []string{"--iscsi-initiator-name", "iqn.2026-12.io.tapeward.test:tapextract"}
	for _, drive := range [][]string{{"--drive", lib.Drive}, nil} {
		argv := append(append([]string{"volumes", "--changer", lib.Changer}, drive...), initiator...)
		out, err := exec.Command(bins["tapextract"], argv...).CombinedOutput()
		if err != nil {
			t.Fatalf("tapextract %s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		for _, want := range []string{"TWL001", "TWL002", "blank tape"} {
			if !strings.Contains(string(out), want) {
				t.Fatalf("tapextract %s printed\n%s\nwant %q", strings.Join(argv, " "), out, want)
			}
		}
		if found := "tapextract: drive " + lib.Drive + " ("; drive == nil && !strings.Contains(string(out), found) {
			t.Fatalf("tapextract with no --drive printed\n%s\nwant %q", out, found)
		}
		t.Logf("%s", out)
	}
}

// TestISCSIDriveFoundBySerial: with a vtl's iSCSI target (changer LUN 0,
// drives LUN 1 and 2, whose serial numbers the changer reports), the
// drive of --drive-index N is the LUN with that element's serial.
func TestISCSIDriveFoundBySerial(t *testing.T) {
	dir := t.TempDir()
	v := testenv.StartVTL(t, bins["vtl"], dir, "--slots", "2", "--drives", "2", "--capacity", "16MiB", "--iscsi", "127.0.0.1:0")
	target := v.ISCSIPrefix(t)
	for idx, lun := range map[string]string{"": "1", "0": "1", "1": "2"} {
		argv := []string{"volumes", "--changer", target + "0", "--iscsi-initiator-name", "iqn.2026-12.io.tapeward.test:tapextract"}
		if idx != "" {
			argv = append(argv, "--drive-index", idx)
		}
		out, err := exec.Command(bins["tapextract"], argv...).CombinedOutput()
		if err != nil {
			t.Fatalf("tapextract %s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		if found := "tapextract: drive " + target + lun + " ("; !strings.Contains(string(out), found) || !strings.Contains(string(out), "TW0002L6") {
			t.Fatalf("tapextract %s printed\n%s\nwant %q and the inventory", strings.Join(argv, " "), out, found)
		}
	}
}
