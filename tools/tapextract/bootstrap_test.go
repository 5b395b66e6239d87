package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/jobtape"
	"github.com/tapeward/tapeward/tools/lib/bootstrap"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// TestBootstrapExtract: a catalog dump backed up across two encrypted
// volumes is extracted with nothing but the bootstrap file (its wrapped
// keys), the KEK and the library: no crypto cache, no keys file. The
// extracted dump's size and SHA-256 are checked against the bootstrap's.
func TestBootstrapExtract(t *testing.T) {
	w := newWorld(t, "20MiB")
	src := filepath.Join(w.dir, "src")
	dumpRel := "var/lib/tapeward/catalog-dump/tapeward.dump"
	dump := make([]byte, 24<<20)
	if _, err := rand.Read(dump); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Join(src, dumpRel)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, dumpRel), dump, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "var/lib/tapeward/other"), []byte("not the dump"), 0o600); err != nil {
		t.Fatal(err)
	}
	ks := map[int]tapeKey{1: w.v1Key(), 2: w.v1Key()}
	tp := w.openTapes(func(slot int) tapeKey { return ks[slot] })
	var placed []jobtape.Placed
	tp.placed = &placed
	sum := tp.backup(57, src, 1, 2)
	tp.close()
	if len(sum.Parts) != 2 {
		t.Fatalf("the dump should span two volumes: %+v", sum)
	}

	// The bootstrap, as the director writes it after the catalog job.
	h := sha256.Sum256(dump)
	bf := &bootstrap.File{Format: bootstrap.Format, Job: 57, JobName: "BackupCatalog", Status: "T", Written: time.Now().UTC().Truncate(time.Second),
		Dump: bootstrap.Dump{Path: "/" + dumpRel, Database: "tapeward", Size: int64(len(dump)), SHA256: hex.EncodeToString(h[:])}}
	for _, p := range placed {
		if p.Record.Path == dumpRel {
			bf.Dump.At = bootstrap.Address{Volume: p.Address.Volume, File: int(p.Address.TapeFile), Block: p.Address.Block, Offset: p.Address.Offset}
		}
	}
	if bf.Dump.At.Volume == "" {
		t.Fatalf("no placed record for %s", dumpRel)
	}
	for i, p := range sum.Parts {
		slot := i + 1
		k := ks[slot]
		bf.Volumes = append(bf.Volumes, bootstrap.Volume{Name: p.Volume, Barcode: barcode(slot), Sequence: p.VolumeSeq,
			FirstFile: int(p.TapeFile), LastFile: int(p.TapeFile), FirstBlock: int64(p.FirstBlock), LastBlock: int64(p.LastBlock),
			Key: &bootstrap.Key{Stored: k.stored.Value, Scheme: string(k.stored.Scheme), KEKID: k.stored.KEKID, Fingerprint: keys.Fingerprint(k.drive)}})
	}
	bsrDir := filepath.Join(w.dir, "bsr")
	bsr, err := bootstrap.WriteDir(bsrDir, bf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(w.cache); !os.IsNotExist(err) {
		t.Fatalf("the test must run with no crypto cache: %v", err)
	}

	to := filepath.Join(w.dir, "restore")
	out := w.ok(args([]string{"extract", "--bootstrap", filepath.Join(bsrDir, bootstrap.LatestName), "--kek", w.kekPath, "--to", to}, w.lib())...)
	got, err := os.ReadFile(filepath.Join(to, dumpRel))
	if err != nil || !bytes.Equal(got, dump) {
		t.Fatalf("the extracted dump differs from the original (%d bytes read, err %v)", len(got), err)
	}
	if _, err := os.Stat(filepath.Join(to, "var/lib/tapeward/other")); !os.IsNotExist(err) {
		t.Fatalf("--bootstrap extracted more than the dump: %v", err)
	}
	if !strings.Contains(out, "as the bootstrap says") || !strings.Contains(out, "pg_restore") {
		t.Fatalf("extract --bootstrap output:\n%s", out)
	}
	w.vtl.RequireNoKey(t)

	// A dump that is not what the bootstrap says is refused.
	bad := *bf
	bad.Dump.SHA256 = strings.Repeat("0", 64)
	badPath := filepath.Join(w.dir, "bad.bsr")
	data, err := bootstrap.Marshal(&bad)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(badPath, data, 0o600)
	w.fails("do not restore it", args([]string{"extract", "--bootstrap", badPath, "--kek", w.kekPath, "--to", filepath.Join(w.dir, "r2")}, w.lib())...)

	// Without the KEK the wrapped keys are useless: the message names the
	// bootstrap and the KEK the label needs.
	errs := w.fails("no usable key for "+barcode(1), args([]string{"extract", "--bootstrap", bsr, "--to", filepath.Join(w.dir, "r3")}, w.lib())...)
	if !strings.Contains(errs, "the bootstrap "+bsr) || !strings.Contains(errs, ks[1].stored.KEKID) {
		t.Fatalf("no KEK: %s", errs)
	}
	// The bootstrap carries the keys: a cache beside it is a usage error.
	w.fails("--bootstrap carries the keys", args([]string{"extract", "--bootstrap", bsr, "--to", to}, w.lib(), w.keysV1())...)
	w.fails("without --job", args([]string{"extract", "--bootstrap", bsr, "--job", "57", "--kek", w.kekPath, "--to", to}, w.lib())...)
}
