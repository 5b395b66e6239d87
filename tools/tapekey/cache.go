package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tapeward/tapeward/storaged/cryptocache"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

var cacheGroup = &group{
	name:    "cache",
	summary: "storaged's crypto cache file (the wrapped keys a DR restore needs)",
	commands: []*command{
		{
			name:     "dump",
			synopsis: "FILE [--json] [--salvage]",
			summary:  "list the entries: volume, scheme, KEK id, key fingerprint, added, last used (never keys or stored strings)",
			detail: "Reads the file without locking or changing it; a corrupt file is reported and left where it is.\n" +
				"--salvage reads a damaged file leniently: every well-formed entry is listed, each line that is not\n" +
				"with its number and why (never its content), and the checksum result; merge them into a cache\n" +
				"with: tapekey cache salvage FILE --into CACHE.",
			run: cacheDump,
		},
		{
			name:     "verify",
			synopsis: "FILE [--kek FILE ... | --kek-dir DIR] [--master MASTER] [--bareos-kek FILE ...]",
			summary:  "check the format and checksum; with KEKs, that every entry unwraps and matches its fingerprint",
			detail: "Without KEKs only the file is checked. With KEKs every stored string (current and earlier keys)\n" +
				"is unwrapped. A string under a KEK not given is fine when the same key (fingerprint) unwraps from\n" +
				"another line of the volume (an older wrapping, superseded by a rekey). Exit status 1 names each\n" +
				"key that no line unwraps: volume, fingerprint and the KEK id it needs.",
			run: cacheVerify,
		},
		{
			name:     "add",
			synopsis: "FILE [--kek FILE ... | --kek-dir DIR] [--master MASTER] [--bareos-kek FILE ...] [--replace] < LINES",
			summary:  "add entries read from stdin, one per line: VOLUME<TAB>STORED [SCHEME] [KEK_ID]",
			detail: "SCHEME is v1 (default) or bareos. A v1 line needs its KEK id unless --kek is given; with KEKs\n" +
				"every string is unwrapped (KEK id and fingerprint computed and checked). Blank lines and lines\n" +
				"starting with # are skipped. Nothing is written if any line is bad. A volume that already has\n" +
				"another stored key is refused unless --replace (the old key is kept in the entry's history).",
			run: cacheAdd,
		},
		{
			name:     "remove",
			synopsis: "FILE VOLUME [VOLUME ...]",
			summary:  "remove the entries of these volumes (all or nothing)",
			run:      cacheRemove,
		},
		{
			name:     "import-bareos",
			synopsis: "BAREOS_CACHE FILE [--bareos-kek FILE] [--replace]",
			summary:  "add every entry of a Bareos crypto cache (.cryptoc) as scheme bareos",
			detail: "The Bareos layout (x86-64 or 32-bit) is told by the file size. With --bareos-kek the wrapped\n" +
				"strings are unwrapped: KEK id and fingerprint are recorded. Nothing is written if any entry fails.",
			run: cacheImportBareos,
		},
	},
}

// warnHandler prints the cache's warnings on stderr as
// "tapekey: warning: <message> (key=value ...)". Errors are not printed:
// the command returns them.
type warnHandler struct {
	w     io.Writer
	attrs []slog.Attr
}

func (h *warnHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && l < slog.LevelError
}

func (h *warnHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "tapekey: warning: %s", r.Message)
	var kv []string
	add := func(a slog.Attr) bool {
		if v := a.Value.String(); v != "" {
			kv = append(kv, a.Key+"="+v)
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	if len(kv) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(kv, " "))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *warnHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &warnHandler{w: h.w, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *warnHandler) WithGroup(string) slog.Handler { return h }

// openCache opens a cache for an update, with warnings on stderr.
func openCache(c *cli, path string) (*cryptocache.Cache, error) {
	return cryptocache.Open(path, cryptocache.Options{Logger: slog.New(&warnHandler{w: c.stderr})})
}

// readCache reads a cache without changing it, warning on stderr when the
// file is open to group or others.
func readCache(c *cli, path string) ([]cryptocache.Entry, error) {
	entries, err := cryptocache.ReadFile(path)
	if err != nil {
		var ce *cryptocache.CorruptError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%w; list what can be recovered: tapekey cache dump %s --salvage", err, path)
		}
		return nil, err
	}
	warnMode(c, path)
	return entries, nil
}

