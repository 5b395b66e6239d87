package tapeio

import (
	"bytes"
	"fmt"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// VerifyEncrypted checks the block just before the current position (the
// block just written): SPACE back one block, read the Next Block
// Encryption Status page, and return to the original position (SPACE
// forward one block, checked with READ POSITION; LOCATE if that did not
// land there). The block must be encrypted and decryptable with the loaded
// key (status 5) and, if ukad is given, carry that U-KAD. Otherwise the
// error is a *scsi.NotEncryptedError naming the drive and the block
// (scsi.IsNotEncrypted): a drive that claims encryption but writes clear
// blocks is caught here (architecture invariant 2). The status page is
// returned when it could be read.
func VerifyEncrypted(d *scsi.Device, ukad []byte) (*scsi.NextBlockEncryptionStatus, error) {
	pos, err := d.ReadPosition()
	if err != nil {
		return nil, fmt.Errorf("%s: encryption check: reading the position: %w", d.Addr(), err)
	}
	if pos.Block == 0 {
		return nil, fmt.Errorf("%s: encryption check: at the beginning of the tape, no block to check", d.Addr())
	}
	block := pos.Block - 1
	sr, err := d.Space(scsi.SpaceBlocks, -1)
	if err != nil {
		return nil, fmt.Errorf("%s: encryption check: spacing back to block %d: %w", d.Addr(), block, err)
	}
	if sr.Filemark || sr.BOP || sr.Residual != 0 {
		restore(d, pos.Block)
		return nil, fmt.Errorf("%s: encryption check: object %d before the position is not a data block", d.Addr(), block)
	}
	nb, nerr := d.NextBlockStatus()
	if err := restore(d, pos.Block); err != nil {
		return nb, fmt.Errorf("%s: encryption check: returning to block %d: %w", d.Addr(), pos.Block, err)
	}
	if nerr != nil {
		return nil, fmt.Errorf("%s: encryption check of block %d: %w", d.Addr(), block, nerr)
	}
	fail := func(format string, a ...any) (*scsi.NextBlockEncryptionStatus, error) {
		return nb, &scsi.NotEncryptedError{Addr: d.Addr(), Block: block, Problem: fmt.Sprintf(format, a...), Status: nb}
	}
	if nb.Status != scsi.BlockStatusDecryptable {
		return fail("the drive reports encryption on, but next block status says %q (code %d)", nb.Status, nb.StatusCode)
	}
	if len(ukad) > 0 {
		got, ok := scsi.UKAD(nb.KADs)
		if !ok {
			return fail("no U-KAD recorded, expected %s", scsi.KAD{Data: ukad}.Text())
		}
		if !bytes.Equal(got, ukad) {
			return fail("U-KAD %s recorded, expected %s", scsi.KAD{Data: got}.Text(), scsi.KAD{Data: ukad}.Text())
		}
	}
	return nb, nil
}

// restore puts the tape back at logical object `block` after an NBES
// query: SPACE +1, and LOCATE if READ POSITION disagrees.
func restore(d *scsi.Device, block uint64) error {
	if _, err := d.Space(scsi.SpaceBlocks, 1); err == nil {
		if pos, err := d.ReadPosition(); err == nil && pos.Block == block {
			return nil
		}
	}
	if err := d.Locate(scsi.LocateBlock, block); err != nil {
		return err
	}
	pos, err := d.ReadPosition()
	if err != nil {
		return err
	}
	if pos.Block != block {
		return fmt.Errorf("the drive is at %v", pos)
	}
	return nil
}

// VerifyFirstBlock returns a WriterOptions.AfterFirstBlock hook that runs
// VerifyEncrypted with the expected U-KAD (the key fingerprint; nil to
// skip the U-KAD comparison).
func VerifyFirstBlock(ukad []byte) func(d *scsi.Device, first Addr) error {
	u := bytes.Clone(ukad)
	return func(d *scsi.Device, first Addr) error {
		_, err := VerifyEncrypted(d, u)
		return err
	}
}
