package emu

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
	"github.com/tapeward/tapeward/tools/vtl/cart"
)

// Drive states.
type driveState int

const (
	stEmpty   driveState = iota // no cartridge in the drive
	stLoading                   // threading: 02/04/01 until readyAt
	stReady                     // loaded at a position
	stHold                      // present, not threaded (UNLOAD with HOLD): 02/04/02
	stEjected                   // unloaded and ejected, waiting for the picker: 02/3A/00
	stCorrupt                   // cartridge file unusable: 03/31/00
)

func (s driveState) String() string {
	return [...]string{"empty", "loading", "ready", "hold", "ejected", "corrupt"}[s]
}

// MaxBlock is the largest block (READ BLOCK LIMITS).
const MaxBlock = 0x800000

// Drive is one emulated LTO-6 drive. All commands to it are serialized by mu.
type Drive struct {
	mu      sync.Mutex
	lib     *Library
	Index   int
	Addr    uint16 // data transfer element address
	pers    Personality
	serial  string
	nexuses map[*Nexus]struct{}

	cart    *cart.Cartridge
	cartErr error
	barcode string
	state   driveState
	readyAt time.Time
	pos     int64

	blockLen  int  // 0 = variable
	dce       bool // data compression enabled (recorded, not applied)
	dsense    bool // Control page D_SENSE
	tapeAlert uint64

	reserved *Nexus     // SPC-2 RESERVE(6) holder
	public   *encParams // parameters shared by nexuses not using LOCAL
	kic      uint32
	nonce    nonceGen
	// wrongKeyReads counts consecutive 07/74/03 reads (HP lockout).
	wrongKeyReads int

	scratch []byte // sealed block under construction
	meta    cart.Meta

	// seq counts the times the drive was locked (d.lock): a read-ahead
	// made at seq is still good for the READ that locks it next, at
	// seq+1, and for nothing else.
	seq       uint64
	ahead     readAhead
	aheadBuf  []byte // where a read-ahead goes without a shared data buffer
	lastRead  bool   // the last command returned a data block read
	lastNexus *Nexus // from this nexus
	// aheadMade and aheadUsed count read-aheads (tests).
	aheadMade, aheadUsed int

	faults  Faults // misbehaviour switches (Library.SetFaults)
	prevPos int64  // position before the last WRITE / WRITE FILEMARKS

	// reads counts the data blocks READ returned (Library.ReadStats);
	// flipSeen the blocks read since the faults were set (FlipRead).
	reads    ReadCount
	flipped  int64
	flipSeen int
}

func newDrive(lib *Library, idx int, p Personality) *Drive {
	return &Drive{
		lib: lib, Index: idx, Addr: driveBase + uint16(idx), pers: p,
		serial:  fmt.Sprintf("TWDRV%05d", idx),
		nexuses: map[*Nexus]struct{}{},
		dce:     true,
	}
}

// Serial is the drive's unit serial number (VPD 0x80).
func (d *Drive) Serial() string { return d.serial }

// Personality returns the drive's personality.
func (d *Drive) Personality() Personality { return d.pers }

func (d *Drive) attach(nx *Nexus) {
	d.lock()
	d.nexuses[nx] = struct{}{}
	d.mu.Unlock()
}

// detach ends a nexus: its LOCAL parameters and PREVENT go away (§4.4).
func (d *Drive) detach(nx *Nexus) {
	d.lock()
	delete(d.nexuses, nx)
	nx.local = nil
	if d.reserved == nx {
		d.reserved = nil
	}
	d.mu.Unlock()
}

func (d *Drive) uaOthers(except *Nexus, a scsi.ASCQ) {
	for nx := range d.nexuses {
		if nx != except {
			nx.addUA(a)
		}
	}
}

func (d *Drive) prevented() bool {
	for nx := range d.nexuses {
		if nx.prevent {
			return true
		}
	}
	return false
}

