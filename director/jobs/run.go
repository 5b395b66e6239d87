package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/director/catalog"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// jobError is a job failure with where it came from (the metrics'
// origin label).
type jobError struct {
	origin string // "storage", "client", "catalog", "volume", "director"
	err    error
}

func (e *jobError) Error() string { return e.err.Error() }
func (e *jobError) Unwrap() error { return e.err }

func fail(origin string, format string, a ...any) error {
	return &jobError{origin: origin, err: fmt.Errorf(format, a...)}
}

// logf writes a line to the job's log (and the daemon's).
func (r *Runner) logf(j *job, level, format string, a ...any) {
	line := fmt.Sprintf(format, a...)
	if err := r.o.Catalog.AppendJobLog(context.WithoutCancel(j.ctx), j.id, level, line); err != nil {
		r.log.Error("writing the job log failed", "jobid", j.id, "error", err.Error())
	}
	switch level {
	case catalog.LogError:
		r.log.Error(line, "jobid", j.id, "job", j.cfg.Name)
	case catalog.LogWarning:
		r.log.Warn(line, "jobid", j.id, "job", j.cfg.Name)
	default:
		r.log.Info(line, "jobid", j.id, "job", j.cfg.Name)
	}
}

// end records a job's end. While the catalog is unreachable it retries
// (1 s, doubling to 1 min) until it answers or the director shuts down —
// then the next start-up ends the job ("interrupted"): a job never stays
// running in the catalog because its end could not be written once.
func (r *Runner) end(ctx context.Context, id int64, st catalog.JobStatus, sum catalog.JobSummary) error {
	wait := time.Second
	for {
		err := r.o.Catalog.EndJob(ctx, id, st, sum)
		if err == nil {
			return nil
		}
		if !catalog.Unavailable(err) {
			r.log.Error("ending a job failed", "jobid", id, "status", string(st), "error", err.Error())
			return err
		}
		r.log.Warn("the catalog is unreachable: retrying to record the job's end", "jobid", id, "status", string(st), "retry_in", wait.String(), "error", err.Error())
		select {
		case <-r.o.After(wait):
		case <-r.stopping:
			r.log.Error("the director is stopping with a job's end not recorded: the next start-up ends it", "jobid", id, "status", string(st))
			return err
		}
		wait = min(2*wait, time.Minute)
	}
}

// session is what one run of a job has done so far.
type session struct {
	storage string
	pool    string
	opened  *pb.JobOpened // the session's started (or opened) event
	// openTapeFile: the tape file the session was opened at.
	openTapeFile uint32
	volumes      []string // in use by this job (reserved in r.volumes)
	drive        bool     // a drive of storage is reserved
	parts        int
	flushed      int64
	filesOut     *pb.BackupDone
	warnings     int
	seen         *catalog.Deletions
	started      time.Time
	done         *pb.JobDone
	noVolume     error // the answer to need_volume when none could be given
	// recycled: volumes this job recycled (new key committed, label to
	// rewrite); retryRecycle: one to offer again after storaged refused
	// the session before opening it.
	recycled     []string
	retryRecycle *pb.JobVolume
	// The data tape file being written (from the last data part): a
	// record whose address names no volume is on it.
	curVolume   string
	curTapeFile uint32
	// dump: a Catalog job's catalog dump (dumpCatalog), for its bootstrap.
	dump *catalog.BootstrapDump
}

