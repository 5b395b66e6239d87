package catalog

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// force puts volume in status st straight in the database (the statuses
// prune, purge and a failed label reach are not the operator's to set).
func (f *fixture) force(t *testing.T, volume string, st Status) {
	t.Helper()
	reason := any(nil)
	if st == StatusError {
		reason = "forced by the test"
	}
	if _, err := f.s.pool.Exec(f.ctx, `UPDATE media SET status = $2, error_reason = $3 WHERE volume_name = $1`, volume, string(st), reason); err != nil {
		t.Fatal(err)
	}
}

// TestVolumeStatusTransitions tries every operator status from every
// status against the table of jobs.md §4 as written here by hand: the
// allowed ones change the status and leave an audit line, the refused ones
// change nothing and name what is allowed.
func TestVolumeStatusTransitions(t *testing.T) {
	f := newFixture(t)
	f.label(t, "V1", "", "", NoSlot, nil)
	// from → the targets (in OperatorStatuses order) that are allowed.
	allowed := map[Status]string{
		StatusAppend:   "Full Used Read-Only Disabled Archive Error",
		StatusFull:     "Used Read-Only Disabled Archive Error",
		StatusUsed:     "Append Full Read-Only Disabled Archive Error",
		StatusReadOnly: "Append Full Used Disabled Archive Error",
		StatusDisabled: "Append Full Used Read-Only Archive Error",
		StatusArchive:  "Full Used Read-Only Disabled Error",
		StatusError:    "Full Used Read-Only Disabled Archive",
		StatusPurged:   "Disabled Error",
		StatusRecycle:  "Disabled Error",
		StatusLabeling: "",
	}
	events := 0
	for from, want := range allowed {
		ok := map[string]bool{}
		for _, s := range strings.Fields(want) {
			ok[s] = true
		}
		for _, to := range OperatorStatuses {
			f.force(t, "V1", from)
			got, changed, err := f.s.SetVolumeStatus(f.ctx, "V1", to, "console:op", "tape damaged")
			m, gerr := f.s.GetMedia(f.ctx, "V1")
			if gerr != nil {
				t.Fatal(gerr)
			}
			switch {
			case from == to:
				if err != nil || changed || got != from {
					t.Errorf("%s → itself: changed %t, %v", from, changed, err)
				}
			case ok[string(to)]:
				events++
				if err != nil || !changed || got != from || m.Status != to {
					t.Errorf("%s → %s: from %s changed %t, status now %s, %v; want allowed", from, to, got, changed, m.Status, err)
				}
				if to == StatusError && m.ErrorReason != "tape damaged" {
					t.Errorf("%s → Error: reason %q", from, m.ErrorReason)
				}
				if to != StatusError && m.ErrorReason != "" {
					t.Errorf("%s → %s kept the error reason %q", from, to, m.ErrorReason)
				}
			default:
				var te *TransitionError
				if !errors.As(err, &te) || m.Status != from {
					t.Errorf("%s → %s: %v, status now %s; want a refusal", from, to, err, m.Status)
					continue
				}
				if want != "" && !strings.Contains(err.Error(), "it may go to "+strings.ReplaceAll(want, " ", ", ")) {
					t.Errorf("%s → %s: %q does not name the allowed statuses %q", from, to, err, want)
				}
			}
		}
	}
	evs, err := f.s.ListVolumeEvents(f.ctx, "V1")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != events {
		t.Fatalf("%d volume events, want one per allowed change (%d)", len(evs), events)
	}
	if e := evs[0]; e.Actor != "console:op" || e.Old == e.New || e.At.IsZero() {
		t.Fatalf("event %+v", e)
	}
	if _, _, err := f.s.SetVolumeStatus(f.ctx, "V1", StatusError, "op", ""); err == nil {
		t.Fatal("Error without a reason accepted")
	}
	if _, _, err := f.s.SetVolumeStatus(f.ctx, "NOPE", StatusFull, "op", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown volume: %v", err)
	}
}

