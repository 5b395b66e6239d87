package scsi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrShortData is wrapped by every parser given fewer bytes than the
// structure (or its own length fields) require.
var ErrShortData = errors.New("response too short")

func short(what string, need, got int) error {
	return fmt.Errorf("%s: %w: need %d bytes, got %d", what, ErrShortData, need, got)
}

// ---- CDB builders (§6.1) ----

// TestUnitReadyCDB is `00 00 00 00 00 00`.
func TestUnitReadyCDB() []byte { return make([]byte, 6) }

// RequestSenseCDB builds REQUEST SENSE; desc asks for descriptor format.
func RequestSenseCDB(desc bool, alloc byte) []byte {
	c := []byte{OpRequestSense, 0, 0, 0, alloc, 0}
	if desc {
		c[1] = 1
	}
	return c
}

// InquiryCDB builds INQUIRY (standard data when evpd is false).
func InquiryCDB(evpd bool, page byte, alloc uint16) []byte {
	c := []byte{OpInquiry, 0, page, 0, 0, 0}
	if evpd {
		c[1] = 1
	}
	binary.BigEndian.PutUint16(c[3:], alloc)
	return c
}

// Mode page control (§6.1 MODE SENSE byte 2 b7..b6).
const (
	PageControlCurrent    = 0
	PageControlChangeable = 1
	PageControlDefault    = 2
	PageControlSaved      = 3
)

// ModeSense6CDB builds MODE SENSE(6).
func ModeSense6CDB(dbd bool, pc, page, subpage, alloc byte) []byte {
	c := []byte{OpModeSense6, 0, pc<<6 | page&0x3F, subpage, alloc, 0}
	if dbd {
		c[1] = 0x08
	}
	return c
}

// ModeSense10CDB builds MODE SENSE(10).
func ModeSense10CDB(dbd bool, pc, page, subpage byte, alloc uint16) []byte {
	c := make([]byte, 10)
	c[0] = OpModeSense10
	if dbd {
		c[1] = 0x08
	}
	c[2] = pc<<6 | page&0x3F
	c[3] = subpage
	binary.BigEndian.PutUint16(c[7:], alloc)
	return c
}

// ModeSelect6CDB builds MODE SELECT(6) with PF=1.
func ModeSelect6CDB(save bool, length byte) []byte {
	c := []byte{OpModeSelect6, 0x10, 0, 0, length, 0}
	if save {
		c[1] |= 1
	}
	return c
}

// ModeSelect10CDB builds MODE SELECT(10) with PF=1.
func ModeSelect10CDB(save bool, length uint16) []byte {
	c := make([]byte, 10)
	c[0] = OpModeSelect10
	c[1] = 0x10
	if save {
		c[1] |= 1
	}
	binary.BigEndian.PutUint16(c[7:], length)
	return c
}

// LogSenseCDB builds LOG SENSE with PC=01b (cumulative current values).
func LogSenseCDB(page, subpage byte, paramPtr, alloc uint16) []byte {
	c := make([]byte, 10)
	c[0] = OpLogSense
	c[2] = 0x40 | page&0x3F
	c[3] = subpage
	binary.BigEndian.PutUint16(c[5:], paramPtr)
	binary.BigEndian.PutUint16(c[7:], alloc)
	return c
}

// PreventAllowCDB builds PREVENT ALLOW MEDIUM REMOVAL.
func PreventAllowCDB(prevent bool) []byte {
	c := []byte{OpPreventAllow, 0, 0, 0, 0, 0}
	if prevent {
		c[4] = 1
	}
	return c
}

// ---- commands ----

// TestUnitReady returns nil when the unit is ready; otherwise the sense
// error (IsNoMedium, IsBecomingReady, IsUnitAttention …).
func (d *Device) TestUnitReady() error { return d.noData(TestUnitReadyCDB()) }

