package scsi

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// CDB bytes of every builder (§6).
func TestCDBBuilders(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"TUR", TestUnitReadyCDB(), "00 00 00 00 00 00"},
		{"REQUEST SENSE 252", RequestSenseCDB(false, 252), "03 00 00 00 FC 00"},
		{"REQUEST SENSE desc", RequestSenseCDB(true, 252), "03 01 00 00 FC 00"},
		{"INQUIRY std", InquiryCDB(false, 0, 96), "12 00 00 00 60 00"},
		{"INQUIRY VPD 0x83", InquiryCDB(true, 0x83, 0x200), "12 01 83 02 00 00"},
		{"MODE SENSE(6) 0x1D dbd", ModeSense6CDB(true, 0, 0x1D, 0, 0xFF), "1A 08 1D 00 FF 00"},
		{"MODE SENSE(6) changeable 0x0F", ModeSense6CDB(false, PageControlChangeable, 0x0F, 0, 0x40), "1A 00 4F 00 40 00"},
		{"MODE SENSE(10) 0x10/0x01", ModeSense10CDB(true, 0, 0x10, 0x01, 0x1000), "5A 08 10 01 00 00 00 10 00 00"},
		{"MODE SELECT(6)", ModeSelect6CDB(false, 28), "15 10 00 00 1C 00"},
		{"MODE SELECT(10) save", ModeSelect10CDB(true, 300), "55 11 00 00 00 00 00 01 2C 00"},
		{"LOG SENSE 0x2E", LogSenseCDB(0x2E, 0, 0, 0x180), "4D 00 6E 00 00 00 00 01 80 00"},
		{"PREVENT", PreventAllowCDB(true), "1E 00 00 00 01 00"},
		{"ALLOW", PreventAllowCDB(false), "1E 00 00 00 00 00"},
		{"READ BLOCK LIMITS", ReadBlockLimitsCDB(), "05 00 00 00 00 00"},
		{"READ(6) 64K SILI", Read6CDB(65536, true), "08 02 01 00 00 00"},
		{"READ(6) 1M", Read6CDB(1<<20, false), "08 00 10 00 00 00"},
		{"WRITE(6) 256K", Write6CDB(256 << 10), "0A 00 04 00 00 00"},
		{"WRITE FILEMARKS 1 immed", WriteFilemarks6CDB(1, true), "10 01 00 00 01 00"},
		{"WRITE FILEMARKS 0 (sync)", WriteFilemarks6CDB(0, false), "10 00 00 00 00 00"},
		{"SPACE -1 block", SpaceCDB(SpaceBlocks, -1), "11 00 FF FF FF 00"},
		{"SPACE +1 filemark", SpaceCDB(SpaceFilemarks, 1), "11 01 00 00 01 00"},
		{"SPACE EOD", SpaceCDB(SpaceEndOfData, 0), "11 03 00 00 00 00"},
		{"SPACE(16) 2^23 blocks", SpaceCDB(SpaceBlocks, 1<<23), "91 00 00 00 00 00 00 00 00 80 00 00 00 00 00 00"},
		{"SPACE(16) -2^23-1", SpaceCDB(SpaceFilemarks, -(1<<23)-1), "91 01 00 00 FF FF FF FF FF 7F FF FF 00 00 00 00"},
		{"REWIND", RewindCDB(false), "01 00 00 00 00 00"},
		{"REWIND immed", RewindCDB(true), "01 01 00 00 00 00"},
		{"LOAD", LoadUnloadCDB(LoadUnloadOpts{Load: true}), "1B 00 00 00 01 00"},
		{"UNLOAD", LoadUnloadCDB(LoadUnloadOpts{}), "1B 00 00 00 00 00"},
		{"UNLOAD hold immed eot reten", LoadUnloadCDB(LoadUnloadOpts{Immed: true, Hold: true, EOT: true, Reten: true}), "1B 01 00 00 0E 00"},
		{"READ POSITION long", ReadPositionLongCDB(), "34 06 00 00 00 00 00 00 00 00"},
		{"LOCATE(16) block 0x123456789", Locate16CDB(LocateBlock, 0x123456789, 0, false, false), "92 00 00 00 00 00 00 01 23 45 67 89 00 00 00 00"},
		{"LOCATE(16) file 5 immed", Locate16CDB(LocateFile, 5, 0, false, true), "92 09 00 00 00 00 00 00 00 00 00 05 00 00 00 00"},
		{"LOCATE(16) EOD part 1", Locate16CDB(LocateEOD, 0, 1, true, false), "92 1A 00 01 00 00 00 00 00 00 00 00 00 00 00 00"},
		{"READ ELEMENT STATUS storage voltag", ReadElementStatusCDB(ReadElementStatusOpts{Type: ElementStorage, VolTag: true, Count: 1000, Alloc: 0xFFFF}), "B8 12 00 00 03 E8 00 00 FF FF 00 00"},
		{"READ ELEMENT STATUS drives dvcid", ReadElementStatusCDB(ReadElementStatusOpts{Type: ElementDataTransfer, DVCID: true, Start: 0x100, Count: 2, Alloc: 0x123456}), "B8 04 01 00 00 02 01 12 34 56 00 00"},
		{"MOVE MEDIUM", MoveMediumCDB(0, 0x1000, 0x0100, false), "A5 00 00 00 10 00 01 00 00 00 00 00"},
		{"MOVE MEDIUM invert", MoveMediumCDB(1, 0x0400, 0x0001, true), "A5 00 00 01 04 00 00 01 00 00 01 00"},
		{"INITIALIZE ELEMENT STATUS", InitializeElementStatusCDB(), "07 00 00 00 00 00"},
		{"element address page", ElementAddressAssignmentCDB(), "1A 08 1D 00 FF 00"},
		{"SPOUT SDE 52", SecurityProtocolOutCDB(0x20, 0x10, 52), "B5 20 00 10 00 00 00 00 00 34 00 00"},
	}
	for _, c := range cases {
		if want := hx(t, c.want); !bytes.Equal(c.got, want) {
			t.Errorf("%s: % X, want % X", c.name, c.got, want)
		}
	}
}

