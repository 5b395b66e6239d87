package main

// End-to-end tests of the first vertical slice: a real PostgreSQL (pgtest),
// vtl, storaged and director processes on loopback, driven with tapectl as
// an operator would.

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// bins are the binaries TestMain built, by name.
var bins map[string]string

// world is one test's installation.
type world struct {
	t        testing.TB
	dir      string
	dsn      string
	pki      *testenv.PKI
	vtl      *testenv.VTL
	sd       *testenv.Proc
	dird     *testenv.Proc
	sdConf   testenv.Storaged
	dirConf  testenv.Director
	sdPath   string
	dirPath  string
	conPath  string
	kekPaths []string
	proxy    *pgProxy
}

type worldOpts struct {
	slots, drives int
	capacity      string
	viaProxy      bool // the director reaches PostgreSQL through a TCP proxy the test can cut
	// consoles the director admits, name → role (nil: admin as keyadmin,
	// the console of w.tapectl).
	consoles map[string]string
	// revocationList gives the director an (empty) [tls] revocation_list,
	// w.dir/revoked.txt.
	revocationList bool
	// vtlArgs are more `vtl serve` arguments (e.g. --ie-slots 2).
	vtlArgs []string
	// blockSize is the drives' block_size ("": testenv's 256KiB).
	blockSize string
}

