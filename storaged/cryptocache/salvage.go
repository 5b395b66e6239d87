package cryptocache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// Checksum states of a salvaged file (SalvageReport.Checksum).
const (
	ChecksumOK        = "ok"        // the trailer matches every byte before it
	ChecksumMismatch  = "mismatch"  // a byte before the trailer was changed
	ChecksumMissing   = "missing"   // no trailer (the file is truncated or was cut)
	ChecksumMalformed = "malformed" // the last line starts like a trailer but is not one
)

// LineNote is a line of a salvaged file and what salvage did with it. Reason
// never holds a stored string.
type LineNote struct {
	Line   int    // 1-based
	Reason string // e.g. `has 7 tab-separated fields; want 8 (…)`
}

func (n LineNote) String() string { return fmt.Sprintf("line %d: %s", n.Line, n.Reason) }

// SalvageReport is what a lenient read of a (damaged) cache file recovered.
type SalvageReport struct {
	Path string
	// Entries are the volumes recovered from every well-formed record
	// line, sorted by volume; valid for Encode and Merge.
	Entries []Entry
	// Recovered counts the record lines whose stored string is in Entries.
	Recovered int
	// Lost lists the lines that were not recovered: malformed records, a
	// line cut by truncation, a damaged header, a checksum line before the
	// end. Each names its line number and why, never the stored string.
	Lost []LineNote
	// Notes lists records recovered but not as written: a volume with two
	// key lines, a history line whose key line is lost, a repeated line.
	Notes []LineNote
	// HeaderOK says the first line is the v1 header.
	HeaderOK bool
	// Checksum is ChecksumOK, ChecksumMismatch, ChecksumMissing or
	// ChecksumMalformed.
	Checksum string
}

// Clean says the file was intact: header and checksum ok, nothing lost,
// nothing to note (what Parse accepts).
func (r *SalvageReport) Clean() bool {
	return r.HeaderOK && r.Checksum == ChecksumOK && len(r.Lost) == 0 && len(r.Notes) == 0
}

// Summary says in one line what was recovered (no stored string).
func (r *SalvageReport) Summary() string {
	return fmt.Sprintf("%d volumes (%d key lines) recovered, %d lines lost, checksum %s%s",
		len(r.Entries), r.Recovered, len(r.Lost), r.Checksum, map[bool]string{true: "", false: ", header damaged"}[r.HeaderOK])
}

// SalvageFile reads the file at path without locking, moving or changing
// it and salvages what it can (see Salvage).
func SalvageFile(path string) (*SalvageReport, error) {
	data, err := readCapped(path)
	if err != nil {
		return nil, err
	}
	r, err := Salvage(data)
	if err != nil {
		var ce *CorruptError
		if errors.As(err, &ce) {
			ce.Path = path
		}
		return nil, err
	}
	r.Path = path
	return r, nil
}

