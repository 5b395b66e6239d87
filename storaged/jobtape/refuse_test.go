package jobtape

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// TestLyingDrive: a drive that accepts the key but writes clear blocks
// (the vtl's "lying" personality) fails the job at the first block of
// the part (tapeio.VerifyFirstBlock, invariant 2); no record is
// reported.
func TestLyingDrive(t *testing.T) {
	lib := newLib(t, 1, 1, 64<<20, "lying")
	v := mount(t, lib, 1, 0, "LIAR01L8", true, 64<<10)
	j := runJob(t, []*vol{v}, makeFiles(6, 200), Options{BlockSize: 64 << 10})
	var je *Error
	if !scsi.IsNotEncrypted(j.err) || !errors.As(j.err, &je) || je.Volume != "LIAR01L8" {
		t.Fatalf("error %v: want a *jobtape.Error on LIAR01L8 wrapping a not-encrypted error", j.err)
	}
	if msg := j.err.Error(); strings.Contains(msg, string(v.key)) || strings.Contains(msg, hex.EncodeToString(v.key)) {
		t.Fatal("the error carries the key")
	}
	if n := len(j.reported()); n != 0 {
		t.Fatalf("%d records reported from a drive that writes clear", n)
	}
}

// TestNotPax: a stream that is not pax is refused, naming the volume,
// tape file and stream byte; nothing is reported.
func TestNotPax(t *testing.T) {
	lib := newLib(t, 1, 1, 64<<20)
	v := mount(t, lib, 1, 0, "TW0007L8", false, 64<<10)
	reported := 0
	jw, err := New(v.d, JobInfo{JobID: 7, Volume: v.name}, Options{BlockSize: 64 << 10,
		OnFlushed: func(Flushed) { reported++ },
		NextVolume: func(context.Context, error) (*scsi.Device, string, error) {
			return nil, "", errors.New("no next volume")
		}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = jw.Write([]byte(strings.Repeat("not a tar header ", 100)))
	if err == nil || !strings.Contains(err.Error(), "volume TW0007L8 tape file 1") || !strings.Contains(err.Error(), "not pax at byte 0") {
		t.Fatalf("error %v", err)
	}
	if _, err := jw.Close(); err == nil {
		t.Fatal("Close after a refused stream succeeded")
	}
	if reported != 0 {
		t.Fatalf("%d batches reported", reported)
	}
}