// warnMode warns on stderr when the cache file at path is open to group or
// others.
func warnMode(c *cli, path string) {
	var pe *keys.PermissionError
	if err := keys.CheckPrivateFile(path); errors.As(err, &pe) {
		fmt.Fprintf(c.stderr, "tapekey: warning: crypto cache %s is accessible by group or others (mode %04o); its stored keys may have been read; run: chmod 600 %s\n",
			path, pe.Mode.Perm(), path)
	}
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// kekFlags are the KEK options of verify and add.
type kekFlags struct {
	keks, bareos multiFlag
	dir, master  *string
}

func addKEKFlags(f *flags, withV1 bool) *kekFlags {
	k := &kekFlags{dir: new(string), master: new(string)}
	if withV1 {
		f.Var(&k.keks, "kek", "Tapeward KEK file (plain, or sealed with --master); repeat for several")
		k.dir = f.String("kek-dir", "", "directory of KEK files: every regular file in it that loads as a KEK file")
		k.master = f.String("master", "", "master keyset file, for sealed KEK files")
	}
	f.Var(&k.bareos, "bareos-kek", "Bareos KEK file, for bareos-scheme keys; repeat for several")
	return k
}

func (k *kekFlags) any() bool { return len(k.keks) > 0 || *k.dir != "" || len(k.bareos) > 0 }

// keyring loads the KEKs given. Files in --kek-dir that are not KEK files
// are skipped with a note on stderr.
func (k *kekFlags) keyring(c *cli) (*keys.Keyring, error) {
	ring, err := keys.NewKeyring()
	if err != nil {
		return nil, err
	}
	paths := append([]string(nil), k.keks...)
	dirPaths := map[string]bool{}
	if *k.dir != "" {
		des, err := os.ReadDir(*k.dir)
		if err != nil {
			return nil, fmt.Errorf("--kek-dir %s: %w", *k.dir, unwrapPathErr(err))
		}
		for _, de := range des {
			if de.Type().IsRegular() && !strings.HasPrefix(de.Name(), ".") {
				p := filepath.Join(*k.dir, de.Name())
				paths = append(paths, p)
				dirPaths[p] = true
			}
		}
	}
	for _, p := range paths {
		kek, err := loadKEK(p, *k.master)
		if err != nil {
			if dirPaths[p] {
				fmt.Fprintf(c.stderr, "tapekey: note: skipped %s in --kek-dir: %v\n", p, err)
				continue
			}
			ring.Destroy()
			return nil, err
		}
		if err := ring.Add(kek); err != nil {
			kek.Destroy()
			if dirPaths[p] {
				continue // the same KEK given twice
			}
			ring.Destroy()
			return nil, err
		}
	}
	for _, p := range k.bareos {
		bk, err := keys.LoadBareosKEKFile(p)
		if err != nil {
			ring.Destroy()
			return nil, err
		}
		if err := ring.AddBareos(bk); err != nil {
			bk.Destroy()
			ring.Destroy()
			return nil, err
		}
	}
	if *k.dir != "" && len(ring.IDs()) == 0 {
		ring.Destroy()
		return nil, fmt.Errorf("--kek-dir %s holds no KEK file that loads", *k.dir)
	}
	return ring, nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// cacheEntryInfo is what dump prints of an entry: never the stored string.
type cacheEntryInfo struct {
	Volume      string          `json:"volume"`
	Scheme      string          `json:"scheme"`
	KEKID       string          `json:"kek_id"`
	Fingerprint string          `json:"fingerprint"`
	Added       string          `json:"added"`
	LastUsed    string          `json:"last_used"`
	History     []cacheHistInfo `json:"history"`
}

type cacheHistInfo struct {
	Scheme      string `json:"scheme"`
	KEKID       string `json:"kek_id"`
	Fingerprint string `json:"fingerprint"`
	Added       string `json:"added"`
	Replaced    string `json:"replaced"`
}

func rfc(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneFile(f *flags, pos []string, what string) (string, error) {
	if len(pos) != 1 {
		return "", usagef("%s takes exactly one %s (got %d); run: %s --help", f.path, what, len(pos), f.path)
	}
	return pos[0], nil
}

func cacheDump(c *cli, f *flags, args []string) error {
	asJSON := f.Bool("json", false, "print JSON")
	salvage := f.Bool("salvage", false, "read a damaged file leniently: list every recoverable entry, and each line that is not with its number and why")
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	path, err := oneFile(f, pos, "cache file")
	if err != nil {
		return err
	}
	if *salvage {
		return cacheDumpSalvage(c, path, *asJSON)
	}
	entries, err := readCache(c, path)
	if err != nil {
		return err
	}
	infos := entryInfos(entries)
	if *asJSON {
		return printJSON(c.stdout, struct {
			File    string           `json:"file"`
			Format  string           `json:"format"`
			Entries []cacheEntryInfo `json:"entries"`
		}{path, cryptocache.Header, infos})
	}
	if err := printEntryTable(c, infos); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%d entries in %s (%s, checksum ok)\n", len(infos), path, cryptocache.Header)
	return err
}

// entryInfos is what dump prints of entries.
func entryInfos(entries []cryptocache.Entry) []cacheEntryInfo {
	infos := make([]cacheEntryInfo, 0, len(entries))
	for _, e := range entries {
		in := cacheEntryInfo{Volume: e.Volume, Scheme: string(e.Key.Scheme), KEKID: e.Key.KEKID, Fingerprint: e.Key.Fingerprint,
			Added: rfc(e.Added), LastUsed: rfc(e.LastUsed), History: []cacheHistInfo{}}
		for _, h := range e.History {
			in.History = append(in.History, cacheHistInfo{Scheme: string(h.Key.Scheme), KEKID: h.Key.KEKID, Fingerprint: h.Key.Fingerprint,
				Added: rfc(h.Added), Replaced: rfc(h.Replaced)})
		}
		infos = append(infos, in)
	}
	return infos
}

// printEntryTable prints the table of dump.
func printEntryTable(c *cli, infos []cacheEntryInfo) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tSCHEME\tKEK ID\tFINGERPRINT\tADDED\tLAST USED\tEARLIER KEYS")
	for _, in := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", in.Volume, in.Scheme, dash(in.KEKID), dash(in.Fingerprint), in.Added, dash(in.LastUsed), len(in.History))
	}
	return tw.Flush()
}

// unwrapCheck unwraps sk with ring and returns the fingerprint of its drive
// key; the key itself is zeroed at once.
func unwrapCheck(ring *keys.Keyring, sk keys.StoredKey) (string, error) {
	k, err := ring.Unwrap(sk)
	if err != nil {
		return "", err
	}
	fp := keys.Fingerprint(k)
	clear(k)
	return fp, nil
}

// neededKEK says, for a failed unwrap, which KEK the entry needs.
func neededKEK(sk keys.StoredKey) string {
	if sk.KEKID != "" {
		return "needs KEK " + sk.KEKID
	}
	if sk.Scheme == keys.SchemeBareos {
		return "needs the Bareos KEK (its id was not recorded; give --bareos-kek)"
	}
	return "names no KEK id"
}

func cacheVerify(c *cli, f *flags, args []string) error {
	kf := addKEKFlags(f, true)
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	path, err := oneFile(f, pos, "cache file")
	if err != nil {
		return err
	}
	entries, err := readCache(c, path)
	if err != nil {
		return err
	}
	if !kf.any() {
		_, err := fmt.Fprintf(c.stdout, "%s: %s, checksum ok, %d entries; keys not unwrapped (give --kek, --kek-dir or --bareos-kek)\n", path, cryptocache.Header, len(entries))
		return err
	}
	ring, err := kf.keyring(c)
	if err != nil {
		return err
	}
	defer ring.Destroy()
	var failed []string
	badEntries := 0
	for _, e := range entries {
		f := verifyEntry(c, ring, e)
		if len(f) > 0 {
			badEntries++
		}
		failed = append(failed, f...)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s: %d of %d entries do not unwrap (%d keys not unwrappable with the KEKs given): %s",
			path, badEntries, len(entries), len(failed), strings.Join(failed, ", "))
	}
	_, err = fmt.Fprintf(c.stdout, "%s: %s, checksum ok, all %d entries unwrap with the KEKs given\n", path, cryptocache.Header, len(entries))
	return err
}