// RequestSense fetches pending sense data (a deferred error, a unit
// attention, or NO SENSE).
func (d *Device) RequestSense(desc bool) (*Sense, error) {
	b, err := d.dataIn(RequestSenseCDB(desc, 252), 252)
	if err != nil {
		return nil, err
	}
	s, err := ParseSense(b)
	if err != nil {
		return nil, &CommandError{Addr: d.Addr(), Op: "REQUEST SENSE", Err: err}
	}
	return s, nil
}

// PreventMediumRemoval locks (true) or unlocks the drive's eject / the
// changer's door.
func (d *Device) PreventMediumRemoval(prevent bool) error {
	return d.noData(PreventAllowCDB(prevent))
}

// Peripheral device types (INQUIRY byte 0).
const (
	TypeTape          = 0x01
	TypeMediumChanger = 0x08
)

// DeviceTypeName names a peripheral device type.
func DeviceTypeName(t byte) string {
	switch t {
	case 0x00:
		return "direct-access block device (disk)"
	case TypeTape:
		return "sequential-access device (tape drive)"
	case 0x05:
		return "CD/DVD device"
	case TypeMediumChanger:
		return "medium changer"
	case 0x0C:
		return "storage array controller"
	case 0x0D:
		return "enclosure services device"
	}
	return fmt.Sprintf("device type 0x%02X", t)
}

// InquiryData is the standard INQUIRY response (§6.1).
type InquiryData struct {
	Qualifier  byte   `json:"peripheral_qualifier"`
	DeviceType byte   `json:"device_type"`
	Removable  bool   `json:"removable"`
	Version    byte   `json:"version"`
	Format     byte   `json:"response_data_format"`
	MChngr     bool   `json:"mchngr,omitempty"`
	CmdQue     bool   `json:"cmdque,omitempty"`
	Protect    bool   `json:"protect,omitempty"`
	Vendor     string `json:"vendor"`
	Product    string `json:"product"`
	Revision   string `json:"revision"`
	Raw        []byte `json:"-"`
}

func (q *InquiryData) String() string {
	return fmt.Sprintf("%s %s rev %s (%s)", q.Vendor, q.Product, q.Revision, DeviceTypeName(q.DeviceType))
}

func asciiField(b []byte) string {
	return strings.TrimRight(strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7E {
			return ' '
		}
		return r
	}, string(b)), " ")
}

// ParseInquiry decodes standard INQUIRY data; at least the first 36 bytes
// (as far as ADDITIONAL LENGTH reaches) are required for the text fields.
func ParseInquiry(b []byte) (*InquiryData, error) {
	if len(b) < 5 {
		return nil, short("INQUIRY data", 5, len(b))
	}
	n := 5 + int(b[4])
	if n > len(b) {
		n = len(b)
	}
	b = b[:n]
	q := &InquiryData{
		Qualifier:  b[0] >> 5,
		DeviceType: b[0] & 0x1F,
		Removable:  b[1]&0x80 != 0,
		Version:    b[2],
		Format:     b[3] & 0x0F,
		Raw:        append([]byte(nil), b...),
	}
	if n > 5 {
		q.Protect = b[5]&0x01 != 0
	}
	if n > 6 {
		q.MChngr = b[6]&0x08 != 0
	}
	if n > 7 {
		q.CmdQue = b[7]&0x02 != 0
	}
	field := func(from, to int) string {
		if from >= n {
			return ""
		}
		if to > n {
			to = n
		}
		return asciiField(b[from:to])
	}
	q.Vendor = field(8, 16)
	q.Product = field(16, 32)
	q.Revision = field(32, 36)
	return q, nil
}

// Inquiry returns the standard INQUIRY data.
func (d *Device) Inquiry() (*InquiryData, error) {
	b, err := d.dataIn(InquiryCDB(false, 0, 96), 96)
	if err != nil {
		return nil, err
	}
	q, err := ParseInquiry(b)
	if err != nil {
		return nil, &CommandError{Addr: d.Addr(), Op: "INQUIRY", Err: err}
	}
	return q, nil
}

