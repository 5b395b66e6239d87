package main

// End-to-end tests of backup jobs (issue 10): real PostgreSQL, vtl,
// storaged, director and filed processes, driven with tapectl as an
// operator would, each job checked against the tree it backed up
// (tools/lib/testtree) and the catalog checked for consistency after
// every failure.
//
// Sizes are small so that the whole file runs in well under a minute on
// two cores: the "100k files in one directory" and "10 GiB sparse file"
// cases of the issue run here with 2,000 files and a 1 GiB sparse file
// (TestBackupOddTree; TAPEWARD_E2E_FLAT_FILES and TAPEWARD_E2E_SPARSE
// give the full sizes), and at full size in backup_bench_test.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/director/catalog"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/testenv"
	"github.com/tapeward/tapeward/tools/lib/testtree"
)

// ---- filed processes and the job resources ----

var (
	filedOnce sync.Once
	filedPath string
	filedErr  error
)

// filedBinary builds tools/filed once, next to TestMain's binaries (only
// the backup tests need it).
func filedBinary(t testing.TB) string {
	t.Helper()
	filedOnce.Do(func() {
		var m map[string]string
		m, filedErr = testenv.Build(filepath.Dir(bins["director"]), "tools/filed")
		filedPath = m["filed"]
	})
	if filedErr != nil {
		t.Fatalf("building filed: %v", filedErr)
	}
	return filedPath
}

// filedProc is one client's filed: its config and process (log
// w.dir/filed-NAME.log, grepped for key material with the others).
type filedProc struct {
	name string
	conf testenv.Filed
	path string
	log  string
	proc *testenv.Proc
}

func (w *world) newFiled(name, bandwidth string) *filedProc {
	w.t.Helper()
	f := &filedProc{name: name, path: filepath.Join(w.dir, "filed-"+name+".toml"), log: filepath.Join(w.dir, "filed-"+name+".log")}
	f.conf = testenv.Filed{Name: name, WorkDir: filepath.Join(w.dir, "fd-"+name), // listen: a port the kernel picks
		TLS: w.pki.Issue(w.t, name, tlsconf.RoleClient), DirectorName: "director", MaxBandwidthPerJob: bandwidth}
	if err := os.MkdirAll(f.conf.WorkDir, 0o700); err != nil {
		w.t.Fatal(err)
	}
	f.conf.Write(w.t, f.path)
	w.startFiled(f)
	return f
}

// startFiled starts (or restarts) a filed; the first start's port is
// written into its filed.toml, so a restart listens where the director's
// [[client]] address says.
func (w *world) startFiled(f *filedProc) {
	w.t.Helper()
	var addr string
	f.proc, addr = testenv.StartServing(w.t, "filed-"+f.name, f.log, "filed ready", filedBinary(w.t), "-c", f.path)
	if f.conf.Listen == "" {
		f.conf.Listen = addr
		f.conf.Write(w.t, f.path)
	}
}

// backupWorld is a world with clients: for each, a filed, a fileset of
// one directory (root, filled by the test) and a job CLIENT-home writing
// to pool Backup (encrypted volumes labelled at the start).
type backupWorld struct {
	*world
	filed map[string]*filedProc
	root  map[string]string
}

type backupOpts struct {
	worldOpts
	clients     []string // default web1
	idleTimeout string   // director.toml client_idle_timeout ("": default)
	volumes     int      // labelled, default 2
	bandwidth   string   // every filed's max_bandwidth_per_job ("": no limit)
}

func newBackupWorld(t testing.TB, o backupOpts) *backupWorld {
	t.Helper()
	if len(o.clients) == 0 {
		o.clients = []string{"web1"}
	}
	if o.volumes == 0 {
		o.volumes = 2
	}
	filedBinary(t) // fail early, before any process starts
	w := &backupWorld{world: newWorld(t, o.worldOpts), filed: map[string]*filedProc{}, root: map[string]string{}}
	for _, c := range o.clients {
		f := w.newFiled(c, o.bandwidth)
		w.filed[c] = f
		w.root[c] = filepath.Join(w.dir, "data-"+c)
		w.dirConf.Clients = append(w.dirConf.Clients, testenv.Client{Name: c, Address: f.conf.Listen})
		w.dirConf.Filesets = append(w.dirConf.Filesets, testenv.Fileset{Name: "fs-" + c, Include: []string{w.root[c]}})
		w.dirConf.Jobs = append(w.dirConf.Jobs, testenv.Job{Name: c + "-home", Client: c, Fileset: "fs-" + c, Pool: "Backup"})
	}
	w.dirConf.Pools = []testenv.Pool{{Name: "Backup", Storage: "sd1"}}
	w.dirConf.ClientIdleTimeout = o.idleTimeout
	w.dird.Stop(t, syscall.SIGTERM)
	w.startDirector()
	w.ok(fmt.Sprintf("label storage=sd1 pool=Backup slots=1-%d barcodes encrypt", o.volumes))
	return w
}

// makeTree fills a client's fileset directory and returns its snapshot.
func (w *backupWorld) makeTree(client string, o testtree.Options) testtree.Snapshot {
	w.t.Helper()
	if err := testtree.Make(w.root[client], o); err != nil {
		w.t.Fatal(err)
	}
	return w.snapshot(client)
}

