package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tapeward/tapeward/storaged/tapeio"
	"github.com/tapeward/tapeward/tools/lib/archive"
	"github.com/tapeward/tapeward/tools/lib/bootstrap"
	"github.com/tapeward/tapeward/tools/lib/extract"
	"github.com/tapeward/tapeward/tools/lib/relocate"
)

func cmdExtract(ctx context.Context, c *cli, f *flags, args []string) (err error) {
	job := f.Int64("job", 0, "extract this job (its volumes are loaded in order)")
	vol := f.String("volume", "", "extract every job whose index is on this volume (the members they hold, on any volume)")
	to := f.String("to", "", "target directory (created 0700 if missing); nothing is written outside it")
	replace := f.String("replace", "always", "a file already there: always, ifnewer, ifolder, never")
	var includes multiFlag
	f.Var(&includes, "include", "extract only paths matching GLOB (* within a name, ** across names; a directory includes what is under it); repeatable")
	boot := f.String("bootstrap", "", "the catalog bootstrap file (catalog-latest.bsr): extract the catalog dump it names, with the wrapped keys it carries (give --kek; no cache or keys file)")
	kf := addKeyFlags(f)
	lf := addLibFlags(f)
	if err := f.parse(args); err != nil {
		return err
	}
	var bf *bootstrap.File
	if *boot != "" {
		if *job != 0 || *vol != "" || len(includes) > 0 {
			return usagef("%s: --bootstrap names the job and the dump: give it without --job, --volume or --include", f.path)
		}
		if bf, err = bootstrap.ReadFile(*boot); err != nil {
			return err
		}
		kf.boot, kf.bootPath = bf, *boot
		*job = bf.Job
	}
	if (*job == 0) == (*vol == "") {
		return usagef("%s needs --job N or --volume V (one of them)", f.path)
	}
	if *to == "" {
		return usagef("%s needs --to DIR", f.path)
	}
	rep, err := extract.ParseReplace(*replace)
	if err != nil {
		return usagef("%s: --%v", f.path, err)
	}
	match, err := compileGlobs(includes)
	if err != nil {
		return usagef("%s: %v", f.path, err)
	}
	if bf != nil {
		want := strings.TrimPrefix(bf.Dump.Path, "/")
		match = func(p string) bool { return strings.TrimPrefix(p, "/") == want }
	}
	rel, err := relocate.New(relocate.Rules{Where: *to})
	if err != nil {
		return usagef("%s: --to %s: %v", f.path, *to, err)
	}
	s, err := openSession(c, kf, lf)
	if err != nil {
		return err
	}
	defer s.close(&err)
	x := &extractor{s: s, ctx: ctx}
	var fileErrs []string
	x.w, err = extract.New(extract.Options{Relocator: rel, Replace: rep, Report: func(fe *extract.FileError) {
		fileErrs = append(fileErrs, fe.Error())
		fmt.Fprintf(c.stderr, "tapextract: %v\n", fe)
	}})
	if err != nil {
		return err
	}
	defer x.w.Close()
	var jobs []*jobIndex
	if *job != 0 {
		ix, err := x.findIndex(*job)
		if err != nil {
			return err
		}
		jobs = append(jobs, ix)
	} else {
		cart, err := s.cartridge(*vol)
		if err != nil {
			return err
		}
		v, err := x.mount(cart, true)
		if err != nil {
			return err
		}
		for _, tf := range v.Files {
			if tf.Foreign == "" && tf.Header.Kind == archive.KindIndex {
				jobs = append(jobs, v.Indexes[tf.Header.JobID])
			}
		}
		if len(jobs) == 0 {
			return fmt.Errorf("volume %s holds no job index (its jobs continue on later volumes: extract them with --job N)", *vol)
		}
	}
	start := time.Now()
	for _, ix := range jobs {
		if err := x.extractJob(ix, match); err != nil {
			return err
		}
	}
	x.w.Close() // directory attributes, deepest first: their errors count too
	st := x.w.Stats()
	fmt.Fprintf(c.stderr, "tapextract: done: %d files, %d bytes in %s (%d blocks read) to %s; %d errors, %d kept (replace=%s)\n",
		st.Files, st.Bytes, time.Since(start).Round(time.Millisecond), x.blocks.Load(), *to, st.Errors, st.Skipped, rep)
	if len(fileErrs) > 0 {
		return fmt.Errorf("%d files were not restored as recorded (listed above)", len(fileErrs))
	}
	if bf != nil {
		return checkDump(c, bf, *boot, rel, st.Files+st.Skipped)
	}
	return nil
}

