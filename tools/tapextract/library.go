package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tapeward/tapeward/storaged/label"
	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/dial"
	"github.com/tapeward/tapeward/storaged/scsi/iscsi"
	"github.com/tapeward/tapeward/storaged/scsi/iscsiwire"
	"github.com/tapeward/tapeward/storaged/tapeio"
	"github.com/tapeward/tapeward/tools/lib/archive"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// headerRead is how much of a tape file's first block scan reads.
const headerRead = 64 << 10

// readyTimeout bounds the wait for a loading cartridge (LTO loads take
// 15-20 s; a changer move before it adds more).
const readyTimeout = 3 * time.Minute

// library is the changer and the one drive tapextract uses. Every key it
// loads is cleared on the way out (close), and by the signal handler.
type library struct {
	out       io.Writer // progress and notes (stderr)
	changer   *scsi.Device
	drive     *scsi.Device
	driveAddr string
	driveIdx  int // the changer's data transfer element of the drive
	ks        *keySource

	// measure: scan also finds each tape file's last block and byte
	// count (one LOCATE and one short read of its last block), for
	// tapextract catalog.
	measure bool

	mu      sync.Mutex // the drive's key state, shared with the signal handler
	keyFP   string
	loaded  *cartridge // in the drive, moved there by us
	closing bool
}

// cartridge is one storage slot's cartridge as the changer reports it.
type cartridge struct {
	Slot    int // 1-based, as operators count
	Addr    uint16
	Barcode string
}

// libFlags are the device flags.
type libFlags struct {
	changer, drive *string
	driveIndex     *int
	// iSCSI initiator settings for iscsi:// addresses.
	initiator, chap *string
}

func (lf *libFlags) dialOptions(types ...byte) dial.Options {
	return dial.Options{Types: types, ISCSI: iscsi.Options{InitiatorName: *lf.initiator, CHAPSecretFile: *lf.chap}}
}

func addLibFlags(f *flags) *libFlags {
	return &libFlags{
		changer:    f.String("changer", "", "the changer's address ("+dial.Forms+")"),
		drive:      f.String("drive", "", "the drive's address (default: for a vtl changer its drive 0; for an iscsi:// changer the drive LUN of the same target the changer names by serial number)"),
		driveIndex: f.Int("drive-index", -1, "the changer's drive element (0-based) of --drive (default: found by serial number, else 0)"),
		initiator:  f.String("iscsi-initiator-name", "", "for iscsi:// addresses: this host's iSCSI name (default $"+dial.EnvInitiatorName+", else iqn.2026-12.io.tapeward:<hostname>)"),
		chap:       f.String("iscsi-chap-secret-file", "", "for iscsi:// addresses: the file holding the CHAP secret, the user being the address's USER@ (default $"+dial.EnvCHAPSecretFile+"; none: no CHAP)"),
	}
}

