package sd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
	"github.com/tapeward/tapeward/storaged/label"
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/tapeio"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// The layout of a Tapeward volume:
//
//	file 0  the label block (clear), filemark
//	file 1  (encrypted volumes) one key-check block written right after the
//	        key was loaded at label time, read back as encrypted, filemark
//	file 2… one tape file per data session
//
// The key-check file proves at label time that the drive encrypts with this
// volume's key (invariant 2) before the volume is ever offered for data.
const keyCheckSize = 4096

// LabelRequest is what the director asks of a label.
type LabelRequest struct {
	Changer   string
	Slot      uint32
	Drive     string
	Volume    string
	Pool      string
	MediaType string
	Encrypt   bool
	Key       keys.StoredKey
	// Escrow: the key's escrow envelope (optional), written into the
	// clear label so the escrow private key alone opens the volume.
	Escrow keys.Escrow
	// Relabel allows rewriting the label of this same volume when it
	// holds no data (its encryption changed in the catalog).
	Relabel bool
	// Recycle allows rewriting the label of this same volume over its
	// data (the catalog purged it and gave it a new key), unless the old
	// label names the same key: a tape is never written again under a
	// key it was written under before its recycling.
	Recycle bool
}

// LabelResult is what a label did.
type LabelResult struct {
	Volume, Barcode, Drive string
	Slot                   uint32
	Label                  label.Label
	Verified               bool // the key-check block read back encrypted
	KIC                    uint32
}

// ExistingLabelError says a cartridge already holds a Tapeward label; it is
// never overwritten.
type ExistingLabelError struct {
	Slot    uint32
	Barcode string
	Label   label.Label
}

func (e *ExistingLabelError) Error() string {
	return fmt.Sprintf("slot %d (%s) already carries the Tapeward label of volume %s (pool %s, labelled %s); not overwritten",
		e.Slot, e.Barcode, e.Label.Volume, e.Label.Pool, e.Label.LabelTime.UTC().Format("2006-01-02 15:04:05Z"))
}

// ForeignDataError says a cartridge holds data that is not a Tapeward label.
type ForeignDataError struct {
	Slot    uint32
	Barcode string
	Err     error
}

func (e *ForeignDataError) Error() string {
	return fmt.Sprintf("slot %d (%s) holds data that is not a Tapeward volume (%v); not overwritten", e.Slot, e.Barcode, e.Err)
}

func (e *ForeignDataError) Unwrap() error { return e.Err }