// VPD returns one vital product data page (header included), re-issuing
// with a larger allocation if the page is longer than the first try.
func (d *Device) VPD(page byte) ([]byte, error) {
	alloc := 252
	for {
		b, err := d.dataIn(InquiryCDB(true, page, uint16(alloc)), alloc)
		if err != nil {
			return nil, err
		}
		if len(b) < 4 {
			return nil, &CommandError{Addr: d.Addr(), Op: "INQUIRY", Err: short(fmt.Sprintf("VPD page 0x%02X", page), 4, len(b))}
		}
		if b[1] != page {
			return nil, &CommandError{Addr: d.Addr(), Op: "INQUIRY", Err: fmt.Errorf("asked for VPD page 0x%02X, got 0x%02X", page, b[1])}
		}
		full := 4 + int(binary.BigEndian.Uint16(b[2:4]))
		if full <= len(b) || alloc >= 0xFFFF || len(b) < alloc {
			if full < len(b) {
				b = b[:full]
			}
			return b, nil
		}
		alloc = min(full, 0xFFFF)
	}
}

// ParseSupportedVPD decodes VPD page 0x00.
func ParseSupportedVPD(b []byte) ([]byte, error) {
	p, err := vpdPayload(b, 0x00)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), p...), nil
}

// ParseSerialVPD decodes VPD page 0x80 (unit serial number).
func ParseSerialVPD(b []byte) (string, error) {
	p, err := vpdPayload(b, 0x80)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(asciiField(p)), nil
}

func vpdPayload(b []byte, page byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, short(fmt.Sprintf("VPD page 0x%02X", page), 4, len(b))
	}
	if b[1] != page {
		return nil, fmt.Errorf("VPD page code 0x%02X, expected 0x%02X", b[1], page)
	}
	n := 4 + int(binary.BigEndian.Uint16(b[2:4]))
	if n > len(b) {
		return nil, short(fmt.Sprintf("VPD page 0x%02X", page), n, len(b))
	}
	return b[4:n], nil
}

// Designator is one VPD 0x83 designation descriptor.
type Designator struct {
	ProtocolID  byte   `json:"protocol_id"`
	CodeSet     byte   `json:"code_set"` // 1 binary, 2 ASCII, 3 UTF-8
	PIV         bool   `json:"piv,omitempty"`
	Association byte   `json:"association"` // 0 LU, 1 target port, 2 target device
	Type        byte   `json:"type"`        // 1 T10 vendor ID, 2 EUI-64, 3 NAA, 8 SCSI name
	Value       []byte `json:"value"`
}

func (d Designator) String() string {
	names := map[byte]string{0: "vendor", 1: "T10 vendor ID", 2: "EUI-64", 3: "NAA", 4: "relative target port", 8: "SCSI name"}
	n, ok := names[d.Type]
	if !ok {
		n = fmt.Sprintf("type %d", d.Type)
	}
	if d.CodeSet == 2 || d.CodeSet == 3 {
		return n + ": " + asciiField(d.Value)
	}
	return fmt.Sprintf("%s: %X", n, d.Value)
}

// ParseDeviceIdentificationVPD decodes VPD page 0x83.
func ParseDeviceIdentificationVPD(b []byte) ([]Designator, error) {
	p, err := vpdPayload(b, 0x83)
	if err != nil {
		return nil, err
	}
	var out []Designator
	for len(p) > 0 {
		if len(p) < 4 {
			return out, short("VPD 0x83 designation descriptor", 4, len(p))
		}
		l := 4 + int(p[3])
		if l > len(p) {
			return out, short("VPD 0x83 designation descriptor", l, len(p))
		}
		out = append(out, Designator{
			ProtocolID:  p[0] >> 4,
			CodeSet:     p[0] & 0x0F,
			PIV:         p[1]&0x80 != 0,
			Association: (p[1] >> 4) & 0x03,
			Type:        p[1] & 0x0F,
			Value:       append([]byte(nil), p[4:l]...),
		})
		p = p[l:]
	}
	return out, nil
}

