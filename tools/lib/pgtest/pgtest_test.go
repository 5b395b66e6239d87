package pgtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tapeward/tapeward/migrations"
)

func TestMain(m *testing.M) { Main(m) }

func TestNewDBIsMigratedAndFresh(t *testing.T) {
	ctx := context.Background()
	a := NewConn(t)
	b := NewConn(t)

	var version int32
	if err := a.QueryRow(ctx, "SELECT version FROM "+migrations.VersionTable).Scan(&version); err != nil {
		t.Fatalf("reading the schema version: %v", err)
	}
	if want := migrations.Latest(); version != want || want < 1 {
		t.Fatalf("schema version = %d, want the latest, %d (>= 1)", version, want)
	}
	if _, err := a.Exec(ctx, "INSERT INTO storages (name) VALUES ('sd1')"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var n int
	if err := a.QueryRow(ctx, "SELECT count(*) FROM storages").Scan(&n); err != nil || n != 1 {
		t.Fatalf("database a: %d storages (%v), want 1", n, err)
	}
	if err := b.QueryRow(ctx, "SELECT count(*) FROM storages").Scan(&n); err != nil || n != 0 {
		t.Fatalf("database b sees %d storages (%v): databases are not independent", n, err)
	}
	var da, db string
	a.QueryRow(ctx, "SELECT current_database()").Scan(&da)
	b.QueryRow(ctx, "SELECT current_database()").Scan(&db)
	if da == db || da == "" {
		t.Fatalf("both connections are on database %q", da)
	}
}

func TestNewEmptyDBHasNoSchema(t *testing.T) {
	ctx := context.Background()
	conn := Connect(t, NewEmptyDB(t))
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("empty database has %d tables in public", n)
	}
}

func TestDatabaseDroppedAfterTest(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		cfg, err := pgx.ParseConfig(NewDB(t))
		if err != nil {
			t.Fatal(err)
		}
		name = cfg.Database
	})
	s, err := get()
	if err != nil {
		t.Fatal(err)
	}
	var exists bool
	s.mu.Lock()
	err = s.admin.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	s.mu.Unlock()
	if err != nil || exists || name == "" {
		t.Fatalf("database %q still exists after its test (err %v)", name, err)
	}
}

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:pw@h:5433/old?sslmode=disable", "postgres://u:pw@h:5433/new?sslmode=disable"},
		{"host=/run/pg user=u dbname=old", "host=/run/pg user=u dbname=old dbname='new'"},
	} {
		got := withDatabase(tc.in, "new")
		if got != tc.want {
			t.Errorf("withDatabase(%q) = %q, want %q", tc.in, got, tc.want)
		}
		cfg, err := pgx.ParseConfig(got)
		if err != nil || cfg.Database != "new" {
			t.Errorf("%q parses to database %q (%v), want new", got, cfg.Database, err)
		}
	}
}

func TestMissingBinariesSaysWhatToInstall(t *testing.T) {
	old := pgLibGlob
	pgLibGlob = filepath.Join(t.TempDir(), "nothing", "*", "bin")
	defer func() { pgLibGlob = old }()
	t.Setenv("PATH", t.TempDir())
	_, err := findBinaries()
	if err == nil {
		t.Fatal("findBinaries found something in an empty PATH")
	}
	for _, want := range []string{"apt-get install postgresql", "postgresql-15", "TAPEWARD_TEST_DSN", "initdb"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestFindBinariesPrefersNewestVersion(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9.6", "15", "13", "16"} {
		d := filepath.Join(root, v, "bin")
		os.MkdirAll(d, 0o755)
		if v == "16" {
			continue // incomplete installation: skipped
		}
		for _, p := range []string{"initdb", "postgres"} {
			os.WriteFile(filepath.Join(d, p), []byte("#!/bin/sh\n"), 0o755)
		}
	}
	old := pgLibGlob
	pgLibGlob = filepath.Join(root, "*", "bin")
	defer func() { pgLibGlob = old }()
	b, err := findBinaries()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "15", "bin", "initdb"); b.initdb != want {
		t.Fatalf("initdb = %s, want %s", b.initdb, want)
	}
}

func TestSweepRemovesDirsOfDeadOwnersOnly(t *testing.T) {
	base := t.TempDir()
	dead := filepath.Join(base, dirPrefix+"dead")
	live := filepath.Join(base, dirPrefix+"live")
	for _, d := range []string{dead, live} {
		os.MkdirAll(filepath.Join(d, "data"), 0o700)
	}
	// A pid that cannot be running: beyond pid_max.
	os.WriteFile(filepath.Join(dead, ownerFile), []byte("4194399 12345\n"), 0o644)
	st, err := processStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(live, ownerFile), []byte(fmt.Sprintf("%d %s\n", os.Getpid(), st)), 0o644)
	sweepStale(base)
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dir of a dead owner survived the sweep (%v)", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("dir of a live owner was swept: %v", err)
	}
}

// ---- clean-up after failure, panic and kill, proven with a child process ----

const (
	childEnv  = "TAPEWARD_PGTEST_CHILD"  // fail | panic | kill | nobins
	recordEnv = "TAPEWARD_PGTEST_RECORD" // where the child writes what it started
)

type childRecord struct {
	Dir, DataDir string
	Pid          int
	Running      bool
}

