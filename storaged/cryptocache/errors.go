package cryptocache

import (
	"fmt"
	"strings"
)

// CorruptError says that a cache file could not be parsed. The file was
// kept: moved aside to MovedTo by Open and the updating methods, or left
// where it is (MovedTo == "") by ReadFile and Parse. It never holds a
// stored string.
type CorruptError struct {
	Path    string // the cache file as it was found
	MovedTo string // where it is now; empty when it was not moved
	Line    int    // 1-based line of the problem; 0 when it concerns the whole file
	Reason  string // what was wrong, e.g. "checksum mismatch"
}

func (e *CorruptError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "crypto cache %s is corrupt", orUnnamed(e.Path))
	if e.Line > 0 {
		fmt.Fprintf(&b, " at line %d", e.Line)
	}
	fmt.Fprintf(&b, ": %s", e.Reason)
	if e.MovedTo != "" {
		fmt.Fprintf(&b, "; it was kept as %s (nothing was deleted) and the cache starts empty; recover its good entries with: tapekey cache salvage %s --into %s",
			e.MovedTo, e.MovedTo, orUnnamed(e.Path))
	}
	return b.String()
}

func orUnnamed(p string) string {
	if p == "" {
		return "(unnamed)"
	}
	return p
}

// NotFoundError says that the cache has no entry for Volume.
type NotFoundError struct {
	Path   string
	Volume string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("crypto cache %s has no entry for volume %s", orUnnamed(e.Path), safeQuote(e.Volume))
}

// InvalidEntryError says that an entry given to Put cannot be stored:
// Field names the offending field ("volume", "scheme", "kek id",
// "fingerprint", "stored key", "added"). Reason never holds a stored string.
type InvalidEntryError struct {
	Volume string
	Field  string
	Reason string
}

func (e *InvalidEntryError) Error() string {
	return fmt.Sprintf("crypto cache entry for volume %s: %s %s", safeQuote(e.Volume), e.Field, e.Reason)
}

// ConflictError says that Put was given the stored string the cache already
// holds for Volume but with a different KEK id or fingerprint (Field "kek
// id" or "fingerprint": one of the two is wrong), or, with PutMany's
// replace false, another stored string (Field "stored key"; Have and Got
// then describe both keys by scheme, KEK id and fingerprint). Nothing is
// changed.
type ConflictError struct {
	Volume string
	Field  string // "kek id" or "fingerprint"
	Have   string // the value in the cache
	Got    string // the value given
}

func (e *ConflictError) Error() string {
	if e.Field == "stored key" {
		return fmt.Sprintf("crypto cache: volume %s already has another stored key (%s); it was not replaced by the new one (%s)",
			safeQuote(e.Volume), e.Have, e.Got)
	}
	return fmt.Sprintf("crypto cache: volume %s already has this stored key with %s %s, not %s; nothing was changed (check which KEK wrapped it: tapekey cache verify)",
		safeQuote(e.Volume), e.Field, orNone(e.Have), orNone(e.Got))
}

// BareosError says that a Bareos crypto cache file cannot be imported.
type BareosError struct {
	Path   string
	Entry  int // 1-based entry number; 0 when it concerns the whole file
	Reason string
}

func (e *BareosError) Error() string {
	if e.Entry > 0 {
		return fmt.Sprintf("Bareos crypto cache %s: entry %d: %s", e.Path, e.Entry, e.Reason)
	}
	return fmt.Sprintf("Bareos crypto cache %s: %s", e.Path, e.Reason)
}
