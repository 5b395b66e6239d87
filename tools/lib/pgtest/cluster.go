package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Names and environment variables of the private cluster machinery.
const (
	dirPrefix   = "tapeward-pgtest-" // temp dirs: <tmp>/tapeward-pgtest-*
	ownerFile   = "owner"            // "<pid> <start time>" of the test binary that made the dir
	reaperEnv   = "TAPEWARD_PGTEST_REAPER"
	clusterUser = "postgres" // database superuser (and OS user when tests run as root)
	socketPort  = 5432       // only names the socket file; nothing listens on TCP
)

// installHint is what every "no PostgreSQL" failure says.
const installHint = "install the PostgreSQL server: `apt-get install postgresql` " +
	"(Debian package postgresql / postgresql-15), or set TAPEWARD_TEST_DSN to a server " +
	"where the user may CREATE DATABASE (e.g. TAPEWARD_TEST_DSN='host=/var/run/postgresql user=postgres')"

// pgLibGlob is where Debian installs each PostgreSQL major version (a
// variable so that a test can look somewhere empty).
var pgLibGlob = "/usr/lib/postgresql/*/bin"

// binaries are the server programs of one PostgreSQL installation.
type binaries struct {
	initdb, postgres string
}

// findBinaries looks under /usr/lib/postgresql/*/bin (newest major first),
// then on $PATH.
func findBinaries() (binaries, error) {
	dirs, _ := filepath.Glob(pgLibGlob)
	sort.Slice(dirs, func(i, j int) bool {
		return versionOf(dirs[i]) > versionOf(dirs[j])
	})
	for _, d := range dirs {
		b := binaries{initdb: filepath.Join(d, "initdb"), postgres: filepath.Join(d, "postgres")}
		if isExec(b.initdb) && isExec(b.postgres) {
			return b, nil
		}
	}
	var b binaries
	var missing []string
	var err error
	if b.initdb, err = exec.LookPath("initdb"); err != nil {
		missing = append(missing, "initdb")
	}
	if b.postgres, err = exec.LookPath("postgres"); err != nil {
		missing = append(missing, "postgres")
	}
	if len(missing) > 0 {
		return binaries{}, fmt.Errorf("pgtest: PostgreSQL server programs not found (%s missing; looked in /usr/lib/postgresql/*/bin and $PATH): %s",
			strings.Join(missing, " and "), installHint)
	}
	return b, nil
}

// Program returns the path of the PostgreSQL program name (pg_dump,
// pg_restore, psql) of the installation the tests run the server of, else
// the one on $PATH.
func Program(name string) (string, error) {
	b, err := findBinaries()
	if err == nil {
		if p := filepath.Join(filepath.Dir(b.initdb), name); isExec(p) {
			return p, nil
		}
	}
	p, lerr := exec.LookPath(name)
	if lerr != nil {
		return "", fmt.Errorf("pgtest: %s not found (looked in /usr/lib/postgresql/*/bin and $PATH): %s", name, installHint)
	}
	return p, nil
}

func versionOf(binDir string) float64 {
	v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	if err != nil {
		return -1
	}
	return v
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// cluster is one private postmaster.
type cluster struct {
	dir     string // temp dir: owner file, socket, log, data/
	dataDir string
	logPath string
	pid     int           // postmaster pid
	exited  chan struct{} // closed when the postmaster has exited
	waitErr error         // its exit status, valid after exited
	stopSig chan struct{} // closed by stop(): postmaster gets SIGQUIT
	cred    *syscall.Credential
}

// adminDSN is the DSN of database name on this cluster.
func (c *cluster) dsn(database string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable",
		quoteDSN(c.dir), socketPort, clusterUser, quoteDSN(database))
}

// quoteDSN quotes a keyword/value connection string value.
func quoteDSN(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// credential returns the OS identity to run the server as: the postgres
// user when we are root (initdb refuses root), nil otherwise.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(clusterUser)
	if err != nil {
		return nil, fmt.Errorf("pgtest: tests run as root, and PostgreSQL refuses to run as root; the OS user %q it would run as does not exist (%v): %s, which creates it", clusterUser, err, installHint)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}, nil
}

// memDir is the tmpfs the cluster goes to when it can (a variable so that
// a test can look somewhere else).
var memDir = "/dev/shm"

// memDirMinFree is the free space memDir must have for the cluster: the
// catalog databases are small, WAL is bounded by max_wal_size.
const memDirMinFree = 1 << 30

