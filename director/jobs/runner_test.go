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

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/jobs/jobstest"
	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var t0 = time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// world: a catalog, a fake storage sd1 and two fake file daemons (web1,
// web2) over real TLS, and a runner with jobs web1-home and web2-home
// writing clear volumes of pool Local.
type world struct {
	t     *testing.T
	ctx   context.Context
	store *catalog.Store
	clock *clock
	sd    *jobstest.Storage
	web1  *jobstest.Filed
	web2  *jobstest.Filed
	cfg   *configs.Director
	r     *Runner
	log   *testenv.LogBuffer
	after chan time.Time
	m     *Metrics
}

func newWorld(t *testing.T, drives int, volumes ...string) *world {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	pool, err := pgxpool.New(ctx, pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	w := &world{t: t, ctx: ctx, clock: &clock{t: t0}, log: &testenv.LogBuffer{}, after: make(chan time.Time, 1)}
	w.store = catalog.NewStore(pool, catalog.WithClock(w.clock.Now))
	if _, err := w.store.EnsureStorage(ctx, "sd1", "127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.EnsurePool(ctx, catalog.PoolSpec{Name: "Local", Storage: "sd1"}); err != nil {
		t.Fatal(err)
	}
	for i, v := range volumes {
		if _, err := w.store.CreateLabeling(ctx, catalog.MediaNew{Volume: v, Barcode: v, Pool: "Local", Storage: "sd1", Slot: i + 1}); err != nil {
			t.Fatal(err)
		}
		if err := w.store.MarkLabeled(ctx, v, t0, nil); err != nil {
			t.Fatal(err)
		}
	}
	p := testenv.NewPKI(t, dir)
	w.sd = jobstest.NewStorage(drives, volumes...)
	sdAddr := jobstest.Serve(t, p.Issue(t, "sd1", tlsconf.RoleStorage), func(s *grpc.Server) { pb.RegisterStorageServer(s, w.sd) })
	tree := func() map[string]int64 {
		return map[string]int64{"/home/a": t0.Add(-time.Hour).UnixNano(), "/home/b": t0.Add(-time.Hour).UnixNano(), "/home/c": t0.Add(-time.Hour).UnixNano()}
	}
	w.web1 = jobstest.NewFiled("web1", w.sd, tree())
	w.web2 = jobstest.NewFiled("web2", w.sd, tree())
	a1 := jobstest.Serve(t, p.Issue(t, "web1", tlsconf.RoleClient), func(s *grpc.Server) { pb.RegisterFiledServer(s, w.web1) })
	a2 := jobstest.Serve(t, p.Issue(t, "web2", tlsconf.RoleClient), func(s *grpc.Server) { pb.RegisterFiledServer(s, w.web2) })
	no := false
	w.cfg = &configs.Director{Path: "director.toml", Name: "director",
		Storages: []configs.StorageRef{{Name: "sd1", Address: sdAddr, TLSServerName: "localhost"}},
		Clients:  []configs.Client{{Name: "web1", Address: a1, TLSServerName: "localhost", MaxConcurrentJobs: 1}, {Name: "web2", Address: a2, TLSServerName: "localhost", MaxConcurrentJobs: 1}},
		Filesets: []configs.Fileset{{Name: "home", Include: []string{"/home"}}},
		Pools:    []configs.Pool{{Name: "Local", Storage: "sd1", Encrypted: &no}},
	}
	for _, c := range []string{"web1", "web2"} {
		w.cfg.Jobs = append(w.cfg.Jobs, configs.Job{Name: c + "-home", Type: configs.JobBackup, Level: configs.LevelIncremental, Client: c, Fileset: "home",
			Storage: "sd1", Pool: "Local", Priority: 10, MaxConcurrentJobs: 1, ClientIdleTimeout: 2 * time.Minute})
	}
	// web2-urgent: another job of web2 (which may run two), priority 5.
	w.cfg.Clients[1].MaxConcurrentJobs = 2
	w.cfg.Jobs = append(w.cfg.Jobs, configs.Job{Name: "web2-urgent", Type: configs.JobBackup, Level: configs.LevelFull, Client: "web2", Fileset: "home",
		Storage: "sd1", Pool: "Local", Priority: 5, MaxConcurrentJobs: 1, ClientIdleTimeout: 2 * time.Minute})
	dirFiles := p.Issue(t, "director", tlsconf.RoleDirector)
	stc, err := tlsconf.Client(dirFiles, tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	sconn, err := link.Dial(sdAddr, stc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sconn.Close() })
	dialer := NewFiledDialer(dirFiles)
	t.Cleanup(dialer.Close)
	w.m = NewMetrics(prometheus.NewRegistry())
	w.r, err = New(ctx, Options{Config: w.cfg, Catalog: w.store, Log: slog.New(slog.NewTextHandler(w.log, nil)), Metrics: w.m,
		Storage: func(name string) (pb.StorageClient, error) { return pb.NewStorageClient(sconn), nil },
		Filed:   dialer.Dial, Clock: w.clock.Now,
		After: func(time.Duration) <-chan time.Time { return w.after }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.r.Shutdown(context.Background()) })
	return w
}

// run starts a job and waits for its end; it returns the job's row.
func (w *world) run(job, level string) catalog.Job {
	w.t.Helper()
	id := w.start(job, level)
	return w.wait(id)
}

func (w *world) start(job, level string) int64 {
	w.t.Helper()
	id, err := w.r.Run(w.ctx, Request{Job: job, Level: level, Actor: "admin"})
	if err != nil {
		w.t.Fatal(err)
	}
	return id
}

func (w *world) wait(id int64) catalog.Job {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, time.Minute)
	defer cancel()
	if err := w.r.Wait(ctx, id); err != nil {
		w.t.Fatalf("job %d did not end: %v", id, err)
	}
	j, err := w.store.GetJob(w.ctx, id)
	if err != nil {
		w.t.Fatal(err)
	}
	return j
}