// insert puts a cartridge into the drive (changer move); caller holds mu.
func (d *Drive) insert(path, barcode string) {
	d.barcode = barcode
	c, rep, err := cart.Open(path)
	if err != nil {
		d.cart, d.cartErr, d.state = nil, err, stCorrupt
		d.lib.log.Error("cartridge unusable", "barcode", barcode, "err", err)
		return
	}
	if rep != nil {
		d.lib.log.Warn("cartridge had a torn tail; truncated", "barcode", barcode, "at", rep.At, "bytes", rep.Truncated, "reason", rep.Reason)
	}
	d.cart, d.cartErr = c, nil
	d.pos = 0
	d.wrongKeyReads = 0
	d.state = stLoading
	d.readyAt = time.Now().Add(d.lib.cfg.LoadDelay)
	d.uaOthers(nil, scsi.ASCMediumMayHaveChanged)
}

// unthread rewinds and unloads (LOAD UNLOAD or changer pick); clears a
// CKOD key. by is the nexus that asked (nil for the changer/panel).
func (d *Drive) unthread(by *Nexus, st driveState) {
	if d.cart != nil {
		d.cart.Flush()
	}
	d.pos = 0
	d.state = st
	d.wrongKeyReads = 0
	d.clearCKOD(by)
}

// remove takes the cartridge out (changer pick); caller holds mu.
func (d *Drive) remove() {
	if d.state == stReady || d.state == stLoading || d.state == stHold {
		d.unthread(nil, stEjected)
	}
	if d.cart != nil {
		if err := d.cart.Close(); err != nil {
			d.lib.log.Error("closing cartridge", "barcode", d.barcode, "err", err)
		}
	}
	d.cart, d.cartErr, d.barcode, d.state = nil, nil, "", stEmpty
}

func (d *Drive) close() {
	d.lock()
	defer d.mu.Unlock()
	if d.cart != nil {
		d.cart.Close()
		d.cart = nil
	}
}

// ready checks that a medium is loaded and ready for access.
func (d *Drive) ready() *sense {
	switch d.state {
	case stEmpty, stEjected:
		return checkSense(scsi.SenseNotReady, scsi.ASCMediumNotPresent)
	case stLoading:
		if time.Now().Before(d.readyAt) {
			return checkSense(scsi.SenseNotReady, scsi.ASCBecomingReady)
		}
		d.state = stReady
		return nil
	case stHold:
		return checkSense(scsi.SenseNotReady, scsi.ASCInitializingCmdRequired)
	case stCorrupt:
		return checkSense(scsi.SenseMediumError, scsi.ASCMediumFormatCorrupted)
	}
	return nil
}

// Exec runs one command from nx, serialized with every other command to
// this drive. The response's data-in and sense alias nx's buffers only, so
// the caller can send it after the drive lock is released.
func (d *Drive) Exec(nx *Nexus, req *vtlwire.Request) vtlwire.Response {
	d.lock()
	defer d.mu.Unlock()
	d.lastRead = false
	r := d.exec(nx, req)
	desc := d.dsense
	return toResponse(nx, req, r, d.pers.SenseLen, desc)
}

