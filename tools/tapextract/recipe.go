package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tapeward/tapeward/storaged/scsi/dial"
	"github.com/tapeward/tapeward/tools/lib/archive"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// cmdRecipe prints the commands that restore a volume by hand with
// standard tools (mtx, mt, dd, tar) and tapekey for the key. It reads the
// volume's label and part headers (not its data) to give exact tape file
// numbers and block sizes.
func cmdRecipe(ctx context.Context, c *cli, f *flags, args []string) (err error) {
	vol := f.String("volume", "", "the volume (its barcode)")
	tape := f.String("tape", "/dev/nst0", "the drive's non-rewinding tape device, as mt and dd take it")
	sg := f.String("sg", "", "the drive's address for tapekey drive set-key (default: --drive)")
	changerDev := f.String("mtx", "", "the changer's device for mtx (default: --changer)")
	kf := addKeyFlags(f)
	lf := addLibFlags(f)
	if err := f.parse(args); err != nil {
		return err
	}
	if *vol == "" {
		return usagef("%s needs --volume V", f.path)
	}
	s, err := openSession(c, kf, lf)
	if err != nil {
		return err
	}
	defer s.close(&err)
	cart, err := s.cartridge(*vol)
	if err != nil {
		return err
	}
	v, merr := s.lib.mount(ctx, cart)
	if v == nil {
		return merr
	}
	var nk *NoKeyError
	if merr != nil && !errors.As(merr, &nk) {
		return merr
	}
	if merr == nil {
		if err := s.lib.scan(ctx, v, false, nil); err != nil {
			return err
		}
	}
	if *sg == "" {
		*sg = s.lib.driveAddr
	}
	if *changerDev == "" {
		*changerDev = *lf.changer
	}
	writeRecipe(c.stdout, v, recipeOpts{tape: *tape, sg: *sg, changer: *changerDev, driveIdx: s.lib.driveIdx, kf: kf, ks: s.ks, keyErr: merr})
	return nil
}

type recipeOpts struct {
	tape, sg, changer string
	driveIdx          int
	kf                *keyFlags
	ks                *keySource
	keyErr            error
}

func writeRecipe(w io.Writer, v *volume, o recipeOpts) {
	l := v.Label
	bs := l.BlockSize
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("# Restore volume %s by hand (slot %d, barcode %s): pool %s, block size %d, %s.", l.Volume, v.Cart.Slot, dash(v.Cart.Barcode), dash(l.Pool), bs, encDesc(l))
	p("# Tape file 0 is the label (clear)%s; then one tape file per job part, then each job's index.", map[bool]string{true: ", 1 the key check", false: ""}[l.Encryption.Encrypted])
	p("set -e")
	p("TAPE=%s", shq(o.tape))
	p("")
	p("# 1. Load the cartridge (or use the library's panel; the drive is the changer's drive %d).", o.driveIdx)
	if a, err := dial.Parse(o.changer); err == nil && a.ISCSI != nil {
		p("# mtx -f /dev/sgC load %d %d   (the changer is iSCSI, %s: log in with the kernel's initiator, or use the library's panel)", v.Cart.Slot, o.driveIdx, o.changer)
	} else if err == nil && !a.VTL {
		p("mtx -f %s load %d %d", shq(o.changer), v.Cart.Slot, o.driveIdx)
	} else {
		p("# mtx -f /dev/sgC load %d %d   (a vtl: vtl load --socket SOCKET --slot %d --drive %d)", v.Cart.Slot, o.driveIdx, v.Cart.Slot, o.driveIdx)
	}
	if l.Encryption.Encrypted {
		p("")
		p("# 2. Load the volume's key (KEK %s, fingerprint %s) into the drive; tapekey checks the drive's status.", dash(l.Encryption.KEKID), dash(l.Encryption.Fingerprint))
		p(keyStep(v, o))
	}
	p("")
	p("# 3. Read with standard tools: variable block mode, so dd reads whole %d-byte blocks.", bs)
	p("mt -f \"$TAPE\" setblk 0")
	if len(v.Files) == 0 {
		p("# (the part headers could not be read here: %v)", o.keyErr)
		p("# tape file 2 (3 on an encrypted volume) is the first job part; dd stops at each filemark:")
		p("mt -f \"$TAPE\" rewind; mt -f \"$TAPE\" fsf %d", v.Meta)
		p("dd if=\"$TAPE\" bs=%d | tar -tvf -", bs)
	}
	indexed := map[int64]bool{} // jobs that end on this volume
	for _, tf := range v.Files {
		if tf.Foreign == "" && tf.Header.Kind == archive.KindIndex {
			indexed[tf.Header.JobID] = true
		}
	}
	for _, tf := range v.Files {
		if tf.Foreign != "" {
			p("# tape file %d is not a Tapeward part (%s)", tf.File, tf.Foreign)
			continue
		}
		h := tf.Header
		p("")
		if h.Kind == archive.KindIndex {
			p("# tape file %d: the index of job %d (one JSON line a member: path, size, mtime, sha256, address)", tf.File, h.JobID)
			p("mt -f \"$TAPE\" rewind; mt -f \"$TAPE\" fsf %d", tf.File)
			p("dd if=\"$TAPE\" bs=%d | tar -xOf - > job%d-index.jsonl", bs, h.JobID)
			continue
		}
		name := fmt.Sprintf("job%d-part%d.tar", h.JobID, h.Part)
		p("# tape file %d: job %d %s (client %s, %s) part %d%s", tf.File, h.JobID, dash(h.Job), dash(h.Client), dash(h.Level), h.Part, cutNote(h))
		p("mt -f \"$TAPE\" rewind; mt -f \"$TAPE\" fsf %d", tf.File)
		p("dd if=\"$TAPE\" bs=%d of=%s", bs, name)
		chain := func(upTo int) string {
			c := "tar -M -xv"
			for i := 1; i <= upTo; i++ {
				c += fmt.Sprintf(" -f job%d-part%d.tar", h.JobID, i)
			}
			return c
		}
		if h.Cut != nil {
			p("# this part starts with the rest of %q: stitch the job's parts read so far (GNU tar):", h.Cut.Path)
			p("#   %s", chain(h.Part))
		}
		switch {
		case !indexed[h.JobID]:
			p("# job %d continues on its next volume and this part may end inside a member (tar -xvf %s alone", h.JobID, name)
			p("# stops there with \"Unexpected EOF\"): read part %d from the next volume, then: %s", h.Part+1, chain(h.Part+1))
		case h.Cut != nil:
		default:
			p("mkdir -p restore && tar -xvf %s -C restore   # tar -tvf lists it", name)
		}
	}
	if l.Encryption.Encrypted {
		p("")
		p("# 4. Clear the key from the drive.")
		p("tapekey drive clear %s", shq(o.sg))
	}
	p("mt -f \"$TAPE\" rewind")
}

