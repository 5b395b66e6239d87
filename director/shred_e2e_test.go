package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tapeward/tapeward/proto/tlsconf"
	"github.com/tapeward/tapeward/tools/lib/testenv"
	"github.com/tapeward/tapeward/tools/lib/testtree"
)

// tapekey runs the key tool and returns its combined output and exit code.
func (w *world) tapekey(stdin string, args ...string) (string, int) {
	w.t.Helper()
	cmd := exec.Command(bins["tapekey"], args...)
	cmd.Dir = w.dir
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatalf("running tapekey: %v", err)
	}
	return string(out), code
}

// A volume is backed up (after a key rotation, so it has a current and a
// history key), its keys are exported once, then it is shredded: its data
// can be read by no path any more — the mount is refused, the director
// refuses the key, neither the catalog nor the crypto cache (checked with
// tapekey and byte for byte) nor a new keys export holds any of its
// strings, and a second storage daemon that was down at the time destroys
// its copy when it reconnects (pending, then done).
func TestShredVolumeNoPathLeft(t *testing.T) {
	w := newBackupWorld(t, backupOpts{volumes: 1})
	vol := w.volumes()[0].Volume
	var first string
	if err := w.q(`SELECT key_string FROM media WHERE volume_name = $1`, vol).Scan(&first); err != nil {
		t.Fatal(err)
	}
	// Rotate before any data (the old key goes to the history), then back
	// up to the volume under the new key.
	if out := w.ok("update volume=" + vol + " encrypt=rotate"); !strings.Contains(out, "kept in the volume's key history") {
		t.Fatalf("rotate said:\n%s", out)
	}
	w.makeTree("web1", testtree.Options{Seed: 11, SmallFiles: 20, SmallSize: 64 << 10})
	j, _ := w.backup("web1-home", "Full", "Full")
	if vols := w.jobVolumes(j.ID); len(vols) != 1 || vols[0] != vol {
		t.Fatalf("the job wrote %v, want %s", vols, vol)
	}
	var cur, hist string
	if err := w.q(`SELECT m.key_string, k.key_string FROM media m JOIN media_keys k ON k.media_id = m.id WHERE m.volume_name = $1`, vol).Scan(&cur, &hist); err != nil {
		t.Fatal(err)
	}
	if hist != first || cur == first {
		t.Fatal("the rotation did not leave the first key in the history and a new current key")
	}
	secrets := []string{cur, hist}
	cache := filepath.Join(w.sdConf.WorkDir, "storaged.cryptocache")
	if b, _ := os.ReadFile(cache); !bytes.Contains(b, []byte(cur)) || !bytes.Contains(b, []byte(hist)) {
		t.Fatal("before the shred, sd1's crypto cache does not hold both keys of the volume (the test would prove nothing)")
	}
	// A corrupt copy kept next to sd1's cache: never edited, reported.
	before, _ := os.ReadFile(cache)
	corrupt := cache + ".corrupt-20261201T000000Z"
	if err := os.WriteFile(corrupt, append(before, "damaged"...), 0o600); err != nil {
		t.Fatal(err)
	}

	// sd2: a second storage daemon with its own library, whose crypto
	// cache holds the volume's keys (a DR copy), down at shred time.
	dir2 := filepath.Join(w.dir, "lib2")
	if err := os.MkdirAll(dir2, 0o755); err != nil {
		t.Fatal(err)
	}
	vtl2 := testenv.StartVTL(t, bins["vtl"], dir2, "--slots", "2", "--drives", "1", "--capacity", "64MiB", "--load-delay", "0s")
	sd2 := testenv.Storaged{Name: "sd2", Listen: testenv.FreeAddr(t), WorkDir: filepath.Join(w.dir, "sd2"),
		TLS: w.pki.Issue(t, "sd2", tlsconf.RoleStorage), DirectorName: "director", DirectorAddr: w.dirConf.Listen,
		KEKFiles: w.kekPaths, VTLSocket: vtl2.Socket, Drives: 1}
	if err := os.MkdirAll(sd2.WorkDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cache2 := filepath.Join(sd2.WorkDir, "storaged.cryptocache")
	for _, line := range []struct{ s, extra string }{{hist, ""}, {cur, "--replace"}} {
		args := []string{"cache", "add", cache2, "--kek", w.kekPaths[0]}
		if line.extra != "" {
			args = append(args, line.extra)
		}
		if out, code := w.tapekey(vol+"\t"+line.s+"\n", args...); code != 0 {
			t.Fatalf("tapekey cache add: exit %d: %s", code, out)
		}
	}
	w.dirConf.Storages["sd2"] = sd2.Listen
	w.dirConf.Consoles = map[string]string{"admin": "keyadmin", "op": "operator"}
	w.dird.Stop(t, syscall.SIGTERM)
	w.startDirector()

	// An export written before the shred: out of reach, listed.
	w.ok("export keys out=before.csv")
	if b, _ := os.ReadFile(filepath.Join(w.dir, "before.csv")); !bytes.Contains(b, []byte(cur)) {
		t.Fatal("the export before the shred lacks the volume's key")
	}

	// Without yes: says what and that it cannot be undone; nothing changes.
	dry := w.ok("shred volume=" + vol)
	if !strings.Contains(dry, "cannot be undone") || !strings.Contains(dry, "shred volume="+vol+" yes") || !strings.Contains(dry, "2 keys") ||
		!strings.Contains(dry, "keys export written") {
		t.Fatalf("shred without yes said:\n%s", dry)
	}
	var n int
	if err := w.q(`SELECT count(*) FROM media WHERE volume_name = $1 AND key_string = $2`, vol, cur).Scan(&n); err != nil || n != 1 {
		t.Fatalf("shred without yes changed the catalog (%d, %v)", n, err)
	}
	// Only a keyadmin may shred.
	opCon := filepath.Join(w.dir, "op.toml")
	testenv.Console(t, opCon, "op", "director", w.dirConf.Listen, w.pki.Issue(t, "op", tlsconf.RoleConsole))

	// The volume is mounted (not for a job) when it is shredded: its
	// drive is cleared and the cartridge goes back to its slot.
	w.ok("mount storage=sd1 slot=1 drive=0")
	if st := w.ok("status storage=sd1"); !strings.Contains(st, vol) {
		t.Fatalf("status storage after the mount does not show %s:\n%s", vol, st)
	}
	out := w.ok("shred volume=" + vol + " yes")
	if st := w.ok("status storage=sd1"); strings.Contains(st, vol) {
		t.Errorf("after the shred a drive still holds %s:\n%s", vol, st)
	}
	w.vtl.RequireNoKey(t)
	t.Logf("shred without yes:\n%s\nshred yes:\n%s", dry, out)
	for _, want := range []string{
		"volume " + vol + " shredded: 2 keys destroyed in the catalog",
		"-> Purged (shredded)",
		"sd1: 2 stored strings destroyed in its crypto cache",
		"NOT EDITED on sd1: corrupt cache copies kept aside still name the volume (" + filepath.Base(corrupt) + ")",
		"pending on sd2 (unreachable): will be destroyed when it reconnects",
		"keys export written",
		"by admin",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("shred output lacks %q:\n%s", want, out)
		}
	}

	// The catalog holds no string of the volume; it is Purged.
	if err := w.q(`SELECT (SELECT count(*) FROM media WHERE key_string = ANY($1)) + (SELECT count(*) FROM media_keys WHERE key_string = ANY($1))`, secrets).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the catalog still holds %d of the volume's strings (%v)", n, err)
	}
	for _, v := range w.volumes() {
		if v.Volume == vol && (v.Status != "Purged" || v.Encrypted) {
			t.Fatalf("list volumes after the shred: %+v, want Purged with no key", v)
		}
	}
	// sd1's crypto cache: no string, no line of the volume.
	after, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if bytes.Contains(after, []byte(s)) {
			t.Fatal("sd1's crypto cache still holds a stored string of the shredded volume")
		}
	}
	if dump, code := w.tapekey("", "cache", "dump", cache); code != 0 || strings.Contains(dump, vol) {
		t.Fatalf("tapekey cache dump (exit %d) still lists %s:\n%s", code, vol, dump)
	}
	if v, code := w.tapekey("", "cache", "verify", cache, "--kek", w.kekPaths[0]); code != 0 || strings.Contains(v, vol) {
		t.Fatalf("tapekey cache verify (exit %d) after the shred:\n%s", code, v)
	}
	if ke := w.ok("list keyevents volume=" + vol); !strings.Contains(ke, "shredded") || !strings.Contains(ke, "destroyed in the crypto cache of storage sd1") {
		t.Errorf("list keyevents does not show the shred:\n%s", ke)
	}
	if b, _ := os.ReadFile(corrupt); !bytes.Equal(b, append(before, "damaged"...)) {
		t.Fatal("the corrupt copy was edited; it must be kept as found")
	}
	// Mount: refused, saying when and by whom.
	mo, me, code := w.tapectl("mount storage=sd1 slot=1")
	if code == 0 || !strings.Contains(mo+me, "volume "+vol+" was shredded on ") || !strings.Contains(mo+me, "by console:admin; its data cannot be read") {
		t.Fatalf("mount of the shredded volume: exit %d\n%s%s", code, mo, me)
	}
	// Restore: the job's records went with the keys; neither its job id
	// nor the client's current state offers a file of it.
	ro, re, code := w.tapectl(fmt.Sprintf("restore jobid=%d all where=%s yes", j.ID, filepath.Join(w.dir, "r")))
	if code == 0 || !strings.Contains(ro+re, "was purged") || !strings.Contains(ro+re, "shredded") {
		t.Fatalf("restore of the shredded volume's job: exit %d\n%s%s", code, ro, re)
	}
	if ro, re, code := w.tapectl("restore client=web1 current all where=" + filepath.Join(w.dir, "r") + " yes"); code == 0 {
		t.Fatalf("restore of the client's current state after the shred: exit 0\n%s%s", ro, re)
	}
	if entries, _ := os.ReadDir(filepath.Join(w.dir, "r")); len(entries) != 0 {
		t.Fatalf("a restore wrote %d entries after the shred", len(entries))
	}
	// The director refuses the key to its own storage.
	if err := getVolumeKey(t, w.sdConf.TLS, w.dirConf.Listen, vol); err == nil || !strings.Contains(err.Error(), "FailedPrecondition") || !strings.Contains(err.Error(), "was shredded") {
		t.Fatalf("GetVolumeKey of the shredded volume: %v", err)
	}
	// A keys export now has nothing of it: no tapekey unwrap can start.
	w.ok("export keys out=after.csv")
	if b, _ := os.ReadFile(filepath.Join(w.dir, "after.csv")); bytes.Contains(b, []byte(vol)) || bytes.Contains(b, []byte(cur)) || bytes.Contains(b, []byte(hist)) {
		t.Fatal("a keys export after the shred holds the volume")
	}
	// A second shred: nothing left, and it says when it was shredded.
	if o, e, code := w.tapectl("shred volume=" + vol + " yes"); code == 0 || !strings.Contains(o+e, "nothing to shred") || !strings.Contains(o+e, "was shredded on") {
		t.Fatalf("second shred: exit %d\n%s%s", code, o, e)
	}
	// Not an operator's act.
	if o, e, code := w.tapectlWith(opCon, "shred volume="+vol+" yes"); code == 0 || !strings.Contains(o+e, "keyadmin") {
		t.Fatalf("shred as an operator: exit %d\n%s%s", code, o, e)
	}

	// sd2 reconnects: the pending shred is made, then recorded.
	if err := w.q(`SELECT count(*) FROM shred_pushes p JOIN storages s ON s.id = p.storage_id WHERE s.name = 'sd2' AND p.volume_name = $1`, vol).Scan(&n); err != nil || n != 1 {
		t.Fatalf("shred pending for sd2 = %d (%v), want 1", n, err)
	}
	if st := w.tapectlOut("status director"); !strings.Contains(st, "1 volume shreds pending (made when it next connects)") {
		t.Errorf("status director does not show the shred pending for sd2:\n%s", st)
	}
	sd2Path := filepath.Join(w.dir, "storaged2.toml")
	sd2.Write(t, sd2Path)
	testenv.Start(t, "storaged2", filepath.Join(w.dir, "storaged2.log"), "storaged ready", bins["storaged"], "-c", sd2Path)
	testenv.WaitFor(t, "the shred pending for sd2 to be made", func() bool {
		var n int
		w.q(`SELECT count(*) FROM shred_pushes`).Scan(&n)
		return n == 0
	})
	b2, err := os.ReadFile(cache2)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if bytes.Contains(b2, []byte(s)) {
			t.Fatal("sd2's crypto cache still holds a stored string of the shredded volume after it reconnected")
		}
	}
	if err := w.q(`SELECT count(*) FROM key_events WHERE volume_name = $1 AND event = 'shredded' AND detail LIKE '%storage sd2: 2 stored strings%'`, vol).Scan(&n); err != nil || n != 1 {
		t.Fatalf("key events recording sd2's shred = %d (%v), want 1", n, err)
	}
	// The volume events show the shred.
	if err := w.q(`SELECT count(*) FROM volume_events WHERE volume_name = $1 AND new_status = 'Purged' AND reason = 'shredded' AND actor = 'console:admin'`, vol).Scan(&n); err != nil || n != 1 {
		t.Fatalf("volume events of the shred = %d (%v), want 1", n, err)
	}
	// No log ever held the strings (the cleanup check no longer knows them).
	for _, name := range []string{"director.log", "storaged.log", "storaged2.log", "vtl.log"} {
		b, _ := os.ReadFile(filepath.Join(w.dir, name))
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds a stored string of the volume", name)
			}
		}
	}
	w.vtl.RequireNoKey(t)
}