// checkDump compares the extracted catalog dump with what the bootstrap
// says: its size and SHA-256.
func checkDump(c *cli, bf *bootstrap.File, boot string, rel *relocate.Relocator, files int64) error {
	d := bf.Dump
	if files == 0 {
		return fmt.Errorf("job %d has no member %s (the bootstrap %s names it): is this the catalog job's bootstrap?", bf.Job, d.Path, boot)
	}
	path, err := rel.Target(d.Path)
	if err != nil {
		return err
	}
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("the extracted dump: %w", err)
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return fmt.Errorf("the extracted dump %s: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if n != d.Size || sum != d.SHA256 {
		return fmt.Errorf("the extracted dump %s is %d bytes, SHA-256 %s; the bootstrap %s says %d bytes, SHA-256 %s: do not restore it", path, n, sum, boot, d.Size, d.SHA256)
	}
	fmt.Fprintf(c.stdout, "catalog dump of job %d (database %s, %d bytes, SHA-256 %s, as the bootstrap says): %s\nrestore it: pg_restore --clean --if-exists -d DATABASE %s\n", bf.Job, dash(d.Database), n, sum, path, path)
	return nil
}

// extractor reads members from the library into the safe writer.
type extractor struct {
	s      *session
	ctx    context.Context
	w      *extract.Writer
	cur    *volume
	cursor tapeio.Cursor
	blocks atomic.Uint64
	job    int64
	first  string // the volume the current job starts on
	lastP  time.Time
}

// mount makes cart the mounted volume (its tape files scanned).
func (x *extractor) mount(cart cartridge, indexes bool) (*volume, error) {
	if x.cur != nil && x.cur.Cart.Addr == cart.Addr {
		return x.cur, nil
	}
	x.cur = nil
	x.cursor.Reset(nil, 0, nil)
	v, err := x.s.lib.mount(x.ctx, cart)
	if err != nil {
		return nil, err
	}
	if err := x.s.lib.scan(x.ctx, v, indexes, nil); err != nil {
		return nil, err
	}
	bs := v.Label.BlockSize
	if bs <= 0 || bs%archive.BlockSize != 0 {
		return nil, fmt.Errorf("volume %s: its label gives block size %d (want a multiple of %d)", v.Label.Volume, bs, archive.BlockSize)
	}
	x.cursor.Reset(x.s.lib.drive, bs, &x.blocks)
	x.cur = v
	fmt.Fprintf(x.s.c.stderr, "tapextract: volume %s mounted (slot %d)\n", v.Label.Volume, cart.Slot)
	return v, nil
}

// mountVolume mounts the volume named name for job's members; a volume
// that is not in the library is named with the job.
func (x *extractor) mountVolume(name string) (*volume, error) {
	if x.cur != nil && x.cur.Label.Volume == name {
		return x.cur, nil
	}
	cart, ok, err := x.s.findVolume(name)
	if err != nil {
		return nil, err
	}
	if !ok {
		if name == x.first {
			return nil, fmt.Errorf("volume %s holds the start of job %d but is not in the library (barcode %s); put it in a slot and run again", name, x.job, name)
		}
		return nil, fmt.Errorf("volume %s continues job %d but is not in the library (barcode %s); put it in a slot and run again", name, x.job, name)
	}
	v, err := x.mount(cart, false)
	if err != nil {
		return nil, err
	}
	if v.Label.Volume != name {
		return nil, fmt.Errorf("the cartridge with barcode %s (slot %d) is labelled %s, not %s", cart.Barcode, cart.Slot, v.Label.Volume, name)
	}
	return v, nil
}

