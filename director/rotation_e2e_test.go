package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/storaged/cryptocache"
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/dial"
	"github.com/tapeward/tapeward/storaged/tapeio"
	"github.com/tapeward/tapeward/tools/lib/keys"
	"github.com/tapeward/tapeward/tools/lib/pgtest"
	"github.com/tapeward/tapeward/tools/lib/testenv"
)

// writeData writes data as one session to the volume mounted in drive,
// calling storaged as the director does, and returns where it starts.
func (w *world) writeData(drive string, data []byte) *pb.BlockAddress {
	w.t.Helper()
	tc, err := tlsconf.Client(w.dirConf.TLS, tlsconf.Peer{Role: tlsconf.RoleStorage, Name: "sd1"}, "sd1")
	if err != nil {
		w.t.Fatal(err)
	}
	conn, err := grpc.NewClient(w.sdConf.Listen, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		w.t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := pb.NewStorageClient(conn).WriteData(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := st.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Open{Open: &pb.WriteOpen{Drive: drive, Marks: []uint64{0}}}}); err != nil {
		w.t.Fatal(err)
	}
	for off := 0; off < len(data); off += 1 << 20 {
		if err := st.Send(&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Data{Data: data[off:min(off+1<<20, len(data))]}}); err != nil {
			break // the server ended the stream; CloseAndRecv has its answer
		}
	}
	rep, err := st.CloseAndRecv()
	if err != nil {
		w.t.Fatalf("writing data: %v", err)
	}
	if !rep.EncryptionVerified || len(rep.Marks) != 1 || rep.Bytes != uint64(len(data)) {
		w.t.Fatalf("write reply = %v", rep)
	}
	return rep.Marks[0]
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// verdict runs status kek=id and returns its output, checking that it
// ends with exactly one verdict line.
func (w *world) verdict(id string) string {
	w.t.Helper()
	out := w.ok("status kek=" + id)
	n := strings.Count(out, "nothing depends on KEK ") + strings.Count(out, " is still needed: ")
	last := lastLine(out)
	if n != 1 || !(strings.HasPrefix(last, "nothing depends on KEK "+id+": ") || strings.HasPrefix(last, "KEK "+id+" is still needed: ")) {
		w.t.Fatalf("status kek=%s does not end with exactly one verdict line:\n%s", id, out)
	}
	return out
}