func (d *Drive) exec(nx *Nexus, req *vtlwire.Request) reply {
	cdb := req.CDB
	op := cdb[0]
	if len(cdb) < cdbLen(op) {
		if _, known := opNames[op]; known {
			return fail(invalidCDB(0))
		}
	}
	if conflict(d.reserved, nx, op) {
		return reply{status: scsi.StatusReservationConflict}
	}
	switch op {
	case scsi.OpInquiry:
		return d.inquiry(nx, cdb)
	case scsi.OpReportLUNs:
		return reportLUNs(nx, cdb)
	case scsi.OpRequestSense:
		return d.requestSense(nx, cdb)
	}
	if s := nx.takeUA(); s != nil {
		return fail(s)
	}
	switch op {
	case scsi.OpTestUnitReady:
		if s := d.ready(); s != nil {
			return fail(s)
		}
		return good(nil)
	case scsi.OpReadBlockLimits:
		if cdb[1]&1 != 0 {
			return fail(invalidCDBBit(1, 0))
		}
		mb := d.maxBlock()
		return good(append(nx.out[:0], 0x00, byte(mb>>16), byte(mb>>8), byte(mb), 0x00, 0x01))
	case scsi.OpModeSense6, scsi.OpModeSense10:
		return d.modeSense(nx, cdb)
	case scsi.OpModeSelect6, scsi.OpModeSelect10:
		return d.modeSelect(nx, cdb, req.DataOut)
	case scsi.OpLogSense:
		return d.logSense(nx, cdb)
	case scsi.OpPreventAllow:
		nx.prevent = cdb[4]&3 == 1
		return good(nil)
	case opReserve6, opRelease6:
		return reserve(&d.reserved, nx, cdb)
	case scsi.OpSecurityProtocolIn:
		if d.pers.NoAME {
			return fail(illegal(scsi.ASCInvalidOpcode))
		}
		return d.spin(nx, cdb)
	case scsi.OpSecurityProtocolOut:
		if d.pers.NoAME {
			return fail(illegal(scsi.ASCInvalidOpcode))
		}
		return d.spout(nx, cdb, req.DataOut)
	case scsi.OpLoadUnload:
		return d.loadUnload(nx, cdb)
	}
	// Medium access commands.
	switch op {
	case scsi.OpRead6, scsi.OpWrite6, scsi.OpWriteFilemarks6, scsi.OpSpace6, scsi.OpSpace16,
		scsi.OpRewind, scsi.OpReadPosition, scsi.OpLocate16, 0x2B, scsi.OpErase6, 0x44:
	default:
		return fail(illegal(scsi.ASCInvalidOpcode))
	}
	if op == 0x44 {
		return d.reportDensity(nx, cdb)
	}
	if s := d.ready(); s != nil {
		return fail(s)
	}
	switch op {
	case scsi.OpRead6:
		return d.read6(nx, cdb, req.AllocLen)
	case scsi.OpWrite6:
		d.prevPos = d.pos
		return d.write6(nx, cdb, req.DataOut)
	case scsi.OpWriteFilemarks6:
		d.prevPos = d.pos
		return d.writeFilemarks(nx, cdb)
	case scsi.OpSpace6:
		return d.space(int(cdb[1]&0xF), sext24(be24(cdb[2:5])), 1)
	case scsi.OpSpace16:
		// No tape holds 2^40 objects; clamping keeps the arithmetic far
		// from overflow.
		n := int64(be32(cdb[4:8]))<<32 | int64(be32(cdb[8:12]))
		n = max(min(n, 1<<40), -1<<40)
		return d.space(int(cdb[1]&0xF), n, 1)
	case scsi.OpRewind:
		if err := d.cart.Flush(); err != nil {
			return d.ioError(err)
		}
		d.pos = 0
		return good(nil)
	case scsi.OpReadPosition:
		return d.readPosition(nx, cdb)
	case scsi.OpLocate16:
		return d.locate16(cdb)
	case 0x2B:
		if cdb[1]&2 != 0 && cdb[8] != 0 {
			return fail(invalidCDB(8))
		}
		return d.locateObject(int64(be32(cdb[3:7])))
	case scsi.OpErase6:
		if d.cart.Header().WriteProtected {
			return fail(checkSense(scsi.SenseDataProtect, scsi.ASCWriteProtected))
		}
		if err := d.cart.Truncate(d.pos); err != nil {
			return d.ioError(err)
		}
		return good(nil)
	}
	return fail(illegal(scsi.ASCInvalidOpcode))
}

func (d *Drive) ioError(err error) reply {
	d.lib.log.Error("cartridge I/O", "drive", d.Index, "barcode", d.barcode, "err", err)
	if errors.Is(err, cart.ErrChecksum) {
		d.tapeAlert |= taFlag(3) | taFlag(4)
		return fail(checkSense(scsi.SenseMediumError, scsi.ASCUnrecoveredReadError))
	}
	return fail(checkSense(scsi.SenseHardwareError, scsi.ASCInternalTargetFailure))
}

// taFlag returns the TapeAlert bitmap bit of flag n (1..64; flag 1 is the MSB).
func taFlag(n int) uint64 { return 1 << (64 - n) }

func (d *Drive) requestSense(nx *Nexus, cdb []byte) reply {
	desc := cdb[1]&1 != 0
	s := nx.takeUA()
	if s == nil {
		s = &sense{}
		if d.state == stReady && d.pastEW() {
			s.eom = true
			s.asc = scsi.ASCEndOfPartitionDetected
		}
	}
	var b []byte
	if desc {
		b = s.descriptor(nx.out[:0])
	} else {
		b = s.fixed(nx.out[:cap(nx.out)], d.pers.SenseLen)
	}
	if n := int(cdb[4]); len(b) > n {
		b = b[:n]
	}
	return good(b)
}