// verifyEntry unwraps every stored string of e (current and history) with
// ring and prints a line each. A key — a fingerprint — is what DR needs,
// not a particular wrapping: a line that does not unwrap is fine when the
// same fingerprint unwraps from another line of the volume (an older
// wrapping under a KEK not given, superseded by a rekey). It returns, for
// the summary, each key that no line unwraps: volume, KEK needed and
// fingerprint.
func verifyEntry(c *cli, ring *keys.Keyring, e cryptocache.Entry) []string {
	type line struct {
		sk       keys.StoredKey
		fp       string // computed when it unwraps, else the recorded one
		err      error
		replaced string // history lines: when
	}
	lines := []line{{sk: e.Key}}
	for _, h := range e.History {
		lines = append(lines, line{sk: h.Key, replaced: rfc(h.Replaced)})
	}
	have := map[string]string{} // fingerprint → KEK id of a line that unwraps
	for i := range lines {
		l := &lines[i]
		l.fp, l.err = unwrapCheck(ring, l.sk)
		if l.err == nil {
			if _, ok := have[l.fp]; !ok {
				have[l.fp] = dash(l.sk.KEKID)
			}
		} else {
			l.fp = l.sk.Fingerprint
		}
	}
	var failed []string
	fail := func(l line, what string) {
		var nf *keys.KEKNotFoundError
		why := "does not unwrap: " + l.err.Error()
		if errors.As(l.err, &nf) {
			why = "KEK " + nf.Needed + " was not given"
		}
		fpText := "key " + l.fp
		if l.fp == "" {
			fpText = "key fingerprint not recorded"
		}
		fmt.Fprintf(c.stdout, "FAIL  %s  %s  %s  %s (%s)\n", e.Volume, neededKEK(l.sk), why, fpText, what)
		failed = append(failed, fmt.Sprintf("%s (%s): %s", e.Volume, neededKEK(l.sk), fpText))
	}
	superseded := func(l line) bool {
		if l.err == nil || l.fp == "" {
			return false
		}
		_, ok := have[l.fp]
		return ok
	}
	cur := lines[0]
	switch {
	case cur.err == nil:
		note := "fingerprint matches"
		if e.Key.Fingerprint == "" {
			note = "no fingerprint recorded; computed " + cur.fp
		}
		fmt.Fprintf(c.stdout, "ok    %s  %s  kek %s  fingerprint %s  %s\n", e.Volume, e.Key.Scheme, dash(e.Key.KEKID), cur.fp, note)
	case superseded(cur):
		fmt.Fprintf(c.stdout, "ok    %s  %s  kek %s not given, but key %s unwraps from an earlier line under KEK %s\n",
			e.Volume, e.Key.Scheme, dash(e.Key.KEKID), cur.fp, have[cur.fp])
	default:
		fail(cur, "current key")
	}
	// Earlier keys: reported; a failure only when no line holds the key
	// under a KEK given.
	for _, l := range lines[1:] {
		switch {
		case l.err == nil:
			state := "unwraps"
			if l.fp == cur.fp && cur.err == nil {
				state = "unwraps to the same key"
			}
			fmt.Fprintf(c.stdout, "      earlier key replaced %s: %s, kek %s: %s\n", l.replaced, l.sk.Scheme, dash(l.sk.KEKID), state)
		case superseded(l):
			fmt.Fprintf(c.stdout, "      earlier key replaced %s: %s, kek %s: older wrapping under KEK %s, superseded (key %s unwraps under KEK %s)\n",
				l.replaced, l.sk.Scheme, dash(l.sk.KEKID), dash(l.sk.KEKID), l.fp, have[l.fp])
		default:
			fail(l, "earlier key replaced "+l.replaced)
		}
	}
	return failed
}

