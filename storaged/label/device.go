package label

import (
	"errors"
	"fmt"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// readBufSize is how much of the first block Read accepts: any Tapeward
// label (Size bytes, or a future version up to this size) and enough of a
// foreign first block to tell it apart.
const readBufSize = 64 << 10

// Write is WriteEffective without the label it wrote.
func Write(d *scsi.Device, l Label) error {
	_, err := WriteEffective(d, l)
	return err
}

// WriteEffective rewinds d, writes l as the first block of the tape and a
// filemark after it: the volume then holds file 0 = the label. Anything
// that was on the tape is lost.
//
// l.BlockSize is the configured (wanted) block size; the label records
// the size the data blocks will really have on this drive and transport
// (scsi.EffectiveBlockSize: lowered to READ BLOCK LIMITS, the transport's
// largest transfer and the 24-bit limit), and the returned Label is the
// one written — record that one, not l.
//
// The drive must not be encrypting: the data encryption status is read
// first and the label refused with ErrKeyLoaded if it is (drives without
// application-managed encryption are fine). Errors name the drive and the
// step that failed. The tape is left after the filemark (file 1, block
// 2), ready for data.
func WriteEffective(d *scsi.Device, l Label) (Label, error) {
	if l.BlockSize <= 0 {
		return l, fmt.Errorf("%w: block size %d (need a positive size)", ErrInvalid, l.BlockSize)
	}
	check := l
	check.BlockSize = min(l.BlockSize, MaxBlockSize)
	if _, err := Encode(check); err != nil { // the other fields, before touching the drive
		return l, err
	}
	bs, err := d.EffectiveBlockSize(l.BlockSize)
	if err != nil {
		return l, fmt.Errorf("writing the label of volume %q: %w", l.Volume, err)
	}
	l.BlockSize = bs
	return l, write(d, l)
}

func write(d *scsi.Device, l Label) error {
	blk, err := Encode(l)
	if err != nil {
		return err
	}
	if st, err := d.Status(); err == nil {
		if st.Encrypting() {
			return fmt.Errorf("writing the label of volume %q on %s: %w (clear it first)", l.Volume, d.Addr(), ErrKeyLoaded)
		}
	} else if !scsi.IsNoAME(err) && !scsi.IsInvalidOpcode(err) && !scsi.IsIllegalRequest(err) {
		return fmt.Errorf("writing the label of volume %q on %s: reading the encryption status: %w", l.Volume, d.Addr(), err)
	}
	if err := d.Rewind(false); err != nil {
		return fmt.Errorf("writing the label of volume %q on %s: rewind: %w", l.Volume, d.Addr(), err)
	}
	if _, err := d.Write(blk); err != nil {
		return fmt.Errorf("writing the label of volume %q on %s: writing the label block: %w", l.Volume, d.Addr(), err)
	}
	if _, err := d.WriteFilemarks(1, false); err != nil {
		return fmt.Errorf("writing the label of volume %q on %s: writing the filemark after the label: %w", l.Volume, d.Addr(), err)
	}
	return nil
}

// Read rewinds d and decodes the first block of the tape. Errors (all
// wrapped with the drive address, test with errors.Is):
//   - ErrBlankTape: BLANK CHECK at BOT, nothing was ever written;
//   - ErrEncryptedLabel: the drive refuses the first block with a 74/xx
//     decryption error (the *scsi.Sense is wrapped too) — encrypted data
//     at BOT is never a Tapeward label;
//   - ErrNotTapeward: a filemark at BOT, a block over 64 KiB, or a block
//     without the Tapeward magic;
//   - ErrCorrupt, ErrNewerVersion: as Decode.
//
// On success the tape is left after the label block (before its filemark).
func Read(d *scsi.Device) (Label, error) {
	if err := d.Rewind(false); err != nil {
		return Label{}, fmt.Errorf("reading the label on %s: rewind: %w", d.Addr(), err)
	}
	buf := make([]byte, readBufSize)
	r, err := d.Read(buf, true)
	switch {
	case err != nil && scsi.IsBlankCheck(err):
		return Label{}, fmt.Errorf("reading the label on %s: %w", d.Addr(), ErrBlankTape)
	case err != nil && scsi.IsEncryptionError(err):
		return Label{}, fmt.Errorf("reading the label on %s: %w: %w", d.Addr(), ErrEncryptedLabel, err)
	case err != nil:
		return Label{}, fmt.Errorf("reading the label on %s: %w", d.Addr(), err)
	case r.EOD:
		return Label{}, fmt.Errorf("reading the label on %s: %w", d.Addr(), ErrBlankTape)
	case r.Filemark:
		return Label{}, fmt.Errorf("reading the label on %s: %w (the tape starts with a filemark)", d.Addr(), ErrNotTapeward)
	case r.Overlength:
		return Label{}, fmt.Errorf("reading the label on %s: %w (first block is %d bytes)", d.Addr(), ErrNotTapeward, r.BlockLen)
	}
	l, err := Decode(buf[:r.N])
	if err != nil {
		if errors.Is(err, ErrNotTapeward) {
			return l, fmt.Errorf("reading the label on %s: %w (first block of %d bytes)", d.Addr(), err, r.N)
		}
		return l, fmt.Errorf("reading the label on %s: %w", d.Addr(), err)
	}
	return l, nil
}
