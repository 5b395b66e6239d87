package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// storaged finds its crypto cache corrupt at start-up: "status storage"
// and "status director" say it was RECOVERED from the kept file and how
// many lines were lost, instead of an innocent "N volumes".
func TestStatusTellsCacheWasRecovered(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.ok("label storage=sd1 pool=Offsite slots=1-2 barcodes encrypt")
	w.sd.Stop(t, syscall.SIGTERM)
	cache := filepath.Join(w.sdConf.WorkDir, "storaged.cryptocache")
	data, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n") // header, 2 key lines, trailer, ""
	if len(lines) != 5 {
		t.Fatalf("unexpected cache:\n%s", data)
	}
	lines[2] = strings.Replace(lines[2], "\t", "", 1)
	if err := os.WriteFile(cache, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	w.startStoraged()
	kept, _ := filepath.Glob(cache + ".corrupt-*")
	if len(kept) != 1 {
		t.Fatalf("kept copies: %v", kept)
	}
	st := w.ok("status storage=sd1")
	want := "crypto cache: 1 volumes — RECOVERED from a corrupt file (kept as " + kept[0] + "; line 3: "
	if !strings.Contains(st, want) || !strings.Contains(st, "1 volumes (1 key lines) salvaged, 1 lines lost, checksum mismatch") ||
		!strings.Contains(st, "tapekey cache verify "+cache) {
		t.Fatalf("status storage does not say the cache was recovered (want %q):\n%s", want, st)
	}
	if sd := w.ok("status director"); !strings.Contains(sd, "RECOVERED from a corrupt file") {
		t.Fatalf("status director does not say the cache was recovered:\n%s", sd)
	}
}