// script returns a transport that answers each command with the next
// function in line.
func script(t *testing.T, steps ...func(c *Command) Result) (*Device, *fakeTransport) {
	i := 0
	ft := &fakeTransport{do: func(c *Command) (Result, error) {
		if i >= len(steps) {
			t.Fatalf("unexpected command % X", c.CDB)
		}
		i++
		return steps[i-1](c), nil
	}}
	return NewDevice(ft), ft
}

func senseBytes(t *testing.T, s string) func(*Command) Result {
	return func(*Command) Result { return check(hx(t, s)) }
}

func TestReadOutcomes(t *testing.T) {
	block := bytes.Repeat([]byte{0xAB}, 1000)
	dev, ft := script(t,
		// SILI=1 short block: GOOD with residual.
		func(c *Command) Result { return reply(c, block) },
		// SILI=0 short block: ILI, INFO 64536.
		func(c *Command) Result {
			copy(c.Data, block)
			r := check(hx(t, "F0 00 20 00 00 FC 18 0A 00 00 00 00 00 00 00 00 00 00"))
			r.Resid = 65536 - 1000
			return r
		},
		senseBytes(t, "F0 00 80 00 01 00 00 0A 00 00 00 00 00 01 00 00 00 00"),
		senseBytes(t, "F0 00 08 00 01 00 00 0A 00 00 00 00 00 05 00 00 00 00"),
		senseBytes(t, "70 00 07 00 00 00 00 0A 00 00 00 00 74 03 00 00 00 00"),
		func(c *Command) Result { return reply(c, block) },
	)
	buf := make([]byte, 65536)
	r, err := dev.Read(buf, true)
	if err != nil || r.N != 1000 || !r.Short || r.Filemark || r.EOD {
		t.Fatalf("SILI short: %+v %v", r, err)
	}
	if !bytes.Equal(ft.cmds[0].CDB, hx(t, "08 02 01 00 00 00")) || ft.cmds[0].Timeout != 2340*time.Second {
		t.Fatalf("READ CDB % X timeout %v", ft.cmds[0].CDB, ft.cmds[0].Timeout)
	}
	r, err = dev.Read(buf, false)
	if err != nil || r.N != 1000 || r.BlockLen != 1000 || !r.Short {
		t.Fatalf("ILI short: %+v %v", r, err)
	}
	r, err = dev.Read(buf, true)
	if err != nil || !r.Filemark || r.N != 0 {
		t.Fatalf("filemark: %+v %v", r, err)
	}
	r, err = dev.Read(buf, true)
	if err != nil || !r.EOD || r.N != 0 {
		t.Fatalf("EOD: %+v %v", r, err)
	}
	_, err = dev.Read(buf, true)
	if !IsEncryptionError(err) || !strings.Contains(err.Error(), "READ(6): DATA PROTECT: incorrect data encryption key (74/03)") {
		t.Fatalf("wrong key: %v", err)
	}
	// Overlength: 512-byte buffer, 1024-byte block.
	dev, _ = script(t, func(c *Command) Result {
		copy(c.Data, block)
		return check(hx(t, "F0 00 20 FF FF FE 00 0A 00 00 00 00 00 00 00 00 00 00"))
	})
	r, err = dev.Read(make([]byte, 512), false)
	if err != nil || !r.Overlength || r.N != 512 || r.BlockLen != 1024 {
		t.Fatalf("overlength: %+v %v", r, err)
	}
}