// findIndex looks for job's index tape file: on each cartridge in slot
// order (part headers only, one block per tape file).
func (x *extractor) findIndex(job int64) (*jobIndex, error) {
	carts, err := x.s.lib.cartridges()
	if err != nil {
		return nil, err
	}
	type seen struct {
		volume string
		part   int
		seq    int
	}
	var parts []seen
	var noKey []string
	for _, cart := range carts {
		if err := x.ctx.Err(); err != nil {
			return nil, err
		}
		x.cur = nil
		v, err := x.s.lib.mount(x.ctx, cart)
		var nk *NoKeyError
		switch {
		case errors.As(err, &nk):
			noKey = append(noKey, nk.Error())
			continue
		case v == nil && err != nil:
			fmt.Fprintf(x.s.c.stderr, "tapextract: slot %d (%s) skipped: %s\n", cart.Slot, dash(cart.Barcode), shortErr(err))
			continue
		case err != nil:
			return nil, err
		}
		if err := x.s.lib.scan(x.ctx, v, true, func(id int64) bool { return id == job }); err != nil {
			return nil, err
		}
		for _, tf := range v.Files {
			if tf.Foreign == "" && tf.Header.JobID == job && tf.Header.Kind != archive.KindIndex {
				parts = append(parts, seen{v.Label.Volume, tf.Header.Part, tf.Header.VolumeSeq})
			}
		}
		if ix := v.Indexes[job]; ix != nil {
			x.cursor.Reset(x.s.lib.drive, v.Label.BlockSize, &x.blocks)
			x.cur = v
			fmt.Fprintf(x.s.c.stderr, "tapextract: the index of job %d is on volume %s (slot %d): %d members\n", job, v.Label.Volume, cart.Slot, len(ix.Entries))
			return ix, nil
		}
	}
	x.cur = nil
	msg := fmt.Sprintf("no volume in the library holds the index of job %d (it is written after the job's last part)", job)
	if len(parts) > 0 {
		last := parts[0]
		var ps []string
		for _, p := range parts {
			ps = append(ps, fmt.Sprintf("part %d on %s", p.part, p.volume))
			if p.seq > last.seq || p.seq == last.seq && p.part > last.part {
				last = p
			}
		}
		msg += fmt.Sprintf("; found %s: the job continues after volume %s (its volume %d) on a volume that is not in the library", strings.Join(ps, ", "), last.volume, last.seq)
	}
	if len(noKey) > 0 {
		msg += "; volumes not read: " + strings.Join(noKey, "; ")
	}
	return nil, errors.New(msg)
}

