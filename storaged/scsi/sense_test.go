package scsi

import (
	"errors"
	"strings"
	"testing"
)

// §5.3 byte-exact examples.
func TestSenseConformance53(t *testing.T) {
	cases := []struct {
		name     string
		bytes    string
		format   SenseFormat
		key      SenseKey
		code     ASCQ
		fm, eom  bool
		ili      bool
		valid    bool
		info     int64
		sksv, cd bool
		fp       uint16
		bpv      bool
		bit      uint8
		text     string
	}{
		{name: "filemark on READ(6) 65536", bytes: "F0 00 80 00 01 00 00 0A 00 00 00 00 00 01 00 00 00 00",
			format: SenseFixed, key: SenseNoSense, code: ASCFilemarkDetected, fm: true, valid: true, info: 65536,
			text: "NO SENSE: filemark detected (00/01) [FILEMARK INFO=65536]"},
		{name: "EOD on READ 65536", bytes: "F0 00 08 00 01 00 00 0A 00 00 00 00 00 05 00 00 00 00",
			format: SenseFixed, key: SenseBlankCheck, code: ASCEndOfData, valid: true, info: 65536,
			text: "BLANK CHECK: end-of-data detected (00/05) [INFO=65536]"},
		{name: "short block 1000 of 65536", bytes: "F0 00 20 00 00 FC 18 0A 00 00 00 00 00 00 00 00 00 00",
			format: SenseFixed, key: SenseNoSense, code: ASCNoAdditionalInfo, ili: true, valid: true, info: 64536,
			text: "NO SENSE: no additional sense information (00/00) [ILI INFO=64536]"},
		{name: "long block 1024 for 512", bytes: "F0 00 20 FF FF FE 00 0A 00 00 00 00 00 00 00 00 00 00",
			format: SenseFixed, key: SenseNoSense, ili: true, valid: true, info: -512,
			text: "NO SENSE: no additional sense information (00/00) [ILI INFO=-512]"},
		{name: "early warning on WRITE", bytes: "F0 00 40 00 00 00 00 0A 00 00 00 00 00 02 00 00 00 00",
			format: SenseFixed, key: SenseNoSense, code: ASCEndOfPartitionDetected, eom: true, valid: true, info: 0,
			text: "NO SENSE: end-of-partition/medium detected (00/02) [EOM INFO=0]"},
		{name: "volume overflow 65536", bytes: "F0 00 4D 00 01 00 00 0A 00 00 00 00 00 02 00 00 00 00",
			format: SenseFixed, key: SenseVolumeOverflow, code: ASCEndOfPartitionDetected, eom: true, valid: true, info: 65536,
			text: "VOLUME OVERFLOW: end-of-partition/medium detected (00/02) [EOM INFO=65536]"},
		{name: "invalid field in CDB byte 2", bytes: "70 00 05 00 00 00 00 0A 00 00 00 00 24 00 00 C0 00 02",
			format: SenseFixed, key: SenseIllegalRequest, code: ASCInvalidFieldInCDB, sksv: true, cd: true, fp: 2,
			text: "ILLEGAL REQUEST: invalid field in CDB (24/00) at CDB byte 2"},
		{name: "invalid field in parameter list byte 8", bytes: "70 00 05 00 00 00 00 0A 00 00 00 00 26 00 00 80 00 08",
			format: SenseFixed, key: SenseIllegalRequest, code: ASCInvalidFieldInParamList, sksv: true, fp: 8,
			text: "ILLEGAL REQUEST: invalid field in parameter list (26/00) at parameter byte 8"},
		{name: "no medium", bytes: "70 00 02 00 00 00 00 0A 00 00 00 00 3A 00 00 00 00 00",
			format: SenseFixed, key: SenseNotReady, code: ASCMediumNotPresent,
			text: "NOT READY: no cartridge in drive (medium not present, 3A/00)"},
		{name: "wrong decryption key", bytes: "70 00 07 00 00 00 00 0A 00 00 00 00 74 03 00 00 00 00",
			format: SenseFixed, key: SenseDataProtect, code: ASCIncorrectEncryptionKey,
			text: "DATA PROTECT: incorrect data encryption key (74/03)"},
		{name: "descriptor filemark info 65536", bytes: "72 00 00 01 00 00 00 10  00 0A 80 00 00 00 00 00 00 01 00 00  04 02 00 80",
			format: SenseDescriptor, key: SenseNoSense, code: ASCFilemarkDetected, fm: true, valid: true, info: 65536,
			text: "NO SENSE: filemark detected (00/01) [FILEMARK INFO=65536]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseSense(hx(t, c.bytes))
			if err != nil {
				t.Fatal(err)
			}
			if s.Format != c.format || s.Key != c.key || s.Code() != c.code {
				t.Errorf("format/key/code = %v/%v/%04X, want %v/%v/%04X", s.Format, s.Key, uint16(s.Code()), c.format, c.key, uint16(c.code))
			}
			if s.Filemark != c.fm || s.EOM != c.eom || s.ILI != c.ili {
				t.Errorf("FM/EOM/ILI = %t/%t/%t, want %t/%t/%t", s.Filemark, s.EOM, s.ILI, c.fm, c.eom, c.ili)
			}
			if s.Valid != c.valid || s.Information != c.info {
				t.Errorf("VALID/INFO = %t/%d, want %t/%d", s.Valid, s.Information, c.valid, c.info)
			}
			if s.SKSV != c.sksv || s.CD != c.cd || s.FieldPointer != c.fp || s.BPV != c.bpv || s.BitPointer != c.bit {
				t.Errorf("SKSV/CD/FP/BPV/bit = %t/%t/%d/%t/%d, want %t/%t/%d/%t/%d", s.SKSV, s.CD, s.FieldPointer, s.BPV, s.BitPointer, c.sksv, c.cd, c.fp, c.bpv, c.bit)
			}
			if s.Deferred {
				t.Error("Deferred set for a current error")
			}
			if got := s.Error(); got != c.text {
				t.Errorf("Error() = %q\nwant      %q", got, c.text)
			}
		})
	}
}

