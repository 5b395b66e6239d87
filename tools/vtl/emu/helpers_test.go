package emu

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
)

// testLib is a library served in-process on a temporary unix socket.
type testLib struct {
	t    testing.TB
	cfg  Config
	sock string
	lib  *Library
	stop func()
}

func newTestLib(t testing.TB, mod func(*Config)) *testLib {
	t.Helper()
	dir := t.TempDir()
	// Cartridges are fsynced at close; on a busy shared disk that dominates
	// the tests, so use tmpfs when there is one.
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "vtltest"); err == nil {
			dir = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	cfg := Config{Dir: dir, Slots: 4, Drives: 2, Capacity: 8 << 20}
	if mod != nil {
		mod(&cfg)
	}
	h := &testLib{t: t, cfg: cfg}
	h.start()
	t.Cleanup(h.shutdown)
	return h
}

func (h *testLib) start() {
	h.t.Helper()
	lib, err := NewLibrary(h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	// Unix socket paths are limited to 108 bytes; t.TempDir can be long.
	sock := filepath.Join(h.t.TempDir(), "s")
	if len(sock) > 100 {
		h.t.Fatalf("socket path too long: %s", sock)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := NewServer(lib)
	go func() { done <- srv.Serve(ctx, ln) }()
	h.lib, h.sock = lib, sock
	h.stop = func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("serve: %v", err)
		}
		lib.Close()
	}
}

func (h *testLib) shutdown() {
	if h.stop != nil {
		h.stop()
		h.stop = nil
	}
}

// restart is a power cycle: same directory, new process state.
func (h *testLib) restart() {
	h.shutdown()
	h.start()
}

func (h *testLib) dial(unit string) *vtlwire.Client {
	h.t.Helper()
	return h.dialHello(vtlwire.Hello{Unit: unit, SharedBuffer: true}) // as vtlwire.Dial
}

