package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/director/catalog"
)

// Planned is one run a schedule fires: a [[job]] at a time, with its Run
// line's overrides applied (the level and pool the run asks for; a run
// whose level is upgraded to Full at its start takes the Full pool).
type Planned struct {
	At       time.Time `json:"at"`
	Job      string    `json:"job"`
	Client   string    `json:"client"`
	Schedule string    `json:"schedule"`
	Line     int       `json:"line"` // the schedule's Run entry, from 1
	Level    string    `json:"level"`
	Pool     string    `json:"pool"`
	Storage  string    `json:"storage"`
	Priority int       `json:"priority"`
	// Moved: the line's local time did not exist that day (clocks sprang
	// forward) and the run fires at the first minute after it.
	Moved bool `json:"moved,omitempty"`
	// Upgraded is why the level will be Full (Resolve only).
	Upgraded string `json:"upgraded,omitempty"`

	req Request
}

// PreviewFilter narrows a preview ("" : any).
type PreviewFilter struct {
	Job, Client, Schedule string
}

// Preview lists every run the enabled [[job]]s with a schedule fire with
// from <= At < to, in order of (At, job, line). It is pure: it reads the
// configuration only.
func Preview(cfg *configs.Director, from, to time.Time, f PreviewFilter) []Planned {
	var out []Planned
	for i := range cfg.Jobs {
		jc := &cfg.Jobs[i]
		if !jc.Enabled || jc.Schedule == "" || f.Job != "" && jc.Name != f.Job || f.Client != "" && jc.Client != f.Client ||
			f.Schedule != "" && jc.Schedule != f.Schedule {
			continue
		}
		sc, ok := cfg.ScheduleNamed(jc.Schedule)
		if !ok || sc.Parsed == nil {
			continue
		}
		for fire := range sc.Parsed.Between(from, to, sc.Location) {
			req := Request{Job: jc.Name, Level: fire.Level, Pool: fire.Pool, FullPool: fire.FullPool, IncrementalPool: fire.IncrementalPool,
				DifferentialPool: fire.DifferentialPool, Storage: fire.Storage, Actor: fmt.Sprintf("scheduler (%s line %d)", sc.Name, fire.Line),
				NoDuplicates: true}
			if fire.HasPriority {
				req.Priority = fire.Priority
			}
			eff := req.apply(*jc)
			level := fire.Level
			if level == "" {
				level = jc.Level
			}
			pool := eff.PoolFor(level)
			at := fire.At
			req.ScheduledAt = &at
			out = append(out, Planned{At: fire.At, Job: jc.Name, Client: jc.Client, Schedule: sc.Name, Line: fire.Line, Level: level, Pool: pool,
				Storage: storageFor(cfg, &eff, req.Storage, pool), Priority: eff.Priority, Moved: fire.Moved, req: req})
		}
	}
	slices.SortStableFunc(out, func(a, b Planned) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		if c := strings.Compare(a.Job, b.Job); c != 0 {
			return c
		}
		return a.Line - b.Line
	})
	return out
}

// TickStore keeps the scheduler's last tick and its missed runs
// (*catalog.Store).
type TickStore interface {
	SchedulerTick(ctx context.Context, director string) (time.Time, bool, error)
	SetSchedulerTick(ctx context.Context, director string, at time.Time) error
	RecordMissed(ctx context.Context, director string, runs []catalog.MissedRun) error
}

// Scheduler fires the Run lines of every enabled [[job]] that has a
// schedule, at their minute in the schedule's time zone, through the
// runner (on the runner's clock). A run of a job that is still queued or
// running is skipped and logged. Its last tick is kept in the catalog:
// at start-up the latest run of each job missed while the director was
// down starts late if it is less than the job's catch_up old; the others
// are recorded as missed.
type Scheduler struct {
	cfg      *configs.Director
	director string
	clock    func() time.Time
	after    func(time.Duration) <-chan time.Time
	log      *slog.Logger
	state    TickStore                                     // nil: nothing is kept
	start    func(context.Context, Request) (int64, error) // Runner.Run
	ctx      context.Context
	cancel   context.CancelFunc

	mu      sync.Mutex
	tick    time.Time // every run at or before it was fired or judged
	started bool
	done    chan struct{}
}