func (w *world) files(id int64) []string {
	w.t.Helper()
	fs, err := w.store.ListFiles(w.ctx, id)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, f := range fs {
		out = append(out, string(f.Path)+"@"+f.At.Volume)
	}
	return out
}

// view is the paths of web1-home's current view, space-separated.
func (w *world) view() string {
	w.t.Helper()
	v, err := w.store.CurrentView(w.ctx, catalog.Chain{Job: "web1-home", Client: "web1", Fileset: "home"}, time.Time{})
	if err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, f := range v {
		out = append(out, string(f.Path))
	}
	return strings.Join(out, " ")
}

func (w *world) joblog(id int64) string {
	w.t.Helper()
	ls, err := w.store.JobLog(w.ctx, id)
	if err != nil {
		w.t.Fatal(err)
	}
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Level + ": " + l.Line + "\n")
	}
	return b.String()
}

func (w *world) open() *pb.JobOpen {
	w.t.Helper()
	select {
	case o := <-w.sd.Opens:
		return o
	case <-time.After(time.Minute):
		w.t.Fatal("no session was opened")
	}
	return nil
}

func TestFullThenIncrementalWithDeletion(t *testing.T) {
	w := newWorld(t, 1, "V1")
	full := w.run("web1-home", "")
	if full.Status != catalog.JobOK || full.Level != catalog.LevelFull || full.UpgradedFrom != catalog.LevelIncremental ||
		!strings.Contains(full.UpgradeReason, "no prior Full") {
		t.Fatalf("first job: %+v\n%s", full, w.joblog(full.ID))
	}
	if got := strings.Join(w.files(full.ID), " "); got != "/home/a@V1 /home/b@V1 /home/c@V1" {
		t.Fatalf("files of the Full: %s", got)
	}
	jm, err := w.store.ListJobMedia(w.ctx, full.ID)
	if err != nil || len(jm) != 2 || jm[0].Kind != "data" || jm[0].TapeFile != 1 || !jm[0].Complete || jm[1].Kind != "index" || jm[1].TapeFile != 2 || !jm[1].Complete {
		t.Fatalf("job media of the Full: %+v, %v", jm, err)
	}
	rep := Report(full)
	for _, want := range []string{"JobId", "web1-home", "upgraded from Incremental: no prior Full", "Volume(s):", "V1", "Backup OK (T)", "Files written:         3"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	log := w.joblog(full.ID)
	for _, want := range []string{"Start Backup JobId", "Level upgraded to Full", "Using volume V1 (clear) in drive 0 of storage sd1, tape file 1", "Termination:"} {
		if !strings.Contains(log, want) {
			t.Errorf("job log lacks %q:\n%s", want, log)
		}
	}

	// The session token never reaches a log.
	if strings.Contains(log, "tok-") || strings.Contains(w.log.String(), "tok-") {
		t.Errorf("a session token in a log:\n%s\n%s", log, w.log.String())
	}

	// Modify b, delete c, add d (which changes while read: W).
	w.clock.Advance(time.Hour)
	w.web1.Set("/home/b", w.clock.Now().UnixNano())
	w.web1.Remove("/home/c")
	w.web1.Set("/home/d", w.clock.Now().UnixNano())
	w.web1.WarnOn("/home/d")
	incr := w.run("web1-home", "Incremental")
	if incr.Status != catalog.JobWarnings || incr.Level != catalog.LevelIncremental || incr.UpgradedFrom != "" || incr.SinceTime == nil || !incr.SinceTime.Equal(*full.StartedAt) {
		t.Fatalf("Incremental: %+v\n%s", incr, w.joblog(incr.ID))
	}
	if got := strings.Join(w.files(incr.ID), " "); got != "/home/b@V1 /home/d@V1" {
		t.Fatalf("files of the Incremental: %s", got)
	}
	del, err := w.store.Deletions(w.ctx, incr.ID)
	if err != nil || len(del) != 1 || string(del[0]) != "/home/c" {
		t.Fatalf("deletions: %q, %v", del, err)
	}
	req := w.web1.Requests()[1]
	if !req.SendSeen || req.SinceUnixNs != full.StartedAt.UnixNano() || req.Level != "Incremental" || req.StorageName != "sd1" || req.Token == "" {
		t.Errorf("backup request of the Incremental: %+v", req)
	}
	if !strings.Contains(w.joblog(incr.ID), "warning: Warning: /home/d: changed") || incr.Warnings != 1 {
		t.Errorf("the warning is not in the job log or the row (%d):\n%s", incr.Warnings, w.joblog(incr.ID))
	}
	if got := w.view(); got != "/home/a /home/b /home/d" {
		t.Errorf("current view: %s", got)
	}
	if got := w.web1.Requests(); len(got) != 2 {
		t.Fatalf("%d backups", len(got))
	}
	// Metrics: one T, one W; 3 + 2 rows copied; their bytes.
	if n := testutil.ToFloat64(w.m.Ended.WithLabelValues("T")); n != 1 {
		t.Errorf("jobs ended T: %v", n)
	}
	if n := testutil.ToFloat64(w.m.Ended.WithLabelValues("W")); n != 1 {
		t.Errorf("jobs ended W: %v", n)
	}
	if n := testutil.ToFloat64(w.m.RowsCopied); n != 5 {
		t.Errorf("rows copied: %v", n)
	}
	if n := testutil.ToFloat64(w.m.Bytes); n != float64(full.Bytes+incr.Bytes) || n == 0 {
		t.Errorf("bytes: %v, want %d", n, full.Bytes+incr.Bytes)
	}
	if n := testutil.ToFloat64(w.m.Active.WithLabelValues("running")) + testutil.ToFloat64(w.m.Active.WithLabelValues("waiting")); n != 0 {
		t.Errorf("active jobs after both ended: %v", n)
	}
}

// TestIncrementalFetchesMovedFiles: a file that appears under a new path
// with its old times (its directory was moved) is not changed by its
// times, yet the catalog's view lacks it: after the walk the director
// fetches it, the Incremental stores it, and the current view has it
// under the new path only. A second Incremental fetches nothing.
func TestIncrementalFetchesMovedFiles(t *testing.T) {
	w := newWorld(t, 1, "V1")
	full := w.run("web1-home", "")
	w.clock.Advance(time.Hour)
	old := full.StartedAt.Add(-time.Hour).UnixNano()
	w.web1.Remove("/home/c")
	w.web1.Set("/home/moved/c", old)
	incr := w.run("web1-home", "Incremental")
	if incr.Status != catalog.JobOK || incr.Level != catalog.LevelIncremental {
		t.Fatalf("Incremental: %+v\n%s", incr, w.joblog(incr.ID))
	}
	if got := strings.Join(w.web1.Fetched(), " "); got != "/home/moved/c" {
		t.Fatalf("fetched %q, want /home/moved/c", got)
	}
	if got := strings.Join(w.files(incr.ID), " "); got != "/home/moved/c@V1" {
		t.Fatalf("files of the Incremental: %s", got)
	}
	if log := w.joblog(incr.ID); !strings.Contains(log, "1 files with unchanged times fetched") {
		t.Errorf("the job log does not say what was fetched:\n%s", log)
	}
	if got := w.view(); got != "/home/a /home/b /home/moved/c" {
		t.Errorf("current view: %s", got)
	}
	w.clock.Advance(time.Hour)
	again := w.run("web1-home", "Incremental")
	if again.Status != catalog.JobOK || len(w.web1.Fetched()) != 1 || len(w.files(again.ID)) != 0 {
		t.Fatalf("an unchanged Incremental after it: %+v, fetched %q, files %q", again, w.web1.Fetched(), w.files(again.ID))
	}
}

func TestSpanningVolumes(t *testing.T) {
	w := newWorld(t, 1, "V1", "V2", "V3")
	w.sd.PerVolume = 2
	w.web1.Set("/home/d", t0.Add(-time.Hour).UnixNano())
	w.web1.Set("/home/e", t0.Add(-time.Hour).UnixNano())
	j := w.run("web1-home", "Full")
	if j.Status != catalog.JobOK {
		t.Fatalf("spanning job: %+v\n%s", j, w.joblog(j.ID))
	}
	got := w.files(j.ID)
	if len(got) != 5 || got[0] != "/home/a@V1" || got[2] != "/home/c@V2" || got[4] != "/home/e@V3" {
		t.Fatalf("files: %v", got)
	}
	if vols := dedupe(j.Volumes); !slices.Equal(vols, []string{"V1", "V2", "V3"}) {
		t.Errorf("volumes: %v", j.Volumes)
	}
	m, err := w.store.GetMedia(w.ctx, "V1")
	if err != nil || m.Status != catalog.StatusFull {
		t.Errorf("V1 after early warning: %v, %v", m.Status, err)
	}
	if c := w.sd.Controls(); len(c) != 2 || c[0].GetNextVolume().GetVolumeSeq() != 2 {
		t.Errorf("controls: %v", c)
	}
}

func TestSpanningWithoutANextVolume(t *testing.T) {
	w := newWorld(t, 1, "V1", "V2")
	w.sd.PerVolume = 2
	w.web1.Set("/home/d", t0.Add(-time.Hour).UnixNano())
	w.web1.Set("/home/e", t0.Add(-time.Hour).UnixNano())
	j := w.run("web1-home", "Full")
	if j.Status != catalog.JobError || !strings.Contains(j.Error, "no appendable clear volume of pool Local") || !strings.Contains(j.Error, "label storage=sd1 pool=Local") {
		t.Fatalf("job: %+v", j)
	}
	if got := w.files(j.ID); len(got) != 4 {
		t.Errorf("rows committed: %v (want the 4 flushed before the end of V2)", got)
	}
	if c := w.sd.Controls(); len(c) != 2 || c[1].GetNoVolume() == "" {
		t.Errorf("controls: %v", c)
	}
}

func TestStoragedFailsMidJob(t *testing.T) {
	w := newWorld(t, 1, "V1")
	w.sd.FailAfter = 2
	j := w.run("web1-home", "Full")
	if j.Status != catalog.JobError || !strings.Contains(j.Error, "write error") || !strings.Contains(j.Error, "storage sd1") {
		t.Fatalf("job: %+v", j)
	}
	// Rows up to the flushed offset only: a and b; c was never flushed.
	if got := strings.Join(w.files(j.ID), " "); got != "/home/a@V1 /home/b@V1" {
		t.Errorf("files: %s", got)
	}
	fs, _ := w.store.ListFiles(w.ctx, j.ID)
	if j.FlushedOffset <= fs[1].StreamOffset {
		t.Errorf("flushed offset %d", j.FlushedOffset)
	}
	jm, _ := w.store.ListJobMedia(w.ctx, j.ID)
	if len(jm) != 1 || jm[0].Complete {
		t.Errorf("the partial tape file: %+v", jm)
	}
	if n := testutil.ToFloat64(w.m.Errors.WithLabelValues("storage")); n != 1 {
		t.Errorf("storage errors: %v", n)
	}
	// The next job appends at the partial tape file: it is written over.
	w.sd.FailAfter = 0
	w.clock.Advance(time.Minute)
	next := w.start("web1-home", "Full")
	// (A clear volume: tape file 0 is its label, 1 the partial one.)
	if o := w.open(); o.Volume.Volume != "V1" || o.Volume.TapeFile != 1 || o.Volume.KnownTapeFiles < 1 {
		t.Errorf("the next job opened %s tape file %d (known %d), want V1 tape file 1 (known ≥ 1)", o.Volume.Volume, o.Volume.TapeFile, o.Volume.KnownTapeFiles)
	}
	if j2 := w.wait(next); j2.Status != catalog.JobOK {
		t.Fatalf("next job: %s %s", j2.Status, j2.Error)
	}
	if j1, _ := w.store.GetJob(w.ctx, j.ID); !strings.Contains(j1.Error, "written over by job") {
		t.Errorf("the failed job's error: %s", j1.Error)
	}
}

func TestCancel(t *testing.T) {
	w := newWorld(t, 1, "V1")
	w.sd.Hold = true
	id := w.start("web1-home", "Full")
	w.open()
	if err := w.r.Cancel(id, "console admin"); err != nil {
		t.Fatal(err)
	}
	j := w.wait(id)
	if j.Status != catalog.JobCancelled || !strings.Contains(j.Error, "cancelled by console admin") {
		t.Fatalf("job: %+v", j)
	}
	if err := w.r.Cancel(id, "x"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("cancel of an ended job: %v", err)
	}
}

func TestDriveBusyThenRuns(t *testing.T) {
	w := newWorld(t, 1, "V1", "V2")
	w.sd.Hold = true
	a := w.start("web1-home", "Full")
	w.open()
	b := w.start("web2-home", "Full")
	testenv.WaitFor(t, "job b waiting for a drive", func() bool {
		s, ok := w.r.StatusOf(b)
		return ok && s.Why == "waiting for a drive on sd1"
	})
	if jb, _ := w.store.GetJob(w.ctx, b); jb.Status != catalog.JobWaitStorageResource {
		t.Errorf("job b's catalog status: %s", jb.Status)
	}
	close(w.sd.Released)
	if ja, jb := w.wait(a), w.wait(b); ja.Status != catalog.JobOK || jb.Status != catalog.JobOK {
		t.Fatalf("a: %s %s, b: %s %s", ja.Status, ja.Error, jb.Status, jb.Error)
	}
	if !strings.Contains(w.joblog(b), "waiting for a drive on sd1") {
		t.Errorf("job log of b:\n%s", w.joblog(b))
	}
}

func TestTwoJobsDoNotShareAVolume(t *testing.T) {
	w := newWorld(t, 2, "V1", "V2")
	w.sd.Hold = true
	a := w.start("web1-home", "Full")
	b := w.start("web2-home", "Full")
	o1, o2 := w.open(), w.open()
	if o1.Volume.Volume == o2.Volume.Volume {
		t.Fatalf("both sessions on %s", o1.Volume.Volume)
	}
	close(w.sd.Released)
	if ja, jb := w.wait(a), w.wait(b); ja.Status != catalog.JobOK || jb.Status != catalog.JobOK {
		t.Fatalf("a: %s %s, b: %s %s", ja.Status, ja.Error, jb.Status, jb.Error)
	}
}

func TestOneVolumeTwoDrives(t *testing.T) {
	w := newWorld(t, 2, "V1")
	w.sd.Hold = true
	a := w.start("web1-home", "Full")
	w.open()
	b := w.start("web2-home", "Full")
	jb := w.wait(b)
	if jb.Status != catalog.JobError || !strings.Contains(jb.Error, "V1 (in use by another job)") {
		t.Fatalf("b: %+v", jb)
	}
	close(w.sd.Released)
	if ja := w.wait(a); ja.Status != catalog.JobOK {
		t.Fatalf("a: %+v", ja)
	}
}

func TestStoragedBusyRetries(t *testing.T) {
	w := newWorld(t, 1, "V1")
	w.sd.Exhaust = 1
	w.after <- t0 // the backoff fires at once
	j := w.run("web1-home", "Full")
	if j.Status != catalog.JobOK {
		t.Fatalf("job: %+v\n%s", j, w.joblog(j.ID))
	}
	if !strings.Contains(w.joblog(j.ID), "every drive of sd1 is busy") {
		t.Errorf("job log:\n%s", w.joblog(j.ID))
	}
}

func TestWrongTokenCannotWrite(t *testing.T) {
	w := newWorld(t, 1, "V1")
	w.web1.Token = "tok-forged"
	j := w.run("web1-home", "Full")
	if j.Status != catalog.JobError || !strings.Contains(j.Error, "client web1") || !strings.Contains(j.Error, "invalid token") {
		t.Fatalf("job: %+v", j)
	}
	if got := w.files(j.ID); len(got) != 0 {
		t.Errorf("files: %v", got)
	}
}

func TestNoVolumeSaysLabel(t *testing.T) {
	w := newWorld(t, 1)
	j := w.run("web1-home", "Full")
	if j.Status != catalog.JobError || !strings.Contains(j.Error, "pool Local") || !strings.Contains(j.Error, "label storage=sd1 pool=Local slots=N barcodes") {
		t.Fatalf("job: %+v", j)
	}
	if _, err := w.r.Run(w.ctx, Request{Job: "nope"}); err == nil || !strings.Contains(err.Error(), "web1-home") {
		t.Errorf("unknown job: %v", err)
	}
}

func TestShutdownInterruptsAndStartupEndsLeftovers(t *testing.T) {
	w := newWorld(t, 1, "V1")
	w.sd.Hold = true
	id := w.start("web1-home", "Full")
	w.open()
	w.r.Shutdown(w.ctx)
	j, err := w.store.GetJob(w.ctx, id)
	if err != nil || j.Status != catalog.JobError || !strings.Contains(j.Error, "interrupted at") || !strings.Contains(j.Error, "shutting down") {
		t.Fatalf("after shutdown: %+v, %v", j, err)
	}
	// A job left active by a director that died: the next runner ends it.
	left, err := w.store.CreateJob(w.ctx, catalog.JobNew{Name: "web1-home", Type: catalog.TypeBackup, Level: "Full", Client: "web1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(w.ctx, Options{Config: w.cfg, Catalog: w.store, Log: slog.New(slog.NewTextHandler(w.log, nil))}); err != nil {
		t.Fatal(err)
	}
	if j, _ := w.store.GetJob(w.ctx, left); j.Status != catalog.JobError || !strings.Contains(j.Error, "interrupted at") {
		t.Errorf("leftover job: %+v", j)
	}
}

func TestStatusRateAndETA(t *testing.T) {
	start := t0
	s := Status{StartedAt: &start, Bytes: 500, Expected: 1000}
	now := t0.Add(10 * time.Second)
	if r := s.Rate(now); r != 50 {
		t.Errorf("rate %v", r)
	}
	if eta := s.ETA(now); eta != 10*time.Second {
		t.Errorf("ETA %v", eta)
	}
	s.Expected = 0
	if eta := s.ETA(now); eta != 0 {
		t.Errorf("ETA without an expected size: %v", eta)
	}
}

// A freed drive goes to the waiting job of best priority, not the one
// that waited longest.
func TestFreeDriveGoesByPriority(t *testing.T) {
	w := newWorld(t, 1, "V1", "V2")
	w.sd.Hold = true
	a := w.start("web1-home", "Full")
	w.open()
	b := w.start("web2-home", "Full")
	c := w.start("web2-urgent", "")
	// c waits for the drive; b for the drive too, or (when c came before
	// b took its place in the queue) for c, of a better priority.
	for _, id := range []int64{b, c} {
		testenv.WaitFor(t, "jobs b and c waiting", func() bool {
			s, ok := w.r.StatusOf(id)
			return ok && (s.Why == "waiting for a drive on sd1" ||
				id == b && s.Why == fmt.Sprintf("waiting: job web2-urgent (JobId %d, priority 5) is queued or running; priority 10 waits for it", c))
		})
	}
	close(w.sd.Released)
	if got := w.open().Job.Job; got != "web2-urgent" {
		t.Errorf("the drive went to %s, not web2-urgent (priority 5)", got)
	}
	if got := w.open().Job.Job; got != "web2-home" {
		t.Errorf("then %s", got)
	}
	for _, id := range []int64{a, b, c} {
		if j := w.wait(id); j.Status != catalog.JobOK {
			t.Errorf("job %d: %s %s", id, j.Status, j.Error)
		}
	}
}

// A second run of a job that already runs its max_concurrent_jobs waits
// (status j) and says why, then runs.
func TestMaxConcurrentJobsWaits(t *testing.T) {
	w := newWorld(t, 2, "V1", "V2")
	w.sd.Hold = true
	a := w.start("web1-home", "Full")
	w.open()
	b := w.start("web1-home", "Full")
	want := "waiting: job web1-home already runs 1 of max_concurrent_jobs 1"
	testenv.WaitFor(t, "the second run waiting", func() bool {
		s, ok := w.r.StatusOf(b)
		return ok && s.Why == want
	})
	if jb, _ := w.store.GetJob(w.ctx, b); jb.Status != catalog.JobWaitJobResource {
		t.Errorf("catalog status of the second run: %s", jb.Status)
	}
	close(w.sd.Released)
	if ja, jb := w.wait(a), w.wait(b); ja.Status != catalog.JobOK || jb.Status != catalog.JobOK {
		t.Fatalf("a: %s %s, b: %s %s", ja.Status, ja.Error, jb.Status, jb.Error)
	}
	if !strings.Contains(w.joblog(b), want) {
		t.Errorf("job log:\n%s", w.joblog(b))
	}
}

// A client that never says done after the storage session ended fails
// the job after client_idle_timeout (the injected clock's After).
func TestClientSilentAfterTheSession(t *testing.T) {
	w := newWorld(t, 1, "V1")
	w.web1.Stall = true
	w.after <- t0 // client_idle_timeout passes
	j := w.run("web1-home", "Full")
	if j.Status != catalog.JobError || !strings.Contains(j.Error, "client web1 did not end its backup within client_idle_timeout 2m0s") {
		t.Fatalf("job: %s %s", j.Status, j.Error)
	}
	// What storaged flushed is committed.
	if got := w.files(j.ID); len(got) != 3 {
		t.Errorf("files: %v", got)
	}
}

// The director's max_concurrent_jobs holds a second job (status d) with
// a free drive and a free client.
func TestDirectorMaxConcurrentJobsWaits(t *testing.T) {
	w := newWorld(t, 2, "V1", "V2")
	w.cfg.MaxConcurrentJobs = 1
	w.sd.Hold = true
	a := w.start("web1-home", "Full")
	w.open()
	b := w.start("web2-home", "Full")
	want := "waiting: the director already runs 1 of max_concurrent_jobs 1"
	testenv.WaitFor(t, "the second job waiting", func() bool {
		s, ok := w.r.StatusOf(b)
		return ok && s.Why == want
	})
	if jb, _ := w.store.GetJob(w.ctx, b); jb.Status != catalog.JobWaitMaxJobs {
		t.Errorf("catalog status of the second job: %s", jb.Status)
	}
	close(w.sd.Released)
	if ja, jb := w.wait(a), w.wait(b); ja.Status != catalog.JobOK || jb.Status != catalog.JobOK {
		t.Fatalf("a: %s %s, b: %s %s", ja.Status, ja.Error, jb.Status, jb.Error)
	}
}
