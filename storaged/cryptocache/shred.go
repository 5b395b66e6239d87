package cryptocache

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
)

// ShredResult is what Shred did. It never holds a stored string.
type ShredResult struct {
	// Destroyed counts the stored strings removed (key and old lines).
	Destroyed int
	// Absent lists the volumes the cache held no entry of.
	Absent []string
	// NotEdited lists the corrupt copies kept next to the cache
	// (CorruptName) that hold a line of one of the volumes: they are kept
	// byte for byte and never edited, so they may still hold its keys.
	// An operator destroys them by hand.
	NotEdited []string
}

// Shred destroys every stored string of volumes (the key line and the
// whole history) in ONE atomic update under the lock — crypto-shredding,
// the one removal that is not an operator's `Remove` of a retired volume.
// The temporary files a crashed writer left (incomplete copies that may
// hold the strings) are removed too. Corrupt copies kept aside are not
// edited (they are kept as found): those that name one of the volumes,
// or hold one of its strings, are listed in NotEdited. A volume with no
// entry is listed in Absent (Shred is idempotent).
func (c *Cache) Shred(volumes ...string) (ShredResult, error) {
	var (
		res     ShredResult
		strings [][]byte
	)
	err := c.update(func(m map[string]Entry) (bool, error) {
		removeStaleTemps(c.path)
		for _, v := range volumes {
			e, ok := m[v]
			if !ok {
				if !slices.Contains(res.Absent, v) {
					res.Absent = append(res.Absent, v)
				}
				continue
			}
			strings = append(strings, []byte(e.Key.Value))
			for _, h := range e.History {
				strings = append(strings, []byte(h.Key.Value))
			}
			res.Destroyed += 1 + len(e.History)
			delete(m, v)
		}
		return res.Destroyed > 0, nil
	})
	if err != nil {
		return ShredResult{}, err
	}
	copies, _ := filepath.Glob(globEscape(c.path) + ".corrupt-*")
	slices.Sort(copies)
	for _, name := range copies {
		data, err := os.ReadFile(name)
		if err != nil {
			// Unreadable here: it may hold anything.
			res.NotEdited = append(res.NotEdited, filepath.Base(name)+" (unreadable: "+unwrapPath(err).Error()+")")
			continue
		}
		if holdsAny(data, volumes, strings) {
			res.NotEdited = append(res.NotEdited, filepath.Base(name))
		}
	}
	clear(strings)
	return res, nil
}

// holdsAny says whether data (a cache file, maybe damaged) has a line
// whose volume field is one of volumes, or any of the stored strings.
func holdsAny(data []byte, volumes []string, stored [][]byte) bool {
	for _, s := range stored {
		if len(s) > 0 && bytes.Contains(data, s) {
			return true
		}
	}
	for _, v := range volumes {
		field := []byte("\t" + v + "\t")
		if bytes.Contains(data, field) {
			return true
		}
	}
	return false
}