func TestWriteOutcomes(t *testing.T) {
	dev, ft := script(t,
		func(c *Command) Result { return Result{} },
		senseBytes(t, "F0 00 40 00 00 00 00 0A 00 00 00 00 00 02 00 00 00 00"),
		senseBytes(t, "F0 00 4D 00 01 00 00 0A 00 00 00 00 00 02 00 00 00 00"),
		senseBytes(t, "70 00 07 00 00 00 00 0A 00 00 00 00 27 00 00 00 00 00"),
		senseBytes(t, "70 00 00 00 00 00 00 0A 00 00 00 00 00 07 00 00 00 00"),
		senseBytes(t, "F0 00 40 00 00 00 00 0A 00 00 00 00 00 02 00 00 00 00"),
	)
	blk := make([]byte, 256<<10)
	w, err := dev.Write(blk)
	if err != nil || w.EarlyWarning {
		t.Fatalf("%+v %v", w, err)
	}
	if ft.cmds[0].Timeout != 1500*time.Second || ft.cmds[0].Dir != DirToDevice || len(ft.cmds[0].Data) != len(blk) {
		t.Fatal("WRITE command")
	}
	if w, err = dev.Write(blk); err != nil || !w.EarlyWarning {
		t.Fatalf("EW: %+v %v", w, err)
	}
	if _, err = dev.Write(blk); !IsVolumeOverflow(err) {
		t.Fatalf("overflow: %v", err)
	}
	if _, err = dev.Write(blk); !IsWriteProtected(err) {
		t.Fatalf("WP: %v", err)
	}
	if w, err = dev.Write(blk); err != nil || !w.Programmable || !w.EarlyWarning {
		t.Fatalf("PEW: %+v %v", w, err)
	}
	if w, err = dev.WriteFilemarks(1, true); err != nil || !w.EarlyWarning {
		t.Fatalf("WFM EW: %+v %v", w, err)
	}
	if _, err := dev.Write(nil); err == nil {
		t.Fatal("empty write accepted")
	}
}

func TestSpaceOutcomes(t *testing.T) {
	dev, _ := script(t,
		func(c *Command) Result { return Result{} },
		senseBytes(t, "F0 00 80 00 00 00 03 0A 00 00 00 00 00 01 00 00 00 00"),
		senseBytes(t, "F0 00 08 00 00 00 02 0A 00 00 00 00 00 05 00 00 00 00"),
		senseBytes(t, "F0 00 40 00 00 00 01 0A 00 00 00 00 00 04 00 00 00 00"),
		senseBytes(t, "70 00 03 00 00 00 00 0A 00 00 00 00 3B 00 00 00 00 00"),
	)
	if r, err := dev.Space(SpaceBlocks, 10); err != nil || r != (SpaceResult{}) {
		t.Fatalf("%+v %v", r, err)
	}
	if r, err := dev.Space(SpaceBlocks, 10); err != nil || !r.Filemark || r.Residual != 3 {
		t.Fatalf("FM: %+v %v", r, err)
	}
	if r, err := dev.Space(SpaceFilemarks, 4); err != nil || !r.EOD || r.Residual != 2 {
		t.Fatalf("EOD: %+v %v", r, err)
	}
	if r, err := dev.Space(SpaceBlocks, -5); err != nil || !r.BOP || !r.EOM || r.Residual != 1 {
		t.Fatalf("BOP: %+v %v", r, err)
	}
	if _, err := dev.Space(SpaceEndOfData, 0); err == nil || !strings.Contains(err.Error(), "sequential positioning error") {
		t.Fatalf("positioning: %v", err)
	}
}