// Label labels the cartridge in a slot: load it, clear the drive's key,
// make sure the tape is blank, write the clear label, and for an encrypted
// volume put its wrapped key in the crypto cache, load the key, verify it,
// write and read back the key-check block; then clear the key, unload and
// return the cartridge to its slot — on every path.
func (d *Daemon) Label(ctx context.Context, r LabelRequest) (res *LabelResult, err error) {
	if r.Volume == "" || len(r.Volume) > label.MaxNameLen {
		return nil, fmt.Errorf("volume name %q: must be 1-%d characters", r.Volume, label.MaxNameLen)
	}
	if r.Encrypt && (r.Key.Value == "" || r.Key.KEKID == "" || r.Key.Scheme == "") {
		return nil, errors.New("label encrypt: the request carries no complete wrapped key (stored string, scheme, kek id)")
	}
	if r.Encrypt {
		// Fail before touching any cartridge if this daemon cannot unwrap
		// the key (names the KEK id it lacks).
		if err := d.checkKey(&r); err != nil {
			return nil, err
		}
	}
	c, err := d.changer(r.Changer)
	if err != nil {
		return nil, err
	}
	dr, err := d.pickDrive(c, r.Drive, r.Encrypt)
	if err != nil {
		return nil, err
	}
	defer dr.mu.Unlock()
	dr.state = StateLabeling
	dr.setView(r.Volume, StateLabeling)
	defer func() {
		if dr.label == nil && !dr.holds() {
			dr.setView("", dr.state)
		}
	}()
	log := dr.log.With("volume", r.Volume, "slot", r.Slot)

	src, err := d.loadCartridge(ctx, dr, r.Slot)
	if err != nil {
		if src.Address != 0 {
			if ctx.Err() != nil {
				log.Warn("label abandoned: the director's request ended (cancelled, or the director stopped); returning the cartridge", "cause", context.Cause(ctx).Error())
			}
			if uerr := d.unloadCartridge(dr, "label failed"); uerr != nil {
				log.Error("after a failed load", "error", uerr.Error())
			} else {
				log.Info("the cartridge went back to its slot after the failed load", "barcode", src.VolumeTag)
			}
		} else if !dr.holds() {
			dr.state = StateIdle
		}
		return nil, err
	}
	defer func() {
		if uerr := d.unloadCartridge(dr, "label done"); uerr != nil {
			log.Error("after labelling", "error", uerr.Error())
			if err == nil {
				err = uerr
				res = nil
			}
		}
	}()
	if err := dr.clearKey("before reading the label"); err != nil {
		return nil, err
	}
	switch old, err := label.Read(dr.dev); {
	case err == nil && r.Recycle && old.Volume == r.Volume &&
		!(r.Encrypt && old.Encryption.Encrypted && old.Encryption.Fingerprint == r.Key.Fingerprint):
		log.Info("relabelling a recycled volume: its old data is given up", "old_fingerprint", old.Encryption.Fingerprint, "fingerprint", r.Key.Fingerprint)
	case err == nil && (r.Relabel || r.Recycle) && old.Volume == r.Volume:
		if err := d.requireNoData(dr, old); err != nil {
			return nil, err
		}
		log.Info("relabelling a volume that holds no data", "old_fingerprint", old.Encryption.Fingerprint)
	case err == nil:
		return nil, &ExistingLabelError{Slot: r.Slot, Barcode: src.VolumeTag, Label: old}
	case errors.Is(err, label.ErrBlankTape):
	default:
		return nil, &ForeignDataError{Slot: r.Slot, Barcode: src.VolumeTag, Err: err}
	}

	return d.writeLabel(dr, r, src.VolumeTag)
}

// checkKey unwraps r.Key (to check this daemon can) and sets its
// fingerprint; a fingerprint that differs from the request's is refused.
func (d *Daemon) checkKey(r *LabelRequest) error {
	key, err := d.ring.Unwrap(r.Key)
	if err != nil {
		return fmt.Errorf("volume %s: %w", r.Volume, err)
	}
	fp := keys.Fingerprint(key)
	clear(key)
	if r.Key.Fingerprint != "" && fp != r.Key.Fingerprint {
		return fmt.Errorf("volume %s: the key unwraps to fingerprint %s, the request says %s", r.Volume, fp, r.Key.Fingerprint)
	}
	r.Key.Fingerprint = fp
	return nil
}

