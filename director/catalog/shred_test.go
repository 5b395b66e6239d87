package catalog

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// ShredVolume destroys the current key and every history key of the
// volume in one transaction (no other volume's), marks it Purged with a
// volume event, records a "shredded" key event, queues a shred for every
// storage, lists the exports written earlier, and from then on the key is
// refused (VolumeKey, CheckLabel with the old label); CompleteShreds
// records each storage's answer.
func TestShredVolume(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	cur := f.labelled(t, "SHR001", "SHR001L6", r)
	hist := f.addHistoryKey(t, "SHR001", r)
	other := f.labelled(t, "SHR002", "SHR002L6", r)
	f.labelled(t, "CLR001", "CLR001L6", nil)
	f.clock.Advance(time.Hour)
	if _, err := f.s.ExportKeys(f.ctx, ExportFilter{Volume: "SHR001", Detail: "sent to console admin"}, "console:admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Pool().Exec(f.ctx, `INSERT INTO cache_pushes (storage_id, volume_name, reason) SELECT id, 'SHR001', 'rekey' FROM storages WHERE name = 'sd1'`); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
	shredAt := f.clock.Now().UTC()

	res, err := f.s.ShredVolume(f.ctx, "SHR001", "console:keyadmin")
	if err != nil {
		t.Fatal(err)
	}
	if res.Strings != 2 || len(res.Fingerprints) != 2 || res.Fingerprints[0] != cur.Fingerprint || res.Fingerprints[1] != hist.Fingerprint {
		t.Fatalf("ShredVolume = %+v, want the current key %s and history key %s destroyed", res, cur.Fingerprint, hist.Fingerprint)
	}
	if strings.Join(res.Storages, ",") != "sd1,sd2" || res.OldStatus != StatusAppend || !res.At.Equal(shredAt) {
		t.Fatalf("ShredVolume = %+v, want shreds queued for sd1 and sd2, old status Append, at %s", res, shredAt)
	}
	if len(res.Exports) != 1 || res.Exports[0].Actor != "console:admin" || !strings.Contains(res.Exports[0].Detail, "sent to console admin") {
		t.Fatalf("exports out of reach = %+v, want the one export by console:admin", res.Exports)
	}

	// Not one stored string of SHR001 is left anywhere in the catalog.
	var n int
	if err := f.s.Pool().QueryRow(f.ctx, `
		SELECT (SELECT count(*) FROM media WHERE key_string IN ($1, $2))
			+ (SELECT count(*) FROM media_keys WHERE key_string IN ($1, $2) OR volume_name = 'SHR001')
			+ (SELECT count(*) FROM cache_pushes WHERE volume_name = 'SHR001')
			+ (SELECT count(*) FROM key_events WHERE strpos(detail, $1) > 0 OR strpos(detail, $2) > 0)`,
		cur.Value, hist.Value).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d catalog rows still hold SHR001's keys (or a push of them) after the shred", n)
	}
	if h := f.historyKeys(t, "SHR002"); len(h) != 0 {
		t.Fatalf("SHR002 history = %d keys, want none (it never had one)", len(h))
	}
	if k, err := f.s.VolumeKey(f.ctx, "SHR002", "sd1"); err != nil || k.Value != other.Value {
		t.Fatalf("the key of SHR002 (not shredded) = %v, %v; want it unchanged", k, err)
	}

	m, err := f.s.GetMedia(f.ctx, "SHR001")
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != StatusPurged || m.Encrypted || m.KeyFingerprint != "" {
		t.Fatalf("SHR001 after the shred = %+v, want Purged with no key", m)
	}
	evs, err := f.s.ListVolumeEvents(f.ctx, "SHR001")
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1]; last.New != StatusPurged || last.Old != StatusAppend || last.Reason != ShreddedReason || last.Actor != "console:keyadmin" {
		t.Fatalf("last volume event = %+v, want Append -> Purged, shredded, by console:keyadmin", last)
	}
	kev := f.eventsOf(t, "SHR001", EventShredded)
	if len(kev) != 1 || kev[0].Actor != "console:keyadmin" || !strings.Contains(kev[0].Detail, cur.Fingerprint) || !strings.Contains(kev[0].Detail, hist.Fingerprint) {
		t.Fatalf("shredded key events = %+v, want one by console:keyadmin naming both fingerprints", kev)
	}

	// The key is gone for every path.
	var se *ShreddedError
	if _, err := f.s.VolumeKey(f.ctx, "SHR001", "sd1"); !errors.As(err, &se) || se.By != "console:keyadmin" || !se.At.Equal(shredAt) {
		t.Fatalf("VolumeKey after the shred: %v, want a *ShreddedError by console:keyadmin", err)
	}
	if !strings.Contains(se.Error(), "volume SHR001 was shredded on "+shredAt.Format("2006-01-02 15:04:05Z")+" by console:keyadmin; its data cannot be read") {
		t.Fatalf("ShreddedError text = %q", se.Error())
	}
	for _, fp := range []string{cur.Fingerprint, hist.Fingerprint} {
		_, err := f.s.CheckLabel(f.ctx, "sd1", LabelView{Volume: "SHR001", Barcode: "SHR001L6", Encrypted: true, KEKID: cur.KEKID, Fingerprint: fp, Storage: "sd1", Pool: "Offsite"})
		if !errors.As(err, &se) {
			t.Fatalf("CheckLabel naming shredded key %s: %v, want a *ShreddedError", fp, err)
		}
	}
	if ex, err := f.s.ExportKeys(f.ctx, ExportFilter{Volume: "SHR001"}, "console:admin"); err != nil || len(ex) != 0 {
		t.Fatalf("ExportKeys after the shred = %v, %v; want nothing to export", ex, err)
	}

	// Again: nothing left to shred, and it says when it was.
	var ns *NothingToShredError
	if _, err := f.s.ShredVolume(f.ctx, "SHR001", "console:keyadmin"); !errors.As(err, &ns) || ns.Shredded == nil {
		t.Fatalf("second shred: %v, want a *NothingToShredError saying it was shredded", err)
	}
	if _, err := f.s.ShredVolume(f.ctx, "CLR001", "console:keyadmin"); !errors.As(err, &ns) || !strings.Contains(err.Error(), "is clear (not encrypted)") {
		t.Fatalf("shred of a clear volume: %v, want a *NothingToShredError saying it is clear", err)
	}

	// Each storage's answer removes its pending row and is audited.
	for _, sd := range []string{"sd1", "sd2"} {
		p, err := f.s.PendingShreds(f.ctx, sd)
		if err != nil || len(p) != 1 || p[0].Volume != "SHR001" {
			t.Fatalf("PendingShreds(%s) = %+v, %v; want SHR001", sd, p, err)
		}
	}
	p1, _ := f.s.PendingShreds(f.ctx, "sd1")
	n2, err := f.s.CompleteShreds(f.ctx, "sd1", []ShredDone{{PendingShred: p1[0], Destroyed: 3, NotEdited: []string{"storaged.cryptocache.corrupt-20261202T120000Z"}}}, "director")
	if err != nil || n2 != 1 {
		t.Fatalf("CompleteShreds = %d, %v", n2, err)
	}
	if left, err := f.s.PendingShredStorages(f.ctx, "SHR001"); err != nil || strings.Join(left, ",") != "sd2" {
		t.Fatalf("pending after sd1 answered = %v, %v; want sd2", left, err)
	}
	kev = f.eventsOf(t, "SHR001", EventShredded)
	if len(kev) != 2 || !strings.Contains(kev[0].Detail, "storage sd1: 3 stored strings") || !strings.Contains(kev[0].Detail, "NOT EDITED") {
		t.Fatalf("shredded key events = %+v, want sd1's answer with the corrupt copy named", kev)
	}
	// A stale answer (queued again since) does not remove the row.
	p2, _ := f.s.PendingShreds(f.ctx, "sd2")
	p2[0].QueuedAt = p2[0].QueuedAt.Add(-time.Second)
	if n, err := f.s.CompleteShreds(f.ctx, "sd2", []ShredDone{{PendingShred: p2[0], Absent: true}}, "director"); err != nil || n != 0 {
		t.Fatalf("stale CompleteShreds = %d, %v; want 0", n, err)
	}
	if c, err := f.s.PendingShredCounts(f.ctx); err != nil || c["sd2"] != 1 || c["sd1"] != 0 {
		t.Fatalf("PendingShredCounts = %v, %v", c, err)
	}
}