func (d *Drive) loadUnload(nx *Nexus, cdb []byte) reply {
	load, hold := cdb[4]&1 != 0, cdb[4]&8 != 0
	if load {
		switch d.state {
		case stEmpty:
			return fail(checkSense(scsi.SenseNotReady, scsi.ASCMediumNotPresent))
		case stCorrupt:
			return fail(checkSense(scsi.SenseMediumError, scsi.ASCMediumFormatCorrupted))
		case stLoading:
			if s := d.ready(); s != nil {
				return fail(s)
			}
			return good(nil)
		case stReady:
			d.cart.Flush()
			d.pos = 0
			return good(nil)
		}
		d.pos = 0
		if hold {
			d.state = stHold
			return good(nil)
		}
		d.state = stReady
		d.uaOthers(nx, scsi.ASCMediumMayHaveChanged)
		return good(nil)
	}
	switch d.state {
	case stEmpty, stEjected:
		return fail(checkSense(scsi.SenseNotReady, scsi.ASCMediumNotPresent))
	case stCorrupt:
		return good(nil)
	}
	if d.prevented() {
		return fail(illegal(scsi.ASCMediumRemovalPrevented))
	}
	st := stEjected
	if hold {
		st = stHold
	}
	d.unthread(nx, st)
	return good(nil)
}

func (d *Drive) inquiry(nx *Nexus, cdb []byte) reply {
	evpd, page := cdb[1]&1 != 0, cdb[2]
	alloc := be16(cdb[3:5])
	var b []byte
	if !evpd {
		if page != 0 {
			return fail(invalidCDB(2))
		}
		b = stdInquiry(nx.out[:0], 0x01, 0x80, d.pers.Vendor, d.pers.Product, d.pers.Revision)
	} else {
		switch page {
		case 0x00:
			b = append(nx.out[:0], 0x01, 0x00, 0x00, 0x04, 0x00, 0x80, 0x83, 0xB0)
		case 0x80:
			b = vpdSerial(nx.out[:0], 0x01, d.serial)
		case 0x83:
			b = vpdDevID(nx.out[:0], 0x01, d.pers.Vendor, d.pers.Product, d.serial, 0x100+uint64(d.Index))
		case 0xB0:
			b = append(nx.out[:0], 0x01, 0xB0, 0x00, 0x02, 0x00, 0x00)
		default:
			return fail(invalidCDB(2))
		}
	}
	if len(b) > alloc {
		b = b[:alloc]
	}
	return good(b)
}

// stdInquiry builds 96 bytes of standard INQUIRY data.
func stdInquiry(b []byte, devType, rmb byte, vendor, product, rev string) []byte {
	b = append(b, make([]byte, 96)...)
	b[0] = devType
	b[1] = rmb
	b[2] = 0x06
	b[3] = 0x02
	b[4] = 96 - 5
	copy(b[8:16], pad(vendor, 8))
	copy(b[16:32], pad(product, 16))
	copy(b[32:36], pad(rev, 4))
	// version descriptors: SAM-4, SPC-4, SSC-3 (drive) or SMC-3 (changer)
	put16(b[58:], 0x0090)
	put16(b[60:], 0x0460)
	if devType == 0x01 {
		put16(b[62:], 0x0300)
	} else {
		put16(b[62:], 0x0480)
	}
	return b
}

func vpdSerial(b []byte, devType byte, serial string) []byte {
	b = append(b, devType, 0x80, 0, byte(len(serial)))
	return append(b, serial...)
}

// vpdDevID builds VPD 0x83 with a T10 vendor-ID designator and an NAA WWN.
func vpdDevID(b []byte, devType byte, vendor, product, serial string, n uint64) []byte {
	b = append(b, devType, 0x83, 0, 0)
	id := append(append(pad(vendor, 8), pad(product, 16)...), serial...)
	b = append(b, 0x02, 0x01, 0x00, byte(len(id)))
	b = append(b, id...)
	// NAA 5, IEEE company id 0x005076 (IBM's, as LTO drives use), serial.
	var naa [8]byte
	put64(naa[:], 0x5<<60|0x005076<<36|(n&0xFFFFFFFFF))
	b = append(b, 0x01, 0x03, 0x00, 0x08)
	b = append(b, naa[:]...)
	put16(b[2:], len(b)-4)
	return b
}

