package catalog

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// writeJob runs a backup job of nightly/web1 at level that writes one
// tape file with n files on each of vols (parts 1, 2, …) and ends with st.
func (f *fixture) writeJob(t *testing.T, level string, st JobStatus, n int, vols ...string) int64 {
	t.Helper()
	job, _ := f.backup(t, "nightly", "web1", idHome, level, 0)
	b, err := f.s.BeginFiles(f.ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(0)
	for i, v := range vols {
		tf, err := f.s.NextTapeFile(f.ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.s.RecordPart(f.ctx, job, Part{Part: i + 1, Volume: v, VolumeIndex: i + 1, TapeFile: tf, FirstStreamOffset: off}); err != nil {
			t.Fatal(err)
		}
		for k := range n {
			r := row(v+"/f"+itoa(int64(k))+"-"+level, v, off)
			r.At.TapeFile = tf
			if err := b.Add(f.ctx, r); err != nil {
				t.Fatal(err)
			}
			off += 1024
		}
		if _, err := b.Flush(f.ctx, off); err != nil {
			t.Fatal(err)
		}
		if err := f.s.CompletePart(f.ctx, job, i+1, 1, int64(n)*1024); err != nil {
			t.Fatal(err)
		}
		if err := f.s.RecordWritten(f.ctx, v, int64(n)*1024, int64(n)); err != nil {
			t.Fatal(err)
		}
	}
	if st != JobRunning {
		f.end(t, job, st)
	}
	return job
}

func (f *fixture) count(t *testing.T, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := f.s.Pool().QueryRow(f.ctx, q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *fixture) retention(t *testing.T, volume string, d time.Duration) {
	t.Helper()
	if _, err := f.s.Pool().Exec(f.ctx, `UPDATE media SET volume_retention = $2 WHERE volume_name = $1`, volume, d); err != nil {
		t.Fatal(err)
	}
}

// TestPruneAndPurge: prune waits for the retention and says when it ends,
// both refuse a volume an active job uses, and a pruned volume's jobs
// lose their records on every volume (a job spanning another volume goes
// whole), the jobs rows staying as purged history; the volume is Purged,
// audited, its key untouched; a since-time no longer builds on the jobs.
func TestPruneAndPurge(t *testing.T) {
	f := newFixture(t)
	r := f.testRing(t)
	k1 := f.labelled(t, "V1", "", r)
	f.labelled(t, "V2", "", r)
	f.labelled(t, "V3", "", r)
	f.retention(t, "V1", 30*24*time.Hour)
	full := f.writeJob(t, LevelFull, JobOK, 3, "V1", "V2") // spans V1 and V2
	incr := f.writeJob(t, LevelIncremental, JobOK, 2, "V2")
	only := f.writeJob(t, LevelIncremental, JobOK, 2, "V1")
	lastWritten := f.count(t, `SELECT extract(epoch FROM last_written)::bigint FROM media WHERE volume_name = 'V1'`)

	// Before the retention ended: refused, saying when it ends.
	_, err := f.s.PurgeVolume(f.ctx, PurgeRequest{Volume: "V1", Prune: true, Actor: "console:op"})
	var re *RetentionError
	if !errors.As(err, &re) || re.Ends.Unix() != lastWritten+30*86400 || !strings.Contains(err.Error(), re.Ends.Format("2006-01-02 15:04:05Z")) {
		t.Fatalf("early prune: %v, want a *RetentionError ending 30 days after the last write", err)
	}
	// A volume without retention is never pruned.
	if _, err := f.s.PurgeVolume(f.ctx, PurgeRequest{Volume: "V3", Prune: true}); !errors.As(err, &re) || re.Retention != 0 || !strings.Contains(err.Error(), "no volume_retention") {
		t.Fatalf("prune without retention: %v", err)
	}

	// An active job on V1: both refused.
	running := f.writeJob(t, LevelIncremental, JobRunning, 1, "V1")
	f.clock.Advance(31 * 24 * time.Hour)
	for _, prune := range []bool{true, false} {
		_, err := f.s.PurgeVolume(f.ctx, PurgeRequest{Volume: "V1", Prune: prune})
		var iu *VolumeInUseError
		if !errors.As(err, &iu) || !slices.Equal(iu.Jobs, []int64{running}) {
			t.Fatalf("prune=%t with job %d running: %v", prune, running, err)
		}
	}
	f.end(t, running, JobError)

	dry, err := f.s.PurgeVolume(f.ctx, PurgeRequest{Volume: "V1", Prune: true, DryRun: true})
	if err != nil || dry.Changed || dry.Files != 3+3+2+1 || len(dry.Jobs) != 3 {
		t.Fatalf("dry run: %+v, %v", dry, err)
	}
	if m, _ := f.s.GetMedia(f.ctx, "V1"); m.Status != StatusAppend {
		t.Fatalf("the dry run changed the status to %s", m.Status)
	}
	res, err := f.s.PurgeVolume(f.ctx, PurgeRequest{Volume: "V1", Prune: true, Actor: "console:op"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.From != StatusAppend || !slices.Equal(res.Jobs, []int64{full, only, running}) ||
		!slices.Equal(res.OtherVolumes, []string{"V2"}) || res.Files != 9 {
		t.Fatalf("prune: %+v", res)
	}
	m, err := f.s.GetMedia(f.ctx, "V1")
	if err != nil || m.Status != StatusPurged || m.PurgedAt == nil || m.KeyFingerprint != k1.Fingerprint {
		t.Fatalf("V1 after prune: %+v, %v", m, err)
	}
	// The spanning Full lost its records on V2 too; the incremental that
	// only wrote V2 kept them.
	if n := f.count(t, `SELECT count(*) FROM files WHERE job_id = $1`, full); n != 0 {
		t.Errorf("job %d keeps %d file rows", full, n)
	}
	if n := f.count(t, `SELECT count(*) FROM job_media WHERE job_id = ANY($1)`, res.Jobs); n != 0 {
		t.Errorf("the pruned jobs keep %d job_media rows", n)
	}
	if n := f.count(t, `SELECT count(*) FROM files WHERE job_id = $1`, incr); n != 2 {
		t.Errorf("job %d (V2 only) has %d file rows, want 2", incr, n)
	}
	if n := f.count(t, `SELECT count(*) FROM jobs WHERE purged_at IS NOT NULL AND purged_reason LIKE '%V1 pruned%'`); n != 3 {
		t.Errorf("%d jobs marked purged, want 3", n)
	}
	// No key deleted; the tape untouched means nothing else changed.
	if sk, err := f.s.VolumeKey(f.ctx, "V1", "sd1"); err != nil || sk.Value != k1.Value {
		t.Errorf("V1's key after prune: %v", err)
	}
	// The audit line.
	evs, _ := f.s.ListVolumeEvents(f.ctx, "V1")
	last := evs[len(evs)-1]
	if last.Old != StatusAppend || last.New != StatusPurged || last.Actor != "console:op" || !strings.Contains(last.Reason, "retention") ||
		!strings.Contains(last.Reason, "3 jobs") || !strings.Contains(last.Reason, "V2") {
		t.Errorf("audit: %+v", last)
	}
	// An incremental no longer builds on the pruned Full.
	_, d := f.backup(t, "nightly", "web1", idHome, LevelIncremental, 0)
	if d.Level != LevelFull || !strings.Contains(d.Reason, "no prior Full") {
		t.Errorf("incremental after the Full was pruned: %+v", d)
	}
	// Again: nothing to do.
	if res, err := f.s.PurgeVolume(f.ctx, PurgeRequest{Volume: "V1"}); err != nil || res.Changed {
		t.Errorf("purge of a Purged volume: %+v, %v", res, err)
	}

	// Purge ignores the retention, and moves to a recycle pool.
	if _, err := f.s.EnsurePool(f.ctx, PoolSpec{Name: "Scratch", Type: PoolScratch, Encrypt: true, VolumeRetention: 7 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	res, err = f.s.PurgeVolume(f.ctx, PurgeRequest{Volume: "V2", Actor: "console:op", RecyclePool: "Scratch"})
	if err != nil || !res.Changed || res.MovedTo != "Scratch" || !slices.Equal(res.Jobs, []int64{incr}) {
		t.Fatalf("purge V2: %+v, %v", res, err)
	}
	m, _ = f.s.GetMedia(f.ctx, "V2")
	l, _ := f.s.GetVolumeLimits(f.ctx, "V2")
	if m.Pool != "Scratch" || m.Status != StatusPurged || l.VolumeRetention != 7*24*time.Hour {
		t.Errorf("V2 after purge: pool %s status %s retention %s", m.Pool, m.Status, l.VolumeRetention)
	}
	evs, _ = f.s.ListVolumeEvents(f.ctx, "V2")
	if last := evs[len(evs)-1]; last.Old != StatusPurged || last.New != StatusPurged || !strings.Contains(last.Reason, "moved from pool Offsite to pool Scratch") {
		t.Errorf("move audit: %+v", last)
	}

	// Statuses: prune takes Append/Full/Used, purge also Error, Read-Only,
	// Disabled; Archive and Labeling never.
	f.retention(t, "V3", time.Hour)
	for _, c := range []struct {
		st           Status
		prune, purge bool
	}{
		{StatusFull, true, true}, {StatusUsed, true, true}, {StatusError, false, true}, {StatusReadOnly, false, true},
		{StatusDisabled, false, true}, {StatusArchive, false, false}, {StatusLabeling, false, false},
	} {
		for _, prune := range []bool{true, false} {
			f.force(t, "V3", c.st)
			_, err := f.s.PurgeVolume(f.ctx, PurgeRequest{Volume: "V3", Prune: prune, DryRun: true})
			want := c.purge
			if prune {
				want = c.prune
			}
			var se *StateError
			if want && err != nil || !want && !errors.As(err, &se) {
				t.Errorf("%s prune=%t: %v, want allowed=%t", c.st, prune, err, want)
			}
		}
	}
	if _, err := f.s.PurgeVolume(f.ctx, PurgeRequest{Volume: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown volume: %v", err)
	}
}

// TestExpiredVolumes lists the Full/Used volumes of a pool past retention.
func TestExpiredVolumes(t *testing.T) {
	f := newFixture(t)
	r := f.testRing(t)
	for _, v := range []string{"E1", "E2", "E3", "E4"} {
		f.labelled(t, v, "", r)
		f.retention(t, v, 24*time.Hour)
	}
	f.writeJob(t, LevelFull, JobOK, 1, "E2")
	f.writeJob(t, LevelFull, JobOK, 1, "E1")
	f.force(t, "E1", StatusFull)
	f.force(t, "E2", StatusUsed)
	f.force(t, "E4", StatusFull)
	f.retention(t, "E4", 0)
	if got, err := f.s.ExpiredVolumes(f.ctx, "Offsite", f.clock.Now()); err != nil || len(got) != 0 {
		t.Fatalf("before: %v, %v", got, err)
	}
	f.clock.Advance(2 * 24 * time.Hour)
	got, err := f.s.ExpiredVolumes(f.ctx, "Offsite", f.clock.Now())
	if err != nil || !slices.Equal(got, []string{"E2", "E1"}) {
		t.Fatalf("expired: %v, %v; want E2, E1 (oldest write first; Append and no-retention volumes never)", got, err)
	}
}

// TestRecycleWithAFreshKey: a purged volume gets a new key in one
// transaction (the old one in the history, never deleted), is Labeling
// until its new label is verified, then Append with the history key
// marked superseded-verified; the old key still reads the old label.
func TestRecycleWithAFreshKey(t *testing.T) {
	f := newFixture(t)
	r := f.testRing(t)
	old := f.labelled(t, "R1", "BC0001", r)
	if _, err := f.s.BeginWrite(f.ctx, "R1", "sd1", old.Fingerprint); err != nil {
		t.Fatal(err)
	}
	f.writeJob(t, LevelFull, JobOK, 2, "R1")

	_, err := f.s.BeginRecycle(f.ctx, RecycleRequest{Volume: "R1", Encrypt: true, Ring: r})
	var se *StateError
	if !errors.As(err, &se) || se.Status != StatusAppend {
		t.Fatalf("recycle of an Append volume: %v", err)
	}
	if _, err := f.s.PurgeVolume(f.ctx, PurgeRequest{Volume: "R1", Actor: "console:op"}); err != nil {
		t.Fatal(err)
	}
	m, err := f.s.BeginRecycle(f.ctx, RecycleRequest{Volume: "R1", Encrypt: true, Ring: r, Actor: "director", Reason: "recycled for job 9"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != StatusLabeling || !m.Encrypted || m.KeyFingerprint == "" || m.KeyFingerprint == old.Fingerprint ||
		m.BytesWritten != 0 || m.LastWritten != nil || m.EncryptionVerifiedAt != nil || m.RecycleCount != 1 {
		t.Fatalf("after BeginRecycle: %+v", m)
	}
	nk, err := f.s.VolumeKey(f.ctx, "R1", "sd1")
	if err != nil || nk.Fingerprint != m.KeyFingerprint || nk.Value == old.Value {
		t.Fatalf("new key: %v", err)
	}
	if nk.Scheme != keys.SchemeV1 {
		t.Fatalf("new key scheme %s", nk.Scheme)
	}
	h, err := f.s.KeyHistory(f.ctx, "R1")
	if err != nil || len(h) != 1 || h[0].Key.Fingerprint != old.Fingerprint || h[0].Key.Value != old.Value ||
		h[0].Reason != "recycled" || !h[0].HadData || h[0].SupersededVerifiedAt != nil {
		t.Fatalf("history: %+v, %v", h, err)
	}
	// No data before the label: BeginWrite refuses a Labeling volume.
	if _, err := f.s.BeginWrite(f.ctx, "R1", "sd1", m.KeyFingerprint); err == nil {
		t.Fatal("BeginWrite on a volume whose recycled label is not written yet was accepted")
	}
	// The old label still gets the old key (reading its old data).
	lk, err := f.s.CheckLabel(f.ctx, "sd1", LabelView{Volume: "R1", Encrypted: true, KEKID: old.KEKID, Fingerprint: old.Fingerprint})
	if err != nil || lk.Key.Value != old.Value || !strings.Contains(lk.Source, "recycled") {
		t.Fatalf("old label: %+v, %v", lk, err)
	}

	at := f.clock.Now()
	for _, c := range []struct {
		storage, fp string
		verified    *time.Time
		want        any
	}{
		{"sd2", m.KeyFingerprint, &at, new(*NotOwnedError)},
		{"sd1", old.Fingerprint, &at, new(*WriteRefusedError)},
		{"sd1", m.KeyFingerprint, nil, new(*WriteRefusedError)},
	} {
		err := f.s.MarkRecycleLabeled(f.ctx, "R1", c.storage, c.fp, at, c.verified, "")
		if err == nil || !errors.As(err, c.want) {
			t.Errorf("MarkRecycleLabeled(%s, %s): %v", c.storage, c.fp, err)
		}
	}
	if err := f.s.MarkRecycleLabeled(f.ctx, "R1", "sd1", m.KeyFingerprint, at, &at, ""); err != nil {
		t.Fatal(err)
	}
	if err := f.s.MarkRecycleLabeled(f.ctx, "R1", "sd1", m.KeyFingerprint, at, &at, ""); !errors.As(err, &se) {
		t.Errorf("second MarkRecycleLabeled: %v", err)
	}
	m, _ = f.s.GetMedia(f.ctx, "R1")
	if m.Status != StatusAppend || m.EncryptionVerifiedAt == nil || !m.EncryptionVerifiedAt.Equal(at) {
		t.Errorf("after the label: %+v", m)
	}
	h, _ = f.s.KeyHistory(f.ctx, "R1")
	if len(h) != 1 || h[0].SupersededVerifiedAt == nil || !h[0].SupersededVerifiedAt.Equal(at) {
		t.Errorf("history after the verified label: %+v", h)
	}
	if _, err := f.s.BeginWrite(f.ctx, "R1", "sd1", m.KeyFingerprint); err != nil {
		t.Errorf("BeginWrite after the recycled label: %v", err)
	}
	evs, _ := f.s.ListVolumeEvents(f.ctx, "R1")
	var trail []string
	for _, e := range evs {
		trail = append(trail, string(e.Old)+">"+string(e.New))
	}
	if got := strings.Join(trail, " "); got != "Append>Purged Purged>Labeling Labeling>Append" {
		t.Errorf("volume events: %s", got)
	}
	if n := f.countEvents(t, EventGenerated); n < 2 {
		t.Errorf("%d generated key events, want the label's and the recycling's", n)
	}

	// A second recycling keeps both old keys; a clear pool makes it clear.
	f.force(t, "R1", StatusPurged)
	m2, err := f.s.BeginRecycle(f.ctx, RecycleRequest{Volume: "R1", Encrypt: false})
	if err != nil || m2.Encrypted || m2.KeyFingerprint != "" {
		t.Fatalf("recycle into a clear pool: %+v, %v", m2, err)
	}
	h, _ = f.s.KeyHistory(f.ctx, "R1")
	if len(h) != 2 || h[1].Key.Fingerprint != m.KeyFingerprint {
		t.Errorf("history after two recyclings: %+v", h)
	}
	if err := f.s.MarkRecycleLabeled(f.ctx, "R1", "sd1", "", at, nil, ""); err != nil {
		t.Errorf("clear recycled label: %v", err)
	}
	checkNoSecrets(t, "recycle errors", err, old.Value, nk.Value)
}

// TestMoveVolumeToPool copies the new pool's limits and audits the move.
func TestMoveVolumeToPool(t *testing.T) {
	f := newFixture(t)
	r := f.testRing(t)
	f.labelled(t, "S1", "", r)
	if _, err := f.s.EnsurePool(f.ctx, PoolSpec{Name: "Daily", Encrypt: true, MaxVolumeBytes: 1 << 30, VolumeRetention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := f.s.MoveVolumeToPool(f.ctx, "S1", "Daily", "director", "scratch pool of Daily, for job 4"); err != nil {
		t.Fatal(err)
	}
	m, _ := f.s.GetMedia(f.ctx, "S1")
	l, _ := f.s.GetVolumeLimits(f.ctx, "S1")
	if m.Pool != "Daily" || l.MaxVolumeBytes != 1<<30 || l.VolumeRetention != time.Hour {
		t.Errorf("after the move: pool %s limits %+v", m.Pool, l)
	}
	evs, _ := f.s.ListVolumeEvents(f.ctx, "S1")
	if len(evs) != 1 || evs[0].Actor != "director" || !strings.Contains(evs[0].Reason, "moved from pool Offsite to pool Daily (scratch pool of Daily, for job 4)") {
		t.Errorf("events: %+v", evs)
	}
	if err := f.s.MoveVolumeToPool(f.ctx, "S1", "Nope", "director", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("move to an unknown pool: %v", err)
	}
}

// TestLifecycleTransitions walks every status change this file adds:
// Append, Full, Used, Error, Read-Only, Disabled → Purged (purge; prune
// only the first three), Purged and Recycle → Labeling (BeginRecycle),
// Labeling → Append (MarkRecycleLabeled); each is audited once.
func TestLifecycleTransitions(t *testing.T) {
	f := newFixture(t)
	r := f.testRing(t)
	f.labelled(t, "T1", "", r)
	f.retention(t, "T1", time.Hour)
	f.clock.Advance(2 * time.Hour)
	for _, c := range []struct {
		from  Status
		prune bool
	}{
		{StatusAppend, true}, {StatusFull, true}, {StatusUsed, true},
		{StatusError, false}, {StatusReadOnly, false}, {StatusDisabled, false},
	} {
		f.force(t, "T1", c.from)
		before := len(mustEvents(t, f, "T1"))
		res, err := f.s.PurgeVolume(f.ctx, PurgeRequest{Volume: "T1", Prune: c.prune, Actor: "console:op"})
		if err != nil || !res.Changed || res.From != c.from {
			t.Fatalf("%s → Purged (prune=%t): %+v, %v", c.from, c.prune, res, err)
		}
		evs := mustEvents(t, f, "T1")
		if len(evs) != before+1 || evs[len(evs)-1].Old != c.from || evs[len(evs)-1].New != StatusPurged {
			t.Errorf("%s → Purged: events %+v", c.from, evs[before:])
		}
	}
	for _, from := range []Status{StatusPurged, StatusRecycle} {
		f.force(t, "T1", from)
		m, err := f.s.BeginRecycle(f.ctx, RecycleRequest{Volume: "T1", Encrypt: true, Ring: r})
		if err != nil || m.Status != StatusLabeling {
			t.Fatalf("%s → Labeling: %+v, %v", from, m, err)
		}
		at := f.clock.Now()
		if err := f.s.MarkRecycleLabeled(f.ctx, "T1", "sd1", m.KeyFingerprint, at, &at, ""); err != nil {
			t.Fatalf("Labeling → Append: %v", err)
		}
		evs := mustEvents(t, f, "T1")
		if a, b := evs[len(evs)-2], evs[len(evs)-1]; a.Old != from || a.New != StatusLabeling || b.Old != StatusLabeling || b.New != StatusAppend || b.Actor != "sd1" {
			t.Errorf("recycling from %s: events %+v %+v", from, a, b)
		}
	}
	h, _ := f.s.KeyHistory(f.ctx, "T1")
	if len(h) != 2 {
		t.Errorf("two recyclings left %d history keys, want 2", len(h))
	}
}

func mustEvents(t *testing.T, f *fixture, volume string) []VolumeEvent {
	t.Helper()
	evs, err := f.s.ListVolumeEvents(f.ctx, volume)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}
