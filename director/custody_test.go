package main

// Key custody end to end (issue 8): real PostgreSQL, vtl, storaged and
// director processes, driven with tapectl as an operator would. A key
// change never races a write session, a lost "written" report does not make
// a volume look empty, labels that did not finish do not stay in Labeling,
// and a forged label is refused at mount.

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/storaged/label"
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/dial"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// storageClient calls storaged as the director does (its certificate).
func (w *world) storageClient() pb.StorageClient {
	w.t.Helper()
	tc, err := tlsconf.Client(w.dirConf.TLS, tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}, "sd1")
	if err != nil {
		w.t.Fatal(err)
	}
	conn, err := grpc.NewClient(w.sdConf.Listen, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { conn.Close() })
	return pb.NewStorageClient(conn)
}

// query runs f on a connection that is closed right after (tests poll
// with it; pgtest.Connect would keep one connection per call until the
// test ends).
func (w *world) query(f func(*pgx.Conn) error) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.dsn)
	if err != nil {
		w.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := f(conn); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) exec(q string, args ...any) {
	w.t.Helper()
	w.query(func(c *pgx.Conn) error { _, err := c.Exec(context.Background(), q, args...); return err })
}

// loseReports makes the catalog forget that volume holds data, as if every
// "written" report was lost and BeginWrite's record never made it.
func (w *world) loseReports(volume string) {
	w.t.Helper()
	w.exec(`UPDATE media SET bytes_written = 0, blocks_written = 0, first_written = NULL, last_written = NULL, data_since = NULL
		WHERE volume_name = $1`, volume)
}

type keyState struct {
	fp, status string
	dataSince  *time.Time
}

func (w *world) keyState(volume string) keyState {
	w.t.Helper()
	var k keyState
	var fp *string
	w.query(func(c *pgx.Conn) error {
		return c.QueryRow(context.Background(), `SELECT key_fingerprint, status, data_since FROM media WHERE volume_name = $1`, volume).Scan(&fp, &k.status, &k.dataSince)
	})
	if fp != nil {
		k.fp = *fp
	}
	return k
}