// openLibrary opens the changer and the drive, and clears any key the
// drive holds (a key left by a crashed run is not trusted).
func openLibrary(lf *libFlags, ks *keySource, out io.Writer) (*library, error) {
	if *lf.changer == "" {
		return nil, usagef("--changer ADDRESS is required (%s)", dial.Forms)
	}
	a, err := dial.Parse(*lf.changer)
	if err != nil {
		return nil, err
	}
	driveAddr := *lf.drive
	switch {
	case driveAddr != "":
	case a.VTL:
		driveAddr = "vtl:" + a.Path + "#drive0"
	case a.ISCSI == nil:
		return nil, usagef("--drive ADDRESS is required with a changer at %s", *lf.changer)
	}
	ch, err := dial.OpenDeviceWith(*lf.changer, lf.dialOptions(scsi.TypeMediumChanger))
	if err != nil {
		return nil, fmt.Errorf("changer: %w", err)
	}
	l := &library{out: out, changer: ch, driveAddr: driveAddr, driveIdx: *lf.driveIndex, ks: ks}
	if driveAddr == "" {
		err = l.findISCSIDrive(lf, *a.ISCSI)
	} else {
		l.drive, err = dial.OpenDeviceWith(driveAddr, lf.dialOptions(scsi.TypeTape))
	}
	if err != nil {
		ch.Close()
		return nil, fmt.Errorf("drive: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := l.drive.WaitReady(ctx, 0); err != nil && !scsi.IsNoMedium(err) {
		l.close()
		return nil, err
	}
	if l.driveIdx < 0 {
		l.driveIdx = l.findDriveIndex()
	}
	// A key left in the drive (a run killed with SIGKILL, another tool)
	// is not ours to trust: clear it before anything is read.
	if st, err := l.drive.Status(); err == nil && !st.Cleared() {
		if _, err := l.drive.Clear(); err != nil {
			l.close()
			return nil, fmt.Errorf("%s holds a key (%s) that could not be cleared: %w", l.driveAddr, st, err)
		}
		fmt.Fprintf(out, "tapextract: %s: a key left in the drive was cleared\n", l.driveAddr)
	}
	return l, nil
}

// findISCSIDrive opens, for an iscsi:// changer given no --drive, the
// drive LUN of the same target that the changer's drive element
// (--drive-index, else the first) names by serial number (DVCID); when
// the changer names none, the first tape LUN that opens.
func (l *library) findISCSIDrive(lf *libFlags, changer iscsi.Address) error {
	luns, err := l.changer.ReportLUNs()
	if err != nil {
		return fmt.Errorf("listing the LUNs of %s to find its drive (or give --drive iscsi://…/LUN): %w", changer.Target, err)
	}
	idx, want := max(l.driveIdx, 0), ""
	if _, drives, err := l.layout(); err == nil && len(drives) > 0 && drives[idx].DeviceID != nil {
		want = strings.TrimSpace(drives[idx].DeviceID.Serial)
	}
	var seen []string
	for _, v := range luns {
		n, ok := iscsiwire.LUNNumber(v)
		if !ok || n == changer.LUN {
			continue
		}
		a := changer
		a.LUN = n
		d, err := dial.OpenDeviceWith(a.String(), lf.dialOptions(scsi.TypeTape))
		if err != nil {
			seen = append(seen, fmt.Sprintf("LUN %d: %v", n, err))
			continue
		}
		serial, err := d.SerialNumber()
		if want == "" || (err == nil && strings.TrimSpace(serial) == want) {
			l.drive, l.driveAddr = d, a.String()
			if want != "" {
				l.driveIdx = idx // matched by serial: openLibrary need not look again
			}
			fmt.Fprintf(l.out, "tapextract: drive %s (serial %q), found through the changer's target\n", l.driveAddr, serial)
			return nil
		}
		d.Close()
		seen = append(seen, fmt.Sprintf("LUN %d: a drive with serial %q", n, serial))
	}
	what := "no tape drive LUN"
	if want != "" {
		what = fmt.Sprintf("no LUN with the serial number %q of the changer's drive element %d", want, idx)
	}
	return fmt.Errorf("target %s has %s (%s); give --drive iscsi://…/LUN", changer.Target, what, strings.Join(seen, "; "))
}

// findDriveIndex matches the drive's serial number to the changer's
// drive elements (DVCID); 0 when the changer does not say.
func (l *library) findDriveIndex() int {
	serial, err := l.drive.SerialNumber()
	if err != nil {
		return 0
	}
	_, drives, err := l.layout()
	if err != nil {
		return 0
	}
	for i, e := range drives {
		if e.DeviceID != nil && strings.TrimSpace(e.DeviceID.Serial) == strings.TrimSpace(serial) {
			return i
		}
	}
	return 0
}

func (l *library) layout() (slots, drives []scsi.Element, err error) {
	els, err := l.changer.Inventory()
	if err != nil {
		return nil, nil, fmt.Errorf("changer %s: inventory: %w", l.changer.Addr(), err)
	}
	for _, e := range els {
		switch e.Type {
		case scsi.ElementStorage:
			slots = append(slots, e)
		case scsi.ElementDataTransfer:
			drives = append(drives, e)
		}
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i].Address < slots[j].Address })
	sort.Slice(drives, func(i, j int) bool { return drives[i].Address < drives[j].Address })
	if l.driveIdx >= len(drives) {
		return nil, nil, fmt.Errorf("changer %s has %d drives; there is no drive element %d (--drive-index)", l.changer.Addr(), len(drives), l.driveIdx)
	}
	return slots, drives, nil
}

