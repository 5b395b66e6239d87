package cryptocache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// The file format (see README.md for it byte by byte).
const (
	// Header is the first line of every cache file (without its newline).
	Header = "tapeward-cryptocache v1"
	// headerPrefix is the part of the header that names the format; what
	// follows it is the version.
	headerPrefix = "tapeward-cryptocache "
	// trailerPrefix starts the last line: "sha256 " and 64 hex characters,
	// the SHA-256 of every byte before that line.
	trailerPrefix = "sha256 "
	recKey        = "key"
	recOld        = "old"
	none          = "-"
	timeLayout    = "2006-01-02T15:04:05Z"
	// MaxVolumeLen is the longest volume name the cache stores (Bareos'
	// limit: 127 characters).
	MaxVolumeLen = 127
	// maxFileSize bounds what is read: 10 000 entries take about 1.6 MB.
	maxFileSize = 256 << 20
)

// Entry is what the cache holds for one volume: its current stored key
// (still wrapped, exactly as the catalog has it), when that key was added
// and when it was last used, and the stored keys it replaced. It never
// holds key bytes; String and Format do not print stored strings.
type Entry struct {
	Volume   string
	Key      keys.StoredKey // Scheme, KEKID ("" if unknown), Value, Fingerprint ("" if unknown)
	Added    time.Time      // when this stored key entered the cache (UTC, seconds)
	LastUsed time.Time      // last Touch; zero if never used
	// History lists the stored keys this volume had before (oldest first),
	// e.g. before a rekey; kept so that a DR restore still works with an
	// older KEK. Removed only with the entry.
	History []Superseded
}

// Superseded is a stored key that a newer one replaced.
type Superseded struct {
	Key      keys.StoredKey
	Added    time.Time // when it had entered the cache
	Replaced time.Time // when the newer key replaced it
}

// String describes the entry without its stored string.
func (e Entry) String() string {
	lu := "never"
	if !e.LastUsed.IsZero() {
		lu = e.LastUsed.Format(timeLayout)
	}
	return fmt.Sprintf("Entry{volume=%s scheme=%s kek=%s fingerprint=%s added=%s last_used=%s history=%d}",
		safeQuote(e.Volume), e.Key.Scheme, orNone(e.Key.KEKID), orNone(e.Key.Fingerprint), e.Added.Format(timeLayout), lu, len(e.History))
}

// GoString is String.
func (e Entry) GoString() string { return e.String() }

// Format prints String for every verb, so no verb shows a stored string.
func (e Entry) Format(f fmt.State, _ rune) { fmt.Fprint(f, e.String()) }

// String describes the superseded key without its stored string.
func (s Superseded) String() string {
	return fmt.Sprintf("Superseded{scheme=%s kek=%s fingerprint=%s added=%s replaced=%s}",
		s.Key.Scheme, orNone(s.Key.KEKID), orNone(s.Key.Fingerprint), s.Added.Format(timeLayout), s.Replaced.Format(timeLayout))
}

// GoString is String.
func (s Superseded) GoString() string { return s.String() }

// Format prints String for every verb.
func (s Superseded) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

func fromNone(s string) string {
	if s == none {
		return ""
	}
	return s
}

// checkVolume returns why name cannot be a volume name, or "".
func checkVolume(name string) string {
	switch {
	case name == "":
		return "is empty"
	case len(name) > MaxVolumeLen:
		return fmt.Sprintf("is %d bytes long; at most %d", len(name), MaxVolumeLen)
	case !utf8.ValidString(name):
		return "is not valid UTF-8"
	case name == none:
		return `is "-", which the cache file uses for an empty field`
	case strings.TrimSpace(name) != name:
		return "starts or ends with white space"
	}
	for i, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Sprintf("has a control character at byte %d", i+1)
		}
	}
	return ""
}