// run is a job's life, in its own goroutine.
func (r *Runner) run(j *job, requested string) {
	defer r.finish(j)
	s := &session{}
	// The drive and volumes go back only once the job has ended in the
	// catalog: a job taking the volume next must not find this one still
	// active on an incomplete tape file it writes over.
	defer r.release(j, s)
	var err error
	if j.restore != nil {
		err = r.executeRestore(j, s)
	} else {
		err = r.execute(j, requested, s)
	}
	if s.seen != nil {
		s.seen.Abort() // no-op once Finish committed
	}
	ctx := context.WithoutCancel(j.ctx)
	st, sum := catalog.JobOK, catalog.JobSummary{EndedAt: r.o.Clock(), Warnings: s.warnings}
	if rs := j.restore; rs != nil {
		sum.Warnings = int(rs.errors) // a restore's count of files not restored
		if d := rs.filedDone; d != nil {
			sum.Files, sum.Bytes = d.Files, d.Bytes
		} else {
			cur := j.status()
			sum.Files, sum.Bytes = cur.Files, cur.Bytes
		}
	}
	cause := context.Cause(j.ctx)
	var ce *CancelledError
	switch {
	case err == nil:
		if s.dump != nil {
			st0 := catalog.JobOK
			if s.warnings > 0 {
				st0 = catalog.JobWarnings
			}
			w := r.writeBootstrap(ctx, j, s.dump, st0)
			s.warnings += w
			sum.Warnings += w
		}
		if s.warnings > 0 {
			st = catalog.JobWarnings
		}
	case errors.As(cause, &ce):
		st, sum.Error = catalog.JobCancelled, ce.Error()
	case errors.Is(cause, errShutdown):
		st = catalog.JobError
		sum.Error = fmt.Sprintf("interrupted at %s: %s; file records committed up to stream offset %d",
			r.o.Clock().UTC().Format("2006-01-02 15:04:05Z"), errShutdown, s.flushed)
		if j.restore != nil {
			sum.Error = fmt.Sprintf("interrupted at %s: %s", r.o.Clock().UTC().Format("2006-01-02 15:04:05Z"), errShutdown)
		}
	default:
		st, sum.Error = catalog.JobError, err.Error()
	}
	if err != nil {
		origin := "director"
		var je *jobError
		if errors.As(err, &je) {
			origin = je.origin
		}
		if st == catalog.JobError {
			r.m.Errors.WithLabelValues(origin).Inc()
			r.logf(j, catalog.LogError, "Error: %s", sum.Error)
		} else {
			r.logf(j, catalog.LogWarning, "Job %d %s", j.id, sum.Error)
		}
	}
	// Before the volumes go back: the next job must find a volume that
	// reached its limits Full or Used, and a recycled volume whose new
	// label was not written in Error (its new key kept).
	r.checkLimits(ctx, j, s.volumes)
	r.endRecycling(ctx, j, s)
	state := j.status().State
	r.m.Active.WithLabelValues(state).Dec()
	if err := r.end(ctx, j.id, st, sum); err != nil {
		return
	}
	r.m.Ended.WithLabelValues(string(st)).Inc()
	if !s.started.IsZero() {
		r.m.Duration.WithLabelValues(string(st)).Observe(sum.EndedAt.Sub(s.started).Seconds())
	}
	if jr, err := r.o.Catalog.GetJob(ctx, j.id); err == nil {
		for _, line := range strings.Split(strings.TrimRight(Report(jr), "\n"), "\n") {
			r.logf(j, catalog.LogInfo, "%s", line)
		}
	}
}

// release gives back the drive and volumes a job holds.
func (r *Runner) release(j *job, s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.drive {
		r.busy[s.storage]--
		s.drive = false
	}
	for _, v := range s.volumes {
		delete(r.volumes, v)
	}
	s.volumes = nil
	r.broadcast()
}

// setWaiting records why a job waits (in memory and in the catalog).
func (r *Runner) setWaiting(j *job, code catalog.JobStatus, why string) {
	prev := j.status()
	if prev.Why == why {
		return
	}
	// The catalog first: whoever sees the reason in memory (status
	// director) finds the same status in the catalog (list jobs).
	if err := r.o.Catalog.SetJobStatus(context.WithoutCancel(j.ctx), j.id, code); err != nil {
		r.log.Warn("recording a job's waiting status failed", "jobid", j.id, "error", err.Error())
	}
	j.update(func(s *Status) { s.Why = why })
	r.logf(j, catalog.LogInfo, "Job %d is %s", j.id, why)
}

// acquire waits until take (called with r.mu held) succeeds; while it
// does not, the job waits with the status and reason it returns.
func (r *Runner) acquire(j *job, take func() (bool, catalog.JobStatus, string)) error {
	for {
		r.mu.Lock()
		ok, code, why := take()
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return nil
		}
		r.setWaiting(j, code, why)
		select {
		case <-ch:
		case <-j.ctx.Done():
			return context.Cause(j.ctx)
		}
	}
}

