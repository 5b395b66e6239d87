package scsi

import (
	"encoding/binary"
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
	if err != nil || !es.Truncated || len(es.Elements) != 1 || es.Elements[0].VolumeTag != "A00001L6" {
		t.Fatalf("%+v %v", es, err)
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