// The KEK rotation procedure of the README, end to end: a new KEK in both
// configurations, rekey while storaged is down (the pushes stay pending and
// are reported), storaged back (its hello brings its crypto cache up to
// date), status kek=OLD says nothing depends on the old KEK, the old KEK
// removed from both configurations, tapekey cache verify with only the new
// KEK passes, and a DR read of a volume with data works with only the
// crypto cache and the new KEK.
func TestKEKRotationProcedure(t *testing.T) {
	w := newWorld(t, worldOpts{slots: 4})
	w.ok("label storage=sd1 pool=Offsite slots=1-3 barcodes encrypt")
	vols := w.volumes()
	kek1Path := w.kekPaths[0]
	kek1, err := keys.LoadKEKFile(kek1Path, keys.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k1 := kek1.ID()

	// Data on TW0001L6.
	data := make([]byte, 3<<20+4321)
	rand.Read(data)
	w.ok("mount storage=sd1 slot=1 drive=0")
	start := w.writeData("drive0", data)
	w.ok("unmount storage=sd1 drive=0")

	// TW0001L6 also had a key before its current one (rotated while it
	// held data), wrapped under the old KEK: the catalog's key history.
	oldRing, _ := keys.NewKeyring(kek1)
	hist, err := oldRing.WrapNew()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgtest.Connect(t, w.dsn).Exec(context.Background(), `
		INSERT INTO media_keys (media_id, volume_name, key_string, key_scheme, kek_id, key_fingerprint, valid_to, reason, had_data)
		SELECT id, volume_name, $2, 'v1', $3, $4, now(), 'rotated', true FROM media WHERE volume_name = $1`,
		"TW0001L6", hist.Value, hist.KEKID, hist.Fingerprint); err != nil {
		t.Fatal(err)
	}

	// 1. The new KEK: active in director.toml, in storaged.toml too;
	// restart both.
	kek2Path := filepath.Join(w.dir, "kek2.key")
	k2 := testenv.WriteKEK(t, kek2Path).ID()
	w.kekPaths = append(w.kekPaths, kek2Path) // grepped for at cleanup
	w.dirConf.KEKFiles, w.dirConf.ActiveKEK = []string{kek1Path, kek2Path}, kek2Path
	w.sdConf.KEKFiles = []string{kek1Path, kek2Path}
	w.dird.Stop(t, syscall.SIGTERM)
	w.sd.Stop(t, syscall.SIGTERM)
	w.startStoraged()
	w.startDirector()
	if out := w.verdict(k1); !strings.Contains(lastLine(out), "KEK "+k1+" is still needed: 4 catalog keys are wrapped only under it") {
		t.Fatalf("status kek=OLD before rekey:\n%s", out)
	}

	// A director without the old KEK refuses to start, naming it.
	w.dird.Stop(t, syscall.SIGTERM)
	bad := w.dirConf
	bad.KEKFiles, bad.ActiveKEK = []string{kek2Path}, kek2Path
	badPath := filepath.Join(w.dir, "director-without-old-kek.toml")
	bad.Write(t, badPath)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins["director"], "-c", badPath).CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), "drops KEKs the catalog still needs: KEK "+k1+" wraps 3 current and 1 history keys") {
		t.Fatalf("director without the old KEK: %v\n%s", err, out)
	}
	w.startDirector()

	// 2. rekey yes while storaged is down: done in the catalog, the pushes
	// pending and said so.
	w.sd.Stop(t, syscall.SIGTERM)
	out2, errs, code := w.tapectl("rekey yes")
	if code == 0 || !strings.Contains(out2, "rewrapped 3 stored keys under KEK "+k2) || !strings.Contains(out2, "with 1 keys of the volumes' history") ||
		!strings.Contains(out2, "sd1: unreachable — 3 volumes pending, pushed when it next connects") {
		t.Fatalf("rekey yes with storaged down: exit %d\n%s\n%s", code, out2, errs)
	}
	if out := w.ok("rekey"); !strings.Contains(out, "crypto cache pushes pending (made when the storage next connects): sd1: 3 volumes") {
		t.Fatalf("rekey dry run does not name the pending pushes:\n%s", out)
	}
	out3 := w.verdict(k1)
	if v := lastLine(out3); !strings.Contains(v, "KEK "+k1+" is still needed: ") || !strings.Contains(v, "storage sd1 is unreachable") ||
		!strings.Contains(v, "3 crypto cache pushes to storage sd1 are pending") || strings.Contains(v, "catalog keys") {
		t.Fatalf("status kek=OLD while storaged is down:\n%s", out3)
	}

	// 3. storaged back: its hello brings its cache up to date.
	w.startStoraged()
	testenv.WaitFor(t, "the pending pushes to be made after storaged's hello", func() bool {
		return strings.HasPrefix(lastLine(w.verdict(k1)), "nothing depends on KEK "+k1+": it may be removed from director.toml and every storaged.toml")
	})
	if out := w.ok("rekey"); !strings.Contains(out, "crypto cache pushes pending: none") {
		t.Fatalf("rekey dry run after the push:\n%s", out)
	}
	if ev := w.ok("list keyevents volume=TW0001L6"); !strings.Contains(ev, "pushed") || !strings.Contains(ev, hist.Fingerprint) {
		t.Fatalf("no pushed event naming the history key:\n%s", ev)
	}
	st := w.ok("status director")
	// Per KEK: keyring, catalog current, catalog history, caches.
	want := map[string]string{k1: "yes 0 0 sd1: 3 / 0 / 0 pending", k2: "active 3 1 sd1: 4 / 1 / 0 pending"}
	for _, l := range strings.Split(st, "\n") {
		if f := strings.Fields(l); len(f) > 0 && want[f[0]] != "" {
			if got := strings.Join(f[1:], " "); got != want[f[0]] {
				t.Fatalf("status director, KEK %s: %q, want %q:\n%s", f[0], got, want[f[0]], st)
			}
			delete(want, f[0])
		}
	}
	if len(want) > 0 {
		t.Fatalf("status director lacks KEKs %v:\n%s", want, st)
	}

	// 4. The old KEK removed from both configurations; restart.
	w.dirConf.KEKFiles, w.dirConf.ActiveKEK = []string{kek2Path}, kek2Path
	w.sdConf.KEKFiles = []string{kek2Path}
	w.dird.Stop(t, syscall.SIGTERM)
	w.sd.Stop(t, syscall.SIGTERM)
	w.startStoraged()
	w.startDirector()
	if l := w.sd.Output(); !strings.Contains(l, "superseded") || !strings.Contains(l, k1) {
		t.Fatalf("storaged does not say its cache's old wrappings are superseded:\n%s", l)
	}
	if out := w.verdict(k1); !strings.HasPrefix(lastLine(out), "nothing depends on KEK "+k1) {
		t.Fatalf("status kek=OLD after the restart:\n%s", out)
	}
	mo := w.ok("mount storage=sd1 slot=2 drive=0")
	if !strings.Contains(mo, "key "+vols[1].Key+" loaded and verified") {
		t.Fatalf("mount after retiring the old KEK: %s", mo)
	}
	w.ok("unmount storage=sd1 drive=0")

	// 5. tapekey cache verify with only the new KEK.
	cachePath := filepath.Join(w.sdConf.WorkDir, cryptocache.FileName)
	vo, err := exec.Command(bins["tapekey"], "cache", "verify", cachePath, "--kek", kek2Path).CombinedOutput()
	if err != nil || !strings.Contains(string(vo), "all 3 entries unwrap") || !strings.Contains(string(vo), "older wrapping under KEK "+k1+", superseded") {
		t.Fatalf("tapekey cache verify --kek new.key: %v\n%s", err, vo)
	}

	// 6. DR: no director, no storaged; only the crypto cache and the new
	// KEK. Load the key from the cache into the drive, read the data back.
	w.dird.Stop(t, syscall.SIGTERM)
	w.sd.Stop(t, syscall.SIGTERM)
	entries, err := cryptocache.ReadFile(cachePath)
	if err != nil {
		t.Fatal(err)
	}
	var stored string
	for _, e := range entries {
		if e.Volume == "TW0001L6" {
			if e.Key.KEKID != k2 {
				t.Fatalf("TW0001L6's current cache key is under KEK %s, want %s", e.Key.KEKID, k2)
			}
			stored = e.Key.Value
		}
	}
	if o, err := exec.Command(bins["vtl"], "load", "--socket", w.vtl.Socket, "--slot", "1", "--drive", "0").CombinedOutput(); err != nil {
		t.Fatalf("vtl load: %v\n%s", err, o)
	}
	addr := "vtl:" + w.vtl.Socket + "#drive0"
	if o, err := exec.Command(bins["tapekey"], "drive", "set-key", addr, "--stored", stored, "--kek", kek2Path).CombinedOutput(); err != nil {
		t.Fatalf("tapekey drive set-key --stored … --kek new.key: %v\n%s", err, o)
	}
	dev, err := dial.OpenDevice(addr, scsi.TypeTape)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	testenv.WaitFor(t, "the drive to be ready (unit attentions consumed)", func() bool { return dev.TestUnitReady() == nil })
	r, err := tapeio.NewReader(dev, tapeio.Addr{File: uint64(start.TapeFile), Block: start.Block, Offset: int(start.Offset)}, tapeio.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("DR read with the cache and the new KEK: %v; %d bytes, equal = %v", err, len(got), bytes.Equal(got, data))
	}
	dev.Close() // tapekey opens the drive exclusively
	if o, err := exec.Command(bins["tapekey"], "drive", "clear", addr).CombinedOutput(); err != nil {
		t.Fatalf("tapekey drive clear: %v\n%s", err, o)
	}
	w.vtl.RequireNoKey(t)
}