func (r *Runner) execute(j *job, requested string, s *session) error {
	ctx := j.ctx
	cat := r.o.Catalog
	r.logf(j, catalog.LogInfo, "Start Backup JobId %d, Job=%s, Client=%s, FileSet=%s, Level=%s (requested by %s)",
		j.id, j.cfg.Name, j.client.Name, j.fs.Name, requested, orDash(j.actor))
	if j.late != "" {
		r.logf(j, catalog.LogWarning, "%s", j.late)
	}
	// Priority (a job of a better priority queued or running makes worse
	// ones wait, jobs.md §2), then the director's, the job's and the
	// client's max concurrent jobs.
	err := r.acquire(j, func() (bool, catalog.JobStatus, string) {
		if o := r.betterQueued(j); o != nil {
			return false, catalog.JobWaitPriority, fmt.Sprintf("waiting: job %s (JobId %d, priority %d) is queued or running; priority %d waits for it",
				o.cfg.Name, o.id, o.cfg.Priority, j.cfg.Priority)
		}
		if max := r.o.Config.MaxConcurrentJobs; max > 0 {
			if n := r.countRunning(func(*job) bool { return true }); n >= max {
				return false, catalog.JobWaitMaxJobs, fmt.Sprintf("waiting: the director already runs %d of max_concurrent_jobs %d", n, max)
			}
		}
		if n, max := r.countRunning(func(o *job) bool { return o.cfg.Name == j.cfg.Name }), max(1, j.cfg.MaxConcurrentJobs); n >= max {
			return false, catalog.JobWaitJobResource, fmt.Sprintf("waiting: job %s already runs %d of max_concurrent_jobs %d", j.cfg.Name, n, max)
		}
		if n, max := r.countRunning(func(o *job) bool { return o.client.Name == j.client.Name }), max(1, j.client.MaxConcurrentJobs); n >= max {
			return false, catalog.JobWaitClientResource, fmt.Sprintf("waiting: client %s already runs %d of max_concurrent_jobs %d", j.client.Name, n, max)
		}
		j.update(func(st *Status) { st.State = "running"; st.Why = "" })
		r.m.Active.WithLabelValues("waiting").Dec()
		r.m.Active.WithLabelValues("running").Inc()
		return true, "", ""
	})
	if err != nil {
		return err
	}
	// The level again, now: a run of the same job that ended meanwhile
	// may change it. A different level than decided at creation would
	// change the pool: then the first decision stands (it is never less
	// than needed: at most a Full where an Incremental would do).
	d := j.decision
	if d2, err := cat.SinceTime(ctx, j.cfg.Name, j.client.Name, j.fs.Identity(), requested, r.o.Clock(), j.cfg.MaxFullInterval); err == nil && d2.Level == d.Level {
		d = d2
	}
	j.decision = d
	s.pool = j.cfg.PoolFor(d.Level)
	s.storage = storageFor(r.o.Config, &j.cfg, j.storage, s.pool)
	j.update(func(st *Status) { st.Level, st.Pool, st.Storage = d.Level, s.pool, s.storage })
	if d.UpgradedFrom != "" {
		r.logf(j, catalog.LogInfo, "Level upgraded to %s: %s", d.Level, d.Reason)
	}
	if d.Since != nil {
		r.logf(j, catalog.LogInfo, "Since time %s (job %d)", d.Since.UTC().Format("2006-01-02 15:04:05Z"), d.BaseJobID)
	}
	sc, err := r.o.Storage(s.storage)
	if err != nil {
		return fail("storage", "storage %s: %v", s.storage, err)
	}
	if err := r.knowDrives(ctx, s.storage, sc); err != nil {
		return err
	}
	s.started = r.o.Clock()
	if err := cat.StartJob(ctx, j.id, d, s.started); err != nil {
		return fail("catalog", "%v", err)
	}
	expected := r.expectedBytes(ctx, j, d.Level)
	j.update(func(st *Status) { t := s.started; st.StartedAt = &t; st.Expected = expected })
	if j.cfg.Type == configs.JobCatalog {
		// Now that better jobs have run (priority): the dump holds what
		// they wrote, and this job as running.
		if s.dump, err = r.dumpCatalog(j); err != nil {
			return err
		}
	}
	return r.session(j, s, sc)
}

// expectedBytes guesses a run's size (for the ETA): the bytes of the last
// successful run of the same job, client and level (0: none).
func (r *Runner) expectedBytes(ctx context.Context, j *job, level string) int64 {
	js, err := r.o.Catalog.ListJobs(ctx, catalog.JobFilter{Name: j.cfg.Name, Client: j.client.Name, Limit: 50})
	if err != nil {
		return 0
	}
	for _, o := range js {
		if o.ID != j.id && o.Level == level && o.Status.Successful() {
			return o.Bytes
		}
	}
	return 0
}

// knowDrives asks a storage daemon how many drives it has (once).
func (r *Runner) knowDrives(ctx context.Context, storage string, sc pb.StorageClient) error {
	r.mu.Lock()
	_, ok := r.drives[storage]
	r.mu.Unlock()
	if ok {
		return nil
	}
	h, err := sc.Hello(ctx, &pb.HelloRequest{})
	if err != nil {
		return fail("storage", "storage %s does not answer: %s", storage, status.Convert(err).Message())
	}
	if len(h.Drives) == 0 {
		return fail("storage", "storage %s has no drives configured", storage)
	}
	r.mu.Lock()
	r.drives[storage] = len(h.Drives)
	r.mu.Unlock()
	return nil
}

// session reserves a drive and a volume, opens the storage session and
// runs the client's backup into it; it retries when storaged says every
// drive is busy.
func (r *Runner) session(j *job, s *session, sc pb.StorageClient) error {
	backoff := minBackoff / 2
	var volumeWait time.Time // when the job began waiting for a volume
	for {
		waitWhy := "waiting for a drive on " + s.storage
		err := r.acquire(j, func() (bool, catalog.JobStatus, string) {
			if r.busy[s.storage] >= r.drives[s.storage] {
				j.waitingDrive = s.storage
				return false, catalog.JobWaitStorageResource, waitWhy
			}
			// A free drive goes to the waiting job of best priority
			// (lowest number), then lowest JobId.
			for _, o := range r.active {
				if o != j && o.waitingDrive == s.storage && (o.cfg.Priority < j.cfg.Priority || o.cfg.Priority == j.cfg.Priority && o.id < j.id) {
					j.waitingDrive = s.storage
					return false, catalog.JobWaitStorageResource, waitWhy
				}
			}
			j.waitingDrive = ""
			r.busy[s.storage]++
			s.drive = true
			return true, "", ""
		})
		if err != nil {
			return err
		}
		if j.status().Why != "" {
			j.update(func(st *Status) { st.Why = "" })
			if err := r.o.Catalog.SetJobStatus(context.WithoutCancel(j.ctx), j.id, catalog.JobRunning); err != nil {
				return fail("catalog", "%v", err)
			}
		}
		vol, err := r.pickVolume(j.ctx, j, s, sc, "")
		if err != nil {
			if !r.waitVolume(j, s, err, &volumeWait) {
				return err
			}
			continue
		}
		err = r.stream(j, s, sc, vol)
		if status.Code(err) != codes.ResourceExhausted || s.opened != nil {
			return err
		}
		// storaged's drives are busy with sessions this director does
		// not count (another director, a manual mount): wait for one of
		// ours to end or a capped backoff, then try again.
		if vol.Recycle {
			s.retryRecycle = vol
		}
		r.release(j, s)
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		r.setWaiting(j, catalog.JobWaitStorageResource, waitWhy+" ("+status.Convert(err).Message()+")")
		backoff = min(backoff*2, maxBackoff)
		select {
		case <-ch:
		case <-r.o.After(backoff):
		case <-j.ctx.Done():
			return context.Cause(j.ctx)
		}
	}
}

