package sd

// In-process tests of the daemon over a real vtl process (built once), with
// a director double behind the Director interface. They run under -race
// (make test): Status, VolumeState and the drive operations share drives.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tapeward/tapeward/configs"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/dial"
	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

var vtlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sd-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	built, err := testenv.Build(dir, "tools/vtl")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	vtlBin = built["vtl"]
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// director is the director double: it answers GetVolumeKey with the keys
// it was given (a clear volume otherwise) and records reports.
type director struct {
	mu      sync.Mutex
	keys    map[string]keys.StoredKey
	reports []*pb.ReportVolumeRequest
	// onReport, when set, is called with each report (outside mu).
	onReport func(*pb.ReportVolumeRequest)
	// refuse, when set, is GetVolumeKey's answer.
	refuse error
	// labelled are the LabelWritten reports.
	labelled []*pb.LabelVolumeReply
}

func (f *director) GetVolumeKey(ctx context.Context, lbl *pb.LabelView, drive string) (KeyAnswer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return KeyAnswer{}, f.refuse
	}
	sk, ok := f.keys[lbl.Volume]
	if !ok {
		return KeyAnswer{Source: "current"}, nil
	}
	return KeyAnswer{Encrypted: true, Key: sk, Source: "current"}, nil
}
func (f *director) CurrentKey(ctx context.Context, volume, drive string) (KeyAnswer, error) {
	return f.GetVolumeKey(ctx, &pb.LabelView{Volume: volume}, drive)
}
func (f *director) LabelWritten(_ context.Context, r *pb.LabelVolumeReply) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.labelled = append(f.labelled, r)
	return nil
}
func (f *director) BeginWrite(context.Context, *pb.BeginWriteRequest) error { return nil }
func (f *director) Report(_ context.Context, r *pb.ReportVolumeRequest) error {
	f.mu.Lock()
	f.reports = append(f.reports, r)
	hook := f.onReport
	f.mu.Unlock()
	if hook != nil {
		hook(r)
	}
	return nil
}
func (f *director) Hello(context.Context, *pb.StorageHelloRequest) (*pb.StorageHelloReply, error) {
	return &pb.StorageHelloReply{}, nil
}
func (f *director) Close() error { return nil }

type lib struct {
	d    *Daemon
	vtl  *testenv.VTL
	ring *keys.Keyring
	dir  *director
	pki  *testenv.PKI
}

// newLib starts a vtl (drives drives, load delay 0) and a Daemon over it.
func newLib(t *testing.T, drives int) *lib {
	t.Helper()
	return newLibWith(t, drives, nil)
}

// newLibWith is newLib; tune may change the configuration and options
// before New.
func newLibWith(t *testing.T, drives int, tune func(*configs.Storaged, *Options)) *lib {
	t.Helper()
	return newLibArgs(t, drives, 4, "16MiB", tune)
}

// newLibArgs is newLibWith with slots cartridges of capacity each.
func newLibArgs(t testing.TB, drives, slots int, capacity string, tune func(*configs.Storaged, *Options)) *lib {
	t.Helper()
	return newLibVTL(t, drives, slots, capacity, nil, tune)
}

