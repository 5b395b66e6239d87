package core

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/console"
	"github.com/tapeward/tapeward/director/jobs"
	"github.com/tapeward/tapeward/director/jobs/jobstest"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// jobDirector is a real director (catalog, TLS, keyring) whose storage
// sd1 and client web1 are the jobstest fakes.
func jobDirector(t *testing.T) (*Director, *jobstest.Storage, *jobstest.Filed, string) {
	t.Helper()
	return jobDirectorWith(t, "", nil)
}

// jobDirectorWith is jobDirector with more director.toml (appended) and
// a clock (nil: time.Now).
func jobDirectorWith(t *testing.T, extra string, clock func() time.Time) (*Director, *jobstest.Storage, *jobstest.Filed, string) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	dsn := pgtest.NewDB(t)
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.NewPKI(t, dir)
	kekPath := filepath.Join(dir, "kek.key")
	testenv.WriteKEK(t, kekPath)
	sd := jobstest.NewStorage(1, "V1")
	sdAddr := jobstest.Serve(t, p.Issue(t, "sd1", tlsconf.RoleStorage), func(s *grpc.Server) { pb.RegisterStorageServer(s, sd) })
	old := time.Now().Add(-time.Hour).UnixNano()
	web1 := jobstest.NewFiled("web1", sd, map[string]int64{"/home/a": old, "/home/b": old, "/home/new\nline": old})
	fdAddr := jobstest.Serve(t, p.Issue(t, "web1", tlsconf.RoleClient), func(s *grpc.Server) { pb.RegisterFiledServer(s, web1) })

	dc := testenv.Director{Name: "director", Listen: "127.0.0.1:0", TLS: p.Issue(t, "director", tlsconf.RoleDirector),
		DBHost: pc.Host, DBPort: pc.Port, DBName: pc.Database, DBUser: pc.User, KEKFiles: []string{kekPath},
		Storages: map[string]string{"sd1": sdAddr}, Consoles: map[string]string{"admin": "keyadmin", "ops": "operator", "reader": "read"}}
	path := filepath.Join(dir, "director.toml")
	dc.Write(t, path)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, `
[[client]]
name = "web1"
address = %q
tls_server_name = "web1"

[[fileset]]
name = "home"
include = ["/home"]

[[pool]]
name = "Local"
storage = "sd1"
encrypted = false

[[job]]
name = "web1-home"
client = "web1"
fileset = "home"
pool = "Local"
`, fdAddr)
	fmt.Fprint(f, extra)
	f.Close()
	cfg, err := configs.LoadDirector(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(ctx, Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(&testenv.LogBuffer{}, nil)), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.store.EnsurePool(ctx, catalog.PoolSpec{Name: "Local", Storage: "sd1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.store.CreateLabeling(ctx, catalog.MediaNew{Volume: "V1", Barcode: "V1", Pool: "Local", Storage: "sd1", Slot: 1}); err != nil {
		t.Fatal(err)
	}
	if err := d.store.MarkLabeled(ctx, "V1", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	return d, sd, web1, dsn
}

// exec runs a console line as actor and returns its text and progress.
func exec(t *testing.T, d *Director, actor, line string) (string, []string, error) {
	t.Helper()
	cmd, err := console.Parse(line)
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	var mu sync.Mutex
	var prog []string
	out, err := d.Exec(context.Background(), actor, cmd, func(format string, a ...any) {
		mu.Lock()
		prog = append(prog, fmt.Sprintf(format, a...))
		mu.Unlock()
	})
	if err != nil {
		return "", prog, err
	}
	return out.Text, prog, nil
}

func mustExec(t *testing.T, d *Director, actor, line string, want ...string) string {
	t.Helper()
	text, _, err := exec(t, d, actor, line)
	if err != nil {
		t.Fatalf("%q as %s: %v", line, actor, err)
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("%q lacks %q:\n%s", line, w, text)
		}
	}
	return text
}

func TestJobCommands(t *testing.T) {
	d, sd, _, dsn := jobDirector(t)
	closed := false
	defer func() {
		if !closed {
			d.Close()
		}
	}()

	// A client certificate is refused on the director's own services,
	// even for a configured [[client]].
	if err := d.Accept(tlsconf.Peer{Role: tlsconf.RoleClient, Name: "web1"}); err == nil {
		t.Error("the director accepted a client certificate")
	}
	if _, _, err := exec(t, d, "reader", "run job=web1-home"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("run as reader: %v", err)
	}
	if _, _, err := exec(t, d, "ops", "run job=nope"); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "web1-home") {
		t.Errorf("run of an unknown job: %v", err)
	}

	text, prog, err := exec(t, d, "ops", "run job=web1-home yes wait")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Job report of JobId 1", "Full (upgraded from Incremental: no prior Full", "Volume(s):             V1", "Files written:         3", "Backup OK (T)"} {
		if !strings.Contains(text, w) {
			t.Errorf("run … wait lacks %q:\n%s", w, text)
		}
	}
	if len(prog) == 0 || prog[0] != "Job queued. JobId=1" {
		t.Errorf("progress: %q", prog)
	}
	mustExec(t, d, "reader", "list jobs", "JOBID", "web1-home", "Full (from Incremental)", "T (OK)", "V1", "1 jobs")
	mustExec(t, d, "reader", "list jobs jobstatus=T client=web1 days=1 last", "1 jobs")
	mustExec(t, d, "reader", "list jobs jobstatus=E", "0 jobs")
	if _, _, err := exec(t, d, "reader", "list jobs jobstatus=X"); status.Code(err) != codes.InvalidArgument {
		t.Errorf("jobstatus=X: %v", err)
	}
	mustExec(t, d, "reader", "list files jobid=1", "/home/a", `"/home/new\nline"`, "V1", "3 files")
	mustExec(t, d, "reader", "list jobmedia jobid=1", "data", "index", "2 tape files")
	mustExec(t, d, "reader", "list joblog jobid=1", "Start Backup JobId 1, Job=web1-home", "Using volume V1", "Termination:")
	mustExec(t, d, "reader", "status client=web1", "client web1 at", "up, filed test on linux", "no job of this director runs on it")
	mustExec(t, d, "reader", "estimate job=web1-home listing", "/home/b", "level Full", "3 files")
	mustExec(t, d, "reader", "estimate job=web1-home level=Incremental", "level Incremental", "0 files", "3 unchanged")
	mustExec(t, d, "reader", "wait jobid=1", "Backup OK (T)")
	if _, _, err := exec(t, d, "reader", "list files jobid=99"); status.Code(err) != codes.NotFound {
		t.Errorf("list files of an unknown job: %v", err)
	}

	// A job that runs until cancelled: status director shows it.
	sd.SetHold(true)
	mustExec(t, d, "ops", "run job=web1-home level=Full", "Job queued. JobId=2")
	<-sd.Opens
	testenv.WaitFor(t, "job 2 on volume V1", func() bool {
		s, ok := d.jobs.StatusOf(2)
		return ok && s.Volume == "V1"
	})
	mustExec(t, d, "reader", "status director", "running jobs: 1", "JobId 2 web1-home (Full)", "volume V1 in drive 0", "waiting jobs: 0")
	mustExec(t, d, "reader", "status client=web1", "JobId 2 web1-home")
	mustExec(t, d, "ops", "cancel jobid=2", "JobId 2 web1-home cancelled: status A (cancelled)")
	if _, _, err := exec(t, d, "ops", "cancel jobid=2"); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not running") {
		t.Errorf("second cancel: %v", err)
	}
	mustExec(t, d, "reader", "list jobs jobstatus=A", "cancelled", "1 jobs")

	// The director stopping ends a running job E, interrupted.
	mustExec(t, d, "ops", "run job=web1-home level=Full", "JobId=3")
	<-sd.Opens
	d.Close()
	closed = true
	conn := pgtest.Connect(t, dsn)
	var st, reason string
	if err := conn.QueryRow(context.Background(), "SELECT status, error_reason FROM jobs WHERE id = 3").Scan(&st, &reason); err != nil {
		t.Fatal(err)
	}
	if st != "E" || !strings.Contains(reason, "interrupted at") || !strings.Contains(reason, "shutting down") {
		t.Errorf("job 3 after the director stopped: %s %q", st, reason)
	}
}

func TestProgressLine(t *testing.T) {
	start := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	s := jobs.Status{JobID: 7, Job: "web1-home", Level: "Full", State: "running", Files: 12, Bytes: 2e6, Expected: 4e6,
		StartedAt: &start, Volume: "V1", Drive: "0", Warnings: 1}
	got := progressLine(s, start.Add(2*time.Second))
	want := "JobId 7 web1-home (Full): 12 files, 2.0 MB (2000000 B), 1.0 MB/s, ETA 2s, volume V1 in drive 0, 1 warnings"
	if got != want {
		t.Errorf("progress line:\n%s\nwant\n%s", got, want)
	}
	s.State, s.Why = "waiting", "waiting for a drive on sd1"
	if got := progressLine(s, start); got != "JobId 7 web1-home: waiting for a drive on sd1" {
		t.Errorf("waiting: %s", got)
	}
}