// The retry of a session storaged refused with every drive busy (drives
// this director does not count): after one of its own sessions on the
// storage ends, or after a backoff doubling from minBackoff to maxBackoff.
const (
	minBackoff = 5 * time.Second
	maxBackoff = time.Minute
)

// pickVolume chooses a volume of the job's pool for its storage
// (selectVolume: the same choice the preview makes) and reserves it. When
// none fits and the pool has auto_prune, the pool's expired volumes are
// pruned first and the choice made again. A scratch volume moves into the
// pool; a purged one is recycled (BeginRecycle: a new key committed,
// status Labeling) and goes to storaged with JobVolume.recycle.
func (r *Runner) pickVolume(ctx context.Context, j *job, s *session, sc pb.StorageClient, full string) (*pb.JobVolume, error) {
	if jv := s.retryRecycle; jv != nil {
		// Recycled for an earlier attempt that storaged refused before
		// opening (every drive busy): the new key is committed, offer it
		// again rather than recycling another volume.
		s.retryRecycle = nil
		r.mu.Lock()
		defer r.mu.Unlock()
		r.volumes[jv.Volume] = true
		s.volumes = append(s.volumes, jv.Volume)
		return jv, nil
	}
	exclude := func(v string) bool { return v == full || slices.Contains(s.volumes, v) }
	c, err := r.volumeCandidates(ctx, s.pool, s.storage, sc)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	ch, nv := selectVolume(c, exclude, r.volumes, false)
	r.markOverLimit(ctx, j, c)
	if nv != nil && len(c.expired) > 0 {
		pruned := r.autoPrune(ctx, j, c)
		r.mu.Unlock()
		if pruned > 0 {
			if c, err = r.volumeCandidates(ctx, s.pool, s.storage, sc); err != nil {
				return nil, err
			}
		}
		r.mu.Lock()
		ch, nv = selectVolume(c, exclude, r.volumes, false)
	}
	defer r.mu.Unlock()
	if nv != nil {
		return nil, &jobError{origin: "volume", err: nv}
	}
	m := ch.m
	r.volumes[m.Volume] = true
	s.volumes = append(s.volumes, m.Volume)
	jv := &pb.JobVolume{Volume: m.Volume, Changer: ch.w.changer, Slot: ch.w.slot}
	switch ch.from {
	case fromScratch:
		why := fmt.Sprintf("scratch pool of pool %s, taken by job %d", s.pool, j.id)
		if err := r.o.Catalog.MoveVolumeToPool(ctx, m.Volume, s.pool, "director", why); err != nil {
			return nil, fail("catalog", "%v", err)
		}
		r.logf(j, catalog.LogInfo, "Volume %s moved from scratch pool %s into pool %s (the pool's limits copied)", m.Volume, c.scratchPool, s.pool)
	case fromRecycle:
		if err := r.recycle(ctx, j, s, c, m, jv); err != nil {
			return nil, err
		}
		jv.MaxBytes = r.maxBytes(ctx, m.Volume)
		return jv, nil
	}
	tf, known, err := r.o.Catalog.TapeFiles(ctx, m.Volume)
	if err != nil {
		return nil, fail("catalog", "%v", err)
	}
	jv.TapeFile, jv.KnownTapeFiles = uint32(tf), uint32(known)
	if u, ok := c.usage[m.Volume]; ok && ch.from != fromScratch {
		// An Append volume: its usage was read with the candidates.
		jv.MaxBytes = bytesLeft(u)
	} else {
		// Moved in from the scratch pool: the new pool's limits apply.
		jv.MaxBytes = r.maxBytes(ctx, m.Volume)
	}
	return jv, nil
}

