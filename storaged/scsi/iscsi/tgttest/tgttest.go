// Package tgttest runs Debian's tgt (the Linux SCSI target framework's
// user-space daemon) on loopback for tests: an iSCSI target written by
// others, with an emulated SSC tape drive, an SMC changer and SBC disks,
// so that Tapeward's initiator is judged by software it shares no code
// with. Tests only: it fails the test (never skips) when tgtd is missing.
//
//	srv := tgttest.Start(t)
//	lib := srv.AddLibrary(t, "lib", tgttest.Library{Slots: 3})
//	addr := lib.Drive   // iscsi://127.0.0.1:PORT/iqn…:lib/1
//
// Each Server has its own tgtd (its own control port and portal); each
// Add… creates a distinct target, so the tests of one package share one
// daemon. Restart kills tgtd with SIGKILL and starts it again with the
// same configuration and tape images, as a target host's reboot.
package tgttest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Install is what to run when tgt is missing.
const Install = "apt-get install -y tgt"

// Server is one running tgtd.
type Server struct {
	// Portal is the loopback HOST:PORT it serves iSCSI on.
	Portal string
	dir    string
	ctl    int // tgtd control port (-C): its socket /var/run/tgtd/socket.N
	proc   *proc

	mu      sync.Mutex
	nextTID int
	config  [][]string // tgtadm argument lists, replayed by Restart
}

func bin(t testing.TB, name string) string {
	t.Helper()
	for _, d := range []string{"", "/usr/sbin/", "/sbin/"} {
		p := d + name
		if d == "" {
			if lp, err := exec.LookPath(name); err == nil {
				return lp
			}
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s (Debian package tgt) is not installed: run `%s`", name, Install)
	return ""
}

// Start runs a tgtd for the test on 127.0.0.1 (killed when the test
// ends).
func Start(t testing.TB) *Server { t.Helper(); return StartOn(t, "127.0.0.1") }

// StartOn runs a tgtd whose portal is on the loopback address host (e.g.
// 127.0.0.2: tgt never redirects an initiator to its own address).
func StartOn(t testing.TB, host string) *Server {
	t.Helper()
	bin(t, "tgtadm")
	bin(t, "tgtimg")
	s := &Server{dir: t.TempDir(), nextTID: 1}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	s.Portal = l.Addr().String()
	l.Close()
	for range 20 {
		s.ctl = 2000 + rand.IntN(30000) // tgtd takes a short
		if _, err := os.Stat(fmt.Sprintf("/var/run/tgtd/socket.%d", s.ctl)); err == nil {
			continue // another tgtd's (or a stale one)
		}
		break
	}
	// Registered before tgtd starts, so it runs after tgtd is killed:
	// the control socket and its lock stay behind a killed tgtd.
	t.Cleanup(func() {
		os.Remove(fmt.Sprintf("/var/run/tgtd/socket.%d", s.ctl))
		os.Remove(fmt.Sprintf("/var/run/tgtd/socket.%d.lock", s.ctl))
	})
	s.start(t)
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	os.MkdirAll("/var/run/tgtd", 0o755)
	s.proc = startProc(t, filepath.Join(s.dir, "tgtd.log"), bin(t, "tgtd"),
		"-f", "-C", strconv.Itoa(s.ctl), "--iscsi", "portal="+s.Portal)
	waitFor(t, "tgtd to answer tgtadm", func() bool {
		if s.proc.exited() {
			return true
		}
		return exec.Command(bin(t, "tgtadm"), "-C", strconv.Itoa(s.ctl), "--mode", "sys", "--op", "show").Run() == nil
	})
	if s.proc.exited() {
		t.Fatalf("tgtd exited at start; its log:\n%s", s.Log())
	}
	waitFor(t, "tgtd to listen on "+s.Portal, func() bool {
		c, err := net.Dial("tcp", s.Portal)
		if err == nil {
			c.Close()
		}
		return err == nil || s.proc.exited()
	})
}

// proc is a running tgtd (package testenv's Proc, which storaged/scsi
// may not import).
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProc(t testing.TB, logPath, bin string, args ...string) *proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: exec.Command(bin, args...), log: logPath, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting tgtd: %v", err)
	}
	go func() { p.cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		if !p.exited() {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor polls ok until it is true; 30 s at most.
func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Admin runs tgtadm against this tgtd (the --lld iscsi is added) and
// records the command for Restart.
func (s *Server) Admin(t testing.TB, args ...string) {
	t.Helper()
	s.admin(t, args...)
	s.mu.Lock()
	s.config = append(s.config, args)
	s.mu.Unlock()
}

func (s *Server) admin(t testing.TB, args ...string) {
	t.Helper()
	full := append([]string{"-C", strconv.Itoa(s.ctl), "--lld", "iscsi"}, args...)
	if out, err := exec.Command(bin(t, "tgtadm"), full...).CombinedOutput(); err != nil {
		t.Fatalf("tgtadm %s: %v\n%s", strings.Join(full, " "), err, out)
	}
}

// Restart kills tgtd (SIGKILL: no logout, no goodbye) and starts it again
// on the same portal with the same targets and tape images.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill(t)
	s.Start(t)
}

// Kill stops tgtd with SIGKILL and waits for it to end.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if s.proc.exited() {
		return
	}
	s.proc.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-s.proc.done:
	case <-time.After(30 * time.Second):
		t.Fatal("tgtd did not end within 30s of SIGKILL")
	}
}

