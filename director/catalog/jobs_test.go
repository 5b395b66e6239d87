package catalog

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	idHome  = "1111111111111111111111111111111111111111111111111111111111111111"
	idHome2 = "2222222222222222222222222222222222222222222222222222222222222222"
)

// backup creates a backup of job nightly/web1/home (identity id) requested
// at level, decides its level at the clock's time and starts it.
func (f *fixture) backup(t *testing.T, job, client, id, level string, maxFull time.Duration) (int64, LevelDecision) {
	t.Helper()
	jid, err := f.s.CreateJob(f.ctx, JobNew{Name: job, Type: TypeBackup, Level: level, Client: client, Fileset: "home",
		FilesetIdentity: id, Pool: "Local", Storage: "sd1"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.s.SinceTime(f.ctx, job, client, id, level, f.clock.Now(), maxFull)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.s.StartJob(f.ctx, jid, d, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	return jid, d
}

func (f *fixture) end(t *testing.T, id int64, st JobStatus) {
	t.Helper()
	sum := JobSummary{EndedAt: f.clock.Now().Add(time.Minute)}
	if st == JobError || st == JobFatal {
		sum.Error = "client went away"
	}
	if err := f.s.EndJob(f.ctx, id, st, sum); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
}

func TestJobStateMachine(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	id, err := f.s.CreateJob(ctx, JobNew{Name: "nightly", Type: TypeBackup, Level: LevelIncremental, Client: "web1",
		Fileset: "home", FilesetIdentity: idHome, Pool: "Local", Storage: "sd1", Priority: 5, ScheduledAt: &t0})
	if err != nil {
		t.Fatal(err)
	}
	j, err := f.s.GetJob(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != JobCreated || j.Pool != "Local" || j.Storage != "sd1" || j.Priority != 5 || j.Level != LevelIncremental || j.StartedAt != nil {
		t.Fatalf("created job = %+v", j)
	}
	// Created → waiting → R → waiting for media → R → T (+warnings = W).
	if err := f.s.SetJobStatus(ctx, id, JobWaitPriority); err != nil {
		t.Fatal(err)
	}
	d := LevelDecision{Level: LevelFull, UpgradedFrom: LevelIncremental, Reason: "no prior Full; upgraded from Incremental"}
	if err := f.s.StartJob(ctx, id, d, t0); err != nil {
		t.Fatal(err)
	}
	var se *JobStateError
	if err := f.s.StartJob(ctx, id, d, t0); !errors.As(err, &se) || se.JobID != id || se.Status != JobRunning ||
		!strings.Contains(err.Error(), "job "+itoa(id)+" (nightly)") {
		t.Fatalf("second StartJob = %v", err)
	}
	if err := f.s.SetJobStatus(ctx, id, JobWaitMedia); err != nil {
		t.Fatal(err)
	}
	if err := f.s.SetJobStatus(ctx, id, JobRunning); err != nil {
		t.Fatal(err)
	}
	var iv *InvalidError
	if err := f.s.SetJobStatus(ctx, id, JobOK); !errors.As(err, &iv) {
		t.Fatalf("SetJobStatus(T) = %v", err)
	}
	if err := f.s.EndJob(ctx, id, JobError, JobSummary{EndedAt: t0}); !errors.As(err, &iv) {
		t.Fatalf("EndJob(E) without an error text = %v", err)
	}
	end := t0.Add(100 * time.Second)
	// More than 2 GiB: the parameters are bigint (a restore of 2 GiB once
	// failed here, typed int4 by "$5 > 0").
	if err := f.s.EndJob(ctx, id, JobOK, JobSummary{EndedAt: end, Files: 10, Bytes: 3e9, Warnings: 2}); err != nil {
		t.Fatal(err)
	}
	j, err = f.s.GetJob(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != JobWarnings || j.Files != 10 || j.Bytes != 3e9 || j.Warnings != 2 || j.Level != LevelFull ||
		j.UpgradedFrom != LevelIncremental || j.UpgradeReason != d.Reason || j.Rate() != 3e7 || !j.StartedAt.Equal(t0) {
		t.Fatalf("ended job = %+v", j)
	}
	for _, try := range []func() error{
		func() error { return f.s.EndJob(ctx, id, JobCancelled, JobSummary{EndedAt: end}) },
		func() error { return f.s.SetJobStatus(ctx, id, JobRunning) },
		func() error { _, err := f.s.BeginFiles(ctx, id); return err },
	} {
		if err := try(); !errors.As(err, &se) || se.Status != JobWarnings {
			t.Errorf("on an ended job: %v", err)
		}
	}
	// A created job may be cancelled, not ended OK.
	id2, err := f.s.CreateJob(ctx, JobNew{Name: "adm", Type: TypeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.s.EndJob(ctx, id2, JobOK, JobSummary{EndedAt: t0}); !errors.As(err, &se) || se.Status != JobCreated {
		t.Fatalf("EndJob(T) of a created job = %v", err)
	}
	if err := f.s.EndJob(ctx, id2, JobCancelled, JobSummary{EndedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.GetJob(ctx, 999999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetJob(unknown) = %v", err)
	}
	if _, err := f.s.CreateJob(ctx, JobNew{Name: "x", Type: TypeBackup, Pool: "Nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("CreateJob with an unknown pool = %v", err)
	}
	if _, err := f.s.CreateJob(ctx, JobNew{Name: "x", Type: "Copy"}); !errors.As(err, &iv) {
		t.Fatalf("CreateJob of type Copy = %v", err)
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

func TestSinceTimeAndUpgrades(t *testing.T) {
	f := newFixture(t)
	since := func(level, id string, maxFull time.Duration) LevelDecision {
		t.Helper()
		d, err := f.s.SinceTime(f.ctx, "nightly", "web1", id, level, f.clock.Now(), maxFull)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// No prior Full.
	d := since(LevelIncremental, idHome, 0)
	if d.Level != LevelFull || d.UpgradedFrom != LevelIncremental || d.Since != nil ||
		d.Reason != `no prior Full of job "nightly" for client "web1"; upgraded from Incremental` {
		t.Fatalf("no prior Full: %+v", d)
	}
	if d := since(LevelDifferential, idHome, 0); d.Level != LevelFull || d.UpgradedFrom != LevelDifferential ||
		!strings.HasSuffix(d.Reason, "upgraded from Differential") {
		t.Fatalf("Differential with no prior Full: %+v", d)
	}
	// A failed Full does not count.
	failed, _ := f.backup(t, "nightly", "web1", idHome, LevelFull, 0)
	f.end(t, failed, JobError)
	if d := since(LevelIncremental, idHome, 0); d.Level != LevelFull {
		t.Fatalf("after a failed Full: %+v", d)
	}
	// The upgraded job itself records its upgrade.
	full, fd := f.backup(t, "nightly", "web1", idHome, LevelIncremental, 0)
	fullStart := f.clock.Now()
	if j, _ := f.s.GetJob(f.ctx, full); j.Level != LevelFull || j.UpgradedFrom != LevelIncremental || j.UpgradeReason != fd.Reason {
		t.Fatalf("upgraded job row = %+v", j)
	}
	f.end(t, full, JobOK)
	// Incremental: since the Full's start.
	d = since(LevelIncremental, idHome, 0)
	if d.Level != LevelIncremental || d.UpgradedFrom != "" || d.Since == nil || !d.Since.Equal(fullStart) || d.BaseJobID != full {
		t.Fatalf("Incremental after the Full: %+v", d)
	}
	inc, _ := f.backup(t, "nightly", "web1", idHome, LevelIncremental, 0)
	incStart := f.clock.Now()
	f.end(t, inc, JobWarnings) // W counts as successful
	// A job of another client and a failed Incremental do not move it.
	other, _ := f.backup(t, "nightly", "web2", idHome, LevelFull, 0)
	f.end(t, other, JobOK)
	bad, _ := f.backup(t, "nightly", "web1", idHome, LevelIncremental, 0)
	f.end(t, bad, JobFatal)
	if d := since(LevelIncremental, idHome, 0); !d.Since.Equal(incStart) || d.BaseJobID != inc {
		t.Fatalf("Incremental after an Incremental: %+v (want since %v)", d, incStart)
	}
	// Differential: since the Full's start.
	if d := since(LevelDifferential, idHome, 0); d.Level != LevelDifferential || !d.Since.Equal(fullStart) {
		t.Fatalf("Differential: %+v", d)
	}
	// Full stays Full.
	if d := since(LevelFull, idHome, 0); d.Level != LevelFull || d.UpgradedFrom != "" || d.Reason != "" {
		t.Fatalf("Full: %+v", d)
	}
	// max_full_interval: the Full started 4 h ago.
	if d := since(LevelIncremental, idHome, 5*time.Hour); d.Level != LevelIncremental {
		t.Fatalf("within max_full_interval: %+v", d)
	}
	d = since(LevelIncremental, idHome, 3*time.Hour)
	if d.Level != LevelFull || d.UpgradedFrom != LevelIncremental || !strings.Contains(d.Reason, "more than max_full_interval 3h0m0s ago") ||
		!strings.Contains(d.Reason, "job "+itoa(full)) {
		t.Fatalf("past max_full_interval: %+v", d)
	}
	// The fileset changed: its identity differs from the last Full's.
	d = since(LevelDifferential, idHome2, 0)
	if d.Level != LevelFull || d.UpgradedFrom != LevelDifferential ||
		d.Reason != `fileset "home" of job "nightly" changed since the last Full for client "web1" (identity 111111111111… → 222222222222…); upgraded from Differential` {
		t.Fatalf("changed fileset: %+v", d)
	}
	var iv *InvalidError
	if _, err := f.s.SinceTime(f.ctx, "nightly", "web1", idHome, "Base", f.clock.Now(), 0); !errors.As(err, &iv) {
		t.Fatalf("level Base: %v", err)
	}
}
