package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tapeward/tapeward/storaged/label"
	"github.com/tapeward/tapeward/tools/lib/archive"
)

// session is a command's open key source and library.
type session struct {
	c   *cli
	ks  *keySource
	lib *library
}

func openSession(c *cli, kf *keyFlags, lf *libFlags) (*session, error) {
	ks, err := kf.open()
	if err != nil {
		return nil, err
	}
	lib, err := openLibrary(lf, ks, c.stderr)
	if err != nil {
		ks.close()
		return nil, err
	}
	c.lib.set(lib)
	return &session{c: c, ks: ks, lib: lib}, nil
}

// close clears the key and returns the cartridge (every exit path).
func (s *session) close(err *error) {
	cerr := s.lib.close()
	s.c.lib.set(nil)
	s.ks.close()
	if cerr != nil {
		*err = errors.Join(*err, cerr)
	}
}

// findVolume is the cartridge whose barcode is volume.
// cartridge finds volume's cartridge in the library; one that is not
// there is an error that says so.
func (s *session) cartridge(volume string) (cartridge, error) {
	c, ok, err := s.findVolume(volume)
	if err == nil && !ok {
		err = fmt.Errorf("volume %s is not in the library (barcode %s); put it in a slot", volume, volume)
	}
	return c, err
}

func (s *session) findVolume(volume string) (cartridge, bool, error) {
	carts, err := s.lib.cartridges()
	if err != nil {
		return cartridge{}, false, err
	}
	for _, c := range carts {
		if c.Barcode == volume {
			return c, true, nil
		}
	}
	return cartridge{}, false, nil
}