func cutNote(h archive.PartHeader) string {
	if h.Cut != nil {
		return fmt.Sprintf(", continuing %q from part %d", h.Cut.Path, h.Part-1)
	}
	return ""
}

// keyStep is the tapekey command loading v's key; the wrapped key is
// read from the key file by the shell, never printed.
func keyStep(v *volume, o recipeOpts) string {
	l := v.Label
	kekArgs := ""
	for _, k := range o.kf.keks {
		kekArgs += " --kek " + shq(k)
	}
	if *o.kf.master != "" {
		kekArgs += " --master " + shq(*o.kf.master)
	}
	if kekArgs == "" {
		kekArgs = " --kek KEK_FILE"
	}
	sk, ok := o.ks.storedFor(l)
	scheme := l.Encryption.Scheme
	if ok {
		scheme = string(sk.Scheme)
	}
	if scheme == "" {
		scheme = string(keys.SchemeV1)
	}
	idArg := ""
	if l.Encryption.KEKID != "" && scheme == string(keys.SchemeV1) {
		idArg = " --kek-id " + l.Encryption.KEKID
	}
	var stored string
	switch {
	case *o.kf.cache != "" && strings.HasPrefix(o.ks.what, "the Bareos cache"):
		return fmt.Sprintf("tapekey cache import-bareos %s tw.cryptocache --bareos-kek %s\n", shq(*o.kf.cache), strings.TrimPrefix(kekArgs, " --kek ")) +
			fmt.Sprintf("tapekey drive set-key %s --scheme bareos --stored \"$(awk -F'\\t' '$1==\"key\" && $2==\"%s\" {print $8}' tw.cryptocache)\" --kek %s", shq(o.sg), l.Volume, strings.TrimPrefix(kekArgs, " --kek "))
	case *o.kf.cache != "":
		stored = fmt.Sprintf("\"$(awk -F'\\t' '$1==\"key\" && $2==\"%s\" {print $8}' %s)\"", l.Volume, shq(*o.kf.cache))
	case *o.kf.keysFile != "":
		stored = fmt.Sprintf("\"$(awk -F'\\t' '$1==\"%s\" {print $2; exit}' %s)\"", l.Volume, shq(*o.kf.keysFile))
	default:
		stored = "STORED_KEY   # the volume's wrapped key from a crypto cache or an export keys file"
	}
	return fmt.Sprintf("tapekey drive set-key %s --scheme %s%s%s --stored %s", shq(o.sg), scheme, kekArgs, idArg, stored)
}

// shq quotes s for a POSIX shell when it needs it.
func shq(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:#=,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