// TestHelperChild is not a test by itself: the tests below re-execute this
// binary to run it in a child process (it returns at once otherwise).
func TestHelperChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		return
	}
	if mode == "nobins" {
		pgLibGlob = "/nonexistent/*/bin"
		os.Setenv("PATH", t.TempDir())
		NewDB(t) // must fail the test (never skip) with the install hint
		t.Log("NewDB returned without failing")
		return
	}
	NewDB(t)
	s, err := get()
	if err != nil || s.cl == nil {
		t.Fatalf("no private cluster: %v", err)
	}
	_, statErr := os.Stat(s.cl.dataDir)
	rec := childRecord{Dir: s.cl.dir, DataDir: s.cl.dataDir, Pid: s.cl.pid,
		Running: statErr == nil && processInDir(s.cl.pid, s.cl.dataDir)}
	b, _ := json.Marshal(rec)
	if err := os.WriteFile(os.Getenv(recordEnv), b, 0o644); err != nil {
		t.Fatal(err)
	}
	switch mode {
	case "fail":
		t.Fatal("deliberate failure with a running cluster")
	case "panic":
		panic("deliberate panic with a running cluster")
	case "kill":
		time.Sleep(2 * time.Minute) // the parent SIGKILLs us
		t.Fatal("was not killed")
	}
}

func childCmd(t *testing.T, mode, record string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, recordEnv+"="+record, DSNEnv+"=")
	return cmd
}

func readRecord(t *testing.T, path string) childRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the child recorded nothing: %v", err)
	}
	var rec childRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if !rec.Running || rec.Pid <= 0 || !strings.HasPrefix(filepath.Base(rec.Dir), dirPrefix) {
		t.Fatalf("the child's cluster was not running when it recorded: %+v", rec)
	}
	return rec
}

// postgresAlive reports whether pid is a live (not zombie) postgres process.
func postgresAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) || s[i+2] == 'Z' {
		return false
	}
	return strings.Contains(s[:i], "postgres")
}

// assertCleanedUp waits up to limit for the data dir and every server
// process to be gone.
func assertCleanedUp(t *testing.T, rec childRecord, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		_, statErr := os.Stat(rec.Dir)
		gone := errors.Is(statErr, os.ErrNotExist)
		procs := processesInDir(rec.DataDir)
		alive := postgresAlive(rec.Pid)
		if gone && len(procs) == 0 && !alive {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: cluster dir %s removed=%v (stat: %v), processes in it %v, postmaster %d alive=%v",
				limit, rec.Dir, gone, statErr, procs, rec.Pid, alive)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestClusterRemovedAfterFailingTest(t *testing.T) {
	record := filepath.Join(t.TempDir(), "rec.json")
	out, err := childCmd(t, "fail", record).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("child exit = %v, want status 1 (a failed test); output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "deliberate failure") || !strings.Contains(string(out), "--- FAIL: TestHelperChild") {
		t.Fatalf("child did not fail the way it should:\n%s", out)
	}
	rec := readRecord(t, record)
	// Main cleans up before the child exits: nothing to wait for.
	assertCleanedUp(t, rec, 0)
}

func TestClusterRemovedAfterPanic(t *testing.T) {
	record := filepath.Join(t.TempDir(), "rec.json")
	out, err := childCmd(t, "panic", record).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("child exit = %v, want status 2 (a panic); output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "panic: deliberate panic") {
		t.Fatalf("child did not panic:\n%s", out)
	}
	assertCleanedUp(t, readRecord(t, record), 30*time.Second)
}

func TestClusterRemovedAfterSIGKILL(t *testing.T) {
	record := filepath.Join(t.TempDir(), "rec.json")
	cmd := childCmd(t, "kill", record)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if b, err := os.ReadFile(record); err == nil && len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child never started its cluster:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	rec := readRecord(t, record)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child exit = %v, want killed by SIGKILL", err)
	}
	assertCleanedUp(t, rec, 30*time.Second)
}

func TestMissingPostgresFailsTheTestNeverSkips(t *testing.T) {
	out, err := childCmd(t, "nobins", filepath.Join(t.TempDir(), "unused")).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("child exit = %v, want status 1; output:\n%s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "--- FAIL: TestHelperChild") || strings.Contains(s, "SKIP") {
		t.Fatalf("missing PostgreSQL did not fail the test:\n%s", s)
	}
	if !strings.Contains(s, "apt-get install postgresql") || strings.Contains(s, "NewDB returned without failing") {
		t.Fatalf("the failure does not say what to install:\n%s", s)
	}
}

// The cluster goes to a tmpfs open to all only: a private directory, a
// missing one and (when the temp dir is on disk) a disk one are refused;
// a tmpfs that qualifies is where the running cluster is.
func TestMemDirOnlyWhenATmpfsOpenToAll(t *testing.T) {
	private := t.TempDir() // mode 0700
	if usableMemDir(private) {
		t.Errorf("the private directory %s was taken", private)
	}
	if usableMemDir(filepath.Join(private, "missing")) {
		t.Errorf("a missing directory was taken")
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(os.TempDir(), &fs); err == nil && fs.Type != 0x01021994 && usableMemDir(os.TempDir()) {
		t.Errorf("%s, not a tmpfs, was taken", os.TempDir())
	}
	NewDB(t) // the cluster runs
	s, err := get()
	if err != nil {
		t.Fatal(err)
	}
	if s.cl != nil && usableMemDir(memDir) && filepath.Dir(s.cl.dir) != memDir {
		t.Errorf("the cluster is in %s although %s qualifies", s.cl.dir, memDir)
	}
}