func isID(s string) bool {
	if len(s) != 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func isB64(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// normalizeKey checks a stored key and returns it as the cache keeps it
// (bareos strings without '=' padding). The field and reason of a failure
// never quote the stored string.
func normalizeKey(sk keys.StoredKey) (keys.StoredKey, string, string) {
	if _, err := keys.ParseScheme(string(sk.Scheme)); err != nil {
		return sk, "scheme", fmt.Sprintf("is %s; use %q or %q", safeQuote(string(sk.Scheme)), keys.SchemeV1, keys.SchemeBareos)
	}
	if sk.KEKID != "" && !isID(sk.KEKID) {
		return sk, "kek id", "must be 16 lower-case hex characters (tapekey kek id FILE)"
	}
	if sk.Fingerprint != "" && !isID(sk.Fingerprint) {
		return sk, "fingerprint", "must be 16 lower-case hex characters"
	}
	switch sk.Scheme {
	case keys.SchemeV1:
		if sk.KEKID == "" {
			return sk, "kek id", "is missing; a v1 key is always stored with the id of the KEK that wrapped it"
		}
		w, err := keys.DecodeV1(sk.Value)
		clear(w)
		if err != nil {
			return sk, "stored key", "is not a v1 stored string: " + strings.TrimPrefix(err.Error(), "stored v1 key ")
		}
	case keys.SchemeBareos:
		v := strings.TrimRight(sk.Value, "=")
		if len(v) != keys.BareosWrappedLen && len(v) != keys.BareosPlainLen {
			return sk, "stored key", fmt.Sprintf("must be 54 (wrapped) or 43 (unwrapped) base64 characters for scheme bareos; got %d", len(v))
		}
		if !isB64(v) {
			return sk, "stored key", "is not base64 (standard alphabet)"
		}
		if len(v) == keys.BareosPlainLen && sk.KEKID != "" {
			return sk, "kek id", "must be empty for an unwrapped (43-character) bareos key, which no KEK wrapped"
		}
		sk.Value = v
	}
	return sk, "", ""
}

// Validate reports why e cannot be stored (an *InvalidEntryError naming
// the field), or nil. Put validates too; Validate lets a caller check
// input (e.g. lines of a file) before any update. A zero Added is
// accepted here: Put sets it.
func (e Entry) Validate() error {
	if e.Added.IsZero() {
		e.Added = time.Unix(0, 0)
	}
	_, err := normalize(e)
	return err
}

// normalize checks e and returns it as the cache stores it: times in UTC
// truncated to seconds, bareos strings without padding.
func normalize(e Entry) (Entry, error) {
	if why := checkVolume(e.Volume); why != "" {
		return e, &InvalidEntryError{Volume: e.Volume, Field: "volume name", Reason: why}
	}
	sk, field, why := normalizeKey(e.Key)
	if why != "" {
		return e, &InvalidEntryError{Volume: e.Volume, Field: field, Reason: why}
	}
	out := Entry{Volume: e.Volume, Key: sk, Added: normTime(e.Added), LastUsed: normTime(e.LastUsed)}
	if out.Added.IsZero() {
		return e, &InvalidEntryError{Volume: e.Volume, Field: "added", Reason: "is not set"}
	}
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"added", out.Added}, {"last used", out.LastUsed}} {
		if why := checkTime(t.t); why != "" {
			return e, &InvalidEntryError{Volume: e.Volume, Field: t.name, Reason: why}
		}
	}
	for i, h := range e.History {
		hk, field, why := normalizeKey(h.Key)
		if why != "" {
			return e, &InvalidEntryError{Volume: e.Volume, Field: fmt.Sprintf("history %d %s", i+1, field), Reason: why}
		}
		if h.Added.IsZero() || h.Replaced.IsZero() {
			return e, &InvalidEntryError{Volume: e.Volume, Field: fmt.Sprintf("history %d", i+1), Reason: "needs added and replaced times"}
		}
		if why := checkTime(normTime(h.Added)) + checkTime(normTime(h.Replaced)); why != "" {
			return e, &InvalidEntryError{Volume: e.Volume, Field: fmt.Sprintf("history %d", i+1), Reason: why}
		}
		out.History = append(out.History, Superseded{Key: hk, Added: normTime(h.Added), Replaced: normTime(h.Replaced)})
	}
	return out, nil
}

// checkTime returns why t (UTC) cannot be written, or "".
func checkTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	if y := t.Year(); y < 1970 || y > 9999 {
		return fmt.Sprintf("is in the year %d; the cache keeps times from 1970 to 9999", y)
	}
	return ""
}