func TestExecErrors(t *testing.T) {
	dev, _ := script(t,
		func(c *Command) Result { return Result{HostStatus: 3} },
		func(c *Command) Result { return Result{DriverStatus: 0x06} },
		func(c *Command) Result { return Result{Status: StatusReservationConflict} },
		func(c *Command) Result { return Result{Status: StatusCheckCondition, Sense: []byte{0x05}} },
		func(c *Command) Result { return Result{DriverStatus: DriverSense} },
	)
	err := dev.Rewind(false)
	var te *TransportError
	if !errors.As(err, &te) || !te.Timeout() || !strings.Contains(err.Error(), "REWIND: transport failure: DID_TIME_OUT") {
		t.Fatalf("host status: %v", err)
	}
	err = dev.TestUnitReady()
	if !errors.As(err, &te) || !te.Timeout() || !strings.Contains(err.Error(), "DRIVER_TIMEOUT") {
		t.Fatalf("driver status: %v", err)
	}
	err = dev.TestUnitReady()
	var se *StatusError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "RESERVATION CONFLICT") {
		t.Fatalf("status: %v", err)
	}
	if err = dev.TestUnitReady(); err == nil || !strings.Contains(err.Error(), "unusable sense data") {
		t.Fatalf("bad sense: %v", err)
	}
	if err = dev.TestUnitReady(); err != nil {
		t.Fatalf("DRIVER_SENSE alone is not a failure: %v", err)
	}
	if _, err := dev.Exec(&Command{}); err == nil {
		t.Fatal("empty CDB accepted")
	}
}

func TestTimeouts(t *testing.T) {
	for op, want := range map[byte]time.Duration{
		OpLoadUnload: 960 * time.Second, OpLocate16: 2940 * time.Second, OpRead6: 2340 * time.Second,
		OpRewind: 600 * time.Second, OpSpace6: 2940 * time.Second, OpWrite6: 1500 * time.Second,
		OpWriteFilemarks6: 1620 * time.Second, OpErase6: 74341 * time.Second, OpInquiry: 60 * time.Second,
		OpSecurityProtocolIn: 60 * time.Second, OpTestUnitReady: 60 * time.Second, OpMoveMedium: 5 * time.Minute,
		OpInitializeElementStat: 30 * time.Minute,
	} {
		if got := DefaultTimeout(op); got != want {
			t.Errorf("%s: %v, want %v", OpName(op), got, want)
		}
	}
	ft := &fakeTransport{do: func(c *Command) (Result, error) { return Result{}, nil }}
	dev := NewDevice(ft)
	dev.Timeouts = map[byte]time.Duration{OpRewind: time.Second}
	_ = dev.Rewind(false)
	_, _ = dev.Exec(&Command{CDB: TestUnitReadyCDB(), Timeout: 3 * time.Second})
	if ft.cmds[0].Timeout != time.Second || ft.cmds[1].Timeout != 3*time.Second {
		t.Fatalf("timeouts %v %v", ft.cmds[0].Timeout, ft.cmds[1].Timeout)
	}
}

