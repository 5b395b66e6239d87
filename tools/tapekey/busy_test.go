package main

import (
	"strings"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
)

// TestDriveBusy: tapekey opens drives exclusively, like storaged, so it
// never sends commands to (or clears the key of) a drive a daemon holds
// (finding 3); the refusal names the device and who may hold it.
func TestDriveBusy(t *testing.T) {
	dir := t.TempDir()
	sock := startVTL(t, dir)
	drive0 := "vtl:" + sock + "#drive0"
	holder, err := vtlwire.DialOpts(sock, vtlwire.Hello{Unit: "drive0", Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"drive", "status", drive0}, {"drive", "clear", drive0}} {
		r := fails(t, 1, dir, "", args, "device busy: another storaged or tapekey has "+drive0+" open")
		if strings.Contains(r.stdout, "cleared") {
			t.Fatalf("tapekey %v on a busy drive printed %q", args, r.stdout)
		}
	}
	holder.Close()
	// Released when the holder's connection closes.
	ok(t, dir, "", "drive", "status", drive0)
}
