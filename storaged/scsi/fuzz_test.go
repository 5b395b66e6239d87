package scsi

import (
	"encoding/json"
	"testing"
)

// The parsers must never panic, whatever the device sends. Each target
// also renders what it decoded (String/Error/JSON), which walks every field.

func FuzzParseSense(f *testing.F) {
	for _, s := range []string{
		"F0 00 80 00 01 00 00 0A 00 00 00 00 00 01 00 00 00 00",
		"F0 00 20 FF FF FE 00 0A 00 00 00 00 00 00 00 00 00 00",
		"70 00 05 00 00 00 00 0A 00 00 00 00 26 00 00 80 00 08",
		"72 00 00 01 00 00 00 10  00 0A 80 00 00 00 00 00 00 01 00 00  04 02 00 80",
		"73 05 24 00 00 00 00 08  02 06 00 00 CF 00 04 00",
		"72 00 00 00 00 00 00 FF 00 FF",
		"70",
	} {
		f.Add(hxNoT(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSense(b)
		if err != nil {
			return
		}
		_ = s.Error()
		if len(s.Raw) > len(b) {
			t.Fatalf("Raw longer than input")
		}
		if len(b) >= 8 && len(s.Raw) > 8+int(b[7]) {
			t.Fatalf("read past ADDITIONAL SENSE LENGTH")
		}
	})
}

func FuzzSPINPages(f *testing.F) {
	for _, s := range []string{
		"00 10 00 3C 09 00*15 01 00 00 14 8A 8C 00 20 00 3C 00 20 ED 00 00 00 00 00 00 00 00 01 00 14 02 00 00 14 8A 8F 00 20 00 3C 00 20 D9 00 00 00 00 00 00 00 00 01 00 10",
		"00 10 00 28 01 00*15 01 00 00 14 BA 10 00 20 00 0C 00 20 09 00 00 00 00 00 00 00 00 01 00 14",
		"00 20 00 14 00 00 00 00 00 00 00 00 10 00*11",
		`00 20 00 24 42 02 02 01 00 00 00 01 18 00 00 00 00*8 00 01 00 0C "Hello world!"`,
		"00 21 00 0C 00*8 03 00 00 00",
		`00 21 00 1C 00*7 01 05 01 00 00 00 01 00 0C "Hello world!"`,
		"00 11 00 01 00",
		"00 12 00 0C 01 07 00 07 00*8",
		"00 00 00 0E 00 00 00 01 00 10 00 11 00 12 00 20 00 21",
		"00 01 00 02 00 10",
		"00 00 00 00 00 00 00 02 00 20",
	} {
		f.Add(hxNoT(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseDEC(b); err == nil {
			_ = c.String()
			_, _ = json.Marshal(c)
		}
		if s, err := ParseDES(b); err == nil {
			_ = s.String()
			_, _ = json.Marshal(s)
		}
		if n, err := ParseNBES(b); err == nil {
			_ = n.String()
			_, _ = json.Marshal(n)
		}
		_, _ = ParseKeyFormats(b)
		_, _ = ParseManagementCaps(b)
		_, _ = ParsePageList(b, 0)
		_, _ = ParsePageList(b, 1)
		_, _ = ParseSupportedProtocols(b)
	})
}

func FuzzParseElementStatus(f *testing.F) {
	id := []byte("IBM     ULT3580-TD6     1013000123")
	f.Add(elemData(0x0100, 2, elemPage(ElementDataTransfer, true, 12+36+4+len(id),
		desc(0x0100, 0x09, 0x30, 0x05, 0x81, 0x1002, "ABC123L6", true, id, 1),
		desc(0x0101, 0x0C, 0xA0, 0x00, 0x00, 0, "", true, id, 1))))
	f.Add(elemData(0x1000, 1, elemPage(ElementStorage, true, 52, desc(0x1000, 1, 0, 0, 0, 0, "A00001L6", true, nil, 0))))
	f.Add(elemData(0, 0))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 8, 4, 0xC0, 0, 5, 0, 0, 0, 0})
	tgt := tgtDrives()
	f.Add(tgt[:len(tgt)-8]) // tgt: 8 bytes short of its byte count
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := ParseElementStatus(b)
		if err != nil {
			return
		}
		for _, e := range es.Elements {
			_ = e.String()
		}
		_, _ = json.Marshal(es)
	})
}

func FuzzParsePosition(f *testing.F) {
	f.Add(hxNoT("80 00 00 00 00*28"))
	f.Add(hxNoT("45 00 00 00 00 00 00 01 00 00 00 01 00 00 00 07 00 00 00 00 00 00 00 03 00*8"))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePositionLong(b)
		if err != nil {
			if len(b) >= 32 {
				t.Fatalf("32+ bytes rejected: %v", err)
			}
			return
		}
		_ = p.String()
	})
}

func FuzzOtherParsers(f *testing.F) {
	f.Add(hxNoT("1B 00 10 08  5A 00 00 00 00 00 00 00  0F 0E C0 80 00 00 00 01 00 00 00 01 00 00 00 00"))
	f.Add(hxNoT("00 1E 00 90 00 00 00 08  44 00 00 00 00 00 02 00  10 0E 00 00 00 00 00 64 40 00 18 00 00 00 00 80"))
	f.Add(hxNoT(`01 83 00 32 02 01 00 22 "IBM     ULT3580-TD6     1013000123" 01 03 00 08 50 05 07 63 00 01 02 03`))
	f.Add(hxNoT("2E 00 00 05 00 01 C0 01 01"))
	f.Add(hxNoT("17 00 00 00  1D 12 00 01 00 01 10 00 00 08 00 10 00 01 01 00 00 02 00 00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseModeSense6(b)
		_, _ = ParseModeSense10(b)
		_, _ = ParseInquiry(b)
		_, _ = ParseDeviceIdentificationVPD(b)
		_, _ = ParseSerialVPD(b)
		_, _ = ParseSupportedVPD(b)
		_, _ = ParseTapeAlertPage(b)
		_, _ = ParseElementAddressPage(b)
		_, _ = ParseBlockLimits(b)
	})
}