func (w *backupWorld) snapshot(client string) testtree.Snapshot {
	w.t.Helper()
	s, err := testtree.Take(w.root[client])
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

// ---- jobs as the operator runs them ----

var jobIDRe = regexp.MustCompile(`(?i)job\s*id\D{0,3}(\d+)|\bjob\s+#?(\d+)\b`)

// jobIDIn is the first JobId a console output names.
func jobIDIn(out string) (int64, bool) {
	m := jobIDRe.FindStringSubmatch(out)
	if m == nil {
		return 0, false
	}
	id, _ := strconv.ParseInt(m[1]+m[2], 10, 64)
	return id, true
}

// runJob runs "run job=NAME [level=LEVEL] yes" and returns the JobId it
// prints.
func (w *world) runJob(job, level string) int64 {
	w.t.Helper()
	line := "run job=" + job
	if level != "" {
		line += " level=" + level
	}
	out := w.ok(line + " yes")
	if id, ok := jobIDIn(out); ok {
		return id
	}
	w.t.Errorf("%q printed no JobId:\n%s", line+" yes", out)
	var id int64
	if err := w.q(`SELECT max(id) FROM jobs WHERE name = $1`, job).Scan(&id); err != nil {
		w.t.Fatal(err)
	}
	return id
}

// runJobWait runs a job with "run job=JOB level=LEVEL wait" (one
// tapectl: it follows the job and prints its report at the end) and
// returns its JobId and the report.
func (w *world) runJobWait(job, level string) (int64, string) {
	w.t.Helper()
	out := w.ok("run job=" + job + " level=" + level + " wait")
	id, ok := jobIDIn(out)
	if !ok {
		w.t.Fatalf("run job=%s level=%s wait printed no JobId:\n%s", job, level, out)
	}
	return id, out
}

// jobRow is a job's catalog row.
type jobRow struct {
	ID                                                            int64
	Name, Status, Level, UpgradedFrom, UpgradeReason, ErrorReason string
	Files, Bytes, Deletions, FlushedOffset                        int64
	StartedAt                                                     *time.Time
}

func (w *world) job(id int64) jobRow {
	w.t.Helper()
	var j jobRow
	err := w.q(`SELECT id, name, status, coalesce(level, ''), coalesce(upgraded_from, ''), coalesce(upgrade_reason, ''), coalesce(error_reason, ''),
		files_count, bytes_count, deletions_count, flushed_offset, started_at FROM jobs WHERE id = $1`, id).Scan(
		&j.ID, &j.Name, &j.Status, &j.Level, &j.UpgradedFrom, &j.UpgradeReason, &j.ErrorReason, &j.Files, &j.Bytes, &j.Deletions, &j.FlushedOffset, &j.StartedAt)
	if err != nil {
		w.t.Fatalf("job %d: %v", id, err)
	}
	return j
}

func terminal(s string) bool { return strings.Contains("TWEfA", s) && len(s) == 1 }

// waitJob follows a job with "wait jobid=N" (the operator's way; its
// output, the job report, is returned) and then requires the catalog to
// say the job has ended, within limit.
func (w *world) waitJob(id int64, limit time.Duration) (jobRow, string) {
	w.t.Helper()
	j, out, ok := w.tryWaitJob(id, limit)
	if !ok {
		w.t.Fatalf("job %d still %q after %v; wait said:\n%s\ndirector log:\n%s", id, j.Status, limit, out, w.dird.Output())
	}
	return j, out
}

// tryWaitJob is waitJob reporting a job that has not ended in time
// instead of failing.
func (w *world) tryWaitJob(id int64, limit time.Duration) (jobRow, string, bool) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins["tapectl"], "-c", w.conPath, fmt.Sprintf("wait jobid=%d", id))
	out, _ := cmd.CombinedOutput()
	deadline := time.Now().Add(limit)
	for {
		j := w.job(id)
		if terminal(j.Status) {
			return j, string(out), true
		}
		if time.Now().After(deadline) {
			return j, string(out), false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// backup runs a job to its end and requires status T (and the level).
func (w *world) backup(job, level, wantLevel string) (jobRow, string) {
	w.t.Helper()
	id := w.runJob(job, level)
	j, report := w.waitJob(id, 90*time.Second)
	if j.Status != "T" || j.Level != wantLevel {
		w.t.Fatalf("job %d (%s, asked %q): status %s level %s, want T %s; error %q\nreport:\n%s\njob log:\n%s\ndirector log:\n%s",
			id, job, level, j.Status, j.Level, wantLevel, j.ErrorReason, report, w.tapectlOut(fmt.Sprintf("list joblog jobid=%d", id)), w.dird.Output())
	}
	return j, report
}

func (w *world) tapectlOut(line string) string {
	out, errs, code := w.tapectl(line)
	return fmt.Sprintf("(exit %d) %s%s", code, out, errs)
}

// listFiles is `tapectl --json "list files jobid=N"`, read for the tree
// under root. An operator must be able to check a file's digest and a
// link's target there: rows without them are an error, and (so that the
// rest of the test still checks something) they are taken from the
// catalog's rows of the same path.
func (w *world) listFiles(id int64, root string) []testtree.File {
	w.t.Helper()
	out := w.ok("--json", fmt.Sprintf("list files jobid=%d", id))
	files, err := testtree.ParseListFiles([]byte(out), root)
	if err != nil {
		w.t.Fatalf("list files jobid=%d: %v", id, err)
	}
	var noDigest, noLink int
	for _, f := range files {
		switch {
		case f.Type == "file" && f.SHA256 == nil:
			noDigest++
		case (f.Type == "symlink" || f.Type == "link") && len(f.Link) == 0:
			noLink++
		}
	}
	if noDigest+noLink == 0 {
		return files
	}
	w.t.Errorf("list files jobid=%d --json: %d regular files without sha256, %d links without their target (the catalog has both)", id, noDigest, noLink)
	rows, err := w.store().ListFiles(context.Background(), id)
	if err != nil {
		w.t.Fatal(err)
	}
	doc, err := json.Marshal(rows)
	if err != nil {
		w.t.Fatal(err)
	}
	cat, err := testtree.ParseListFiles(doc, root)
	if err != nil {
		w.t.Fatal(err)
	}
	byPath := map[string]testtree.File{}
	for _, f := range cat {
		byPath[f.Path] = f
	}
	for i, f := range files {
		if c, ok := byPath[f.Path]; ok {
			if f.SHA256 == nil {
				files[i].SHA256 = c.SHA256
			}
			if len(f.Link) == 0 {
				files[i].Link = c.Link
			}
		}
	}
	return files
}

// requireFiles fails with every difference between a job's listing and
// want (the tree under one root; the directories above the root may be
// listed too: filed stores them so a restore recreates them).
func (w *world) requireFiles(what, root string, got []testtree.File, want testtree.Snapshot) {
	w.t.Helper()
	got = testtree.DropParents(got, root)
	if p := testtree.Compare(got, want); len(p) > 0 {
		if len(p) > 40 {
			p = append(p[:40], fmt.Sprintf("… and %d more", len(p)-40))
		}
		w.t.Fatalf("%s: %d listed, %d expected:\n%s", what, len(got), len(want), strings.Join(p, "\n"))
	}
}

// dbPools holds one connection pool per world (the tests poll the
// catalog; a connection per query would exhaust the server).
var dbPools sync.Map // *world → *pgxpool.Pool

func (w *world) db() *pgxpool.Pool {
	w.t.Helper()
	if p, ok := dbPools.Load(w); ok {
		return p.(*pgxpool.Pool)
	}
	cfg, err := pgxpool.ParseConfig(w.dsn)
	if err != nil {
		w.t.Fatal(err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { dbPools.Delete(w); pool.Close() })
	dbPools.Store(w, pool)
	return pool
}

// q runs one query on the catalog.
func (w *world) q(query string, args ...any) pgx.Row {
	return w.db().QueryRow(context.Background(), query, args...)
}

// store is the catalog, read as the restore will (current view,
// deletions).
func (w *world) store() *catalog.Store { return catalog.NewStore(w.db()) }

// currentView is what a restore of the client's latest state would bring
// back, as testtree rows.
func (w *backupWorld) currentView(client string) []testtree.File {
	w.t.Helper()
	v, err := w.store().CurrentView(context.Background(), catalog.Chain{Job: client + "-home", Client: client, Fileset: "fs-" + client}, time.Time{})
	if err != nil {
		w.t.Fatalf("current view of %s: %v", client, err)
	}
	return w.asTree(v, client)
}

func (w *backupWorld) asTree(v []catalog.File, client string) []testtree.File {
	w.t.Helper()
	doc, err := json.Marshal(v)
	if err != nil {
		w.t.Fatal(err)
	}
	files, err := testtree.ParseListFiles(doc, w.root[client])
	if err != nil {
		w.t.Fatal(err)
	}
	return files
}

// deletions are the paths recorded as deleted in a job, resolved under
// the client's root.
func (w *backupWorld) deletions(id int64, client string) []string {
	w.t.Helper()
	d, err := w.store().Deletions(context.Background(), id)
	if err != nil {
		w.t.Fatal(err)
	}
	var rows []catalog.File
	for _, p := range d {
		rows = append(rows, catalog.File{FileRow: catalog.FileRow{Path: p, Type: "file"}})
	}
	return testtree.Paths(w.asTree(rows, client))
}

// ---- catalog consistency (invariant 9) ----

// checkCatalog requires of every job: no job left active; every file row
// (and continuation) inside a tape file its job recorded and nobody wrote
// over; in a complete tape file, before its last block; for a job that
// did not end well, before the stream offset storaged reported flushed;
// every ended-in-error job with its reason.
func (w *world) checkCatalog() {
	w.t.Helper()
	for _, c := range []struct{ what, q string }{
		{"jobs still active", `SELECT count(*) FROM jobs WHERE status NOT IN ('T', 'W', 'E', 'f', 'A')`},
		{"file rows outside every recorded tape file of their job", `SELECT count(*) FROM files f WHERE NOT EXISTS (
			SELECT 1 FROM job_media jm WHERE jm.job_id = f.job_id AND jm.media_id = f.media_id AND jm.tape_file = f.tape_file AND jm.overwritten_by IS NULL)`},
		{"continuations outside every recorded tape file of their job", `SELECT count(*) FROM file_parts p WHERE NOT EXISTS (
			SELECT 1 FROM job_media jm WHERE jm.job_id = p.job_id AND jm.media_id = p.media_id AND jm.tape_file = p.tape_file AND jm.overwritten_by IS NULL)`},
		{"file rows past the last block of their complete tape file", `SELECT count(*) FROM files f JOIN job_media jm
			ON jm.job_id = f.job_id AND jm.media_id = f.media_id AND jm.tape_file = f.tape_file
			WHERE jm.complete AND jm.last_block IS NOT NULL AND f.block > jm.last_block`},
		{"file rows of failed jobs at or past their flushed offset", `SELECT count(*) FROM files f JOIN jobs j ON j.id = f.job_id
			WHERE j.status IN ('E', 'f', 'A') AND f.stream_offset >= j.flushed_offset`},
		{"file rows whose parts count disagrees with file_parts", `SELECT count(*) FROM files f
			WHERE f.parts <> (SELECT count(*) FROM file_parts p WHERE p.job_id = f.job_id AND p.stream_offset = f.stream_offset)`},
		{"failed jobs without a reason", `SELECT count(*) FROM jobs WHERE status IN ('E', 'f') AND coalesce(error_reason, '') = ''`},
	} {
		var n int64
		if err := w.q(c.q).Scan(&n); err != nil {
			w.t.Fatalf("checking the catalog (%s): %v", c.what, err)
		}
		if n != 0 {
			w.t.Errorf("catalog: %d %s", n, c.what)
		}
	}
}

// checkAppends requires that job id wrote after every complete tape file
// of the volumes it wrote (nothing a finished job wrote was written over).
func (w *world) checkAppends(id int64) {
	w.t.Helper()
	var n int64
	if err := w.q(`SELECT count(*) FROM job_media mine JOIN job_media other
		ON other.media_id = mine.media_id AND other.job_id <> mine.job_id AND other.complete AND other.tape_file >= mine.tape_file
		WHERE mine.job_id = $1`, id).Scan(&n); err != nil {
		w.t.Fatal(err)
	}
	if n != 0 {
		w.t.Errorf("job %d wrote at or before %d complete tape files of other jobs", id, n)
	}
	if err := w.q(`SELECT count(*) FROM job_media WHERE job_id = $1`, id).Scan(&n); err != nil || n == 0 {
		w.t.Errorf("job %d recorded no tape file (%v)", id, err)
	}
}

// jobVolumes are the distinct volumes a job's tape files are on, in part
// order.
func (w *world) jobVolumes(id int64) []string {
	w.t.Helper()
	rows, err := w.db().Query(context.Background(), `SELECT m.volume_name FROM job_media jm JOIN media m ON m.id = jm.media_id
		WHERE jm.job_id = $1 ORDER BY jm.part`, id)
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	var vols []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			w.t.Fatal(err)
		}
		if !slices.Contains(vols, v) {
			vols = append(vols, v)
		}
	}
	return vols
}

// waitWriting waits until job id has started a tape file (a drive and a
// volume are its) and fails if it ends first.
func (w *world) waitWriting(id int64) {
	w.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int64
		if err := w.q(`SELECT count(*) FROM job_media WHERE job_id = $1`, id).Scan(&n); err != nil {
			w.t.Fatal(err)
		}
		j := w.job(id)
		if n > 0 && !terminal(j.Status) {
			return
		}
		if terminal(j.Status) {
			w.t.Fatalf("job %d ended (%s, %q) before the test could interrupt it: give it a larger tree", id, j.Status, j.ErrorReason)
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("job %d wrote no tape file within 60s (status %s)\ndirector log:\n%s", id, j.Status, w.dird.Output())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitStreaming waits until job id has a tape file and fd has started
// sending its data (its "backup started" line), and fails if the job
// ended first.
func (w *world) waitStreaming(id int64, fd *filedProc) {
	w.t.Helper()
	w.waitWriting(id)
	testenv.WaitFor(w.t, "filed to start the backup", func() bool {
		return strings.Contains(fd.proc.Output(), "backup started") || terminal(w.job(id).Status)
	})
	if j := w.job(id); terminal(j.Status) {
		w.t.Fatalf("job %d ended (%s, %q) before the test could interrupt it: give it a larger tree", id, j.Status, j.ErrorReason)
	}
}

// waitNoKey waits until no drive holds a key (storaged clears it when a
// session ends).
func (w *world) waitNoKey() {
	w.t.Helper()
	testenv.WaitFor(w.t, "every drive's key to be cleared", func() bool { return noKey(w.vtl.Status(w.t)) })
}

func noKey(st string) bool {
	for _, line := range strings.Split(st, "\n") {
		if strings.HasPrefix(line, "drive") && !strings.Contains(line, "no key") {
			return false
		}
	}
	return true
}

// bigTree is a tree a job takes long enough over for a test to interrupt
// it when its client sends at slowBandwidth (filed's max_bandwidth_per_job):
// 16 MiB, so at least 2 s on any machine however fast, for little CPU (it
// was 160 MiB at full speed, about a second on a fast machine).
var bigTree = testtree.Options{LargeFiles: 8, LargeSize: 2 << 20, SmallFiles: 50, SmallSize: 3000, Links: true}

// slowBandwidth is the max_bandwidth_per_job of the clients of the tests
// that interrupt a job of bigTree.
const slowBandwidth = "8MiB"

// ---- the tests ----

// Full (upgraded from the default Incremental, and saying why), then
// modify / add / delete / chmod / rename, an Incremental that lists
// exactly the changed paths and records the deletions, more changes and a
// Differential holding everything changed since the Full. After each job
// its listing is checked against the tree, and the latest view (what a
// restore brings back) equals the tree: no deleted file in it.
func TestBackupFullIncrementalDifferential(t *testing.T) {
	w := newBackupWorld(t, backupOpts{})
	root := w.root["web1"]
	snap := w.makeTree("web1", testtree.Options{Seed: 1, LargeFiles: 2, LargeSize: 3 << 20, SmallFiles: 200, SmallSize: 2000,
		Links: true, LongName: true, OddNames: true, DeepPath: true, SparseSize: 16 << 20})

	est := w.ok("estimate job=web1-home")
	if e := strings.ReplaceAll(est, ",", ""); !strings.Contains(e, " "+strconv.Itoa(len(snap))+" ") &&
		!strings.Contains(e, " "+strconv.Itoa(len(snap)+len(testtree.Parents(root)))+" ") {
		t.Errorf("estimate does not give the %d entries of the tree (%d with the directories above it):\n%s", len(snap), len(snap)+len(testtree.Parents(root)), est)
	}
	if l := w.ok("estimate job=web1-home listing"); !strings.Contains(l, "long-name-long-name") || !strings.Contains(l, "hard-b.bin") {
		t.Errorf("estimate listing lacks the long name or the hard link:\n%.2000s", l)
	}

	// No level: an Incremental, upgraded to Full since there is no Full.
	full, report := w.backup("web1-home", "", "Full")
	if full.UpgradedFrom != "Incremental" || full.UpgradeReason == "" || !strings.Contains(report, "upgraded") {
		t.Errorf("first job: upgraded_from %q reason %q; report:\n%s", full.UpgradedFrom, full.UpgradeReason, report)
	}
	if !strings.Contains(report, strconv.FormatInt(full.ID, 10)) || !strings.Contains(report, "web1-home") {
		t.Errorf("the job report lacks the JobId %d or the job name:\n%s", full.ID, report)
	}
	w.requireFiles("Full", root, w.listFiles(full.ID, root), snap)
	if n, _ := snap.Files(); full.Files < int64(n) {
		t.Errorf("Full: files_count %d, the tree has %d regular files", full.Files, n)
	}
	w.requireFiles("latest view after the Full", w.root["web1"], w.currentView("web1"), snap)
	for _, line := range []string{fmt.Sprintf("list jobmedia jobid=%d", full.ID), fmt.Sprintf("list joblog jobid=%d", full.ID), "status client=web1", "status director"} {
		if out := w.ok(line); strings.TrimSpace(out) == "" {
			t.Errorf("%q printed nothing", line)
		}
	}
	if out := w.ok(fmt.Sprintf("list jobmedia jobid=%d", full.ID)); !strings.Contains(out, w.jobVolumes(full.ID)[0]) {
		t.Errorf("list jobmedia does not name volume %s:\n%s", w.jobVolumes(full.ID)[0], out)
	}

	// Round 1 of changes.
	p := func(rel string) string { return root + "/" + rel }
	rng := testtree.Rand(7)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(testtree.WriteRandom(p("small/d00/s0003.bin"), 2500, rng))    // modified (and grown)
	must(testtree.WriteRandom(p(testtree.NewlineName), 900, rng))      // modified odd name
	must(testtree.WriteRandom(p("small/d01/new-file.bin"), 5000, rng)) // added
	must(os.Remove(p("small/d00/s0005.bin")))                          // deleted
	must(os.Chmod(p("big/large-00.bin"), 0o600))                       // chmod
	must(os.Rename(p("small/d00/s0007.bin"), p("names/renamed.bin")))  // renamed
	snap1 := w.snapshot("web1")
	changed1 := []string{p("small/d00/s0003.bin"), p(testtree.NewlineName), p("small/d01/new-file.bin"), p("big/large-00.bin"),
		p("names/renamed.bin"), p("small/d00"), p("small/d01"), p("names")}
	deleted := []string{p("small/d00/s0005.bin"), p("small/d00/s0007.bin")}

	incr, _ := w.backup("web1-home", "Incremental", "Incremental")
	w.requireFiles("Incremental (exactly the changed paths)", root, unchangedDirsOut(w.listFiles(incr.ID, root), snap1, changed1), snap1.Only(changed1...))
	if got := w.deletions(incr.ID, "web1"); !slices.Equal(got, deleted) {
		t.Errorf("Incremental recorded deletions %q, want %q", got, deleted)
	}
	w.requireFiles("latest view after the Incremental", w.root["web1"], w.currentView("web1"), snap1)

	// Round 2, then a Differential: everything changed since the Full.
	must(testtree.WriteRandom(p("small/d01/s0120.bin"), 100, rng))
	must(testtree.WriteRandom(p("big/new-large.bin"), 1<<20, rng))
	snap2 := w.snapshot("web1")
	changed2 := append(slices.Clone(changed1), p("small/d01/s0120.bin"), p("big/new-large.bin"), p("big"))
	diff, _ := w.backup("web1-home", "Differential", "Differential")
	w.requireFiles("Differential (everything changed since the Full)", root, unchangedDirsOut(w.listFiles(diff.ID, root), snap2, changed2), snap2.Only(changed2...))
	if got := w.deletions(diff.ID, "web1"); !slices.Equal(got, deleted) {
		t.Errorf("Differential recorded deletions %q, want %q", got, deleted)
	}
	w.requireFiles("latest view after the Differential", w.root["web1"], w.currentView("web1"), snap2)

	out := w.ok("list jobs job=web1-home")
	for _, id := range []int64{full.ID, incr.ID, diff.ID} {
		if !strings.Contains(out, strconv.FormatInt(id, 10)) {
			t.Errorf("list jobs lacks job %d:\n%s", id, out)
		}
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(w.ok("--json", "list jobs client=web1")), &rows); err != nil || len(rows) != 3 {
		t.Errorf("list jobs client=web1 --json: %d rows (%v), want 3", len(rows), err)
	}
	w.checkCatalog()
	w.vtl.RequireNoKey(t)
}

// Odd paths at (reduced) scale: newline and invalid UTF-8 names, a
// 4096-byte path, a symlink loop, many files in one directory and a
// sparse file that is mostly holes.
func TestBackupOddTree(t *testing.T) {
	flat, sparse := envInt("TAPEWARD_E2E_FLAT_FILES", 2000), envInt("TAPEWARD_E2E_SPARSE", 1<<30)
	w := newBackupWorld(t, backupOpts{})
	snap := w.makeTree("web1", testtree.Options{Seed: 2, FlatFiles: int(flat), FlatSize: 100, Links: true, LongName: true,
		OddNames: true, DeepPath: true, SparseSize: sparse})
	j, _ := w.backup("web1-home", "Full", "Full")
	w.requireFiles("Full of the odd tree", w.root["web1"], w.listFiles(j.ID, w.root["web1"]), snap)
	// Holes take no tape: the job's stream is far smaller than the file.
	var stream int64
	if err := w.q(`SELECT coalesce(sum(bytes), 0) FROM job_media WHERE job_id = $1`, j.ID).Scan(&stream); err != nil {
		t.Fatal(err)
	}
	if stream > sparse/4 {
		t.Errorf("the job wrote %d bytes of tape files for a %d-byte sparse file with 192 KiB of data: holes were expanded", stream, sparse)
	}
	w.checkCatalog()
}

// unchangedDirsOut drops from an Incremental's or Differential's listing
// the directories of the tree that did not change: filed stores every
// directory in every job (tools/filed/README.md), which costs a header
// each and lets a restore of any one job recreate the directories' modes
// (GNU tar's listed-incremental format does the same). Every other entry
// must be exactly a changed one.
func unchangedDirsOut(got []testtree.File, snap testtree.Snapshot, changed []string) []testtree.File {
	var out []testtree.File
	for _, f := range got {
		if e, ok := snap[f.Path]; ok && e.Type == "dir" && f.Type == "dir" && !slices.Contains(changed, f.Path) {
			continue
		}
		out = append(out, f)
	}
	return out
}

func envInt(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil && v > 0 {
		return v
	}
	return def
}

// A job over three 8 MiB volumes with one file larger than a volume:
// every file listed with its continuation, the filled volumes Full.
func TestBackupSpansThreeVolumes(t *testing.T) {
	w := newBackupWorld(t, backupOpts{worldOpts: worldOpts{slots: 4, capacity: "8MiB"}, volumes: 4})
	snap := w.makeTree("web1", testtree.Options{Seed: 3, LargeFiles: 1, LargeSize: 12 << 20, SmallFiles: 6, SmallSize: 1 << 20})
	j, _ := w.backup("web1-home", "Full", "Full")
	w.requireFiles("Full over three volumes", w.root["web1"], w.listFiles(j.ID, w.root["web1"]), snap)
	vols := w.jobVolumes(j.ID)
	if len(vols) < 3 {
		t.Fatalf("the job wrote volumes %q, want 3 (18 MiB on 8 MiB volumes)", vols)
	}
	out := w.ok(fmt.Sprintf("list jobmedia jobid=%d", j.ID))
	for _, v := range vols {
		if !strings.Contains(out, v) {
			t.Errorf("list jobmedia lacks %s:\n%s", v, out)
		}
	}
	var parts int64
	if err := w.q(`SELECT count(*) FROM file_parts WHERE job_id = $1`, j.ID).Scan(&parts); err != nil || parts < 1 {
		t.Errorf("the 12 MiB file has %d continuations recorded (%v), want at least 1", parts, err)
	}
	for _, v := range w.volumes() {
		if slices.Index(vols, v.Volume) >= 0 && slices.Index(vols, v.Volume) < len(vols)-1 && v.Status != "Full" {
			t.Errorf("volume %s, filled by the job, is %s, want Full", v.Volume, v.Status)
		}
	}
	// Each volume's reports (written, verified: sent while the tape goes
	// on) reached the catalog, and before its key was cleared.
	for _, v := range vols {
		var written int64
		var events []string
		if err := w.q(`SELECT bytes_written, ARRAY(SELECT event FROM key_events WHERE volume_name = $1 ORDER BY id) FROM media WHERE volume_name = $1`, v).Scan(&written, &events); err != nil {
			t.Fatal(err)
		}
		verified, cleared := slices.Index(events, "verified"), -1
		for i, e := range events {
			if e == "cleared" {
				cleared = i
			}
		}
		if written == 0 || verified < 0 || cleared != len(events)-1 || verified > cleared {
			t.Errorf("volume %s: %d bytes written, key events %q: want bytes, and verified before the last cleared", v, written, events)
		}
	}
	w.checkCatalog()
	w.vtl.RequireNoKey(t)
}

// Two clients' jobs at once on the two drives: while web1's job is held
// (its filed stopped mid-stream, so it keeps its drive and volume), web2's
// job runs to the end on the other drive and another volume.
func TestBackupTwoJobsTwoDrives(t *testing.T) {
	w := newBackupWorld(t, backupOpts{worldOpts: worldOpts{capacity: "256MiB"}, clients: []string{"web1", "web2"}, volumes: 4, bandwidth: slowBandwidth})
	snap1 := w.makeTree("web1", bigTree)
	o := bigTree
	o.Seed = 9
	snap2 := w.makeTree("web2", o)

	id1 := w.runJob("web1-home", "Full")
	w.waitWriting(id1)
	fd1 := w.filed["web1"]
	fd1.proc.Cmd.Process.Signal(syscall.SIGSTOP)
	stopped := true
	t.Cleanup(func() {
		if stopped {
			fd1.proc.Cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	st := w.ok("status director")
	if !strings.Contains(st, strconv.FormatInt(id1, 10)) {
		t.Errorf("status director does not show running job %d:\n%s", id1, st)
	}
	j2, _ := w.backup("web2-home", "Full", "Full")
	if j := w.job(id1); terminal(j.Status) {
		t.Fatalf("job %d ended (%s %q) while its filed was stopped", id1, j.Status, j.ErrorReason)
	}
	fd1.proc.Cmd.Process.Signal(syscall.SIGCONT)
	stopped = false
	j1, _ := w.waitJob(id1, 90*time.Second)
	if j1.Status != "T" {
		t.Fatalf("job %d: %s %q", id1, j1.Status, j1.ErrorReason)
	}
	w.requireFiles("web1", w.root["web1"], w.listFiles(id1, w.root["web1"]), snap1)
	w.requireFiles("web2", w.root["web2"], w.listFiles(j2.ID, w.root["web2"]), snap2)
	v1, v2 := w.jobVolumes(id1), w.jobVolumes(j2.ID)
	for _, v := range v1 {
		if slices.Contains(v2, v) {
			t.Errorf("jobs %d and %d both wrote volume %s while both ran (volumes %q and %q)", id1, j2.ID, v, v1, v2)
		}
	}
	w.checkCatalog()
	w.vtl.RequireNoKey(t)
}

// A client that stops sending (SIGSTOP) is dropped after
// client_idle_timeout: the job ends E saying so, no key stays in a drive,
// and the next job appends after the last complete tape file.
func TestBackupStalledClient(t *testing.T) {
	w := newBackupWorld(t, backupOpts{worldOpts: worldOpts{capacity: "256MiB"}, idleTimeout: "3s", bandwidth: slowBandwidth})
	snap := w.makeTree("web1", bigTree)
	fd := w.filed["web1"]
	id := w.runJob("web1-home", "Full")
	w.waitStreaming(id, fd)
	fd.proc.Cmd.Process.Signal(syscall.SIGSTOP)
	t0 := time.Now()
	j, report := w.waitJob(id, 60*time.Second)
	fd.proc.Cmd.Process.Signal(syscall.SIGCONT)
	if j.Status != "E" || !regexp.MustCompile(`(?i)idle|silent|timeout|timed out|stall|no data`).MatchString(j.ErrorReason) {
		t.Fatalf("stalled job %d: status %s reason %q, want E naming the idle timeout\nreport:\n%s", id, j.Status, j.ErrorReason, report)
	}
	if d := time.Since(t0); d > 45*time.Second {
		t.Errorf("the stalled job took %v to fail with client_idle_timeout 3s", d)
	}
	w.waitNoKey()
	w.checkCatalog()
	next, _ := w.backup("web1-home", "Full", "Full")
	w.requireFiles("the job after the stall", w.root["web1"], w.listFiles(next.ID, w.root["web1"]), snap)
	w.checkAppends(next.ID)
	w.checkCatalog()
}

// kill -9 of storaged, of filed and of the director in the middle of a
// job: the job ends E, the catalog stays consistent (every listed file in
// a recorded tape file, before the flushed offset), no key stays in a
// drive, and the next job runs and appends.
func TestBackupKillMidJob(t *testing.T) {
	for _, victim := range []string{"storaged", "filed", "director"} {
		t.Run(victim, func(t *testing.T) {
			w := newBackupWorld(t, backupOpts{worldOpts: worldOpts{capacity: "256MiB"}, bandwidth: slowBandwidth})
			snap := w.makeTree("web1", bigTree)
			fd := w.filed["web1"]
			id := w.runJob("web1-home", "Full")
			w.waitStreaming(id, fd)
			switch victim {
			case "storaged":
				w.sd.Kill9(t)
				w.startStoraged()
			case "filed":
				fd.proc.Kill9(t)
				w.startFiled(fd)
			case "director":
				w.dird.Kill9(t)
				w.startDirector()
			}
			j, report := w.waitJob(id, 60*time.Second)
			if j.Status != "E" {
				t.Fatalf("job %d after kill -9 of %s: status %s (%q), want E\nreport:\n%s", id, victim, j.Status, j.ErrorReason, report)
			}
			w.waitNoKey()
			w.checkCatalog()
			next, _ := w.backup("web1-home", "Full", "Full")
			w.requireFiles("the job after the kill", w.root["web1"], w.listFiles(next.ID, w.root["web1"]), snap)
			w.checkAppends(next.ID)
			w.checkCatalog()
		})
	}
}

// The catalog goes away in the middle of a job and comes back: the job
// ends (E saying why, or T with every file listed), nothing in the
// catalog points at data that is not on tape, no key stays in a drive,
// and the next job runs and appends.
func TestBackupCatalogCutMidJob(t *testing.T) {
	w := newBackupWorld(t, backupOpts{worldOpts: worldOpts{capacity: "256MiB", viaProxy: true}, bandwidth: slowBandwidth})
	snap := w.makeTree("web1", bigTree)
	id := w.runJob("web1-home", "Full")
	w.waitWriting(id)
	logFrom := len(w.dird.Output())
	w.proxy.cut()
	testenv.WaitFor(t, "the director to notice the catalog is gone", func() bool {
		return strings.Contains(strings.ToLower(w.dird.Output()[logFrom:]), "catalog")
	})
	w.proxy.restore()
	testenv.WaitFor(t, "the director to reach the catalog again", func() bool {
		_, _, code := w.tapectl("list volumes")
		return code == 0
	})
	j, report, ended := w.tryWaitJob(id, 20*time.Second)
	if !ended {
		// The catalog is back but the job is still R there: the director
		// could not record its end and did not retry. A restart ends it
		// (leftover jobs are ended E), so the rest can still be checked.
		t.Errorf("job %d is still %q in the catalog 20s after the catalog came back (the director must record its end once it can); report:\n%s",
			id, j.Status, report)
		w.dird.Stop(t, syscall.SIGTERM)
		w.startDirector()
		j, report = w.waitJob(id, 30*time.Second)
	}
	switch j.Status {
	case "E":
		if ended && !strings.Contains(strings.ToLower(j.ErrorReason), "catalog") {
			t.Errorf("job %d: E with reason %q, which does not name the catalog", id, j.ErrorReason)
		}
	case "T":
		w.requireFiles("the job that outlived the cut", w.root["web1"], w.listFiles(id, w.root["web1"]), snap)
	default:
		t.Fatalf("job %d after the catalog came back: %s (%q)\nreport:\n%s", id, j.Status, j.ErrorReason, report)
	}
	w.waitNoKey()
	w.checkCatalog()
	next, _ := w.backup("web1-home", "Full", "Full")
	w.requireFiles("the job after the cut", w.root["web1"], w.listFiles(next.ID, w.root["web1"]), snap)
	w.checkAppends(next.ID)
	w.checkCatalog()
}

// storaged's JobData takes data only with the token of a live session,
// from the client certificate the director named for it: a bad token, no
// session, another session's token, another client's certificate and a
// console certificate are all refused; the right one is accepted.
func TestJobDataNeedsToken(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.ok("label storage=sd1 pool=Backup slots=1-2 barcodes encrypt")
	web1 := w.pki.Issue(t, "web1", tlsconf.RoleClient)
	web2 := w.pki.Issue(t, "web2", tlsconf.RoleClient)
	console := w.pki.Issue(t, "admin", tlsconf.RoleConsole)

	send := func(files tlsconf.Files, session, token string) error {
		t.Helper()
		tc, err := tlsconf.Client(files, tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}, "")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(w.sdConf.Listen, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		st, err := pb.NewStorageClient(conn).JobData(ctx)
		if err != nil {
			return err
		}
		st.Send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_Open{Open: &pb.JobDataOpen{Session: session, Token: token}}})
		st.Send(&pb.JobDataRequest{Msg: &pb.JobDataRequest_End{End: &pb.JobDataEnd{}}})
		_, err = st.CloseAndRecv()
		return err
	}
	denied := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: %v, want PermissionDenied", what, err)
		}
	}
	denied("no such session, bad token", send(web1, "no-such-session", "bad-token"))
	denied("no such session, no token", send(web1, "", ""))

	// Two live sessions, opened as the director opens them.
	sessA, tokA, stopA := openSession(t, w, "TW0001L6", 1, "web1")
	defer stopA()
	sessB, tokB, stopB := openSession(t, w, "TW0002L6", 2, "web1")
	defer stopB()
	denied("session A with session B's token", send(web1, sessA, tokB))
	denied("session A's token from another client", send(web2, sessA, tokA))
	if err := send(console, sessA, tokA); err == nil {
		t.Errorf("a console certificate wrote to session A")
	}
	denied("session A with a guessed token", send(web1, sessA, tokA+"x"))
	if err := send(web1, sessB, tokB); status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.Unauthenticated {
		t.Errorf("the right client with the right token was refused: %v", err)
	}
	stopA()
	stopB()
	w.waitNoKey()
}

// openSession opens a job session on storaged as the director does
// (Storage.Job with the director's certificate) and returns its id and
// token, and a function that ends it.
func openSession(t *testing.T, w *world, volume string, slot uint32, client string) (string, string, func()) {
	t.Helper()
	tc, err := tlsconf.Client(w.dirConf.TLS, tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(w.sdConf.Listen, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	// A running job of the catalog: storaged has the director record each
	// tape file before it writes it.
	var jobID int64
	if err := w.sql(`INSERT INTO jobs (name, job_type, level, status, client, fileset, started_at)
		VALUES ('token-test', 'Backup', 'Full', 'R', $1, 'fs', now()) RETURNING id`, client).Scan(&jobID); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := func() { cancel(); conn.Close() }
	st, err := pb.NewStorageClient(conn).Job(ctx)
	if err != nil {
		stop()
		t.Fatalf("Storage.Job: %v", err)
	}
	err = st.Send(&pb.JobControl{Msg: &pb.JobControl_Open{Open: &pb.JobOpen{
		Job:    &pb.JobSpec{JobId: jobID, Job: "token-test", Client: client, Fileset: "fs", Level: "Full", Pool: "Backup"},
		Volume: &pb.JobVolume{Volume: volume, Slot: slot, TapeFile: 2, VolumeSeq: 1}, Client: client}}})
	if err != nil {
		stop()
		t.Fatalf("opening a session on %s: %v", volume, err)
	}
	for {
		ev, err := st.Recv()
		if err != nil {
			stop()
			t.Fatalf("opening a session on %s: %v\nstoraged log:\n%s", volume, err, w.sd.Output())
		}
		if o := ev.GetOpened(); o != nil {
			if o.Session == "" || o.Token == "" {
				t.Errorf("session on %s opened with session %q and an empty token: %v", volume, o.Session, o.Token == "")
			}
			go func() {
				for {
					if _, err := st.Recv(); err != nil {
						return
					}
				}
			}()
			return o.Session, o.Token, stop
		}
	}
}

// cancel jobid=N in the middle of a job (its filed held, so it is surely
// mid-stream): the job ends A, no key stays in a drive, the catalog is
// consistent, and the next job appends.
func TestBackupCancel(t *testing.T) {
	w := newBackupWorld(t, backupOpts{worldOpts: worldOpts{capacity: "256MiB"}, bandwidth: slowBandwidth})
	snap := w.makeTree("web1", bigTree)
	fd := w.filed["web1"]
	id := w.runJob("web1-home", "Full")
	w.waitWriting(id)
	fd.proc.Cmd.Process.Signal(syscall.SIGSTOP)
	out, errs, code := w.tapectl(fmt.Sprintf("cancel jobid=%d", id))
	fd.proc.Cmd.Process.Signal(syscall.SIGCONT)
	if code != 0 {
		t.Errorf("cancel jobid=%d: exit %d\n%s%s", id, code, out, errs)
	}
	j, report := w.waitJob(id, 60*time.Second)
	if j.Status != "A" {
		t.Fatalf("cancelled job %d: status %s (%q), want A\nreport:\n%s", id, j.Status, j.ErrorReason, report)
	}
	w.waitNoKey()
	w.checkCatalog()
	next, _ := w.backup("web1-home", "Full", "Full")
	w.requireFiles("the job after the cancel", w.root["web1"], w.listFiles(next.ID, w.root["web1"]), snap)
	w.checkAppends(next.ID)
	w.checkCatalog()
}

// With one drive, a second job waits while the first holds it, and
// `status director` says why; once the drive is free it runs.
func TestBackupWaitsForADrive(t *testing.T) {
	w := newBackupWorld(t, backupOpts{worldOpts: worldOpts{drives: 1, capacity: "256MiB"}, clients: []string{"web1", "web2"}, bandwidth: slowBandwidth})
	snap1 := w.makeTree("web1", bigTree)
	snap2 := w.makeTree("web2", testtree.Options{Seed: 5, SmallFiles: 30, SmallSize: 1000, Links: true})
	fd1 := w.filed["web1"]
	id1 := w.runJob("web1-home", "Full")
	w.waitWriting(id1)
	fd1.proc.Cmd.Process.Signal(syscall.SIGSTOP)
	stopped := true
	t.Cleanup(func() {
		if stopped {
			fd1.proc.Cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	id2 := w.runJob("web2-home", "Full")
	var st string
	testenv.WaitFor(t, "status director to say job "+strconv.FormatInt(id2, 10)+" waits for a drive", func() bool {
		st = w.ok("status director")
		return strings.Contains(st, "waiting for a drive on sd1")
	})
	if j := w.job(id2); terminal(j.Status) {
		t.Fatalf("job %d ended (%s %q) while the only drive was busy", id2, j.Status, j.ErrorReason)
	}
	fd1.proc.Cmd.Process.Signal(syscall.SIGCONT)
	stopped = false
	for _, c := range []struct {
		id   int64
		root string
		snap testtree.Snapshot
	}{{id1, w.root["web1"], snap1}, {id2, w.root["web2"], snap2}} {
		j, report := w.waitJob(c.id, 90*time.Second)
		if j.Status != "T" {
			t.Fatalf("job %d: %s (%q)\n%s", c.id, j.Status, j.ErrorReason, report)
		}
		w.requireFiles(fmt.Sprintf("job %d", c.id), c.root, w.listFiles(c.id, c.root), c.snap)
	}
	w.checkAppends(id2)
	w.checkCatalog()
	w.vtl.RequireNoKey(t)
}