// newLibVTL is newLibArgs with more vtl serve arguments.
func newLibVTL(t testing.TB, drives, slots int, capacity string, vtlArgs []string, tune func(*configs.Storaged, *Options)) *lib {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"--slots", fmt.Sprint(slots), "--drives", fmt.Sprint(drives), "--capacity", capacity, "--load-delay", "0s"}, vtlArgs...)
	v := testenv.StartVTL(t, vtlBin, dir, args...)
	p := testenv.NewPKI(t, dir)
	kekPath := filepath.Join(dir, "kek.key")
	kek := testenv.WriteKEK(t, kekPath)
	ring, err := keys.NewKeyring(kek)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "storaged.toml")
	testenv.Storaged{Name: "sd1", WorkDir: filepath.Join(dir, "work"), TLS: p.Issue(t, "sd1", tlsconf.RoleStorage),
		DirectorName: "director", DirectorAddr: "127.0.0.1:9", KEKFiles: []string{kekPath}, VTLSocket: v.Socket, Drives: drives,
		MountTimeout: "10s"}.Write(t, cfgPath)
	cfg, err := configs.LoadStoraged(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	l := &lib{vtl: v, ring: ring, dir: &director{keys: map[string]keys.StoredKey{}}, pki: p}
	o := Options{Config: cfg, Director: l.dir, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	if tune != nil {
		tune(cfg, &o)
	}
	l.d, err = New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.d.Close() })
	return l
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// label labels slot as volume (encrypted with a new key when encrypt).
func (l *lib) label(t testing.TB, slot uint32, volume string, encrypt bool) string {
	t.Helper()
	r := LabelRequest{Changer: "changer0", Slot: slot, Drive: "drive0", Volume: volume, Pool: "P", Encrypt: encrypt}
	if encrypt {
		sk, err := l.ring.WrapNew()
		if err != nil {
			t.Fatal(err)
		}
		l.dir.mu.Lock()
		l.dir.keys[volume] = sk
		l.dir.mu.Unlock()
		r.Key = sk
	}
	res, err := l.d.Label(context.Background(), r)
	if err != nil {
		t.Fatalf("label %s: %v", volume, err)
	}
	return res.Label.Encryption.Fingerprint
}

