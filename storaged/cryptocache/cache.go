// Package cryptocache is storaged's crypto cache: a file that keeps every
// wrapped volume key storaged has received, so that a disaster-recovery
// restore can load keys with no director and no catalog.
//
// The file (README.md describes it byte for byte) is versioned text with a
// SHA-256 trailer. Every update re-reads the file and replaces it
// atomically (temporary file in the same directory, fsync, rename, fsync of
// the directory) under an exclusive flock on "<path>.lock", so storaged
// and "tapekey cache" never lose each other's entries. The file is always
// mode 0600. A file that cannot be parsed is never deleted: it is moved to
// "<path>.corrupt-<UTC time>" and reported as a *CorruptError. Entries are
// removed only by Remove; nothing expires.
//
// The cache holds stored (wrapped) strings, never key bytes, and no error
// text or log line of this package contains a stored string (a 43-character
// bareos string is a plaintext passphrase).
package cryptocache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// FileName is the cache's file name in storaged's working directory.
const FileName = "storaged.cryptocache"

// Clock returns the current time; tests inject a fake one.
type Clock func() time.Time

// Options configures Open.
type Options struct {
	// Clock stamps added and last-used times and corrupt-file names; nil
	// means time.Now.
	Clock Clock
	// Logger receives warnings (a stored key replaced, a file mode fixed, a
	// corrupt file moved aside); nil discards them. Log records never hold
	// stored strings.
	Logger *slog.Logger
}

// Cache is an open crypto cache file. Its methods are safe for concurrent
// use, and several Caches (in one process or several) may share one file:
// every method works on the file's current content under the file lock.
type Cache struct {
	path, lockPath string
	clock          Clock
	log            *slog.Logger

	mu      sync.Mutex
	raw     []byte           // the content last read or written
	entries map[string]Entry // raw, parsed
}

// PutResult says what Put did to a volume's entry.
type PutResult int

const (
	// Unchanged: the cache already held this stored key.
	Unchanged PutResult = iota
	// Added: the volume had no entry.
	Added
	// Updated: same stored key; a missing KEK id or fingerprint was filled in.
	Updated
	// Replaced: the volume had another stored key, now kept in History.
	Replaced
)

func (r PutResult) String() string {
	switch r {
	case Unchanged:
		return "unchanged"
	case Added:
		return "added"
	case Updated:
		return "updated"
	case Replaced:
		return "replaced"
	}
	return fmt.Sprintf("PutResult(%d)", int(r))
}

// testHookBeforeRename, when set, runs after the temporary file is written
// and synced and before it is renamed over the cache (crash tests).
var testHookBeforeRename func(tmp string) error

