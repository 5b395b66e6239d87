// Package pgtest gives tests a real PostgreSQL database.
//
// With TAPEWARD_TEST_DSN set, databases are created on that server (its user
// needs CREATEDB). Otherwise the first test that asks starts a private
// cluster from the system's PostgreSQL binaries (/usr/lib/postgresql/*/bin,
// newest first, or $PATH): a temp dir (in /dev/shm when that is a tmpfs
// with 1 GiB free), unix socket only, trust auth, fsync off; as the OS
// user postgres when the tests run as root. One cluster
// serves the whole test binary; every NewDB is a fresh database cloned from
// a template that has the catalog migrations applied once.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		conn := pgtest.NewConn(t) // migrated, empty catalog
//		…
//	}
//
// The cluster and its files are removed when the test binary ends — after
// passing or failing tests in Main, and after a panic, os.Exit or SIGKILL by
// a clean-up helper process (a copy of the test binary waiting for us to
// die) plus Pdeathsig on the postmaster. Leftovers of dead test binaries
// are swept when the next cluster starts.
//
// Missing PostgreSQL is a test failure that says what to install, never a
// skip.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tapeward/tapeward/migrations"
)

// DSNEnv names the environment variable that points the tests at an
// existing server instead of a private cluster.
const DSNEnv = "TAPEWARD_TEST_DSN"

func init() {
	// The clean-up helper is this very binary started with reaperEnv set: it
	// must never run the tests.
	if dir := os.Getenv(reaperEnv); dir != "" {
		runReaper(dir)
	}
}

func signalIgnoreTerminal() {
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)
}

// server is where databases are made: the private cluster or the DSN's.
type server struct {
	cl       *cluster // nil with TAPEWARD_TEST_DSN
	adminDSN string
	dsnFor   func(database string) string
	prefix   string // database name prefix, unique per test binary

	mu    sync.Mutex // serializes CREATE/DROP DATABASE on admin
	admin *pgx.Conn

	tplOnce sync.Once
	tpl     string
	tplErr  error

	n atomic.Int64
}

var (
	srvMu  sync.Mutex
	srv    *server
	srvErr error
)

// get starts (once) and returns the server.
func get() (*server, error) {
	srvMu.Lock()
	defer srvMu.Unlock()
	if srv != nil || srvErr != nil {
		return srv, srvErr
	}
	srv, srvErr = start(context.Background())
	return srv, srvErr
}

func start(ctx context.Context) (*server, error) {
	if dsn := os.Getenv(DSNEnv); dsn != "" {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, fmt.Errorf("pgtest: %s is not a valid connection string: %v", DSNEnv, err)
		}
		s := &server{adminDSN: dsn, dsnFor: func(db string) string { return withDatabase(dsn, db) },
			prefix: "tw" + fmt.Sprint(os.Getpid()) + "_" + randHex(3)}
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		s.admin, err = pgx.ConnectConfig(cctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("pgtest: cannot connect to %s (host %s port %d database %q user %q): %v — fix or unset %s",
				DSNEnv, cfg.Host, cfg.Port, cfg.Database, cfg.User, err, DSNEnv)
		}
		return s, nil
	}
	cl, err := startCluster(ctx)
	if err != nil {
		return nil, err
	}
	s := &server{cl: cl, adminDSN: cl.dsn("postgres"), dsnFor: cl.dsn, prefix: "tw"}
	s.admin, err = pgx.Connect(ctx, s.adminDSN)
	if err != nil {
		cl.stop()
		return nil, fmt.Errorf("pgtest: connecting to the private cluster: %v\n%s", err, cl.logTail())
	}
	return s, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// withDatabase returns dsn (URL or keyword/value form) naming database db.
func withDatabase(dsn, db string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			u.Path = "/" + db
			u.RawPath = ""
			return u.String()
		}
	}
	// In keyword/value strings a later keyword overrides an earlier one.
	return dsn + " dbname=" + quoteDSN(db)
}

// Main runs the tests, then stops the private cluster (or drops the
// template on TAPEWARD_TEST_DSN) and exits with the tests' status. Call it
// from TestMain.
func Main(m *testing.M) {
	os.Exit(Run(m))
}

// Run is Main without the exit: it runs the tests, shuts the server down
// and returns the exit code (for a TestMain with its own clean-up).
func Run(m *testing.M) int {
	code := m.Run()
	if err := Shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Shutdown stops the private cluster and removes its files (Main calls
// it). Later NewDB calls start a new cluster.
func Shutdown() error {
	srvMu.Lock()
	defer srvMu.Unlock()
	s := srv
	srv, srvErr = nil, nil
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if s.cl == nil && s.tpl != "" {
		if _, e := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{s.tpl}.Sanitize()); e != nil {
			err = fmt.Errorf("pgtest: dropping template database %s: %w", s.tpl, e)
		}
	}
	s.admin.Close(ctx)
	if s.cl != nil {
		if e := s.cl.stop(); e != nil {
			err = e
		}
	}
	return err
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// newName returns a fresh database name that mentions the test.
func (s *server) newName(t testing.TB) string {
	name := fmt.Sprintf("%s_%d_%s", s.prefix, s.n.Add(1), nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_"))
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

// template returns the migrated template database, making it once.
func (s *server) template() (string, error) {
	s.tplOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		name := s.prefix + "_template"
		if err := s.create(ctx, name, "template0"); err != nil {
			s.tplErr = err
			return
		}
		s.tpl = name
		conn, err := pgx.Connect(ctx, s.dsnFor(name))
		if err != nil {
			s.tplErr = fmt.Errorf("pgtest: connecting to the template database: %w", err)
			return
		}
		err = migrations.Apply(ctx, conn)
		conn.Close(ctx)
		if err != nil {
			s.tplErr = fmt.Errorf("pgtest: migrating the template database: %w", err)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		// Nobody may connect to it: CREATE DATABASE … TEMPLATE needs it idle.
		if _, err := s.admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" ALLOW_CONNECTIONS false"); err != nil {
			s.tplErr = fmt.Errorf("pgtest: %w", err)
		}
	})
	return s.tpl, s.tplErr
}

func (s *server) create(ctx context.Context, name, template string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize()))
	if err != nil {
		return fmt.Errorf("pgtest: creating database %s: %w", name, err)
	}
	return nil
}

func (s *server) drop(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

func (s *server) newDB(t testing.TB, template func() (string, error)) string {
	t.Helper()
	tpl, err := template()
	if err != nil {
		t.Fatal(err)
	}
	name := s.newName(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.create(ctx, name, tpl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.drop(name); err != nil {
			t.Errorf("pgtest: dropping database %s: %v", name, err)
		}
	})
	return s.dsnFor(name)
}

func mustServer(t testing.TB) *server {
	t.Helper()
	s, err := get()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// NewDB returns the DSN (keyword/value or URL form) of a new database with
// the catalog schema applied and no rows. It is dropped when t ends.
func NewDB(t testing.TB) string {
	t.Helper()
	s := mustServer(t)
	return s.newDB(t, s.template)
}

// NewEmptyDB returns the DSN of a new database with no schema at all (a
// copy of template0), for migration tests. It is dropped when t ends.
func NewEmptyDB(t testing.TB) string {
	t.Helper()
	s := mustServer(t)
	return s.newDB(t, func() (string, error) { return "template0", nil })
}

// NewConn returns one connection to a NewDB database, closed when t ends.
func NewConn(t testing.TB) *pgx.Conn {
	t.Helper()
	return Connect(t, NewDB(t))
}

// Connect opens a connection to dsn, closed when t ends.
func Connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connecting to the test database: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
