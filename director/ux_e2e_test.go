package main

// End-to-end tests of what a new user trips over (issue 9, findings 9 and
// 10): real PostgreSQL, vtl, storaged and director, driven with tapectl.

import (
	"context"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

func (w *world) count(q string, args ...any) int {
	w.t.Helper()
	var n int
	if err := w.sql(q, args...).Scan(&n); err != nil {
		w.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// The seed's own command, typed as a Bareos user types it: with one
// storage it is used; the pool comes from default_pool; a slot list the
// changer does not have is refused before anything is written.
func TestLabelAsABareosUserTypesIt(t *testing.T) {
	w := newWorld(t, worldOpts{})

	// No default_pool: the one storage is used, the pool is named as
	// missing — nothing written.
	out, errs, code := w.tapectl("label slots=1-5 barcodes encrypt")
	if code == 0 || !strings.Contains(errs, "label: missing pool=NAME (no default_pool is set in") || strings.Contains(errs, "missing storage") {
		t.Fatalf("label without pool= and no default_pool: exit %d\n%s%s", code, out, errs)
	}
	// slots beyond the changer: refused before the pool is created.
	out, errs, code = w.tapectl("label pool=Offsite slots=7-12 barcodes encrypt")
	if code == 0 || !strings.Contains(errs, "changer changer0 of storage sd1 has slots 1-8; slot 9-12 does not exist: nothing was labelled") {
		t.Fatalf("label slots=7-12 on an 8-slot changer: exit %d\n%s%s", code, out, errs)
	}
	if n := w.count(`SELECT count(*) FROM pools`) + w.count(`SELECT count(*) FROM media`) + w.count(`SELECT count(*) FROM key_events`); n != 0 {
		t.Fatalf("refused labels left %d catalog rows (pools, media, key events)", n)
	}

	// default_pool set: the command as typed works.
	w.dirConf.DefaultPool = "Default"
	w.dird.Stop(t, syscall.SIGTERM)
	w.startDirector()
	out, errs, code = w.tapectl("label slots=1-5 barcodes encrypt")
	if code != 0 || !strings.Contains(out, "5 of 5 slots labelled") || !strings.Contains(errs, "using storage sd1 (the only one configured)") ||
		!strings.Contains(errs, "using pool Default (default_pool)") {
		t.Fatalf("label slots=1-5 barcodes encrypt: exit %d\n%s%s", code, out, errs)
	}
	if n := w.count(`SELECT count(*) FROM media m JOIN pools p ON p.id = m.pool_id WHERE p.name = 'Default' AND m.encrypted AND m.status = 'Append'`); n != 5 {
		t.Fatalf("%d encrypted Append volumes in pool Default, want 5", n)
	}

	// Two storages: which one must be said, and the one-shot names every
	// missing keyword at once.
	w.dirConf.DefaultPool = ""
	w.dirConf.Storages["sd2"] = testenv.FreeAddr(t)
	w.dird.Stop(t, syscall.SIGTERM)
	w.startDirector()
	out, errs, code = w.tapectl("label slots=6 barcodes")
	if code == 0 || !strings.Contains(errs, "label: missing storage=NAME (one of sd1, sd2); missing pool=NAME (no default_pool is set in") ||
		!strings.Contains(errs, "existing pools: Default") {
		t.Fatalf("label with two storages and no default pool: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = w.tapectl("label encrypt")
	if code == 0 || !strings.Contains(errs, "label: missing slots=LIST barcodes or slot=N volume=NAME") {
		t.Fatalf("label encrypt: exit %d\n%s%s", code, out, errs)
	}
}

// storaged dies mid-batch: no key is made for the slots after the one that
// failed, and the reply names them.
func TestLabelStopsWhenStoragedDies(t *testing.T) {
	w := newWorld(t, worldOpts{slots: 12})
	cmd := exec.Command(bins["tapectl"], "-c", w.conPath, "label storage=sd1 pool=Offsite slots=1-12 barcodes encrypt")
	var stdout strings.Builder
	cmd.Stdout = &stdout
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var progress strings.Builder
	killed := make(chan struct{})
	go func() {
		var once sync.Once
		buf := make([]byte, 4096)
		for {
			n, err := stderr.Read(buf)
			mu.Lock()
			progress.Write(buf[:n])
			p := progress.String()
			mu.Unlock()
			if strings.Contains(p, "slot 1 (1/12)") {
				once.Do(func() { w.sd.Kill9(t); close(killed) })
			}
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-killed:
	case <-time.After(60 * time.Second):
		t.Fatal("labelling made no progress")
	}
	cmd.Wait()
	mu.Lock()
	p := progress.String()
	mu.Unlock()
	out := stdout.String()
	if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(out, "storage sd1 stopped answering: slots ") || !strings.Contains(out, "were not attempted (no key was made for them)") {
		t.Fatalf("label with storaged killed: exit %d\nstdout:\n%s\nprogress:\n%s", cmd.ProcessState.ExitCode(), out, p)
	}
	// The slots labelled before the kill, and the one whose request found
	// storaged gone, have rows and keys; none of the slots after it.
	m := regexp.MustCompile(`(?m)^(\d+) of 12 slots labelled; 1 failed\b`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no \"N of 12 slots labelled; 1 failed\" line (exactly one slot fails: the one storaged died under):\n%s", out)
	}
	labelled, _ := strconv.Atoi(m[1])
	want := labelled + 1
	if n := w.count(`SELECT count(*) FROM media`); n != want || strings.Count(out, "not attempted") != 12-want+1 {
		t.Fatalf("%d volumes in the catalog, want %d (%d labelled + the one storaged died under); output:\n%s", n, want, labelled, out)
	}
	if n := w.count(`SELECT count(*) FROM key_events WHERE event = 'generated'`); n != want {
		t.Fatalf("%d keys generated, want %d", n, want)
	}
}

// export keys to a directory that does not exist: nothing is exported or
// audited; an export that is written is audited as sent to the console.
func TestExportKeysAuditIsHonest(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.ok("label storage=sd1 pool=Offsite slots=1-2 barcodes encrypt")
	out, errs, code := w.tapectl("export keys out=/missing/dir/x")
	if code == 0 || !strings.Contains(errs, "directory /missing/dir: no such file or directory") || !strings.Contains(errs, "nothing was sent to the director") {
		t.Fatalf("export keys out=/missing/dir/x: exit %d\n%s%s", code, out, errs)
	}
	if n := w.count(`SELECT count(*) FROM key_events WHERE event = 'exported'`); n != 0 {
		t.Fatalf("%d exported events for an export that was never written", n)
	}
	w.ok("export keys out=k.tsv")
	if n := w.count(`SELECT count(*) FROM key_events WHERE event = 'exported' AND actor = 'admin' AND detail LIKE 'sent to console admin for its out= file; fingerprint %'`); n != 2 {
		t.Fatalf("%d exported events saying the keys were sent to console admin, want 2", n)
	}
}

// label without drive=: the director names no drive, storaged picks a free
// one — drive0 holding a mounted volume does not stop it.
func TestLabelWithoutDriveUsesAFreeDrive(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.ok("label storage=sd1 pool=Offsite slots=1 barcodes encrypt")
	w.ok("mount storage=sd1 slot=1 drive=0")
	out := w.ok("--json", "label storage=sd1 pool=Offsite slots=2 barcodes encrypt")
	if !strings.Contains(out, `"drive": "drive1"`) {
		t.Fatalf("label while drive0 is busy:\n%s", out)
	}
	w.ok("unmount storage=sd1 drive=0")
}

// A cartridge loaded into drive0 behind storaged's back (front panel,
// another tool): a label that names no drive asks the changer, takes
// drive1, and the stray cartridge stays where it is.
func TestLabelWithoutDriveSkipsAHandLoadedDrive(t *testing.T) {
	w := newWorld(t, worldOpts{})
	if out, err := exec.Command(bins["vtl"], "load", "--socket", w.vtl.Socket, "--slot", "3", "--drive", "0").CombinedOutput(); err != nil {
		t.Fatalf("vtl load: %v\n%s", err, out)
	}
	out := w.ok("--json", "label storage=sd1 pool=Offsite slots=1 barcodes encrypt")
	if !strings.Contains(out, `"drive": "drive1"`) {
		t.Fatalf("label with drive0 loaded by hand:\n%s", out)
	}
	if st := w.ok("status storage=sd1"); !strings.Contains(st, "TW0003L6") {
		t.Fatalf("status storage does not show the cartridge in drive0:\n%s", st)
	}
	w.ok("unmount storage=sd1 drive=0") // returns it to slot 3
}

// The catalog cut off while the director runs: a mount takes the key from
// storaged's crypto cache, and storaged's log says the director answered
// and its catalog did not (not "director unreachable").
func TestMountWithTheCatalogDown(t *testing.T) {
	w := newWorld(t, worldOpts{viaProxy: true})
	w.ok("label storage=sd1 pool=Offsite slots=1 barcodes encrypt")
	w.proxy.cut()
	w.ok("mount storage=sd1 slot=1 drive=0")
	log := w.sd.Output()
	if !strings.Contains(log, "director's catalog unavailable: using the crypto cache") || strings.Contains(log, "director unreachable") {
		t.Fatalf("storaged's log with the catalog down:\n%s", log)
	}
	w.proxy.restore()
	testenv.WaitFor(t, "the catalog back", func() bool { _, _, code := w.tapectl("list volumes"); return code == 0 })
	w.ok("unmount storage=sd1 drive=0")
}

// PostgreSQL gone: status director still answers, with the storages and
// KEKs, and says the catalog is down.
func TestStatusDirectorCatalogDown(t *testing.T) {
	w := newWorld(t, worldOpts{viaProxy: true})
	w.proxy.cut()
	out, errs, code := w.tapectl("status director")
	if code != 1 || !strings.Contains(out, "catalog: DOWN (") || !strings.Contains(out, "storage sd1: up") || !strings.Contains(out, "KEKs: ") {
		t.Fatalf("status director with the catalog down: exit %d\n%s%s", code, out, errs)
	}
	w.proxy.restore()
	testenv.WaitFor(t, "status director to see the catalog again", func() bool {
		out, _, code := w.tapectl("status director")
		return code == 0 && !strings.Contains(out, "DOWN")
	})
}

// run sends one line as the console admin and returns its gRPC error.
func (w *world) run(line string) error {
	w.t.Helper()
	tc, err := tlsconf.Client(w.pki.Issue(w.t, "admin", tlsconf.RoleConsole), tlsconf.Peer{Role: tlsconf.RoleDirector, Name: "director"}, "director")
	if err != nil {
		w.t.Fatal(err)
	}
	conn, err := grpc.NewClient(w.dirConf.Listen, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		w.t.Fatal(err)
	}
	defer conn.Close()
	st, err := pb.NewConsoleClient(conn).Run(context.Background(), &pb.RunRequest{Line: line})
	if err != nil {
		return err
	}
	for {
		if _, err := st.Recv(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// storaged reports the library's state (a drive that holds a cartridge, a
// slot that does not exist) as Internal; the director passes them on with
// the code their meaning has.
func TestStorageStatesGetTheirCodes(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.ok("label storage=sd1 pool=Offsite slots=1-2 barcodes")
	w.ok("mount storage=sd1 slot=1 drive=0")
	err := w.run("mount storage=sd1 slot=2 drive=0")
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "unmount it first") {
		t.Fatalf("mount into a drive that holds a volume: %v; want FailedPrecondition", err)
	}
	err = w.run("mount storage=sd1 slot=9 drive=1")
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "there is no slot 9") {
		t.Fatalf("mount of slot 9 of 8: %v; want NotFound", err)
	}
	w.ok("unmount storage=sd1 drive=0")
}