func TestInquiryAndVPD(t *testing.T) {
	std := make([]byte, 96)
	copy(std, hx(t, "01 80 06 02 5B 00 00 02"))
	copy(std[8:], "IBM     ULT3580-TD6     G350")
	q, err := ParseInquiry(std)
	if err != nil || q.DeviceType != TypeTape || !q.Removable || q.Version != 6 || q.Vendor != "IBM" || q.Product != "ULT3580-TD6" || q.Revision != "G350" || !q.CmdQue {
		t.Fatalf("%+v %v", q, err)
	}
	// Additional length limits what is read.
	q, err = ParseInquiry(hx(t, `08 00 05 02 0B 00 00 00 "HP      "`))
	if err != nil || q.DeviceType != TypeMediumChanger || q.Vendor != "HP" || q.Product != "" {
		t.Fatalf("short: %+v %v", q, err)
	}
	if _, err := ParseInquiry([]byte{1, 2}); !errors.Is(err, ErrShortData) {
		t.Fatal(err)
	}
	sn, err := ParseSerialVPD(hx(t, `01 80 00 0A "1013000123"`))
	if err != nil || sn != "1013000123" {
		t.Fatalf("%q %v", sn, err)
	}
	pages, err := ParseSupportedVPD(hx(t, "01 00 00 04 00 80 83 B0"))
	if err != nil || !bytes.Equal(pages, []byte{0, 0x80, 0x83, 0xB0}) {
		t.Fatalf("% X %v", pages, err)
	}
	ids, err := ParseDeviceIdentificationVPD(hx(t, `01 83 00 32 02 01 00 22 "IBM     ULT3580-TD6     1013000123" 01 03 00 08 50 05 07 63 00 01 02 03`))
	if err != nil || len(ids) != 2 {
		t.Fatalf("%+v %v", ids, err)
	}
	if ids[0].Type != 1 || ids[0].CodeSet != 2 || ids[0].String() != "T10 vendor ID: IBM     ULT3580-TD6     1013000123" {
		t.Fatalf("%+v %q", ids[0], ids[0].String())
	}
	if ids[1].Type != 3 || ids[1].String() != "NAA: 5005076300010203" {
		t.Fatalf("%q", ids[1].String())
	}
	if _, err := ParseDeviceIdentificationVPD(hx(t, "01 83 00 06 02 01 00 22 41 42")); !errors.Is(err, ErrShortData) {
		t.Fatalf("overrunning designator: %v", err)
	}
	if _, err := ParseSerialVPD(hx(t, "01 83 00 00")); err == nil {
		t.Fatal("wrong page accepted")
	}
}

func TestReportLUNs(t *testing.T) {
	if got := ReportLUNsCDB(520); !bytes.Equal(got, hx(t, "A0 00 00 00 00 00 00 00 02 08 00 00")) {
		t.Fatalf("CDB % X", got)
	}
	// Three LUNs: 0 and 1 in peripheral addressing, 300 in flat space.
	luns, err := ParseReportLUNs(hx(t, "00 00 00 18 00*4 | 00*8 | 00 01 00*6 | 41 2C 00*6"))
	if err != nil || len(luns) != 3 || luns[0] != 0 || luns[1] != 1<<48 || luns[2] != 0x412C<<48 {
		t.Fatalf("%X %v", luns, err)
	}
	// The list says 3, the allocation length kept 2.
	if luns, err := ParseReportLUNs(hx(t, "00 00 00 18 00*4 | 00*8 | 00 01 00*6")); err != nil || len(luns) != 2 {
		t.Fatalf("cut list: %X %v", luns, err)
	}
	if _, err := ParseReportLUNs(hx(t, "00 00 00 08")); !errors.Is(err, ErrShortData) {
		t.Fatalf("short header: %v", err)
	}
}

