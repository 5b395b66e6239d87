package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
	"github.com/tapeward/tapeward/storaged/scsi/dial"
	"github.com/tapeward/tapeward/storaged/scsi/iscsi"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// The drive group talks to a tape drive directly: on real hardware through
// SG_IO on /dev/sgN or over iSCSI (iscsi://…, no kernel initiator), or to
// a vtl drive over its socket. It is the DR path's
// manual half: with a key loaded by set-key, `dd | tar` reads the tape.
var driveGroup = &group{
	name:    "drive",
	summary: "a tape drive's encryption: probe, load or clear a key, read its status (addresses: " + dial.Forms + ")",
	commands: []*command{
		{
			name:     "probe",
			synopsis: "ADDRESS [--json]",
			summary:  "INQUIRY and application-managed encryption capability: algorithms, the AES-256-GCM index, U-KAD limit, CKOD",
			run:      driveProbe,
		},
		{
			name:     "set-key",
			synopsis: "ADDRESS (--key-file FILE | --stored STRING --kek FILE [--master M] [--scheme v1|bareos] [--kek-id ID]) [--no-ckod] [--json]",
			summary:  "load a volume key (encrypt + mixed decryption) and verify it by reading the status page back",
			detail: "--key-file holds the 32-byte key as 64 hex characters (mode 0600), e.g. from `tapekey unwrap > vol.key`.\n" +
				"--stored takes the catalog's stored string and unwraps it here with --kek (for --scheme bareos, --kek is the Bareos KEK file).\n" +
				"The key's fingerprint is sent as U-KAD when the drive takes one, so every block records which key wrote it.\n" +
				"With a cartridge loaded and a drive that supports it, the key is cleared when the cartridge is unloaded (CKOD); --no-ckod keeps it until `tapekey drive clear` or a power cycle.",
			run: driveSetKey,
		},
		{
			name:     "status",
			synopsis: "ADDRESS [--json]",
			summary:  "the data encryption status page, decoded: modes, algorithm, key instance counter, U-KAD",
			run:      driveStatus,
		},
		{
			name:     "next-block",
			synopsis: "ADDRESS [--json]",
			summary:  "the next block encryption status, decoded: is the block at the current position encrypted, with which U-KAD",
			run:      driveNextBlock,
		},
		{
			name:     "clear",
			synopsis: "ADDRESS [--json]",
			summary:  "clear the key (both modes disabled) and verify it by reading the status page back",
			run:      driveClear,
		},
	},
}

// openDrive parses the command's flags (defined by the caller), takes the
// one ADDRESS argument and opens the tape drive there.
func openDrive(c *cli, f *flags, args []string) (*scsi.Device, error) {
	initiator := f.String("iscsi-initiator-name", "", "for an iscsi:// ADDRESS: this host's iSCSI name (default $"+dial.EnvInitiatorName+", else iqn.2026-12.io.tapeward:<hostname>)")
	chap := f.String("iscsi-chap-secret-file", "", "for an iscsi:// ADDRESS: the file holding the CHAP secret, the user being the address's USER@ (default $"+dial.EnvCHAPSecretFile+"; none: no CHAP)")
	pos, err := f.parse(c, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != 1 {
		return nil, usagef("%s takes one device ADDRESS (%s); run: %s --help", f.path, dial.Forms, f.path)
	}
	d, err := dial.OpenDeviceWith(pos[0], dial.Options{Types: []byte{scsi.TypeTape},
		ISCSI: iscsi.Options{InitiatorName: *initiator, CHAPSecretFile: *chap}})
	if err != nil {
		return nil, err
	}
	// A cartridge just loaded answers "becoming ready" (and a unit
	// attention) for a while: wait for it, as an operator would. An empty
	// drive is fine here (probe, status and clear need no cartridge).
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := d.WaitReady(ctx, 0); err != nil && !scsi.IsNoMedium(err) {
		d.Close()
		return nil, err
	}
	return d, nil
}

// readyTimeout bounds the wait for a loading cartridge (LTO loads take
// 15-20 s; a changer move before it adds more).
const readyTimeout = 3 * time.Minute

func driveProbe(c *cli, f *flags, args []string) error {
	asJSON := f.Bool("json", false, "print JSON")
	d, err := openDrive(c, f, args)
	if err != nil {
		return err
	}
	defer d.Close()
	p, err := d.Probe()
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.stdout, p)
	}
	_, err = fmt.Fprintln(c.stdout, p.String())
	return err
}

// keyLoaded is what set-key reports; it never holds key bytes.
type keyLoaded struct {
	Address     string                     `json:"address"`
	Fingerprint string                     `json:"fingerprint"`
	KEKID       string                     `json:"kek_id,omitempty"`
	UKAD        string                     `json:"ukad,omitempty"`
	CKOD        bool                       `json:"ckod"`
	KICBefore   uint32                     `json:"key_instance_counter_before"`
	Status      *scsi.DataEncryptionStatus `json:"status"`
}