// writeLabel writes r's label at the start of the tape in dr (loaded,
// no key) and, for an encrypted volume, puts its wrapped key in the
// crypto cache, loads it, writes the key-check block, verifies it reads
// back encrypted and writes its filemark: the tape then ends after tape
// file 1 (2 for a clear volume: after the label). The key stays loaded.
// Called with dr.mu held.
func (d *Daemon) writeLabel(dr *Drive, r LabelRequest, barcode string) (*LabelResult, error) {
	log := dr.log.With("volume", r.Volume, "slot", r.Slot)
	blockSize := int(dr.cfg.BlockSize)
	if blockSize == 0 {
		blockSize = tapeio.DefaultBlockSize
	}
	if r.MediaType == "" {
		r.MediaType = dr.cfg.MediaType
	}
	lbl := label.Label{
		Volume:    r.Volume,
		Pool:      r.Pool,
		MediaType: r.MediaType,
		LabelTime: d.clock().UTC(),
		BlockSize: blockSize,
		Storage:   d.cfg.Name,
	}
	if r.Encrypt {
		lbl.Encryption = label.Encryption{Encrypted: true, Scheme: string(r.Key.Scheme), KEKID: r.Key.KEKID, Fingerprint: r.Key.Fingerprint,
			EscrowKeyID: r.Escrow.KeyID, EscrowEnvelope: r.Escrow.Envelope}
	}
	lbl, err := label.WriteEffective(dr.dev, lbl)
	if err != nil {
		return nil, err
	}
	log.Info("label written", "encrypted", r.Encrypt, "escrow_key", r.Escrow.KeyID)
	res := &LabelResult{Volume: r.Volume, Barcode: barcode, Drive: dr.name, Slot: r.Slot, Label: lbl}
	if !r.Encrypt {
		return res, nil
	}
	if err := dr.loadKey(d, r.Volume, r.Key, lbl.Encryption, false, false); err != nil {
		return nil, err
	}
	res.KIC = dr.kic
	block := make([]byte, keyCheckSize)
	copy(block, "TAPEWARD KEY CHECK "+r.Volume+" "+r.Key.Fingerprint+"\n")
	if _, err := dr.dev.Write(block); err != nil {
		return nil, fmt.Errorf("%s: writing the key-check block: %w", dr.name, err)
	}
	if _, err := tapeio.VerifyEncrypted(dr.dev, []byte(r.Key.Fingerprint)); err != nil {
		return nil, fmt.Errorf("%s: refusing volume %s: %w", dr.name, r.Volume, err)
	}
	if _, err := dr.dev.WriteFilemarks(1, false); err != nil {
		return nil, fmt.Errorf("%s: writing the filemark after the key-check block: %w", dr.name, err)
	}
	res.Verified = true
	log.Info("encryption verified: the key-check block reads back encrypted", "fingerprint", r.Key.Fingerprint)
	return res, nil
}

// HasDataError refuses to relabel a volume that holds data sessions.
type HasDataError struct {
	Volume string
	Files  uint64
}

func (e *HasDataError) Error() string {
	return fmt.Sprintf("volume %s holds data (%d tape files after its label and key-check file); its label and key cannot change", e.Volume, e.Files)
}

// requireNoData checks that nothing follows the label and the key-check
// file: end of data is in tape file 2 or before. Called with dr.mu held.
func (d *Daemon) requireNoData(dr *Drive, old label.Label) error {
	n, err := dataFiles(dr, old)
	if err != nil {
		return err
	}
	if n > 0 {
		return &HasDataError{Volume: old.Volume, Files: n}
	}
	return nil
}

// dataFiles returns how many tape files follow the label (and, for an
// encrypted volume, the key-check file), an unfinished one included: the
// tape's end of data says it.
// The tape is left at end of data. Called with dr.mu held.
func dataFiles(dr *Drive, lbl label.Label) (uint64, error) {
	if _, err := dr.dev.Space(scsi.SpaceEndOfData, 0); err != nil {
		return 0, fmt.Errorf("%s: finding the end of data of volume %s: %w", dr.name, lbl.Volume, err)
	}
	pos, err := dr.dev.ReadPosition()
	if err != nil {
		return 0, fmt.Errorf("%s: reading the position of volume %s: %w", dr.name, lbl.Volume, err)
	}
	meta := uint64(2) // label file and key-check file, one block and a filemark each
	if !lbl.Encryption.Encrypted {
		meta = 1
	}
	switch {
	case pos.File > meta:
		return pos.File - meta, nil
	case pos.Block > 2*meta:
		// Blocks after the last filemark: a session that never ended
		// (storaged killed while writing) still holds data.
		return 1, nil
	}
	return 0, nil
}

