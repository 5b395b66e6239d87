package cryptocache

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// PushKey is one stored key the director pushes into the cache (after a
// rekey): the volume's current key, or a key from the volume's history
// (Current false), which the tape may still hold data under.
type PushKey struct {
	Volume  string
	Key     keys.StoredKey
	Current bool
}

// String names the volume, scheme, KEK id and fingerprint only.
func (p PushKey) String() string {
	kind := "history"
	if p.Current {
		kind = "current"
	}
	return fmt.Sprintf("PushKey{volume=%s %s %s}", safeQuote(p.Volume), kind, p.Key)
}

// Push puts every key into the cache in ONE atomic update (all or
// nothing), and never removes a stored string:
//
//   - a current key is what Put does: a different stored string replaces
//     the volume's current one, which moves to the history;
//   - a history key is added as an `old` line (added = replaced = now,
//     after the volume's other history lines) unless the volume's entry
//     already holds that stored string, as its current key or in its
//     history. The volume must have an entry (or a current key earlier
//     in keys): an `old` line belongs to a volume's `key` line.
//
// Current keys are applied before history keys, so that a push of a
// volume's current and history keys in any order gives the same file. A
// volume may have one current key in keys. The same stored string with
// another KEK id or fingerprint is a *ConflictError; an invalid key an
// *InvalidEntryError (nothing is written then). The results follow keys:
// Added (new volume), Replaced (new current key), Updated (KEK id or
// fingerprint filled in), Unchanged (already held); a history key added
// is Added.
func (c *Cache) Push(pks []PushKey) ([]PutResult, error) {
	now := normTime(c.clock())
	norm := make([]PushKey, len(pks))
	current := map[string]bool{}
	for i, p := range pks {
		if why := checkVolume(p.Volume); why != "" {
			return nil, &InvalidEntryError{Volume: p.Volume, Field: "volume name", Reason: why}
		}
		sk, field, why := normalizeKey(p.Key)
		if why != "" {
			return nil, &InvalidEntryError{Volume: p.Volume, Field: field, Reason: why}
		}
		if p.Current {
			if current[p.Volume] {
				return nil, &InvalidEntryError{Volume: p.Volume, Field: "current key", Reason: "is given twice"}
			}
			current[p.Volume] = true
		}
		norm[i] = PushKey{Volume: p.Volume, Key: sk, Current: p.Current}
	}
	order := make([]int, len(norm))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		// current keys first
		return cmp.Compare(boolInt(!norm[a].Current), boolInt(!norm[b].Current))
	})
	return c.apply(len(norm), order, func(m map[string]Entry, i int) (PutResult, logFn, error) {
		p := norm[i]
		if p.Current {
			return merge(m, Entry{Volume: p.Volume, Key: p.Key, Added: now}, now, true)
		}
		r, err := addHistory(m, p, now, c.path)
		return r, nil, err
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// addHistory adds p (a history key) to its volume's entry in m.
func addHistory(m map[string]Entry, p PushKey, now time.Time, path string) (PutResult, error) {
	e, ok := m[p.Volume]
	if !ok {
		return Unchanged, &InvalidEntryError{Volume: p.Volume, Field: "history key",
			Reason: "the volume has no entry in crypto cache " + path + "; push its current key with it"}
	}
	same := func(sk keys.StoredKey) (bool, error) {
		if sk.Scheme != p.Key.Scheme || sk.Value != p.Key.Value {
			return false, nil
		}
		for _, f := range []struct{ name, have, got string }{{"kek id", sk.KEKID, p.Key.KEKID}, {"fingerprint", sk.Fingerprint, p.Key.Fingerprint}} {
			if f.have != "" && f.got != "" && f.have != f.got {
				return true, &ConflictError{Volume: p.Volume, Field: f.name, Have: f.have, Got: f.got}
			}
		}
		return true, nil
	}
	if ok, err := same(e.Key); ok || err != nil {
		return Unchanged, err
	}
	for _, h := range e.History {
		if ok, err := same(h.Key); ok || err != nil {
			return Unchanged, err
		}
	}
	e.History = append(slices.Clone(e.History), Superseded{Key: p.Key, Added: now, Replaced: now})
	m[p.Volume] = e
	return Added, nil
}

// KEKCount is how many stored keys of a cache are wrapped under one KEK,
// and for how many keys that KEK is the only wrapping the cache holds.
type KEKCount struct {
	KEKID string
	// Keys counts the stored strings (current and history lines) wrapped
	// under the KEK.
	Keys int
	// Sole counts the keys (distinct fingerprints of a volume; a stored
	// string without a fingerprint counts alone) whose every wrapping in
	// the cache is under this KEK: without it, they cannot be unwrapped
	// from the cache.
	Sole int
}

// KEKCounts counts the entries' stored strings by KEK id, sorted by id.
// Unwrapped bareos strings (no KEK) need no KEK and are not counted; a key
// held unwrapped is sole under no KEK.
func KEKCounts(entries []Entry) []KEKCount {
	counts := map[string]*KEKCount{}
	for _, e := range entries {
		// wrappings of each key of this volume, by fingerprint
		byKey := map[string]map[string]bool{}
		add := func(sk keys.StoredKey) {
			id := sk.Fingerprint
			if id == "" {
				id = "stored:" + string(sk.Scheme) + ":" + sk.Value
			}
			if byKey[id] == nil {
				byKey[id] = map[string]bool{}
			}
			byKey[id][sk.KEKID] = true
			if sk.KEKID == "" {
				return
			}
			if counts[sk.KEKID] == nil {
				counts[sk.KEKID] = &KEKCount{KEKID: sk.KEKID}
			}
			counts[sk.KEKID].Keys++
		}
		add(e.Key)
		for _, h := range e.History {
			add(h.Key)
		}
		for _, keks := range byKey {
			if len(keks) != 1 {
				continue
			}
			for id := range keks {
				if id != "" {
					counts[id].Sole++
				}
			}
		}
	}
	out := make([]KEKCount, 0, len(counts))
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		out = append(out, *counts[id])
	}
	return out
}

// KEKCounts counts the cache's stored strings by KEK id (see KEKCounts).
func (c *Cache) KEKCounts() ([]KEKCount, error) {
	es, err := c.List()
	if err != nil {
		return nil, err
	}
	return KEKCounts(es), nil
}