func cmdVolumes(ctx context.Context, c *cli, f *flags, args []string) (err error) {
	kf := addKeyFlags(f)
	lf := addLibFlags(f)
	if err := f.parse(args); err != nil {
		return err
	}
	s, err := openSession(c, kf, lf)
	if err != nil {
		return err
	}
	defer s.close(&err)
	carts, err := s.lib.cartridges()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tBARCODE\tVOLUME\tPOOL\tENCRYPTED\tKEK\tFINGERPRINT\tKEY\tJOBS")
	for _, cart := range carts {
		if err := ctx.Err(); err != nil {
			return err
		}
		row := []string{fmt.Sprint(cart.Slot), dash(cart.Barcode), "-", "-", "-", "-", "-", "-", "-"}
		v, merr := s.lib.mount(ctx, cart)
		switch {
		case v == nil:
			row[2] = "(" + shortErr(merr) + ")"
		default:
			l := v.Label
			row[2], row[3] = l.Volume, dash(l.Pool)
			row[4] = "no"
			row[7] = "not needed"
			if l.Encryption.Encrypted {
				row[4], row[5], row[6] = "yes", dash(l.Encryption.KEKID), dash(l.Encryption.Fingerprint)
				row[7] = "yes"
				if merr != nil {
					row[7] = "NO: " + merr.Error()
				}
				if id := l.Encryption.EscrowKeyID; id != "" {
					row[7] += " (label has an escrow envelope for escrow key " + id + ")"
				}
			}
			if merr == nil {
				if err := s.lib.scan(ctx, v, true, nil); err != nil {
					row[8] = "(" + shortErr(err) + ")"
				} else {
					row[8] = jobsOn(v)
				}
			}
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
		if err := s.lib.unload(); err != nil {
			tw.Flush()
			return err
		}
	}
	return tw.Flush()
}

func shortErr(err error) string {
	if err == nil {
		return ""
	}
	switch {
	case errors.Is(err, label.ErrBlankTape):
		return "blank tape"
	case errors.Is(err, label.ErrNotTapeward):
		return "not a Tapeward volume"
	}
	return err.Error()
}

// jobsOn summarises a scanned volume's jobs: "42 (part 1; index: 3 files), 43 (part 2)".
func jobsOn(v *volume) string {
	type jp struct {
		parts []string
		index bool
	}
	jobs := map[int64]*jp{}
	var order []int64
	for _, f := range v.Files {
		if f.Foreign != "" {
			continue
		}
		j := jobs[f.Header.JobID]
		if j == nil {
			j = &jp{}
			jobs[f.Header.JobID] = j
			order = append(order, f.Header.JobID)
		}
		if f.Header.Kind == archive.KindIndex {
			j.index = true
		} else {
			j.parts = append(j.parts, fmt.Sprint(f.Header.Part))
		}
	}
	if len(order) == 0 {
		return "none"
	}
	var out []string
	for _, id := range order {
		j := jobs[id]
		s := fmt.Sprintf("%d (part %s", id, strings.Join(j.parts, ","))
		if j.index {
			if ix := v.Indexes[id]; ix != nil {
				s += fmt.Sprintf("; index: %d files", len(ix.Entries))
			} else {
				s += "; index"
			}
		}
		out = append(out, s+")")
	}
	return strings.Join(out, ", ")
}

func cmdLs(ctx context.Context, c *cli, f *flags, args []string) (err error) {
	long := f.Bool("l", false, "list the files: type, mode, size, mtime, sha256, path")
	job := f.Int64("job", 0, "only this job")
	vol := f.String("volume", "", "the volume (its barcode)")
	kf := addKeyFlags(f)
	lf := addLibFlags(f)
	if err := f.parse(args); err != nil {
		return err
	}
	if *vol == "" {
		return usagef("%s needs --volume V (a barcode; tapextract volumes lists them)", f.path)
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
	v, err := s.lib.mount(ctx, cart)
	if err != nil {
		return err
	}
	want := func(id int64) bool { return *job == 0 || id == *job }
	if err := s.lib.scan(ctx, v, true, want); err != nil {
		return err
	}
	l := v.Label
	fmt.Fprintf(c.stdout, "volume %s (slot %d, barcode %s): pool %s, labelled %s, block size %d, %s\n", l.Volume, cart.Slot, dash(cart.Barcode),
		dash(l.Pool), l.LabelTime.UTC().Format(time.RFC3339), l.BlockSize, encDesc(l))
	found := false
	seen := map[int64]bool{}
	for _, tf := range v.Files {
		if tf.Foreign != "" {
			fmt.Fprintf(c.stdout, "tape file %d: not a Tapeward part (%s)\n", tf.File, tf.Foreign)
			continue
		}
		h := tf.Header
		if !want(h.JobID) || seen[h.JobID] {
			continue
		}
		seen[h.JobID] = true
		found = true
		var parts []string
		for _, g := range v.Files {
			if g.Foreign == "" && g.Header.JobID == h.JobID {
				if g.Header.Kind == archive.KindIndex {
					parts = append(parts, fmt.Sprintf("index in tape file %d", g.File))
				} else {
					parts = append(parts, fmt.Sprintf("part %d in tape file %d", g.Header.Part, g.File))
				}
			}
		}
		fmt.Fprintf(c.stdout, "job %d %s: client %s, fileset %s, level %s, written %s; here: %s\n", h.JobID, dash(h.Job), dash(h.Client), dash(h.FileSet), dash(h.Level),
			h.Created.UTC().Format(time.RFC3339), strings.Join(parts, ", "))
		ix := v.Indexes[h.JobID]
		if ix == nil {
			fmt.Fprintf(c.stdout, "  its index is on a later volume (this is the job's volume %d); run ls there\n", h.VolumeSeq)
			continue
		}
		var files, bytes int64
		vols := map[string]bool{}
		for _, e := range ix.Entries {
			files++
			bytes += e.Size
			vols[e.Address.Volume] = true
			for _, p := range e.Parts {
				vols[p.Volume] = true
			}
		}
		fmt.Fprintf(c.stdout, "  %d files, %d bytes, on volumes %s\n", files, bytes, strings.Join(sortedKeys(vols), ", "))
		if *long {
			printEntries(c.stdout, ix.Entries)
		}
	}
	if !found {
		if *job != 0 {
			return fmt.Errorf("volume %s holds no part of job %d", l.Volume, *job)
		}
		fmt.Fprintln(c.stdout, "no jobs")
	}
	return nil
}

func encDesc(l label.Label) string {
	if !l.Encryption.Encrypted {
		return "not encrypted"
	}
	return fmt.Sprintf("encrypted (scheme %s, KEK %s, fingerprint %s)", dash(l.Encryption.Scheme), dash(l.Encryption.KEKID), dash(l.Encryption.Fingerprint))
}

func printEntries(w io.Writer, es []archive.IndexEntry) {
	tw := tabwriter.NewWriter(w, 2, 8, 1, ' ', 0)
	for _, e := range es {
		sum := "-"
		if e.SHA256 != ([32]byte{}) {
			sum = hex.EncodeToString(e.SHA256[:])
		}
		name := e.Path
		if e.Linkname != "" {
			name += " -> " + e.Linkname
		}
		fmt.Fprintf(tw, "  %s\t%04o\t%d\t%s\t%s\t%s\n", e.Type, e.Mode&0o7777, e.Size, time.Unix(0, e.Mtime).UTC().Format(time.RFC3339), sum, name)
	}
	tw.Flush()
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
