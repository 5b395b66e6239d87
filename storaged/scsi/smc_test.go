package scsi

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// elemPage builds one element status page (§6.3).
func elemPage(typ ElementType, pvol bool, dl int, descs ...[]byte) []byte {
	h := make([]byte, 8)
	h[0] = byte(typ)
	if pvol {
		h[1] = 0x80
	}
	binary.BigEndian.PutUint16(h[2:], uint16(dl))
	n := 0
	for _, d := range descs {
		n += len(d)
	}
	h[5], h[6], h[7] = byte(n>>16), byte(n>>8), byte(n)
	for _, d := range descs {
		h = append(h, d...)
	}
	return h
}

func elemData(first, count uint16, pages ...[]byte) []byte {
	h := make([]byte, 8)
	binary.BigEndian.PutUint16(h[0:], first)
	binary.BigEndian.PutUint16(h[2:], count)
	n := 0
	for _, p := range pages {
		n += len(p)
	}
	h[5], h[6], h[7] = byte(n>>16), byte(n>>8), byte(n)
	for _, p := range pages {
		h = append(h, p...)
	}
	return h
}

// desc builds a descriptor: 12 fixed bytes, optional 36-byte volume tag,
// then (mhVTL style) a 4-byte identifier header and identifier.
func desc(addr uint16, flags byte, b6, b7 byte, b9 byte, src uint16, tag string, withTag bool, id []byte, idType byte) []byte {
	d := make([]byte, 12)
	binary.BigEndian.PutUint16(d[0:], addr)
	d[2], d[6], d[7], d[9] = flags, b6, b7, b9
	binary.BigEndian.PutUint16(d[10:], src)
	if withTag {
		t := make([]byte, 36)
		copy(t, tag+strings.Repeat(" ", 32-len(tag)))
		t[35] = 1
		d = append(d, t...)
	}
	d = append(d, 2, idType, 0, byte(len(id)))
	return append(d, id...)
}

func TestParseElementStatusAllTypes(t *testing.T) {
	id := []byte("IBM     ULT3580-TD6     1013000123")
	dtLen := 12 + 36 + 4 + len(id)
	data := elemData(0x0001, 6,
		elemPage(ElementTransport, true, 52, desc(0x0001, 0x00, 0, 0, 0, 0, "", true, nil, 0)),
		elemPage(ElementImportExport, true, 52, desc(0x0010, 0x3B, 0, 0, 0x81, 0, "CLN001L1", true, nil, 0)),
		elemPage(ElementDataTransfer, true, dtLen,
			desc(0x0100, 0x09, 0x30, 0x05, 0x81, 0x1002, "ABC123L6", true, id, 1),
			desc(0x0101, 0x0C, 0xA0, 0x00, 0x00, 0, "", true, id, 1)),
		elemPage(ElementStorage, true, 52,
			desc(0x1000, 0x09, 0, 0, 0x00, 0, "XYZ001L6\x00\x00", true, nil, 0),
			desc(0x1001, 0x08, 0, 0, 0, 0, "", true, nil, 0)),
	)
	es, err := ParseElementStatus(data)
	if err != nil {
		t.Fatal(err)
	}
	if es.Truncated || es.FirstAddress != 1 || es.Available != 6 || len(es.Elements) != 6 {
		t.Fatalf("%+v", es)
	}
	tr, ie, d0, d1, s0, s1 := es.Elements[0], es.Elements[1], es.Elements[2], es.Elements[3], es.Elements[4], es.Elements[5]
	if tr.Type != ElementTransport || tr.Full || tr.Address != 1 {
		t.Errorf("transport %+v", tr)
	}
	if ie.Type != ElementImportExport || !ie.Full || !ie.ImpExp || !ie.Access || !ie.ExEnab || !ie.InEnab || ie.VolumeTag != "CLN001L1" || ie.VolumeSeq != 1 || !ie.SValid || ie.MediumType != 1 {
		t.Errorf("I/E %+v", ie)
	}
	if d0.Type != ElementDataTransfer || !d0.Full || !d0.Access || !d0.IDValid || !d0.LUValid || d0.LUN != 0 || d0.BusAddress != 5 ||
		!d0.SValid || d0.Source != 0x1002 || d0.VolumeTag != "ABC123L6" || d0.DeviceID == nil ||
		d0.DeviceID.Vendor != "IBM" || d0.DeviceID.Product != "ULT3580-TD6" || d0.DeviceID.Serial != "1013000123" || d0.DeviceID.Type != 1 {
		t.Errorf("drive 0 %+v %+v", d0, d0.DeviceID)
	}
	if d1.Full || !d1.Except || !d1.NotBus || !d1.IDValid || d1.SValid {
		t.Errorf("drive 1 %+v", d1)
	}
	if s0.Type != ElementStorage || !s0.Full || s0.VolumeTag != "XYZ001L6" || s1.Full || s1.VolumeTag != "" || s0.DeviceID != nil {
		t.Errorf("slots %+v %+v", s0, s1)
	}
	if got := d0.String(); got != "data transfer 0x0100 full ABC123L6 (from 0x1002) [IBM ULT3580-TD6 1013000123]" {
		t.Errorf("String %q", got)
	}
	// Serial-only identifier (type 0) as on a Quantum Superloader 3.
	data = elemData(0x0100, 1, elemPage(ElementDataTransfer, false, 12+4+8, desc(0x0100, 0, 0, 0, 0, 0, "", false, []byte("HU1234AB"), 0)))
	es, err = ParseElementStatus(data)
	if err != nil || len(es.Elements) != 1 || es.Elements[0].DeviceID.Serial != "HU1234AB" || es.Elements[0].DeviceID.Vendor != "" {
		t.Fatalf("serial only: %+v %v", es, err)
	}
}

