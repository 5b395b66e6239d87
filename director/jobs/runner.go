// Package jobs runs the director's backup jobs in the background
// (issue 10): a job resolved from its [[job]] gets its level and
// since-time from the catalog, waits for its max concurrent jobs and a
// drive, takes an appendable volume of its pool, opens a session on the
// storage daemon (Storage.Job), hands the session's one-time token to the
// client's file daemon (Filed.Backup), streams the records storaged
// reports flushed into the catalog, records deletions, and ends with a
// status and a report.
//
// Jobs outlive the console call that started them. Cancel ends one with
// status A; Shutdown (the director stopping) ends every active one with E
// "interrupted …"; New marks jobs a crashed director left active E.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/director/catalog"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// Options are what a Runner needs.
type Options struct {
	Config  *configs.Director
	Catalog *catalog.Store
	Log     *slog.Logger
	// Storage returns the client of a configured storage daemon.
	Storage func(name string) (pb.StorageClient, error)
	// Filed returns the client of a configured [[client]]'s file daemon
	// (mutual TLS, peer role client with the client's name).
	// It waits for the connection at most until ctx ends.
	Filed func(ctx context.Context, c *configs.Client) (pb.FiledClient, error)
	// Clock is the time source (default time.Now); After returns a
	// channel that fires after d (default time.After): the retry of a
	// session storaged refused because its drives were busy.
	Clock   func() time.Time
	After   func(d time.Duration) <-chan time.Time
	Metrics *Metrics // nil: a private registry
	// Keyring makes the new key of a volume a job recycles (its active
	// KEK wraps it); nil: encrypted volumes are not recycled.
	Keyring *keys.Keyring
}

// Request asks for a run of a [[job]].
type Request struct {
	Job   string
	Level string // "" : the job's level
	Actor string // who asked (console name), for the log

	// The overrides of a schedule's Run line ("" and 0: the job's own).
	// Pool replaces the job's pool and its per-level pools; FullPool,
	// IncrementalPool and DifferentialPool then replace the pool of their
	// level; Storage replaces the storage the job would write to (even a
	// pool's); Priority the job's priority.
	Pool, FullPool, IncrementalPool, DifferentialPool string
	Storage                                           string
	Priority                                          int
	// ScheduledAt is when the schedule meant the run to start (recorded
	// in the job's row); Late says why it starts later ("" : on time).
	ScheduledAt *time.Time
	Late        string
	// NoDuplicates refuses the run with a *DuplicateError while a job of
	// the same name is queued or running (the scheduler's runs), unless
	// the job has allow_duplicate_jobs.
	NoDuplicates bool
}

// DuplicateError refuses a run of a job that is already queued or
// running under the same name.
type DuplicateError struct {
	Job   string
	JobID int64 // the active one (0: being created)
}

func (e *DuplicateError) Error() string {
	if e.JobID == 0 {
		return fmt.Sprintf("job %s already running: run skipped", e.Job)
	}
	return fmt.Sprintf("job %s already running (JobId %d): run skipped", e.Job, e.JobID)
}

// apply returns jc with the request's overrides.
func (req Request) apply(jc configs.Job) configs.Job {
	if req.Pool != "" {
		jc.Pool, jc.FullPool, jc.IncrementalPool, jc.DifferentialPool = req.Pool, "", "", ""
	}
	if req.FullPool != "" {
		jc.FullPool = req.FullPool
	}
	if req.IncrementalPool != "" {
		jc.IncrementalPool = req.IncrementalPool
	}
	if req.DifferentialPool != "" {
		jc.DifferentialPool = req.DifferentialPool
	}
	if req.Storage != "" {
		jc.Storage = req.Storage
	}
	if req.Priority > 0 {
		jc.Priority = req.Priority
	}
	return jc
}

// storageFor is the storage a run of jc writing to pool writes to: a Run
// line's Storage= first, else the pool's, else the job's.
func storageFor(cfg *configs.Director, jc *configs.Job, override, pool string) string {
	if override != "" {
		return override
	}
	return cfg.StorageFor(jc, pool)
}