// pickDrive locks and returns the named drive, or the first idle, empty
// drive of changer c that can take the volume. It explains why none can.
func (d *Daemon) pickDrive(c *Changer, name string, encrypt bool) (*Drive, error) {
	if name != "" {
		dr, err := d.Drive(name)
		if err != nil {
			return nil, err
		}
		if encrypt && (!dr.crypto || !dr.ame()) {
			reason := "the drive is configured crypto = false"
			if dr.crypto {
				reason = dr.noAMEReason()
			}
			return nil, &CryptoRefusedError{Drive: dr.name, Reason: reason}
		}
		if !dr.mu.TryLock() {
			return nil, &BusyError{Drive: dr.name}
		}
		if dr.holds() {
			err := stateErr("%s holds cartridge %s (volume %s); unmount it first", dr.name, orNone(dr.barcode), orNone(dr.volume()))
			dr.mu.Unlock()
			return nil, err
		}
		if dr.dev == nil {
			err := fmt.Errorf("%s is unusable: %s", dr.name, dr.lastErr)
			dr.mu.Unlock()
			return nil, err
		}
		return dr, nil
	}
	var why []string
	for _, dr := range d.drives {
		if dr.changer != c {
			continue
		}
		if encrypt && !dr.crypto {
			why = append(why, dr.name+": configured crypto = false")
			continue
		}
		if encrypt && !dr.ame() {
			why = append(why, dr.name+": "+dr.noAMEReason())
			continue
		}
		if !dr.mu.TryLock() {
			why = append(why, dr.name+": busy")
			continue
		}
		if !dr.holds() && dr.dev != nil {
			// A cartridge loaded behind our back (front panel, another
			// tool, a crash): ask the changer, and take the next drive.
			d.learn(dr)
		}
		if dr.holds() || dr.dev == nil {
			why = append(why, dr.name+": holds a cartridge or is unusable")
			dr.mu.Unlock()
			continue
		}
		return dr, nil
	}
	if len(why) == 0 {
		return nil, stateErr("changer %s has no drive configured", c.name)
	}
	if encrypt {
		return nil, &CryptoRefusedError{Drive: "no drive of changer " + c.name, Reason: strings.Join(why, "; ")}
	}
	return nil, &BusyError{Drive: "every drive of changer " + c.name, Detail: strings.Join(why, "; ")}
}

// LibraryStateError is a state of the library that refuses an operation
// (not a fault): a slot that is empty or does not exist, a drive that
// holds a cartridge. The operator changes the state and tries again.
type LibraryStateError struct {
	Msg string
	// NoSuch: the slot or element does not exist (else: it exists and is
	// in the wrong state).
	NoSuch bool
}

func (e *LibraryStateError) Error() string { return e.Msg }

func stateErr(format string, a ...any) error {
	return &LibraryStateError{Msg: fmt.Sprintf(format, a...)}
}

// BusyError says a drive is in use.
type BusyError struct{ Drive, Detail string }

func (e *BusyError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s busy (%s)", e.Drive, e.Detail)
	}
	return e.Drive + " is busy with another operation"
}

// MountRequest is what a mount needs.
type MountRequest struct {
	Changer  string
	Slot     uint32
	Drive    string
	ForWrite bool
	// ForRead loads the key for reading only (a restore session): the
	// drive cannot encrypt a block with it.
	ForRead bool
}

// MountResult says what a mount did.
type MountResult struct {
	Label     label.Label
	Barcode   string
	Drive     string
	KeySource string // "" for a clear volume
	KIC       uint32
}

// Mount loads the cartridge of a slot, reads its label with no key loaded,
// and for an encrypted volume gets its key (director, or the cache when the
// director is unreachable), loads and verifies it. With ForWrite the tape
// is left at end of data. Any failure clears the key and returns the
// cartridge to its slot.
func (d *Daemon) Mount(ctx context.Context, r MountRequest) (res *MountResult, err error) {
	c, err := d.changer(r.Changer)
	if err != nil {
		return nil, err
	}
	dr, err := d.pickDrive(c, r.Drive, false)
	if err != nil {
		return nil, err
	}
	defer dr.mu.Unlock()
	return d.mountIn(ctx, dr, r)
}