func TestSenseDescriptorSKSAndDeferred(t *testing.T) {
	// Deferred descriptor sense, ILLEGAL REQUEST 24/00 with a sense-key
	// specific descriptor: C/D=1, BPV=1 bit 7, field pointer 4.
	b := hx(t, "73 05 24 00 00 00 00 08  02 06 00 00 CF 00 04 00")
	s, err := ParseSense(b)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Deferred || !s.SKSV || !s.CD || !s.BPV || s.BitPointer != 7 || s.FieldPointer != 4 {
		t.Fatalf("got %+v", s)
	}
	want := "deferred error: ILLEGAL REQUEST: invalid field in CDB (24/00) at CDB byte 4 bit 7"
	if s.Error() != want {
		t.Fatalf("Error() = %q, want %q", s.Error(), want)
	}
}

func TestSenseHonoursAdditionalLength(t *testing.T) {
	// Additional length 6: bytes 14.. are outside the sense, even though
	// the buffer (a 252-byte sense buffer) holds garbage there.
	b := hx(t, "70 00 05 00 00 00 00 06 00 00 00 00 24 00 00 C0 00 02 FF FF")
	s, err := ParseSense(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.SKSV || s.FieldPointer != 0 || len(s.Raw) != 14 {
		t.Fatalf("SKSV=%t FP=%d raw=%d: must not read past byte 7's length", s.SKSV, s.FieldPointer, len(s.Raw))
	}
	if s.Code() != ASCInvalidFieldInCDB {
		t.Fatalf("code %v", s.Code())
	}
	// IBM-style 36-byte sense (additional length 0x1C) with SKSV=0: bytes
	// 16–17 are a fault symptom code, not a field pointer.
	ibm := hx(t, "70 00 02 00 00 00 00 1C 00 00 00 00 3A 00 00 00 12 34 00*18")
	s, err = ParseSense(ibm)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Raw) != 36 || s.SKSV || s.FieldPointer != 0 || !IsNoMedium(s) {
		t.Fatalf("IBM sense: raw %d SKSV %t FP %d", len(s.Raw), s.SKSV, s.FieldPointer)
	}
	// Truncated below byte 7's claim: decode what is there.
	s, err = ParseSense(hx(t, "70 00 06 00 00 00 00 0A 00 00 00 00 28 00"))
	if err != nil || s.Key != SenseUnitAttention || s.Code() != ASCMediumMayHaveChanged {
		t.Fatalf("truncated: %v %v", s, err)
	}
}

func TestSenseErrors(t *testing.T) {
	for _, b := range [][]byte{nil, {0x70}, {0x70, 0}, {0x72, 0, 0}} {
		if _, err := ParseSense(b); !errors.Is(err, ErrSenseTruncated) {
			t.Errorf("% X: err %v, want ErrSenseTruncated", b, err)
		}
	}
	if _, err := ParseSense([]byte{0x7F, 0, 0, 0}); !errors.Is(err, ErrSenseFormat) {
		t.Errorf("0x7F: err %v", err)
	}
}