// SerialNumber reads VPD page 0x80.
func (d *Device) SerialNumber() (string, error) {
	b, err := d.VPD(0x80)
	if err != nil {
		return "", err
	}
	return ParseSerialVPD(b)
}

// DeviceIdentification reads VPD page 0x83.
func (d *Device) DeviceIdentification() ([]Designator, error) {
	b, err := d.VPD(0x83)
	if err != nil {
		return nil, err
	}
	return ParseDeviceIdentificationVPD(b)
}

// ---- REPORT LUNS ----

// ReportLUNsCDB builds REPORT LUNS (SPC-4 6.33) with SELECT REPORT 0:
// the logical units the target's device server knows.
func ReportLUNsCDB(alloc uint32) []byte {
	c := make([]byte, 12)
	c[0] = OpReportLUNs
	binary.BigEndian.PutUint32(c[6:], alloc)
	return c
}

// ParseReportLUNs decodes REPORT LUNS parameter data into the 8-byte
// LUNs (SAM-5 4.6; iscsiwire.LUNNumber reads the usual forms). A list
// cut short by the allocation length is returned as far as it goes.
func ParseReportLUNs(b []byte) ([]uint64, error) {
	if len(b) < 8 {
		return nil, short("REPORT LUNS data", 8, len(b))
	}
	n := int(binary.BigEndian.Uint32(b[0:4])) / 8
	luns := make([]uint64, 0, n)
	for i := 0; i < n && 8+8*i+8 <= len(b); i++ {
		luns = append(luns, binary.BigEndian.Uint64(b[8+8*i:]))
	}
	return luns, nil
}

// ReportLUNs lists the target's LUNs, re-issuing with a larger
// allocation when the list is longer than the first try.
func (d *Device) ReportLUNs() ([]uint64, error) {
	alloc := 8 + 8*64
	for {
		b, err := d.dataIn(ReportLUNsCDB(uint32(alloc)), alloc)
		if err != nil {
			return nil, err
		}
		luns, err := ParseReportLUNs(b)
		if err != nil {
			return nil, &CommandError{Addr: d.Addr(), Op: "REPORT LUNS", Err: err}
		}
		full := 8 + int(binary.BigEndian.Uint32(b[0:4]))
		if full <= len(b) || len(b) < alloc || alloc >= 1<<20 {
			return luns, nil
		}
		alloc = min(full, 1<<20)
	}
}

// ---- MODE SENSE / SELECT ----

// ModePage is one mode page as returned (PS bit cleared in Code).
type ModePage struct {
	Code    byte   `json:"code"`
	Subpage byte   `json:"subpage"`
	SPF     bool   `json:"spf,omitempty"`
	PS      bool   `json:"ps,omitempty"`
	Data    []byte `json:"data"` // the whole page, header included
}

// BlockDescriptor is a short (8-byte) mode parameter block descriptor.
type BlockDescriptor struct {
	Density     byte   `json:"density_code"`
	Blocks      uint32 `json:"blocks"`
	BlockLength uint32 `json:"block_length"` // 0 = variable
}

// ModeData is a decoded MODE SENSE(6)/(10) response.
type ModeData struct {
	MediumType       byte              `json:"medium_type"`
	DeviceSpecific   byte              `json:"device_specific"`
	WriteProtected   bool              `json:"write_protected"`
	BufferedMode     byte              `json:"buffered_mode"`
	Speed            byte              `json:"speed"`
	BlockDescriptors []BlockDescriptor `json:"block_descriptors,omitempty"`
	Pages            []ModePage        `json:"pages,omitempty"`
}

// Page returns the first page with the given code.
func (m *ModeData) Page(code byte) (*ModePage, bool) {
	for i := range m.Pages {
		if m.Pages[i].Code == code {
			return &m.Pages[i], true
		}
	}
	return nil, false
}

