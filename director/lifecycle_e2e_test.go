package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapeward/tapeward/director/catalog"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/testenv"
	"github.com/tapeward/tapeward/tools/lib/testtree"
)

// readTapeFile reads tape file n (from its block, a logical block
// address) of the volume mounted in drive through storaged (ReadData): its
// bytes, or the error.
func readTapeFile(sc pb.StorageClient, drive string, volume string, n uint32, block int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := sc.ReadData(ctx, &pb.ReadDataRequest{Drive: drive, From: &pb.BlockAddress{Volume: volume, TapeFile: n, Block: uint64(block)}})
	if err != nil {
		return nil, err
	}
	var out []byte
	for {
		r, err := st.Recv()
		if err != nil {
			if strings.Contains(err.Error(), "EOF") {
				return out, nil
			}
			return out, err
		}
		out = append(out, r.Data...)
	}
}

// A volume past its retention is auto-pruned and recycled by the next
// job with a NEW key: the history keeps the old key (superseded by a
// verified label), the crypto cache holds both, the tape's old data is
// unreadable with the new key loaded (and no block on the cartridge is
// under the old key any more), the old jobs lose their file records and
// the new job's files list exactly the tree.
func TestRecycleWithANewKey(t *testing.T) {
	w := newBackupWorld(t, backupOpts{volumes: 1})
	root := w.root["web1"]
	w.makeTree("web1", testtree.Options{Seed: 1, SmallFiles: 40, SmallSize: 3000})
	full, _ := w.backup("web1-home", "Full", "Full")
	if err := os.WriteFile(filepath.Join(root, "added-before-recycling.txt"), []byte("incremental"), 0o644); err != nil {
		t.Fatal(err)
	}
	incr, _ := w.backup("web1-home", "Incremental", "Incremental")
	const vol = "TW0001L6"
	var oldFP string
	var oldLast int
	var oldBlock int64
	if err := w.sql(`SELECT m.key_fingerprint, jm.tape_file, jm.first_block FROM media m JOIN job_media jm ON jm.media_id = m.id
		WHERE m.volume_name = $1 ORDER BY jm.tape_file DESC LIMIT 1`, vol).Scan(&oldFP, &oldLast, &oldBlock); err != nil {
		t.Fatal(err)
	}
	if oldLast < 4 {
		t.Fatalf("the two jobs wrote up to tape file %d, want at least 4 (two jobs after the label and key-check files)", oldLast)
	}

	// Its retention (1 day) ended: last written two days ago.
	w.exec(`UPDATE media SET status = 'Full', volume_retention = '1 day', last_written = now() - interval '2 days' WHERE volume_name = $1`, vol)
	out := w.ok("prune volume=" + vol)
	if !strings.Contains(out, fmt.Sprintf("would prune volume %s (Full): 2 jobs (%d, %d)", vol, full.ID, incr.ID)) || !strings.Contains(out, "add yes") {
		t.Fatalf("prune without yes:\n%s", out)
	}
	snap := w.snapshot("web1")
	j, _ := w.backup("web1-home", "Full", "Full")
	log := w.tapectlOut(fmt.Sprintf("list joblog jobid=%d", j.ID))
	for _, want := range []string{"Auto-prune: volume " + vol + " of pool Backup pruned", "2 jobs and", "Recycling volume " + vol,
		"old key " + oldFP + " kept in its key history"} {
		if !strings.Contains(log, want) {
			t.Errorf("job log lacks %q:\n%s", want, log)
		}
	}

	// A new key, committed and verified; the old one in the history.
	var newFP, status string
	var verified bool
	var recycled int
	if err := w.sql(`SELECT key_fingerprint, status, encryption_verified_at IS NOT NULL, recycle_count FROM media WHERE volume_name = $1`, vol).
		Scan(&newFP, &status, &verified, &recycled); err != nil {
		t.Fatal(err)
	}
	if newFP == "" || newFP == oldFP || status != "Append" || !verified || recycled != 1 {
		t.Fatalf("after recycling: key %s (old %s), status %s, verified %v, recycled %d", newFP, oldFP, status, verified, recycled)
	}
	var reason string
	var hadData, superseded bool
	if err := w.sql(`SELECT reason, had_data, superseded_verified_at IS NOT NULL FROM media_keys mk JOIN media m ON m.id = mk.media_id
		WHERE m.volume_name = $1 AND mk.key_fingerprint = $2`, vol, oldFP).Scan(&reason, &hadData, &superseded); err != nil {
		t.Fatalf("the old key is not in the history: %v", err)
	}
	if reason != "recycled" || !hadData || !superseded {
		t.Errorf("history key: reason %q had_data %v superseded-verified %v", reason, hadData, superseded)
	}
	var trail string
	if err := w.sql(`SELECT string_agg(old_status || '>' || new_status || ' ' || actor, ', ' ORDER BY id) FROM volume_events WHERE volume_name = $1`, vol).Scan(&trail); err != nil {
		t.Fatal(err)
	}
	if want := "Full>Purged director, Purged>Labeling director, Labeling>Append sd1"; trail != want {
		t.Errorf("volume events: %s, want %s", trail, want)
	}

	// The old jobs lost their records (rows kept as purged history); the
	// new job's files are exactly the tree, at tape file 2.
	var purged, oldFiles, tf int
	var firstBlock int64
	if err := w.sql(`SELECT count(*) FILTER (WHERE purged_at IS NOT NULL), (SELECT count(*) FROM files WHERE job_id IN ($1, $2)),
		(SELECT tape_file FROM job_media WHERE job_id = $3 ORDER BY part LIMIT 1), (SELECT first_block FROM job_media WHERE job_id = $3 ORDER BY part LIMIT 1)
		FROM jobs WHERE id IN ($1, $2)`, full.ID, incr.ID, j.ID).Scan(&purged, &oldFiles, &tf, &firstBlock); err != nil {
		t.Fatal(err)
	}
	if purged != 2 || oldFiles != 0 || tf != 2 {
		t.Errorf("purged jobs %d, their file rows %d; the new job starts at tape file %d (want 2, 0, 2)", purged, oldFiles, tf)
	}
	w.requireFiles("the job on the recycled volume", root, w.listFiles(j.ID, root), snap)
	if lj := w.ok("list jobs"); strings.Count(lj, "purged ") != 2 {
		t.Errorf("list jobs does not mark the two pruned jobs purged:\n%s", lj)
	}

	// The crypto cache holds both keys (the old one in its history).
	cache, err := exec.Command(bins["tapekey"], "cache", "dump", filepath.Join(w.sdConf.WorkDir, "storaged.cryptocache"), "--json").CombinedOutput()
	if err != nil || !strings.Contains(string(cache), newFP) || !strings.Contains(string(cache), oldFP) {
		t.Errorf("crypto cache (%v) lacks the new key %s or the old %s:\n%s", err, newFP, oldFP, cache)
	}
	// No block of the cartridge is under the old key any more.
	carts, _ := filepath.Glob(filepath.Join(w.dir, "lib", "*"+vol+"*"))
	for _, c := range carts {
		data, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), oldFP) || !strings.Contains(string(data), newFP) {
			t.Errorf("cartridge %s: old key %s present %v, new key %s present %v", filepath.Base(c), oldFP,
				strings.Contains(string(data), oldFP), newFP, strings.Contains(string(data), newFP))
		}
	}
	if len(carts) == 0 {
		t.Errorf("no cartridge file of %s under %s", vol, filepath.Join(w.dir, "lib"))
	}

	// The old data through the drive with the new key loaded: the old
	// incremental's tape file is gone; tape file 2 is the new job's.
	out = w.ok("mount storage=sd1 slot=1 drive=0")
	if !strings.Contains(w.vtl.Status(t), newFP) {
		t.Errorf("the drive does not hold the new key %s:\n%s\n%s", newFP, out, w.vtl.Status(t))
	}
	sc := w.storageClient()
	h, err := sc.Hello(context.Background(), &pb.HelloRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := readTapeFile(sc, h.Drives[0], vol, uint32(oldLast), oldBlock); err == nil {
		t.Errorf("read the old tape file %d with the new key: %d bytes, no error", oldLast, len(b))
	}
	if b, err := readTapeFile(sc, h.Drives[0], vol, 2, firstBlock); err != nil || len(b) == 0 {
		t.Errorf("reading the new job's tape file 2: %d bytes, %v", len(b), err)
	}
	w.ok("unmount storage=sd1 drive=0")
	w.waitNoKey()
}

