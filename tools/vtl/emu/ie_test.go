package emu

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportExportSlots: a library with three I/E elements reports them in
// MODE SENSE 0x1D and READ ELEMENT STATUS (type 3, addresses 0x0010..0x0012),
// MOVE MEDIUM carries cartridges to and from each of them, IMPEXP tells an
// operator's insertion from the robot's export, and the contents survive a
// power cycle (§6.3).
func TestImportExportSlots(t *testing.T) {
	h := newTestLib(t, func(c *Config) { c.IESlots = 3 })
	c := h.dial("changer")
	drainUA(t, c)

	r := must(t, c, []byte{0x1A, 0x08, 0x1D, 0, 0xFF, 0}, nil, 0xFF)
	if len(r.data) != 24 || be16(r.data[4+10:]) != 0x0010 || be16(r.data[4+12:]) != 3 {
		t.Fatalf("element address page: % X", r.data)
	}
	r = must(t, c, res8(3, true, false, 0, 1000), nil, 0xFFFF)
	first, n, els := decodeRES(t, r.data)
	if first != 0x0010 || n != 3 || len(els) != 3 || els[2].addr != 0x0012 {
		t.Fatalf("I/E elements: first %#x n %d %+v", first, n, els)
	}
	for _, e := range els {
		if e.flags != 0x38 {
			t.Fatalf("empty I/E %#x flags %#x, want ACCESS|EXENAB|INENAB", e.addr, e.flags)
		}
	}
	r = must(t, c, res8(0, false, false, 0, 1000), nil, 0xFFFF)
	if _, n, _ := decodeRES(t, r.data); n != 1+3+2+4 {
		t.Fatalf("all elements: %d", n)
	}

	// Export slots 1 and 3 to I/E 2 and 3.
	must(t, c, moveMedium(0x1000, 0x0011), nil, 0)
	must(t, c, moveMedium(0x1002, 0x0012), nil, 0)
	expect(t, c, "5/3B/0D", moveMedium(0x1001, 0x0012), nil, 0) // I/E 3 full
	expect(t, c, "5/3B/0E", moveMedium(0x0010, 0x1000), nil, 0) // I/E 1 empty
	r = expect(t, c, "5/21/01", moveMedium(0x1001, 0x0013), nil, 0)
	if cd, f := r.fieldPtr(); !cd || f != 6 {
		t.Fatalf("I/E past the last: pointer %v %d", cd, f)
	}
	r = must(t, c, res8(3, true, false, 0x0011, 2), nil, 0xFFFF)
	_, _, els = decodeRES(t, r.data)
	if len(els) != 2 || els[0].flags != 0x39 || !els[0].svalid || els[0].src != 0x1000 ||
		!strings.HasPrefix(els[0].barcode, "TW0001L6") || els[1].src != 0x1002 || !strings.HasPrefix(els[1].barcode, "TW0003L6") {
		t.Fatalf("after export: %+v", els)
	}

	// The operator takes TW0001L6 out and puts it back in I/E 1 (a panel
	// move stands for both): IMPEXP set, 06/28/01 for the changer.
	p, err := DialPanel(h.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Do(PanelRequest{Op: "move", From: 0x0011, To: 0x0010}); err != nil {
		t.Fatal(err)
	}
	expect(t, c, "6/28/01", tur(), nil, 0)
	r = must(t, c, res8(3, true, false, 0x0010, 1), nil, 0xFFFF)
	_, _, els = decodeRES(t, r.data)
	if els[0].flags != 0x3B {
		t.Fatalf("operator-placed I/E flags %#x, want FULL|IMPEXP|ACCESS|EXENAB|INENAB", els[0].flags)
	}
	resp, err := p.Do(PanelRequest{Op: "status"})
	if err != nil {
		t.Fatal(err)
	}
	if st := resp.Status; len(st.IESlots) != 3 || st.IESlots[0].Barcode != "TW0001L6" || st.IESlots[2].Barcode != "TW0003L6" ||
		st.IESlots[1].Barcode != "" || st.IE.Address != 0x0010 {
		t.Fatalf("status: %+v", st.IESlots)
	}

	h.restart()
	c = h.dial("changer")
	drainUA(t, c)
	r = must(t, c, res8(3, true, false, 0, 1000), nil, 0xFFFF)
	_, _, els = decodeRES(t, r.data)
	if els[0].flags != 0x3B || els[2].flags != 0x39 || els[2].src != 0x1002 {
		t.Fatalf("after restart: %+v", els)
	}
	// Import back: the source slots are empty again.
	must(t, c, moveMedium(0x0010, 0x1000), nil, 0)
	must(t, c, moveMedium(0x0012, 0x1002), nil, 0)
	r = must(t, c, res8(2, true, false, 0, 1000), nil, 0xFFFF)
	_, _, els = decodeRES(t, r.data)
	if !strings.HasPrefix(els[0].barcode, "TW0001L6") || !strings.HasPrefix(els[2].barcode, "TW0003L6") {
		t.Fatalf("slots after import: %+v", els)
	}
}

// TestIEInventoryUpgrade: an inventory written with the single "ie" field
// keeps its cartridge in I/E 1; fewer --ie-slots than full I/E elements is
// refused, naming the element.
func TestIEInventoryUpgrade(t *testing.T) {
	dir := t.TempDir()
	old := `{"slots":["","TW0002L6"],"ie":"TW0001L6","ie_source":4096,"drives":["",""],"drive_source":[0,0]}`
	if err := os.WriteFile(filepath.Join(dir, "library.json"), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	lib, err := NewLibrary(Config{Dir: dir, Slots: 2, Drives: 2, IESlots: 2, Capacity: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	st := lib.Status()
	lib.Close()
	if len(st.IESlots) != 2 || st.IESlots[0].Barcode != "TW0001L6" {
		t.Fatalf("upgraded I/E: %+v", st.IESlots)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "library.json"))
	var inv inventory
	if err := json.Unmarshal(b, &inv); err != nil || inv.IE != "" || inv.IESlots[0] != "TW0001L6" || inv.IESources[0] != 0x1000 {
		t.Fatalf("saved inventory: %s", b)
	}
	// Move it to I/E 2, then ask for one I/E slot.
	lib, err = NewLibrary(Config{Dir: dir, Slots: 2, Drives: 2, IESlots: 2, Capacity: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := lib.PanelMove(0x0010, 0x0011); err != nil {
		t.Fatal(err)
	}
	lib.Close()
	_, err = NewLibrary(Config{Dir: dir, Slots: 2, Drives: 2, IESlots: 1, Capacity: 8 << 20})
	if err == nil || !strings.Contains(err.Error(), "import/export slot 2") {
		t.Fatalf("shrinking over a full I/E: %v", err)
	}
}