// ParseModeSense6 decodes a MODE SENSE(6) response.
func ParseModeSense6(b []byte) (*ModeData, error) {
	if len(b) < 4 {
		return nil, short("MODE SENSE(6) header", 4, len(b))
	}
	n := 1 + int(b[0])
	if n > len(b) {
		n = len(b) // some drives report the allocation length (§6.1 quirks)
	}
	return parseMode(b[:n], b[1], b[2], 4, int(b[3]))
}

// ParseModeSense10 decodes a MODE SENSE(10) response.
func ParseModeSense10(b []byte) (*ModeData, error) {
	if len(b) < 8 {
		return nil, short("MODE SENSE(10) header", 8, len(b))
	}
	n := 2 + int(binary.BigEndian.Uint16(b[0:2]))
	if n > len(b) {
		n = len(b)
	}
	if b[4]&1 != 0 {
		return nil, errors.New("MODE SENSE(10): long LBA block descriptors are not used by tape")
	}
	return parseMode(b[:n], b[2], b[3], 8, int(binary.BigEndian.Uint16(b[6:8])))
}

func parseMode(b []byte, medium, dsp byte, hdr, bdl int) (*ModeData, error) {
	m := &ModeData{
		MediumType:     medium,
		DeviceSpecific: dsp,
		WriteProtected: dsp&0x80 != 0,
		BufferedMode:   (dsp >> 4) & 0x07,
		Speed:          dsp & 0x0F,
	}
	if hdr+bdl > len(b) {
		return nil, short("mode block descriptors", hdr+bdl, len(b))
	}
	for off := hdr; off+8 <= hdr+bdl; off += 8 {
		d := b[off : off+8]
		m.BlockDescriptors = append(m.BlockDescriptors, BlockDescriptor{
			Density:     d[0],
			Blocks:      uint32(d[1])<<16 | uint32(d[2])<<8 | uint32(d[3]),
			BlockLength: uint32(d[5])<<16 | uint32(d[6])<<8 | uint32(d[7]),
		})
	}
	p := b[hdr+bdl:]
	for len(p) >= 2 {
		pg := ModePage{Code: p[0] & 0x3F, PS: p[0]&0x80 != 0, SPF: p[0]&0x40 != 0}
		var l int
		if pg.SPF {
			if len(p) < 4 {
				break
			}
			pg.Subpage = p[1]
			l = 4 + int(binary.BigEndian.Uint16(p[2:4]))
		} else {
			l = 2 + int(p[1])
		}
		if l > len(p) {
			l = len(p) // truncated by the allocation length
		}
		pg.Data = append([]byte(nil), p[:l]...)
		m.Pages = append(m.Pages, pg)
		p = p[l:]
	}
	return m, nil
}

// ModeSense6 reads mode data with MODE SENSE(6).
func (d *Device) ModeSense6(dbd bool, pc, page, subpage byte) (*ModeData, error) {
	b, err := d.dataIn(ModeSense6CDB(dbd, pc, page, subpage, 0xFF), 0xFF)
	if err != nil {
		return nil, err
	}
	m, err := ParseModeSense6(b)
	if err != nil {
		return nil, &CommandError{Addr: d.Addr(), Op: "MODE SENSE(6)", Err: err}
	}
	return m, nil
}

// ModeSense10 reads mode data with MODE SENSE(10).
func (d *Device) ModeSense10(dbd bool, pc, page, subpage byte) (*ModeData, error) {
	const alloc = 4096
	b, err := d.dataIn(ModeSense10CDB(dbd, pc, page, subpage, alloc), alloc)
	if err != nil {
		return nil, err
	}
	m, err := ParseModeSense10(b)
	if err != nil {
		return nil, &CommandError{Addr: d.Addr(), Op: "MODE SENSE(10)", Err: err}
	}
	return m, nil
}

// ModeSense tries MODE SENSE(10) and falls back to (6) when the device
// answers 05/20/00 (§6.1, as proxmox does).
func (d *Device) ModeSense(dbd bool, pc, page, subpage byte) (*ModeData, error) {
	m, err := d.ModeSense10(dbd, pc, page, subpage)
	if IsInvalidOpcode(err) {
		return d.ModeSense6(dbd, pc, page, subpage)
	}
	return m, err
}

