package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// ieSlots reads the import/export slots from `vtl status --json`.
func (w *world) ieSlots() []string {
	w.t.Helper()
	out, err := exec.Command(w.vtl.Bin, "status", "--socket", w.vtl.Socket, "--json").Output()
	if err != nil {
		w.t.Fatalf("vtl status: %v", err)
	}
	var st struct {
		Slots []struct {
			Barcode string `json:"barcode"`
		} `json:"slots"`
		IE []struct {
			Barcode string `json:"barcode"`
		} `json:"import_export_slots"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		w.t.Fatal(err)
	}
	var bcs []string
	for _, s := range st.IE {
		bcs = append(bcs, s.Barcode)
	}
	return bcs
}

// A Full volume goes offsite through the import/export slots of a real vtl
// and comes back: the vault view lists it in the right section each time,
// the library's inventory and the catalog's in-library flag follow, and an
// unknown cartridge found in the I/E station is reported and left there.
func TestVaultExportImport(t *testing.T) {
	w := newWorld(t, worldOpts{slots: 5, drives: 1, vtlArgs: []string{"--ie-slots", "2"}})
	w.ok("label storage=sd1 pool=Offsite slots=1-2 barcodes encrypt")
	w.exec(`UPDATE media SET status = 'Full', last_written = now() WHERE volume_name = 'TW0001L6'`)

	out := w.ok("list volumes vault")
	goOut, rest, _ := strings.Cut(out, "Offsite, to bring back")
	if !strings.Contains(goOut, "TW0001L6") || strings.Contains(goOut, "TW0002L6") || strings.Contains(rest, "TW0001L6") {
		t.Fatalf("vault before export:\n%s", out)
	}
	if !strings.Contains(goOut, "Full, encryption verified") {
		t.Fatalf("vault: no why:\n%s", out)
	}

	out = w.ok("export volume=TW0001L6")
	if !strings.Contains(out, "would move TW0001L6") || w.ieSlots()[0] != "" {
		t.Fatalf("export without yes:\n%s\nI/E %v", out, w.ieSlots())
	}
	out = w.ok("export volume=TW0001L6 yes")
	if !strings.Contains(out, "moved from slot 1 to import/export slot 1") {
		t.Fatalf("export:\n%s", out)
	}
	if ie := w.ieSlots(); ie[0] != "TW0001L6" || ie[1] != "" {
		t.Fatalf("I/E after export: %v", ie)
	}
	var inChanger bool
	var slot *int
	if err := w.sql(`SELECT in_changer, slot FROM media WHERE volume_name = 'TW0001L6'`).Scan(&inChanger, &slot); err != nil || inChanger || slot != nil {
		t.Fatalf("catalog after export: in_changer %v slot %v (%v)", inChanger, slot, err)
	}
	_, errs, code := w.tapectl("export volume=TW0001L6 yes")
	if code == 0 || !strings.Contains(errs, "already offsite") {
		t.Fatalf("second export: exit %d %s", code, errs)
	}
	// An Append volume stays: jobs may still pick it.
	_, errs, code = w.tapectl("export volume=TW0002L6 yes")
	if code == 0 || !strings.Contains(errs, "TW0002L6 is Append: jobs may still write to it") {
		t.Fatalf("export of an Append volume: exit %d %s", code, errs)
	}
	// A mounted volume is refused by storaged.
	w.exec(`UPDATE media SET status = 'Full' WHERE volume_name = 'TW0002L6'`)
	w.ok("mount storage=sd1 slot=2 drive=0")
	_, errs, code = w.tapectl("export volume=TW0002L6 yes")
	if code == 0 || !strings.Contains(errs, "unmount it first") {
		t.Fatalf("export of a mounted volume: exit %d %s", code, errs)
	}
	w.ok("unmount storage=sd1 drive=0")

	// Its retention ends: the vault view asks for it back.
	w.exec(`UPDATE media SET volume_retention = '1 day', last_written = now() - interval '2 days' WHERE volume_name = 'TW0001L6'`)
	out = w.ok("list volumes vault pool=Offsite")
	_, back, _ := strings.Cut(out, "Offsite, to bring back")
	back, _, _ = strings.Cut(back, "kept in the library")
	if !strings.Contains(back, "TW0001L6") || !strings.Contains(back, "retention 24h0m0s ended") {
		t.Fatalf("vault after retention:\n%s", out)
	}

	// The operator puts an unlabelled cartridge into I/E 2 by mistake.
	if o, err := exec.Command(w.vtl.Bin, "move", "--socket", w.vtl.Socket, "--from", "0x1003", "--to", "0x0011").CombinedOutput(); err != nil {
		t.Fatalf("vtl move: %v %s", err, o)
	}
	out = w.ok("import")
	if !strings.Contains(out, "TW0001L6") || !strings.Contains(out, "in the library again") ||
		!strings.Contains(out, "TW0004L6") || !strings.Contains(out, "unknown barcode: left in place") ||
		!strings.Contains(out, "1 cartridges imported, 1 left") {
		t.Fatalf("import:\n%s", out)
	}
	if ie := w.ieSlots(); ie[0] != "" || ie[1] != "TW0004L6" {
		t.Fatalf("I/E after import: %v", ie)
	}
	if err := w.sql(`SELECT in_changer, slot FROM media WHERE volume_name = 'TW0001L6'`).Scan(&inChanger, &slot); err != nil || !inChanger || slot == nil || *slot != 1 {
		t.Fatalf("catalog after import: in_changer %v slot %v (%v)", inChanger, slot, err)
	}
	// Both moves are audited where volume events are listed.
	ev := w.ok("list volumeevents volume=TW0001L6")
	if !strings.Contains(ev, "console:admin") || !strings.Contains(ev, "exported to I/E slot 1 of storage sd1") ||
		!strings.Contains(ev, "imported into slot 1 of storage sd1 (from I/E slot 1)") ||
		strings.Index(ev, "imported into") > strings.Index(ev, "exported to") {
		t.Fatalf("list volumeevents (newest first) lacks the export and the import:\n%s", ev)
	}
	w.ok("mount storage=sd1 slot=1 drive=0")
	w.ok("unmount storage=sd1 drive=0")
}
