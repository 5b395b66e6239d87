// Package emu is vtl's device side: an SMC medium changer and N SSC LTO-6
// drives with application-managed AES-256-GCM encryption, served over the
// vtlwire unix-socket protocol. The byte-level behaviour follows
// shared/docs/scsi-reference.md (§ numbers in comments refer to it).
package emu

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/tools/vtl/cart"
)

// Element addresses (IBM style, §6.3).
const (
	transportAddr uint16 = 0x0001
	ieAddr        uint16 = 0x0010
	driveBase     uint16 = 0x0100
	slotBase      uint16 = 0x1000
)

// DensityLTO6 is the density code of the cartridges vtl creates.
const DensityLTO6 = 0x5A

// Config configures a library.
type Config struct {
	Dir    string
	Slots  int
	Drives int
	// IESlots is the number of import/export elements (the I/E station),
	// at addresses 0x0010 upwards; 0 means 1, the historical default.
	IESlots  int
	Capacity int64 // bytes, for newly created cartridges
	// Personalities maps a drive index to a personality name; missing
	// drives use DefaultPersonality ("ibm" if empty).
	Personalities      map[int]string
	DefaultPersonality string
	// LoadDelay is how long a drive reports 02/04/01 after a cartridge is
	// moved into it.
	LoadDelay time.Duration
	// RequireUnload makes MOVE MEDIUM from a drive whose cartridge is still
	// threaded fail with 05/53/01 instead of unloading it (§6.3 option).
	RequireUnload bool
	// SkipOnCryptoError moves past a block that failed with 74/xx
	// (default: the position is unchanged, like mhVTL; §4.5).
	SkipOnCryptoError bool
	Logger            *slog.Logger
	Trace             bool
	// Faults per unit ("drive0", "changer"); see Faults.
	Faults map[string]Faults
}

// Library is a running virtual library.
type Library struct {
	cfg    Config
	log    *slog.Logger
	drives []*Drive

	mu       sync.Mutex // the changer; taken before any drive's mu
	slots    []string   // barcode per slot ("" = empty)
	ie       []string   // barcode per import/export element
	ieSrc    []uint16   // where each I/E cartridge came from
	ieOp     []bool     // placed by the operator (IMPEXP, §6.3)
	driveBC  []string
	driveSrc []uint16
	cnex     map[*Nexus]struct{}
	cprevent map[*Nexus]bool
	// creserved is the changer's SPC-2 RESERVE(6) holder.
	creserved *Nexus
	nextID    atomic.Uint64
	serial    string
	pers      Personality
	lockFile  *os.File // flock on DIR/library.lock: one vtl per directory
	cfaults   Faults   // the changer's faults (under mu)

	hmu     sync.Mutex          // holders
	holders map[string]*holders // connections per unit (exclusive opens)

	// smu guards cartReads, the data blocks read per cartridge (taken
	// under a drive's mu, never before it).
	smu       sync.Mutex
	cartReads map[string]*ReadCount
}

type inventory struct {
	Slots       []string `json:"slots"`
	IE          string   `json:"ie,omitempty"`        // the single I/E element of older inventories
	IESource    uint16   `json:"ie_source,omitempty"` // its source
	IESlots     []string `json:"ie_slots"`
	IESources   []uint16 `json:"ie_sources"`
	IEOperator  []bool   `json:"ie_operator"`
	Drives      []string `json:"drives"`
	DriveSource []uint16 `json:"drive_source"`
}

// Barcode is the label of the cartridge created for slot n (1-based).
func Barcode(n int) string { return fmt.Sprintf("TW%04dL6", n) }