// maxWait bounds one wait of the scheduler (a wall clock that jumps is
// noticed within it).
const maxWait = time.Hour

// lateAfter: a run that fires later than this after its minute is late
// (Bareos drops a run more than a minute late).
const lateAfter = time.Minute

// NewScheduler returns the scheduler of the runner's configuration; its
// state is kept in the runner's catalog under the director's name.
func NewScheduler(r *Runner) *Scheduler {
	s := &Scheduler{cfg: r.o.Config, director: r.o.Config.Name, clock: r.o.Clock, after: r.o.After, log: r.log, start: r.Run}
	if r.o.Catalog != nil {
		s.state = r.o.Catalog
	}
	return s
}

// Start judges the runs missed since the last tick the catalog holds
// (none at the first start), then fires runs in the background until
// Stop.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return fmt.Errorf("the scheduler is already started")
	}
	s.started = true
	s.done = make(chan struct{})
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.mu.Unlock()
	now := s.clock()
	s.tick = now
	if s.state != nil {
		last, ok, err := s.state.SchedulerTick(ctx, s.director)
		switch {
		case err != nil:
			s.log.Warn("the scheduler's last tick cannot be read: runs missed while the director was down are not judged", "error", err.Error())
		case ok && last.Before(now):
			s.tick = last
			s.fireDue(s.ctx, now, "the director was down")
		}
		s.saveTick(s.ctx)
	}
	go s.loop()
	return nil
}

// Stop ends the scheduler's loop (jobs it started keep running).
func (s *Scheduler) Stop() {
	s.mu.Lock()
	started, done := s.started, s.done
	s.mu.Unlock()
	if !started {
		return
	}
	s.cancel()
	<-done
}

func (s *Scheduler) loop() {
	defer close(s.done)
	for {
		wait := maxWait
		if next, ok := s.nextAfter(s.tick); ok {
			wait = min(max(next.Sub(s.clock()), 0), maxWait)
		}
		select {
		case <-s.after(wait):
		case <-s.ctx.Done():
			return
		}
		s.fireDue(s.ctx, s.clock(), "the scheduler was delayed")
		s.saveTick(s.ctx)
	}
}

// nextAfter is the earliest run strictly after t of any scheduled job.
func (s *Scheduler) nextAfter(t time.Time) (time.Time, bool) {
	var best time.Time
	seen := map[string]bool{}
	for i := range s.cfg.Jobs {
		jc := &s.cfg.Jobs[i]
		if !jc.Enabled || jc.Schedule == "" || seen[jc.Schedule] {
			continue
		}
		seen[jc.Schedule] = true
		sc, ok := s.cfg.ScheduleNamed(jc.Schedule)
		if !ok || sc.Parsed == nil {
			continue
		}
		if f, ok := sc.Parsed.Next(t, sc.Location); ok && (best.IsZero() || f.At.Before(best)) {
			best = f.At
		}
	}
	return best, !best.IsZero()
}

func (s *Scheduler) saveTick(ctx context.Context) {
	if s.state == nil {
		return
	}
	if err := s.state.SetSchedulerTick(ctx, s.director, s.tick); err != nil {
		s.log.Warn("recording the scheduler's tick failed (a restart may judge these runs again)", "error", err.Error())
	}
}