// cartridges lists the library's cartridges by slot; one in our drive
// (left by an earlier run) is listed at its source slot.
func (l *library) cartridges() ([]cartridge, error) {
	slots, drives, err := l.layout()
	if err != nil {
		return nil, err
	}
	var out []cartridge
	for i, s := range slots {
		if s.Full {
			out = append(out, cartridge{Slot: i + 1, Addr: s.Address, Barcode: strings.TrimSpace(s.VolumeTag)})
		}
	}
	for _, d := range drives {
		if d.Full && d.SValid {
			for i, s := range slots {
				if s.Address == d.Source {
					out = append(out, cartridge{Slot: i + 1, Addr: s.Address, Barcode: strings.TrimSpace(d.VolumeTag)})
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slot < out[j].Slot })
	return out, nil
}

// load moves c into the drive (returning whatever it holds first) and
// waits until it is ready.
func (l *library) load(ctx context.Context, c cartridge) error {
	if l.loaded != nil && l.loaded.Addr == c.Addr {
		return nil
	}
	if err := l.unload(); err != nil {
		return err
	}
	_, drives, err := l.layout()
	if err != nil {
		return err
	}
	dst := drives[l.driveIdx]
	if dst.Full && (!dst.SValid || dst.Source != c.Addr) {
		// Left there by an earlier run or by hand: put it back first.
		if !dst.SValid {
			return fmt.Errorf("the drive (changer element %d) holds cartridge %s and the changer does not say which slot it came from; move it to an empty slot with the library's panel", l.driveIdx, dash(strings.TrimSpace(dst.VolumeTag)))
		}
		if err := l.drive.Unload(); err != nil && !scsi.IsNoMedium(err) {
			return fmt.Errorf("%s: unloading cartridge %s left in the drive: %w", l.driveAddr, dash(strings.TrimSpace(dst.VolumeTag)), err)
		}
		if err := l.changer.MoveMedium(0, dst.Address, dst.Source); err != nil {
			return fmt.Errorf("changer: returning cartridge %s left in the drive to its slot: %w", dash(strings.TrimSpace(dst.VolumeTag)), err)
		}
		fmt.Fprintf(l.out, "tapextract: cartridge %s left in the drive was returned to its slot\n", dash(strings.TrimSpace(dst.VolumeTag)))
		dst.Full = false
	}
	if !dst.Full {
		if err := l.changer.MoveMedium(0, c.Addr, dst.Address); err != nil {
			return fmt.Errorf("changer: moving slot %d (%s) to the drive: %w", c.Slot, c.Barcode, err)
		}
	}
	cc := c
	l.mu.Lock()
	l.loaded = &cc
	l.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := l.drive.WaitReady(wctx, 0); err != nil {
		return fmt.Errorf("%s: waiting for cartridge %s (slot %d) to become ready: %w", l.driveAddr, c.Barcode, c.Slot, err)
	}
	l.drive.DrainUnitAttentions()
	return nil
}

// unload clears the key, unloads the cartridge and returns it to its slot.
func (l *library) unload() error {
	errs := []error{l.clearKey()}
	l.mu.Lock()
	c := l.loaded
	l.mu.Unlock()
	if c == nil {
		return errors.Join(errs...)
	}
	if err := l.drive.Unload(); err != nil && !scsi.IsNoMedium(err) {
		errs = append(errs, fmt.Errorf("%s: unload: %w", l.driveAddr, err))
	}
	if _, drives, err := l.layout(); err != nil {
		errs = append(errs, err)
	} else if e := drives[l.driveIdx]; e.Full {
		if err := l.changer.MoveMedium(0, e.Address, c.Addr); err != nil {
			errs = append(errs, fmt.Errorf("changer: returning %s to slot %d: %w", c.Barcode, c.Slot, err))
		}
	}
	l.mu.Lock()
	l.loaded = nil
	l.mu.Unlock()
	return errors.Join(errs...)
}

// loadKey loads the volume's key for reading only (encryption off,
// decryption on) and checks the drive's status page says so.
func (l *library) loadKey(lbl label.Label) (keys.StoredKey, error) {
	key, sk, err := l.ks.keyStored(lbl)
	if err != nil {
		return keys.StoredKey{}, err
	}
	defer clear(key)
	p, err := l.drive.Probe()
	if err != nil {
		return keys.StoredKey{}, fmt.Errorf("%s: probing encryption: %w", l.driveAddr, err)
	}
	if !p.AME {
		return keys.StoredKey{}, fmt.Errorf("%s cannot read encrypted volume %s: %w", l.driveAddr, lbl.Volume, p.Err())
	}
	fp := keys.Fingerprint(key)
	var ukad []byte
	if p.MaxUKAD >= len(fp) && (!p.UKADFixed || p.MaxUKAD == len(fp)) {
		ukad = []byte(fp)
	}
	l.mu.Lock()
	l.keyFP = fp // from here on, every exit clears
	l.mu.Unlock()
	st, err := l.drive.SetKey(key, scsi.SetKeyOpts{UKAD: ukad, KADFormat: 2, CKOD: p.CKOD, ReadOnly: true})
	if err != nil {
		l.clearKey()
		return keys.StoredKey{}, fmt.Errorf("%s: loading the key of %s: %w", l.driveAddr, lbl.Volume, err)
	}
	if st.Encrypting() || st.Cleared() {
		l.clearKey()
		return keys.StoredKey{}, fmt.Errorf("%s: after loading the key of %s the drive reports %s; want encryption off and decryption on", l.driveAddr, lbl.Volume, st)
	}
	fmt.Fprintf(l.out, "tapextract: %s: key %s of %s loaded for reading (KEK %s): %s\n", l.driveAddr, fp, lbl.Volume, dash(lbl.Encryption.KEKID), st)
	return sk, nil
}

// clearKey clears the drive's key when one was loaded (and checks it).
func (l *library) clearKey() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keyFP == "" {
		return nil
	}
	if _, err := l.drive.Clear(); err != nil {
		return fmt.Errorf("%s: clearing key %s: %w", l.driveAddr, l.keyFP, err)
	}
	fmt.Fprintf(l.out, "tapextract: %s: key %s cleared\n", l.driveAddr, l.keyFP)
	l.keyFP = ""
	return nil
}

// close clears the key, returns the cartridge and closes the devices.
func (l *library) close() error {
	err := l.unload()
	l.drive.Close()
	l.changer.Close()
	return err
}

// tapeFile is one tape file after the label (and key check).
type tapeFile struct {
	File       uint64 // tape file number
	FirstBlock uint64 // logical object number of its first block
	Header     archive.PartHeader
	Foreign    string // not a Tapeward part: why
	// With library.measure: the logical object number of its last block
	// and its bytes (part header included); Open: no filemark ends it
	// (the writer stopped before closing it).
	LastBlock uint64
	Bytes     int64
	Open      bool
}

// volume is a mounted volume: its label and what its tape files are.
type volume struct {
	Cart    cartridge
	Label   label.Label
	Meta    uint64 // tape files before the data (label, key check)
	Files   []tapeFile
	Indexes map[int64]*jobIndex // job id → its index, when read
	// Stored is the wrapped key that unwrapped to the label's key (an
	// encrypted volume, mounted with its key).
	Stored keys.StoredKey
}

// jobIndex is one job's index tape file, decoded.
type jobIndex struct {
	Header  archive.PartHeader
	Volume  string
	Entries []archive.IndexEntry
}

// mount loads c, reads its label and, for an encrypted volume, loads its
// key. The returned volume has no tape files yet (scan).
func (l *library) mount(ctx context.Context, c cartridge) (*volume, error) {
	if err := l.load(ctx, c); err != nil {
		return nil, err
	}
	l.clearKey()
	lbl, err := label.Read(l.drive)
	if err != nil {
		return nil, fmt.Errorf("slot %d (barcode %s): %w", c.Slot, dash(c.Barcode), err)
	}
	v := &volume{Cart: c, Label: lbl, Meta: 1, Indexes: map[int64]*jobIndex{}}
	if lbl.Encryption.Encrypted {
		v.Meta = 2
		sk, err := l.loadKey(lbl)
		if err != nil {
			return v, err
		}
		v.Stored = sk
	}
	return v, nil
}

// scan reads the first block of every tape file after the label (and
// key check): its part header. With readIndexes, index tape files are
// read whole (they are small); data is skipped with SPACE.
func (l *library) scan(ctx context.Context, v *volume, readIndexes bool, wantIndex func(jobID int64) bool) error {
	if err := l.drive.Rewind(false); err != nil {
		return err
	}
	if _, err := l.drive.Space(scsi.SpaceFilemarks, int64(v.Meta)); err != nil {
		return fmt.Errorf("%s: spacing over the label: %w", v.Label.Volume, err)
	}
	// A part header is a few KiB (its pax records, a continuation's
	// headers): the first headerRead bytes of a tape file's first block
	// hold it. A longer block is read overlength (the rest of it is not
	// transferred), so listing reads little more than that per tape file.
	bs := min(v.Label.BlockSize, headerRead)
	if mt := l.drive.MaxTransfer(); mt > 0 && bs > mt {
		bs = mt
	}
	buf := make([]byte, bs)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		pos, err := l.drive.ReadPosition()
		if err != nil {
			return err
		}
		res, err := l.drive.Read(buf, true)
		if err != nil {
			if scsi.IsBlankCheck(err) {
				return nil // end of data
			}
			return fmt.Errorf("%s: reading tape file %d: %w", v.Label.Volume, pos.File, err)
		}
		if res.EOD {
			return nil
		}
		tf := tapeFile{File: pos.File, FirstBlock: pos.Block}
		if res.Filemark {
			tf.Foreign = "an empty tape file"
			v.Files = append(v.Files, tf)
			continue
		}
		h, err := archive.ParsePartHeader(bytes.NewReader(buf[:res.N]))
		if err != nil {
			tf.Foreign = err.Error()
		} else {
			tf.Header = h
		}
		v.Files = append(v.Files, tf)
		if tf.Foreign == "" && h.Kind == archive.KindIndex && readIndexes && (wantIndex == nil || wantIndex(h.JobID)) {
			ix, err := l.readIndex(v, tf)
			if err != nil {
				return err
			}
			v.Indexes[h.JobID] = ix
			// readIndex read to the filemark.
			if err := l.measureFile(v, &v.Files[len(v.Files)-1]); err != nil {
				return err
			}
			continue
		}
		if _, err := l.drive.Space(scsi.SpaceFilemarks, 1); err != nil {
			if scsi.IsBlankCheck(err) {
				v.Files[len(v.Files)-1].Open = true
				return nil
			}
			return fmt.Errorf("%s: spacing over tape file %d: %w", v.Label.Volume, tf.File, err)
		}
		if err := l.measureFile(v, &v.Files[len(v.Files)-1]); err != nil {
			return err
		}
	}
}