// stream opens the storage session on vol, starts the client's backup
// with the session's token and ingests both streams until the end.
func (r *Runner) stream(j *job, s *session, sc pb.StorageClient, vol *pb.JobVolume) error {
	ctx, cancel := context.WithCancelCause(j.ctx)
	defer cancel(nil)
	vol.VolumeSeq = 1
	js, err := sc.Job(ctx)
	if err != nil {
		return fail("storage", "storage %s: opening the job session: %s", s.storage, status.Convert(err).Message())
	}
	idle := j.cfg.ClientIdleTimeout
	open := &pb.JobOpen{
		Job:    &pb.JobSpec{JobId: j.id, Job: j.cfg.Name, Client: j.client.Name, Fileset: j.fs.Name, Level: j.decision.Level, Pool: s.pool},
		Volume: vol, Client: j.client.Name, IdleTimeoutSeconds: uint32(idle / time.Second),
	}
	if err := js.Send(&pb.JobControl{Msg: &pb.JobControl_Open{Open: open}}); err != nil {
		return r.storageErr(j, s, js, err)
	}
	ev, err := js.Recv()
	if err != nil {
		return r.storageErr(j, s, js, err)
	}
	// started: the session exists and the volume mounts while the client
	// starts its walk (opened comes to storageLoop); opened first: a
	// storage daemon that mounts before it answers.
	s.openTapeFile = vol.TapeFile
	op := ev.GetOpened()
	if started := ev.GetStarted(); started != nil {
		op = started
		r.logf(j, catalog.LogInfo, "Session on storage %s, drive %s: mounting volume %s (tape file %d) while the client starts", s.storage, op.Drive, op.Volume, vol.TapeFile)
		j.update(func(st *Status) { st.Volume, st.Drive = op.Volume, op.Drive })
	} else if op == nil {
		return fail("storage", "storage %s answered the session's open with %T, not started or opened", s.storage, ev.Msg)
	} else {
		r.usingVolume(j, s, op)
	}
	s.opened = op

	batch, err := r.o.Catalog.BeginFiles(ctx, j.id)
	if err != nil {
		return fail("catalog", "%v", err)
	}
	batch.OnCommit = func(rows int, upTo int64) { r.m.RowsCopied.Add(float64(rows)) }
	defer func() {
		batch.Sync() // no commit outlives the session (its error, if any, was the job's)
		s.flushed = batch.Committed()
	}()
	fc, err := r.o.Filed(ctx, j.client)
	if err != nil {
		return fail("client", "client %s: %v", j.client.Name, err)
	}
	var ref configs.StorageRef
	for _, sr := range r.o.Config.Storages {
		if sr.Name == s.storage {
			ref = sr
		}
	}
	incr := j.decision.Level != catalog.LevelFull
	if incr {
		// The paths the client saw go into the catalog while it walks.
		if s.seen, err = r.o.Catalog.BeginDeletions(ctx, j.id); err != nil {
			return fail("catalog", "recording the paths the client saw: %v", err)
		}
	}
	req := &pb.BackupRequest{JobId: j.id, Job: j.cfg.Name, Level: j.decision.Level, Fileset: filesetSpec(j.fs),
		StorageAddress: ref.Address, StorageName: ref.Name, TlsServerName: ref.TLSServerName,
		Session: op.Session, Token: op.Token, SendSeen: incr}
	if j.decision.Since != nil {
		req.SinceUnixNs = j.decision.Since.UnixNano()
	}
	r.logf(j, catalog.LogInfo, "Connected to client %s at %s; sending the fileset %s", j.client.Name, j.client.Address, j.fs.Name)

	if err := r.bothStreams(j, cancel, idle, "backup", "client_idle_timeout "+idle.String(),
		func() error { return r.filedLoop(ctx, j, s, fc, req) },
		func() error { return r.storageLoop(ctx, j, s, js, batch, sc) }); err != nil {
		return err
	}
	// Deletions: every path of the chain's view the client did not see.
	if incr {
		n, err := s.seen.Finish(context.WithoutCancel(ctx))
		if err != nil {
			return fail("catalog", "recording deletions: %v", err)
		}
		if u := s.seen.Unlisted(); u > 0 {
			r.logf(j, catalog.LogInfo, "%d deleted files recorded (%d paths seen); none at or below the %d paths the client could not read (see the warnings)", n, s.seen.Seen(), u)
		} else {
			r.logf(j, catalog.LogInfo, "%d deleted files recorded (%d paths seen)", n, s.seen.Seen())
		}
	}
	return nil
}

// usingVolume logs and shows the volume a session mounted (opened).
func (r *Runner) usingVolume(j *job, s *session, op *pb.JobOpened) {
	enc := "clear"
	if op.Encrypted {
		enc = "encrypted, key " + op.KeyFingerprint
	}
	r.logf(j, catalog.LogInfo, "Using volume %s (%s) in drive %s of storage %s, tape file %d", op.Volume, enc, op.Drive, s.storage, s.openTapeFile)
	j.update(func(st *Status) { st.Volume, st.Drive = op.Volume, op.Drive })
}

func (r *Runner) storageErr(j *job, s *session, js pb.Storage_JobClient, err error) error {
	if errors.Is(err, io.EOF) {
		_, err = js.Recv()
		if err == nil || errors.Is(err, io.EOF) {
			return fail("storage", "storage %s ended the session early", s.storage)
		}
	}
	if c := context.Cause(j.ctx); c != nil {
		return c
	}
	st := status.Convert(err)
	if st.Code() == codes.ResourceExhausted {
		return err // the caller waits and retries
	}
	return &jobError{origin: "storage", err: fmt.Errorf("storage %s: %s (%s)", s.storage, st.Message(), st.Code())}
}