// A console polling status (and the director asking VolumeState) while
// volumes are mounted and unmounted: no operation fails because of them,
// and -race finds no unguarded access to a drive's state.
func TestStatusDuringMountUnmount(t *testing.T) {
	l := newLib(t, 1)
	fp := l.label(t, 1, "V1", true)
	var (
		stop   atomic.Bool
		polls  atomic.Int64
		wg     sync.WaitGroup
		pollMu sync.Mutex
		bad    []string
	)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				st := l.d.Status()
				l.d.VolumeState("V1")
				polls.Add(1)
				d0 := st.Drives[0]
				if d0.Error != "" || (d0.Key != nil && d0.Key.KeyLoaded && d0.Key.KeyFingerprint != fp) {
					pollMu.Lock()
					bad = append(bad, fmt.Sprint(d0))
					pollMu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < 15; i++ {
		if _, err := l.d.Mount(context.Background(), MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: i%2 == 0}); err != nil {
			t.Fatalf("mount %d while status is polled: %v", i+1, err)
		}
		if _, _, err := l.d.Unmount(context.Background(), "drive0"); err != nil {
			t.Fatalf("unmount %d while status is polled: %v", i+1, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if polls.Load() == 0 {
		t.Fatal("status was never polled")
	}
	if len(bad) > 0 {
		t.Fatalf("%d status replies showed an error or a key other than the volume's, e.g. %s", len(bad), bad[0])
	}
	l.vtl.RequireNoKey(t)
}

// With the library gone (vtl stopped), status says the drive cannot be
// reached and shows no stale key state.
func TestStatusOfUnreachableDrive(t *testing.T) {
	l := newLib(t, 1)
	fp := l.label(t, 1, "V1", true)
	if _, err := l.d.Mount(context.Background(), MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0"}); err != nil {
		t.Fatal(err)
	}
	if d0 := l.d.Status().Drives[0]; d0.Key == nil || !d0.Key.KeyLoaded || d0.Key.KeyFingerprint != fp || d0.Error != "" {
		t.Fatalf("status with the volume mounted = %v", d0)
	}
	l.vtl.Stop(t, os.Interrupt)
	d0 := l.d.Status().Drives[0]
	if !strings.Contains(d0.Error, "reading the encryption status") || !strings.Contains(d0.Error, l.vtl.Socket) {
		t.Fatalf("status of an unreachable drive: error %q, want it to say the drive could not be read", d0.Error)
	}
	if d0.Key != nil {
		t.Fatalf("status of an unreachable drive shows key state %v, want none (unknown)", d0.Key)
	}
	if d0.Volume != "V1" {
		t.Fatalf("status of an unreachable drive: volume %q, want V1 (still mounted as far as storaged knows)", d0.Volume)
	}
}

// A drive whose exclusive open fails (another process holds it) is never
// probed or cleared: it is marked unusable with the reason; when every
// drive is busy, start-up fails naming them.
func TestBusyDrivesAreLeftAlone(t *testing.T) {
	l := newLib(t, 2) // the first daemon: holds the devices, a key loaded
	fp := l.label(t, 1, "V1", true)
	if _, err := l.d.Mount(context.Background(), MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0"}); err != nil {
		t.Fatal(err)
	}
	cfg := l.d.cfg
	var opened []string
	busyOpen := func(busy map[string]bool) func(string, ...byte) (*scsi.Device, error) {
		return func(addr string, _ ...byte) (*scsi.Device, error) {
			if busy[addr] {
				// What an exclusive open of a held device returns.
				return nil, &scsi.BusyDeviceError{Addr: addr}
			}
			opened = append(opened, addr)
			return nil, errors.New("this test opens no device it was not told is busy")
		}
	}
	all := map[string]bool{cfg.Changers[0].Address: true}
	for _, dc := range cfg.Drives {
		all[dc.Address] = true
	}
	_, err := New(context.Background(), Options{Config: cfg, Director: &director{}, OpenDevice: busyOpen(all),
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err == nil || !strings.Contains(err.Error(), "every drive is held by another process") ||
		!strings.Contains(err.Error(), "drive0 ("+cfg.Drives[0].Address+")") || !strings.Contains(err.Error(), "drive1 (") {
		t.Fatalf("start-up with every device busy: err = %v", err)
	}
	if len(opened) > 0 {
		t.Fatalf("opened %v", opened)
	}
	if !strings.Contains(l.vtl.Status(t), "key "+fp) {
		t.Fatalf("the first daemon's key is gone:\n%s", l.vtl.Status(t))
	}
}

// The director goes away right after the key of a mount was loaded (its
// "loaded" report is the last thing it hears): nobody will use the volume,
// so storaged clears the key, returns the cartridge, and reports the key
// cleared — the audit trail does not end at "loaded".
func TestMountAbandonedAfterKeyLoad(t *testing.T) {
	l := newLib(t, 1)
	fp := l.label(t, 1, "V1", true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l.dir.mu.Lock()
	l.dir.onReport = func(r *pb.ReportVolumeRequest) {
		if r.Event == "loaded" {
			cancel()
		}
	}
	l.dir.mu.Unlock()
	_, err := l.d.Mount(ctx, MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0", ForWrite: true})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "abandoned") {
		t.Fatalf("mount whose caller went away after the key load: err = %v, want it abandoned", err)
	}
	l.vtl.RequireNoKey(t)
	if st := l.vtl.Status(t); !strings.Contains(st, "slot 1") || !strings.Contains(strings.Split(st, "slot 2")[0], "TW0001L6") {
		t.Fatalf("the cartridge is not back in slot 1:\n%s", st)
	}
	l.dir.mu.Lock()
	defer l.dir.mu.Unlock()
	var events []string
	for _, r := range l.dir.reports {
		events = append(events, r.Event)
		if r.Event == "cleared" && (r.KeyFingerprint != fp || r.Volume != "V1") {
			t.Fatalf("cleared report = %v", r)
		}
	}
	if strings.Join(events, ",") != "loaded,cleared" {
		t.Fatalf("the director heard %v, want loaded then cleared", events)
	}
}

// noDVCID is the transport of a changer that cannot report drive
// identifiers: its READ ELEMENT STATUS never carries DVCID.
type noDVCID struct{ scsi.Transport }

func (n noDVCID) Do(c *scsi.Command) (scsi.Result, error) {
	if len(c.CDB) > 6 && c.CDB[0] == scsi.OpReadElementStatus && c.CDB[6]&1 != 0 {
		c2 := *c
		c2.CDB = append([]byte(nil), c.CDB...)
		c2.CDB[6] &^= 1
		return n.Transport.Do(&c2)
	}
	return n.Transport.Do(c)
}

// A changer that reports no drive identifiers: drive_index cannot be
// checked, so storaged warns (naming the drive and its serial) and starts.
func TestNoDVCIDWarns(t *testing.T) {
	var logs testenv.LogBuffer
	newLibWith(t, 2, func(cfg *configs.Storaged, o *Options) {
		cfg.Drives[0].DriveIndex, cfg.Drives[1].DriveIndex = 1, 0 // not checkable: accepted
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		o.OpenDevice = func(addr string, types ...byte) (*scsi.Device, error) {
			tr, err := dial.OpenExpect(addr, types...)
			if err != nil {
				return nil, err
			}
			if strings.HasSuffix(addr, "#changer") {
				tr = noDVCID{tr}
			}
			return scsi.NewDevice(tr), nil
		}
	})
	for _, want := range []string{
		`msg="drive_index not checked: the changer reports no identifier (DVCID) for its drives`,
		`drive=drive0 changer=changer0 drive_index=1 serial=TWDRV00000`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("start-up log lacks %q:\n%s", want, logs.String())
		}
	}
}

// stuckPicker is a changer transport whose picker fails (hardware error
// 04/53/01, "a drive did not unload a cartridge") the next failMoves MOVE
// MEDIUMs out of a drive.
type stuckPicker struct {
	scsi.Transport
	failMoves *atomic.Int32
}

func (s stuckPicker) Do(c *scsi.Command) (scsi.Result, error) {
	if c.CDB[0] == scsi.OpMoveMedium && c.CDB[4] == 0x01 && s.failMoves.Add(-1) >= 0 { // source 0x01xx: a drive
		sense := make([]byte, 18)
		sense[0], sense[2], sense[7], sense[12], sense[13] = 0x70, 0x04, 0x0A, 0x53, 0x01
		return scsi.Result{Status: scsi.StatusCheckCondition, Sense: sense}, nil
	}
	return s.Transport.Do(c)
}

// A mount fails and the cartridge cannot be returned (the picker fails):
// the drive keeps it on record — status shows the cartridge and its
// volume, not mounted, no key — and unmount returns it once the picker
// works again.
func TestCartridgeThatCannotGoBackStaysOnRecord(t *testing.T) {
	var failMoves atomic.Int32
	l := newLibWith(t, 1, func(cfg *configs.Storaged, o *Options) {
		o.OpenDevice = func(addr string, types ...byte) (*scsi.Device, error) {
			tr, err := dial.OpenExpect(addr, types...)
			if err != nil {
				return nil, err
			}
			if strings.HasSuffix(addr, "#changer") {
				tr = stuckPicker{tr, &failMoves}
			}
			return scsi.NewDevice(tr), nil
		}
	})
	l.label(t, 1, "V1", true)
	l.dir.mu.Lock()
	l.dir.refuse = errors.New("volume V1: the catalog says no")
	l.dir.mu.Unlock()
	failMoves.Store(1)
	_, err := l.d.Mount(context.Background(), MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0"})
	if err == nil {
		t.Fatal("the mount was not refused")
	}
	d0 := l.d.Status().Drives[0]
	if d0.State != StateLoaded || d0.Barcode != "TW0001L6" || d0.Volume != "V1" || d0.Key == nil || d0.Key.KeyLoaded {
		t.Fatalf("status after a failed mount whose cartridge could not go back = %v, want TW0001L6 (V1) loaded, not mounted, no key", d0)
	}
	l.vtl.RequireNoKey(t)
	vol, slot, err := l.d.Unmount(context.Background(), "drive0")
	if err != nil || vol != "V1" || slot != 1 {
		t.Fatalf("unmount = %q, %d, %v; want V1 back to slot 1", vol, slot, err)
	}
	if st := l.vtl.Status(t); !strings.Contains(strings.Split(st, "slot 2")[0], "TW0001L6") {
		t.Fatalf("TW0001L6 is not back in slot 1:\n%s", st)
	}
	if d0 := l.d.Status().Drives[0]; d0.State != StateIdle || d0.Barcode != "" || d0.Volume != "" {
		t.Fatalf("status after the unmount = %v, want idle and empty", d0)
	}
}