// baseTempDir picks where the cluster dir goes: memDir when it is a tmpfs
// we may write with at least memDirMinFree free (creating and dropping a
// database per test creates and deletes some 400 files each time, and on
// a disk file system that has seen many deletions, ext4's search for a
// free inode cost more CPU than everything else the server did); else
// os.TempDir() unless the server user cannot reach it or the socket path
// would be too long.
func baseTempDir(cred *syscall.Credential) string {
	if usableMemDir(memDir) {
		return memDir
	}
	d := os.TempDir()
	if len(d) > 60 {
		return "/tmp"
	}
	if cred != nil {
		for p := d; ; p = filepath.Dir(p) {
			fi, err := os.Stat(p)
			if err != nil || fi.Mode().Perm()&0o001 == 0 {
				return "/tmp"
			}
			if p == "/" || p == "." {
				break
			}
		}
	}
	return d
}

// usableMemDir reports whether d is a tmpfs, open to every user (the
// server user must reach the cluster dir in it), that we may write and
// that has memDirMinFree free.
func usableMemDir(d string) bool {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(d, &fs); err != nil || fs.Type != 0x01021994 { // TMPFS_MAGIC
		return false
	}
	fi, err := os.Stat(d)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o007 != 0o007 || fi.Mode()&os.ModeSticky == 0 {
		return false
	}
	if syscall.Access(d, 2 /* W_OK */) != nil {
		return false
	}
	return int64(fs.Bavail)*fs.Bsize >= memDirMinFree
}

// processStart returns the start time (clock ticks since boot, field 22 of
// /proc/<pid>/stat) of pid, which together with the pid names one process.
func processStart(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", fmt.Errorf("odd /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); start time is field 22.
	if len(f) < 20 {
		return "", fmt.Errorf("odd /proc/%d/stat", pid)
	}
	return f[19], nil
}

// ownerAlive reports whether the process recorded in dir's owner file runs.
func ownerAlive(dir string) (alive bool, known bool) {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return false, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return false, false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return false, false
	}
	st, err := processStart(pid)
	return err == nil && st == f[1], true
}

// postmasterOf returns the pid in dataDir/postmaster.pid if that process is
// alive and its working directory is dataDir (so a reused pid is never hit).
func postmasterOf(dataDir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, processInDir(pid, dataDir)
}

// processInDir reports whether pid is alive with dataDir as its cwd
// (PostgreSQL's postmaster and backends chdir into the data directory).
func processInDir(pid int, dataDir string) bool {
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		return false
	}
	cwd = strings.TrimSuffix(cwd, " (deleted)")
	return cwd == dataDir
}

// processesInDir lists every live process whose cwd is dataDir.
func processesInDir(dataDir string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if processInDir(pid, dataDir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killAndRemove stops whatever server runs in dir (SIGQUIT, then SIGKILL
// after grace) and removes dir.
func killAndRemove(dir string, grace time.Duration) error {
	if !strings.HasPrefix(filepath.Base(dir), dirPrefix) {
		return fmt.Errorf("pgtest: refusing to remove %s: not a pgtest directory", dir)
	}
	dataDir := filepath.Join(dir, "data")
	if pid, ok := postmasterOf(dataDir); ok {
		_ = syscall.Kill(pid, syscall.SIGQUIT)
	}
	deadline := time.Now().Add(grace)
	for {
		pids := processesInDir(dataDir)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, p := range pids {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
		if time.Now().After(deadline.Add(5 * time.Second)) {
			return fmt.Errorf("pgtest: processes %v still run in %s", pids, dataDir)
		}
	}
	return os.RemoveAll(dir)
}

// sweepStale removes the cluster dirs under base whose owning test binary
// is gone (a test binary killed before it could clean up).
func sweepStale(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, dirPrefix+"*"))
	for _, d := range dirs {
		alive, known := ownerAlive(d)
		if alive {
			continue
		}
		if !known {
			// No owner file: only sweep it once it is clearly abandoned.
			fi, err := os.Stat(d)
			if err != nil || time.Since(fi.ModTime()) < time.Hour {
				continue
			}
		}
		_ = killAndRemove(d, 5*time.Second)
	}
}

// startCluster makes a temp dir, runs initdb and starts the postmaster.
func startCluster(ctx context.Context) (*cluster, error) {
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	base := baseTempDir(cred)
	sweepStale(base)

	dir, err := os.MkdirTemp(base, dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("pgtest: making the cluster directory: %w", err)
	}
	c := &cluster{dir: dir, dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "postgres.log"),
		exited: make(chan struct{}), stopSig: make(chan struct{}), cred: cred}
	fail := func(err error) (*cluster, error) {
		c.stop()
		return nil, err
	}
	st, err := processStart(os.Getpid())
	if err != nil {
		return fail(fmt.Errorf("pgtest: reading our own start time: %w", err))
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(fmt.Sprintf("%d %s\n", os.Getpid(), st)), 0o644); err != nil {
		return fail(fmt.Errorf("pgtest: %w", err))
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(fmt.Errorf("pgtest: handing %s to the %s user: %w", dir, clusterUser, err))
		}
	}
	if err := startReaper(dir); err != nil {
		return fail(err)
	}

	initdb := exec.CommandContext(ctx, bins.initdb, "-D", c.dataDir, "-U", clusterUser,
		"--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("pgtest: %s failed: %v\n%s", bins.initdb, err, tail(string(out), 2000)))
	}

	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fail(fmt.Errorf("pgtest: %w", err))
	}
	args := []string{"-D", c.dataDir,
		"-c", "listen_addresses=",
		"-c", "unix_socket_directories=" + dir,
		"-c", fmt.Sprintf("port=%d", socketPort),
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "wal_level=minimal",
		"-c", "max_wal_senders=0",
		"-c", "max_connections=200",
		"-c", "shared_buffers=32MB",
		"-c", "max_wal_size=256MB", // the WAL may be in memory (memDir)
		"-c", "checkpoint_timeout=1h",
		"-c", "logging_collector=off",
		"-c", "log_min_messages=warning",
	}
	started := make(chan error, 1)
	go c.run(bins.postgres, args, logf, started)
	if err := <-started; err != nil {
		logf.Close()
		return fail(err)
	}
	logf.Close()

	if err := c.waitReady(ctx, 60*time.Second); err != nil {
		return fail(err)
	}
	return c, nil
}