func TestParseElementStatusTruncated(t *testing.T) {
	data := elemData(0x1000, 3, elemPage(ElementStorage, true, 52,
		desc(0x1000, 1, 0, 0, 0, 0, "A00001L6", true, nil, 0),
		desc(0x1001, 1, 0, 0, 0, 0, "A00002L6", true, nil, 0),
		desc(0x1002, 1, 0, 0, 0, 0, "A00003L6", true, nil, 0)))
	cut := data[:8+8+52+30]
	es, err := ParseElementStatus(cut)
	// The second descriptor is cut 30 bytes in: its fixed part and its
	// barcode (followed by padding) arrived, so it is kept, marked Cut.
	if err != nil || !es.Truncated || len(es.Elements) != 2 || es.Elements[0].VolumeTag != "A00001L6" || es.Elements[0].Cut ||
		!es.Elements[1].Cut || es.Elements[1].VolumeTag != "A00002L6" || es.Elements[1].TagCut {
		t.Fatalf("%+v %v", es, err)
	}
	// Cut 16 bytes in: the barcode is not known to be whole.
	es, err = ParseElementStatus(data[:8+8+52+16])
	if err != nil || len(es.Elements) != 2 || es.Elements[1].VolumeTag != "" || !es.Elements[1].TagCut {
		t.Fatalf("cut in the tag: %+v %v", es, err)
	}
	// Cut inside the fixed 12 bytes: not kept.
	es, err = ParseElementStatus(data[:8+8+52+11])
	if err != nil || len(es.Elements) != 1 {
		t.Fatalf("cut in the fixed part: %+v %v", es, err)
	}
	// The device method re-issues with the reported length.
	calls := 0
	ft := &fakeTransport{do: func(c *Command) (Result, error) {
		calls++
		return reply(c, data), nil
	}}
	dev := NewDevice(ft)
	es, err = dev.ReadElementStatus(ReadElementStatusOpts{Type: ElementStorage, VolTag: true, Alloc: 100})
	if err != nil || calls != 2 || len(es.Elements) != 3 || es.Truncated {
		t.Fatalf("calls %d %+v %v", calls, es, err)
	}
	if ft.cmds[1].CDB[9] != byte(len(data)) {
		t.Fatalf("second allocation % X", ft.cmds[1].CDB)
	}
}

func TestInventoryDVCIDFallback(t *testing.T) {
	id := []byte("HP      Ultrium 6-SCSI  HU1234ABCD")
	drvTag := elemData(0x01F4, 1, elemPage(ElementDataTransfer, true, 52, desc(0x01F4, 1, 0, 0, 0x81, 0x03E8, "TAPE01L6", true, nil, 0)))
	drvID := elemData(0x01F4, 1, elemPage(ElementDataTransfer, false, 16+len(id), desc(0x01F4, 1, 0, 0, 0, 0, "", false, id, 1)))
	empty := elemData(0, 0)
	ft := &fakeTransport{do: func(c *Command) (Result, error) {
		typ := ElementType(c.CDB[1] & 0x0F)
		voltag, dvcid := c.CDB[1]&0x10 != 0, c.CDB[6]&1 != 0
		switch {
		case typ != ElementDataTransfer:
			return reply(c, empty), nil
		case voltag && dvcid:
			return sense(5, 0x24, 0), nil
		case voltag:
			return reply(c, drvTag), nil
		default:
			return reply(c, drvID), nil
		}
	}}
	els, err := NewDevice(ft).Inventory()
	if err != nil || len(els) != 1 {
		t.Fatalf("%+v %v", els, err)
	}
	e := els[0]
	if e.VolumeTag != "TAPE01L6" || e.Source != 0x03E8 || e.DeviceID == nil || e.DeviceID.Serial != "HU1234ABCD" {
		t.Fatalf("%+v", e)
	}
}