// Runner runs jobs.
type Runner struct {
	o   Options
	log *slog.Logger
	m   *Metrics

	mu      sync.Mutex
	active  map[int64]*job
	drives  map[string]int  // storage → drives it has (Hello), once known
	busy    map[string]int  // storage → sessions of this director open or opening
	volumes map[string]bool // volumes a job of this runner is using
	// starting: job names a NoDuplicates run is creating right now.
	starting map[string]bool
	changed  chan struct{} // closed and replaced when a resource is released
	// volChanged is closed and replaced when volumes may have become
	// available (VolumesChanged, a job's end): jobs waiting for a volume.
	volChanged chan struct{}
	closed     bool
	// stopping is closed by Shutdown (a job waiting for the catalog to
	// record its end stops waiting: the next start-up ends it).
	stopping chan struct{}
	wg       sync.WaitGroup
}

// errShutdown is the cause of a job cancelled by Shutdown.
var errShutdown = errors.New("the director is shutting down")

// CancelledError is the cause of a job cancelled by Cancel.
type CancelledError struct{ By string }

func (e *CancelledError) Error() string { return "cancelled by " + e.By }

// New returns a runner. Jobs the catalog still lists as active were cut
// by a director that stopped without ending them: they are ended E
// ("interrupted at …") first.
func New(ctx context.Context, o Options) (*Runner, error) {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	r := &Runner{o: o, log: o.Log, m: o.Metrics, active: map[int64]*job{}, drives: map[string]int{}, busy: map[string]int{},
		volumes: map[string]bool{}, starting: map[string]bool{}, changed: make(chan struct{}), volChanged: make(chan struct{}),
		stopping: make(chan struct{})}
	ids, err := o.Catalog.InterruptRunning(ctx, "the director stopped while the job was active (found at start-up)")
	if err != nil {
		return nil, fmt.Errorf("ending jobs a previous director left running: %w", err)
	}
	for _, id := range ids {
		r.log.Warn("a job was left active by a director that stopped: ended E", "jobid", id)
		r.m.Ended.WithLabelValues(string(catalog.JobError)).Inc()
	}
	return r, nil
}

// job is one job this runner runs.
type job struct {
	id     int64
	cfg    configs.Job
	client *configs.Client
	fs     *configs.Fileset
	actor  string
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}

	// waitingDrive is the storage whose drive the job waits for ("":
	// none); guarded by Runner.mu.
	waitingDrive string
	// storage is a Run line's Storage= ("" : none); late why a scheduled
	// run starts late.
	storage string
	late    string

	// restore is set for a Restore job (Runner.Restore).
	restore *restoreState

	mu       sync.Mutex
	st       Status
	decision catalog.LevelDecision
}