// Start starts tgtd again after Kill, with the recorded configuration.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.start(t)
	s.mu.Lock()
	cfg := append([][]string(nil), s.config...)
	s.mu.Unlock()
	for _, args := range cfg {
		s.admin(t, args...)
	}
}

// Log is tgtd's output so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "tgtd.log"))
	return string(b)
}

// Target is one target of the server and the iscsi:// addresses of its
// LUNs.
type Target struct {
	TID   int
	IQN   string
	Drive string // iscsi:// address of the tape LUN (1), if any
	// Changer is the SMC LUN (2) of a library target.
	Changer string
	// Disk is the SBC LUN (1) of a disk target.
	Disk string
	// Tapes are the image files, by barcode.
	Tapes map[string]string
}

func (s *Server) newTarget(t testing.TB, name string) *Target {
	t.Helper()
	s.mu.Lock()
	tid := s.nextTID
	s.nextTID++
	s.mu.Unlock()
	tg := &Target{TID: tid, IQN: "iqn.2026-12.io.tapeward.test:" + name, Tapes: map[string]string{}}
	s.Admin(t, "--mode", "target", "--op", "new", "--tid", strconv.Itoa(tid), "--targetname", tg.IQN)
	return tg
}

func (s *Server) bindAll(t testing.TB, tg *Target) {
	s.Admin(t, "--mode", "target", "--op", "bind", "--tid", strconv.Itoa(tg.TID), "--initiator-address", "ALL")
}

// Addr is the iscsi:// address of LUN lun of tg.
func (s *Server) Addr(tg *Target, lun int) string {
	return "iscsi://" + s.Portal + "/" + tg.IQN + "/" + strconv.Itoa(lun)
}

func (s *Server) tape(t testing.TB, barcode string, sizeMB int) string {
	t.Helper()
	p := filepath.Join(s.dir, barcode)
	if out, err := exec.Command(bin(t, "tgtimg"), "--op", "new", "--device-type", "tape", "--type", "data",
		"--barcode", barcode, "--size", strconv.Itoa(sizeMB), "--file", p).CombinedOutput(); err != nil {
		t.Fatalf("tgtimg %s: %v\n%s", barcode, err, out)
	}
	return p
}

// AddTape creates a target whose LUN 1 is a tape drive loaded with a
// fresh tape of sizeMB megabytes (tgt's ssc emulation).
func (s *Server) AddTape(t testing.TB, name string, sizeMB int) *Target {
	t.Helper()
	tg := s.newTarget(t, name)
	bc := strings.ToUpper(fmt.Sprintf("T%02d%s", tg.TID, name))
	if len(bc) > 10 {
		bc = bc[:10]
	}
	tg.Tapes[bc] = s.tape(t, bc, sizeMB)
	s.Admin(t, "--mode", "logicalunit", "--op", "new", "--tid", strconv.Itoa(tg.TID), "--lun", "1",
		"--device-type", "tape", "--bstype", "ssc", "--backing-store", tg.Tapes[bc])
	s.bindAll(t, tg)
	tg.Drive = s.Addr(tg, 1)
	return tg
}

