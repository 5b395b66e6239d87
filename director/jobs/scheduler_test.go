package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin wherever the tests run

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/configs/schedule"
	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

func berlin(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// weeklyCycle is the WeeklyCycle with pool overrides: the Full
// into Monthly (Pool=), the Differentials into the job's
// differential_pool, the Incrementals into the job's pool.
var weeklyLines = []string{"Full Pool=Monthly 1st sat at 21:00", "Differential 2nd-5th sat at 21:00", "Incremental mon-fri at 21:00"}

func testSchedule(t testing.TB, name string, loc *time.Location, lines ...string) configs.Schedule {
	t.Helper()
	p, _, err := schedule.ParseSchedule(name, lines)
	if err != nil {
		t.Fatal(err)
	}
	return configs.Schedule{Name: name, Run: lines, Timezone: loc.String(), Location: loc, Parsed: p}
}

// fakeTimer is the scheduler's After: each wait it asks for is sent to
// reqs; the test advances the clock by it and fires.
type fakeTimer struct {
	reqs chan time.Duration
	fire chan time.Time
}

func newFakeTimer() *fakeTimer {
	return &fakeTimer{reqs: make(chan time.Duration), fire: make(chan time.Time)}
}

func (f *fakeTimer) After(d time.Duration) <-chan time.Time {
	f.reqs <- d
	return f.fire
}

// runUntil plays the timer until the clock would pass end: every wait
// the scheduler asks for passes at once on the clock. When it returns,
// the scheduler has handled every tick up to the clock and waits.
func (f *fakeTimer) runUntil(t *testing.T, c *clock, end time.Time) int {
	t.Helper()
	n := 0
	for {
		var d time.Duration
		select {
		case d = <-f.reqs:
		case <-time.After(30 * time.Second):
			t.Fatal("the scheduler asked for no wait")
		}
		if c.Now().Add(d).After(end) {
			return n
		}
		c.Advance(d)
		f.fire <- c.Now()
		n++
	}
}

type recorder struct {
	mu   sync.Mutex
	reqs []Request
	err  func(Request) error
}

func (r *recorder) start(_ context.Context, req Request) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		if err := r.err(req); err != nil {
			return 0, err
		}
	}
	r.reqs = append(r.reqs, req)
	return int64(len(r.reqs)), nil
}

func weekConfig(t testing.TB, loc *time.Location) *configs.Director {
	cfg := &configs.Director{Name: "director", Schedules: []configs.Schedule{testSchedule(t, "WeeklyCycle", loc, weeklyLines...)}}
	cfg.Pools = []configs.Pool{{Name: "Local"}, {Name: "Weekly"}, {Name: "Monthly"}}
	for _, j := range []configs.Job{
		{Name: "web1-home", Client: "web1", Level: configs.LevelIncremental, Pool: "Local", DifferentialPool: "Weekly", Storage: "sd1", Schedule: "WeeklyCycle", Enabled: true, Priority: 10},
		{Name: "web2-home", Client: "web2", Level: configs.LevelIncremental, Pool: "Local", Storage: "sd1", Schedule: "WeeklyCycle", Enabled: false, Priority: 10},
		{Name: "web2-manual", Client: "web2", Level: configs.LevelFull, Pool: "Local", Storage: "sd1", Enabled: true, Priority: 10},
	} {
		j.CatchUp = 12 * time.Hour
		cfg.Jobs = append(cfg.Jobs, j)
	}
	return cfg
}