// dialHello connects with hello's options (closed at the test's end).
func (h *testLib) dialHello(hello vtlwire.Hello) *vtlwire.Client {
	h.t.Helper()
	c, err := vtlwire.DialOpts(h.sock, hello)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

func (h *testLib) load(slot, drive int) {
	h.t.Helper()
	if err := h.lib.PanelLoad(slot, drive); err != nil {
		h.t.Fatal(err)
	}
}

// res is a decoded command result.
type res struct {
	status byte
	sense  []byte
	data   []byte
	resid  int
}

func (r res) String() string {
	return fmt.Sprintf("status %02X sense % X data %d resid %d", r.status, r.sense, len(r.data), r.resid)
}

// skey returns "K/AA/QQ" of the sense, "" if none.
func (r res) skey() string {
	if len(r.sense) == 0 {
		return ""
	}
	if r.sense[0]&0x7F == 0x72 {
		return fmt.Sprintf("%X/%02X/%02X", r.sense[1]&0xF, r.sense[2], r.sense[3])
	}
	if len(r.sense) < 14 {
		return "short"
	}
	return fmt.Sprintf("%X/%02X/%02X", r.sense[2]&0xF, r.sense[12], r.sense[13])
}

func (r res) info() int32 { return int32(binary.BigEndian.Uint32(r.sense[3:7])) }

func (r res) fieldPtr() (cd bool, field int) {
	if len(r.sense) < 18 || r.sense[15]&0x80 == 0 {
		return false, -1
	}
	return r.sense[15]&0x40 != 0, int(binary.BigEndian.Uint16(r.sense[16:18]))
}

func run(t testing.TB, c *vtlwire.Client, cdb []byte, out []byte, alloc int) res {
	t.Helper()
	cmd := &scsi.Command{CDB: cdb, Timeout: time.Minute}
	switch {
	case out != nil:
		cmd.Dir, cmd.Data = scsi.DirToDevice, out
	case alloc > 0:
		cmd.Dir, cmd.Data = scsi.DirFromDevice, make([]byte, alloc)
	}
	r, err := c.Do(cmd)
	if err != nil {
		t.Fatalf("CDB % X: %v", cdb, err)
	}
	x := res{status: r.Status, sense: r.Sense, resid: r.Resid}
	if cmd.Dir == scsi.DirFromDevice {
		x.data = cmd.Data[:r.Transferred(cmd)]
	}
	return x
}

// must runs a command that must succeed.
func must(t testing.TB, c *vtlwire.Client, cdb []byte, out []byte, alloc int) res {
	t.Helper()
	r := run(t, c, cdb, out, alloc)
	if r.status != 0 {
		t.Fatalf("CDB % X: %v (%s)", cdb, r, r.skey())
	}
	return r
}

// expect runs a command that must fail with the given K/AA/QQ.
func expect(t testing.TB, c *vtlwire.Client, want string, cdb []byte, out []byte, alloc int) res {
	t.Helper()
	r := run(t, c, cdb, out, alloc)
	if r.status != scsi.StatusCheckCondition || r.skey() != want {
		t.Fatalf("CDB % X: got %v (%s), want %s", cdb, r, r.skey(), want)
	}
	return r
}

// settle issues TEST UNIT READY until GOOD, collecting the unit attentions.
func settle(t testing.TB, c *vtlwire.Client) []string {
	t.Helper()
	var seen []string
	for range 50 {
		r := run(t, c, tur(), nil, 0)
		if r.status == 0 {
			return seen
		}
		k := r.skey()
		if k == "2/04/01" {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !strings.HasPrefix(k, "6/") {
			t.Fatalf("TUR: %s", k)
		}
		seen = append(seen, k)
	}
	t.Fatal("drive never became ready")
	return nil
}

// drainUA issues TEST UNIT READY until it reports no unit attention.
func drainUA(t testing.TB, c *vtlwire.Client) []string {
	t.Helper()
	var seen []string
	for range 20 {
		r := run(t, c, tur(), nil, 0)
		if !strings.HasPrefix(r.skey(), "6/") {
			return seen
		}
		seen = append(seen, r.skey())
	}
	t.Fatal("unit attentions never end")
	return nil
}

func openRW(path string) (*os.File, error) { return os.OpenFile(path, os.O_RDWR, 0) }

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.NewReplacer(" ", "", "\n", "", "\t", "", "|", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func eqBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s:\n got % X\nwant % X", what, got, want)
	}
}

// CDB builders (test-local; the initiator package is written concurrently).
func tur() []byte         { return []byte{0x00, 0, 0, 0, 0, 0} }
func rewind() []byte      { return []byte{0x01, 0, 0, 0, 0, 0} }
func write6(n int) []byte { return []byte{0x0A, 0, byte(n >> 16), byte(n >> 8), byte(n), 0} }
func read6(n int, sili bool) []byte {
	var b1 byte
	if sili {
		b1 = 2
	}
	return []byte{0x08, b1, byte(n >> 16), byte(n >> 8), byte(n), 0}
}
func wfm(n int) []byte { return []byte{0x10, 0, byte(n >> 16), byte(n >> 8), byte(n), 0} }
func space6(code byte, n int) []byte {
	return []byte{0x11, code, byte(n >> 16), byte(n >> 8), byte(n), 0}
}
func readPosLong() []byte { return []byte{0x34, 0x06, 0, 0, 0, 0, 0, 0, 0, 0} }
func locate16(destType byte, id uint64) []byte {
	b := make([]byte, 16)
	b[0], b[1] = 0x92, destType<<3
	binary.BigEndian.PutUint64(b[4:], id)
	return b
}
func spin(proto byte, page uint16, alloc int) []byte {
	b := []byte{0xA2, proto, byte(page >> 8), byte(page), 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[6:], uint32(alloc))
	return b
}
func spoutCDB(n int) []byte {
	b := []byte{0xB5, 0x20, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[6:], uint32(n))
	return b
}

// sde builds a Set Data Encryption page.
func sde(scopeByte, b5, enc, dec byte, key []byte, kads ...[]byte) []byte {
	p := []byte{0x00, 0x10, 0, 0, scopeByte, b5, enc, dec, 0x01, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(p[18:], uint16(len(key)))
	p = append(p, key...)
	for _, k := range kads {
		p = append(p, k...)
	}
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)-4))
	return p
}

func ukad(v string) []byte {
	return append([]byte{0x00, 0x00, 0x00, byte(len(v))}, v...)
}

func testKey(seed byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = seed + byte(i)*7
	}
	return k
}

// setKey loads key on the drive in MIXED mode, scope ALL (proxmox style).
func setKey(t testing.TB, c *vtlwire.Client, key []byte, kads ...[]byte) {
	t.Helper()
	p := sde(0x40, 0x00, 2, 3, key, kads...)
	must(t, c, spoutCDB(len(p)), p, 0)
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed ^ byte(i*31+i>>8)
	}
	return b
}