// storageLoop handles the session's events until done.
func (r *Runner) storageLoop(ctx context.Context, j *job, s *session, js pb.Storage_JobClient, b *catalog.FileBatch, sc pb.StorageClient) error {
	cat := r.o.Catalog
	for {
		ev, err := js.Recv()
		if errors.Is(err, io.EOF) {
			if s.done == nil {
				return fail("storage", "storage %s ended the session without done", s.storage)
			}
			if err := b.Sync(); err != nil { // every row in before the job can end T
				return fail("catalog", "%v", err)
			}
			return nil
		}
		if err != nil {
			if c := context.Cause(ctx); c != nil {
				return c
			}
			if s.noVolume != nil {
				return s.noVolume
			}
			st := status.Convert(err)
			return &jobError{origin: "storage", err: fmt.Errorf("storage %s: %s (%s)", s.storage, st.Message(), st.Code())}
		}
		switch m := ev.Msg.(type) {
		case *pb.JobEvent_Opened:
			r.usingVolume(j, s, m.Opened)
		case *pb.JobEvent_Part:
			p := m.Part
			err := cat.RecordPart(ctx, j.id, catalog.Part{Part: int(p.Part), Kind: p.Kind, Volume: p.Volume, VolumeIndex: int(p.VolumeSeq),
				TapeFile: int(p.TapeFile), FirstBlock: int64(p.FirstBlock), FirstStreamOffset: p.StreamOffset})
			if err != nil {
				return fail("catalog", "%v", err)
			}
			s.parts++
			if p.Kind != "index" {
				s.curVolume, s.curTapeFile = p.Volume, p.TapeFile
				r.logf(j, catalog.LogInfo, "Part %d: volume %s, tape file %d, from stream offset %d", p.Part, p.Volume, p.TapeFile, p.StreamOffset)
			}
			j.update(func(st *Status) { st.Volume = p.Volume })
		case *pb.JobEvent_Flushed:
			if err := r.ingest(ctx, j, s, b, m.Flushed); err != nil {
				return err
			}
		case *pb.JobEvent_PartDone:
			p := m.PartDone
			if err := b.Sync(); err != nil { // a part is complete only with its rows in
				return fail("catalog", "%v", err)
			}
			if err := cat.CompletePart(ctx, j.id, int(p.Part), int64(p.LastBlock), p.Bytes); err != nil {
				return fail("catalog", "%v", err)
			}
			if p.EarlyWarning {
				r.logf(j, catalog.LogInfo, "Part %d ended at the end of the volume (%d bytes)", p.Part, p.Bytes)
			}
		case *pb.JobEvent_NeedVolume:
			nv := m.NeedVolume
			r.logf(j, catalog.LogInfo, "Volume %s is full (%s); another volume of pool %s is needed", nv.FullVolume, nv.Reason, s.pool)
			if err := cat.MarkFull(ctx, nv.FullVolume); err != nil {
				r.log.Warn("marking a volume Full failed", "volume", nv.FullVolume, "error", err.Error())
			}
			vol, err := r.pickVolume(ctx, j, s, sc, nv.FullVolume)
			if err != nil {
				s.noVolume = err
				reason := err.Error()
				if err := js.Send(&pb.JobControl{Msg: &pb.JobControl_NoVolume{NoVolume: reason}}); err != nil {
					return fail("storage", "storage %s: %v", s.storage, err)
				}
				r.logf(j, catalog.LogError, "No next volume: %s", reason)
				continue // storaged ends the session with an error
			}
			vol.VolumeSeq = nv.VolumeSeq
			r.logf(j, catalog.LogInfo, "Next volume %s (volume %d of the job), tape file %d", vol.Volume, vol.VolumeSeq, vol.TapeFile)
			if err := js.Send(&pb.JobControl{Msg: &pb.JobControl_NextVolume{NextVolume: vol}}); err != nil {
				return fail("storage", "storage %s: %v", s.storage, err)
			}
		case *pb.JobEvent_Progress:
			p := m.Progress
			j.update(func(st *Status) {
				st.StreamBytes = p.StreamBytes
				if p.Volume != "" {
					st.Volume = p.Volume
				}
			})
		case *pb.JobEvent_Done:
			s.done = m.Done
			js.CloseSend()
		}
	}
}

// ingestChunk bounds the rows added before a flush of one event.
const ingestChunk = 65536