// NewLibrary opens (or, on an empty dir, creates) a library.
func NewLibrary(cfg Config) (*Library, error) {
	if cfg.Slots < 1 || cfg.Slots > 4000 || cfg.Drives < 1 || cfg.Drives > 200 {
		return nil, fmt.Errorf("need 1..4000 slots and 1..200 drives")
	}
	if cfg.IESlots == 0 {
		cfg.IESlots = 1
	}
	if cfg.IESlots < 0 || cfg.IESlots > int(driveBase-ieAddr) {
		return nil, fmt.Errorf("import/export slots %d: need 1..%d", cfg.IESlots, driveBase-ieAddr)
	}
	if cfg.Capacity < 1<<20 {
		return nil, fmt.Errorf("capacity %d: at least 1 MiB", cfg.Capacity)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.DefaultPersonality == "" {
		cfg.DefaultPersonality = "ibm"
	}
	lib := &Library{cfg: cfg, log: cfg.Logger, cnex: map[*Nexus]struct{}{}, cprevent: map[*Nexus]bool{},
		serial: "TWLIB00001", holders: map[string]*holders{}}
	p, err := LookupPersonality(cfg.DefaultPersonality)
	if err != nil {
		return nil, err
	}
	lib.pers = p
	for i := range cfg.Drives {
		name := cfg.DefaultPersonality
		if n, ok := cfg.Personalities[i]; ok {
			name = n
		}
		p, err := LookupPersonality(name)
		if err != nil {
			return nil, fmt.Errorf("drive%d: %w", i, err)
		}
		lib.drives = append(lib.drives, newDrive(lib, i, p))
	}
	for i := range cfg.Personalities {
		if i < 0 || i >= cfg.Drives {
			return nil, fmt.Errorf("personality for drive%d: no such drive", i)
		}
	}
	for unit, f := range cfg.Faults {
		if err := lib.SetFaults(unit, f); err != nil {
			return nil, fmt.Errorf("faults: %w", err)
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	lf, err := os.OpenFile(filepath.Join(cfg.Dir, "library.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		return nil, fmt.Errorf("%s is in use by another vtl (%v)", cfg.Dir, err)
	}
	lib.lockFile = lf
	if err := lib.loadInventory(); err != nil {
		lib.unlock()
		return nil, err
	}
	// Power on: cartridges left in drives are threaded again.
	for i, bc := range lib.driveBC {
		if bc != "" {
			d := lib.drives[i]
			d.lock()
			d.insert(lib.cartPath(bc), bc)
			if d.state == stLoading {
				d.state = stReady
			}
			d.mu.Unlock()
		}
	}
	return lib, nil
}

func (lib *Library) cartPath(bc string) string { return filepath.Join(lib.cfg.Dir, bc+".cart") }
func (lib *Library) invPath() string           { return filepath.Join(lib.cfg.Dir, "library.json") }

func (lib *Library) loadInventory() error {
	b, err := os.ReadFile(lib.invPath())
	var inv inventory
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, &inv); err != nil {
			return fmt.Errorf("%s: %w", lib.invPath(), err)
		}
	}
	for len(inv.Slots) > lib.cfg.Slots {
		if inv.Slots[len(inv.Slots)-1] != "" {
			return fmt.Errorf("library has a cartridge in slot %d but --slots is %d", len(inv.Slots), lib.cfg.Slots)
		}
		inv.Slots = inv.Slots[:len(inv.Slots)-1]
	}
	if inv.IE != "" && len(inv.IESlots) == 0 {
		inv.IESlots, inv.IESources = []string{inv.IE}, []uint16{inv.IESource}
	}
	inv.IE, inv.IESource = "", 0
	for len(inv.IESlots) > lib.cfg.IESlots {
		last := len(inv.IESlots) - 1
		if inv.IESlots[last] != "" {
			return fmt.Errorf("library has a cartridge in import/export slot %d but --ie-slots is %d", last+1, lib.cfg.IESlots)
		}
		inv.IESlots = inv.IESlots[:last]
	}
	for len(inv.IESlots) < lib.cfg.IESlots {
		inv.IESlots = append(inv.IESlots, "")
	}
	for len(inv.IESources) < lib.cfg.IESlots {
		inv.IESources = append(inv.IESources, 0)
	}
	for len(inv.IEOperator) < lib.cfg.IESlots {
		inv.IEOperator = append(inv.IEOperator, false)
	}
	inv.IESources, inv.IEOperator = inv.IESources[:lib.cfg.IESlots], inv.IEOperator[:lib.cfg.IESlots]
	known := map[string]bool{}
	for _, bc := range append(append(append([]string{}, inv.Slots...), inv.Drives...), inv.IESlots...) {
		if bc != "" {
			known[bc] = true
		}
	}
	// New slots get a new cartridge each (first serve on a new --dir).
	for n := len(inv.Slots) + 1; n <= lib.cfg.Slots; n++ {
		bc := Barcode(n)
		if known[bc] {
			inv.Slots = append(inv.Slots, "")
			continue
		}
		if _, err := os.Stat(lib.cartPath(bc)); errors.Is(err, os.ErrNotExist) {
			if err := cart.Create(lib.cartPath(bc), bc, DensityLTO6, lib.cfg.Capacity); err != nil {
				return err
			}
		}
		inv.Slots = append(inv.Slots, bc)
	}
	for len(inv.Drives) > lib.cfg.Drives {
		last := len(inv.Drives) - 1
		if inv.Drives[last] != "" {
			return fmt.Errorf("library has a cartridge in drive%d but --drives is %d", last, lib.cfg.Drives)
		}
		inv.Drives = inv.Drives[:last]
	}
	for len(inv.Drives) < lib.cfg.Drives {
		inv.Drives = append(inv.Drives, "")
	}
	for len(inv.DriveSource) < lib.cfg.Drives {
		inv.DriveSource = append(inv.DriveSource, 0)
	}
	lib.slots, lib.ie, lib.ieSrc, lib.ieOp = inv.Slots, inv.IESlots, inv.IESources, inv.IEOperator
	lib.driveBC, lib.driveSrc = inv.Drives, inv.DriveSource[:lib.cfg.Drives]
	return lib.saveInventory()
}

// saveInventory persists the element contents atomically (caller holds mu
// or is the constructor).
func (lib *Library) saveInventory() error {
	inv := inventory{Slots: lib.slots, IESlots: lib.ie, IESources: lib.ieSrc, IEOperator: lib.ieOp,
		Drives: lib.driveBC, DriveSource: lib.driveSrc}
	b, err := json.MarshalIndent(inv, "", "  ")
	if err != nil {
		return err
	}
	tmp := lib.invPath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, lib.invPath())
}

// Drive returns drive i.
func (lib *Library) Drive(i int) *Drive { return lib.drives[i] }

// Close flushes and closes every cartridge and releases the directory.
func (lib *Library) Close() error {
	for _, d := range lib.drives {
		d.close()
	}
	lib.unlock()
	return nil
}

func (lib *Library) unlock() {
	if lib.lockFile != nil {
		unix.Flock(int(lib.lockFile.Fd()), unix.LOCK_UN)
		lib.lockFile.Close()
		lib.lockFile = nil
	}
}

// element kinds
const (
	elNone = iota
	elTransport
	elSlot
	elIE
	elDrive
)

func (lib *Library) classify(a uint16) (kind, idx int) {
	switch {
	case a == transportAddr:
		return elTransport, 0
	case a >= ieAddr && int(a-ieAddr) < len(lib.ie):
		return elIE, int(a - ieAddr)
	case a >= driveBase && int(a-driveBase) < len(lib.drives):
		return elDrive, int(a - driveBase)
	case a >= slotBase && int(a-slotBase) < len(lib.slots):
		return elSlot, int(a - slotBase)
	}
	return elNone, 0
}

func (lib *Library) content(a uint16) string {
	k, i := lib.classify(a)
	switch k {
	case elSlot:
		return lib.slots[i]
	case elIE:
		return lib.ie[i]
	case elDrive:
		return lib.driveBC[i]
	}
	return ""
}

// move carries a cartridge between elements (MOVE MEDIUM and the panel).
// Caller holds lib.mu. The returned sense is nil on success.
func (lib *Library) move(src, dst uint16) *sense {
	sk, si := lib.classify(src)
	dk, di := lib.classify(dst)
	if sk == elNone || sk == elTransport {
		s := illegal(scsi.ASCInvalidElementAddress)
		s.sksv, s.cd, s.field = true, true, 4
		return s
	}
	if dk == elNone || dk == elTransport {
		s := illegal(scsi.ASCInvalidElementAddress)
		s.sksv, s.cd, s.field = true, true, 6
		return s
	}
	bc := lib.content(src)
	if bc == "" {
		return illegal(scsi.ASCMediumSourceEmpty)
	}
	if src == dst {
		return nil
	}
	if lib.content(dst) != "" {
		return illegal(scsi.ASCMediumDestFull)
	}
	if sk == elDrive {
		d := lib.drives[si]
		d.lock()
		threaded := d.state == stReady || d.state == stLoading || d.state == stHold
		if threaded && d.prevented() {
			d.mu.Unlock()
			return illegal(scsi.ASCMediumRemovalPrevented)
		}
		if threaded && lib.cfg.RequireUnload {
			d.mu.Unlock()
			return illegal(ascDriveDidNotUnload)
		}
		d.remove()
		d.mu.Unlock()
	}
	origin := src
	switch sk {
	case elSlot:
		lib.slots[si] = ""
	case elIE:
		lib.ie[si], lib.ieOp[si] = "", false
		origin = lib.ieSrc[si]
		if origin == 0 {
			origin = src
		}
	case elDrive:
		lib.driveBC[si] = ""
		origin = lib.driveSrc[si]
	}
	switch dk {
	case elSlot:
		lib.slots[di] = bc
	case elIE:
		lib.ie[di], lib.ieSrc[di], lib.ieOp[di] = bc, origin, false
	case elDrive:
		lib.driveBC[di], lib.driveSrc[di] = bc, origin
		d := lib.drives[di]
		d.lock()
		d.insert(lib.cartPath(bc), bc)
		d.mu.Unlock()
	}
	if err := lib.saveInventory(); err != nil {
		lib.log.Error("saving library inventory", "err", err)
	}
	return nil
}

// senseError makes a panel error from a sense.
func senseError(s *sense) error {
	return fmt.Errorf("%X/%02X/%02X %s", s.key, s.asc.ASC(), s.asc.Qualifier(), ascText(s.asc))
}

func ascText(a scsi.ASCQ) string {
	switch a {
	case scsi.ASCMediumSourceEmpty:
		return "medium source element empty"
	case scsi.ASCMediumDestFull:
		return "medium destination element full"
	case scsi.ASCInvalidElementAddress:
		return "invalid element address"
	case scsi.ASCMediumRemovalPrevented:
		return "medium removal prevented"
	case ascDriveDidNotUnload:
		return "drive did not unload the cartridge"
	}
	return ""
}

// PanelLoad moves the cartridge in slot (1-based) into drive.
func (lib *Library) PanelLoad(slot, drive int) error {
	if slot < 1 || slot > len(lib.slots) {
		return fmt.Errorf("no slot %d (have 1..%d)", slot, len(lib.slots))
	}
	if drive < 0 || drive >= len(lib.drives) {
		return fmt.Errorf("no drive %d (have 0..%d)", drive, len(lib.drives)-1)
	}
	lib.mu.Lock()
	defer lib.mu.Unlock()
	if s := lib.move(slotBase+uint16(slot-1), driveBase+uint16(drive)); s != nil {
		return senseError(s)
	}
	return nil
}

// PanelMove moves a cartridge between any two element addresses, as an
// operator at the front panel (e.g. to or from the import/export station).
// Changer nexuses see 06/28/01 when the import/export element is involved.
func (lib *Library) PanelMove(from, to int) error {
	if from < 0 || from > 0xFFFF || to < 0 || to > 0xFFFF {
		return fmt.Errorf("element address out of range")
	}
	lib.mu.Lock()
	defer lib.mu.Unlock()
	if s := lib.move(uint16(from), uint16(to)); s != nil {
		return senseError(s)
	}
	fk, _ := lib.classify(uint16(from))
	tk, ti := lib.classify(uint16(to))
	if tk == elIE {
		lib.ieOp[ti] = true // placed by the operator: IMPEXP
		if err := lib.saveInventory(); err != nil {
			lib.log.Error("saving library inventory", "err", err)
		}
	}
	if fk == elIE || tk == elIE {
		for nx := range lib.cnex {
			nx.addUA(scsi.ASCImportExportAccessed)
		}
	}
	return nil
}

// PanelProtect sets or clears the write-protect tab of the cartridge in
// slot (1-based); like a real tab, only while the cartridge is out of the
// drives.
func (lib *Library) PanelProtect(slot int, on bool) error {
	if slot < 1 || slot > len(lib.slots) {
		return fmt.Errorf("no slot %d (have 1..%d)", slot, len(lib.slots))
	}
	lib.mu.Lock()
	defer lib.mu.Unlock()
	bc := lib.slots[slot-1]
	if bc == "" {
		return fmt.Errorf("slot %d is empty", slot)
	}
	return cart.SetWriteProtect(lib.cartPath(bc), on)
}

// PanelUnload unloads drive and returns its cartridge to the slot it came
// from (or the first empty slot).
func (lib *Library) PanelUnload(drive int) (int, error) {
	if drive < 0 || drive >= len(lib.drives) {
		return 0, fmt.Errorf("no drive %d (have 0..%d)", drive, len(lib.drives)-1)
	}
	lib.mu.Lock()
	defer lib.mu.Unlock()
	if lib.driveBC[drive] == "" {
		return 0, fmt.Errorf("drive %d is empty", drive)
	}
	dst := lib.driveSrc[drive]
	if k, _ := lib.classify(dst); k != elSlot || lib.content(dst) != "" {
		dst = 0
		for i, bc := range lib.slots {
			if bc == "" {
				dst = slotBase + uint16(i)
				break
			}
		}
		if dst == 0 {
			return 0, fmt.Errorf("no empty slot for the cartridge in drive %d", drive)
		}
	}
	if s := lib.move(driveBase+uint16(drive), dst); s != nil {
		return 0, senseError(s)
	}
	return int(dst-slotBase) + 1, nil
}

// Status is the library state for `vtl status`.
type Status struct {
	Changer struct {
		Vendor  string `json:"vendor"`
		Product string `json:"product"`
		Serial  string `json:"serial"`
	} `json:"changer"`
	Slots []SlotStatus `json:"slots"`
	IE    SlotStatus   `json:"import_export"` // the first I/E element
	// IESlots lists every import/export element (IE is its first).
	IESlots []SlotStatus  `json:"import_export_slots"`
	Drives  []DriveStatus `json:"drives"`
}

// SlotStatus is one storage or import/export element.
type SlotStatus struct {
	Slot    int    `json:"slot,omitempty"`
	Address int    `json:"address"`
	Barcode string `json:"barcode,omitempty"`
}

// Status reports the library's state. Keys appear only as fingerprints.
func (lib *Library) Status() Status {
	var st Status
	st.Changer.Vendor, st.Changer.Product, st.Changer.Serial = lib.pers.ChangerVendor, lib.pers.ChangerProduct, lib.serial
	lib.mu.Lock()
	for i, bc := range lib.slots {
		st.Slots = append(st.Slots, SlotStatus{Slot: i + 1, Address: int(slotBase) + i, Barcode: bc})
	}
	for i, bc := range lib.ie {
		st.IESlots = append(st.IESlots, SlotStatus{Slot: i + 1, Address: int(ieAddr) + i, Barcode: bc})
	}
	st.IE = st.IESlots[0]
	st.IE.Slot = 0
	lib.mu.Unlock()
	for _, d := range lib.drives {
		st.Drives = append(st.Drives, d.status())
	}
	return st
}

// NumDrives is the number of drives (units drive0..drive(N-1)).
func (lib *Library) NumDrives() int { return len(lib.drives) }

// Logger is the library's logger.
func (lib *Library) Logger() *slog.Logger { return lib.log }