// mountIn is Mount in a drive the caller picked and locked (it stays
// locked): a job session mounts its volumes with it.
func (d *Daemon) mountIn(ctx context.Context, dr *Drive, r MountRequest) (res *MountResult, err error) {
	src, err := d.loadCartridge(ctx, dr, r.Slot)
	defer func() {
		if err != nil && src.Address != 0 {
			if ctx.Err() != nil {
				dr.log.Warn("mount abandoned: the director's request ended (cancelled, or the director stopped); clearing the key and returning the cartridge",
					"slot", r.Slot, "barcode", src.VolumeTag, "cause", context.Cause(ctx).Error())
			}
			vol, fp, kek := dr.volume(), dr.keyFP, dr.keyKEK
			uerr := d.unloadCartridge(dr, "mount failed")
			if fp != "" && dr.keyFP == "" && vol != "" {
				// The trail does not end at "loaded".
				d.report(ctx, &pb.ReportVolumeRequest{Volume: vol, Drive: dr.name, Event: "cleared", KekId: kek, KeyFingerprint: fp,
					KeyInstanceCounter: dr.kic, Detail: "the mount failed: " + err.Error()})
			}
			if uerr != nil {
				dr.log.Error("after a failed mount", "error", uerr.Error())
			} else {
				dr.log.Info("the cartridge went back to its slot after the failed mount", "slot", r.Slot, "barcode", src.VolumeTag)
			}
		}
	}()
	if err != nil {
		return nil, err
	}
	if err := dr.clearKey("before reading the label"); err != nil {
		return nil, err
	}
	lbl, err := label.Read(dr.dev)
	if err != nil {
		return nil, fmt.Errorf("%s: slot %d (%s): %w", dr.name, r.Slot, src.VolumeTag, err)
	}
	res = &MountResult{Label: lbl, Barcode: src.VolumeTag, Drive: dr.name}
	dr.found = &lbl // in the drive, not mounted yet
	dr.setView(lbl.Volume, "mounting")
	// Every label is checked against the catalog (or, with the director
	// unreachable, the crypto cache) before the volume is mounted: a clear
	// or foreign label on an encrypted volume never takes data.
	ans, source, history, err := d.labelKey(ctx, lbl, src.VolumeTag, dr.name)
	if err != nil {
		dr.log.Error("volume refused: its label does not match", "volume", lbl.Volume, "slot", r.Slot, "barcode", src.VolumeTag,
			"label_encrypted", lbl.Encryption.Encrypted, "label_fingerprint", lbl.Encryption.Fingerprint, "error", err.Error())
		return nil, err
	}
	if lbl.Encryption.Encrypted {
		sk := ans.Key
		if err := dr.loadKey(d, lbl.Volume, sk, lbl.Encryption, history, r.ForRead); err != nil {
			return nil, err
		}
		if err := d.cache.Touch(lbl.Volume); err != nil {
			dr.log.Warn("crypto cache: recording last use failed", "volume", lbl.Volume, "error", err.Error())
		}
		if history {
			dr.log.Warn("loaded a key from the volume's history: the label names it, the volume's current key is another one (reading is fine; the director refuses writes with it)",
				"volume", lbl.Volume, "fingerprint", dr.keyFP, "kek_id", sk.KEKID, "key_source", source)
		}
		res.KeySource, res.KIC = source, dr.kic
		d.report(ctx, &pb.ReportVolumeRequest{Volume: lbl.Volume, Drive: dr.name, Event: "loaded",
			KekId: sk.KEKID, KeyFingerprint: dr.keyFP, KeyInstanceCounter: dr.kic, Detail: "key from " + source})
	}
	if r.ForWrite {
		if _, err := dr.dev.Space(scsi.SpaceEndOfData, 0); err != nil {
			return nil, fmt.Errorf("%s: volume %s: positioning at end of data: %w", dr.name, lbl.Volume, err)
		}
	} else if err := dr.dev.Rewind(false); err != nil {
		return nil, fmt.Errorf("%s: rewinding volume %s: %w", dr.name, lbl.Volume, err)
	}
	if ctx.Err() != nil {
		// Nobody waits for this mount any more: a volume mounted with its
		// key loaded that no job knows of must not stay (invariant 3).
		return nil, fmt.Errorf("%s: mount of slot %d (volume %s) abandoned: %w", dr.name, r.Slot, lbl.Volume, context.Cause(ctx))
	}
	dr.label, dr.found = &lbl, nil
	dr.state = StateMounted
	dr.setView(lbl.Volume, StateMounted)
	dr.log.Info("volume mounted", "volume", lbl.Volume, "slot", r.Slot, "encrypted", lbl.Encryption.Encrypted, "key_source", res.KeySource)
	return res, nil
}

