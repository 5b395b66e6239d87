package cryptocache

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// Bareos crypto cache layout (bareos-compat.md): a 32-byte header, then
// fixed-size entries of two stale pointers, a 128-byte volume name, a
// 128-byte key string and an int64 "added" time, all little-endian.
const (
	bareosMagic      = "BAREOS Crypto Cache\n\x00"
	bareosHeaderSize = 32
	bareosNameSize   = 128
	// BareosEntrySize64 is the entry size of 64-bit (x86-64) builds.
	BareosEntrySize64 = 280
	// BareosEntrySize32 is the entry size of 32-bit builds (8-byte pointer pair).
	BareosEntrySize32 = 272
)

// BareosCache is the content of a Bareos crypto cache file.
type BareosCache struct {
	// Layout describes the layout found, e.g. "x86-64 (280-byte entries)"
	// or "32-bit (272-byte entries)".
	Layout    string
	EntrySize int
	// Entries are scheme bareos, KEKID "" (Bareos does not record it),
	// Added from the file; Fingerprint is set for the 43-character
	// (unwrapped) form, which needs no KEK, and empty otherwise. Sorted by
	// volume.
	Entries []Entry
	// Duplicates lists volumes that appeared more than once; the entry
	// added last was kept.
	Duplicates []string
}

// ReadBareosCache reads a Bareos crypto cache file (<working
// dir>/bareos-sd.<port>.cryptoc) for import. The layout is told by the
// file size: 280-byte entries (64-bit builds) or 272-byte ones (32-bit).
// Failures are *BareosError naming the entry; stored strings are never in
// the error text.
func ReadBareosCache(path string) (*BareosCache, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fileError(path, err)
	}
	bc, err := ParseBareosCache(data)
	if be, ok := err.(*BareosError); ok {
		be.Path = path
	}
	return bc, err
}

// ParseBareosCache parses the content of a Bareos crypto cache file (see
// ReadBareosCache); errors are *BareosError with an empty Path.
func ParseBareosCache(data []byte) (*BareosCache, error) {
	bad := func(entry int, format string, a ...any) error {
		return &BareosError{Entry: entry, Reason: fmt.Sprintf(format, a...)}
	}
	if len(data) < bareosHeaderSize || string(data[:len(bareosMagic)]) != bareosMagic {
		if len(data) >= len(Header) && string(data[:len(Header)]) == Header {
			return nil, bad(0, "this is a Tapeward crypto cache, not a Bareos one (use tapekey cache dump)")
		}
		return nil, bad(0, "not a Bareos crypto cache: it does not start with the 32-byte header \"BAREOS Crypto Cache\\n\" (%d bytes in the file)", len(data))
	}
	version := binary.LittleEndian.Uint32(data[24:28])
	if version != 1 {
		if binary.BigEndian.Uint32(data[24:28]) == 1 {
			return nil, bad(0, "written by a big-endian Bareos build; only little-endian (x86-64, 32-bit x86/ARM) caches can be imported")
		}
		return nil, bad(0, "version %d; only version 1 is known", version)
	}
	count := int64(int32(binary.LittleEndian.Uint32(data[28:32])))
	if count < 0 {
		return nil, bad(0, "the header says %d entries", count)
	}
	body := int64(len(data) - bareosHeaderSize)
	bc := &BareosCache{}
	ptrs := 0
	switch {
	case body == count*BareosEntrySize64:
		bc.Layout, bc.EntrySize, ptrs = "x86-64 (280-byte entries)", BareosEntrySize64, 16
	case body == count*BareosEntrySize32:
		bc.Layout, bc.EntrySize, ptrs = "32-bit (272-byte entries)", BareosEntrySize32, 8
	default:
		return nil, bad(0, "the header says %d entries, which take %d bytes (280-byte x86-64 entries) or %d (272-byte 32-bit entries), but %d bytes follow the header (truncated or not a cache file)",
			count, count*BareosEntrySize64, count*BareosEntrySize32, body)
	}
	empty, _ := keys.NewKeyring()
	index := map[string]int{}
	for i := 0; i < int(count); i++ {
		n := i + 1
		rec := data[bareosHeaderSize+i*bc.EntrySize : bareosHeaderSize+(i+1)*bc.EntrySize]
		nameField := rec[ptrs : ptrs+bareosNameSize]
		keyField := rec[ptrs+bareosNameSize : ptrs+2*bareosNameSize]
		added := int64(binary.LittleEndian.Uint64(rec[ptrs+2*bareosNameSize:]))
		nul := bytes.IndexByte(nameField, 0)
		if nul < 0 {
			return nil, bad(n, "the volume name is not NUL-terminated within 128 bytes")
		}
		vol := string(nameField[:nul])
		if why := checkVolume(vol); why != "" {
			return nil, bad(n, "volume name %s %s", safeQuote(vol), why)
		}
		nul = bytes.IndexByte(keyField, 0)
		if nul < 0 {
			return nil, bad(n, "(volume %s) the key string is not NUL-terminated within 128 bytes", safeQuote(vol))
		}
		sk, _, why := normalizeKey(keys.StoredKey{Scheme: keys.SchemeBareos, Value: string(keyField[:nul])})
		if why != "" {
			return nil, bad(n, "(volume %s) the key string %s", safeQuote(vol), why)
		}
		if len(sk.Value) == keys.BareosPlainLen {
			if k, err := empty.Unwrap(sk); err == nil {
				sk.Fingerprint = keys.Fingerprint(k)
				clear(k)
			} else {
				return nil, bad(n, "(volume %s) the unwrapped key string does not decode to a 32-character passphrase", safeQuote(vol))
			}
		}
		e := Entry{Volume: vol, Key: sk, Added: time.Unix(added, 0).UTC()}
		if why := checkTime(e.Added); why != "" {
			return nil, bad(n, "(volume %s) the time added (%d seconds since 1970) %s", safeQuote(vol), added, why)
		}
		if j, dup := index[vol]; dup {
			bc.Duplicates = append(bc.Duplicates, vol)
			if !e.Added.Before(bc.Entries[j].Added) {
				bc.Entries[j] = e
			}
			continue
		}
		index[vol] = len(bc.Entries)
		bc.Entries = append(bc.Entries, e)
	}
	bc.Entries = sortedEntries(toMap(bc.Entries))
	return bc, nil
}

func toMap(es []Entry) map[string]Entry {
	m := make(map[string]Entry, len(es))
	for _, e := range es {
		m[e.Volume] = e
	}
	return m
}
