// Package testenv is the shared harness of Tapeward's end-to-end tests:
// it builds the real binaries once, starts them as processes (ready when a
// given line appears in their log), and makes the PKI, KEK files and vtl
// libraries the tests need. Tests drive the processes as an operator would.
package testenv

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/pki"
)

// Module is the module path; Build takes package paths relative to it.
const Module = "github.com/tapeward/tapeward"

// Build compiles the named commands (paths relative to the module root,
// e.g. "storaged", "tools/vtl") into dir and returns their paths by base
// name ("storaged", "vtl").
//
// The go command caches compiled packages but links a binary anew on every
// build — seconds of CPU each, and `make test` has a dozen test packages
// that build the same daemons. So the binaries are linked into one
// directory per source tree and user (BinCache), under a lock, where `go
// build` leaves a binary that is up to date alone, and hard-linked (else
// copied) into dir: a later rebuild replaces the cache's file, never the
// one a test runs.
func Build(dir string, cmds ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, c := range cmds {
		out[filepath.Base(c)] = filepath.Join(dir, filepath.Base(c))
	}
	cache, unlock, err := lockBinCache()
	if err != nil {
		// No shared cache (no go.mod above the working directory, or
		// the cache directory is not ours): build straight into dir.
		return out, goBuild(dir, cmds)
	}
	defer unlock()
	if err := goBuild(cache, cmds); err != nil {
		return nil, err
	}
	for name, dst := range out {
		if err := linkOrCopy(filepath.Join(cache, name), dst); err != nil {
			return nil, fmt.Errorf("testenv: putting %s into %s: %w", name, dir, err)
		}
	}
	return out, nil
}

// goBuild runs go build -o dir/ on the commands.
func goBuild(dir string, cmds []string) error {
	args := []string{"build", "-o", dir + "/"}
	for _, c := range cmds {
		args = append(args, Module+"/"+c)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goTool, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %v: %v\n%s", cmds, err, stderr.String())
	}
	return nil
}

// BinCache returns the directory Build links binaries into: one per
// source tree (the directory holding go.mod above the working directory)
// and user, under os.TempDir(). It returns "" without a go.mod.
func BinCache() string {
	d, err := os.Getwd()
	if err != nil {
		return ""
	}
	for ; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			break
		}
		if d == filepath.Dir(d) {
			return ""
		}
	}
	sum := sha256.Sum256([]byte(d))
	return filepath.Join(os.TempDir(), fmt.Sprintf("tapeward-testbin-%d-%x", os.Getuid(), sum[:6]))
}

// lockBinCache makes (mode 0700) and locks BinCache; unlock releases it.
func lockBinCache() (dir string, unlock func(), err error) {
	dir = BinCache()
	if dir == "" {
		return "", nil, fmt.Errorf("no go.mod above the working directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil || st.Uid != uint32(os.Getuid()) || st.Mode&0o077 != 0 || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return "", nil, fmt.Errorf("%s is not a private directory of ours", dir)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return "", nil, err
	}
	return dir, func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// linkOrCopy hard-links src at dst (replacing dst), or copies it where
// the two are on different file systems.
func linkOrCopy(src, dst string) error {
	os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	o, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(o, in); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}

// Proc is a started process whose output goes to a log file.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string // path of the log file (appended across restarts)
	from int64  // where this run's lines start in Log
	done chan struct{}
}

// Start runs bin with args, logging to logPath, and waits until ready
// appears in this run's log lines (ready == "": does not wait). It fails
// the test with the log if the process exits first or 30 s pass. The
// process is killed when the test ends if it still runs.
func Start(t testing.TB, name, logPath, ready, bin string, args ...string) *Proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := logf.Stat()
	p := &Proc{Name: name, Cmd: exec.Command(bin, args...), Log: logPath, from: st.Size(), done: make(chan struct{})}
	p.Cmd.Stdout, p.Cmd.Stderr = logf, logf
	if err := p.Cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.Cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		if !p.Exited() {
			p.Cmd.Process.Kill()
			<-p.done
		}
	})
	if ready != "" {
		WaitFor(t, name+" to log "+fmt.Sprintf("%q", ready), func() bool {
			return p.Exited() || strings.Contains(p.Output(), ready)
		})
		if !strings.Contains(p.Output(), ready) {
			t.Fatalf("%s exited before it was ready; its log:\n%s", name, p.Output())
		}
	}
	return p
}