// maxCacheStdin bounds what "cache add" reads.
const maxCacheStdin = 64 << 20

// parseAddLines turns the lines of "cache add" into entries, checking
// each; errors name the line and never quote a stored string.
func parseAddLines(in []byte, ring *keys.Keyring) ([]cryptocache.Entry, error) {
	haveV1 := ring.Active() != nil
	var out []cryptocache.Entry
	seen := map[string]int{}
	lines := strings.Split(string(in), "\n")
	const want = "expected VOLUME<TAB>STORED [SCHEME] [KEK_ID]"
	for i, line := range lines {
		n := i + 1
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		vol, rest, ok := strings.Cut(line, "\t")
		if !ok {
			return nil, fmt.Errorf("stdin line %d: no tab after the volume name; %s", n, want)
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 || len(fields) > 3 {
			return nil, fmt.Errorf("stdin line %d: %d fields after the volume name; %s", n, len(fields), want)
		}
		sk := keys.StoredKey{Scheme: keys.SchemeV1, Value: fields[0]}
		if len(fields) > 1 {
			s, err := keys.ParseScheme(fields[1])
			if err != nil {
				return nil, fmt.Errorf("stdin line %d: field 3 (scheme) is not %q or %q; %s", n, keys.SchemeV1, keys.SchemeBareos, want)
			}
			sk.Scheme = s
		}
		if len(fields) > 2 {
			sk.KEKID = fields[2]
		}
		if sk.Scheme == keys.SchemeV1 && sk.KEKID == "" && !haveV1 {
			return nil, fmt.Errorf("stdin line %d: volume %q: a v1 key needs its KEK id (4th field), or give --kek so that it is computed", n, vol)
		}
		e := cryptocache.Entry{Volume: vol, Key: sk}
		check := e
		if check.Key.KEKID == "" && check.Key.Scheme == keys.SchemeV1 {
			check.Key.KEKID = "0000000000000000" // computed below from --kek
		}
		if err := check.Validate(); err != nil {
			return nil, fmt.Errorf("stdin line %d: %w", n, err)
		}
		if err := resolveKey(ring, &e.Key); err != nil {
			return nil, fmt.Errorf("stdin line %d: volume %q: %w", n, vol, err)
		}
		if prev, dup := seen[vol]; dup {
			return nil, fmt.Errorf("stdin line %d: volume %q was already given on line %d", n, vol, prev)
		}
		seen[vol] = n
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no entries on stdin; %s, e.g.: printf 'VOL001\\t<stored string>\\tv1\\t<kek id>\\n' | tapekey cache add FILE", want)
	}
	return out, nil
}

// resolveKey fills in the KEK id and fingerprint of sk from ring and
// checks that sk unwraps: v1 keys when v1 KEKs were given, wrapped bareos
// keys when Bareos KEKs were given, unwrapped (43-character) bareos keys
// always. A key that cannot be checked is left as it is.
func resolveKey(ring *keys.Keyring, sk *keys.StoredKey) error {
	var v1IDs, bareosIDs []string
	for _, id := range ring.IDs() {
		if _, ok := ring.Get(id); ok {
			v1IDs = append(v1IDs, id)
		} else {
			bareosIDs = append(bareosIDs, id)
		}
	}
	candidates := v1IDs
	if sk.Scheme == keys.SchemeBareos {
		if len(strings.TrimRight(sk.Value, "=")) == keys.BareosPlainLen {
			fp, err := unwrapCheck(ring, *sk)
			if err == nil {
				sk.Fingerprint = fp
			}
			return err
		}
		candidates = bareosIDs
	}
	if len(candidates) == 0 {
		return nil
	}
	if sk.KEKID != "" {
		fp, err := unwrapCheck(ring, *sk)
		if err == nil {
			sk.Fingerprint = fp
		}
		return err
	}
	for _, id := range candidates {
		try := *sk
		try.KEKID = id
		if fp, err := unwrapCheck(ring, try); err == nil {
			sk.KEKID, sk.Fingerprint = id, fp
			return nil
		}
	}
	return fmt.Errorf("the stored key does not unwrap with any %s KEK given (%s)", sk.Scheme, strings.Join(candidates, ", "))
}

func printPutResults(c *cli, path string, entries []cryptocache.Entry, results []cryptocache.PutResult) error {
	counts := map[cryptocache.PutResult]int{}
	for i, e := range entries {
		counts[results[i]]++
		if _, err := fmt.Fprintf(c.stdout, "%-9s %s  %s  kek %s  fingerprint %s\n", results[i], e.Volume, e.Key.Scheme, dash(e.Key.KEKID), dash(e.Key.Fingerprint)); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(c.stdout, "%s: %d added, %d replaced, %d updated, %d unchanged\n", path,
		counts[cryptocache.Added], counts[cryptocache.Replaced], counts[cryptocache.Updated], counts[cryptocache.Unchanged])
	return err
}

func cacheAdd(c *cli, f *flags, args []string) error {
	kf := addKEKFlags(f, true)
	replace := f.Bool("replace", false, "replace a volume's different stored key (the old one is kept in the entry's history)")
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	path, err := oneFile(f, pos, "cache file")
	if err != nil {
		return err
	}
	ring, err := kf.keyring(c)
	if err != nil {
		return err
	}
	defer ring.Destroy()
	in, err := io.ReadAll(io.LimitReader(c.stdin, maxCacheStdin+1))
	defer clear(in) // bareos 43-character strings are passphrases
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	if len(in) > maxCacheStdin {
		return fmt.Errorf("stdin is larger than %d bytes", maxCacheStdin)
	}
	entries, err := parseAddLines(in, ring)
	if err != nil {
		return err
	}
	cc, err := openCache(c, path)
	if err != nil {
		return err
	}
	results, err := cc.PutMany(entries, *replace)
	if err != nil {
		var ce *cryptocache.ConflictError
		if errors.As(err, &ce) && ce.Field == "stored key" {
			return fmt.Errorf("%v; nothing was written (use --replace to replace it; the old key is kept in the entry's history)", err)
		}
		return fmt.Errorf("%v; nothing was written", err)
	}
	return printPutResults(c, path, entries, results)
}

func cacheRemove(c *cli, f *flags, args []string) error {
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return usagef("%s needs the cache file and at least one volume; run: %s --help", f.path, f.path)
	}
	path, vols := pos[0], pos[1:]
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("crypto cache %s: %w", path, unwrapPathErr(err))
	}
	cc, err := openCache(c, path)
	if err != nil {
		return err
	}
	if err := cc.Remove(vols...); err != nil {
		return fmt.Errorf("%v; nothing was removed", err)
	}
	_, err = fmt.Fprintf(c.stdout, "%s: removed %d entries: %s\n", path, len(vols), strings.Join(vols, ", "))
	return err
}

