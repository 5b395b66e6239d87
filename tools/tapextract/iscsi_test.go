package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi/iscsi/tgttest"
)

// TestLibraryOverISCSI: tapextract takes iscsi:// addresses for the
// changer and the drive (tgt's SMC changer and SSC drive, a third-party
// target): it inventories the library, loads each cartridge through the
// changer, reads it over iSCSI (blank tapes here) and returns it.
func TestLibraryOverISCSI(t *testing.T) {
	srv := tgttest.Start(t)
	lib := srv.AddLibrary(t, "tapextract", tgttest.Library{Slots: 2, SizeMB: 8})
	out, err := exec.Command(bins["tapextract"], "volumes", "--changer", lib.Changer, "--drive", lib.Drive,
		"--iscsi-initiator-name", "iqn.2026-12.io.tapeward.test:tapextract").CombinedOutput()
	if err != nil {
		t.Fatalf("tapextract volumes over iSCSI: %v\n%s", err, out)
	}
	for _, want := range []string{"TWL001", "TWL002", "blank tape"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("tapextract volumes over iSCSI printed\n%s\nwant %q", out, want)
		}
	}
	t.Logf("%s", out)
}
