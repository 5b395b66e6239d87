package sd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapeward/tapeward/configs"
	"github.com/tapeward/tapeward/storaged/label"
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// Drive states, as Status reports them.
const (
	StateIdle     = "idle"
	StateLabeling = "labeling"
	StateMounted  = "mounted"
	StateWriting  = "writing"
	StateReading  = "reading"
	StateError    = "error"
)

// Drive is one configured tape drive. Its mutex serialises every operation
// on it; the fields below it are guarded by it.
type Drive struct {
	cfg     configs.Drive
	name    string
	crypto  bool // configured crypto = true
	changer *Changer
	log     *slog.Logger

	mu      sync.Mutex
	dev     *scsi.Device
	probe   *scsi.ProbeResult
	state   string
	lastErr string

	// The mounted cartridge, if any.
	label      *label.Label
	barcode    string
	sourceSlot uint16 // element address it came from
	slot       uint32

	// The key the drive holds, as far as this daemon loaded it.
	keyFP  string
	keyKEK string // id of the KEK that wrapped it
	kic    uint32
	// verified: the first block of the current session read back encrypted.
	verified bool

	// view is what the drive holds, readable without dr.mu (a write
	// session holds the lock for its whole length): VolumeState answers
	// from it whether a volume is in a drive.
	view atomic.Pointer[driveView]
}

// driveView is the volume a drive holds and what it does with it.
type driveView struct{ volume, state string }

// setView publishes what the drive holds ("" : nothing).
func (dr *Drive) setView(volume, state string) {
	if volume == "" {
		dr.view.Store(nil)
		return
	}
	dr.view.Store(&driveView{volume: volume, state: state})
}

// Name is the configured drive name.
func (dr *Drive) Name() string { return dr.name }

func (dr *Drive) fail(err error) {
	dr.state = StateError
	dr.lastErr = err.Error()
}

// ame says whether keys can be loaded into this drive.
func (dr *Drive) ame() bool { return dr.probe != nil && dr.probe.AME }

// startup probes the drive and clears any key left in it, logging one line
// that says what the drive is and whether it can encrypt.
func (dr *Drive) startup(ctx context.Context) {
	dr.mu.Lock()
	defer dr.mu.Unlock()
	dr.state = StateIdle
	p, err := dr.dev.Probe()
	if err != nil {
		dr.fail(err)
		dr.log.Error("drive probe failed", "address", dr.cfg.Address, "error", err.Error())
		return
	}
	dr.probe = p
	ident := dr.cfg.Address
	if p.Inquiry != nil {
		ident = fmt.Sprintf("%s %s (%s)", p.Inquiry.Vendor, p.Inquiry.Product, dr.cfg.Address)
	}
	if !p.AME {
		line := fmt.Sprintf("%s %s: AME no — %s", dr.name, ident, trimAME(p.Reason))
		if dr.crypto {
			dr.log.Warn(line + "; this drive is configured crypto = true but cannot take keys: it will not get encrypted volumes")
		} else {
			dr.log.Info(line)
		}
		return
	}
	desc := fmt.Sprintf("%s %s: AME yes — %s index %d, U-KAD ≤ %d bytes, CKOD %s", dr.name, ident,
		scsi.AlgorithmName(scsi.AlgorithmAES256GCM), p.AlgorithmIndex, p.MaxUKAD, yesNo(p.CKOD))
	if !dr.crypto {
		// crypto = false: this daemon never loads a key here, but a key
		// someone else left is still cleared.
		desc += " (configured crypto = false: never given keys)"
	}
	if err := dr.clearKey("start-up"); err != nil {
		dr.log.Error(desc+"; CLEARING THE KEY FAILED", "error", err.Error())
		return
	}
	dr.log.Info(desc + "; key cleared")
}

