package sd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tapeward/tapeward/configs"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
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
	// StateLoaded: the drive holds a cartridge that is not mounted (found
	// at start-up, or left by a load or an unload that failed); no key is
	// loaded for it, and unmount returns it to its slot.
	StateLoaded = "loaded (not mounted)"
)

// Drive is one configured tape drive. Its lock serialises every operation
// on it; the fields below it are guarded by it. Status never reads them:
// it reads the snapshot the operations publish (snap).
type Drive struct {
	cfg     configs.Drive
	name    string
	crypto  bool // configured crypto = true
	changer *Changer
	log     *slog.Logger
	metrics *sdMetrics

	mu      opLock
	dev     *scsi.Device
	probe   *scsi.ProbeResult
	serial  string // VPD 80h, when read
	state   string
	lastErr string
	// ioErr is the last failure to reach the drive for a status query
	// ("" once the drive answers again).
	ioErr string
	// keyState is the key state the drive last reported (status page read
	// back after a load or clear, or by a status query); nil: unknown.
	keyState *pb.DriveKeyState

	// The cartridge in the drive, if any: held says the drive holds one
	// (mounted or not); label is the mounted volume's label; found is the
	// label read from a cartridge that is in the drive but not mounted.
	held       bool
	label      *label.Label
	found      *label.Label
	barcode    string
	sourceSlot uint16 // element address it came from (0: unknown)
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
	// snap is the drive's status as of the last change, published under
	// the lock (publish) and read by Status without it.
	snap atomic.Pointer[pb.DriveStatus]
}

// holds says whether the drive holds a cartridge, as far as this daemon
// knows (it loaded one, or the changer said so).
func (dr *Drive) holds() bool { return dr.held || dr.label != nil }

// volume is the name of the volume in the drive, mounted or not ("" : none
// known).
func (dr *Drive) volume() string {
	switch {
	case dr.label != nil:
		return dr.label.Volume
	case dr.found != nil:
		return dr.found.Volume
	}
	return ""
}

// publish stores the drive's status snapshot. Called with dr.mu held (the
// lock calls it at every release; flows call it at each change of state).
func (dr *Drive) publish() {
	s := &pb.DriveStatus{Name: dr.name, Address: dr.cfg.Address, Crypto: dr.crypto, State: dr.state, Error: dr.lastErr}
	if s.State == "" {
		s.State = StateIdle
	}
	if dr.ioErr != "" {
		s.Error = strings.TrimPrefix(s.Error+"; "+dr.ioErr, "; ")
	}
	if p := dr.probe; p != nil {
		if p.Inquiry != nil {
			s.Vendor, s.Product = p.Inquiry.Vendor, p.Inquiry.Product
		}
		s.Ame, s.AmeReason = p.AME, p.Reason
		s.AlgorithmIndex, s.MaxUkad, s.Ckod = uint32(p.AlgorithmIndex), uint32(p.MaxUKAD), p.CKOD
	}
	s.Volume, s.Barcode = dr.volume(), dr.barcode
	switch {
	case dr.ioErr != "":
		// Unreachable: what the drive holds is unknown; no stale key state.
	case dr.keyState != nil:
		s.Key = proto.Clone(dr.keyState).(*pb.DriveKeyState)
	default:
		s.Key = &pb.DriveKeyState{KeyLoaded: dr.keyFP != "", KeyFingerprint: dr.keyFP, KeyInstanceCounter: dr.kic}
	}
	dr.snap.Store(s)
}

// driveView is the volume a drive holds and what it does with it.
type driveView struct{ volume, state string }