// Library describes a library target: LUN 1 an empty tape drive, LUN 2 a
// changer with one drive element (address 1), a picker (16) and Slots
// storage elements from 1024, slot i holding a tape with barcode
// "TWL00i".
type Library struct {
	Slots  int
	SizeMB int // each tape (default 32)
}

// AddLibrary creates a library target.
func (s *Server) AddLibrary(t testing.TB, name string, l Library) *Target {
	t.Helper()
	if l.SizeMB == 0 {
		l.SizeMB = 32
	}
	tg := s.newTarget(t, name)
	tid := strconv.Itoa(tg.TID)
	s.Admin(t, "--mode", "logicalunit", "--op", "new", "--tid", tid, "--lun", "1", "--device-type", "tape", "--bstype", "ssc")
	smc := filepath.Join(s.dir, name+".smc")
	if err := os.WriteFile(smc, make([]byte, 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	media := filepath.Join(s.dir, name+".media")
	os.MkdirAll(media, 0o755)
	upd := func(params string) {
		s.Admin(t, "--mode", "logicalunit", "--op", "update", "--tid", tid, "--lun", "2", "--params", params)
	}
	s.Admin(t, "--mode", "logicalunit", "--op", "new", "--tid", tid, "--lun", "2", "--backing-store", smc, "--device-type", "changer")
	upd("element_type=4,start_address=1,quantity=1")
	upd("element_type=4,address=1,tid=" + tid + ",lun=1")
	upd("element_type=1,start_address=16,quantity=1")
	upd("media_home=" + media)
	upd(fmt.Sprintf("element_type=2,start_address=1024,quantity=%d", l.Slots))
	for i := 1; i <= l.Slots; i++ {
		bc := fmt.Sprintf("TWL%03d", i)
		p := filepath.Join(media, bc)
		if out, err := exec.Command(bin(t, "tgtimg"), "--op", "new", "--device-type", "tape", "--type", "data",
			"--barcode", bc, "--size", strconv.Itoa(l.SizeMB), "--file", p).CombinedOutput(); err != nil {
			t.Fatalf("tgtimg %s: %v\n%s", bc, err, out)
		}
		tg.Tapes[bc] = p
		upd(fmt.Sprintf("element_type=2,address=%d,barcode=%s,sides=1", 1023+i, bc))
	}
	s.bindAll(t, tg)
	tg.Drive, tg.Changer = s.Addr(tg, 1), s.Addr(tg, 2)
	return tg
}

// AddDisk creates a target whose LUN 1 is an SBC disk of sizeMB (tgt
// implements SPC-2 RESERVE/RELEASE for disks, not for its tape emulation).
func (s *Server) AddDisk(t testing.TB, name string, sizeMB int) *Target {
	t.Helper()
	tg := s.newTarget(t, name)
	p := filepath.Join(s.dir, name+".disk")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, int64(sizeMB)<<20); err != nil {
		t.Fatal(err)
	}
	s.Admin(t, "--mode", "logicalunit", "--op", "new", "--tid", strconv.Itoa(tg.TID), "--lun", "1", "--backing-store", p)
	s.bindAll(t, tg)
	tg.Disk = s.Addr(tg, 1)
	return tg
}

// CHAP makes tg require CHAP: user with secret (incoming: the target
// authenticates the initiator); with targetUser, also an outgoing account
// for mutual CHAP.
func (s *Server) CHAP(t testing.TB, tg *Target, user, secret, targetUser, targetSecret string) {
	t.Helper()
	s.Admin(t, "--mode", "account", "--op", "new", "--user", user, "--password", secret)
	s.Admin(t, "--mode", "account", "--op", "bind", "--tid", strconv.Itoa(tg.TID), "--user", user)
	if targetUser != "" {
		s.Admin(t, "--mode", "account", "--op", "new", "--user", targetUser, "--password", targetSecret)
		s.Admin(t, "--mode", "account", "--op", "bind", "--tid", strconv.Itoa(tg.TID), "--user", targetUser, "--outgoing")
	}
}

// Param sets an iSCSI parameter of tg as the target negotiates it
// (HeaderDigest=CRC32C,None, InitialR2T=No, MaxRecvDataSegmentLength …).
func (s *Server) Param(t testing.TB, tg *Target, name, value string) {
	t.Helper()
	s.Admin(t, "--mode", "target", "--op", "update", "--tid", strconv.Itoa(tg.TID), "--name", name, "--value", value)
}