// Open opens the cache file at path and reads it (a missing file is an
// empty cache; it is created by the first update). If the file cannot be
// parsed it is moved aside and Open returns a *CorruptError and a nil
// Cache: the caller decides — calling Open again continues with an empty
// cache. A file open to group or others is changed to mode 0600 and a
// warning is logged.
func Open(path string, opts Options) (*Cache, error) {
	if path == "" {
		return nil, errors.New("crypto cache: empty path")
	}
	c := &Cache{path: path, lockPath: path + ".lock", clock: opts.Clock, log: opts.Logger}
	if c.clock == nil {
		c.clock = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	err := c.locked(func() error {
		_, err := c.load()
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Path returns the cache file's path.
func (c *Cache) Path() string { return c.path }

// Get returns the entry of volume, or a *NotFoundError.
func (c *Cache) Get(volume string) (Entry, error) {
	var e Entry
	err := c.locked(func() error {
		m, err := c.load()
		if err != nil {
			return err
		}
		var ok bool
		if e, ok = m[volume]; !ok {
			return &NotFoundError{Path: c.path, Volume: volume}
		}
		return nil
	})
	return e, err
}

// List returns every entry, sorted by volume.
func (c *Cache) List() ([]Entry, error) {
	var out []Entry
	err := c.locked(func() error {
		m, err := c.load()
		if err != nil {
			return err
		}
		out = sortedEntries(m)
		return nil
	})
	return out, err
}

// Put adds or updates the entry of e.Volume with e.Key (e.Added zero: now;
// e.History must be empty). A different stored key replaces the current
// one, which moves to History (logged as a warning: a rekey keeps the
// fingerprint, a new key changes it). Invalid entries are
// *InvalidEntryError; the same stored key with another KEK id or
// fingerprint is a *ConflictError.
func (c *Cache) Put(e Entry) (PutResult, error) {
	r, err := c.PutMany([]Entry{e}, true)
	if err != nil {
		return Unchanged, err
	}
	return r[0], nil
}

// PutMany puts every entry in one atomic update: all are written or none.
// With replace false, an entry whose volume already has a different stored
// key is a *ConflictError (Field "stored key") instead of a replacement.
// A volume may appear only once in entries.
func (c *Cache) PutMany(entries []Entry, replace bool) ([]PutResult, error) {
	now := normTime(c.clock())
	norm, err := normalizeAll(entries, func(e *Entry) error {
		if len(e.History) > 0 {
			return &InvalidEntryError{Volume: e.Volume, Field: "history", Reason: "cannot be given to Put; the cache keeps it"}
		}
		if e.Added.IsZero() {
			e.Added = now
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c.apply(len(norm), nil, func(m map[string]Entry, i int) (PutResult, logFn, error) {
		return merge(m, norm[i], now, replace)
	})
}

// apply runs step for entries 0…n-1 (in the order given, nil: 0…n-1) in
// one atomic update, which writes the file only if a result is not
// Unchanged; it returns the results by entry and, after the update
// succeeded, logs what the steps asked to log.
func (c *Cache) apply(n int, order []int, step func(m map[string]Entry, i int) (PutResult, logFn, error)) ([]PutResult, error) {
	if order == nil {
		order = make([]int, n)
		for i := range order {
			order[i] = i
		}
	}
	results := make([]PutResult, n)
	var logs []func()
	err := c.update(func(m map[string]Entry) (bool, error) {
		changed := false
		logs = logs[:0]
		for _, i := range order {
			r, lg, err := step(m, i)
			if err != nil {
				return false, err
			}
			results[i] = r
			if lg != nil {
				logs = append(logs, lg(c.log, c.path))
			}
			changed = changed || r != Unchanged
		}
		return changed, nil
	})
	if err != nil {
		return nil, err
	}
	for _, lg := range logs {
		lg()
	}
	return results, nil
}

// normalizeAll checks and normalizes entries for one update: prep (may be
// nil) sees each entry first; a volume may appear once.
func normalizeAll(entries []Entry, prep func(*Entry) error) ([]Entry, error) {
	norm := make([]Entry, len(entries))
	seen := map[string]bool{}
	for i, e := range entries {
		if prep != nil {
			if err := prep(&e); err != nil {
				return nil, err
			}
		}
		n, err := normalize(e)
		if err != nil {
			return nil, err
		}
		if seen[n.Volume] {
			return nil, &InvalidEntryError{Volume: n.Volume, Field: "volume name", Reason: "is given twice"}
		}
		seen[n.Volume] = true
		norm[i] = n
	}
	return norm, nil
}

// logFn makes, from the cache's logger and path, the log call a merge
// asks for; it runs only once the update is written.
type logFn func(*slog.Logger, string) func()

// merge puts e into m and says what it did.
func merge(m map[string]Entry, e Entry, now time.Time, replace bool) (PutResult, logFn, error) {
	old, ok := m[e.Volume]
	if !ok {
		m[e.Volume] = e
		return Added, nil, nil
	}
	if old.Key.Scheme == e.Key.Scheme && old.Key.Value == e.Key.Value {
		upd := old
		for _, f := range []struct {
			name      string
			have, got *string
		}{{"kek id", &upd.Key.KEKID, &e.Key.KEKID}, {"fingerprint", &upd.Key.Fingerprint, &e.Key.Fingerprint}} {
			switch {
			case *f.got == "" || *f.got == *f.have:
			case *f.have == "":
				*f.have = *f.got
			default:
				return Unchanged, nil, &ConflictError{Volume: e.Volume, Field: f.name, Have: *f.have, Got: *f.got}
			}
		}
		if upd.Key == old.Key {
			return Unchanged, nil, nil
		}
		m[e.Volume] = upd
		return Updated, nil, nil
	}
	if !replace {
		return Unchanged, nil, &ConflictError{Volume: e.Volume, Field: "stored key", Have: describeKey(old.Key), Got: describeKey(e.Key)}
	}
	hist := slices.DeleteFunc(slices.Clone(old.History), func(h Superseded) bool {
		return h.Key.Scheme == e.Key.Scheme && h.Key.Value == e.Key.Value
	})
	hist = append(hist, Superseded{Key: old.Key, Added: old.Added, Replaced: now})
	e.History = hist
	m[e.Volume] = e
	lg := func(l *slog.Logger, path string) func() {
		return func() {
			msg := "crypto cache: stored key of volume replaced (rekey: same key, new wrap); the old one is kept in the entry's history"
			if old.Key.Fingerprint == "" || e.Key.Fingerprint == "" || old.Key.Fingerprint != e.Key.Fingerprint {
				msg = "crypto cache: stored key of volume replaced by a different or unverified key; the old one is kept in the entry's history"
			}
			l.Warn(msg, "cache", path, "volume", e.Volume,
				"old_scheme", string(old.Key.Scheme), "old_kek_id", old.Key.KEKID, "old_fingerprint", old.Key.Fingerprint,
				"new_scheme", string(e.Key.Scheme), "new_kek_id", e.Key.KEKID, "new_fingerprint", e.Key.Fingerprint)
		}
	}
	return Replaced, lg, nil
}

func describeKey(sk keys.StoredKey) string {
	return fmt.Sprintf("scheme %s, kek %s, fingerprint %s", sk.Scheme, orNone(sk.KEKID), orNone(sk.Fingerprint))
}

// Touch sets the last-used time of volume to now (*NotFoundError if it has
// no entry).
func (c *Cache) Touch(volume string) error {
	now := normTime(c.clock())
	return c.update(func(m map[string]Entry) (bool, error) {
		e, ok := m[volume]
		if !ok {
			return false, &NotFoundError{Path: c.path, Volume: volume}
		}
		if e.LastUsed.Equal(now) {
			return false, nil
		}
		e.LastUsed = now
		m[volume] = e
		return true, nil
	})
}

// Remove deletes the entries of volumes (with their history) in one
// atomic update. If any volume has no entry, nothing is removed and the
// error is a *NotFoundError for the first one missing.
func (c *Cache) Remove(volumes ...string) error {
	return c.update(func(m map[string]Entry) (bool, error) {
		for _, v := range volumes {
			if _, ok := m[v]; !ok {
				return false, &NotFoundError{Path: c.path, Volume: v}
			}
		}
		for _, v := range volumes {
			delete(m, v)
		}
		return len(volumes) > 0, nil
	})
}

// ReadFile parses the cache file at path without locking, moving or
// changing it (for dump, verify and DR from read-only media). A file that
// cannot be parsed is a *CorruptError with MovedTo "".
func ReadFile(path string) ([]Entry, error) {
	data, err := readCapped(path)
	if err != nil {
		return nil, err
	}
	entries, err := Parse(data)
	var ce *CorruptError
	if errors.As(err, &ce) {
		ce.Path = path
	}
	return entries, err
}

func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileError(path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileError(path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("crypto cache %s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fileError(path, err)
	}
	return data, nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func fileError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("crypto cache %s does not exist: %w", path, fs.ErrNotExist)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("crypto cache %s: permission denied (run as the storaged user): %w", path, fs.ErrPermission)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("crypto cache %s: %w", path, err)
}

// locked runs fn holding c.mu and an exclusive flock on the lock file.
func (c *Cache) locked(fn func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	lf, err := os.OpenFile(c.lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		if dir := filepath.Dir(c.path); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("crypto cache %s: directory %s does not exist", c.path, dir)
		}
		return fmt.Errorf("crypto cache %s: cannot open its lock file %s: %w", c.path, c.lockPath, unwrapPath(err))
	}
	defer lf.Close() // closing releases the lock
	for {
		err = unix.Flock(int(lf.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("crypto cache: locking %s: %w", c.lockPath, err)
	}
	return fn()
}

// load reads the file (under the lock) and returns its entries; the map
// is the caller's to change. A corrupt file is moved aside.
func (c *Cache) load() (map[string]Entry, error) {
	f, err := os.Open(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		c.raw, c.entries = nil, map[string]Entry{}
		return map[string]Entry{}, nil
	}
	if err != nil {
		return nil, fileError(c.path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileError(c.path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("crypto cache %s is not a regular file (%s); move it away", c.path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := f.Chmod(0o600); err != nil {
			return nil, fmt.Errorf("crypto cache %s is accessible by group or others (mode %04o) and cannot be changed to 0600: %w", c.path, perm, err)
		}
		c.log.Warn("crypto cache was accessible by group or others; changed it to mode 0600 (its wrapped keys may have been read)",
			"cache", c.path, "old_mode", fmt.Sprintf("%04o", perm))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fileError(c.path, err)
	}
	if c.raw != nil && bytes.Equal(data, c.raw) {
		return cloneMap(c.entries), nil
	}
	entries, err := Parse(data)
	if err != nil {
		var ce *CorruptError
		if !errors.As(err, &ce) {
			return nil, err
		}
		ce.Path = c.path
		moved, merr := moveAside(c.path, data, c.clock())
		if merr != nil {
			ce.Reason += fmt.Sprintf("; it could NOT be moved aside (%v) and was left in place", merr)
		} else {
			ce.MovedTo = moved
		}
		c.raw, c.entries = nil, nil
		c.log.Error("crypto cache is corrupt; kept it under a new name", "cache", c.path, "moved_to", ce.MovedTo, "line", ce.Line, "reason", ce.Reason)
		return nil, ce
	}
	m := make(map[string]Entry, len(entries))
	for _, e := range entries {
		m[e.Volume] = e
	}
	c.raw, c.entries = data, m
	return cloneMap(m), nil
}

func cloneMap(m map[string]Entry) map[string]Entry { return maps.Clone(m) }

func sortedEntries(m map[string]Entry) []Entry {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Volume, b.Volume) })
	return out
}

// update runs fn on the current entries under the lock and, if fn reports
// a change, writes the result atomically.
func (c *Cache) update(fn func(m map[string]Entry) (bool, error)) error {
	return c.locked(func() error {
		m, err := c.load()
		if err != nil {
			return err
		}
		changed, err := fn(m)
		if err != nil || !changed {
			return err
		}
		data := encodeMap(m)
		removeStaleTemps(c.path)
		if err := writeAtomic(c.path, data); err != nil {
			return err
		}
		c.raw, c.entries = data, m
		return nil
	})
}

// writeAtomic replaces path with data: a temporary file in the same
// directory, mode 0600, synced, renamed over path, then the directory
// synced. On any failure path is untouched.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("crypto cache %s: creating a temporary file in %s: %w", path, dir, err)
	}
	tmp := f.Name()
	fail := func(what string, err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("crypto cache %s: %s %s: %w (the cache file was not changed)", path, what, tmp, err)
	}
	if err := f.Chmod(0o600); err != nil {
		return fail("setting mode 0600 on", err)
	}
	if _, err := f.Write(data); err != nil {
		return fail("writing", err)
	}
	if err := f.Sync(); err != nil {
		return fail("syncing", err)
	}
	if err := f.Close(); err != nil {
		return fail("closing", err)
	}
	if testHookBeforeRename != nil {
		if err := testHookBeforeRename(tmp); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("crypto cache %s: %w (the cache file was not changed)", path, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("crypto cache %s: renaming the new version into place: %w (the cache file was not changed)", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("crypto cache %s: written, but syncing directory %s failed: %w", path, dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeStaleTemps deletes temporary files a crashed writer left (the
// caller holds the lock, so no writer is using them; they are incomplete
// copies, never the cache).
func removeStaleTemps(path string) {
	matches, _ := filepath.Glob(globEscape(path) + ".tmp-*")
	for _, m := range matches {
		os.Remove(m)
	}
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// CorruptName returns the name a corrupt cache file at path is moved to at
// time t: "<path>.corrupt-<YYYYMMDDThhmmssZ>" (".N" is appended when that
// name exists already).
func CorruptName(path string, t time.Time) string {
	return path + ".corrupt-" + t.UTC().Format("20060102T150405Z")
}

// moveAside gives the corrupt file at path a new name that no file has
// (never overwriting one) and returns it. data is the content read, used
// when the file system cannot make hard links.
func moveAside(path string, data []byte, now time.Time) (string, error) {
	base := CorruptName(path, now)
	dir := filepath.Dir(path)
	for i := 0; i < 10000; i++ {
		name := base
		if i > 0 {
			name = fmt.Sprintf("%s.%d", base, i)
		}
		err := os.Link(path, name)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			// No hard links here: copy to a new file, never overwriting.
			f, cerr := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(cerr, fs.ErrExist) {
				continue
			}
			if cerr != nil {
				return "", cerr
			}
			_, werr := f.Write(data)
			if werr == nil {
				werr = f.Sync()
			}
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				os.Remove(name)
				return "", werr
			}
		}
		if err := os.Remove(path); err != nil {
			return name, fmt.Errorf("kept a copy as %s but could not remove the original: %w", name, err)
		}
		syncDir(dir)
		return name, nil
	}
	return "", fmt.Errorf("too many corrupt copies named %s.N", base)
}
