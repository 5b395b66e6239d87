package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/tapeward/tapeward/tools/lib/testtree"
)

// A pool with max_volume_bytes far below the tape's capacity: a job larger
// than the limit rolls to the next volume at the limit (storaged ends the
// tape file as at early warning and asks for the next volume with
// "max_volume_bytes reached"); each volume holds at most its limit plus
// one block; the full ones are marked Full with the reason, in the volume
// events; every file is recorded.
func TestMaxVolumeBytesRollsToNextVolume(t *testing.T) {
	const limit, block = 3 << 20, 256 << 10
	w := newBackupWorld(t, backupOpts{worldOpts: worldOpts{slots: 4, capacity: "8MiB"}, volumes: 3})
	w.dirConf.Pools = nil
	w.dirConf.ExtraTOML = "[[pool]]\nname = \"Backup\"\nstorage = \"sd1\"\nmax_volume_bytes = \"3MiB\"\n"
	w.dird.Stop(t, syscall.SIGTERM)
	w.startDirector()
	if out := w.ok("update pool=Backup"); !strings.Contains(out, "applied to 3 volumes") {
		t.Fatalf("update pool said: %s", out)
	}
	snap := w.makeTree("web1", testtree.Options{Seed: 21, LargeFiles: 1, LargeSize: 4 << 20, SmallFiles: 12, SmallSize: 200 << 10})
	j, _ := w.backup("web1-home", "Full", "Full")
	w.requireFiles("Full over volumes at their byte limit", w.root["web1"], w.listFiles(j.ID, w.root["web1"]), snap)
	vols := w.jobVolumes(j.ID)
	if len(vols) < 2 {
		t.Fatalf("the job wrote volumes %q, want 2 or more (about 6 MiB with a 3 MiB limit)", vols)
	}
	for i, v := range vols {
		var bytes int64
		var st string
		if err := w.q(`SELECT bytes_written, status FROM media WHERE volume_name = $1`, v).Scan(&bytes, &st); err != nil {
			t.Fatal(err)
		}
		t.Logf("volume %s: %d bytes, %s", v, bytes, st)
		if bytes > limit+block {
			t.Errorf("volume %s holds %d bytes, over its limit %d plus one block", v, bytes, limit)
		}
		if i < len(vols)-1 {
			if bytes < limit || st != "Full" {
				t.Errorf("volume %s (left for the next one) holds %d bytes, status %s; want at least the limit and Full", v, bytes, st)
			}
			var reason string
			if err := w.q(`SELECT reason FROM volume_events WHERE volume_name = $1 AND old_status = 'Append' AND new_status = 'Full'`, v).Scan(&reason); err != nil ||
				!strings.Contains(reason, "max_volume_bytes reached") {
				t.Errorf("volume %s: Full event reason %q (%v), want max_volume_bytes reached", v, reason, err)
			}
		}
	}
	log := w.tapectlOut(fmt.Sprintf("list joblog jobid=%d", j.ID))
	if !strings.Contains(log, "max_volume_bytes reached") {
		t.Errorf("the job log does not say why the volume changed:\n%s", log)
	}
	if ev := w.ok("list volumeevents volume=" + vols[0]); !strings.Contains(ev, "Append -> Full") || !strings.Contains(ev, "max_volume_bytes reached") {
		t.Errorf("list volumeevents of %s:\n%s", vols[0], ev)
	}
	w.checkCatalog()
	w.vtl.RequireNoKey(t)
}