// run starts the postmaster and waits for it, on a goroutine that keeps its
// OS thread for the cluster's whole life: Pdeathsig fires when the thread
// that forked the child ends, and only then (at process exit) must it fire.
func (c *cluster) run(postgres string, args []string, logf *os.File, started chan<- error) {
	runtime.LockOSThread()
	// Never unlocked: the thread dies with this goroutine, after the
	// postmaster has exited.
	cmd := exec.Command(postgres, args...)
	cmd.Dir = c.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: c.cred,
		Setpgid:    true,            // terminal signals are not for it
		Pdeathsig:  syscall.SIGQUIT, // immediate shutdown when we die
	}
	if err := cmd.Start(); err != nil {
		started <- fmt.Errorf("pgtest: starting %s: %w", postgres, err)
		close(c.exited)
		return
	}
	c.pid = cmd.Process.Pid
	started <- nil
	done := make(chan struct{})
	go func() {
		select {
		case <-c.stopSig:
			_ = cmd.Process.Signal(syscall.SIGQUIT)
		case <-done:
		}
	}()
	c.waitErr = cmd.Wait()
	close(done)
	close(c.exited)
}

// waitReady polls until the server accepts connections.
func (c *cluster) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, c.dsn("postgres"))
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("pgtest: postgres exited during start-up (%v); its log %s says:\n%s", c.waitErr, c.logPath, c.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: postgres did not accept connections within %s (last error: %v); its log says:\n%s", limit, err, c.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *cluster) logTail() string {
	b, _ := os.ReadFile(c.logPath)
	return tail(string(b), 3000)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// stop shuts the postmaster down (immediate mode) and removes every file.
func (c *cluster) stop() error {
	if c == nil {
		return nil
	}
	select {
	case <-c.stopSig:
	default:
		close(c.stopSig)
	}
	if c.pid != 0 {
		select {
		case <-c.exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(c.pid, syscall.SIGKILL)
			<-c.exited
		}
	}
	return killAndRemove(c.dir, 10*time.Second)
}

// ---- the reaper ----
//
// A second copy of the test binary (re-executed with reaperEnv set; see
// init in pgtest.go) whose stdin is a pipe from us. When we die in any way
// (failure, panic, os.Exit, SIGKILL) the pipe closes, and the reaper stops
// the postmaster if Pdeathsig has not already done so and removes the dir.

func startReaper(dir string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("pgtest: finding our executable for the clean-up helper: %w", err)
	}
	r, w, err := os.Pipe() // both ends close-on-exec in this process
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer devnull.Close()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), reaperEnv+"="+dir)
	cmd.Stdin = r
	// Never our stdout: `go test` would wait for the reaper to close it.
	cmd.Stdout = devnull
	cmd.Stderr = devnull
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("pgtest: starting the clean-up helper: %w", err)
	}
	r.Close()
	// w stays open (and referenced) for the life of the process.
	reaperKeep = w
	go func() { _ = cmd.Wait() }()
	return nil
}

// reaperKeep holds the pipe's write end so that it is never collected.
var reaperKeep *os.File

// runReaper is the reaper's whole life.
func runReaper(dir string) {
	signalIgnoreTerminal()
	// Nothing is ever written: read returns at EOF, when the test binary
	// is gone.
	_, _ = io.Copy(io.Discard, os.Stdin)
	if !strings.HasPrefix(filepath.Base(dir), dirPrefix) {
		os.Exit(2)
	}
	if err := killAndRemove(dir, 10*time.Second); err != nil && !errors.Is(err, os.ErrNotExist) {
		os.Exit(1)
	}
	os.Exit(0)
}