// The audit's race: "update volume=V encrypt=rotate" while a write session
// on V is open, then with the session's reports lost.
func TestRotateRacesAWriteSession(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.ok("label storage=sd1 pool=Offsite slots=1 barcodes encrypt")
	orig := w.keyState("TW0001L6")
	w.ok("mount storage=sd1 slot=1 drive=0")

	// A session is open and has sent data: BeginWrite committed data_since
	// before the first block.
	sd := w.storageClient()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := sd.WriteData(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Open{Open: &pb.WriteOpen{Drive: "drive0"}}}); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := st.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Data{Data: data[:1<<20]}}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the director to record that TW0001L6 holds data", func() bool { return w.keyState("TW0001L6").dataSince != nil })
	// Even with data_since lost, storaged says the volume is being written.
	w.loseReports("TW0001L6")
	_, errs, code := w.tapectl("update volume=TW0001L6 encrypt=rotate")
	if code == 0 || !strings.Contains(errs, "a write session is open") || !strings.Contains(errs, "drive0") {
		t.Fatalf("rotate during a write session: exit %d, %s", code, errs)
	}
	if k := w.keyState("TW0001L6"); k.fp != orig.fp {
		t.Fatalf("the key changed during a write session: %s -> %s", orig.fp, k.fp)
	}
	for off := 1 << 20; off < len(data); off += 1 << 20 {
		if err := st.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Data{Data: data[off : off+1<<20]}}); err != nil {
			t.Fatal(err)
		}
	}
	wr, err := st.CloseAndRecv()
	if err != nil || !wr.EncryptionVerified || wr.Bytes != uint64(len(data)) {
		t.Fatalf("the session: %v, %v", wr, err)
	}

	// Report lost: the catalog's counters and data_since say "empty", but
	// storaged has the volume mounted and its end of data says otherwise.
	w.loseReports("TW0001L6")
	_, errs, code = w.tapectl("update volume=TW0001L6 encrypt=rotate")
	if code == 0 || !strings.Contains(errs, "mounted in drive drive0") || !strings.Contains(errs, "it holds data (mounted in drive0; 1 tape files") {
		t.Fatalf("rotate of a mounted volume whose reports were lost: exit %d, %s", code, errs)
	}
	if k := w.keyState("TW0001L6"); k.fp != orig.fp || k.dataSince == nil {
		t.Fatalf("after the refusal: %+v, want key %s and data_since recorded again", k, orig.fp)
	}

	// Unmounted, reports lost again: the catalog sees nothing, storaged
	// cannot tell without the tape; the relabel's end-of-data check finds
	// the data and the old key is restored. No key is lost.
	w.ok("unmount storage=sd1 drive=0")
	w.loseReports("TW0001L6")
	out, errs, code := w.tapectl("update volume=TW0001L6 encrypt=rotate")
	if code == 0 || !strings.Contains(errs, "the key change of volume TW0001L6 is undone") || !strings.Contains(errs, "key "+orig.fp+" is the current key again") ||
		!strings.Contains(errs, "holds data (1 tape files") {
		t.Fatalf("rotate of an unmounted volume with data on tape: exit %d\n%s%s\n%s", code, out, errs, w.dird.Output())
	}
	k := w.keyState("TW0001L6")
	if k.fp != orig.fp || k.dataSince == nil || k.status != "Append" {
		t.Fatalf("after the revert: %+v, want key %s, data_since set, Append", k, orig.fp)
	}
	var reverted string
	if err := w.sql(`SELECT key_fingerprint FROM media_keys WHERE volume_name = 'TW0001L6' AND reason = 'reverted'`).Scan(&reverted); err != nil || reverted == orig.fp {
		t.Fatalf("the key of the undone rotation is not in the history: %q, %v", reverted, err)
	}
	ev := w.ok("list keyevents volume=TW0001L6")
	for _, want := range []string{"superseded", "restored", orig.fp + " (KEK", reverted} {
		if !strings.Contains(ev, want) {
			t.Errorf("key events lack %q:\n%s", want, ev)
		}
	}
	// The volume works on with its key: mount, append.
	out = w.ok("mount storage=sd1 slot=1 drive=0")
	if !strings.Contains(out, "key "+orig.fp+" loaded and verified") {
		t.Fatalf("mount after the revert: %s", out)
	}
	st, err = sd.WriteData(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Open{Open: &pb.WriteOpen{Drive: "drive0"}}})
	st.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Data{Data: data[:4096]}})
	if wr, err := st.CloseAndRecv(); err != nil || wr.TapeFile != 3 {
		t.Fatalf("append after the revert: %v, %v", wr, err)
	}
	w.ok("unmount storage=sd1 drive=0")
	w.vtl.RequireNoKey(t)

	// With data_since recorded, the catalog refuses on its own.
	_, errs, code = w.tapectl("update volume=TW0001L6 encrypt=no")
	if code == 0 || !strings.Contains(errs, "holds data") {
		t.Fatalf("encrypt=no of a volume with data: exit %d, %s", code, errs)
	}
}

// The owning storage cannot be asked: no key change.
func TestRotateRefusedWhenStorageUnreachable(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.ok("label storage=sd1 pool=Offsite slots=2 barcodes encrypt")
	orig := w.keyState("TW0002L6")
	w.sd.Stop(t, syscall.SIGTERM)
	_, errs, code := w.tapectl("update volume=TW0002L6 encrypt=rotate")
	if code == 0 || !strings.Contains(errs, "storage sd1") || !strings.Contains(errs, "the key is not changed") {
		t.Fatalf("rotate with storaged down: exit %d, %s", code, errs)
	}
	if k := w.keyState("TW0002L6"); k.fp != orig.fp {
		t.Fatal("the key changed")
	}
	w.startStoraged()
	out := w.ok("update volume=TW0002L6 encrypt=rotate")
	k := w.keyState("TW0002L6")
	if k.fp == orig.fp || !strings.Contains(out, "old key "+orig.fp+" is kept in the volume's key history") {
		t.Fatalf("rotate with storaged back: %s", out)
	}
	var n int
	if err := w.sql(`SELECT count(*) FROM media_keys WHERE volume_name = 'TW0002L6' AND key_fingerprint = $1 AND reason = 'rotated'`, orig.fp).Scan(&n); err != nil || n != 1 {
		t.Fatalf("history rows for the old key: %d, %v", n, err)
	}
}