// measureFile, with the drive just after tf's filemark, records tf's
// last block and its bytes: every block but the last is a full block
// (storaged/tapeio writes fixed-size blocks and a short last one), and
// the last one's length is read (a 512-byte overlength read: the drive
// reports the block's length). The drive is left after the filemark.
func (l *library) measureFile(v *volume, tf *tapeFile) error {
	if !l.measure {
		return nil
	}
	pos, err := l.drive.ReadPosition()
	if err != nil {
		return err
	}
	if pos.Block < tf.FirstBlock+2 {
		return nil // no block before the filemark
	}
	tf.LastBlock = pos.Block - 2
	if err := l.drive.Locate(scsi.LocateBlock, tf.LastBlock); err != nil {
		return fmt.Errorf("%s: locating the last block of tape file %d: %w", v.Label.Volume, tf.File, err)
	}
	var small [archive.BlockSize]byte
	res, err := l.drive.Read(small[:], true)
	if err != nil {
		return fmt.Errorf("%s: reading the last block of tape file %d: %w", v.Label.Volume, tf.File, err)
	}
	last := int64(res.N)
	if res.BlockLen > 0 {
		last = int64(res.BlockLen)
	}
	tf.Bytes = int64(tf.LastBlock-tf.FirstBlock)*int64(v.Label.BlockSize) + last
	if err := l.drive.Locate(scsi.LocateBlock, pos.Block); err != nil {
		return fmt.Errorf("%s: locating tape file %d: %w", v.Label.Volume, tf.File+1, err)
	}
	return nil
}

// readIndex reads an index tape file from its first block.
func (l *library) readIndex(v *volume, tf tapeFile) (*jobIndex, error) {
	r, err := tapeio.NewReader(l.drive, tapeio.Addr{File: tf.File, Block: tf.FirstBlock}, tapeio.ReaderOptions{BlockSize: v.Label.BlockSize})
	if err != nil {
		return nil, err
	}
	ix := &jobIndex{Volume: v.Label.Volume}
	h, err := archive.DecodeIndex(r, func(e archive.IndexEntry) error {
		ix.Entries = append(ix.Entries, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: the index of job %d (tape file %d): %w", v.Label.Volume, tf.Header.JobID, tf.File, err)
	}
	ix.Header = h
	// Read on to the filemark, so that the next read starts the next
	// tape file.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, fmt.Errorf("%s: after the index of job %d: %w", v.Label.Volume, tf.Header.JobID, err)
	}
	return ix, nil
}

// fileFirstBlock is the logical object number of tape file n's first
// block, from the scan.
func (v *volume) fileFirstBlock(n int64) (uint64, bool) {
	for _, f := range v.Files {
		if int64(f.File) == n {
			return f.FirstBlock, true
		}
	}
	return 0, false
}