// A simulated week of WeeklyCycle (Europe/Berlin) fires exactly the
// expected runs with their levels and pools; a disabled job and a job
// without a schedule fire nothing.
func TestSchedulerWeekOfWeeklyCycle(t *testing.T) {
	loc := berlin(t)
	cfg := weekConfig(t, loc)
	c := &clock{t: time.Date(2026, 8, 1, 0, 0, 0, 0, loc)} // Saturday 1 August
	ft := newFakeTimer()
	rec := &recorder{}
	s := &Scheduler{cfg: cfg, director: "director", clock: c.Now, after: ft.After, log: slog.New(slog.NewTextHandler(&testenv.LogBuffer{}, nil)), start: rec.start}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ticks := ft.runUntil(t, c, time.Date(2026, 8, 8, 23, 59, 0, 0, loc))
	s.Stop()
	var got []string
	for _, r := range rec.reqs {
		eff := r.apply(*mustJob(t, cfg, r.Job))
		level := r.Level
		got = append(got, fmt.Sprintf("%s %s %s %s late=%q dup=%t", r.ScheduledAt.In(loc).Format("Mon 01-02 15:04"), r.Job, level, eff.PoolFor(level), r.Late, r.NoDuplicates))
	}
	want := []string{
		`Sat 08-01 21:00 web1-home Full Monthly late="" dup=true`,
		`Mon 08-03 21:00 web1-home Incremental Local late="" dup=true`,
		`Tue 08-04 21:00 web1-home Incremental Local late="" dup=true`,
		`Wed 08-05 21:00 web1-home Incremental Local late="" dup=true`,
		`Thu 08-06 21:00 web1-home Incremental Local late="" dup=true`,
		`Fri 08-07 21:00 web1-home Incremental Local late="" dup=true`,
		`Sat 08-08 21:00 web1-home Differential Weekly late="" dup=true`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("fired:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Each run fired at its minute: the clock stood on it.
	for _, r := range rec.reqs {
		if r.ScheduledAt.Second() != 0 || !strings.HasPrefix(r.Actor, "scheduler (WeeklyCycle line ") {
			t.Errorf("request %+v", r)
		}
	}
	// The preview says the same.
	var prev []string
	for _, p := range Preview(cfg, time.Date(2026, 8, 1, 0, 0, 0, 0, loc), time.Date(2026, 8, 9, 0, 0, 0, 0, loc), PreviewFilter{}) {
		prev = append(prev, fmt.Sprintf("%s %s %s %s", p.At.In(loc).Format("Mon 01-02 15:04"), p.Job, p.Level, p.Pool))
	}
	if len(prev) != len(want) || prev[0] != "Sat 08-01 21:00 web1-home Full Monthly" || prev[6] != "Sat 08-08 21:00 web1-home Differential Weekly" {
		t.Errorf("preview:\n%s", strings.Join(prev, "\n"))
	}
	if ticks < 7 || ticks > 8*24+8 {
		t.Errorf("%d ticks for a week", ticks)
	}
}

func mustJob(t testing.TB, cfg *configs.Director, name string) *configs.Job {
	t.Helper()
	j, ok := cfg.JobNamed(name)
	if !ok {
		t.Fatalf("no job %s", name)
	}
	return j
}

// scheduledWorld is a world whose jobs web1-home and web2-home follow
// WeeklyCycle in Europe/Berlin, their Incrementals into pool Nightly
// (volumes N1, N2 in slots 3, 4), with catch_up catchUp.
func scheduledWorld(t *testing.T, catchUp time.Duration) (*world, *time.Location) {
	t.Helper()
	w := newWorld(t, 2, "V1", "V2")
	loc := berlin(t)
	no := false
	w.cfg.Pools = append(w.cfg.Pools, configs.Pool{Name: "Nightly", Storage: "sd1", Encrypted: &no})
	if _, err := w.store.EnsurePool(w.ctx, catalog.PoolSpec{Name: "Nightly", Storage: "sd1"}); err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{"N1", "N2"} {
		if _, err := w.store.CreateLabeling(w.ctx, catalog.MediaNew{Volume: v, Barcode: v, Pool: "Nightly", Storage: "sd1", Slot: 3 + i}); err != nil {
			t.Fatal(err)
		}
		if err := w.store.MarkLabeled(w.ctx, v, t0, nil); err != nil {
			t.Fatal(err)
		}
		w.sd.Barcodes = append(w.sd.Barcodes, v)
	}
	w.cfg.Schedules = []configs.Schedule{testSchedule(t, "WeeklyCycle", loc, "Full 1st sat at 21:00", "Differential 2nd-5th sat at 21:00",
		"Incremental Pool=Nightly mon-fri at 21:00")}
	for i := range w.cfg.Jobs {
		if w.cfg.Jobs[i].Name != "web2-urgent" {
			w.cfg.Jobs[i].Schedule, w.cfg.Jobs[i].Enabled, w.cfg.Jobs[i].CatchUp = "WeeklyCycle", true, catchUp
		}
	}
	return w, loc
}

// never is an After that never fires (the scheduler's loop waits).
func never(time.Duration) <-chan time.Time { return nil }

func (w *world) jobsNamed(name string) []catalog.Job {
	w.t.Helper()
	js, err := w.store.ListJobs(w.ctx, catalog.JobFilter{Name: name})
	if err != nil {
		w.t.Fatal(err)
	}
	return js
}

// A director down from Friday 20:00 to Saturday 08:00 catches up one run
// per job at start-up: the Friday 21:00 one, late, with its Run line's
// pool; the job record keeps when it was scheduled.
func TestSchedulerCatchesUpTheLatestMissedRun(t *testing.T) {
	w, loc := scheduledWorld(t, 12*time.Hour)
	down := time.Date(2026, 8, 7, 20, 0, 0, 0, loc)
	if err := w.store.SetSchedulerTick(w.ctx, "director", down); err != nil {
		t.Fatal(err)
	}
	up := time.Date(2026, 8, 8, 8, 0, 0, 0, loc)
	w.clock.mu.Lock()
	w.clock.t = up
	w.clock.mu.Unlock()
	s := NewScheduler(w.r)
	s.after = never
	if err := s.Start(w.ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	friday := time.Date(2026, 8, 7, 21, 0, 0, 0, loc)
	for _, name := range []string{"web1-home", "web2-home"} {
		js := w.jobsNamed(name)
		if len(js) != 1 {
			t.Fatalf("%s: %d jobs, want 1: %+v", name, len(js), js)
		}
		j := w.wait(js[0].ID)
		if j.Status != catalog.JobOK || j.ScheduledAt == nil || !j.ScheduledAt.Equal(friday) || j.Pool != "Nightly" || j.Level != catalog.LevelFull {
			t.Errorf("%s: %s %s scheduled %v pool %s level %s (upgraded from %s)", name, j.Status, j.Error, j.ScheduledAt, j.Pool, j.Level, j.UpgradedFrom)
		}
		if rep := Report(j); !strings.Contains(rep, "Scheduled time:        2026-08-07 19:00:00Z (started 11h0m0s late)") {
			t.Errorf("%s's report:\n%s", name, rep)
		}
		if log := w.joblog(j.ID); !strings.Contains(log, "warning: scheduled 2026-08-07 21:00 CEST, started 2026-08-08 08:00 CEST: 11h0m0s late, the director was down (catch_up 12h0m0s)") {
			t.Errorf("%s's log:\n%s", name, log)
		}
	}
	if js := w.jobsNamed("web2-urgent"); len(js) != 0 {
		t.Errorf("web2-urgent has no schedule but ran: %+v", js)
	}
	if tick, ok, err := w.store.SchedulerTick(w.ctx, "director"); err != nil || !ok || !tick.Equal(up) {
		t.Errorf("tick after start-up: %v %t %v", tick, ok, err)
	}
	if ms, err := w.store.MissedRuns(w.ctx, "director", time.Time{}); err != nil || len(ms) != 0 {
		t.Errorf("missed: %+v %v", ms, err)
	}
}

// With catch_up 0 (Bareos) a director down from Wednesday 20:00 to
// Saturday 08:00 starts nothing and lists the missed runs; with catch_up
// 12h only the latest (Friday) runs, the Wednesday and Thursday ones are
// listed as missed.
func TestSchedulerMissedRuns(t *testing.T) {
	for _, tc := range []struct {
		catchUp time.Duration
		started int
		reason  string
	}{
		{0, 0, "the director was down; catch_up is 0: missed runs are skipped"},
		{12 * time.Hour, 1, "the director was down; only the latest missed run (2026-08-07 21:00 CEST) is caught up"},
	} {
		t.Run(tc.catchUp.String(), func(t *testing.T) {
			w, loc := scheduledWorld(t, tc.catchUp)
			if err := w.store.SetSchedulerTick(w.ctx, "director", time.Date(2026, 8, 5, 20, 0, 0, 0, loc)); err != nil {
				t.Fatal(err)
			}
			w.clock.mu.Lock()
			w.clock.t = time.Date(2026, 8, 8, 8, 0, 0, 0, loc)
			w.clock.mu.Unlock()
			s := NewScheduler(w.r)
			s.after = never
			if err := s.Start(w.ctx); err != nil {
				t.Fatal(err)
			}
			defer s.Stop()
			for _, name := range []string{"web1-home", "web2-home"} {
				js := w.jobsNamed(name)
				if len(js) != tc.started {
					t.Fatalf("%s: %d jobs started, want %d", name, len(js), tc.started)
				}
				for _, j := range js {
					w.wait(j.ID)
				}
			}
			ms, err := w.store.MissedRuns(w.ctx, "director", time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, m.ScheduledAt.In(loc).Format("Mon 15:04 ")+m.Job+" "+m.Level+" "+m.Pool)
				if m.Reason != tc.reason {
					t.Errorf("reason %q", m.Reason)
				}
			}
			want := []string{"Wed 21:00 web1-home Incremental Nightly", "Wed 21:00 web2-home Incremental Nightly",
				"Thu 21:00 web1-home Incremental Nightly", "Thu 21:00 web2-home Incremental Nightly"}
			if tc.catchUp == 0 {
				want = append(want, "Fri 21:00 web1-home Incremental Nightly", "Fri 21:00 web2-home Incremental Nightly")
			}
			if strings.Join(got, "; ") != strings.Join(want, "; ") {
				t.Errorf("missed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// A run of a job that is still running is not queued again: it is
// skipped and logged as Bareos does; the other job's run starts.
func TestSchedulerSkipsAJobAlreadyRunning(t *testing.T) {
	w, loc := scheduledWorld(t, 12*time.Hour)
	w.sd.Hold = true
	a := w.start("web1-home", "Full")
	w.open()
	s := NewScheduler(w.r)
	s.tick = time.Date(2026, 8, 7, 20, 59, 0, 0, loc)
	s.fireDue(w.ctx, time.Date(2026, 8, 7, 21, 0, 0, 0, loc), "test")
	if js := w.jobsNamed("web1-home"); len(js) != 1 {
		t.Errorf("web1-home queued twice: %d jobs", len(js))
	}
	if !strings.Contains(w.log.String(), fmt.Sprintf("job web1-home already running (JobId %d): run skipped", a)) {
		t.Errorf("log:\n%s", w.log.String())
	}
	js := w.jobsNamed("web2-home")
	if len(js) != 1 {
		t.Fatalf("web2-home: %d jobs", len(js))
	}
	close(w.sd.Released)
	for _, id := range []int64{a, js[0].ID} {
		if j := w.wait(id); j.Status != catalog.JobOK {
			t.Errorf("job %d: %s %s", id, j.Status, j.Error)
		}
	}
	// A manual run may still run a job twice (it waits for its
	// max_concurrent_jobs); the scheduler's requests may not.
	if _, err := w.r.Run(w.ctx, Request{Job: "web1-home", NoDuplicates: true}); err != nil {
		t.Fatalf("nothing runs now: %v", err)
	}
}

// A job with allow_duplicate_jobs is queued by its schedule even while
// a run of it is running.
func TestSchedulerAllowDuplicateJobs(t *testing.T) {
	w, loc := scheduledWorld(t, 12*time.Hour)
	for i := range w.cfg.Jobs {
		if w.cfg.Jobs[i].Name == "web1-home" {
			w.cfg.Jobs[i].AllowDuplicateJobs = true
		}
	}
	w.sd.Hold = true
	a := w.start("web1-home", "Full")
	w.open()
	s := NewScheduler(w.r)
	s.tick = time.Date(2026, 8, 7, 20, 59, 0, 0, loc)
	s.fireDue(w.ctx, time.Date(2026, 8, 7, 21, 0, 0, 0, loc), "test")
	js := w.jobsNamed("web1-home")
	if len(js) != 2 {
		t.Fatalf("web1-home: %d jobs, want the running one and the scheduled one", len(js))
	}
	if strings.Contains(w.log.String(), "run skipped") {
		t.Errorf("a run was skipped:\n%s", w.log.String())
	}
	close(w.sd.Released)
	for _, j := range js {
		if got := w.wait(j.ID); got.Status != catalog.JobOK {
			t.Errorf("job %d (first %d): %s %s", j.ID, a, got.Status, got.Error)
		}
	}
}

// Six jobs fired at one minute on a two-drive storage: two of priority 5
// run; the other priority-5 jobs wait for their client's limit and a
// drive; the two of priority 10 wait while any priority-5 job is queued
// or running, and only then run.
func TestSchedulerSixJobsTwoDrives(t *testing.T) {
	w := newWorld(t, 2, "V1", "V2", "V3", "V4", "V5", "V6")
	loc := berlin(t)
	w.sd.Hold = true
	w.cfg.Schedules = []configs.Schedule{testSchedule(t, "Nightly", loc, "at 21:00")}
	w.cfg.Jobs = nil
	for _, j := range []struct {
		name, client string
		prio         int
	}{{"A", "web1", 5}, {"B", "web1", 5}, {"C", "web2", 5}, {"D", "web2", 5}, {"E", "web2", 10}, {"F", "web1", 10}} {
		w.cfg.Jobs = append(w.cfg.Jobs, configs.Job{Name: j.name, Type: configs.JobBackup, Level: configs.LevelFull, Client: j.client, Fileset: "home",
			Storage: "sd1", Pool: "Local", Priority: j.prio, MaxConcurrentJobs: 1, ClientIdleTimeout: 2 * time.Minute, Schedule: "Nightly", Enabled: true})
	}
	s := NewScheduler(w.r)
	s.tick = time.Date(2026, 8, 7, 20, 59, 0, 0, loc)
	s.fireDue(w.ctx, time.Date(2026, 8, 7, 21, 0, 0, 0, loc), "test")
	opened := []string{w.open().Job.Job, w.open().Job.Job}
	byJob := func() map[string]Status {
		m := map[string]Status{}
		for _, st := range w.r.Active() {
			m[st.Job] = st
		}
		return m
	}
	// Steady: four jobs wait, each saying why.
	testenv.WaitFor(t, "four jobs waiting", func() bool {
		n := 0
		for _, st := range byJob() {
			if st.Why != "" && st.Why != "created" {
				n++
			}
		}
		return n == 4
	})
	st := byJob()
	for _, j := range opened {
		if st[j].Why != "" || (j != "A" && j != "B" && j != "C" && j != "D") {
			t.Errorf("running %s: %+v", j, st[j])
		}
	}
	reasons := map[catalog.JobStatus]int{}
	for _, name := range []string{"A", "B", "C", "D", "E", "F"} {
		if slices.Contains(opened, name) {
			continue
		}
		// The catalog gets the waiting status just after the job's
		// status in memory says why.
		var j catalog.Job
		testenv.WaitFor(t, name+"'s waiting status in the catalog", func() bool {
			var err error
			j, err = w.store.GetJob(w.ctx, st[name].JobID)
			if err != nil {
				t.Fatal(err)
			}
			return j.Status.Waiting()
		})
		reasons[j.Status]++
		switch j.Status {
		case catalog.JobWaitPriority:
			if name != "E" && name != "F" || !strings.Contains(st[name].Why, "priority 5) is queued or running; priority 10 waits for it") {
				t.Errorf("%s waits for priority: %q", name, st[name].Why)
			}
		case catalog.JobWaitClientResource:
			if name != "A" && name != "B" || st[name].Why != "waiting: client web1 already runs 1 of max_concurrent_jobs 1" {
				t.Errorf("%s waits for its client: %q", name, st[name].Why)
			}
		case catalog.JobWaitStorageResource:
			if st[name].Why != "waiting for a drive on sd1" {
				t.Errorf("%s waits for a drive: %q", name, st[name].Why)
			}
		default:
			t.Errorf("%s: status %s (%q)", name, j.Status, st[name].Why)
		}
	}
	if reasons[catalog.JobWaitPriority] != 2 || reasons[catalog.JobWaitClientResource] != 1 || reasons[catalog.JobWaitStorageResource] != 1 {
		t.Errorf("waiting: %v", reasons)
	}
	close(w.sd.Released)
	for range 4 {
		opened = append(opened, w.open().Job.Job)
	}
	if last := opened[4:]; !slices.Contains(last, "E") || !slices.Contains(last, "F") {
		t.Errorf("sessions opened in the order %v: E and F (priority 10) must come last", opened)
	}
	for _, j := range w.r.Active() {
		w.wait(j.JobID)
	}
	for _, name := range []string{"A", "B", "C", "D", "E", "F"} {
		if js := w.jobsNamed(name); len(js) != 1 || js[0].Status != catalog.JobOK || js[0].ScheduledAt == nil {
			t.Errorf("%s: %+v", name, js)
		}
	}
}

// Across both DST transitions of Europe/Berlin the loop fires a 02:30 run
// once a day: at 03:00 CEST when 02:30 does not exist, at the first 02:30
// when it happens twice.
func TestSchedulerAcrossDST(t *testing.T) {
	loc := berlin(t)
	cfg := &configs.Director{Name: "director", Schedules: []configs.Schedule{testSchedule(t, "Night", loc, "Incremental at 02:30")},
		Jobs: []configs.Job{{Name: "j", Client: "c", Level: configs.LevelIncremental, Pool: "Local", Storage: "sd1", Schedule: "Night", Enabled: true, Priority: 10}}}
	for _, tc := range []struct {
		from time.Time
		want []string
	}{
		{time.Date(2026, 3, 28, 0, 0, 0, 0, loc), []string{"2026-03-28 02:30 +0100", "2026-03-29 03:00 +0200", "2026-03-30 02:30 +0200"}},
		{time.Date(2026, 10, 24, 0, 0, 0, 0, loc), []string{"2026-10-24 02:30 +0200", "2026-10-25 02:30 +0200", "2026-10-26 02:30 +0100"}},
	} {
		c := &clock{t: tc.from}
		ft := newFakeTimer()
		rec := &recorder{}
		s := &Scheduler{cfg: cfg, director: "director", clock: c.Now, after: ft.After, log: slog.New(slog.NewTextHandler(&testenv.LogBuffer{}, nil)), start: rec.start}
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ft.runUntil(t, c, tc.from.Add(3*24*time.Hour))
		s.Stop()
		var got []string
		for _, r := range rec.reqs {
			got = append(got, r.ScheduledAt.In(loc).Format("2006-01-02 15:04 -0700"))
		}
		if strings.Join(got, ", ") != strings.Join(tc.want, ", ") {
			t.Errorf("from %v fired %v, want %v", tc.from, got, tc.want)
		}
	}
}