// A Labeling row left by a director that died: at start-up it becomes
// Error with the reason; labelling the slot again uses the committed key
// and succeeds although the label and the key-check block are on the tape.
func TestInterruptedLabelRetriesWithTheSameKey(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.ok("label storage=sd1 pool=Offsite slots=1 barcodes encrypt")
	orig := w.keyState("TW0001L6")
	// The director was killed after storaged wrote the label and the
	// key-check block, before it committed "Append".
	w.exec(`UPDATE media SET status = 'Labeling', label_time = NULL, encryption_verified_at = NULL WHERE volume_name = 'TW0001L6'`)
	w.dird.Kill9(t)
	w.startDirector()
	var reason string
	if err := w.sql(`SELECT status || ': ' || error_reason FROM media WHERE volume_name = 'TW0001L6'`).Scan(&reason); err != nil ||
		reason != "Error: interrupted: labelling did not finish; label the slot again to retry with the same key" {
		t.Fatalf("after the restart: %q, %v", reason, err)
	}
	if ev := w.ok("list keyevents volume=TW0001L6"); !strings.Contains(ev, "interrupted") || !strings.Contains(ev, orig.fp) {
		t.Fatalf("no interrupted event:\n%s", ev)
	}
	out := w.ok("label storage=sd1 pool=Offsite slots=1 barcodes encrypt")
	if !strings.Contains(out, "1 of 1 slots labelled") || !strings.Contains(out, orig.fp) {
		t.Fatalf("label again: %s", out)
	}
	if k := w.keyState("TW0001L6"); k.fp != orig.fp || k.status != "Append" {
		t.Fatalf("after the retry: %+v, want key %s Append", k, orig.fp)
	}
	// The same, but the director kept running (its catalog commit failed,
	// or the console went away): labelling again retries at once.
	w.exec(`UPDATE media SET status = 'Labeling', label_time = NULL, encryption_verified_at = NULL WHERE volume_name = 'TW0001L6'`)
	out = w.ok("label storage=sd1 pool=Offsite slots=1 barcodes encrypt")
	if !strings.Contains(out, "1 of 1 slots labelled") || !strings.Contains(out, orig.fp) {
		t.Fatalf("label again with the director running: %s", out)
	}
	if k := w.keyState("TW0001L6"); k.fp != orig.fp || k.status != "Append" {
		t.Fatalf("after the second retry: %+v, want key %s Append", k, orig.fp)
	}
	if ev := w.ok("list keyevents volume=TW0001L6"); strings.Count(ev, "interrupted") != 2 {
		t.Fatalf("want two interrupted events:\n%s", ev)
	}
	if out := w.ok("mount storage=sd1 slot=1 drive=0"); !strings.Contains(out, "key "+orig.fp+" loaded and verified") {
		t.Fatalf("mount: %s", out)
	}
	w.ok("unmount storage=sd1 drive=0")

	// kill -9 of the director in the middle of a multi-slot label: no row
	// stays in Labeling, and labelling again completes with every key that
	// was committed.
	cmd := exec.Command(bins["tapectl"], "-c", w.conPath, "label storage=sd1 pool=Offsite slots=2-7 barcodes encrypt")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var progress strings.Builder
	for !strings.Contains(progress.String(), "slot ") {
		n, err := stderr.Read(buf)
		progress.Write(buf[:n])
		if err != nil {
			t.Fatalf("label made no progress: %v\n%s", err, progress.String())
		}
	}
	w.dird.Kill9(t)
	cmd.Wait()
	w.startDirector()
	var labeling int
	if err := w.sql(`SELECT count(*) FROM media WHERE status = 'Labeling'`).Scan(&labeling); err != nil || labeling != 0 {
		t.Fatalf("%d rows in Labeling after the restart (%v)", labeling, err)
	}
	before := map[string]string{}
	rows, err := pgtest.Connect(t, w.dsn).Query(context.Background(), `SELECT volume_name, key_fingerprint FROM media`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v, fp string
		rows.Scan(&v, &fp)
		before[v] = fp
	}
	out, errs, code := w.tapectl("label storage=sd1 pool=Offsite slots=2-7 barcodes encrypt")
	for _, v := range w.volumes() {
		if v.Status != "Append" {
			t.Errorf("%s is %s after labelling again (exit %d)\n%s%s", v.Volume, v.Status, code, out, errs)
		}
		if fp, ok := before[v.Volume]; ok && fp != v.Key {
			t.Errorf("%s: key %s committed before the kill, %s after", v.Volume, fp, v.Key)
		}
	}
	if n := len(w.volumes()); n != 7 {
		t.Fatalf("%d volumes, want 7", n)
	}
	w.vtl.RequireNoKey(t)
}