// ModeSelect6 sends a MODE SELECT(6) parameter list (header + optional
// block descriptor + pages, as built by the caller). MODE DATA LENGTH
// (byte 0) is forced to 0 and the PS bits of the pages must be clear.
func (d *Device) ModeSelect6(params []byte, save bool) error {
	if len(params) < 4 || len(params) > 255 {
		return fmt.Errorf("MODE SELECT(6): parameter list of %d bytes (need 4..255)", len(params))
	}
	p := append([]byte(nil), params...)
	p[0] = 0
	return d.dataOut(ModeSelect6CDB(save, byte(len(p))), p)
}

// ModeSelect10 sends a MODE SELECT(10) parameter list; MODE DATA LENGTH
// (bytes 0–1) is forced to 0.
func (d *Device) ModeSelect10(params []byte, save bool) error {
	if len(params) < 8 || len(params) > 0xFFFF {
		return fmt.Errorf("MODE SELECT(10): parameter list of %d bytes (need 8..65535)", len(params))
	}
	p := append([]byte(nil), params...)
	p[0], p[1] = 0, 0
	return d.dataOut(ModeSelect10CDB(save, uint16(len(p))), p)
}

// ---- LOG SENSE / TapeAlert ----

// LogParameter is one log parameter.
type LogParameter struct {
	Code    uint16 `json:"code"`
	Control byte   `json:"control"`
	Value   []byte `json:"value"`
}

// LogPage is a decoded LOG SENSE page.
type LogPage struct {
	Code       byte           `json:"code"`
	Subpage    byte           `json:"subpage"`
	Parameters []LogParameter `json:"parameters"`
}

// ParseLogPage decodes a LOG SENSE response.
func ParseLogPage(b []byte) (*LogPage, error) {
	if len(b) < 4 {
		return nil, short("LOG SENSE header", 4, len(b))
	}
	n := 4 + int(binary.BigEndian.Uint16(b[2:4]))
	if n > len(b) {
		return nil, short("LOG SENSE page", n, len(b))
	}
	lp := &LogPage{Code: b[0] & 0x3F, Subpage: b[1]}
	p := b[4:n]
	for len(p) > 0 {
		if len(p) < 4 {
			return nil, short("log parameter header", 4, len(p))
		}
		l := 4 + int(p[3])
		if l > len(p) {
			return nil, short("log parameter", l, len(p))
		}
		lp.Parameters = append(lp.Parameters, LogParameter{
			Code:    binary.BigEndian.Uint16(p[0:2]),
			Control: p[2],
			Value:   append([]byte(nil), p[4:l]...),
		})
		p = p[l:]
	}
	return lp, nil
}

// LogSense reads one log page.
func (d *Device) LogSense(page, subpage byte) (*LogPage, error) {
	const alloc = 0x2000
	b, err := d.dataIn(LogSenseCDB(page, subpage, 0, alloc), alloc)
	if err != nil {
		return nil, err
	}
	lp, err := ParseLogPage(b)
	if err != nil {
		return nil, &CommandError{Addr: d.Addr(), Op: "LOG SENSE", Err: err}
	}
	return lp, nil
}