// Unmount clears the drive's key, unloads the cartridge and returns it to
// its slot.
func (d *Daemon) Unmount(ctx context.Context, drive string) (volume string, slot uint32, err error) {
	dr, err := d.lockDrive(drive)
	if err != nil {
		return "", 0, err
	}
	defer dr.mu.Unlock()
	if !dr.holds() {
		// Nothing we know of: ask the changer (a cartridge loaded by hand).
		d.learn(dr)
	}
	if !dr.holds() {
		return "", 0, dr.clearKey("unmount of an empty drive")
	}
	volume = dr.volume()
	slot = dr.slot
	fp, kek := dr.keyFP, dr.keyKEK
	err = d.unloadCartridge(dr, "unmount")
	if volume != "" && fp != "" && err == nil {
		d.report(ctx, &pb.ReportVolumeRequest{Volume: volume, Drive: dr.name, Event: "cleared", KekId: kek, KeyFingerprint: fp, KeyInstanceCounter: dr.kic})
	}
	return volume, slot, err
}

// Release ends the use of a drive: the key is cleared and the tape rewound;
// the cartridge stays in the drive (unmounted).
func (d *Daemon) Release(ctx context.Context, drive string) error {
	dr, err := d.lockDrive(drive)
	if err != nil {
		return err
	}
	defer dr.mu.Unlock()
	volume, fp, kek := "", dr.keyFP, dr.keyKEK
	if dr.label != nil {
		volume = dr.label.Volume
	}
	errs := []error{dr.clearKey("release")}
	if dr.holds() && dr.dev != nil {
		if err := dr.dev.Rewind(false); err != nil && !scsi.IsNoMedium(err) {
			errs = append(errs, err)
		}
	}
	if dr.label != nil {
		dr.found, dr.label = dr.label, nil
	}
	if dr.state != StateError {
		dr.state = StateIdle
		if dr.holds() {
			dr.state = StateLoaded
		}
	}
	dr.setView(dr.volume(), dr.state)
	if volume != "" && fp != "" {
		d.report(ctx, &pb.ReportVolumeRequest{Volume: volume, Drive: dr.name, Event: "cleared", KekId: kek, KeyFingerprint: fp, KeyInstanceCounter: dr.kic})
	}
	return errors.Join(errs...)
}

// lockDrive returns the named drive locked, or a BusyError at once.
func (d *Daemon) lockDrive(name string) (*Drive, error) {
	dr, err := d.Drive(name)
	if err != nil {
		return nil, err
	}
	if !dr.mu.TryLock() {
		return nil, &BusyError{Drive: dr.name}
	}
	return dr, nil
}

// learn asks the changer whether dr holds a cartridge this daemon does not
// know of, and takes it in. Called with dr.mu held.
func (d *Daemon) learn(dr *Drive) {
	c := dr.changer
	if c == nil || c.dev == nil {
		return
	}
	c.mu.Lock()
	l, err := c.layout()
	c.mu.Unlock()
	if err != nil {
		dr.log.Warn("asking the changer what the drive holds", "error", err.Error())
		return
	}
	if e, err := dr.driveElement(l); err == nil && e.Full {
		dr.adopt(l, e)
		dr.setView(dr.volume(), dr.state)
		dr.log.Info("the changer says the drive holds a cartridge this daemon did not load", "barcode", orNone(e.VolumeTag), "slot", dr.slot)
	}
}
