package catalog

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/tools/lib/bootstrap"
)

// TestBootstrapFromRows: a catalog job's rows give the bootstrap: its two
// volumes in order with their tape files, blocks and current wrapped
// keys, the dump's exact address; a dump that differs from the backed-up
// file, a file the job did not back up, or a job that failed is refused.
func TestBootstrapFromRows(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	const dumpPath = "/var/lib/tapeward/catalog-dump/tapeward.dump"
	dump := mrow(dumpPath, FileRegular, "", 5*1024)
	dump.Size, dump.StoredSize = 5000, 5000
	dump.Parts = []FilePart{{Part: 2, At: Address{Volume: "V00002", Block: 0, Offset: 0}, DataOffset: 3000}}
	dump.StreamOffset, dump.EndOffset = 5*1024, 8*1024
	job := f.storeJob(t, LevelFull, []FileRow{mrow("/var/lib/tapeward/catalog-dump/", FileDir, "", 0), dump}, nil)
	info := BootstrapDump{Path: dumpPath, Database: "tapeward", Size: dump.Size, SHA256: hex.EncodeToString(dump.SHA256)}

	bf, err := f.s.Bootstrap(ctx, job, JobOK, info)
	if err != nil {
		t.Fatal(err)
	}
	if bf.Job != job || bf.Status != "T" || bf.JobName != "nightly" || len(bf.Volumes) != 2 {
		t.Fatalf("bootstrap = %+v", bf)
	}
	v1, v2 := bf.Volumes[0], bf.Volumes[1]
	if v1.Name != "V00001" || v1.Sequence != 1 || v1.FirstFile != 2 || v1.LastFile != 2 || v1.LastBlock != 1 ||
		v2.Name != "V00002" || v2.Sequence != 2 || v2.FirstBlock != 7 || v2.LastBlock != 8 {
		t.Fatalf("volumes = %+v / %+v", v1, v2)
	}
	for _, v := range bf.Volumes {
		sk, err := f.s.VolumeKey(ctx, v.Name, "sd1")
		if err != nil {
			t.Fatal(err)
		}
		if v.Key == nil || v.Key.Stored != sk.Value || v.Key.KEKID != sk.KEKID || v.Key.Fingerprint != sk.Fingerprint || v.Key.Scheme != "v1" {
			t.Fatalf("volume %s key = %v, want the catalog's %v", v.Name, v.Key, sk)
		}
	}
	if at := bf.Dump.At; at != (bootstrap.Address{Volume: "V00001", File: 2, Block: 1, Offset: 1024}) {
		t.Fatalf("dump address = %+v", at)
	}
	// It marshals and parses back (a complete, valid bootstrap).
	data, err := bootstrap.Marshal(bf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bootstrap.Parse("x", data); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		d    BootstrapDump
		want string
	}{
		{"changed", BootstrapDump{Path: dumpPath, Size: dump.Size, SHA256: strings.Repeat("0", 64)}, "it changed before it was backed up"},
		{"size", BootstrapDump{Path: dumpPath, Size: 1, SHA256: info.SHA256}, "the dump made was 1 bytes"},
		{"missing", BootstrapDump{Path: "/elsewhere.dump", Size: 1, SHA256: info.SHA256}, "backed up no file /elsewhere.dump"},
	} {
		if _, err := f.s.Bootstrap(ctx, job, JobOK, c.d); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	failed, _ := f.backup(t, "nightly", "web1", idHome, LevelFull, 0)
	f.end(t, failed, JobError)
	if _, err := f.s.Bootstrap(ctx, failed, JobOK, info); err == nil || !strings.Contains(err.Error(), "ended E") {
		t.Errorf("failed job: err = %v", err)
	}
	if _, err := f.s.Bootstrap(ctx, job, JobError, info); err == nil || !strings.Contains(err.Error(), "ends T or W") {
		t.Errorf("status E asked: err = %v", err)
	}
	// No key material in the errors.
	_, err = f.s.Bootstrap(ctx, job, JobOK, BootstrapDump{Path: dumpPath, Size: 1, SHA256: info.SHA256})
	checkNoSecrets(t, "Bootstrap error", err, f.allStoredStrings(t)...)
}
