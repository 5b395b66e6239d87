package catalog

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestVaultFlags(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	f.label(t, "OFF001", "TW0001L6", "sd1", 1, r)
	f.label(t, "LOC001", "", "sd1", 2, nil)
	ctx := f.ctx
	verified := t0.Add(2 * time.Minute)
	if err := f.s.MarkLabeled(ctx, "OFF001", t0.Add(time.Minute), &verified); err != nil {
		t.Fatal(err)
	}
	if err := f.s.MarkFull(ctx, "OFF001"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.pool.Exec(ctx, `UPDATE media SET volume_retention = '30 days', last_written = $1 WHERE volume_name = 'OFF001'`, t0); err != nil {
		t.Fatal(err)
	}
	vs, err := f.s.VaultVolumes(ctx, "Offsite")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Volume != "OFF001" {
		t.Fatalf("vault volumes: %+v", vs)
	}
	v := vs[0]
	if !v.InChanger || v.Status != "Full" || v.Slot != 1 || !v.Encrypted || !v.PoolEncrypt || v.VerifiedAt == nil ||
		!v.VerifiedAt.Equal(verified) || v.Retention != 30*24*time.Hour || v.Barcode != "TW0001L6" || v.Storage != "sd1" || len(v.ActiveJobs) != 0 {
		t.Fatalf("OFF001: %+v", v)
	}

	out := t0.Add(time.Hour)
	if err := f.s.MarkOffsite(ctx, "OFF001", out, "console:admin", "exported to I/E slot 1"); err != nil {
		t.Fatal(err)
	}
	vs, _ = f.s.VaultVolumes(ctx, "Offsite")
	if v := vs[0]; v.InChanger || v.Slot != NoSlot || v.OffsiteSince == nil || !v.OffsiteSince.Equal(out) {
		t.Fatalf("OFF001 offsite: %+v", v)
	}
	f.clock.Advance(2 * time.Hour)
	if err := f.s.MarkInChanger(ctx, "OFF001", "sd1", 3, "console:admin", ""); err != nil {
		t.Fatal(err)
	}
	vs, _ = f.s.VaultVolumes(ctx, "")
	if len(vs) != 2 {
		t.Fatalf("every pool: %+v", vs)
	}
	if v := vs[1]; !v.InChanger || v.Slot != 3 || v.OffsiteSince != nil {
		t.Fatalf("OFF001 back: %+v", v)
	}
	evs, err := f.s.ListVolumeEvents(ctx, "OFF001")
	if err != nil {
		t.Fatal(err)
	}
	var moves []string
	for _, e := range evs {
		if e.Old == e.New {
			moves = append(moves, e.Actor+": "+e.Reason+" ("+string(e.New)+")")
		}
	}
	if want := []string{"console:admin: exported to I/E slot 1 (Full)", "console:admin: imported into slot 3 (Full)"}; !slices.Equal(moves, want) {
		t.Fatalf("export/import volume events = %q, want %q", moves, want)
	}
	if err := f.s.MarkInChanger(ctx, "OFF001", "sd1", 0, "", ""); err == nil {
		t.Fatal("slot 0 accepted")
	}
	if err := f.s.MarkOffsite(ctx, "NOPE", out, "", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown volume: %v", err)
	}
	if _, err := f.s.VaultVolumes(ctx, "Nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown pool: %v", err)
	}
	// The schema refuses an offsite volume without its time.
	if _, err := f.s.pool.Exec(ctx, `UPDATE media SET in_changer = false WHERE volume_name = 'LOC001'`); err == nil {
		t.Fatal("offsite without offsite_since accepted")
	}
}