func driveSetKey(c *cli, f *flags, args []string) error {
	keyFile := f.String("key-file", "", "file holding the 32-byte volume key as 64 hex characters (mode 0600)")
	stored := f.String("stored", "", "stored (wrapped) key string from the catalog, a keys export or the crypto cache")
	kekPath := f.String("kek", "", "KEK file that wrapped --stored (plain or sealed; the Bareos KEK file for --scheme bareos)")
	master := f.String("master", "", "master keyset file, for a sealed KEK file")
	scheme := f.String("scheme", "v1", "scheme of --stored: v1 or bareos")
	kekID := f.String("kek-id", "", "KEK id recorded with --stored, checked against --kek (optional)")
	noCKOD := f.Bool("no-ckod", false, "keep the key when the cartridge is unloaded")
	asJSON := f.Bool("json", false, "print JSON")
	d, err := openDrive(c, f, args)
	if err != nil {
		return err
	}
	defer d.Close()

	key, kid, err := driveKeyFromFlags(f, *keyFile, *stored, *kekPath, *master, *scheme, *kekID)
	if err != nil {
		return err
	}
	defer clear(key)

	p, err := d.Probe()
	if err != nil {
		return err
	}
	if !p.AME {
		return p.Err()
	}
	fp := keys.Fingerprint(key)
	var ukad []byte
	if p.MaxUKAD >= len(fp) && (!p.UKADFixed || p.MaxUKAD == len(fp)) {
		ukad = []byte(fp)
	}
	// CKOD needs a mounted volume (the drive rejects it otherwise).
	ckod := !*noCKOD && p.CKOD && d.TestUnitReady() == nil
	before, err := d.Status()
	if err != nil {
		return err
	}
	st, err := d.SetKey(key, scsi.SetKeyOpts{UKAD: ukad, KADFormat: 2, CKOD: ckod})
	if err != nil {
		return err
	}
	out := keyLoaded{Address: d.Addr(), Fingerprint: fp, KEKID: kid, UKAD: string(ukad), CKOD: ckod,
		KICBefore: before.KeyInstanceCounter, Status: st}
	if *asJSON {
		return printJSON(c.stdout, out)
	}
	_, err = fmt.Fprintf(c.stdout, "%s: key %s loaded and verified: %s\n", d.Addr(), fp, st)
	return err
}

// driveKeyFromFlags returns the 32 bytes to load and, for a stored key, the
// KEK id that unwrapped it.
func driveKeyFromFlags(f *flags, keyFile, stored, kekPath, master, scheme, kekID string) ([]byte, string, error) {
	switch {
	case keyFile != "" && stored != "":
		return nil, "", usagef("%s takes --key-file or --stored, not both", f.path)
	case keyFile != "":
		if kekPath != "" {
			return nil, "", usagef("%s: --kek goes with --stored, not --key-file", f.path)
		}
		return readKeyFile(keyFile)
	case stored == "":
		return nil, "", usagef("%s needs --key-file FILE or --stored STRING --kek FILE; run: %s --help", f.path, f.path)
	}
	if err := f.required("kek", kekPath); err != nil {
		return nil, "", err
	}
	sch, err := keys.ParseScheme(scheme)
	if err != nil {
		return nil, "", usagef("%s: %v", f.path, err)
	}
	ring, err := keys.NewKeyring()
	if err != nil {
		return nil, "", err
	}
	defer ring.Destroy()
	var id string
	if sch == keys.SchemeBareos {
		bk, err := keys.LoadBareosKEKFile(kekPath)
		if err != nil {
			return nil, "", err
		}
		if err := ring.AddBareos(bk); err != nil {
			return nil, "", err
		}
		id = bk.ID()
	} else {
		kek, err := loadKEK(kekPath, master)
		if err != nil {
			return nil, "", err
		}
		if err := ring.Add(kek); err != nil {
			return nil, "", err
		}
		id = kek.ID()
	}
	if kekID != "" && kekID != id {
		return nil, "", fmt.Errorf("--kek-id %s was given but %s is KEK %s; load the KEK with id %s", kekID, kekPath, id, kekID)
	}
	key, err := ring.Unwrap(keys.StoredKey{Scheme: sch, KEKID: id, Value: strings.TrimSpace(stored)})
	if err != nil {
		return nil, "", err
	}
	return key, id, nil
}

// readKeyFile reads a private file holding one 32-byte key in hex.
func readKeyFile(path string) ([]byte, string, error) {
	if err := keys.CheckPrivateFile(path); err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("reading key file: %w", err)
	}
	defer clear(b)
	key, err := keys.DecodeHex("key file "+path, strings.TrimSpace(string(b)), keys.VolumeKeyLen)
	if err != nil {
		return nil, "", err
	}
	return key, "", nil
}

func driveStatus(c *cli, f *flags, args []string) error {
	asJSON := f.Bool("json", false, "print JSON")
	d, err := openDrive(c, f, args)
	if err != nil {
		return err
	}
	defer d.Close()
	st, err := d.Status()
	if err != nil {
		return explainNoAME(d, err)
	}
	if *asJSON {
		return printJSON(c.stdout, st)
	}
	_, err = fmt.Fprintf(c.stdout, "%s: %s\n", d.Addr(), st)
	return err
}

func driveNextBlock(c *cli, f *flags, args []string) error {
	asJSON := f.Bool("json", false, "print JSON")
	d, err := openDrive(c, f, args)
	if err != nil {
		return err
	}
	defer d.Close()
	nb, err := d.NextBlockStatus()
	if err != nil {
		return explainNoAME(d, err)
	}
	if *asJSON {
		return printJSON(c.stdout, nb)
	}
	_, err = fmt.Fprintf(c.stdout, "%s: %s\n", d.Addr(), nb)
	return err
}

func driveClear(c *cli, f *flags, args []string) error {
	asJSON := f.Bool("json", false, "print JSON")
	d, err := openDrive(c, f, args)
	if err != nil {
		return err
	}
	defer d.Close()
	st, err := d.Clear()
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.stdout, st)
	}
	_, err = fmt.Fprintf(c.stdout, "%s: key cleared and verified: %s\n", d.Addr(), st)
	return err
}

// explainNoAME turns "SECURITY PROTOCOL IN not supported" into the probe's
// plain answer: this drive has no application-managed encryption.
func explainNoAME(d *scsi.Device, err error) error {
	if !scsi.IsInvalidOpcode(err) {
		return err
	}
	if p, perr := d.Probe(); perr == nil && !p.AME {
		return p.Err()
	}
	return err
}
