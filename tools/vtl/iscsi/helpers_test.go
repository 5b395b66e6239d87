package iscsi

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tapeward/tapeward/tools/lib/testenv"
	"github.com/tapeward/tapeward/tools/vtl/emu"
)

// world is a library served over iSCSI on loopback, in process.
type world struct {
	t      testing.TB
	dir    string
	cfg    Config
	lib    *emu.Library
	tgt    *Target
	addr   string
	logs   *testenv.LogBuffer
	log    *slog.Logger
	cancel func()
	done   chan struct{}
}

func newWorld(t testing.TB, mod func(*Config)) *world {
	t.Helper()
	dir := t.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "vtliscsi"); err == nil {
			dir = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	logs := &testenv.LogBuffer{}
	w := &world{t: t, dir: dir, logs: logs, log: slog.New(slog.NewTextHandler(logs, nil)), addr: "127.0.0.1:0"}
	w.cfg = Config{Logger: w.log}
	if mod != nil {
		mod(&w.cfg)
	}
	w.start()
	t.Cleanup(func() {
		w.stop()
	})
	return w
}

// start opens the library and serves it (on the same port after a stop).
func (w *world) start() {
	t := w.t
	t.Helper()
	lib, err := emu.NewLibrary(emu.Config{Dir: w.dir, Slots: 4, Drives: 2, Capacity: 1 << 30, Logger: w.log})
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := New(lib, w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", w.addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tgt.Serve(ctx, ln); close(done) }()
	w.lib, w.tgt, w.addr, w.cancel, w.done = lib, tgt, ln.Addr().String(), cancel, done
}

// stop ends the target (dropping every connection) and the library, as
// the vtl process does when it stops.
func (w *world) stop() {
	if w.cancel == nil {
		return
	}
	w.cancel()
	<-w.done
	w.lib.Close()
	w.cancel = nil
	if n := w.tgt.panics.Load(); n != 0 {
		w.t.Errorf("target recovered from %d panics:\n%s", n, w.logs)
	}
}

// url is the libiscsi URL of a LUN ("user%secret@" prefix optional).
func (w *world) url(cred string, lun int) string {
	return fmt.Sprintf("iscsi://%s%s/%s/%d", cred, w.addr, w.tgt.Name(), lun)
}

// need fails the test when a program is missing, with the install command.
func need(t testing.TB, prog, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		t.Fatalf("%s not found: apt-get install -y %s", prog, pkg)
	}
	return p
}

var (
	judgeOnce sync.Once
	judgePath string
	judgeErr  error
)

// judgeBin compiles testdata/judge.c against libiscsi (once per run).
func judgeBin(t testing.TB) string {
	t.Helper()
	need(t, "gcc", "gcc")
	if _, err := os.Stat("/usr/include/iscsi/iscsi.h"); err != nil {
		t.Fatal("libiscsi headers missing: apt-get install -y libiscsi-dev gcc")
	}
	judgeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "iscsijudge")
		if err != nil {
			judgeErr = err
			return
		}
		judgePath = filepath.Join(dir, "judge")
		out, err := exec.Command("gcc", "-O1", "-Wall", "-o", judgePath, "testdata/judge.c", "-liscsi").CombinedOutput()
		if err != nil {
			judgeErr = fmt.Errorf("building the libiscsi judge: %v\n%s(apt-get install -y libiscsi-dev gcc)", err, out)
		}
	})
	if judgeErr != nil {
		t.Fatal(judgeErr)
	}
	return judgePath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if judgePath != "" {
		os.RemoveAll(filepath.Dir(judgePath))
	}
	os.Exit(code)
}

// judge is one libiscsi session driven line by line.
type judge struct {
	t     testing.TB
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	first string // "connected" or the login error
}

func startJudge(t testing.TB, url, initiator string, opts ...string) *judge {
	t.Helper()
	cmd := exec.Command(judgeBin(t), append([]string{url, initiator}, opts...)...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	j := &judge{t: t, cmd: cmd, in: in, out: bufio.NewReader(out)}
	t.Cleanup(j.close)
	j.first = j.line()
	return j
}

func (j *judge) line() string {
	s, err := j.out.ReadString('\n')
	if err != nil && s == "" {
		return "error: judge exited: " + err.Error()
	}
	return strings.TrimSpace(s)
}

func (j *judge) close() {
	if j.in != nil {
		j.in.Close()
		j.in = nil
		j.cmd.Wait()
	}
}

// do sends one input line and returns the result line.
func (j *judge) do(format string, a ...any) string {
	j.t.Helper()
	if _, err := fmt.Fprintf(j.in, format+"\n", a...); err != nil {
		j.t.Fatalf("judge: %v", err)
	}
	return j.line()
}

// cmd runs a CDB (dir n, r, w) and returns the result line.
func (j *judge) cdb(cdb []byte, dir string, n int, data string) string {
	j.t.Helper()
	if data == "" {
		data = "-"
	}
	return j.do("%s %s %d %s", hex.EncodeToString(cdb), dir, n, data)
}

// must runs a CDB that must end GOOD.
func (j *judge) must(cdb []byte, dir string, n int, data string) string {
	j.t.Helper()
	r := j.cdb(cdb, dir, n, data)
	if !strings.HasPrefix(r, "status=0 ") {
		j.t.Fatalf("CDB % X: %s", cdb, r)
	}
	return r
}

// pat is the judge's pattern (see judge.c).
func pat(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*31 + seed*7) ^ (i >> 10))
	}
	return b
}

func fnv(b []byte) string {
	h := uint32(2166136261)
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	return fmt.Sprintf("fnv:%08x", h)
}

func tur() []byte          { return []byte{0, 0, 0, 0, 0, 0} }
func write6(n int) []byte  { return []byte{0x0A, 0, byte(n >> 16), byte(n >> 8), byte(n), 0} }
func read6(n int) []byte   { return []byte{0x08, 0x02, byte(n >> 16), byte(n >> 8), byte(n), 0} }
func wfm(n int) []byte     { return []byte{0x10, 0, 0, 0, byte(n), 0} }
func rewind() []byte       { return []byte{0x01, 0, 0, 0, 0, 0} }
func reserve6() []byte     { return []byte{0x16, 0, 0, 0, 0, 0} }
func release6() []byte     { return []byte{0x17, 0, 0, 0, 0, 0} }
func inquiry(n int) []byte { return []byte{0x12, 0, 0, 0, byte(n), 0} }
func spoutCDB(n int) []byte {
	b := []byte{0xB5, 0x20, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[6:], uint32(n))
	return b
}

// sde is a Set Data Encryption page (SCOPE=ALL, AES-256-GCM algorithm 1).
func sde(enc, dec byte, key []byte) []byte {
	p := []byte{0x00, 0x10, 0, 0, 0x40, 0x00, enc, dec, 0x01, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(p[18:], uint16(len(key)))
	p = append(p, key...)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)-4))
	return p
}