// Output is this run's log.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b[min(int(p.from), len(b)):])
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends sig and waits (30 s at most, then kills and fails).
func (p *Proc) Stop(t testing.TB, sig os.Signal) {
	t.Helper()
	if p.Exited() {
		return
	}
	p.Cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.Cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not stop within 30s of %v", p.Name, sig)
	}
}

// Kill9 kills the process with SIGKILL and waits.
func (p *Proc) Kill9(t testing.TB) { p.Stop(t, syscall.SIGKILL) }

// WaitFor polls ok until it is true; 30 s at most.
func WaitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// StartServing starts a daemon (storaged, director) whose configuration
// says where to listen — "127.0.0.1:0" lets the kernel pick a port, so tests
// never race each other for a free one — with --addr-file, waits until
// ready appears in its log (as Start) and its address file is written, and
// returns the process and the address it is listening on.
func StartServing(t testing.TB, name, logPath, ready, bin string, args ...string) (*Proc, string) {
	t.Helper()
	addrFile := filepath.Join(filepath.Dir(logPath), name+".addr")
	os.Remove(addrFile) // a previous run's
	p := Start(t, name, logPath, ready, bin, append(args, "--addr-file", addrFile)...)
	var b []byte
	WaitFor(t, name+" to write its address to "+addrFile, func() bool {
		var err error
		b, err = os.ReadFile(addrFile)
		return err == nil || p.Exited()
	})
	if len(b) == 0 {
		t.Fatalf("%s is ready but wrote no address to %s; its log:\n%s", name, addrFile, p.Output())
	}
	return p, strings.TrimSpace(string(b))
}

// FreeAddr returns a loopback host:port that was free a moment ago and
// that no other FreeAddr gives out until t ends: prefer listening on port
// 0 and StartServing where the address need not be known in advance. The
// port is a random one below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), so the outgoing connections of every
// test running meanwhile — which take ephemeral ports — cannot take it
// between this call and the daemon's listen; and it is reserved
// (reservePort), so neither can another FreeAddr, in this test process or
// in another package's running beside it (a director whose FreeAddr port
// was in use when it started failed a CI run on 2026-12-04).
func FreeAddr(t testing.TB) string {
	t.Helper()
	lo, hi := freePortRange()
	for range 100 {
		port := lo + rand.IntN(hi-lo)
		release, ok := reservePort(t, port)
		if !ok {
			continue // another FreeAddr's
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			release() // in use by something else
			continue
		}
		addr := l.Addr().String()
		l.Close()
		t.Cleanup(release)
		return addr
	}
	t.Fatalf("no free loopback port in %d..%d after 100 tries", lo, hi-1)
	return ""
}