func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Second)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return none
	}
	return t.UTC().Format(timeLayout)
}

// Encode returns the file content for entries (which must be valid, as
// Parse or the Cache methods return them), sorted by volume.
func Encode(entries []Entry) []byte {
	cmp := func(a, b *Entry) int { return strings.Compare(a.Volume, b.Volume) }
	ptrs := make([]*Entry, len(entries))
	for i := range entries {
		ptrs[i] = &entries[i]
	}
	if !slices.IsSortedFunc(ptrs, cmp) {
		slices.SortFunc(ptrs, cmp)
	}
	return encodePtrs(ptrs)
}

// encodeMap encodes the entries of m in volume order.
func encodeMap(m map[string]Entry) []byte {
	vols := slices.Sorted(maps.Keys(m))
	vals := make([]Entry, len(vols))
	ptrs := make([]*Entry, len(vols))
	for i, v := range vols {
		vals[i] = m[v]
		ptrs[i] = &vals[i]
	}
	return encodePtrs(ptrs)
}

func encodePtrs(sorted []*Entry) []byte {
	var b bytes.Buffer
	b.Grow(64 + 170*len(sorted))
	b.WriteString(Header)
	b.WriteByte('\n')
	for _, e := range sorted {
		writeRec(&b, recKey, e.Volume, e.Key, e.Added, e.LastUsed)
		for _, h := range e.History {
			writeRec(&b, recOld, e.Volume, h.Key, h.Added, h.Replaced)
		}
	}
	sum := sha256.Sum256(b.Bytes())
	b.WriteString(trailerPrefix)
	b.WriteString(hex.EncodeToString(sum[:]))
	b.WriteByte('\n')
	return b.Bytes()
}

func writeRec(b *bytes.Buffer, typ, volume string, sk keys.StoredKey, t1, t2 time.Time) {
	for _, f := range []string{typ, volume, string(sk.Scheme), orNone(sk.KEKID), orNone(sk.Fingerprint), fmtTime(t1), fmtTime(t2)} {
		b.WriteString(f)
		b.WriteByte('\t')
	}
	b.WriteString(sk.Value)
	b.WriteByte('\n')
}

