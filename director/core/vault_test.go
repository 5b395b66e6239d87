package core

import (
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/director/catalog"
)

func TestPlanVault(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	day := 24 * time.Hour
	vs := []catalog.VaultVolume{
		{Volume: "FULL1", Pool: "Offsite", Status: "Full", Slot: 1, InChanger: true, Encrypted: true, PoolEncrypt: true, VerifiedAt: at(-10 * day)},
		{Volume: "USED1", Pool: "Local", Status: "Used", Slot: 2, InChanger: true},
		{Volume: "APPEND", Pool: "Offsite", Status: "Append", Slot: 3, InChanger: true, Encrypted: true, VerifiedAt: at(-day)},
		{Volume: "UNVER", Pool: "Offsite", Status: "Full", Slot: 4, InChanger: true, Encrypted: true, PoolEncrypt: true},
		{Volume: "CLEAR", Pool: "Offsite", Status: "Full", Slot: 5, InChanger: true, PoolEncrypt: true},
		{Volume: "BUSY", Pool: "Local", Status: "Full", Slot: 6, InChanger: true, ActiveJobs: []int64{12, 13}},
		{Volume: "EXPIRED", Pool: "Offsite", Status: "Full", Slot: catalog.NoSlot, OffsiteSince: at(-40 * day), Retention: 30 * day, LastWritten: at(-31 * day)},
		{Volume: "KEPT", Pool: "Offsite", Status: "Full", Slot: catalog.NoSlot, OffsiteSince: at(-20 * day), Retention: 30 * day, LastWritten: at(-21 * day)},
		{Volume: "EDGE", Pool: "Offsite", Status: "Full", Slot: catalog.NoSlot, OffsiteSince: at(-40 * day), Retention: 30 * day, LastWritten: at(-30 * day)},
		{Volume: "NORET", Pool: "Offsite", Status: "Used", Slot: catalog.NoSlot, OffsiteSince: at(-400 * day), LastWritten: at(-400 * day)},
		{Volume: "PURGED", Pool: "Offsite", Status: "Purged", Slot: catalog.NoSlot, OffsiteSince: at(-2 * day)},
	}
	p := PlanVault(vs, now)
	names := func(items []VaultItem) string {
		var s []string
		for _, it := range items {
			s = append(s, it.Volume)
		}
		return strings.Join(s, ",")
	}
	if got := names(p.GoOffsite); got != "FULL1,USED1" {
		t.Errorf("may go offsite: %s", got)
	}
	if got := names(p.BringBack); got != "EXPIRED,EDGE,PURGED" {
		t.Errorf("bring back: %s", got)
	}
	if got := names(p.Kept); got != "UNVER,CLEAR,BUSY" {
		t.Errorf("kept: %s", got)
	}
	why := map[string]string{}
	for _, it := range append(append(p.GoOffsite, p.BringBack...), p.Kept...) {
		why[it.Volume] = it.Why
	}
	for v, frag := range map[string]string{
		"FULL1":   "Full, encryption verified 2026-05-22, no active job",
		"USED1":   "Used, not encrypted",
		"UNVER":   "encryption not verified yet",
		"CLEAR":   "pool Offsite is encrypted but this volume is clear",
		"BUSY":    "needed by active job 12, 13",
		"EXPIRED": "retention 720h0m0s ended 2026-05-31 (last written 2026-05-01)",
		"EDGE":    "ended 2026-06-01",
		"PURGED":  "status Purged",
	} {
		if !strings.Contains(why[v], frag) {
			t.Errorf("%s: why %q, want %q", v, why[v], frag)
		}
	}
}