// TestPoolLimitsCopiedAndReapplied: a volume takes its pool's limits when
// labelled, keeps them when the pool changes, and takes the new ones on
// ApplyPoolLimits.
func TestPoolLimitsCopiedAndReapplied(t *testing.T) {
	f := newFixture(t)
	if _, err := f.s.SyncPool(f.ctx, PoolSpec{Name: "Local", MaxVolumeBytes: 1000, VolumeRetention: 48 * time.Hour},
		PoolLimits{MaxVolumeJobs: 2, VolumeUseDuration: time.Hour, Recycle: false}); err != nil {
		t.Fatal(err)
	}
	f.label(t, "L1", "", "", NoSlot, nil)
	want := VolumeLimits{VolumeRetention: 48 * time.Hour, MaxVolumeBytes: 1000, MaxVolumeJobs: 2, VolumeUseDuration: time.Hour}
	if l, err := f.s.GetVolumeLimits(f.ctx, "L1"); err != nil || l != want {
		t.Fatalf("limits at label = %+v, %v; want %+v", l, err, want)
	}
	if _, err := f.s.SyncPool(f.ctx, PoolSpec{Name: "Local", MaxVolumeBytes: 5000}, PoolLimits{Recycle: true}); err != nil {
		t.Fatal(err)
	}
	if l, _ := f.s.GetVolumeLimits(f.ctx, "L1"); l != want {
		t.Fatalf("pool change altered the volume: %+v", l)
	}
	n, err := f.s.ApplyPoolLimits(f.ctx, "Local")
	if err != nil || n != 1 {
		t.Fatalf("ApplyPoolLimits = %d, %v", n, err)
	}
	want = VolumeLimits{MaxVolumeBytes: 5000, Recycle: true}
	if l, _ := f.s.GetVolumeLimits(f.ctx, "L1"); l != want {
		t.Fatalf("after ApplyPoolLimits: %+v, want %+v", l, want)
	}
	if n, _ := f.s.ApplyPoolLimits(f.ctx, "Local"); n != 0 {
		t.Fatalf("second ApplyPoolLimits changed %d volumes", n)
	}
	if _, err := f.s.ApplyPoolLimits(f.ctx, "Nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown pool: %v", err)
	}
	counts, err := f.s.PoolVolumeCounts(f.ctx)
	if err != nil || counts["Local"][StatusLabeling] != 1 || FormatCounts(counts["Local"]) != "Labeling 1" || FormatCounts(counts["Offsite"]) != "none" {
		t.Fatalf("counts = %v, %v", counts, err)
	}
}

// TestCheckVolumeLimits: bytes → Full, jobs → Used, use duration → Used,
// each with an audit line; a volume under its limits stays Append.
func TestCheckVolumeLimits(t *testing.T) {
	f := newFixture(t)
	if _, err := f.s.SyncPool(f.ctx, PoolSpec{Name: "Local", MaxVolumeBytes: 1000},
		PoolLimits{MaxVolumeJobs: 1, VolumeUseDuration: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"B1", "J1", "D1"} {
		f.label(t, v, "", "", NoSlot, nil)
		if err := f.s.MarkLabeled(f.ctx, v, t0, nil); err != nil {
			t.Fatal(err)
		}
	}
	check := func(v string, at time.Time, want Status, why string) {
		t.Helper()
		got, reason, err := f.s.CheckVolumeLimits(f.ctx, v, "director", at)
		if err != nil || got != want || !strings.Contains(reason, why) {
			t.Fatalf("CheckVolumeLimits(%s) = %s %q, %v; want %s (%s)", v, got, reason, err, want, why)
		}
	}
	if err := f.s.RecordWritten(f.ctx, "B1", 999, 1); err != nil {
		t.Fatal(err)
	}
	check("B1", t0, StatusAppend, "")
	if err := f.s.RecordWritten(f.ctx, "B1", 1, 1); err != nil {
		t.Fatal(err)
	}
	check("B1", t0, StatusFull, "max_volume_bytes")

	if _, err := f.s.pool.Exec(f.ctx, `INSERT INTO jobs (name, job_type, level, status) VALUES ('j', 'Backup', 'Full', 'T')`); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.pool.Exec(f.ctx, `INSERT INTO job_media (job_id, media_id, volume_index, part, tape_file, first_block)
		SELECT j.id, m.id, 1, 1, 1, 0 FROM jobs j, media m WHERE m.volume_name = 'J1'`); err != nil {
		t.Fatal(err)
	}
	check("J1", t0, StatusUsed, "max_volume_jobs reached (1 of 1 jobs)")
	if _, err := f.s.pool.Exec(f.ctx, `UPDATE job_media SET bytes = 5000`); err != nil {
		t.Fatal(err)
	}
	us, err := f.s.VolumeUsages(f.ctx, []string{"J1", "B1", "NOPE"})
	if err != nil || len(us) != 2 || us["J1"].Jobs != 1 || us["J1"].Bytes != 5000 || us["B1"].Bytes != 1000 || us["J1"].Limits.MaxVolumeJobs != 1 {
		t.Fatalf("VolumeUsages = %+v, %v (bytes: the larger of bytes_written and the parts)", us, err)
	}
	check("J1", t0, StatusUsed, "") // not Append any more: unchanged

	if err := f.s.RecordWritten(f.ctx, "D1", 10, 1); err != nil { // first written at t0
		t.Fatal(err)
	}
	check("D1", t0.Add(24*time.Hour), StatusAppend, "")
	check("D1", t0.Add(24*time.Hour+time.Second), StatusUsed, "volume_use_duration")

	evs, err := f.s.ListVolumeEvents(f.ctx, "")
	if err != nil || len(evs) != 3 {
		t.Fatalf("events = %+v, %v; want 3", evs, err)
	}
}
