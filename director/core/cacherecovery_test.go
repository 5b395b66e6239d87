package core

import (
	"strings"
	"testing"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// "status storage" tells the truth about a crypto cache found corrupt at
// start-up: recovered (kept file, counts, what to run) or nothing salvaged,
// and a storaged's text never reaches the terminal raw.
func TestCacheRecoveryText(t *testing.T) {
	if got := cacheRecoveryText(12, nil); got != "" {
		t.Fatalf("no recovery: %q", got)
	}
	kept := "/var/lib/tapeward/storaged.cryptocache.corrupt-20261202T061700Z"
	got := cacheRecoveryText(12, &pb.CacheRecovery{KeptAs: kept, Reason: "line 7: checksum mismatch", Volumes: 12, LinesRecovered: 14, LinesLost: 2, Checksum: "mismatch", Conflicts: 1})
	for _, want := range []string{"crypto cache: 12 volumes — RECOVERED from a corrupt file (kept as " + kept + "; line 7: checksum mismatch)",
		"12 volumes (14 key lines) salvaged, 2 lines lost, checksum mismatch, 1 conflicts",
		"check with tapekey cache verify /var/lib/tapeward/storaged.cryptocache --kek", "tapekey cache dump " + kept + " --salvage"} {
		if !strings.Contains(got, want) {
			t.Fatalf("recovered: %q lacks %q", got, want)
		}
	}
	got = cacheRecoveryText(0, &pb.CacheRecovery{KeptAs: kept + "\x1b[2J", Reason: "x", Error: "permission denied"})
	if !strings.Contains(got, "0 volumes — CORRUPT at start-up and NOTHING salvaged") || !strings.Contains(got, "permission denied") || strings.Contains(got, "\x1b") {
		t.Fatalf("nothing salvaged: %q", got)
	}
}
