package core

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/director/catalog"
)

// TestPoolCommands: list pools shows director.toml's fields and the
// volumes by status; update pool= copies the pool's current limits into
// its volumes; update volume status= follows the allowed transitions, is
// refused to a read console, and is audited.
func TestPoolCommands(t *testing.T) {
	d, _, _, _ := jobDirectorWith(t, `
[[pool]]
name = "Offsite"
storage = "sd1"
max_volume_bytes = "10GiB"
max_volume_jobs = 3
volume_use_duration = "7 days"
recycle = false
scratch_pool = "Scratch"

[[pool]]
name = "Scratch"
`, nil)
	ctx := context.Background()
	text := mustExec(t, d, "reader", "list pools")
	lines := strings.Split(text, "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "POOL ") || !strings.HasSuffix(lines[4], "3 pools") {
		t.Fatalf("list pools:\n%s", text)
	}
	local, off := strings.Fields(lines[1]), strings.Fields(lines[2])
	if local[0] != "Local" || local[1] != "sd1" || local[2] != "no" || !strings.HasSuffix(lines[1], "Append 1") {
		t.Errorf("Local line: %q", lines[1])
	}
	if off[0] != "Offsite" || off[2] != "yes" || !strings.Contains(lines[2], "10GiB") || !strings.Contains(lines[2], " 3 ") ||
		!strings.Contains(lines[2], "7 days") || !strings.Contains(lines[2], "Scratch") || !strings.HasSuffix(lines[2], "none") {
		t.Errorf("Offsite line: %q", lines[2])
	}

	// V1 (pool Local) was labelled before the pool had limits.
	if l, err := d.store.GetVolumeLimits(ctx, "V1"); err != nil || l.MaxVolumeJobs != 0 {
		t.Fatalf("V1 limits before update pool: %+v, %v", l, err)
	}
	p, _ := d.cfg.PoolNamed("Local")
	p.MaxVolumeJobs = 5
	mustExec(t, d, "ops", "update pool=Local", "pool Local: limits of director.toml applied to 1 volumes")
	if l, err := d.store.GetVolumeLimits(ctx, "V1"); err != nil || l.MaxVolumeJobs != 5 || !l.Recycle {
		t.Fatalf("V1 limits after update pool: %+v, %v", l, err)
	}
	if _, _, err := exec(t, d, "ops", "update pool=Nope"); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "configured: Local, Offsite, Scratch") {
		t.Fatalf("update pool=Nope: %v", err)
	}
	if _, _, err := exec(t, d, "reader", "update pool=Local"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("update pool as reader: %v", err)
	}

	mustExec(t, d, "ops", "update volume=V1 status=read-only", "volume V1: status Append → Read-Only")
	mustExec(t, d, "ops", "update volume=V1 status=Read-Only", "(unchanged)")
	mustExec(t, d, "ops", "update volume=V1 status=Archive", "Read-Only → Archive")
	_, _, err := exec(t, d, "ops", "update volume=V1 status=Append")
	if status.Code(catalogStatus(err)) != codes.FailedPrecondition || !strings.Contains(err.Error(), "from Archive it may go to Full, Used, Read-Only, Disabled, Error") {
		t.Fatalf("Archive → Append: %v", err)
	}
	if _, _, err := exec(t, d, "reader", "update volume=V1 status=Full"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("status= as reader: %v", err)
	}
	mustExec(t, d, "ops", "update volume=V1 status=Error", "Archive → Error")
	m, err := d.store.GetMedia(ctx, "V1")
	if err != nil || m.Status != catalog.StatusError || m.ErrorReason != "set by console ops" {
		t.Fatalf("V1 after status=Error: %+v, %v", m, err)
	}
	evs, err := d.store.ListVolumeEvents(ctx, "V1")
	if err != nil || len(evs) != 3 || evs[0].Actor != "console:ops" || evs[2].New != catalog.StatusError {
		t.Fatalf("volume events = %+v, %v", evs, err)
	}
	mustExec(t, d, "reader", "list pools", "Error 1")
}