// ingest adds a flushed event's records and commits them.
func (r *Runner) ingest(ctx context.Context, j *job, s *session, b *catalog.FileBatch, f *pb.JobFlushed) error {
	n := 0
	var lastEnd int64
	// The rows are committed while the next events are read: FlushAsync
	// waits only for the commit before (storageLoop syncs at the end of
	// each part and of the session).
	flush := func(upTo int64) error {
		if _, err := b.FlushAsync(ctx, upTo); err != nil {
			return fail("catalog", "%v", err)
		}
		return nil
	}
	for _, rec := range f.Records {
		if rec.Address == nil {
			return fail("storage", "storage %s flushed the record of %s without its tape address", s.storage, catalog.RenderPath(rec.Path))
		}
		if rec.Address.Volume == "" {
			rec.Address.Volume, rec.Address.TapeFile = s.curVolume, s.curTapeFile
		}
		row := fileRow(rec)
		if n >= ingestChunk {
			if err := flush(lastEnd); err != nil {
				return err
			}
			n = 0
		}
		err := b.Add(ctx, row)
		var full *catalog.BatchFullError
		if errors.As(err, &full) && lastEnd > b.Flushed() {
			if err := flush(lastEnd); err != nil {
				return err
			}
			err = b.Add(ctx, row)
		}
		if err != nil {
			return fail("catalog", "%v", err)
		}
		n++
		lastEnd = row.EndOffset
		r.m.Files.Inc()
		if row.Type == catalog.FileRegular {
			r.m.Bytes.Add(float64(row.Size))
		}
	}
	if f.StreamOffset > b.Flushed() {
		if err := flush(f.StreamOffset); err != nil {
			return err
		}
	}
	return nil
}

// fileRow turns a member record (address and parts set by storaged)
// into a catalog row.
func fileRow(m *pb.MemberRecord) catalog.FileRow {
	end := m.DataOffset + (m.StoredSize+511)/512*512
	if end <= m.HeaderOffset {
		end = m.HeaderOffset + 512
	}
	row := catalog.FileRow{Path: m.Path, Type: m.Type, Size: m.Size, Mode: m.Mode, UID: m.Uid, GID: m.Gid, Uname: m.Uname, Gname: m.Gname,
		MtimeNS: m.MtimeNs, Link: m.Linkname, SHA256: m.Sha256, StreamOffset: m.HeaderOffset, EndOffset: end, StoredSize: m.StoredSize}
	if len(row.Link) == 0 {
		row.Link = nil
	}
	if len(row.SHA256) == 0 {
		row.SHA256 = nil
	}
	if a := m.Address; a != nil {
		row.At = catalog.Address{Volume: a.Volume, TapeFile: int(a.TapeFile), Block: int64(a.Block), Offset: int(a.Offset)}
	}
	for _, p := range m.Parts {
		fp := catalog.FilePart{Part: int(p.Part), DataOffset: p.DataOffset}
		if a := p.Address; a != nil {
			fp.At = catalog.Address{Volume: a.Volume, TapeFile: int(a.TapeFile), Block: int64(a.Block), Offset: int(a.Offset)}
		}
		row.Parts = append(row.Parts, fp)
	}
	return row
}

// filedLoop runs the client's backup and handles its events. When the
// client's walk is over (walk_done), a goroutine sends it, from the
// catalog, the unchanged paths it must still store (fetchUnknown) while
// the loop goes on receiving.
func (r *Runner) filedLoop(ctx context.Context, j *job, s *session, fc pb.FiledClient, req *pb.BackupRequest) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	bs, err := fc.Backup(ctx)
	if err == nil {
		err = bs.Send(&pb.BackupControl{Msg: &pb.BackupControl_Request{Request: req}})
		if errors.Is(err, io.EOF) { // the client ended the call: its status says why
			_, err = bs.Recv()
		}
	}
	if err != nil {
		return r.clientErr(ctx, j, err)
	}
	var fetching sync.WaitGroup
	walked := false
	err = followClient(r, ctx, j, "backup", bs.Recv, func() bool { return s.filesOut != nil }, func(ev *pb.BackupEvent) error {
		switch m := ev.Msg.(type) {
		case *pb.BackupEvent_Progress:
			p := m.Progress
			j.update(func(st *Status) {
				st.Files, st.Bytes, st.Current = p.Files, p.Bytes, catalog.RenderPath(p.Current)
				if p.StreamBytes > st.StreamBytes {
					st.StreamBytes = p.StreamBytes
				}
			})
		case *pb.BackupEvent_Warning:
			w := m.Warning
			s.warnings++
			j.update(func(st *Status) { st.Warnings = s.warnings })
			r.logf(j, catalog.LogWarning, "Warning: %s: %s: %s", catalog.RenderPath(w.Path), w.Op, w.Message)
		case *pb.BackupEvent_Seen:
			if s.seen == nil {
				return nil
			}
			if walked { // the comparison runs (fetchUnknown): no more paths
				return fail("client", "client %s sent seen paths after walk_done", j.client.Name)
			}
			paths, err := m.Seen.All()
			if err != nil {
				return fail("client", "client %s sent seen paths that do not parse: %v", j.client.Name, err)
			}
			if err := s.seen.Add(paths, m.Seen.Unchanged, m.Seen.Unlisted); err != nil {
				return fail("catalog", "recording the paths the client saw: %v", err)
			}
		case *pb.BackupEvent_WalkDone:
			if walked || s.seen == nil {
				return fail("client", "client %s said its walk was done when no walk was waiting for the catalog", j.client.Name)
			}
			walked = true
			fetching.Add(1)
			go func() {
				defer fetching.Done()
				if err := r.fetchUnknown(ctx, j, s, bs); err != nil {
					cancel(err)
				}
			}()
		case *pb.BackupEvent_Done:
			d := m.Done
			s.filesOut = d
			if int(d.Warnings) > s.warnings {
				s.warnings = int(d.Warnings)
			}
			j.update(func(st *Status) { st.Files, st.Bytes, st.Current = d.Files, d.Bytes, "" })
			r.logf(j, catalog.LogInfo, "Client %s sent %d files, %d bytes (%d unchanged, %d excluded, %d warnings)",
				j.client.Name, d.Files, d.Bytes, d.Unchanged, d.Excluded, d.Warnings)
		}
		return nil
	})
	cancel(nil) // a fetch still sending stops (its error, if it failed first, stays the cause)
	fetching.Wait()
	if c := context.Cause(ctx); err != nil && !errors.Is(c, context.Canceled) {
		return c // fetchUnknown's error: the client's stream was only cancelled
	}
	return err
}

