package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tapeward/tapeward/migrations"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// directorBin is the director binary built once by TestMain.
var directorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tapeward-director-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The director, and the other binaries the end-to-end tests run.
	if bins, err = testenv.Build(dir, "director", "storaged", "tools/vtl", "tools/tapectl", "tools/tapekey"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	directorBin = bins["director"]
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

func director(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(directorBin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("running director: %v", err)
	}
	return r
}

// catalogFor writes a director.toml whose [catalog] is the database of dsn
// and returns its path.
func catalogFor(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	extra := ""
	if cfg.Password != "" {
		os.WriteFile(filepath.Join(dir, "pw"), []byte(cfg.Password+"\n"), 0o600)
		extra += "password_file = \"pw\"\n"
	}
	sslmode := "disable"
	if cfg.TLSConfig != nil {
		sslmode = "prefer"
	}
	return writeConfig(t, dir, fmt.Sprintf("host = %q\nport = %d\ndatabase = %q\nuser = %q\nsslmode = %q\n%s",
		cfg.Host, cfg.Port, cfg.Database, cfg.User, sslmode, extra))
}

func writeConfig(t *testing.T, dir, catalog string) string {
	t.Helper()
	text := `name = "director"
listen = "127.0.0.1:9101"
[tls]
ca = "ca.crt"
cert = "director.crt"
key = "director.key"
[catalog]
` + catalog + `
[[keys.kek]]
file = "kek.key"
active = true
`
	p := filepath.Join(dir, "director.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNoCommandPrintsUsage(t *testing.T) {
	r := director(t)
	if r.code != 2 || !strings.Contains(r.stderr, "usage: director") || !strings.Contains(r.stderr, "migrate status -c FILE") {
		t.Fatalf("director with no command: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	r = director(t, "serve-forever")
	if r.code != 2 || !strings.Contains(r.stderr, `unknown command "serve-forever"`) {
		t.Fatalf("unknown command: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	r = director(t, "migrate", "-c")
	if r.code != 2 || !strings.Contains(r.stderr, "flag needs an argument") {
		t.Fatalf("-c without a file: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

func TestMigrateTwiceThenStatus(t *testing.T) {
	dsn := pgtest.NewEmptyDB(t)
	cfg := catalogFor(t, dsn)
	latest := migrations.Latest()

	r := director(t, "migrate", "status", "-c", cfg)
	if r.code != 0 {
		t.Fatalf("migrate status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"current version: 0", fmt.Sprintf("latest version:  %d", latest), "1  001_initial.sql", "run `director migrate -c " + cfg} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status before migrating lacks %q:\n%s", want, r.stdout)
		}
	}

	r = director(t, "migrate", "-c", cfg)
	if r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "applying 001_initial.sql") || !strings.Contains(r.stdout, fmt.Sprintf("catalog schema is now at version %d", latest)) {
		t.Fatalf("first migrate said:\n%s", r.stdout)
	}
	conn := pgtest.Connect(t, dsn)
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM media").Scan(&n); err != nil {
		t.Fatalf("the media table is not there after migrate: %v", err)
	}

	r = director(t, "migrate", "-c", cfg)
	if r.code != 0 || strings.Contains(r.stdout, "applying") ||
		strings.TrimSpace(r.stdout) != fmt.Sprintf("catalog schema is up to date (version %d)", latest) {
		t.Fatalf("second migrate: exit %d, said:\n%s%s", r.code, r.stdout, r.stderr)
	}

	// "status" after the flags works too.
	r = director(t, "migrate", "-c", cfg, "status")
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("current version: %d", latest)) || !strings.Contains(r.stdout, "pending:         none (up to date)") {
		t.Fatalf("status after migrating: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestMigrateUnreachableSocket(t *testing.T) {
	dir := t.TempDir() // no server socket in it
	cfg := writeConfig(t, dir, fmt.Sprintf("host = %q\nport = 5999\ndatabase = \"tapeward\"\nuser = \"tapeward\"\nconnect_timeout = \"3s\"\n", dir))
	for _, args := range [][]string{{"migrate", "-c", cfg}, {"migrate", "status", "-c", cfg}} {
		r := director(t, args...)
		if r.code != 1 {
			t.Fatalf("%v: exit %d, want 1\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		for _, want := range []string{
			fmt.Sprintf(`cannot reach the catalog at %s:5999 database "tapeward" as "tapeward"`, dir),
			"no server socket " + dir + "/.s.PGSQL.5999",
			"is PostgreSQL running?",
			"Check [catalog] in " + cfg,
			"tried: ",
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%v: message lacks %q:\n%s", args, want, r.stderr)
			}
		}
	}
}

func TestMigrateConnectionRefusedHidesPassword(t *testing.T) {
	// A TCP port nobody listens on: take a free one and close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	const secret = "s3cret-Pa55word-XYZ"
	os.WriteFile(filepath.Join(dir, "pw"), []byte(secret+"\n"), 0o600)
	cfg := writeConfig(t, dir, fmt.Sprintf("host = \"127.0.0.1\"\nport = %d\ndatabase = \"tapeward\"\nuser = \"tapeward\"\npassword_file = \"pw\"\nsslmode = \"disable\"\nconnect_timeout = \"3s\"\n", port))
	r := director(t, "migrate", "-c", cfg)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		fmt.Sprintf(`cannot reach the catalog at 127.0.0.1:%d database "tapeward" as "tapeward": connection refused`, port),
		"is PostgreSQL running and listening there?",
		"Check [catalog] in " + cfg,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("message lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Fatalf("the password leaked:\n%s", r.stderr)
	}
}

func TestMigrateMissingPasswordFileAndBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "host = \"127.0.0.1\"\ndatabase = \"tapeward\"\nuser = \"tapeward\"\npassword_file = \"nope\"\n")
	r := director(t, "migrate", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "[catalog] password_file in "+cfg) || !strings.Contains(r.stderr, filepath.Join(dir, "nope")+" does not exist") {
		t.Fatalf("missing password file: exit %d\n%s", r.code, r.stderr)
	}

	cfg = writeConfig(t, dir, "host = \"127.0.0.1\"\nport = 99999\ndatabase = \"tapeward\"\nuser = \"tapeward\"\n")
	r = director(t, "migrate", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, cfg+":9: [catalog] port = 99999: must be 1-65535") {
		t.Fatalf("bad port: exit %d\n%s", r.code, r.stderr)
	}

	r = director(t, "migrate", "-c", filepath.Join(dir, "missing.toml"))
	if r.code != 1 || !strings.Contains(r.stderr, "missing.toml: no such config file") {
		t.Fatalf("missing config: exit %d\n%s", r.code, r.stderr)
	}
}

func TestMigrateDatabaseMissing(t *testing.T) {
	cfg, err := pgx.ParseConfig(pgtest.NewEmptyDB(t))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Password != "" {
		t.Log("TAPEWARD_TEST_DSN has a password; the config below has none, so the server may refuse the user instead")
	}
	p := writeConfig(t, t.TempDir(), fmt.Sprintf("host = %q\nport = %d\ndatabase = \"no_such_catalog\"\nuser = %q\nsslmode = \"disable\"\n", cfg.Host, cfg.Port, cfg.User))
	r := director(t, "migrate", "-c", p)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	if cfg.Password == "" {
		for _, want := range []string{`database "no_such_catalog" does not exist`, "createdb -O " + cfg.User + " no_such_catalog", "Check [catalog] in " + p} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("message lacks %q:\n%s", want, r.stderr)
			}
		}
	}
}