func newWorld(t testing.TB, o worldOpts) *world {
	t.Helper()
	if o.slots == 0 {
		o.slots = 8
	}
	if o.drives == 0 {
		o.drives = 2
	}
	if o.capacity == "" {
		o.capacity = "64MiB"
	}
	w := &world{t: t, dir: t.TempDir(), dsn: pgtest.NewDB(t)}
	w.pki = testenv.NewPKI(t, w.dir)
	w.kekPaths = []string{filepath.Join(w.dir, "kek1.key")}
	testenv.WriteKEK(t, w.kekPaths[0])
	vtlArgs := append([]string{"--slots", fmt.Sprint(o.slots), "--drives", fmt.Sprint(o.drives),
		"--capacity", o.capacity, "--load-delay", "0s"}, o.vtlArgs...)
	w.vtl = testenv.StartVTL(t, bins["vtl"], w.dir, vtlArgs...)

	pc, err := pgx.ParseConfig(w.dsn)
	if err != nil {
		t.Fatal(err)
	}
	host, port := pc.Host, pc.Port
	if o.viaProxy {
		w.proxy = startProxy(t, pc)
		host, port = "127.0.0.1", w.proxy.port
	}
	dirAddr, sdAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	w.dirConf = testenv.Director{Name: "director", Listen: dirAddr, TLS: w.pki.Issue(t, "director", tlsconf.RoleDirector),
		DBHost: host, DBPort: port, DBName: pc.Database, DBUser: pc.User,
		KEKFiles: w.kekPaths, Storages: map[string]string{"sd1": sdAddr}, Consoles: o.consoles}
	if o.revocationList {
		w.dirConf.TLS.RevocationList = filepath.Join(w.dir, "revoked.txt")
		if err := os.WriteFile(w.dirConf.TLS.RevocationList, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.sdConf = testenv.Storaged{Name: "sd1", Listen: sdAddr, WorkDir: filepath.Join(w.dir, "sd1"),
		TLS: w.pki.Issue(t, "sd1", tlsconf.RoleStorage), DirectorName: "director", DirectorAddr: dirAddr,
		KEKFiles: w.kekPaths, VTLSocket: w.vtl.Socket, Drives: o.drives, BlockSize: o.blockSize}
	w.sdPath, w.dirPath = filepath.Join(w.dir, "storaged.toml"), filepath.Join(w.dir, "director.toml")
	w.conPath = filepath.Join(w.dir, "tapectl.toml")
	testenv.Console(t, w.conPath, "admin", "director", dirAddr, w.pki.Issue(t, "admin", tlsconf.RoleConsole))
	w.startStoraged()
	w.startDirector()
	t.Cleanup(w.checkNoKeyMaterialInLogs)
	return w
}

// checkNoKeyMaterialInLogs greps the director's, storaged's, vtl's and filed's logs
// for every KEK (hex and base64) and every stored key string in the
// catalog, current and history (invariant 4: fingerprints and KEK ids
// only).
func (w *world) checkNoKeyMaterialInLogs() {
	var secrets []string
	for _, p := range w.kekPaths {
		if b, err := os.ReadFile(p); err == nil {
			h := strings.TrimSpace(string(b))
			if raw, err := hex.DecodeString(h); err == nil {
				secrets = append(secrets, h, strings.ToUpper(h), base64.StdEncoding.EncodeToString(raw), base64.RawStdEncoding.EncodeToString(raw))
			}
		}
	}
	if conn, err := pgx.Connect(context.Background(), w.dsn); err == nil {
		rows, err := conn.Query(context.Background(), `SELECT key_string FROM media WHERE key_string IS NOT NULL
			UNION ALL SELECT key_string FROM media_keys`)
		if err == nil {
			for rows.Next() {
				var k string
				rows.Scan(&k)
				secrets = append(secrets, k)
			}
			rows.Close()
		}
		conn.Close(context.Background())
	}
	logs := []string{"director.log", "storaged.log", "vtl.log"}
	fds, _ := filepath.Glob(filepath.Join(w.dir, "filed*.log")) // backup_e2e_test.go's filed processes
	for _, f := range fds {
		logs = append(logs, filepath.Base(f))
	}
	for _, name := range logs {
		b, _ := os.ReadFile(filepath.Join(w.dir, name))
		for _, s := range secrets {
			if s != "" && strings.Contains(string(b), s) {
				w.t.Errorf("%s contains key material (a %d-character secret)", name, len(s))
			}
		}
	}
}

func (w *world) startStoraged() {
	w.t.Helper()
	w.sdConf.Write(w.t, w.sdPath)
	w.sd = testenv.Start(w.t, "storaged", filepath.Join(w.dir, "storaged.log"), "storaged ready", bins["storaged"], "-c", w.sdPath)
}

func (w *world) startDirector() {
	w.t.Helper()
	w.dirConf.Write(w.t, w.dirPath)
	w.dird = testenv.Start(w.t, "director", filepath.Join(w.dir, "director.log"), "director ready", bins["director"], "-c", w.dirPath)
}

// tapectl runs one command line and returns stdout, stderr and the exit code.
func (w *world) tapectl(args ...string) (string, string, int) {
	w.t.Helper()
	return w.tapectlWith(w.conPath, args...)
}

// tapectlWith runs tapectl with the console configuration conPath.
func (w *world) tapectlWith(conPath string, args ...string) (string, string, int) {
	w.t.Helper()
	cmd := exec.Command(bins["tapectl"], append([]string{"-c", conPath}, args...)...)
	cmd.Dir = w.dir
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatalf("running tapectl: %v", err)
	}
	return out.String(), errb.String(), code
}

// ok runs tapectl and requires success.
func (w *world) ok(args ...string) string {
	w.t.Helper()
	out, errs, code := w.tapectl(args...)
	if code != 0 {
		w.t.Fatalf("tapectl %q: exit %d\nstdout: %s\nstderr: %s\ndirector log:\n%s", args, code, out, errs, w.dird.Output())
	}
	return out
}

type volRow struct {
	Volume     string  `json:"volume"`
	Status     string  `json:"status"`
	Encrypted  bool    `json:"encrypted"`
	KEKID      string  `json:"kek_id"`
	Key        string  `json:"key_fingerprint"`
	VerifiedAt *string `json:"encryption_verified_at"`
	Slot       int     `json:"slot"`
}

func (w *world) volumes() []volRow {
	w.t.Helper()
	var rows []volRow
	if err := json.Unmarshal([]byte(w.ok("--json", "list volumes")), &rows); err != nil {
		w.t.Fatalf("list volumes --json: %v", err)
	}
	return rows
}

func (w *world) sql(q string, args ...any) pgx.Row {
	w.t.Helper()
	conn := pgtest.Connect(w.t, w.dsn)
	return conn.QueryRow(context.Background(), q, args...)
}

func TestLabelFiveEncryptedVolumes(t *testing.T) {
	w := newWorld(t, worldOpts{})
	out, progress, code := w.tapectl("label storage=sd1 pool=Offsite slots=1-5 barcodes encrypt")
	if code != 0 {
		t.Fatalf("label: exit %d\n%s\n%s\n%s", code, out, progress, w.dird.Output())
	}
	if strings.Count(progress, "encryption verified") != 5 || !strings.Contains(out, "5 of 5 slots labelled") {
		t.Fatalf("label output:\n%s\nprogress:\n%s", out, progress)
	}
	rows := w.volumes()
	if len(rows) != 5 {
		t.Fatalf("list volumes: %d rows, want 5: %+v", len(rows), rows)
	}
	kek, err := keys.LoadKEKFile(w.kekPaths[0], keys.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		if r.Volume != fmt.Sprintf("TW%04dL6", i+1) || r.Status != "Append" || !r.Encrypted || r.VerifiedAt == nil || r.KEKID != kek.ID() {
			t.Errorf("volume %d = %+v, want TW%04dL6 Append, encrypted, verified, KEK %s", i, r, i+1, kek.ID())
		}
	}
	var distinct int
	if err := w.sql(`SELECT count(DISTINCT key_string) FROM media WHERE encrypted`).Scan(&distinct); err != nil || distinct != 5 {
		t.Fatalf("distinct stored keys in the catalog = %d (%v), want 5", distinct, err)
	}
	w.vtl.RequireNoKey(t)

	ev := w.ok("list keyevents volume=TW0003L6")
	for _, e := range []string{"generated", "fetched", "loaded", "verified", "cleared"} {
		if !strings.Contains(ev, e) {
			t.Errorf("key events of TW0003L6 lack %q:\n%s", e, ev)
		}
	}
	// Mount: key loaded and verified; status shows it; unmount clears it.
	out = w.ok("mount storage=sd1 slot=3 drive=0")
	if !strings.Contains(out, "TW0003L6 (slot 3) mounted in drive0") || !strings.Contains(out, "loaded and verified") {
		t.Fatalf("mount: %s", out)
	}
	if st := w.ok("status storage=sd1"); !strings.Contains(st, "loaded "+rows[2].Key) {
		t.Fatalf("status storage=sd1 does not show key %s loaded:\n%s", rows[2].Key, st)
	}
	w.ok("unmount storage=sd1 drive=0")
	w.vtl.RequireNoKey(t)
	var events []struct {
		Event string `json:"Event"`
		KEKID string `json:"KEKID"`
	}
	if err := json.Unmarshal([]byte(w.ok("--json", "list keyevents volume=TW0003L6")), &events); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, e := range events {
		counts[e.Event]++
		if e.Event != "generated" && e.KEKID != kek.ID() {
			t.Errorf("key event %s of TW0003L6 records KEK %q, want %s", e.Event, e.KEKID, kek.ID())
		}
	}
	if counts["loaded"] < 2 || counts["cleared"] < 2 {
		t.Fatalf("mount/unmount left no key events: %v", counts)
	}

	// A labelled cartridge is not labelled again: the catalog knows its
	// barcode, so no key is made and the tape is not touched (storaged's own
	// refusal of a Tapeward label is tested in storaged).
	out, _, code = w.tapectl("label storage=sd1 pool=Offsite slot=1 volume=OTHER encrypt")
	if code == 0 || !strings.Contains(out, `barcode "TW0001L6" already belongs to volume "TW0001L6"`) || strings.Contains(out, "keys of failed volumes are kept") {
		t.Fatalf("relabel of slot 1: exit %d\n%s", code, out)
	}
	var others int
	if err := w.sql(`SELECT count(*) FROM media WHERE volume_name = 'OTHER'`).Scan(&others); err != nil || others != 0 {
		t.Fatalf("a refused label left %d catalog rows (%v)", others, err)
	}

	// Export: still-wrapped keys that tapekey cache add accepts.
	w.ok("export keys pool=Offsite out=keys.tsv")
	exp, err := os.ReadFile(filepath.Join(w.dir, "keys.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(w.dir, "dr.cryptocache")
	add := exec.Command(bins["tapekey"], "cache", "add", cache, "--kek", w.kekPaths[0])
	add.Stdin = strings.NewReader(string(exp))
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("tapekey cache add < export: %v\n%s", err, out)
	}
	if out, err := exec.Command(bins["tapekey"], "cache", "verify", cache, "--kek", w.kekPaths[0]).CombinedOutput(); err != nil || strings.Count(string(out), "TW000") < 5 {
		t.Fatalf("tapekey cache verify of the export: %v\n%s", err, out)
	}
}

// A second storage's certificate cannot fetch sd1's keys, and an
// unconfigured storage cannot connect at all.
func TestOtherStorageCannotFetchKeys(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.dirConf.Storages["sd2"] = testenv.FreeAddr(t)
	w.dird.Stop(t, syscall.SIGTERM)
	w.startDirector()
	w.ok("label storage=sd1 pool=Offsite slots=1 barcodes encrypt")

	for _, c := range []struct{ name, want string }{{"sd2", "PermissionDenied"}, {"sd9", "Unavailable"}} {
		files := w.pki.Issue(t, c.name, tlsconf.RoleStorage)
		err := getVolumeKey(t, files, w.dirConf.Listen, "TW0001L6")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("storage %s fetching TW0001L6: err = %v, want %s", c.name, err, c.want)
		}
	}
	if err := getVolumeKey(t, w.sdConf.TLS, w.dirConf.Listen, "TW0001L6"); err != nil {
		t.Fatalf("sd1 itself cannot fetch its key: %v", err)
	}
}

// rekey under a new KEK; mounting still works; then with the old KEK
// removed from both sides it still works.
func TestRekeyAndRetireOldKEK(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.ok("label storage=sd1 pool=Offsite slots=1-2 barcodes encrypt")
	old := w.volumes()

	kek2 := filepath.Join(w.dir, "kek2.key")
	k2 := testenv.WriteKEK(t, kek2)
	// The director gets the new KEK (active) first: rekey must refuse,
	// storaged cannot unwrap under it yet.
	w.dirConf.KEKFiles, w.dirConf.ActiveKEK = []string{w.kekPaths[0], kek2}, kek2
	w.dird.Stop(t, syscall.SIGTERM)
	w.startDirector()
	out, errs, code := w.tapectl("rekey yes")
	if code == 0 || !strings.Contains(errs, "storage sd1 does not hold the active KEK "+k2.ID()) {
		t.Fatalf("rekey before storaged has the KEK: exit %d\n%s%s", code, out, errs)
	}
	w.sdConf.KEKFiles = []string{w.kekPaths[0], kek2}
	w.sd.Stop(t, syscall.SIGTERM)
	w.startStoraged()
	if out := w.ok("rekey"); !strings.Contains(out, "would rewrap 2 stored keys") {
		t.Fatalf("rekey dry run: %s", out)
	}
	if out := w.ok("rekey yes"); !strings.Contains(out, "rewrapped 2 stored keys under KEK "+k2.ID()) {
		t.Fatalf("rekey: %s", out)
	}
	for i, r := range w.volumes() {
		if r.KEKID != k2.ID() || r.Key != old[i].Key {
			t.Fatalf("after rekey %s has KEK %s fingerprint %s; want KEK %s and the unchanged fingerprint %s", r.Volume, r.KEKID, r.Key, k2.ID(), old[i].Key)
		}
	}
	w.ok("mount storage=sd1 slot=1 drive=0")
	w.ok("unmount storage=sd1 drive=0")

	// Retire the old KEK on both sides.
	w.dirConf.KEKFiles = []string{kek2}
	w.sdConf.KEKFiles = []string{kek2}
	w.dird.Stop(t, syscall.SIGTERM)
	w.sd.Stop(t, syscall.SIGTERM)
	w.startStoraged()
	w.startDirector()
	out = w.ok("mount storage=sd1 slot=2 drive=0")
	if !strings.Contains(out, "key "+old[1].Key+" loaded and verified") {
		t.Fatalf("mount after retiring the old KEK: %s", out)
	}
	w.ok("unmount storage=sd1 drive=0")
	if ev := w.ok("list keyevents volume=TW0002L6"); !strings.Contains(ev, "rekeyed") {
		t.Fatalf("no rekeyed event:\n%s", ev)
	}
}

// encrypt=rotate on a volume that holds no data: a new key, the label on
// tape rewritten, and mounting uses the new key. A volume with data is
// refused.
func TestRotateUnwrittenVolume(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.ok("label storage=sd1 pool=Offsite slots=3-4 barcodes encrypt")
	before := w.volumes()[0]
	out := w.ok("update volume=TW0003L6 encrypt=rotate")
	after := w.volumes()[0]
	if after.Key == before.Key || after.Status != "Append" || after.VerifiedAt == nil || !strings.Contains(out, "label rewritten") {
		t.Fatalf("rotate: %s\nbefore %+v\nafter %+v", out, before, after)
	}
	out = w.ok("mount storage=sd1 slot=3 drive=0")
	if !strings.Contains(out, "key "+after.Key+" loaded and verified") {
		t.Fatalf("mount after rotate: %s", out)
	}
	w.ok("unmount storage=sd1 drive=0")
	if ev := w.ok("list keyevents volume=TW0003L6"); !strings.Contains(ev, "rotated") {
		t.Fatalf("no rotated event:\n%s", ev)
	}
	// A volume holding data: refused, nothing changed.
	if _, err := pgtest.Connect(t, w.dsn).Exec(context.Background(), `UPDATE media SET bytes_written = 1048576, blocks_written = 1 WHERE volume_name = 'TW0004L6'`); err != nil {
		t.Fatal(err)
	}
	_, errs, code := w.tapectl("update volume=TW0004L6 encrypt=rotate")
	if code == 0 || !strings.Contains(errs, "TW0004L6") {
		t.Fatalf("rotate of a volume with data: exit %d, %s", code, errs)
	}
	if v := w.volumes()[1]; v.Key != w.volumes()[1].Key || v.Status != "Append" {
		t.Fatalf("refused rotate changed TW0004L6: %+v", v)
	}
}

// kill -9 of storaged in the middle of labelling: every volume that got
// encrypted blocks has its key in the catalog and in the crypto cache, and
// after a restart no drive holds a key.
func TestKillStoragedWhileLabelling(t *testing.T) {
	w := newWorld(t, worldOpts{slots: 12})
	cmd := exec.Command(bins["tapectl"], "-c", w.conPath, "label storage=sd1 pool=Offsite slots=1-12 barcodes encrypt")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	var once sync.Once
	killed := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := stderr.Read(buf)
			progress.Write(buf[:n])
			if strings.Count(progress.String(), "slot ") >= 2 {
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
		t.Fatalf("labelling made no progress:\n%s", progress.String())
	}
	cmd.Wait()
	if cmd.ProcessState.ExitCode() == 0 {
		t.Fatalf("tapectl succeeded although storaged died:\n%s", progress.String())
	}
	w.startStoraged()
	w.vtl.RequireNoKey(t)

	// Every fingerprint recorded on a cartridge (vtl keeps the U-KAD of
	// each encrypted block) belongs to a volume whose key the catalog and
	// the crypto cache both hold.
	cacheOut, err := exec.Command(bins["tapekey"], "cache", "dump", filepath.Join(w.sdConf.WorkDir, "storaged.cryptocache"), "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("tapekey cache dump: %v\n%s", err, cacheOut)
	}
	carts, _ := filepath.Glob(filepath.Join(w.dir, "lib", "*"))
	rows, err := pgtest.Connect(t, w.dsn).Query(context.Background(), `SELECT volume_name, key_fingerprint FROM media WHERE encrypted`)
	if err != nil {
		t.Fatal(err)
	}
	inCatalog := map[string]string{}
	for rows.Next() {
		var v, fp string
		rows.Scan(&v, &fp)
		inCatalog[fp] = v
	}
	checked := 0
	for _, c := range carts {
		data, err := os.ReadFile(c)
		if err != nil || !strings.Contains(filepath.Base(c), "TW") {
			continue
		}
		for fp, vol := range inCatalog {
			if strings.Contains(string(data), fp) {
				checked++
				if !strings.Contains(string(cacheOut), fp) {
					t.Errorf("cartridge %s holds blocks encrypted with key %s (volume %s), which the crypto cache lacks", filepath.Base(c), fp, vol)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatalf("no cartridge holds an encrypted block; the kill came too early to test anything:\n%s", progress.String())
	}
	// Nothing is lost: labelling the rest works (the interrupted volume is
	// retried with its committed key).
	out, errs, code := w.tapectl("label storage=sd1 pool=Offsite slots=1-12 barcodes encrypt")
	if !strings.Contains(out, "already in the catalog") && code != 0 {
		t.Fatalf("second label run: exit %d\n%s\n%s", code, out, errs)
	}
}

// PostgreSQL gone: commands fail with a clear message and nothing is
// half-written; back: everything works.
func TestCatalogUnreachable(t *testing.T) {
	w := newWorld(t, worldOpts{viaProxy: true})
	w.ok("label storage=sd1 pool=Offsite slots=1 barcodes encrypt")
	w.proxy.cut()
	for _, line := range []string{"list volumes", "label storage=sd1 pool=Offsite slots=2 barcodes encrypt"} {
		out, errs, code := w.tapectl(line)
		if code == 0 || !strings.Contains(errs+out, "catalog") {
			t.Fatalf("%q with the catalog down: exit %d\n%s%s", line, code, out, errs)
		}
	}
	w.vtl.RequireNoKey(t)
	w.proxy.restore()
	testenv.WaitFor(t, "the director to reach the catalog again", func() bool {
		_, _, code := w.tapectl("list volumes")
		return code == 0
	})
	if rows := w.volumes(); len(rows) != 1 {
		t.Fatalf("after the outage the catalog has %d volumes, want 1 (nothing half-written): %+v", len(rows), rows)
	}
	out := w.ok("label storage=sd1 pool=Offsite slots=2 barcodes encrypt")
	if !strings.Contains(out, "1 of 1 slots labelled") {
		t.Fatalf("slot 2 after the outage: %s", out)
	}
}

// Malformed console lines never crash the director.
func TestMalformedConsoleLines(t *testing.T) {
	w := newWorld(t, worldOpts{consoles: map[string]string{"admin": "keyadmin", "fuzzer": "keyadmin"}})
	lines := []string{"", "label", "label storage=", "label slots=5-1", "lable", "\"", "update volume=", "list volumes pool=\"unterminated",
		strings.Repeat("x", 9000), "label storage=sd1 pool=P slots=1-99999 barcodes", "rekey now", "export keys", "\x00\x01\x02", "mount storage=sd1 slot=-1"}
	files := w.pki.Issue(t, "fuzzer", tlsconf.RoleConsole)
	tc, err := tlsconf.Client(files, tlsconf.Peer{Role: tlsconf.RoleDirector, Name: "director"}, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(w.dirConf.Listen, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewConsoleClient(conn)
	for _, l := range lines {
		st, err := client.Run(context.Background(), &pb.RunRequest{Line: l})
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := st.Recv(); err != nil {
				if err != io.EOF && status.Code(err) != codes.InvalidArgument && status.Code(err) != codes.Internal {
					t.Logf("%q: %v", l, err)
				}
				break
			}
		}
	}
	if w.dird.Exited() {
		t.Fatalf("the director died:\n%s", w.dird.Output())
	}
	if out := w.ok("status director"); !strings.Contains(out, "director director") {
		t.Fatalf("status director: %s", out)
	}
}

// pgProxy forwards TCP connections to PostgreSQL's unix socket; cut drops
// every connection and refuses new ones, as a stopped server would.
type pgProxy struct {
	port   uint16
	target string
	mu     sync.Mutex
	lis    net.Listener
	conns  []net.Conn
}

func startProxy(t testing.TB, pc *pgx.ConnConfig) *pgProxy {
	t.Helper()
	target := fmt.Sprintf("%s/.s.PGSQL.%d", pc.Host, pc.Port)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{port: uint16(lis.Addr().(*net.TCPAddr).Port), target: target}
	p.serve(lis)
	t.Cleanup(p.cut)
	return p
}

func (p *pgProxy) serve(lis net.Listener) {
	p.mu.Lock()
	p.lis = lis
	p.mu.Unlock()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("unix", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
}

func (p *pgProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lis != nil {
		p.lis.Close()
		p.lis = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *pgProxy) restore() {
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.port))
	if err != nil {
		panic(err)
	}
	p.serve(lis)
}

// getVolumeKey calls the director's GetVolumeKey as the holder of files.
func getVolumeKey(t testing.TB, files tlsconf.Files, addr, volume string) error {
	t.Helper()
	tc, err := tlsconf.Client(files, tlsconf.Peer{Role: tlsconf.RoleDirector, Name: "director"}, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pb.NewDirectorClient(conn).GetVolumeKey(ctx, &pb.GetVolumeKeyRequest{Volume: volume})
	if err != nil {
		return fmt.Errorf("%s: %s", status.Code(err), status.Convert(err).Message())
	}
	return nil
}