func cacheImportBareos(c *cli, f *flags, args []string) error {
	kf := addKEKFlags(f, false)
	replace := f.Bool("replace", false, "replace a volume's different stored key (the old one is kept in the entry's history)")
	pos, err := f.parse(c, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("%s takes the Bareos cache file and the Tapeward cache file (got %d arguments); run: %s --help", f.path, len(pos), f.path)
	}
	src, path := pos[0], pos[1]
	bc, err := cryptocache.ReadBareosCache(src)
	if err != nil {
		return err
	}
	if len(bc.Entries) == 0 {
		return fmt.Errorf("Bareos crypto cache %s (%s) holds no entries; nothing to import", src, bc.Layout)
	}
	ring, err := kf.keyring(c)
	if err != nil {
		return err
	}
	defer ring.Destroy()
	for i := range bc.Entries {
		if err := resolveKey(ring, &bc.Entries[i].Key); err != nil {
			return fmt.Errorf("Bareos crypto cache %s: volume %q: %v; nothing was written", src, bc.Entries[i].Volume, err)
		}
	}
	cc, err := openCache(c, path)
	if err != nil {
		return err
	}
	results, err := cc.PutMany(bc.Entries, *replace)
	if err != nil {
		return fmt.Errorf("%v; nothing was written", err)
	}
	fmt.Fprintf(c.stdout, "%s: Bareos crypto cache, %s, %d entries\n", src, bc.Layout, len(bc.Entries))
	if len(bc.Duplicates) > 0 {
		d := append([]string(nil), bc.Duplicates...)
		sort.Strings(d)
		fmt.Fprintf(c.stdout, "note: volumes listed more than once (the latest was kept): %s\n", strings.Join(d, ", "))
	}
	return printPutResults(c, path, bc.Entries, results)
}