func TestElementAddressPage(t *testing.T) {
	// §6.3: 4-byte header (MODE DATA LENGTH 23) + 20-byte page, IBM style.
	b := hx(t, "17 00 00 00  1D 12 00 01 00 01 10 00 00 08 00 10 00 01 01 00 00 02 00 00")
	a, err := ParseElementAddressPage(b)
	if err != nil {
		t.Fatal(err)
	}
	want := ElementAddressAssignment{FirstTransport: 1, NumTransport: 1, FirstStorage: 0x1000, NumStorage: 8,
		FirstImportExport: 0x10, NumImportExport: 1, FirstDataTransfer: 0x100, NumDataTransfer: 2}
	if *a != want {
		t.Fatalf("%+v", a)
	}
	if _, err := ParseElementAddressPage(hx(t, "07 00 00 00 1E 02 00 00")); err == nil {
		t.Fatal("missing page accepted")
	}
}

// tgtDrives is the data transfer page of two HP drives with VOLTAG and
// DVCID as a changer sends it: 8-byte header, 8-byte page header, two
// descriptors of 12 + 36 + 4 + 34 = 86 bytes.
func tgtDrives() []byte {
	id0 := []byte("HP      Ultrium 6-SCSI  HU1234ABC0")
	id1 := []byte("HP      Ultrium 6-SCSI  HU1234ABC1")
	return elemData(0x01F4, 2, elemPage(ElementDataTransfer, true, 86,
		desc(0x01F4, 0x09, 0, 0, 0x81, 0x03E8, "TAPE01L6", true, id0, 1),
		desc(0x01F5, 0x08, 0, 0, 0, 0, "", true, id1, 1)))
}

// TestParseElementStatusTGTShort: tgt's READ ELEMENT STATUS sends 8 bytes
// less than its byte count (finding 6). The last drive lost only the tail
// of its DVCID identifier: it is kept, without an identifier.
func TestParseElementStatusTGTShort(t *testing.T) {
	full := tgtDrives()
	if len(full) != 8+8+2*86 || full[7] != 8+2*86 || full[15] != 2*86 {
		t.Fatalf("fixture: % X", full[:16])
	}
	es, err := ParseElementStatus(full[:len(full)-8])
	if err != nil || !es.Truncated || len(es.Elements) != 2 {
		t.Fatalf("%+v %v", es, err)
	}
	d0, d1 := es.Elements[0], es.Elements[1]
	if d0.Cut || d0.DeviceID == nil || d0.DeviceID.Serial != "HU1234ABC0" || d0.VolumeTag != "TAPE01L6" {
		t.Fatalf("drive 0 %+v", d0)
	}
	if !d1.Cut || d1.TagCut || d1.DeviceID != nil || d1.Address != 0x01F5 || d1.Full || !d1.Access {
		t.Fatalf("drive 1 %+v", d1)
	}
}

// TestInventoryTGTShort: a changer that always answers 8 bytes short.
// Inventory keeps every drive, retries without DVCID and merges whole
// identifiers; an answer that misses a whole element is an error.
func TestInventoryTGTShort(t *testing.T) {
	empty := elemData(0, 0)
	full := tgtDrives()
	noID := elemData(0x01F4, 2, elemPage(ElementDataTransfer, true, 48,
		desc(0x01F4, 0x09, 0, 0, 0x81, 0x03E8, "TAPE01L6", true, nil, 0)[:48],
		desc(0x01F5, 0x08, 0, 0, 0, 0, "", true, nil, 0)[:48]))
	var asked []string
	ft := &fakeTransport{do: func(c *Command) (Result, error) {
		typ := ElementType(c.CDB[1] & 0x0F)
		voltag, dvcid := c.CDB[1]&0x10 != 0, c.CDB[6]&1 != 0
		if typ != ElementDataTransfer {
			return reply(c, empty), nil
		}
		asked = append(asked, fmt.Sprintf("voltag=%t dvcid=%t", voltag, dvcid))
		b := full
		if !dvcid {
			b = noID
		}
		return reply(c, b[:len(b)-8]), nil // tgt: 8 bytes less
	}}
	els, err := NewDevice(ft).Inventory()
	if err != nil || len(els) != 2 {
		t.Fatalf("%+v %v", els, err)
	}
	if els[0].VolumeTag != "TAPE01L6" || els[0].DeviceID == nil || els[0].DeviceID.Serial != "HU1234ABC0" || els[1].Address != 0x01F5 {
		t.Fatalf("%+v %+v", els[0], els[1])
	}
	if want := "[voltag=true dvcid=true voltag=true dvcid=false voltag=false dvcid=true]"; fmt.Sprint(asked) != want {
		t.Fatalf("queries %v, want %s", asked, want)
	}

	// A changer whose answer lacks a whole descriptor: an error, not a
	// library with one drive less.
	ft.do = func(c *Command) (Result, error) {
		if ElementType(c.CDB[1]&0x0F) != ElementDataTransfer {
			return reply(c, empty), nil
		}
		return reply(c, full[:8+8+86]), nil
	}
	_, err = NewDevice(ft).Inventory()
	if err == nil || !strings.Contains(err.Error(), "reports 2 elements but its answer holds only 1") {
		t.Fatalf("missing element: %v", err)
	}
}