// Status is what the director knows of an active job now.
type Status struct {
	JobID       int64      `json:"jobid"`
	Job         string     `json:"job"`
	Client      string     `json:"client"`
	Level       string     `json:"level"`
	Pool        string     `json:"pool,omitempty"`
	Storage     string     `json:"storage,omitempty"`
	State       string     `json:"state"`         // "waiting" or "running"
	Why         string     `json:"why,omitempty"` // why it waits
	Volume      string     `json:"volume,omitempty"`
	Drive       string     `json:"drive,omitempty"`
	Files       int64      `json:"files"`
	Bytes       int64      `json:"bytes"`
	StreamBytes int64      `json:"stream_bytes"`
	Expected    int64      `json:"expected_bytes,omitempty"` // the last successful run's bytes at this level (0: unknown)
	Warnings    int        `json:"warnings"`
	Current     string     `json:"current,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
}

// Rate is the bytes per second since the start (0 before).
func (s Status) Rate(now time.Time) float64 {
	if s.StartedAt == nil {
		return 0
	}
	d := now.Sub(*s.StartedAt).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(s.Bytes) / d
}

// ETA is the time left at the current rate when the expected size is
// known (0: unknown).
func (s Status) ETA(now time.Time) time.Duration {
	rate := s.Rate(now)
	if s.Expected <= 0 || rate <= 0 || s.Bytes >= s.Expected {
		return 0
	}
	return time.Duration(float64(s.Expected-s.Bytes) / rate * float64(time.Second))
}

func (j *job) update(f func(*Status)) {
	j.mu.Lock()
	f(&j.st)
	j.mu.Unlock()
}

func (j *job) status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.st
}

// UnknownJobError names a [[job]] that is not configured.
type UnknownJobError struct {
	Job, Path string
	Known     []string
}

func (e *UnknownJobError) Error() string {
	known := strings.Join(e.Known, ", ")
	if known == "" {
		known = "none"
	}
	return fmt.Sprintf("no [[job]] %q in %s (configured: %s)", e.Job, e.Path, known)
}

// Run creates the job (status C) and runs it in the background; it
// returns its JobId at once. A job that is not configured, or whose
// client or fileset is unknown, is an error and creates nothing.
func (r *Runner) Run(ctx context.Context, req Request) (int64, error) {
	cfg := r.o.Config
	jc0, ok := cfg.JobNamed(req.Job)
	if !ok {
		var names []string
		for _, j := range cfg.Jobs {
			names = append(names, j.Name)
		}
		return 0, &UnknownJobError{Job: req.Job, Path: cfg.Path, Known: names}
	}
	jcv := req.apply(*jc0)
	jc := &jcv
	if req.NoDuplicates && !jc.AllowDuplicateJobs {
		r.mu.Lock()
		if id, ok := r.activeNamed(jc.Name); ok || r.starting[jc.Name] {
			r.mu.Unlock()
			return 0, &DuplicateError{Job: jc.Name, JobID: id}
		}
		r.starting[jc.Name] = true
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			delete(r.starting, jc.Name)
			r.mu.Unlock()
		}()
	}
	client, ok := cfg.ClientNamed(jc.Client)
	if !ok {
		return 0, fmt.Errorf("job %s: its client %q is not a [[client]] of %s", jc.Name, jc.Client, cfg.Path)
	}
	fs, ok := cfg.JobFileset(jc)
	if !ok {
		return 0, fmt.Errorf("job %s: its fileset %q is not a [[fileset]] of %s", jc.Name, jc.Fileset, cfg.Path)
	}
	level := req.Level
	if level == "" {
		level = jc.Level
	}
	// The level is decided now (the pool depends on it) and again at the
	// start; see start.
	d, err := r.o.Catalog.SinceTime(ctx, jc.Name, client.Name, fs.Identity(), level, r.o.Clock(), jc.MaxFullInterval)
	if err != nil {
		return 0, err
	}
	pool := jc.PoolFor(d.Level)
	storage := storageFor(cfg, jc, req.Storage, pool)
	catPool, catStorage := pool, storage
	if _, err := r.o.Catalog.GetPool(ctx, pool); err != nil {
		catPool = "" // no volume was ever labelled into it: the job says so when it looks for one
	}
	if _, err := r.o.Catalog.GetStorage(ctx, storage); err != nil {
		catStorage = ""
	}
	jobType := catalog.TypeBackup
	if jc.Type == configs.JobCatalog {
		jobType = catalog.TypeCatalog
	}
	id, err := r.o.Catalog.CreateJob(ctx, catalog.JobNew{Name: jc.Name, Type: jobType, Level: level, Client: client.Name,
		Fileset: fs.Name, FilesetIdentity: fs.Identity(), Pool: catPool, Storage: catStorage, Priority: jc.Priority, ScheduledAt: req.ScheduledAt})
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.end(context.Background(), id, catalog.JobError, catalog.JobSummary{Error: "the director is shutting down"})
		return id, errShutdown
	}
	jctx, cancel := context.WithCancelCause(context.Background())
	j := &job{id: id, cfg: *jc, client: client, fs: fs, actor: req.Actor, ctx: jctx, cancel: cancel, done: make(chan struct{}), decision: d,
		storage: req.Storage, late: req.Late,
		st: Status{JobID: id, Job: jc.Name, Client: client.Name, Level: d.Level, Pool: pool, Storage: storage, State: "waiting", Why: "created"}}
	r.active[id] = j
	r.wg.Add(1)
	r.mu.Unlock()
	r.m.Active.WithLabelValues("waiting").Inc()
	go r.run(j, level)
	return id, nil
}

// Cancel stops an active job of this runner cleanly: the session and
// the client's backup are cancelled, the rows already flushed stay, and
// the job ends A. An unknown or ended job is an error naming it.
func (r *Runner) Cancel(id int64, by string) error {
	r.mu.Lock()
	j := r.active[id]
	r.mu.Unlock()
	if j == nil {
		if jr, err := r.o.Catalog.GetJob(context.Background(), id); err == nil {
			return fmt.Errorf("job %d (%s) is not running: its status is %s", id, jr.Name, jr.Status)
		}
		return fmt.Errorf("no job %d is running (see list jobs)", id)
	}
	j.cancel(&CancelledError{By: by})
	return nil
}

// Wait returns when job id has ended (at once when it is not active),
// or when ctx ends.
func (r *Runner) Wait(ctx context.Context, id int64) error {
	r.mu.Lock()
	j := r.active[id]
	r.mu.Unlock()
	if j == nil {
		return nil
	}
	select {
	case <-j.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Active returns the active jobs of this runner, by JobId.
func (r *Runner) Active() []Status {
	r.mu.Lock()
	js := slices.Collect(maps.Values(r.active))
	r.mu.Unlock()
	out := make([]Status, 0, len(js))
	for _, j := range js {
		out = append(out, j.status())
	}
	sort.Slice(out, func(a, b int) bool { return out[a].JobID < out[b].JobID })
	return out
}

// StatusOf returns job id's live status, if it is active here.
func (r *Runner) StatusOf(id int64) (Status, bool) {
	r.mu.Lock()
	j := r.active[id]
	r.mu.Unlock()
	if j == nil {
		return Status{}, false
	}
	return j.status(), true
}

// Shutdown ends every active job: each is cancelled with "the director is
// shutting down" and ends E ("interrupted at …"), its flushed rows kept.
// It waits until they have ended or ctx ends; then jobs not yet ended are
// left for the next start-up (New marks them E).
func (r *Runner) Shutdown(ctx context.Context) {
	r.mu.Lock()
	if !r.closed {
		close(r.stopping)
	}
	r.closed = true
	for _, j := range r.active {
		j.cancel(errShutdown)
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// broadcast wakes the jobs waiting for a resource. Call with r.mu held.
func (r *Runner) broadcast() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *Runner) finish(j *job) {
	r.mu.Lock()
	delete(r.active, j.id)
	r.broadcast()
	close(r.volChanged)
	r.volChanged = make(chan struct{})
	r.mu.Unlock()
	close(j.done)
	r.wg.Done()
}

// countActive counts this runner's jobs past their resource wait with
// the job's name, or on its client.
func (r *Runner) countRunning(pred func(*job) bool) int {
	n := 0
	for _, o := range r.active {
		o.mu.Lock()
		running := o.st.State == "running"
		o.mu.Unlock()
		if running && pred(o) {
			n++
		}
	}
	return n
}

// activeNamed returns the lowest JobId of an active job named name. Call
// with r.mu held.
func (r *Runner) activeNamed(name string) (int64, bool) {
	var best int64
	for id, o := range r.active {
		if o.cfg.Name == name && (best == 0 || id < best) {
			best = id
		}
	}
	return best, best != 0
}

// Queued reports whether a job named name is queued or running here (its
// JobId when it is).
func (r *Runner) Queued(name string) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.activeNamed(name)
}