// A pool with a scratch pool: when it has no Append volume of its own the
// job takes a never-written scratch volume, which moves into the pool
// (audited); purge moves a volume to its pool's recycle pool.
func TestScratchPoolE2E(t *testing.T) {
	w := newBackupWorld(t, backupOpts{volumes: 1})
	w.dirConf.Pools = []testenv.Pool{{Name: "Backup", Storage: "sd1", ScratchPool: "Scratch", RecyclePool: "Scratch"}, {Name: "Scratch", Storage: "sd1"}}
	// A scheduled job, for the preview of status director.
	w.dirConf.ExtraTOML = `
[[schedule]]
name = "Nightly"
run  = ["Full at 23:59"]

[[job]]
name     = "web1-nightly"
client   = "web1"
fileset  = "fs-web1"
pool     = "Backup"
schedule = "Nightly"
`
	w.dird.Stop(t, syscall.SIGTERM)
	w.startDirector()
	w.ok("label storage=sd1 pool=Scratch slots=2 barcodes encrypt")
	w.exec(`UPDATE media SET status = 'Full' WHERE volume_name = 'TW0001L6'`)
	w.makeTree("web1", testtree.Options{Seed: 3, SmallFiles: 10, SmallSize: 1000})
	j, _ := w.backup("web1-home", "Full", "Full")
	if v := w.jobVolumes(j.ID); len(v) != 1 || v[0] != "TW0002L6" {
		t.Fatalf("the job wrote %v, want the scratch volume TW0002L6", v)
	}
	var pool, reason string
	if err := w.sql(`SELECT p.name, (SELECT reason FROM volume_events e WHERE e.volume_name = m.volume_name ORDER BY id DESC LIMIT 1)
		FROM media m JOIN pools p ON p.id = m.pool_id WHERE m.volume_name = 'TW0002L6'`).Scan(&pool, &reason); err != nil {
		t.Fatal(err)
	}
	if pool != "Backup" || !strings.Contains(reason, "moved from pool Scratch to pool Backup (scratch pool of pool Backup, taken by job") {
		t.Errorf("TW0002L6: pool %s, last event %q", pool, reason)
	}
	if l := w.tapectlOut(fmt.Sprintf("list joblog jobid=%d", j.ID)); !strings.Contains(l, "moved from scratch pool Scratch into pool Backup") {
		t.Errorf("job log:\n%s", l)
	}
	// purge: the volume goes to the recycle pool, its key kept.
	out := w.ok("purge volume=TW0001L6 yes")
	if !strings.Contains(out, "moved to recycle pool Scratch") {
		t.Errorf("purge:\n%s", out)
	}
	if err := w.sql(`SELECT p.name FROM media m JOIN pools p ON p.id = m.pool_id WHERE m.volume_name = 'TW0001L6'`).Scan(&pool); err != nil || pool != "Scratch" {
		t.Errorf("TW0001L6 after purge: pool %s (%v)", pool, err)
	}
	// The preview: TW0002L6 is Full, the purged TW0001L6 in the scratch
	// (and recycle) pool would be recycled; once it is Disabled nothing
	// fits and the preview says why and what to do.
	w.exec(`UPDATE media SET status = 'Full' WHERE volume_name = 'TW0002L6'`)
	st := w.ok("status director")
	if !strings.Contains(st, "web1-nightly") || !strings.Contains(st, "TW0001L6 (recycled: purged") || !strings.Contains(st, "from pool Scratch; relabelled with a new key)") {
		t.Errorf("status director with a purged scratch volume:\n%s", st)
	}
	w.ok("update volume=TW0001L6 status=Disabled")
	st = w.ok("status director")
	for _, want := range []string{"*no volume*: pool Backup has no appendable volume", "TW0002L6 (Full)",
		"label one (label storage=sd1 pool=Backup slots=N barcodes encrypt), or add scratch volumes (label … pool=Scratch)"} {
		if !strings.Contains(st, want) {
			t.Errorf("status director lacks %q:\n%s", want, st)
		}
	}

	// An unknown volume: the catalog says so.
	_, errs, code := w.tapectl("purge volume=NOPE yes")
	if code == 0 || !strings.Contains(errs, `volume "NOPE" is not in the catalog`) {
		t.Errorf("purge of an unknown volume: exit %d %s", code, errs)
	}
}

