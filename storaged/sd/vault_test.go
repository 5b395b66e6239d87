package sd

import (
	"context"
	"strings"
	"testing"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

func ieOf(t *testing.T, l *lib) (slots, ie []*pb.Slot) {
	t.Helper()
	inv, err := l.d.Inventory("")
	if err != nil {
		t.Fatal(err)
	}
	return inv.Changers[0].Slots, inv.Changers[0].ImportExport
}

func wantErr(t *testing.T, err error, frag string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), frag) {
		t.Fatalf("got %v, want an error with %q", err, frag)
	}
}

// Cartridges go out through the import/export slots of a real vtl and come
// back to the slot they left; a cartridge in a drive or in a job session is
// refused, and every refusal names the cartridge and what to do.
func TestExportImportThroughIESlots(t *testing.T) {
	l := newLibVTL(t, 1, 4, "16MiB", []string{"--ie-slots", "2"}, nil)
	l.label(t, 1, "TW0001L6", true)
	slots, ie := ieOf(t, l)
	if len(ie) != 2 || ie[0].Full || ie[1].Full || ie[0].Address != 0x10 || ie[1].Slot != 2 || len(slots) != 4 {
		t.Fatalf("inventory before: slots %v ie %v", slots, ie)
	}

	// In a drive: refused.
	if _, err := l.d.Mount(context.Background(), MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0"}); err != nil {
		t.Fatal(err)
	}
	_, err := l.d.ExportVolume("", "TW0001L6", "TW0001L6", 0)
	wantErr(t, err, "unmount it first")
	if _, _, err := l.d.Unmount(context.Background(), "drive0"); err != nil {
		t.Fatal(err)
	}

	r, err := l.d.ExportVolume("", "TW0001L6", "TW0001L6", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.FromSlot != 1 || r.IeSlot != 1 || r.Changer != "changer0" {
		t.Fatalf("export: %+v", r)
	}
	slots, ie = ieOf(t, l)
	if slots[0].Full || !ie[0].Full || ie[0].Barcode != "TW0001L6" || ie[1].Full {
		t.Fatalf("inventory after export: slots %v ie %v", slots, ie)
	}
	_, err = l.d.ExportVolume("", "TW0001L6", "", 0)
	wantErr(t, err, "already in import/export slot 1")
	_, err = l.d.ExportVolume("", "TW0002L6", "", 1)
	wantErr(t, err, "import/export slot 1 of changer changer0 holds TW0001L6")
	_, err = l.d.ExportVolume("", "TW0002L6", "", 3)
	wantErr(t, err, "there is no import/export slot 3")
	_, err = l.d.ExportVolume("", "TW0099L6", "", 0)
	wantErr(t, err, "holds no cartridge TW0099L6")

	// A job session on the volume: refused (volume name or barcode).
	l.d.jobsMu.Lock()
	l.d.jobs["s1"] = &JobSession{id: "s1", open: &pb.JobOpen{Job: &pb.JobSpec{JobId: 7}, Volume: &pb.JobVolume{Volume: "V3"}}}
	l.d.jobsMu.Unlock()
	_, err = l.d.ExportVolume("", "TW0003L6", "V3", 0)
	wantErr(t, err, "volume V3 is in job session s1 (job 7)")
	l.d.jobsMu.Lock()
	delete(l.d.jobs, "s1")
	l.d.jobsMu.Unlock()

	if r, err := l.d.ExportVolume("", "TW0002L6", "", 0); err != nil || r.IeSlot != 2 {
		t.Fatalf("second export: %+v %v", r, err)
	}
	_, err = l.d.ExportVolume("", "TW0003L6", "", 0)
	wantErr(t, err, "every import/export slot of changer changer0 (2) is full")

	// Back in: the barcode is checked, the source slot is reused.
	_, err = l.d.ImportVolume("", 1, "TW0009L6")
	wantErr(t, err, "holds TW0001L6, not TW0009L6")
	ri, err := l.d.ImportVolume("", 1, "TW0001L6")
	if err != nil || ri.Slot != 1 || ri.Barcode != "TW0001L6" {
		t.Fatalf("import: %+v %v", ri, err)
	}
	_, err = l.d.ImportVolume("", 1, "")
	wantErr(t, err, "import/export slot 1 of changer changer0 is empty")
	_, err = l.d.ImportVolume("", 0, "")
	wantErr(t, err, "there is no import/export slot 0")
	// Slot 2 refilled by hand meanwhile: TW0002L6 goes to the first empty one.
	if err := l.d.changers["changer0"].dev.MoveMedium(0, 0x1002, 0x1001); err != nil {
		t.Fatal(err)
	}
	ri, err = l.d.ImportVolume("", 2, "")
	if err != nil || ri.Slot != 3 || ri.Barcode != "TW0002L6" {
		t.Fatalf("import to another slot: %+v %v", ri, err)
	}
	slots, ie = ieOf(t, l)
	if ie[0].Full || ie[1].Full || slots[0].Barcode != "TW0001L6" || slots[1].Barcode != "TW0003L6" || slots[2].Barcode != "TW0002L6" {
		t.Fatalf("inventory after import: slots %v ie %v", slots, ie)
	}
	// The volume mounts again from its slot.
	if _, err := l.d.Mount(context.Background(), MountRequest{Changer: "changer0", Slot: 1, Drive: "drive0"}); err != nil {
		t.Fatal(err)
	}
}