func trimAME(reason string) string {
	const p = "no application-managed encryption: "
	if len(reason) > len(p) && reason[:len(p)] == p {
		return reason[len(p):]
	}
	return reason
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// clearKey clears the drive's key and checks the status page says so.
// It runs on every path that ends a drive's use (invariant 3); a drive
// without AME has nothing to clear. Called with dr.mu held.
func (dr *Drive) clearKey(why string) error {
	if dr.dev == nil || !dr.ame() {
		return nil
	}
	st, err := dr.dev.Clear()
	if err != nil {
		dr.log.Error("clearing the drive key failed", "why", why, "error", err.Error())
		return fmt.Errorf("%s: clearing the key (%s): %w", dr.name, why, err)
	}
	if dr.keyFP != "" {
		dr.log.Info("key cleared", "why", why, "fingerprint", dr.keyFP, "key_instance_counter", st.KeyInstanceCounter)
	}
	dr.keyFP, dr.keyKEK = "", ""
	dr.kic = st.KeyInstanceCounter
	return nil
}

// loadKey unwraps sk, checks it against the label, makes sure the wrapped
// key is in the crypto cache, and loads it (encrypt + mixed) with its
// fingerprint as U-KAD, verified by reading the status page back. The
// unwrapped bytes never leave this function. A history key (not the
// volume's current key) already in the cache, current or in its history,
// is not put again (it would replace the current one there). Called with
// dr.mu held.
func (dr *Drive) loadKey(d *Daemon, volume string, sk keys.StoredKey, want label.Encryption, history bool) error {
	if !dr.crypto {
		return &CryptoRefusedError{Drive: dr.name, Volume: volume, Reason: "the drive is configured crypto = false"}
	}
	if !dr.ame() {
		return &CryptoRefusedError{Drive: dr.name, Volume: volume, Reason: dr.noAMEReason()}
	}
	if want.Fingerprint != "" && sk.Fingerprint != "" && sk.Fingerprint != want.Fingerprint {
		return fmt.Errorf("%s: the key for volume %s has fingerprint %s but its label records %s; refusing to load it",
			dr.name, volume, sk.Fingerprint, want.Fingerprint)
	}
	if sk.Fingerprint == "" {
		sk.Fingerprint = want.Fingerprint
	}
	key, err := d.ring.Unwrap(sk)
	if err != nil {
		// *keys.UnwrapError / *keys.KEKNotFoundError name the KEK id.
		return fmt.Errorf("%s: volume %s: %w", dr.name, volume, err)
	}
	defer clear(key)
	fp := keys.Fingerprint(key)
	if want.Fingerprint != "" && fp != want.Fingerprint {
		return fmt.Errorf("%s: the key for volume %s unwraps to fingerprint %s but its label records %s; refusing to load it",
			dr.name, volume, fp, want.Fingerprint)
	}
	// Invariant 1: the wrapped key is in the crypto cache before any
	// encrypted block can be written with it.
	if !history || !d.cacheHolds(volume, sk) {
		if _, err := d.cache.Put(cacheEntry(volume, sk, fp)); err != nil {
			return fmt.Errorf("%s: volume %s: recording its key in the crypto cache failed, so the key is not loaded: %w", dr.name, volume, err)
		}
	}
	var ukad []byte
	if dr.probe.MaxUKAD >= len(fp) && (!dr.probe.UKADFixed || dr.probe.MaxUKAD == len(fp)) {
		ukad = []byte(fp)
	}
	st, err := dr.dev.SetKey(key, scsi.SetKeyOpts{UKAD: ukad, KADFormat: 2, CKOD: dr.probe.CKOD})
	if err != nil {
		// SetKey may have half-succeeded: leave nothing behind.
		dr.clearKey("key load failed")
		return fmt.Errorf("%s: loading the key of volume %s: %w", dr.name, volume, err)
	}
	dr.keyFP, dr.keyKEK = fp, sk.KEKID
	dr.kic = st.KeyInstanceCounter
	dr.verified = false
	dr.log.Info("key loaded and verified by read-back", "volume", volume, "fingerprint", fp,
		"kek_id", sk.KEKID, "key_instance_counter", st.KeyInstanceCounter)
	return nil
}

func (dr *Drive) noAMEReason() string {
	if dr.probe == nil {
		if dr.lastErr != "" {
			return "the drive could not be probed: " + dr.lastErr
		}
		return "the drive could not be probed"
	}
	return dr.probe.Reason
}

// CryptoRefusedError says an encrypted volume may not use a drive.
type CryptoRefusedError struct {
	Drive, Volume, Reason string
}

func (e *CryptoRefusedError) Error() string {
	if e.Volume == "" {
		return fmt.Sprintf("%s cannot encrypt: %s", e.Drive, e.Reason)
	}
	return fmt.Sprintf("%s cannot take encrypted volume %s: %s", e.Drive, e.Volume, e.Reason)
}

// Changer is one configured medium changer; its mutex serialises moves.
type Changer struct {
	name string
	mu   sync.Mutex
	dev  *scsi.Device
	err  string
}

// Layout is a changer's elements as operators count them: slot N is the
// N-th storage element by address (1-based), drive i the i-th data
// transfer element.
type Layout struct {
	Slots  []scsi.Element
	Drives []scsi.Element
}

// layout reads the inventory. Called with c.mu held.
func (c *Changer) layout() (*Layout, error) {
	els, err := c.dev.Inventory()
	if err != nil {
		return nil, fmt.Errorf("changer %s: inventory: %w", c.name, err)
	}
	l := &Layout{}
	for _, e := range els {
		switch e.Type {
		case scsi.ElementStorage:
			l.Slots = append(l.Slots, e)
		case scsi.ElementDataTransfer:
			l.Drives = append(l.Drives, e)
		}
	}
	sortByAddress(l.Slots)
	sortByAddress(l.Drives)
	return l, nil
}

func sortByAddress(es []scsi.Element) {
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].Address < es[j-1].Address; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

// slot returns slot n (1-based).
func (l *Layout) slot(changer string, n uint32) (scsi.Element, error) {
	if n == 0 || int(n) > len(l.Slots) {
		return scsi.Element{}, fmt.Errorf("changer %s has slots 1-%d; there is no slot %d", changer, len(l.Slots), n)
	}
	return l.Slots[n-1], nil
}

// slotNumber is the operator's number of the storage element at addr (0
// when it is not a slot).
func (l *Layout) slotNumber(addr uint16) uint32 {
	for i, e := range l.Slots {
		if e.Address == addr {
			return uint32(i + 1)
		}
	}
	return 0
}

// loadCartridge moves the cartridge of slot n into dr and waits until the
// drive is ready. Called with dr.mu held.
func (d *Daemon) loadCartridge(ctx context.Context, dr *Drive, n uint32) (scsi.Element, error) {
	c := dr.changer
	if c == nil || c.dev == nil {
		return scsi.Element{}, fmt.Errorf("%s has no usable changer; load the cartridge by hand", dr.name)
	}
	c.mu.Lock()
	l, err := c.layout()
	if err != nil {
		c.mu.Unlock()
		return scsi.Element{}, err
	}
	src, err := l.slot(c.name, n)
	if err != nil {
		c.mu.Unlock()
		return scsi.Element{}, err
	}
	if !src.Full {
		c.mu.Unlock()
		return scsi.Element{}, fmt.Errorf("changer %s: slot %d is empty", c.name, n)
	}
	if dr.cfg.DriveIndex >= len(l.Drives) {
		c.mu.Unlock()
		return scsi.Element{}, fmt.Errorf("%s is configured as drive_index %d but changer %s has %d drives", dr.name, dr.cfg.DriveIndex, c.name, len(l.Drives))
	}
	dst := l.Drives[dr.cfg.DriveIndex]
	if dst.Full {
		c.mu.Unlock()
		return scsi.Element{}, fmt.Errorf("%s already holds a cartridge (%s); unmount it first", dr.name, dst.VolumeTag)
	}
	err = c.dev.MoveMedium(0, src.Address, dst.Address)
	c.mu.Unlock()
	if err != nil {
		return scsi.Element{}, fmt.Errorf("changer %s: moving slot %d to %s: %w", c.name, n, dr.name, err)
	}
	timeout := 5 * time.Minute
	if d.cfg.Timeouts.Mount.Duration > 0 {
		timeout = d.cfg.Timeouts.Mount.Duration
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	err = dr.dev.WaitReady(wctx, 0)
	cancel()
	if err != nil {
		return src, fmt.Errorf("%s: waiting for the cartridge from slot %d: %w", dr.name, n, err)
	}
	dr.barcode = src.VolumeTag
	dr.sourceSlot = src.Address
	dr.slot = n
	return src, nil
}

// unloadCartridge clears the key, unloads the cartridge and returns it to
// the slot it came from. Called with dr.mu held.
func (d *Daemon) unloadCartridge(dr *Drive, why string) error {
	errs := []error{dr.clearKey(why)}
	if err := dr.dev.Unload(); err != nil && !scsi.IsNoMedium(err) {
		errs = append(errs, fmt.Errorf("%s: unload: %w", dr.name, err))
	}
	if c := dr.changer; c != nil && c.dev != nil && dr.sourceSlot != 0 {
		c.mu.Lock()
		l, err := c.layout()
		if err == nil && dr.cfg.DriveIndex < len(l.Drives) && l.Drives[dr.cfg.DriveIndex].Full {
			err = c.dev.MoveMedium(0, l.Drives[dr.cfg.DriveIndex].Address, dr.sourceSlot)
		}
		c.mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("changer %s: returning the cartridge of %s to its slot: %w", c.name, dr.name, err))
		}
	}
	dr.label, dr.barcode, dr.sourceSlot, dr.slot = nil, "", 0, 0
	dr.verified = false
	if dr.state != StateError {
		dr.state = StateIdle
	}
	dr.setView("", dr.state)
	return errors.Join(errs...)
}

// cacheHolds says whether the crypto cache holds the stored string sk for
// volume, as its current key or in its history.
func (d *Daemon) cacheHolds(volume string, sk keys.StoredKey) bool {
	e, err := d.cache.Get(volume)
	if err != nil {
		return false
	}
	if e.Key.Scheme == sk.Scheme && e.Key.Value == sk.Value {
		return true
	}
	for _, h := range e.History {
		if h.Key.Scheme == sk.Scheme && h.Key.Value == sk.Value {
			return true
		}
	}
	return false
}
