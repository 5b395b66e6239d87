package core

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/director/catalog"
	"github.com/tapeward/tapeward/director/console"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// testDirector is a director on a fresh catalog (real PostgreSQL) with
// the KEK files given (the first active) and one storage sd1 that is not
// running.
func testDirector(t *testing.T, kekPaths ...string) (*Director, *testenv.LogBuffer, string) { // director, log, DSN
	t.Helper()
	dir := t.TempDir()
	dsn := pgtest.NewDB(t)
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pki := testenv.NewPKI(t, dir)
	dc := testenv.Director{Name: "director", Listen: testenv.FreeAddr(t), TLS: pki.Issue(t, "director", tlsconf.RoleDirector),
		DBHost: pc.Host, DBPort: pc.Port, DBName: pc.Database, DBUser: pc.User,
		KEKFiles: kekPaths, Storages: map[string]string{"sd1": testenv.FreeAddr(t)}}
	dcPath := filepath.Join(dir, "director.toml")
	dc.Write(t, dcPath)
	cfg, err := configs.LoadDirector(dcPath)
	if err != nil {
		t.Fatal(err)
	}
	logBuf := &testenv.LogBuffer{}
	d, err := New(context.Background(), Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if _, err := d.store.EnsurePool(context.Background(), catalog.PoolSpec{Name: "Offsite", Encrypt: true, Storage: "sd1"}); err != nil {
		t.Fatal(err)
	}
	return d, logBuf, dsn
}

func noProgress(string, ...any) {}

// storageCtx is a call from storage name, as tlsconf.PeerOf sees one.
func storageCtx(name string) context.Context {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: name, OrganizationalUnit: []string{tlsconf.RoleStorage}}}
	return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}}})
}