// reservePort takes port for FreeAddr: an exclusive flock on a file named
// by the port in portDir, held until release. The kernel drops the lock
// when the process ends, so a crashed test leaves nothing reserved; the
// files stay (empty, one per port ever used) — removing one could let two
// processes lock two files of the same name.
func reservePort(t testing.TB, port int) (release func(), ok bool) {
	t.Helper()
	dir, err := portDir()
	if err != nil {
		t.Fatalf("testenv: reserving loopback ports: %v", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		t.Fatalf("testenv: reserving loopback port %d: %v", port, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

// portDir is where reservePort keeps its files, made once per process:
// os.TempDir()/tapeward-ports-UID, private like BinCache (another user's
// tests could neither create files in a shared one nor open theirs).
var portDir = sync.OnceValues(func() (string, error) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("tapeward-ports-%d", os.Getuid()))
	return dir, os.MkdirAll(dir, 0o700)
})

// freePortRange is where FreeAddr picks: [10000, the ephemeral range's
// low end), or above its high end when that leaves more room.
func freePortRange() (lo, hi int) {
	ephLo, ephHi := 32768, 60999 // Linux's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var a, z int
		if n, _ := fmt.Sscan(string(b), &a, &z); n == 2 && a > 0 && z >= a {
			ephLo, ephHi = a, z
		}
	}
	below, above := ephLo-10000, 65535-ephHi
	if above > below {
		return ephHi + 1, 65536
	}
	if below < 1000 {
		return 1024, 65536 // an unusual range: any unprivileged port
	}
	return 10000, ephLo
}

// PKI is a test CA that writes certificates under a directory.
type PKI struct {
	CA  *pki.CA
	dir string
}

// NewPKI makes a CA whose files go under dir.
func NewPKI(t testing.TB, dir string) *PKI {
	t.Helper()
	ca, err := pki.NewCA("Tapeward test CA")
	if err != nil {
		t.Fatal(err)
	}
	return &PKI{CA: ca, dir: dir}
}

// Issue writes a certificate for name with role, and the CA certificate,
// into a fresh directory and returns the three paths.
func (p *PKI) Issue(t testing.TB, name, role string) tlsconf.Files {
	t.Helper()
	is, err := p.CA.Issue(name, role)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := os.MkdirTemp(p.dir, "pki-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := p.CA.WriteCA(sub)
	if err != nil {
		t.Fatal(err)
	}
	c, k, err := is.WriteFiles(sub)
	if err != nil {
		t.Fatal(err)
	}
	return tlsconf.Files{CA: ca, Cert: c, Key: k}
}

// WriteKEK makes a new KEK, writes it as a plain KEK file (mode 0600) at
// path and returns it.
func WriteKEK(t testing.TB, path string) *keys.KEK {
	t.Helper()
	kek, err := keys.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, keys.EncodeKEKHex(kek), 0o600); err != nil {
		t.Fatal(err)
	}
	return kek
}

// VTL is a running virtual tape library.
type VTL struct {
	*Proc
	Bin, Socket string
}

// ISCSIPrefix waits for a vtl started with --iscsi to log its portal and
// target name and returns "iscsi://PORTAL/TARGET/": append a LUN (0 the
// changer, 1.. the drives).
func (v *VTL) ISCSIPrefix(t testing.TB) string {
	t.Helper()
	re := regexp.MustCompile(`iscsi=(\S+) iscsi_target=(\S+)`)
	var m []string
	WaitFor(t, "the vtl to log its iSCSI portal", func() bool {
		m = re.FindStringSubmatch(v.Output())
		return m != nil
	})
	return "iscsi://" + m[1] + "/" + m[2] + "/"
}

// StartVTL serves a library in dir (cartridges under dir/lib, socket
// dir/vtl.sock) with the given extra `vtl serve` arguments.
func StartVTL(t testing.TB, bin, dir string, args ...string) *VTL {
	t.Helper()
	sock := filepath.Join(dir, "vtl.sock")
	all := append([]string{"serve", "--dir", filepath.Join(dir, "lib"), "--socket", sock}, args...)
	p := Start(t, "vtl", filepath.Join(dir, "vtl.log"), "", bin, all...)
	if err := waitSocket(sock, p.Exited); err != nil {
		t.Fatalf("%v; its log:\n%s", err, p.Output())
	}
	return &VTL{Proc: p, Bin: bin, Socket: sock}
}

// waitSocket waits until the unix socket accepts a connection (30 s).
func waitSocket(sock string, exited func() bool) error {
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return nil
		}
		if exited() {
			return fmt.Errorf("vtl exited before listening on %s", sock)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vtl did not listen on %s within 30s", sock)
		}
	}
}

// Server is a vtl serving a whole test binary: TestMain, which has no
// testing.TB, starts it with ServeVTL and stops it after m.Run.
type Server struct {
	Bin, Dir, Socket string
	cmd              *exec.Cmd
	done             chan struct{}
}