func TestModeSense(t *testing.T) {
	// §11: header 1B 00 10 08, LTO-6 variable descriptor, page 0x0F.
	b := hx(t, "1B 00 10 08  5A 00 00 00 00 00 00 00  0F 0E C0 80 00 00 00 01 00 00 00 01 00 00 00 00")
	m, err := ParseModeSense6(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.BufferedMode != 1 || m.WriteProtected || len(m.BlockDescriptors) != 1 || m.BlockDescriptors[0].Density != 0x5A || m.BlockDescriptors[0].BlockLength != 0 {
		t.Fatalf("%+v", m)
	}
	p, ok := m.Page(0x0F)
	if !ok || len(p.Data) != 16 || p.Data[2]&0x80 == 0 {
		t.Fatalf("page 0F: %+v", p)
	}
	b10 := hx(t, "00 1E 00 90 00 00 00 08  44 00 00 00 00 00 02 00  10 0E 00 00 00 00 00 64 40 00 18 00 00 00 00 80")
	m, err = ParseModeSense10(b10)
	if err != nil || !m.WriteProtected || m.BufferedMode != 1 || m.BlockDescriptors[0].BlockLength != 512 {
		t.Fatalf("(10): %+v %v", m, err)
	}
	if p, ok := m.Page(0x10); !ok || p.Data[7] != 0x64 {
		t.Fatalf("page 10: %+v", p)
	}
	if _, err := ParseModeSense6(hx(t, "0B 00 00 10 00 00")); !errors.Is(err, ErrShortData) {
		t.Fatalf("descriptor overrun: %v", err)
	}
	// MODE SENSE(10) falls back to (6) on 05/20/00.
	dev, ft := script(t,
		senseBytes(t, "70 00 05 00 00 00 00 0A 00 00 00 00 20 00 00 00 00 00"),
		func(c *Command) Result { return reply(c, b) },
	)
	m, err = dev.ModeSense(false, 0, 0x0F, 0)
	if err != nil || len(m.Pages) != 1 || ft.cmds[0].CDB[0] != OpModeSense10 || ft.cmds[1].CDB[0] != OpModeSense6 {
		t.Fatalf("fallback: %+v %v", m, err)
	}
	// MODE SELECT zeroes MODE DATA LENGTH.
	dev, ft = script(t, func(c *Command) Result { return Result{} })
	if err := dev.ModeSelect6(b, false); err != nil {
		t.Fatal(err)
	}
	if ft.cmds[0].Data[0] != 0 || b[0] != 0x1B || !bytes.Equal(ft.cmds[0].CDB, hx(t, "15 10 00 00 1C 00")) {
		t.Fatalf("MODE SELECT % X / % X", ft.cmds[0].CDB, ft.cmds[0].Data[:4])
	}
}

func TestTapeAlert(t *testing.T) {
	page := []byte{0x2E, 0, 0x01, 0x40}
	for i := 1; i <= 64; i++ {
		v := byte(0)
		if i == 3 || i == 20 || i == 64 {
			v = 1
		}
		page = append(page, 0, byte(i), 0xC0, 1, v)
	}
	f, err := ParseTapeAlertPage(page)
	if err != nil || len(f) != 3 || f[0].Flag != 3 || f[0].Name != "hard error" || f[1].Name != "clean now" || f[2].Name != "flag 64" {
		t.Fatalf("%+v %v", f, err)
	}
	if _, err := ParseTapeAlertPage([]byte{0x12, 0, 0, 0}); err == nil {
		t.Fatal("wrong page accepted")
	}
	if _, err := ParseLogPage([]byte{0x2E, 0, 0, 9, 0, 1, 0xC0, 1}); !errors.Is(err, ErrShortData) {
		t.Fatal("short page accepted")
	}
}

func TestBlockLimitsAndPosition(t *testing.T) {
	l, err := ParseBlockLimits(hx(t, "00 80 00 00 00 01"))
	if err != nil || l.Max != 8<<20 || l.Min != 1 {
		t.Fatalf("%+v %v", l, err)
	}
	p, err := ParsePositionLong(hx(t, "80 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00*8"))
	if err != nil || !p.BOP || p.Block != 0 {
		t.Fatalf("%+v %v", p, err)
	}
	p, err = ParsePositionLong(hx(t, "45 00 00 00 00 00 00 01 00 00 00 01 00 00 00 07 00 00 00 00 00 00 00 03 00*8"))
	if err != nil || p.BOP || !p.EOP || !p.LONU || !p.BPEW || p.Partition != 1 || p.Block != 1<<32|7 || p.File != 3 {
		t.Fatalf("%+v %v", p, err)
	}
	if _, err := ParsePositionLong(make([]byte, 20)); !errors.Is(err, ErrShortData) {
		t.Fatal(err)
	}
}

func TestTransferredClamped(t *testing.T) {
	c := &Command{Data: make([]byte, 10)}
	for resid, want := range map[int]int{0: 10, 4: 6, 10: 0, 20: 0, -5: 10} {
		if got := (Result{Resid: resid}).Transferred(c); got != want {
			t.Errorf("resid %d: %d, want %d", resid, got, want)
		}
	}
}

func TestUnitAttentionHandling(t *testing.T) {
	ua := "70 00 06 00 00 00 00 0A 00 00 00 00 29 00 00 00 00 00"
	dev, ft := script(t,
		// A query swallows the UA and re-issues.
		senseBytes(t, ua),
		func(c *Command) Result { return reply(c, hx(t, "00 80 00 00 00 01")) },
		// Motion commands never do.
		senseBytes(t, ua),
		// DrainUnitAttentions: two UAs, then no medium.
		senseBytes(t, ua),
		senseBytes(t, "70 00 06 00 00 00 00 0A 00 00 00 00 28 00 00 00 00 00"),
		senseBytes(t, "70 00 02 00 00 00 00 0A 00 00 00 00 3A 00 00 00 00 00"),
	)
	var seen []ASCQ
	dev.OnUnitAttention = func(s *Sense) { seen = append(seen, s.Code()) }
	l, err := dev.ReadBlockLimits()
	if err != nil || l.Max != 8<<20 || len(ft.cmds) != 2 || len(seen) != 1 || seen[0] != ASCPowerOnReset {
		t.Fatalf("%+v %v cmds %d seen %v", l, err, len(ft.cmds), seen)
	}
	if err := dev.Rewind(false); !IsUnitAttention(err) {
		t.Fatalf("REWIND swallowed a UA: %v", err)
	}
	uas, err := dev.DrainUnitAttentions()
	if len(uas) != 2 || uas[1].Code() != ASCMediumMayHaveChanged || !IsNoMedium(err) {
		t.Fatalf("%v %v", uas, err)
	}
}

// TestEffectiveBlockSize: the configured size lowered to READ BLOCK
// LIMITS, the transport's largest transfer and the 24-bit length, then to
// the granularity; refused below the drive's minimum (finding 4).
func TestEffectiveBlockSize(t *testing.T) {
	ibm := BlockLimits{Max: 0x800000, Min: 1} // 00 80 00 00 00 01 (§11)
	tgt := BlockLimits{Max: 0x100000, Min: 1} // a 1 MiB maximum
	gran := BlockLimits{Max: 0x800000, Min: 512, Granularity: 9}
	cases := []struct {
		conf int
		lim  BlockLimits
		mt   int
		want int
	}{
		{1 << 20, ibm, 0, 1 << 20},
		{8 << 20, ibm, 0, 8 << 20},
		{16 << 20, ibm, 0, 8 << 20},                        // configs allows 16 MiB
		{16 << 20, BlockLimits{Min: 1}, 0, MaxBlockLength}, // no maximum reported
		{8 << 20, ibm, 1 << 20, 1 << 20},                   // adapter limit
		{8 << 20, tgt, 4 << 20, 1 << 20},                   // block limit
		{8 << 20, ibm, 1<<20 + 100, 1<<20 + 100},           // no granularity
		{8 << 20, gran, 1<<20 + 100, 1 << 20},              // down to 512-byte units
		{1000, gran, 0, 512},
	}
	for _, c := range cases {
		got, err := EffectiveBlockSize(c.conf, c.lim, c.mt)
		if err != nil || got != c.want {
			t.Errorf("EffectiveBlockSize(%d, %+v, %d) = %d, %v; want %d", c.conf, c.lim, c.mt, got, err, c.want)
		}
	}
	for _, c := range []struct {
		conf int
		lim  BlockLimits
		mt   int
	}{{0, ibm, 0}, {-1, ibm, 0}, {100, gran, 0}, {1 << 20, gran, 256}} {
		_, err := EffectiveBlockSize(c.conf, c.lim, c.mt)
		var be *BlockSizeError
		if !errors.As(err, &be) || !strings.Contains(err.Error(), "set block_size within those limits") {
			t.Errorf("EffectiveBlockSize(%d, %+v, %d): %v", c.conf, c.lim, c.mt, err)
		}
	}
}