// Salvage is a lenient Parse of a damaged cache file: every well-formed
// record line is recovered, whatever else is wrong (checksum, truncation,
// malformed lines, order). A line cut by truncation is never recovered (a
// cut stored string can look like a shorter valid one). Within a volume:
//   - lines that repeat a stored string are kept once (noted);
//   - of several key lines with different strings, the one added last is
//     the key and the others go to the history (noted);
//   - history lines whose key line is lost: the one replaced last becomes
//     the key line (noted), so that no stored string is dropped; a mount
//     still checks the label's fingerprint against it, and the director's
//     key replaces it (keeping it in the history).
//
// Salvage fails (a *CorruptError) only for a file it cannot read as v1 at
// all: a Bareos cache, or a file over the size limit. (A header naming
// another version is a lost line 1; only well-formed v1 records are kept.)
func Salvage(data []byte) (*SalvageReport, error) {
	if len(data) > maxFileSize {
		return nil, &CorruptError{Reason: fmt.Sprintf("the file is %d bytes; a cache file is at most %d", len(data), maxFileSize)}
	}
	r := &SalvageReport{Checksum: ChecksumMissing}
	if len(data) == 0 {
		return r, nil
	}
	h, _, _ := strings.Cut(string(data[:min(len(data), 256)]), "\n")
	switch {
	case h == Header:
		r.HeaderOK = true
	case strings.HasPrefix(h, "BAREOS Crypto Cache"):
		return nil, &CorruptError{Line: 1, Reason: "this is a Bareos crypto cache, not a Tapeward one; import it with: tapekey cache import-bareos"}
	}
	body := string(data)
	var cut string // a last line without newline
	if i := strings.LastIndexByte(body, '\n'); i < len(body)-1 {
		cut, body = body[i+1:], body[:i+1]
	}
	var lines []string
	if body != "" {
		lines = strings.Split(body[:len(body)-1], "\n")
	}
	trailer := -1 // index in lines
	if cut == "" && len(lines) > 1 && strings.HasPrefix(lines[len(lines)-1], trailerPrefix) {
		trailer = len(lines) - 1
		want := lines[trailer][len(trailerPrefix):]
		switch sum := sha256.Sum256(data[:len(data)-len(lines[trailer])-1]); {
		case len(want) != 64 || !isLowerHex(want):
			r.Checksum = ChecksumMalformed
		case hex.EncodeToString(sum[:]) == want:
			r.Checksum = ChecksumOK
		default:
			r.Checksum = ChecksumMismatch
		}
	}
	if cut != "" && strings.HasPrefix(cut, trailerPrefix) {
		r.Checksum = ChecksumMalformed
	}

	type rec struct {
		record
		line int
	}
	byVol := map[string][]rec{}
	var order []string
	for i, l := range lines {
		n := i + 1
		switch {
		case i == trailer:
			continue
		case i == 0 && r.HeaderOK:
			continue
		case strings.HasPrefix(l, trailerPrefix):
			r.Lost = append(r.Lost, LineNote{n, "a checksum line before the end of the file"})
			continue
		}
		rc, why := parseRecord(l)
		if why == "" {
			if w := checkTime(rc.t1) + checkTime(rc.t2); w != "" {
				why = fmt.Sprintf("volume %s: a time %s", safeQuote(rc.vol), w)
			}
		}
		if why != "" {
			switch {
			case i == 0 && strings.HasPrefix(l, headerPrefix):
				why = fmt.Sprintf("the header is not %q (another format version, or damaged); only lines that are well-formed v1 records were recovered", Header)
			case i == 0:
				why = fmt.Sprintf("is not the header %q, nor a record: %s", Header, why)
			}
			r.Lost = append(r.Lost, LineNote{n, why})
			continue
		}
		if _, ok := byVol[rc.vol]; !ok {
			order = append(order, rc.vol)
		}
		byVol[rc.vol] = append(byVol[rc.vol], rec{rc, n})
	}
	if cut != "" && !strings.HasPrefix(cut, trailerPrefix) {
		r.Lost = append(r.Lost, LineNote{len(lines) + 1, "the file ends in the middle of this line (truncated); not recovered"})
	}

	slices.Sort(order)
	same := func(a, b keys.StoredKey) bool { return a.Scheme == b.Scheme && a.Value == b.Value }
	for _, vol := range order {
		recs := byVol[vol]
		// The key line: the key line added last; none: the history line
		// replaced last.
		cur := -1
		for i, x := range recs {
			if x.typ == recKey && (cur < 0 || !x.t1.Before(recs[cur].t1)) {
				cur = i
			}
		}
		if cur < 0 {
			for i, x := range recs {
				if cur < 0 || !x.t2.Before(recs[cur].t2) {
					cur = i
				}
			}
			r.Notes = append(r.Notes, LineNote{recs[cur].line, fmt.Sprintf("volume %s: its key line is lost; this earlier key (replaced %s) is its key line now, so that no stored key is dropped",
				safeQuote(vol), fmtTime(recs[cur].t2))})
		}
		c := recs[cur]
		e := Entry{Volume: vol, Key: c.key, Added: c.t1}
		if c.typ == recKey {
			e.LastUsed = c.t2
		}
		kept := map[int]bool{cur: true}
		r.Recovered++
		for i, x := range recs {
			if i == cur {
				continue
			}
			dup := -1
			for j := range recs {
				if kept[j] && same(recs[j].key, x.key) {
					dup = j
				}
			}
			if dup >= 0 {
				k := recs[dup].key
				differ := ""
				if k.KEKID != x.key.KEKID || k.Fingerprint != x.key.Fingerprint {
					differ = fmt.Sprintf(" (with kek id %s, fingerprint %s; line %d says %s, %s: that one is kept)",
						orNone(x.key.KEKID), orNone(x.key.Fingerprint), recs[dup].line, orNone(k.KEKID), orNone(k.Fingerprint))
				}
				r.Notes = append(r.Notes, LineNote{x.line, fmt.Sprintf("volume %s: repeats the stored key of line %d%s; kept once", safeQuote(vol), recs[dup].line, differ)})
				continue
			}
			kept[i] = true
			r.Recovered++
			s := Superseded{Key: x.key, Added: x.t1, Replaced: x.t2}
			if x.typ == recKey {
				// A second key line: the later one is the key.
				s.Replaced = e.Added
				r.Notes = append(r.Notes, LineNote{x.line, fmt.Sprintf("volume %s has another key line (line %d) added later; this key is kept in its history",
					safeQuote(vol), c.line)})
			}
			e.History = append(e.History, s)
		}
		slices.SortStableFunc(e.History, func(a, b Superseded) int { return a.Replaced.Compare(b.Replaced) })
		n, err := normalize(e)
		if err != nil { // cannot happen: every line was checked
			return nil, &CorruptError{Reason: fmt.Sprintf("salvaging volume %s: %v", safeQuote(vol), err)}
		}
		r.Entries = append(r.Entries, n)
	}
	slices.SortFunc(r.Lost, func(a, b LineNote) int { return a.Line - b.Line })
	slices.SortFunc(r.Notes, func(a, b LineNote) int { return a.Line - b.Line })
	return r, nil
}