// Parse parses cache file content. Failures are *CorruptError with Path ""
// and MovedTo "", naming the line and what was wrong (never a stored
// string). Entries come back sorted by volume.
func Parse(data []byte) ([]Entry, error) {
	bad := func(line int, format string, a ...any) error {
		return &CorruptError{Line: line, Reason: fmt.Sprintf(format, a...)}
	}
	if len(data) == 0 {
		return nil, bad(0, "the file is empty (no %q header)", Header)
	}
	if len(data) > maxFileSize {
		return nil, bad(0, "the file is %d bytes; a cache file is at most %d", len(data), maxFileSize)
	}
	h, _, _ := strings.Cut(string(data[:min(len(data), 256)]), "\n")
	switch {
	case h == Header:
	case strings.HasPrefix(h, "BAREOS Crypto Cache"):
		return nil, bad(1, "this is a Bareos crypto cache, not a Tapeward one; import it with: tapekey cache import-bareos")
	case strings.HasPrefix(h, headerPrefix):
		v := strings.TrimPrefix(h, headerPrefix)
		if len(v) > 16 || !utf8.ValidString(v) {
			v = "(unreadable)"
		}
		return nil, bad(1, "unsupported format version %q; this build reads v1", v)
	default:
		return nil, bad(1, "the first line is not %q", Header)
	}
	if data[len(data)-1] != '\n' {
		return nil, bad(bytes.Count(data, []byte("\n"))+1, "the last line has no newline (the file is truncated)")
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	last := len(lines) - 1
	if last == 0 || !strings.HasPrefix(lines[last], trailerPrefix) {
		return nil, bad(last+1, "no %q checksum line at the end (the file is truncated or was cut)", "sha256 <hex>")
	}
	var out []Entry
	index := map[string]int{}
	for i := 1; i < last; i++ {
		n := i + 1
		r, why := parseRecord(lines[i])
		if why != "" {
			return nil, bad(n, "%s", why)
		}
		typ, vol, sk, t1, t2 := r.typ, r.vol, r.key, r.t1, r.t2
		switch typ {
		case recKey:
			if _, dup := index[vol]; dup {
				return nil, bad(n, "volume %s appears twice", safeQuote(vol))
			}
			if len(out) > 0 && out[len(out)-1].Volume > vol {
				return nil, bad(n, "volume %s is out of order (entries are sorted by volume)", safeQuote(vol))
			}
			index[vol] = len(out)
			out = append(out, Entry{Volume: vol, Key: sk, Added: t1, LastUsed: t2})
		case recOld:
			if len(out) == 0 || out[len(out)-1].Volume != vol {
				return nil, bad(n, "history line for volume %s does not follow that volume's key line", safeQuote(vol))
			}
			e := &out[len(out)-1]
			e.History = append(e.History, Superseded{Key: sk, Added: t1, Replaced: t2})
		}
	}
	want := lines[last][len(trailerPrefix):]
	if len(want) != 64 || !isLowerHex(want) {
		return nil, bad(last+1, "the checksum line is not %q and 64 lower-case hex characters", trailerPrefix)
	}
	sum := sha256.Sum256(data[:len(data)-len(lines[last])-1])
	if hex.EncodeToString(sum[:]) != want {
		return nil, bad(last+1, "checksum mismatch: the SHA-256 of lines 1-%d is not the one recorded (a byte was changed)", last)
	}
	return out, nil
}

// record is one parsed record line.
type record struct {
	typ, vol string
	key      keys.StoredKey
	t1, t2   time.Time
}

// parseRecord parses one record line (without its newline) and returns
// why it is not well-formed ("" when it is). The reason never quotes a
// stored string.
func parseRecord(line string) (record, string) {
	f := strings.Split(line, "\t")
	if len(f) != 8 {
		return record{}, fmt.Sprintf("has %d tab-separated fields; want 8 (type, volume, scheme, kek id, fingerprint, time, time, stored key)", len(f))
	}
	if j := slices.Index(f, ""); j >= 0 {
		return record{}, fmt.Sprintf("field %d is empty (an empty field is written %q)", j+1, none)
	}
	typ, vol := f[0], f[1]
	if typ != recKey && typ != recOld {
		return record{}, fmt.Sprintf("record type is not %q or %q", recKey, recOld)
	}
	if why := checkVolume(vol); why != "" {
		return record{}, fmt.Sprintf("volume name %s %s", safeQuote(vol), why)
	}
	sk := keys.StoredKey{Scheme: keys.Scheme(f[2]), KEKID: fromNone(f[3]), Fingerprint: fromNone(f[4]), Value: f[7]}
	nk, field, why := normalizeKey(sk)
	if why != "" {
		return record{}, fmt.Sprintf("volume %s: %s %s", safeQuote(vol), field, why)
	}
	if nk.Value != sk.Value {
		return record{}, fmt.Sprintf("volume %s: stored key has '=' padding, which the cache never writes", safeQuote(vol))
	}
	t1, err := parseTime(f[5], false)
	if err != nil {
		return record{}, fmt.Sprintf("volume %s: field 6 (added) %v", safeQuote(vol), err)
	}
	t2, err := parseTime(f[6], typ == recKey)
	if err != nil {
		return record{}, fmt.Sprintf("volume %s: field 7 (%s) %v", safeQuote(vol), map[string]string{recKey: "last used", recOld: "replaced"}[typ], err)
	}
	return record{typ: typ, vol: vol, key: sk, t1: t1, t2: t2}, ""
}

// safeQuote quotes s for an error text, unless it looks like a stored key
// (a field in the wrong place, or a stored string given as a volume name).
func safeQuote(s string) string {
	if v := strings.TrimRight(s, "="); len(v) >= 40 && isB64(v) {
		return "(a value that looks like a stored key, not shown)"
	}
	return fmt.Sprintf("%q", s)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func parseTime(s string, optional bool) (time.Time, error) {
	if s == none {
		if optional {
			return time.Time{}, nil
		}
		return time.Time{}, fmt.Errorf(`is "-" but must be a time`)
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil || t.Format(timeLayout) != s {
		return time.Time{}, fmt.Errorf("is not a UTC time like 2026-01-31T23:59:59Z")
	}
	return t, nil
}