// fireDue fires the runs due in (tick, now]: the latest run of each job
// (every line firing at that minute); late when it is more than a minute
// old (why says why), skipped when older than the job's catch_up. Earlier
// runs of the job in the window are recorded as missed.
func (s *Scheduler) fireDue(ctx context.Context, now time.Time, why string) {
	if !now.After(s.tick) {
		return
	}
	due := Preview(s.cfg, s.tick.Add(time.Nanosecond), now.Add(time.Nanosecond), PreviewFilter{})
	s.tick = now
	if len(due) == 0 {
		return
	}
	latest := map[string]time.Time{}
	for _, p := range due {
		if p.At.After(latest[p.Job]) {
			latest[p.Job] = p.At
		}
	}
	var missed []catalog.MissedRun
	for _, p := range due {
		jc, _ := s.cfg.JobNamed(p.Job)
		late := now.Sub(p.At)
		tooLate := func(late time.Duration) bool { return late > lateAfter && late >= jc.CatchUp }
		reason := ""
		switch {
		case tooLate(late) && jc.CatchUp == 0:
			reason = why + "; catch_up is 0: missed runs are skipped"
		case p.At.Before(latest[p.Job]) && !tooLate(now.Sub(latest[p.Job])):
			reason = fmt.Sprintf("%s; only the latest missed run (%s) is caught up", why, s.local(p.Schedule, latest[p.Job]))
		case tooLate(late):
			reason = fmt.Sprintf("%s; it was %s late, more than catch_up %s", why, late.Round(time.Minute), jc.CatchUp)
		case p.At.Before(latest[p.Job]):
			reason = fmt.Sprintf("%s; a later run (%s) was due", why, s.local(p.Schedule, latest[p.Job]))
		}
		if reason != "" {
			missed = append(missed, catalog.MissedRun{Job: p.Job, ScheduledAt: p.At, Level: p.Level, Pool: p.Pool, Reason: reason})
			s.log.Warn("scheduled run missed", "job", p.Job, "scheduled", s.local(p.Schedule, p.At), "reason", reason)
			continue
		}
		req := p.req
		if late > lateAfter {
			req.Late = fmt.Sprintf("scheduled %s, started %s: %s late, %s (catch_up %s)",
				s.local(p.Schedule, p.At), s.local(p.Schedule, now), late.Round(time.Minute), why, jc.CatchUp)
		}
		id, err := s.start(ctx, req)
		var dup *DuplicateError
		switch {
		case errorsAs(err, &dup):
			s.log.Warn(dup.Error(), "job", p.Job, "scheduled", s.local(p.Schedule, p.At), "schedule", p.Schedule, "line", p.Line)
		case err != nil:
			s.log.Error("a scheduled run could not be started", "job", p.Job, "scheduled", s.local(p.Schedule, p.At), "error", err.Error())
		default:
			s.log.Info("scheduled run started", "job", p.Job, "jobid", id, "level", p.Level, "pool", p.Pool, "schedule", p.Schedule, "line", p.Line,
				"late", req.Late)
		}
	}
	if len(missed) > 0 && s.state != nil {
		if err := s.state.RecordMissed(ctx, s.director, missed); err != nil {
			s.log.Warn("recording missed runs failed", "error", err.Error())
		}
	}
}

// local formats t in schedule name's zone ("2026-08-07 21:00 CEST").
func (s *Scheduler) local(schedule string, t time.Time) string {
	return LocalTime(s.cfg, schedule, t)
}

// LocalTime formats t in the time zone of schedule (the director's local
// zone if it has none).
func LocalTime(cfg *configs.Director, schedule string, t time.Time) string {
	loc := time.Local
	if sc, ok := cfg.ScheduleNamed(schedule); ok && sc.Location != nil {
		loc = sc.Location
	}
	return t.In(loc).Format("2006-01-02 15:04 MST")
}

func errorsAs[T error](err error, target *T) bool { return err != nil && errors.As(err, target) }

// Resolve returns p as the runner would run it now: the catalog's level
// decision (an Incremental or Differential with no prior Full runs as a
// Full; Upgraded says why) and the pool and storage of that level. It
// reads the catalog only.
func (r *Runner) Resolve(ctx context.Context, p Planned) (Planned, error) {
	cfg := r.o.Config
	jc0, ok := cfg.JobNamed(p.Job)
	if !ok {
		return p, fmt.Errorf("no [[job]] %q", p.Job)
	}
	jc := p.req.apply(*jc0)
	client, ok := cfg.ClientNamed(jc.Client)
	if !ok {
		return p, fmt.Errorf("job %s: its client %q is not a [[client]] of %s", jc.Name, jc.Client, cfg.Path)
	}
	fs, ok := cfg.JobFileset(&jc)
	if !ok {
		return p, fmt.Errorf("job %s: its fileset %q is not a [[fileset]] of %s", jc.Name, jc.Fileset, cfg.Path)
	}
	d, err := r.o.Catalog.SinceTime(ctx, jc.Name, client.Name, fs.Identity(), p.Level, p.At, jc.MaxFullInterval)
	if err != nil {
		return p, err
	}
	if d.Level != p.Level {
		p.Upgraded = d.Reason
	}
	p.Level = d.Level
	p.Pool = jc.PoolFor(d.Level)
	p.Storage = storageFor(cfg, &jc, p.req.Storage, p.Pool)
	return p, nil
}