// MergeResult says what Merge did with one salvaged entry.
type MergeResult struct {
	Volume string
	// Result: Added (the volume had no entry: the salvaged one, with its
	// times and history, is now its entry), Updated (stored keys added to
	// its history) or Unchanged (the cache held every stored key).
	Result PutResult
	// HistoryAdded counts the stored keys added to the volume's history.
	HistoryAdded int
	// Conflicts say where the salvaged entry disagreed with the cache: the
	// cache's current key is another one (the cache's stays current, the
	// salvaged one is added to the history), or the cache holds the same
	// stored string with another KEK id or fingerprint (the cache's is
	// kept). No stored string.
	Conflicts []string
}

// Merge adds salvaged entries (SalvageReport.Entries) to the cache in one
// atomic update and never removes or replaces a stored string: a volume
// the cache lacks gets the salvaged entry as it was (times and history);
// for a volume it has, every salvaged stored string it does not hold yet
// is added to the history (a salvaged current key that differs from the
// cache's is a conflict: the cache's stays current). A volume may appear
// once; an invalid entry is an *InvalidEntryError and nothing is written.
func (c *Cache) Merge(entries []Entry) ([]MergeResult, error) {
	now := normTime(c.clock())
	norm, err := normalizeAll(entries, nil)
	if err != nil {
		return nil, err
	}
	results := make([]MergeResult, len(norm))
	err = c.update(func(m map[string]Entry) (bool, error) {
		changed := false
		for i, e := range norm {
			res := MergeResult{Volume: e.Volume, Result: Unchanged}
			old, ok := m[e.Volume]
			if !ok {
				m[e.Volume] = e
				res.Result = Added
				results[i] = res
				changed = true
				continue
			}
			upd := old
			upd.History = slices.Clone(old.History)
			holds := func(sk keys.StoredKey) *keys.StoredKey {
				if upd.Key.Scheme == sk.Scheme && upd.Key.Value == sk.Value {
					return &upd.Key
				}
				for j := range upd.History {
					if h := upd.History[j].Key; h.Scheme == sk.Scheme && h.Value == sk.Value {
						return &upd.History[j].Key
					}
				}
				return nil
			}
			cands := append([]Superseded{{Key: e.Key, Added: e.Added, Replaced: now}}, e.History...)
			for j, s := range cands {
				if have := holds(s.Key); have != nil {
					for _, f := range []struct{ name, have, got string }{{"kek id", have.KEKID, s.Key.KEKID}, {"fingerprint", have.Fingerprint, s.Key.Fingerprint}} {
						if f.have != "" && f.got != "" && f.have != f.got {
							res.Conflicts = append(res.Conflicts, fmt.Sprintf("the cache holds a salvaged stored key with %s %s, the salvaged line says %s; the cache's is kept",
								f.name, f.have, f.got))
						}
					}
					continue
				}
				if j == 0 {
					res.Conflicts = append(res.Conflicts, fmt.Sprintf("the cache's current key (%s) is not the salvaged one (%s); the cache's stays current, the salvaged one is added to the history",
						describeKey(upd.Key), describeKey(s.Key)))
				}
				upd.History = append(upd.History, s)
				res.HistoryAdded++
			}
			if res.HistoryAdded > 0 {
				m[e.Volume] = upd
				res.Result = Updated
				changed = true
			}
			results[i] = res
		}
		return changed, nil
	})
	if err != nil {
		return nil, err
	}
	for _, r := range results {
		for _, cf := range r.Conflicts {
			c.log.Warn("crypto cache: salvaged entry disagrees with the cache: "+cf, "cache", c.path, "volume", r.Volume)
		}
	}
	return results, nil
}