// forgeLabel writes lbl over the label of the cartridge in slot, through
// vtl drive n (storaged/label's writer, as anyone with access to the
// library could), and puts the cartridge back. storaged holds its drives
// exclusively: it is stopped meanwhile and started again.
func (w *world) forgeLabel(slot, n int, lbl label.Label) {
	w.t.Helper()
	w.sd.Stop(w.t, syscall.SIGTERM)
	defer w.startStoraged()
	if out, err := exec.Command(bins["vtl"], "load", "--socket", w.vtl.Socket, "--slot", fmt.Sprint(slot), "--drive", fmt.Sprint(n)).CombinedOutput(); err != nil {
		w.t.Fatalf("vtl load: %v\n%s", err, out)
	}
	dev, err := dial.OpenDevice(fmt.Sprintf("vtl:%s#drive%d", w.vtl.Socket, n), scsi.TypeTape)
	if err != nil {
		w.t.Fatal(err)
	}
	testenv.WaitFor(w.t, "the forger's drive ready", func() bool { return dev.TestUnitReady() == nil })
	if err := label.Write(dev, lbl); err != nil {
		w.t.Fatal(err)
	}
	dev.Close()
	if out, err := exec.Command(bins["vtl"], "unload", "--socket", w.vtl.Socket, "--drive", fmt.Sprint(n)).CombinedOutput(); err != nil {
		w.t.Fatalf("vtl unload: %v\n%s", err, out)
	}
}

// A forged label saying encrypted:false on an encrypted volume's cartridge
// is refused at mount, naming both sides; a "refused" key event records
// it; nothing is written.
func TestForgedClearLabelRefusedAtMount(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.ok("label storage=sd1 pool=Offsite slots=2 barcodes encrypt")
	orig := w.keyState("TW0002L6")
	w.forgeLabel(2, 1, label.Label{Volume: "TW0002L6", Pool: "Offsite", MediaType: "LTO-6", LabelTime: time.Now().UTC(), BlockSize: 1 << 20, Storage: "sd1"})
	_, errs, code := w.tapectl("mount storage=sd1 slot=2 drive=0")
	if code == 0 || !strings.Contains(errs, "encrypted: the label says no, the catalog says yes (key "+orig.fp) {
		t.Fatalf("mount of a forged clear label: exit %d, %s", code, errs)
	}
	if ev := w.ok("list keyevents volume=TW0002L6"); !strings.Contains(ev, "refused") || !strings.Contains(ev, "the label says no") {
		t.Fatalf("no refused key event:\n%s", ev)
	}
	w.vtl.RequireNoKey(t)
	// Nothing mounted, so nothing can be written; the catalog did not move.
	wr, err := w.storageClient().WriteData(context.Background())
	if err == nil {
		wr.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Open{Open: &pb.WriteOpen{Drive: "drive0"}}})
		_, err = wr.CloseAndRecv()
	}
	if err == nil || !strings.Contains(err.Error(), "no mounted volume") {
		t.Fatalf("a write after the refused mount: %v", err)
	}
	if k := w.keyState("TW0002L6"); k.fp != orig.fp || k.dataSince != nil {
		t.Fatalf("after the refused mount: %+v", k)
	}
	if !strings.Contains(w.dird.Output(), "refused a label that does not match the catalog") {
		t.Fatalf("the director did not log the refusal:\n%s", w.dird.Output())
	}
}
