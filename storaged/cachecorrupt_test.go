package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// A crypto cache found corrupt at start-up is kept byte for byte, its good
// lines are salvaged into the fresh cache (a mount with the director down
// uses a salvaged key), the lost volume is not pretended to be there, the
// log says so in an ERROR, and Status tells the truth (cache_recovery).
func TestCorruptCacheIsKeptAndSalvaged(t *testing.T) {
	e := newEnv(t, envOpts{})
	fps := map[string]string{}
	for slot, vol := range map[uint32]string{1: "TW0001L6", 2: "TW0002L6", 3: "TW0003L6"} {
		lr, err := e.label(slot, vol, "drive0", true)
		if err != nil {
			t.Fatalf("label %s: %v", vol, err)
		}
		fps[vol] = lr.KeyFingerprint
	}
	e.stopStoraged(syscall.SIGTERM)
	cache := filepath.Join(e.dir, "work", "storaged.cryptocache")
	orig, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	// Damage TW0002L6's line (line 3): a tab lost. The checksum fails too.
	lines := strings.SplitAfter(string(orig), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[2], "key\tTW0002L6\t") {
		t.Fatalf("unexpected cache file:\n%s", orig)
	}
	lines[2] = strings.Replace(lines[2], "\t", "", 1)
	corrupt := []byte(strings.Join(lines, ""))
	if err := os.WriteFile(cache, corrupt, 0o600); err != nil {
		t.Fatal(err)
	}

	e.startStoraged()
	kept, _ := filepath.Glob(cache + ".corrupt-*")
	if len(kept) != 1 {
		t.Fatalf("corrupt cache kept as %v, want one file", kept)
	}
	if b, _ := os.ReadFile(kept[0]); !bytes.Equal(b, corrupt) {
		t.Fatal("the kept file is not the corrupt cache byte for byte")
	}
	var errLine string
	for _, l := range strings.Split(e.log(), "\n") {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, "CRYPTO CACHE CORRUPT") {
			errLine = l
		}
	}
	for _, want := range []string{"kept_as=" + kept[0], "volumes_recovered=2", "lines_lost=1", "lost_lines=3", "checksum=mismatch"} {
		if !strings.Contains(errLine, want) {
			t.Fatalf("the start-up ERROR lacks %q: %q\n%s", want, errLine, e.log())
		}
	}
	st, err := e.client.Status(e.ctx(), &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	r := st.CacheRecovery
	if st.CacheEntries != 2 || r == nil || r.KeptAs != kept[0] || r.Volumes != 2 || r.LinesRecovered != 2 || r.LinesLost != 1 ||
		r.Checksum != "mismatch" || r.Error != "" || !strings.HasPrefix(r.Reason, "line 3: ") {
		t.Fatalf("status: %d entries, recovery %v", st.CacheEntries, r)
	}
	// The salvaged cache is a valid cache whose keys unwrap.
	if out, err := exec.Command(bins.tapekey, "cache", "verify", cache, "--kek", e.kekPath).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "all 2 entries unwrap") {
		t.Fatalf("tapekey cache verify of the salvaged cache: %v\n%s", err, out)
	}

	// The director is gone: a salvaged key mounts its volume, the lost one
	// is refused (the cache does not pretend to hold it).
	e.dirSrv.Stop()
	mr, err := e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0"})
	if err != nil {
		t.Fatalf("mount with the director down after the salvage: %v", err)
	}
	if mr.KeySource != "cache" || mr.KeyFingerprint != fps["TW0001L6"] {
		t.Fatalf("mount reply = %v, want the salvaged key %s from the cache", mr, fps["TW0001L6"])
	}
	if _, err := e.client.Unmount(e.ctx(), &pb.UnmountRequest{Drive: "drive0"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.Mount(e.ctx(), &pb.MountRequest{Changer: "changer0", Slot: 2, Drive: "drive0"})
	if err == nil || !strings.Contains(err.Error(), "crypto cache has no key for volume TW0002L6") {
		t.Fatalf("mount of the volume whose line was lost: %v", err)
	}
	e.requireNoKeyLoaded()
}