func reportLUNs(nx *Nexus, cdb []byte) reply {
	if len(cdb) < 12 {
		return fail(invalidCDB(0))
	}
	b := append(nx.out[:0], 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	if alloc := int(be32(cdb[6:10])); len(b) > alloc {
		b = b[:alloc]
	}
	return good(b)
}

func (d *Drive) reportDensity(nx *Nexus, cdb []byte) reply {
	if cdb[1]&1 != 0 && d.state != stReady {
		if s := d.ready(); s != nil {
			return fail(s)
		}
	}
	type dens struct {
		code   byte
		wrt    bool
		bpmm   int
		tracks int
		capMB  uint32
		name   string
		descr  string
		deflt  bool
	}
	ds := []dens{
		{0x5A, true, 15142, 2176, 2500000, "U-732", "Ultrium 6/16T", true},
		{0x58, true, 15142, 1280, 1500000, "U-532", "Ultrium 5/16T", false},
		{0x46, false, 13250, 896, 800000, "U-416", "Ultrium 4/16T", false},
	}
	if cdb[1]&1 != 0 {
		ds = ds[:1]
	}
	b := append(nx.out[:0], 0, 0, 0, 0)
	for _, x := range ds {
		e := make([]byte, 52)
		e[0], e[1] = x.code, x.code
		if x.wrt {
			e[2] |= 0x80
		}
		if x.deflt {
			e[2] |= 0x20
		}
		put16(e[3:], 0x31)
		e[5], e[6], e[7] = byte(x.bpmm>>16), byte(x.bpmm>>8), byte(x.bpmm)
		put16(e[8:], 127)
		put16(e[10:], x.tracks)
		put32(e[12:], x.capMB)
		copy(e[16:24], pad("LTO-CVE", 8))
		copy(e[24:32], pad(x.name, 8))
		copy(e[32:52], pad(x.descr, 20))
		b = append(b, e...)
	}
	put16(b[0:], len(b)-2)
	if alloc := be16(cdb[7:9]); len(b) > alloc {
		b = b[:alloc]
	}
	return good(b)
}

// Status is a drive's state for `vtl status`.
type DriveStatus struct {
	Drive       int    `json:"drive"`
	Address     int    `json:"address"`
	Personality string `json:"personality"`
	Vendor      string `json:"vendor"`
	Product     string `json:"product"`
	Serial      string `json:"serial"`
	State       string `json:"state"`
	Barcode     string `json:"barcode,omitempty"`
	Position    int64  `json:"position"`
	Objects     int64  `json:"objects"`
	UsedBytes   int64  `json:"used_bytes"`
	Nexuses     int    `json:"nexuses"`
	KeyLoaded   bool   `json:"key_loaded"`
	Fingerprint string `json:"key_fingerprint,omitempty"`
	KIC         uint32 `json:"key_instance_counter"`
	// LocalKeys counts nexuses holding SCOPE=LOCAL keys (not shown).
	LocalKeys int `json:"local_keys"`
	EncMode   int `json:"encryption_mode"`
	DecMode   int `json:"decryption_mode"`
}

func (d *Drive) status() DriveStatus {
	d.mu.Lock() // a read: a read-ahead stays good
	defer d.mu.Unlock()
	if d.state == stLoading {
		d.ready()
	}
	s := DriveStatus{
		Drive: d.Index, Address: int(d.Addr), Personality: d.pers.Name, Vendor: d.pers.Vendor,
		Product: d.pers.Product, Serial: d.serial, State: d.state.String(), Barcode: d.barcode,
		Position: d.pos, Nexuses: len(d.nexuses), KIC: d.kic,
	}
	if d.cart != nil {
		s.Objects = d.cart.EOD()
		s.UsedBytes = d.cart.Used()
	}
	for nx := range d.nexuses {
		if nx.useLocal && nx.local != nil && nx.local.key != nil {
			s.LocalKeys++
		}
	}
	if p := d.public; p != nil {
		s.EncMode, s.DecMode = int(p.encMode), int(p.decMode)
		if p.key != nil {
			s.KeyLoaded, s.Fingerprint = true, p.fp
		}
	}
	return s
}