// setView publishes what the drive holds ("" : nothing).
// It publishes the status snapshot too. Called with dr.mu held.
func (dr *Drive) setView(volume, state string) {
	defer dr.publish()
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
// that says what the drive is and whether it can encrypt. A key it finds
// loaded (the daemon before this one was killed) is reported to the
// director as cleared "at start-up" once it can be reached. A cartridge
// the changer (l) says the drive holds is taken in: its label is read with
// no key loaded, so that status shows it and unmount returns it to its
// slot.
func (dr *Drive) startup(ctx context.Context, d *Daemon, l *Layout) {
	dr.mu.Lock()
	defer dr.mu.Unlock()
	dr.state = StateIdle
	if l != nil && dr.cfg.DriveIndex < len(l.Drives) && l.Drives[dr.cfg.DriveIndex].Full {
		dr.adopt(l, l.Drives[dr.cfg.DriveIndex])
	}
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
	var before *scsi.DataEncryptionStatus
	if !p.AME {
		line := fmt.Sprintf("%s %s: AME no — %s", dr.name, ident, trimAME(p.Reason))
		if dr.crypto {
			dr.log.Warn(line + "; this drive is configured crypto = true but cannot take keys: it will not get encrypted volumes")
		} else {
			dr.log.Info(line)
		}
	} else {
		desc := fmt.Sprintf("%s %s: AME yes — %s index %d, U-KAD ≤ %d bytes, CKOD %s", dr.name, ident,
			scsi.AlgorithmName(scsi.AlgorithmAES256GCM), p.AlgorithmIndex, p.MaxUKAD, yesNo(p.CKOD))
		if !dr.crypto {
			// crypto = false: this daemon never loads a key here, but a key
			// someone else left is still cleared.
			desc += " (configured crypto = false: never given keys)"
		}
		before, _ = dr.dev.Status() // what was left, for the audit trail
		if err := dr.clearKey("start-up"); err != nil {
			dr.log.Error(desc+"; CLEARING THE KEY FAILED", "error", err.Error())
			return
		}
		dr.log.Info(desc + "; key cleared")
	}
	dr.readHeld(ctx, d)
	if before != nil && !before.Cleared() {
		fp := ""
		if u, ok := scsi.UKAD(before.KADs); ok {
			fp = string(u)
		}
		vol := dr.volume()
		dr.log.Warn("a key was left loaded in the drive (the previous storaged did not stop cleanly); cleared at start-up",
			"volume", orNone(vol), "fingerprint", orNone(fp), "key_instance_counter", dr.kic)
		if vol != "" {
			d.queueReport(&pb.ReportVolumeRequest{Volume: vol, Drive: dr.name, Event: "cleared", KeyFingerprint: fp,
				KeyInstanceCounter: dr.kic, Detail: "at start-up"})
		}
	}
}

// adopt records that the drive holds the cartridge of drive element e (as
// the changer reports it). Called with dr.mu held.
func (dr *Drive) adopt(l *Layout, e scsi.Element) {
	dr.held, dr.barcode, dr.sourceSlot, dr.slot = true, e.VolumeTag, 0, 0
	if e.SValid {
		dr.sourceSlot, dr.slot = e.Source, l.slotNumber(e.Source)
	}
	if dr.label == nil && dr.state != StateError {
		dr.state = StateLoaded
	}
}

// forget records that the drive holds no cartridge. Called with dr.mu held.
func (dr *Drive) forget() {
	dr.held, dr.label, dr.found, dr.barcode, dr.sourceSlot, dr.slot = false, nil, nil, "", 0, 0
	dr.verified = false
	if dr.state != StateError {
		dr.state = StateIdle
	}
	dr.setView("", dr.state)
}

// readHeld reads, with no key loaded, the label of a cartridge that is in
// the drive but not mounted (after a restart, or a failed load), so that
// status can name its volume; the tape is rewound. Called with dr.mu held.
func (dr *Drive) readHeld(ctx context.Context, d *Daemon) {
	wctx, cancel := context.WithTimeout(ctx, d.mountTimeout())
	err := dr.dev.WaitReady(wctx, 0)
	cancel()
	if err != nil {
		if dr.held {
			dr.log.Warn("the changer says the drive holds a cartridge, but the drive is not ready; unmount returns it to its slot",
				"barcode", dr.barcode, "slot", dr.slot, "error", err.Error())
		}
		dr.publish()
		return
	}
	if !dr.held {
		// A cartridge no changer told us about (a standalone drive, or a
		// changer that could not be read).
		dr.held = true
		if dr.state != StateError {
			dr.state = StateLoaded
		}
	}
	lbl, err := label.Read(dr.dev)
	if rerr := dr.dev.Rewind(false); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		dr.log.Warn("the drive holds a cartridge whose label could not be read; it is not mounted — unmount returns it to its slot",
			"barcode", dr.barcode, "slot", dr.slot, "error", err.Error())
		dr.publish()
		return
	}
	dr.found = &lbl
	dr.setView(lbl.Volume, StateLoaded)
	dr.log.Warn("the drive holds a cartridge left from before: not mounted, no key loaded; unmount returns it to its slot",
		"volume", lbl.Volume, "barcode", dr.barcode, "slot", dr.slot)
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
		dr.metrics.keyFailures.WithLabelValues("clear").Inc()
		dr.log.Error("clearing the drive key failed", "why", why, "error", err.Error())
		return fmt.Errorf("%s: clearing the key (%s): %w", dr.name, why, err)
	}
	if dr.keyFP != "" {
		dr.metrics.keyClears.Inc()
		dr.log.Info("key cleared", "why", why, "fingerprint", dr.keyFP, "key_instance_counter", st.KeyInstanceCounter)
	}
	dr.keyFP, dr.keyKEK = "", ""
	dr.kic = st.KeyInstanceCounter
	dr.keyState, dr.ioErr = keyState(st), ""
	return nil
}