// fetchUnknown sends the client, once its walk is over, the paths it saw
// unchanged by their times that the chain's view lacks (catalog
// Deletions.Unknown: a directory moved into the backup keeps its files'
// times), then FetchEnd, and half-closes. A client that ended the call
// meanwhile is not an error here: the receiving loop reports it.
func (r *Runner) fetchUnknown(ctx context.Context, j *job, s *session, bs pb.Filed_BackupClient) error {
	var sendErr error
	n, err := s.seen.Unknown(ctx, func(batch [][]byte) error {
		sendErr = bs.Send(&pb.BackupControl{Msg: &pb.BackupControl_Fetch{Fetch: &pb.FetchPaths{Paths: batch}}})
		return sendErr
	})
	if err == nil {
		if sendErr = bs.Send(&pb.BackupControl{Msg: &pb.BackupControl_FetchEnd{FetchEnd: &pb.FetchEnd{}}}); sendErr == nil {
			sendErr = bs.CloseSend()
		}
	}
	switch {
	case ctx.Err() != nil || errors.Is(sendErr, io.EOF):
		return nil // cancelled, or the client ended the call: the receiving loop says why
	case sendErr != nil:
		return fail("client", "client %s: sending the paths to store: %v", j.client.Name, sendErr)
	case err != nil:
		return fail("catalog", "finding the paths the client must still store: %v", err)
	}
	if n > 0 {
		r.logf(j, catalog.LogInfo, "%d files with unchanged times fetched: the earlier backups do not hold them under these paths (moved or renamed into the backup)", n)
	}
	return nil
}

// followClient receives a client stream's events (recv) until it ends:
// handle takes each (an error ends the job); at the end of the stream,
// done says whether the client's done event came (else the job fails
// naming what the client ended).
func followClient[E any](r *Runner, ctx context.Context, j *job, what string, recv func() (E, error), done func() bool, handle func(E) error) error {
	for {
		ev, err := recv()
		if errors.Is(err, io.EOF) {
			if !done() {
				return fail("client", "client %s ended the %s without done", j.client.Name, what)
			}
			return nil
		}
		if err != nil {
			return r.clientErr(ctx, j, err)
		}
		if err := handle(ev); err != nil {
			return err
		}
	}
}

func (r *Runner) clientErr(ctx context.Context, j *job, err error) error {
	if c := context.Cause(ctx); c != nil {
		return c
	}
	st := status.Convert(err)
	return &jobError{origin: "client", err: fmt.Errorf("client %s: %s (%s)", j.client.Name, st.Message(), st.Code())}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// betterQueued returns the active job of best priority (lowest number,
// then lowest JobId) whose priority is better than j's, or nil. Call
// with r.mu held.
func (r *Runner) betterQueued(j *job) *job {
	var best *job
	for _, o := range r.active {
		if o == j || o.cfg.Priority >= j.cfg.Priority {
			continue
		}
		if best == nil || o.cfg.Priority < best.cfg.Priority || o.cfg.Priority == best.cfg.Priority && o.id < best.id {
			best = o
		}
	}
	return best
}

// bothStreams runs a job's client stream (in its own goroutine) and its
// storage stream until both end: the first to fail cancels the other
// (cancel), and a client that has not ended within idle after the
// storage session ended fails the job ("client X did not end its
// <what> within <limit> after the storage session ended"). The error is
// the job's cause, else the client's (unless only cancelled), else the
// storage's.
func (r *Runner) bothStreams(j *job, cancel context.CancelCauseFunc, idle time.Duration, what, limit string, client, storage func() error) error {
	var filedErr error
	filedDone := make(chan struct{})
	go func() {
		defer close(filedDone)
		if filedErr = client(); filedErr != nil {
			cancel(filedErr)
		}
	}()
	storErr := storage()
	if storErr != nil {
		cancel(storErr)
	}
	// The session ended: the client has everything and must say done.
	select {
	case <-filedDone:
	case <-r.o.After(idle):
		cancel(fail("client", "client %s did not end its %s within %s after the storage session ended", j.client.Name, what, limit))
		<-filedDone
	}
	switch {
	case context.Cause(j.ctx) != nil:
		return context.Cause(j.ctx)
	case filedErr != nil && !errors.Is(filedErr, context.Canceled):
		return filedErr
	case storErr != nil:
		return storErr
	}
	return filedErr
}