// extractJob restores the selected members of one job, in tape order.
func (x *extractor) extractJob(ix *jobIndex, match func(string) bool) error {
	x.job = ix.Header.JobID
	x.first = ""
	if len(ix.Entries) > 0 {
		x.first = ix.Entries[0].Address.Volume
	}
	// A hard link selected without its first path: the first path's
	// member (which carries the data) is written under the link's path
	// instead (extract.Member.WriteAs), as a restore does.
	picked := make([]bool, len(ix.Entries))
	writeAs := map[int]string{}
	at := map[string]int{}
	for i, e := range ix.Entries {
		at[e.Path] = i
		picked[i] = match == nil || match(e.Path)
	}
	for i, e := range ix.Entries {
		if !picked[i] || e.Type != archive.TypeLink {
			continue
		}
		if ti, ok := at[e.Linkname]; ok && ti < i && !picked[ti] {
			picked[ti], writeAs[ti], picked[i] = true, e.Path, false
		}
	}
	var sel []selected
	var total int64
	for i, e := range ix.Entries {
		if picked[i] {
			sel = append(sel, selected{e, writeAs[i]})
			total += e.Size
		}
	}
	fmt.Fprintf(x.s.c.stderr, "tapextract: job %d %s (client %s, %s): %d of %d members selected, %d bytes\n", x.job, dash(ix.Header.Job), dash(ix.Header.Client), dash(ix.Header.Level), len(sel), len(ix.Entries), total)
	// Every volume needed must be in the library: say so before reading.
	carts, err := x.s.lib.cartridges()
	if err != nil {
		return err
	}
	inLib := map[string]bool{}
	for _, c := range carts {
		inLib[c.Barcode] = true
	}
	checked := map[string]bool{}
	for _, se := range sel {
		for _, name := range append([]string{se.Address.Volume}, partVolumes(se.IndexEntry)...) {
			if checked[name] {
				continue
			}
			checked[name] = true
			if !inLib[name] {
				what := "continues"
				if name == x.first {
					what = "holds the start of"
				}
				return fmt.Errorf("volume %s %s job %d but is not in the library (barcode %s); put it in a slot and run again (nothing was extracted)", name, what, x.job, name)
			}
		}
	}
	var done int64
	for i, se := range sel {
		e := se.IndexEntry
		if err := x.ctx.Err(); err != nil {
			return context.Cause(x.ctx)
		}
		if err := x.member(e, se.writeAs); err != nil {
			return fmt.Errorf("job %d: %q: %w", x.job, e.Path, err)
		}
		done += e.Size
		if time.Since(x.lastP) > time.Second || i == len(sel)-1 {
			x.lastP = time.Now()
			fmt.Fprintf(x.s.c.stderr, "tapextract: job %d: %d/%d members, %d/%d bytes, volume %s\n", x.job, i+1, len(sel), done, total, x.cur.Label.Volume)
		}
	}
	return nil
}

// selected is a member to extract, and the path to write it as (a hard
// link's first path selected for its link).
type selected struct {
	archive.IndexEntry
	writeAs string
}

func partVolumes(e archive.IndexEntry) []string {
	var out []string
	for _, p := range e.Parts {
		out = append(out, p.Volume)
	}
	return out
}

// member restores one member: its bytes (headers, data across its
// parts, padding) are streamed to the writer through a pipe.
func (x *extractor) member(e archive.IndexEntry, writeAs string) error {
	m := extract.Member{Path: e.Path, WriteAs: writeAs, Type: e.Type.String(), Size: e.Size, Mode: uint32(e.Mode & 0o7777), UID: e.UID, GID: e.GID,
		MtimeNs: e.Mtime, Linkname: e.Linkname, Sparse: e.Sparse}
	if e.SHA256 != ([32]byte{}) {
		m.SHA256 = append([]byte(nil), e.SHA256[:]...)
	}
	q := newQueuePipe()
	done := make(chan error, 1)
	go func() {
		err := x.stream(e, q)
		q.CloseWrite(err)
		done <- err
	}()
	werr := x.w.Restore(x.ctx, m, q)
	q.CloseRead(errStop)
	serr := <-done
	if errors.Is(serr, errStop) {
		serr = nil
	}
	return errors.Join(werr, serr)
}

var errStop = errors.New("the writer stopped reading")