// loadKey unwraps sk, checks it against the label, makes sure the wrapped
// key is in the crypto cache, and loads it (encrypt + mixed) with its
// fingerprint as U-KAD, verified by reading the status page back. The
// unwrapped bytes never leave this function. A history key (not the
// volume's current key) already in the cache, current or in its history,
// is not put again (it would replace the current one there). readOnly
// loads it for reading only (encryption disabled, decryption DECRYPT: a
// restore). Called with dr.mu held.
func (dr *Drive) loadKey(d *Daemon, volume string, sk keys.StoredKey, want label.Encryption, history, readOnly bool) error {
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
		if err := d.cacheKeyUnlessShredded(dr, cacheEntry(volume, sk, fp)); err != nil {
			var cr *CryptoRefusedError
			if errors.As(err, &cr) {
				return err
			}
			return fmt.Errorf("%s: volume %s: recording its key in the crypto cache failed, so the key is not loaded: %w", dr.name, volume, err)
		}
	}
	var ukad []byte
	if dr.probe.MaxUKAD >= len(fp) && (!dr.probe.UKADFixed || dr.probe.MaxUKAD == len(fp)) {
		ukad = []byte(fp)
	}
	st, err := dr.dev.SetKey(key, scsi.SetKeyOpts{UKAD: ukad, KADFormat: 2, CKOD: dr.probe.CKOD, ReadOnly: readOnly})
	if err != nil {
		// SetKey may have half-succeeded: leave nothing behind.
		dr.metrics.keyFailures.WithLabelValues("load").Inc()
		dr.clearKey("key load failed")
		return fmt.Errorf("%s: loading the key of volume %s: %w", dr.name, volume, err)
	}
	dr.keyFP, dr.keyKEK = fp, sk.KEKID
	dr.kic = st.KeyInstanceCounter
	dr.keyState, dr.ioErr = keyState(st), ""
	dr.verified = false
	dr.metrics.keyLoads.Inc()
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
	// IE are the import/export elements by address (I/E slot N is IE[N-1]).
	IE []scsi.Element
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
		case scsi.ElementImportExport:
			l.IE = append(l.IE, e)
		}
	}
	sortByAddress(l.Slots)
	sortByAddress(l.Drives)
	sortByAddress(l.IE)
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
		return scsi.Element{}, &LibraryStateError{NoSuch: true, Msg: fmt.Sprintf("changer %s has slots 1-%d; there is no slot %d", changer, len(l.Slots), n)}
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

// mountTimeout bounds the wait for a loaded cartridge to become ready.
func (d *Daemon) mountTimeout() time.Duration {
	if d.cfg.Timeouts.Mount.Duration > 0 {
		return d.cfg.Timeouts.Mount.Duration
	}
	return 5 * time.Minute
}

// driveElement returns dr's data transfer element in l.
func (dr *Drive) driveElement(l *Layout) (scsi.Element, error) {
	if dr.cfg.DriveIndex >= len(l.Drives) {
		return scsi.Element{}, fmt.Errorf("%s is configured as drive_index %d but changer %s has %d drives", dr.name, dr.cfg.DriveIndex, dr.changer.name, len(l.Drives))
	}
	return l.Drives[dr.cfg.DriveIndex], nil
}