func TestSenseHelpersAndErrorsAs(t *testing.T) {
	s, _ := ParseSense(hx(t, "70 00 02 00 00 00 00 0A 00 00 00 00 3A 00 00 00 00 00"))
	err := error(&CommandError{Addr: "/dev/sg3", Op: "TEST UNIT READY", Err: s})
	if !IsNoMedium(err) || !IsNotReady(err) || IsUnitAttention(err) || IsIllegalRequest(err) {
		t.Fatal("helper mismatch for 02/3A/00")
	}
	if !errors.Is(err, ASCMediumNotPresent) || errors.Is(err, ASCInvalidOpcode) {
		t.Fatal("errors.Is on ASCQ")
	}
	var got *Sense
	if !errors.As(err, &got) || got != s {
		t.Fatal("errors.As")
	}
	if want := "/dev/sg3: TEST UNIT READY: NOT READY: no cartridge in drive (medium not present, 3A/00)"; err.Error() != want {
		t.Fatalf("%q", err.Error())
	}
	ua, _ := ParseSense(hx(t, "70 00 06 00 00 00 00 0A 00 00 00 00 2A 11 00 00 00 00"))
	if !IsUnitAttention(ua) || !strings.Contains(ua.Error(), "changed by another I_T nexus") {
		t.Fatal(ua.Error())
	}
	io, _ := ParseSense(hx(t, "70 00 05 00 00 00 00 0A 00 00 00 00 20 00 00 00 00 00"))
	if !IsInvalidOpcode(io) || !IsIllegalRequest(io) {
		t.Fatal("invalid opcode")
	}
	for name, f := range map[string]func(error) bool{"blank": IsBlankCheck, "overflow": IsVolumeOverflow, "wp": IsWriteProtected, "enc": IsEncryptionError} {
		if f(io) {
			t.Errorf("%s matched 05/20/00", name)
		}
	}
	wk, _ := ParseSense(hx(t, "70 00 07 00 00 00 00 0A 00 00 00 00 74 03 00 00 00 00"))
	if !IsEncryptionError(wk) {
		t.Fatal("74/03 not an encryption error")
	}
	// Progress indication on NOT READY with SKSV.
	pr, _ := ParseSense(hx(t, "70 00 02 00 00 00 00 0A 00 00 00 00 04 01 00 80 80 00"))
	if p, ok := pr.Progress(); !ok || p != 0.5 || !IsBecomingReady(pr) || !strings.Contains(pr.Error(), "50% done") {
		t.Fatalf("progress %v %v %q", p, ok, pr.Error())
	}
}

// Every ASC/ASCQ the reference lists must have text of its own.
func TestASCTextCoversReference(t *testing.T) {
	listed := []ASCQ{
		0x0000, 0x0001, 0x0002, 0x0004, 0x0005, 0x0007, 0x0401, 0x0402, 0x0403, 0x1100, 0x1401, 0x1A00,
		0x2000, 0x2101, 0x2400, 0x2600, 0x2610, 0x2611, 0x2612, 0x2700, 0x2800, 0x2801, 0x2900,
		0x2901, 0x2902, 0x2903, 0x2904, 0x2A01, 0x2A0D, 0x2A11, 0x2A12, 0x2A13, 0x3000, 0x3001, 0x3002, 0x3003,
		0x3005, 0x300C, 0x3100, 0x3A00, 0x3A02, 0x3A04, 0x3B00, 0x3B0D, 0x3B0E, 0x4000, 0x4400, 0x5300,
		0x5301, 0x5302, 0x5508, 0x7400, 0x7401, 0x7402, 0x7403, 0x7404, 0x7405, 0x7406, 0x7407, 0x7408,
		0x7409, 0x740A, 0x740B, 0x740C, 0x740D, 0x7410, 0x7411, 0x7412, 0x7421, 0x7430, 0x7440, 0x7461,
		0x7462, 0x7463, 0x7464, 0x746E, 0x746F, 0x7471, 0x7479,
	}
	for _, c := range listed {
		if _, ok := ascText[c]; !ok {
			t.Errorf("%02X/%02X has no text", c.ASC(), c.Qualifier())
		}
	}
	if got := ASCQ(0xEE0E).Text(); !strings.Contains(got, "IBM") || !strings.Contains(got, "timeout") {
		t.Errorf("EE/0E: %q", got)
	}
	if got := ASCQ(0x8300).Text(); got != "vendor specific" {
		t.Errorf("83/00: %q", got)
	}
	if got := ASCQ(0x7F7F).Text(); got != "unknown additional sense code" {
		t.Errorf("7F/7F: %q", got)
	}
	if ASCQ(0x3A00).String() != "medium not present (3A/00)" {
		t.Errorf("String: %q", ASCQ(0x3A00).String())
	}
}

func TestSenseFixedDeferred(t *testing.T) {
	// 0x71: a buffered WRITE that failed to flush, reported on a later command.
	s, err := ParseSense(hx(t, "F1 00 03 00 00 00 02 0A 00 00 00 00 0C 00 00 00 00 00"))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Deferred || s.Format != SenseFixed || s.Key != SenseMediumError || !s.Valid || s.Information != 2 {
		t.Fatalf("%+v", s)
	}
	if !strings.HasPrefix(s.Error(), "deferred error: MEDIUM ERROR: write error ") || !strings.HasSuffix(s.Error(), "(0C/00) [INFO=2]") {
		t.Fatalf("%q", s.Error())
	}
	// A deferred error on WRITE is a failure, never "written".
	dev, _ := script(t, func(c *Command) Result { return check(s.Raw) })
	if _, err := dev.Write(make([]byte, 512)); err == nil || !strings.Contains(err.Error(), "deferred error") {
		t.Fatalf("WRITE with deferred sense: %v", err)
	}
}