// A recycling whose label did not finish (the volume in Error, its new
// key committed, the tape still holding the old label and data) is
// retried by labelling the slot again: storaged writes over the old data
// (LabelVolumeRequest.recycle) with the new key, the history key is then
// superseded-verified, and the next job writes there.
func TestRelabelAnUnfinishedRecycling(t *testing.T) {
	w := newBackupWorld(t, backupOpts{volumes: 1})
	w.makeTree("web1", testtree.Options{Seed: 4, SmallFiles: 10, SmallSize: 1000})
	w.backup("web1-home", "Full", "Full")
	const vol = "TW0001L6"
	var oldFP string
	if err := w.sql(`SELECT key_fingerprint FROM media WHERE volume_name = $1`, vol).Scan(&oldFP); err != nil {
		t.Fatal(err)
	}
	w.ok("purge volume=" + vol + " yes")
	// What a job's recycling leaves when its session fails before the new
	// label: a new key committed, then the volume in Error.
	kek, err := keys.LoadKEKFile(w.kekPaths[0], keys.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keys.NewKeyring(kek)
	if err != nil {
		t.Fatal(err)
	}
	st := w.store()
	ctx := context.Background()
	m, err := st.BeginRecycle(ctx, catalog.RecycleRequest{Volume: vol, Encrypt: true, Ring: ring, Actor: "director", Reason: "recycled for a job that failed"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.InterruptLabeling(ctx, "director", vol); err != nil {
		t.Fatal(err)
	}
	ring.Destroy()

	out := w.ok(fmt.Sprintf("label storage=sd1 pool=Backup slot=1 volume=%s encrypt", vol))
	if !strings.Contains(out, m.KeyFingerprint) {
		t.Errorf("label did not use the committed new key %s:\n%s", m.KeyFingerprint, out)
	}
	var status string
	var superseded bool
	if err := w.sql(`SELECT m.status, k.superseded_verified_at IS NOT NULL FROM media m JOIN media_keys k ON k.media_id = m.id
		WHERE m.volume_name = $1 AND k.key_fingerprint = $2`, vol, oldFP).Scan(&status, &superseded); err != nil {
		t.Fatal(err)
	}
	if status != "Append" || !superseded {
		t.Fatalf("after the relabel: status %s, old key superseded-verified %v\n%s", status, superseded, w.sd.Output())
	}
	j, _ := w.backup("web1-home", "Full", "Full")
	if v := w.jobVolumes(j.ID); len(v) != 1 || v[0] != vol {
		t.Errorf("the job wrote %v", v)
	}

	// A purged volume labelled by hand is recycled on the spot: another
	// new key, the one just used kept in the history.
	w.ok("purge volume=" + vol + " yes")
	out = w.ok(fmt.Sprintf("label storage=sd1 pool=Backup slot=1 volume=%s encrypt", vol))
	var fp3 string
	var hist int
	if err := w.sql(`SELECT m.status, m.key_fingerprint, (SELECT count(*) FROM media_keys k WHERE k.media_id = m.id AND k.reason = 'recycled' AND k.superseded_verified_at IS NOT NULL)
		FROM media m WHERE m.volume_name = $1`, vol).Scan(&status, &fp3, &hist); err != nil {
		t.Fatal(err)
	}
	if status != "Append" || fp3 == m.KeyFingerprint || fp3 == oldFP || hist != 2 || !strings.Contains(out, fp3) {
		t.Errorf("label of a purged volume: status %s, key %s (before %s, %s), %d verified recycled history keys\n%s", status, fp3, m.KeyFingerprint, oldFP, hist, out)
	}
	w.waitNoKey()
}