// loadCartridge moves the cartridge of slot n into dr and waits until the
// drive is ready. From the moment the changer has moved it, the drive
// holds it (dr.held, barcode, source slot): a wait that fails (not ready,
// timeout, hardware error, ctx ended) leaves the caller to return it with
// unloadCartridge. A move that fails is checked against the changer's
// inventory (the robot may have moved it before failing). Called with
// dr.mu held.
func (d *Daemon) loadCartridge(ctx context.Context, dr *Drive, n uint32) (scsi.Element, error) {
	c := dr.changer
	if c == nil || c.dev == nil {
		return scsi.Element{}, stateErr("%s has no usable changer; load the cartridge by hand", dr.name)
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
	dst, err := dr.driveElement(l)
	if err != nil {
		c.mu.Unlock()
		return scsi.Element{}, err
	}
	if dst.Full {
		c.mu.Unlock()
		if !dr.holds() {
			// Loaded behind our back (front panel, another tool): take
			// it in, so that unmount can return it.
			dr.adopt(l, dst)
			dr.setView("", dr.state)
		}
		return scsi.Element{}, stateErr("%s already holds cartridge %s (from slot %d), not mounted; unmount %s first (it returns the cartridge to its slot)",
			dr.name, orNone(dst.VolumeTag), l.slotNumber(dst.Source), dr.name)
	}
	if !src.Full {
		where := ""
		for i, e := range l.Drives {
			if e.Full && e.SValid && e.Source == src.Address {
				where = fmt.Sprintf(": its cartridge %s is in the changer's drive %d", orNone(e.VolumeTag), i)
				for _, o := range d.drives {
					if o.changer == c && o.cfg.DriveIndex == i {
						where = fmt.Sprintf(": its cartridge %s is in %s; unmount %s first", orNone(e.VolumeTag), o.name, o.name)
					}
				}
			}
		}
		c.mu.Unlock()
		return scsi.Element{}, stateErr("changer %s: slot %d is empty%s", c.name, n, where)
	}
	err = c.dev.MoveMedium(0, src.Address, dst.Address)
	if err != nil {
		// Did the cartridge move anyway? Ask the changer.
		if l2, lerr := c.layout(); lerr == nil {
			if e, eerr := dr.driveElement(l2); eerr == nil && e.Full {
				dr.adopt(l2, e)
				dr.setView("", dr.state)
			}
		}
		c.mu.Unlock()
		if dr.holds() {
			return src, fmt.Errorf("changer %s: moving slot %d to %s failed, but the cartridge is in the drive: %w", c.name, n, dr.name, err)
		}
		return scsi.Element{}, fmt.Errorf("changer %s: moving slot %d to %s: %w", c.name, n, dr.name, err)
	}
	c.mu.Unlock()
	dr.held, dr.barcode, dr.sourceSlot, dr.slot, dr.found = true, src.VolumeTag, src.Address, n, nil
	dr.publish()
	wctx, cancel := context.WithTimeout(ctx, d.mountTimeout())
	err = dr.dev.WaitReady(wctx, 0)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", context.Cause(ctx), err)
		}
		return src, fmt.Errorf("%s: waiting for the cartridge from slot %d (%s) to become ready: %w", dr.name, n, orNone(src.VolumeTag), err)
	}
	return src, nil
}

// unloadCartridge clears the key, unloads the cartridge and returns it to
// the slot it came from. When the cartridge cannot be returned, the drive
// keeps it on record (status shows it; unmount tries again). Called with
// dr.mu held.
func (d *Daemon) unloadCartridge(dr *Drive, why string) error {
	errs := []error{dr.clearKey(why)}
	if dr.label != nil {
		dr.found = dr.label
	}
	dr.label, dr.verified = nil, false // no longer mounted: its key is gone
	if dr.dev == nil {
		errs = append(errs, fmt.Errorf("%s is unusable (%s): the cartridge stays in it", dr.name, dr.lastErr))
	} else if err := dr.dev.Unload(); err != nil && !scsi.IsNoMedium(err) {
		errs = append(errs, fmt.Errorf("%s: unload: %w", dr.name, err))
	}
	returned := false
	switch c := dr.changer; {
	case c == nil || c.dev == nil:
		errs = append(errs, fmt.Errorf("%s has no usable changer: take the cartridge out by hand", dr.name))
	default:
		c.mu.Lock()
		l, err := c.layout()
		var e scsi.Element
		if err == nil {
			e, err = dr.driveElement(l)
		}
		switch {
		case err != nil:
		case !e.Full:
			returned = true // nothing (any more) in the drive
		case dr.sourceSlot == 0 && !e.SValid:
			err = fmt.Errorf("the changer does not say which slot cartridge %s came from; move it to an empty slot with the library's panel", orNone(e.VolumeTag))
		default:
			to := dr.sourceSlot
			if to == 0 {
				to = e.Source
			}
			if err = c.dev.MoveMedium(0, e.Address, to); err == nil {
				returned = true
			} else if l2, lerr := c.layout(); lerr == nil {
				if e2, eerr := dr.driveElement(l2); eerr == nil && !e2.Full {
					returned, err = true, nil // moved despite the error
				}
			}
		}
		c.mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("changer %s: returning the cartridge of %s to its slot: %w", c.name, dr.name, err))
		}
	}
	if returned {
		dr.forget()
	} else {
		dr.held = true
		if dr.state != StateError {
			dr.state = StateLoaded
		}
		dr.setView(dr.volume(), StateLoaded)
		dr.log.Error("the cartridge could not be returned to its slot: it stays in the drive (status shows it; unmount tries again)",
			"barcode", orNone(dr.barcode), "slot", dr.slot, "why", why)
	}
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