// ServeVTL starts `vtl serve` with cartridges under dir/lib, the socket
// dir/vtl.sock and the log dir/vtl.log, and returns once it listens.
func ServeVTL(bin, dir string, args ...string) (*Server, error) {
	s := &Server{Bin: bin, Dir: dir, Socket: filepath.Join(dir, "vtl.sock"), done: make(chan struct{})}
	logf, err := os.Create(filepath.Join(dir, "vtl.log"))
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, append([]string{"serve", "--dir", filepath.Join(dir, "lib"), "--socket", s.Socket}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting vtl: %w", err)
	}
	go func() { s.cmd.Wait(); logf.Close(); close(s.done) }()
	exited := func() bool {
		select {
		case <-s.done:
			return true
		default:
			return false
		}
	}
	if err := waitSocket(s.Socket, exited); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%v; its log:\n%s", err, s.Log())
	}
	return s, nil
}

// Stop ends the vtl: SIGINT (it flushes its cartridges), SIGKILL after 5 s.
func (s *Server) Stop() {
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// Log is what the vtl wrote.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "vtl.log"))
	return string(b)
}

// Status is `vtl status`.
func (v *VTL) Status(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(v.Bin, "status", "--socket", v.Socket).CombinedOutput()
	if err != nil {
		t.Fatalf("vtl status: %v\n%s", err, out)
	}
	return string(out)
}

// RequireNoKey fails unless vtl says no drive holds a key.
func (v *VTL) RequireNoKey(t testing.TB) {
	t.Helper()
	st := v.Status(t)
	for _, line := range strings.Split(st, "\n") {
		if strings.HasPrefix(line, "drive") && !strings.Contains(line, "no key") {
			t.Fatalf("a drive holds a key:\n%s", st)
		}
	}
}

// VTLReads are the counters `vtl stats --json` prints: data blocks and
// bytes READ returned per drive and per cartridge since the start or the
// last reset, and the blocks the flip faults changed.
type VTLReads struct {
	Drives []struct {
		Drive   int    `json:"drive"`
		Barcode string `json:"barcode"`
		Blocks  int64  `json:"blocks"`
		Bytes   int64  `json:"bytes"`
		Flipped int64  `json:"flipped"`
	} `json:"drives"`
	Cartridges []struct {
		Barcode string `json:"barcode"`
		Blocks  int64  `json:"blocks"`
		Bytes   int64  `json:"bytes"`
	} `json:"cartridges"`
}

// Cartridge returns barcode's counters (zero when it was not read).
func (r VTLReads) Cartridge(barcode string) (blocks, bytes int64) {
	for _, c := range r.Cartridges {
		if c.Barcode == barcode {
			return c.Blocks, c.Bytes
		}
	}
	return 0, 0
}

// Reads is `vtl stats --json` (with reset, the counters then start again
// from zero).
func (v *VTL) Reads(t testing.TB, reset bool) VTLReads {
	t.Helper()
	args := []string{"stats", "--socket", v.Socket, "--json"}
	if reset {
		args = append(args, "--reset")
	}
	out, err := exec.Command(v.Bin, args...).Output()
	if err != nil {
		t.Fatalf("vtl stats: %v\n%s", err, out)
	}
	var r VTLReads
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("vtl stats --json: %v\n%s", err, out)
	}
	return r
}

// Fault is `vtl fault UNIT:KEY=VALUE,…` on the running vtl, e.g.
// "drive0:flip_read=2,flip_offset=700" or "drive0:none".
func (v *VTL) Fault(t testing.TB, spec string) {
	t.Helper()
	if out, err := exec.Command(v.Bin, "fault", "--socket", v.Socket, spec).CombinedOutput(); err != nil {
		t.Fatalf("vtl fault %s: %v\n%s", spec, err, out)
	}
}

// ProcessCPU is the CPU time (user and system) this test process used so
// far — not its children's (tar, find) — for benchmarks that run both
// ends of what they measure in the process.
func ProcessCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