// stream writes member e's pax bytes: its headers and stored data from
// its first address, then each continuation's data (their headers
// skipped), then the padding.
func (x *extractor) stream(e archive.IndexEntry, w *queuePipe) error {
	v, err := x.mountVolume(e.Address.Volume)
	if err != nil {
		return err
	}
	bs := int64(v.Label.BlockSize)
	a := e.Address
	where := fmt.Sprintf("volume %s tape file %d block %d offset %d", a.Volume, a.TapeFile, a.Block, a.Offset)
	first, ok := v.fileFirstBlock(a.TapeFile)
	if !ok || a.TapeFile < int64(v.Meta) {
		return fmt.Errorf("%s: the volume has no such data tape file", where)
	}
	if err := x.cursor.Seek(first+uint64(a.Block), int(a.Offset), uint64(a.TapeFile)); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	ar := archive.NewMemberReader(io.TeeReader(&x.cursor, w), a.Block*bs+a.Offset)
	ent, err := ar.Next()
	if err != nil {
		if err == io.EOF {
			err = errors.New("no member there")
		}
		return fmt.Errorf("%s: %w", where, err)
	}
	if got := strings.TrimSuffix(ent.Header.Name, "/"); got != strings.TrimSuffix(e.Path, "/") {
		return fmt.Errorf("%s: the tape holds %q there, not %q", where, got, e.Path)
	}
	_, end, ok := ar.StoredData()
	if !ok {
		return fmt.Errorf("%s: the member's headers do not say where its data ends", where)
	}
	_, err = w.readN(&x.cursor, end-ar.Offset())
	stored := end
	for k := 0; errors.Is(err, io.EOF) && k < len(e.Parts); k++ {
		p := e.Parts[k]
		fmt.Fprintf(x.s.c.stderr, "tapextract: %q continues on volume %s (part %d)\n", e.Path, p.Volume, p.Part)
		v, err = x.mountVolume(p.Volume)
		if err != nil {
			return err
		}
		where = fmt.Sprintf("volume %s tape file %d block %d offset %d (continuation %d)", p.Volume, p.TapeFile, p.Block, p.Offset, p.Part)
		first, ok := v.fileFirstBlock(p.TapeFile)
		if !ok {
			return fmt.Errorf("%s: the volume has no such tape file", where)
		}
		bs = int64(v.Label.BlockSize)
		if err := x.cursor.Seek(first+uint64(p.Block), int(p.Offset), uint64(p.TapeFile)); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		cr := archive.NewMemberReader(&x.cursor, p.Block*bs+p.Offset)
		ce, cerr := cr.Next()
		if cerr != nil {
			return fmt.Errorf("%s: %w", where, cerr)
		}
		if !strings.HasPrefix(ce.Header.Name, "GNUFileParts/") {
			return fmt.Errorf("%s: the tape holds %q there, not a continuation of %q", where, ce.Header.Name, e.Path)
		}
		_, cend, ok := cr.StoredData()
		if !ok {
			return fmt.Errorf("%s: the continuation's headers do not say where its data ends", where)
		}
		stored = cend
		_, err = w.readN(&x.cursor, cend-cr.Offset())
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("the tape file ends inside the member and its index names no further part")
		}
		return err
	}
	if pad := (archive.BlockSize - stored%archive.BlockSize) % archive.BlockSize; pad > 0 {
		if _, err := w.Write(make([]byte, pad)); err != nil {
			return err
		}
	}
	return nil
}

// compileGlobs turns --include patterns into one matcher (nil: all).
// Paths and patterns are compared without a leading or trailing '/'.
func compileGlobs(pats []string) (func(string) bool, error) {
	if len(pats) == 0 {
		return nil, nil
	}
	var res []*regexp.Regexp
	for _, p := range pats {
		q := strings.Trim(p, "/")
		if q == "" {
			return nil, fmt.Errorf("--include %q matches nothing; give a path or pattern", p)
		}
		var b strings.Builder
		b.WriteString("^")
		for i := 0; i < len(q); i++ {
			switch ch := q[i]; {
			case ch == '*' && i+1 < len(q) && q[i+1] == '*':
				b.WriteString(".*")
				i++
			case ch == '*':
				b.WriteString("[^/]*")
			case ch == '?':
				b.WriteString("[^/]")
			default:
				b.WriteString(regexp.QuoteMeta(string(ch)))
			}
		}
		b.WriteString("(/.*)?$")
		re, err := regexp.Compile(b.String())
		if err != nil {
			return nil, fmt.Errorf("--include %q: %v", p, err)
		}
		res = append(res, re)
	}
	return func(path string) bool {
		p := strings.Trim(path, "/")
		for _, re := range res {
			if re.MatchString(p) {
				return true
			}
		}
		return false
	}, nil
}