// tapeAlertNames are the standard TapeAlert flag names (SSC/TapeAlert
// specification), index = flag number.
var tapeAlertNames = map[int]string{
	1: "read warning", 2: "write warning", 3: "hard error", 4: "media", 5: "read failure",
	6: "write failure", 7: "media life", 8: "not data grade", 9: "write protect", 10: "no removal",
	11: "cleaning media", 12: "unsupported format", 13: "recoverable mechanical cartridge failure",
	14: "unrecoverable mechanical cartridge failure", 15: "memory chip in cartridge failure",
	16: "forced eject", 17: "read only format", 18: "tape directory corrupted on load",
	19: "nearing media life", 20: "clean now", 21: "clean periodic", 22: "expired cleaning media",
	23: "invalid cleaning tape", 24: "retension requested", 25: "dual-port interface error",
	26: "cooling fan failure", 27: "power supply failure", 28: "power consumption",
	29: "drive maintenance", 30: "hardware A", 31: "hardware B", 32: "interface",
	33: "eject media", 34: "microcode update fail", 35: "drive humidity", 36: "drive temperature",
	37: "drive voltage", 38: "predictive failure", 39: "diagnostics required",
	49: "diminished native capacity", 50: "lost statistics", 51: "tape directory invalid at unload",
	52: "tape system area write failure", 53: "tape system area read failure", 54: "no start of data",
	55: "loading failure", 56: "unrecoverable unload failure", 57: "automation interface failure",
	58: "microcode failure", 59: "WORM medium - integrity check failed", 60: "WORM medium - overwrite attempted",
}

// TapeAlertFlag is one active TapeAlert flag.
type TapeAlertFlag struct {
	Flag int    `json:"flag"`
	Name string `json:"name"`
}

func (f TapeAlertFlag) String() string { return fmt.Sprintf("%d %s", f.Flag, f.Name) }

// TapeAlertName names a TapeAlert flag number (1..64).
func TapeAlertName(flag int) string {
	if n, ok := tapeAlertNames[flag]; ok {
		return n
	}
	return fmt.Sprintf("flag %d", flag)
}

// ParseTapeAlertPage decodes LOG SENSE page 0x2E: parameters 1..64, each
// with a 1-byte value whose bit 0 says the flag is active.
func ParseTapeAlertPage(b []byte) ([]TapeAlertFlag, error) {
	lp, err := ParseLogPage(b)
	if err != nil {
		return nil, err
	}
	if lp.Code != 0x2E {
		return nil, fmt.Errorf("LOG SENSE: expected TapeAlert page 0x2E, got 0x%02X", lp.Code)
	}
	var out []TapeAlertFlag
	for _, p := range lp.Parameters {
		if p.Code < 1 || p.Code > 64 || len(p.Value) < 1 {
			continue
		}
		if p.Value[0]&1 != 0 {
			out = append(out, TapeAlertFlag{Flag: int(p.Code), Name: TapeAlertName(int(p.Code))})
		}
	}
	return out, nil
}

// TapeAlerts reads LOG SENSE page 0x2E. Reading it clears the flags on
// the device (§6.1), so call it once per event and keep the result.
func (d *Device) TapeAlerts() ([]TapeAlertFlag, error) {
	const alloc = 4 + 64*5 + 64
	b, err := d.dataIn(LogSenseCDB(0x2E, 0, 0, alloc), alloc)
	if err != nil {
		return nil, err
	}
	f, err := ParseTapeAlertPage(b)
	if err != nil {
		return nil, &CommandError{Addr: d.Addr(), Op: "LOG SENSE", Err: err}
	}
	return f, nil
}

// WaitReady polls TEST UNIT READY until the unit is ready, going through
// 02/04/01 "becoming ready" (polled with a backoff from 1 ms up to maxPoll,
// 100 ms if 0) and unit attentions (06/28/00 medium changed, 06/29/00 power
// on …, retried at once: each nexus gets each one once), as after a load.
// Other answers (no medium, hardware error …) are returned at once; ctx
// bounds the wait.
func (d *Device) WaitReady(ctx context.Context, maxPoll time.Duration) error {
	if maxPoll <= 0 {
		maxPoll = 100 * time.Millisecond
	}
	delay := time.Millisecond
	attentions := 0
	for {
		err := d.TestUnitReady()
		switch {
		case err == nil:
			return nil
		case IsUnitAttention(err) && attentions < 32:
			attentions++
			continue
		case !IsBecomingReady(err):
			return fmt.Errorf("%s: not ready: %w", d.Addr(), err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: not ready: %w (last answer: %v)", d.Addr(), context.Cause(ctx), err)
		case <-t.C:
		}
		delay = min(2*delay, maxPoll)
	}
}