// A volume being labelled is not shredded (storaged writes its key now).
func TestShredRefusesLabeling(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	f.label(t, "LAB001", "", "sd1", 1, ring(t, k, k))
	var se *StateError
	if _, err := f.s.ShredVolume(f.ctx, "LAB001", "console:keyadmin"); !errors.As(err, &se) {
		t.Fatalf("shred of a Labeling volume: %v, want a *StateError", err)
	}
	if _, err := f.s.ShredVolume(f.ctx, "NOSUCH", "console:keyadmin"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("shred of an unknown volume: %v, want not found", err)
	}
}

// A Bareos-scheme volume (imported from Bareos) is shredded like any
// other; the result says its scheme and lists the import, whose source
// may still hold the passphrase.
func TestShredBareosVolume(t *testing.T) {
	f := newFixture(t)
	bk, err := keys.ParseBareosKEK("bareos-kek-string-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	p, err := keys.GenerateBareosPassphrase()
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := keys.WrapBareos(bk, p)
	if err != nil {
		t.Fatal(err)
	}
	dk, err := keys.BareosDriveKey(p)
	if err != nil {
		t.Fatal(err)
	}
	sk := keys.StoredKey{Scheme: keys.SchemeBareos, KEKID: bk.ID(), Value: wrapped, Fingerprint: keys.Fingerprint(dk)}
	if _, err := f.s.CreateLabeling(f.ctx, MediaNew{Volume: "BAR001", Pool: "Offsite", Storage: "sd1", Slot: 1, Encrypted: true, Key: &sk}); err != nil {
		t.Fatal(err)
	}
	if err := f.s.MarkLabeled(f.ctx, "BAR001", t0, &t0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.AddKeyEvent(f.ctx, KeyEvent{Volume: "BAR001", Event: EventImported, Actor: "tapekey", KEKID: bk.ID(), Detail: "imported from the Bareos catalog"}); err != nil {
		t.Fatal(err)
	}
	res, err := f.s.ShredVolume(f.ctx, "BAR001", "console:keyadmin")
	if err != nil {
		t.Fatal(err)
	}
	if res.Scheme != "bareos" || res.Strings != 1 || len(res.Imported) != 1 || res.Imported[0].Actor != "tapekey" {
		t.Fatalf("ShredVolume of a Bareos volume = %+v, want scheme bareos, 1 string, the import listed", res)
	}
	var n int
	if err := f.s.Pool().QueryRow(f.ctx, `SELECT count(*) FROM media WHERE key_string = $1`, wrapped).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the Bareos string is still in the catalog (%d, %v)", n, err)
	}
}

// A shred purges the records of the jobs on the volume with its keys (on
// every volume those jobs wrote, as a purge does): no restore may select
// a file whose data nobody can read any more. Other jobs keep theirs.
func TestShredPurgesTheJobsRecords(t *testing.T) {
	f := newFixture(t)
	r := f.testRing(t)
	f.labelled(t, "S1", "", r)
	f.labelled(t, "S2", "", r)
	f.labelled(t, "S3", "", r)
	span := f.writeJob(t, LevelFull, JobOK, 3, "S1", "S2") // spans S1 and S2
	other := f.writeJob(t, LevelFull, JobOK, 2, "S3")
	res, err := f.s.ShredVolume(f.ctx, "S1", "console:keyadmin")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Jobs, []int64{span}) || res.Files != 6 {
		t.Fatalf("shred: jobs %v, %d file records; want [%d], 6", res.Jobs, res.Files, span)
	}
	if n := f.count(t, `SELECT count(*) FROM files WHERE job_id = $1`, span); n != 0 {
		t.Fatalf("job %d keeps %d file records after its volume was shredded", span, n)
	}
	if n := f.count(t, `SELECT count(*) FROM job_media WHERE job_id = $1`, span); n != 0 {
		t.Fatalf("job %d keeps %d job_media rows after its volume was shredded", span, n)
	}
	if n := f.count(t, `SELECT count(*) FROM jobs WHERE id = $1 AND purged_reason LIKE '%shredded%'`, span); n != 1 {
		t.Fatalf("job %d is not marked purged by the shred", span)
	}
	if n := f.count(t, `SELECT count(*) FROM files WHERE job_id = $1`, other); n != 2 {
		t.Fatalf("job %d on another volume has %d file records, want 2", other, n)
	}
	// The shredded volume is Purged: recycling gives it a new key the
	// storage can fetch, and it was never one of the shredded ones.
	m, err := f.s.BeginRecycle(f.ctx, RecycleRequest{Volume: "S1", Encrypt: true, Ring: r, Actor: "director"})
	if err != nil {
		t.Fatalf("recycling a shredded volume: %v", err)
	}
	if slices.Contains(res.Fingerprints, m.KeyFingerprint) || m.KeyFingerprint == "" {
		t.Fatalf("recycled key %q is empty or one of the shredded %v", m.KeyFingerprint, res.Fingerprints)
	}
	if k, err := f.s.VolumeKey(f.ctx, "S1", "sd1"); err != nil || k.Fingerprint != m.KeyFingerprint {
		t.Fatalf("the recycled volume's key: %v, %v", k.Fingerprint, err)
	}
}