func TestCleanText(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"drive0; key-check block read back", 100, "drive0; key-check block read back"},
		{"evil\x1b[2J\x1b]0;owned\x07", 100, `evil\x1b[2J\x1b]0;owned\a`},
		{"line1\nline2\r\tx", 100, `line1\nline2\r\tx`},
		{"caf\xe9", 100, `caf\xe9`},
		{"\u202eRTL override", 100, `\u202eRTL override`},
		{"ünïcode ok", 100, "ünïcode ok"},
		{strings.Repeat("a", 20), 10, strings.Repeat("a", 10) + "…"},
		{strings.Repeat("\n", 20), 10, strings.Repeat(`\n`, 5) + "…"},
		{"ééééé", 5, "éé…"},
	} {
		if got := cleanText(c.in, c.max); got != c.want {
			t.Errorf("cleanText(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

// TestStorageErr: storaged's codes pass through (it sends FailedPrecondition
// for library states, Aborted for busy); the hint depends on the code.
func TestStorageErr(t *testing.T) {
	for _, c := range []struct {
		code codes.Code
		msg  string
		hint string
	}{
		{codes.FailedPrecondition, "changer changer0: slot 4 is empty", ""},
		{codes.NotFound, "changer changer0 has slots 1-8; there is no slot 9", ""},
		{codes.Aborted, "every drive of changer changer0 busy (drive0: busy)", "it is running and busy"},
		{codes.Unavailable, "connection refused", "is storaged running"},
		{codes.Internal, "SCSI: MEDIUM ERROR 03/11/00", ""},
	} {
		err := storageErr("sd1", "mount", status.Error(c.code, c.msg))
		msg := status.Convert(err).Message()
		if status.Code(err) != c.code || !strings.Contains(msg, c.msg) || !strings.HasPrefix(msg, "storage sd1: mount: ") {
			t.Errorf("storageErr(%s, %q) = %v, want code %s and the message", c.code, c.msg, err, c.code)
		}
		if c.hint != "" && !strings.Contains(msg, c.hint) {
			t.Errorf("storageErr(%s, %q) = %q, want the hint %q", c.code, c.msg, msg, c.hint)
		}
		if c.code != codes.Unavailable && strings.Contains(msg, "is storaged running") {
			t.Errorf("storageErr(%s, %q) = %q asks whether storaged runs", c.code, c.msg, msg)
		}
	}
}

// A failed label row never says the volume is encrypted.
func TestLabelRowEncryptedColumn(t *testing.T) {
	for _, c := range []struct {
		r         SlotResult
		requested bool
		want      string
	}{
		{SlotResult{OK: true, Verified: true}, true, "yes, verified"},
		{SlotResult{OK: true}, false, "no"},
		{SlotResult{Error: "the slot is empty"}, false, "no"},
		{SlotResult{Error: "the slot is empty"}, true, "no"},
		{SlotResult{Error: "drive refused", KeyKept: true}, true, "no: key kept, not verified"},
		{SlotResult{NotAttempted: true}, true, "-"},
	} {
		if got := encryptedCell(c.r, c.requested); got != c.want {
			t.Errorf("encryptedCell(%+v, requested %v) = %q, want %q", c.r, c.requested, got, c.want)
		}
	}
}

func TestRelabelledText(t *testing.T) {
	if got := relabelledText(catalog.Media{Encrypted: false}); strings.Contains(got, "key verified") || !strings.Contains(got, "without a key") {
		t.Errorf("encrypt=no: %q", got)
	}
	if got := relabelledText(catalog.Media{Encrypted: true}); !strings.Contains(got, "the new key verified on tape") {
		t.Errorf("encrypt=rotate: %q", got)
	}
}

func TestCheckSlots(t *testing.T) {
	ch := &pb.ChangerInventory{Name: "changer0", Slots: make([]*pb.Slot, 8)}
	if err := checkSlots("sd1", ch, []int{1, 5, 8}); err != nil {
		t.Fatalf("slots 1,5,8 of 8: %v", err)
	}
	err := checkSlots("sd1", ch, []int{7, 8, 9, 10, 11, 12})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "changer changer0 of storage sd1 has slots 1-8; slot 9-12 does not exist: nothing was labelled") {
		t.Fatalf("slots 7-12 of 8: %v", err)
	}
}

// A bad [tls] path is reported as [tls], not as the first [[storage]].
func TestNewNamesTLSProblem(t *testing.T) {
	dir := t.TempDir()
	kek := filepath.Join(dir, "kek.key")
	testenv.WriteKEK(t, kek)
	pki := testenv.NewPKI(t, dir)
	files := pki.Issue(t, "director", tlsconf.RoleDirector)
	files.Cert = filepath.Join(dir, "missing.crt")
	dc := testenv.Director{Name: "director", Listen: "127.0.0.1:9101", TLS: files, DBHost: "/nonexistent", DBPort: 5432, DBName: "x", DBUser: "x",
		KEKFiles: []string{kek}, Storages: map[string]string{"sd1": "127.0.0.1:9103"}}
	p := filepath.Join(dir, "director.toml")
	dc.Write(t, p)
	cfg, err := configs.LoadDirector(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), Options{Config: cfg})
	if err == nil || !strings.Contains(err.Error(), p+": [tls]: ") || !strings.Contains(err.Error(), "missing.crt") || strings.Contains(err.Error(), "[[storage]]") {
		t.Fatalf("New with a missing [tls] cert: %v; want a [tls] error naming the file", err)
	}
}

// A storage's report: control characters are recorded as visible escapes;
// a fingerprint that is neither the volume's current key nor one of its
// history is refused, logged, and nothing is recorded.
func TestReportVolumeIsChecked(t *testing.T) {
	dir := t.TempDir()
	kek := filepath.Join(dir, "kek.key")
	testenv.WriteKEK(t, kek)
	d, log, dsn := testDirector(t, kek)
	ctx := context.Background()
	sk, err := d.ring.WrapNew()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.store.CreateLabeling(ctx, catalog.MediaNew{Volume: "TW0001L6", Pool: "Offsite", Storage: "sd1", Slot: 1, Encrypted: true, Key: &sk, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	now := d.clock()
	if err := d.store.MarkLabeled(ctx, "TW0001L6", now, &now); err != nil {
		t.Fatal(err)
	}
	svc := &StorageService{D: d}
	count := func() int {
		evs, err := d.store.ListKeyEvents(ctx, catalog.KeyEventFilter{Volume: "TW0001L6"})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	before := count()
	_, err = svc.ReportVolume(storageCtx("sd1"), &pb.ReportVolumeRequest{Volume: "TW0001L6", Event: "loaded", Drive: "drive0",
		KeyFingerprint: "0123456789abcdef", KekId: sk.KEKID, Detail: "forged"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "0123456789abcdef is neither its current key nor one of its history") {
		t.Fatalf("forged fingerprint: %v", err)
	}
	if n := count(); n != before {
		t.Fatalf("a forged report was recorded (%d events, had %d)", n, before)
	}
	if !strings.Contains(log.String(), "refused a volume report naming a key the volume never had") {
		t.Fatalf("the refusal is not logged:\n%s", log.String())
	}

	_, err = svc.ReportVolume(storageCtx("sd1"), &pb.ReportVolumeRequest{Volume: "TW0001L6", Event: "cleared", Drive: "drive0\x1b[2J",
		KeyFingerprint: sk.Fingerprint, KekId: sk.KEKID, Detail: "unload\nFAKE 2026-01-01 TW0001L6 exported admin"})
	if err != nil {
		t.Fatalf("a report with the current fingerprint: %v", err)
	}
	out, err := d.listKeyEvents(ctx, consoleCmd(t, "list keyevents volume=TW0001L6"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out.Text, "\x1b\r") || strings.Count(out.Text, "\n") != strings.Count(out.Text, "TW0001L6")+0 ||
		!strings.Contains(out.Text, `drive drive0\x1b[2J; fingerprint `+sk.Fingerprint) || !strings.Contains(out.Text, `unload\nFAKE`) {
		t.Fatalf("list keyevents:\n%s", out.Text)
	}

	// A key of the volume's history is accepted (a report about a key that
	// was rotated away): the old key moved to media_keys, a new current one.
	nk, err := d.ring.WrapNew()
	if err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Connect(t, dsn)
	if _, err := conn.Exec(ctx, `INSERT INTO media_keys (media_id, volume_name, key_string, key_scheme, kek_id, key_fingerprint, valid_to, reason)
		SELECT id, volume_name, key_string, key_scheme, kek_id, key_fingerprint, now(), 'rotated' FROM media WHERE volume_name = 'TW0001L6'`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE media SET key_string = $1, key_fingerprint = $2 WHERE volume_name = 'TW0001L6'`, nk.Value, nk.Fingerprint); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ReportVolume(storageCtx("sd1"), &pb.ReportVolumeRequest{Volume: "TW0001L6", Event: "cleared", KeyFingerprint: sk.Fingerprint, KekId: sk.KEKID}); err != nil {
		t.Fatalf("a report naming a history key: %v", err)
	}
}

// rekey: the dry run unwraps every key and lists every one that fails
// (volume, KEK id, fingerprint); the real run refuses naming them all and
// changes nothing.
func TestRekeyNamesEveryBadKey(t *testing.T) {
	dir := t.TempDir()
	k1Path, k2Path := filepath.Join(dir, "kek1.key"), filepath.Join(dir, "kek2.key")
	k1 := testenv.WriteKEK(t, k1Path)
	testenv.WriteKEK(t, k2Path)
	d, _, dsn := testDirector(t, k2Path, k1Path) // kek2 active
	ctx := context.Background()
	old, _ := keys.NewKeyring(k1)
	var fps []string
	for i, vol := range []string{"TW0001L6", "TW0002L6", "TW0003L6"} {
		sk, err := old.WrapNew()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.store.CreateLabeling(ctx, catalog.MediaNew{Volume: vol, Pool: "Offsite", Storage: "sd1", Slot: i + 1, Encrypted: true, Key: &sk, Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		fps = append(fps, sk.Fingerprint)
	}
	// Two keys are corrupt (a bad restore, a bad import): stored strings
	// that do not unwrap under the KEK they name. The rekey can rewrap
	// neither.
	k3, _ := keys.GenerateKEK()
	other, _ := keys.NewKeyring(k3)
	conn := pgtest.Connect(t, dsn)
	for _, vol := range []string{"TW0001L6", "TW0003L6"} {
		bad, _ := other.WrapNew()
		if _, err := conn.Exec(ctx, `UPDATE media SET key_string = $2 WHERE volume_name = $1`, vol, bad.Value); err != nil {
			t.Fatal(err)
		}
	}
	out, err := d.rekey(ctx, "test", false, noProgress)
	if err != nil {
		t.Fatalf("rekey dry run: %v", err)
	}
	for _, i := range []int{0, 2} {
		line := ""
		for _, l := range strings.Split(out.Text, "\n") {
			if strings.HasPrefix(l, fmt.Sprintf("TW000%dL6", i+1)) {
				line = l
			}
		}
		if !strings.Contains(line, k1.ID()) || !strings.Contains(line, fps[i]) || !strings.Contains(line, "current") {
			t.Errorf("dry run: no line for TW000%dL6 with KEK %s and fingerprint %s:\n%s", i+1, k1.ID(), fps[i], out.Text)
		}
	}
	if strings.Contains(out.Text, "TW0002L6") || !strings.Contains(out.Text, "2 stored keys cannot be unwrapped") || !out.Partial {
		t.Errorf("dry run:\n%s", out.Text)
	}
	_, err = d.rekey(ctx, "test", true, noProgress)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "rekey refused, nothing was changed: 2 stored keys") ||
		!strings.Contains(err.Error(), fps[0]) || !strings.Contains(err.Error(), fps[2]) {
		t.Fatalf("rekey yes: %v", err)
	}
	var rewrapped int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM media WHERE kek_id <> $1`, k1.ID()).Scan(&rewrapped); err != nil || rewrapped != 0 {
		t.Fatalf("a refused rekey rewrapped %d keys (%v)", rewrapped, err)
	}
	// The output names keys by fingerprint only.
	for _, s := range []string{out.Text, err.Error()} {
		if strings.Contains(s, "key_string") {
			t.Fatal("stored key in output")
		}
	}
}

func consoleCmd(t *testing.T, line string) console.Command {
	t.Helper()
	c, err := console.Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The catalog down: status director still shows the KEKs and the
// storages, and says "catalog: DOWN (reason)".
func TestStatusDirectorCatalogDown(t *testing.T) {
	dir := t.TempDir()
	kek := filepath.Join(dir, "kek.key")
	k := testenv.WriteKEK(t, kek)
	d, _, _ := testDirector(t, kek)
	ctx := context.Background()
	out, err := d.statusDirector(ctx)
	if err != nil || !strings.Contains(out.Text, "volumes: 0") || strings.Contains(out.Text, "DOWN") || out.Partial {
		t.Fatalf("status director with the catalog up: %v\n%v", err, out)
	}
	d.store.Close() // every catalog query fails from now on
	out, err = d.statusDirector(ctx)
	if err != nil {
		t.Fatalf("status director with the catalog down failed whole: %v", err)
	}
	for _, want := range []string{"director director", "KEKs: " + k.ID() + " (active " + k.ID() + ")", "catalog: DOWN (", "storage sd1: unreachable"} {
		if !strings.Contains(out.Text, want) {
			t.Errorf("status director with the catalog down lacks %q:\n%s", want, out.Text)
		}
	}
	if js := out.JSON.(DirectorStatus); !strings.HasPrefix(js.Catalog, "DOWN (") || !out.Partial {
		t.Errorf("JSON catalog = %q, partial %v", js.Catalog, out.Partial)
	}
}