// Recovery is what OpenRecover did with a corrupt cache file.
type Recovery struct {
	// Corrupt is the file as it was found: Path, MovedTo (kept byte for
	// byte), Line and Reason.
	Corrupt *CorruptError
	// Salvage is what the kept file held (nil when SalvageErr is set).
	Salvage *SalvageReport
	// Merged is what was merged into the fresh cache, per volume.
	Merged []MergeResult
	// Conflicts counts the conflicts of Merged.
	Conflicts int
	// Time is when the corrupt file was found.
	Time time.Time
	// SalvageErr is set when nothing could be salvaged or merged; the
	// cache then starts empty.
	SalvageErr error
}

// OpenRecover is Open for a daemon: when the file is corrupt it is kept
// (moved aside, as Open does), a fresh cache is opened at path, and every
// well-formed record of the kept file is merged into it (Salvage, Merge).
// The corrupt copy is never changed. The *Recovery is nil when the file
// was read normally; otherwise an ERROR is logged naming the kept file and
// the counts. A file that cannot be moved aside is an error, as for Open.
func OpenRecover(path string, opts Options) (*Cache, *Recovery, error) {
	c, err := Open(path, opts)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.MovedTo == "" {
		return c, nil, err
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	rec := &Recovery{Corrupt: ce, Time: normTime(clock())}
	if c, err = Open(path, opts); err != nil {
		return nil, nil, err
	}
	rec.Salvage, rec.SalvageErr = SalvageFile(ce.MovedTo)
	if rec.SalvageErr == nil && len(rec.Salvage.Entries) > 0 {
		rec.Merged, rec.SalvageErr = c.Merge(rec.Salvage.Entries)
	}
	for _, m := range rec.Merged {
		rec.Conflicts += len(m.Conflicts)
	}
	log := c.log
	attrs := []any{"cache", path, "kept_as", ce.MovedTo, "line", ce.Line, "reason", ce.Reason}
	if rec.SalvageErr != nil {
		log.Error("CRYPTO CACHE CORRUPT: the file was kept under a new name and NOTHING could be salvaged from it; the cache starts empty — run: tapekey cache dump "+ce.MovedTo+" --salvage",
			append(attrs, "salvage_error", rec.SalvageErr.Error())...)
		return c, rec, nil
	}
	s := rec.Salvage
	lost := make([]string, 0, len(s.Lost))
	for _, l := range s.Lost {
		lost = append(lost, fmt.Sprint(l.Line))
	}
	log.Error(fmt.Sprintf("CRYPTO CACHE CORRUPT: the file was kept under a new name and salvaged into a fresh cache: %s; check with: tapekey cache verify %s --kek …; what was lost: tapekey cache dump %s --salvage",
		s.Summary(), path, ce.MovedTo),
		append(attrs, "volumes_recovered", len(s.Entries), "lines_recovered", s.Recovered, "lines_lost", len(s.Lost), "lost_lines", strings.Join(lost, ","),
			"checksum", s.Checksum, "conflicts", rec.Conflicts)...)
	return c, rec, nil
}

// LostLines is the number of lines the salvage could not recover (0 when
// nothing was salvaged: see SalvageErr).
func (r *Recovery) LostLines() int {
	if r == nil || r.Salvage == nil {
		return 0
	}
	return len(r.Salvage.Lost)
}
