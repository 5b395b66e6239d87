package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tapeward/tapeward/storaged/cryptocache"
	"github.com/tapeward/tapeward/tools/lib/keys"
)

// After a rekey, verify with only the new KEK passes when every key of a
// volume (fingerprint) unwraps from some line: the old wrappings are
// reported as superseded. A key held only under a KEK not given fails,
// naming the volume, its fingerprint and the KEK it needs.
func TestCacheVerifyAfterRekey(t *testing.T) {
	dir := t.TempDir()
	oldPath, oldID, _ := newKEK(t, dir, "old.key")
	newPath, newID, _ := newKEK(t, dir, "new.key")
	oldK, err := keys.LoadKEKFile(oldPath, keys.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newK, err := keys.LoadKEKFile(newPath, keys.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldRing, _ := keys.NewKeyring(oldK)
	rotated, _ := oldRing.WrapNew() // a key VOL1 had before (data on tape)
	current, _ := oldRing.WrapNew()
	rewrap := func(sk keys.StoredKey) keys.StoredKey {
		k, err := oldRing.Unwrap(sk)
		if err != nil {
			t.Fatal(err)
		}
		defer clear(k)
		nk, err := keys.WrapV1(newK, k)
		if err != nil {
			t.Fatal(err)
		}
		return nk
	}
	path := filepath.Join(dir, cryptocache.FileName)
	c, err := cryptocache.Open(path, cryptocache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(cryptocache.Entry{Volume: "VOL1", Key: rotated}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(cryptocache.Entry{Volume: "VOL1", Key: current}); err != nil {
		t.Fatal(err)
	}
	// The rekey push of the current key only: the rotated key is still
	// only under the old KEK.
	if _, err := c.Push([]cryptocache.PushKey{{Volume: "VOL1", Key: rewrap(current), Current: true}}); err != nil {
		t.Fatal(err)
	}
	var outs cacheOutputs
	v := outs.add(tk(t, dir, "", "cache", "verify", cryptocache.FileName, "--kek", "new.key"))
	if v.code != 1 || !strings.Contains(v.stdout, "FAIL  VOL1  needs KEK "+oldID) || !strings.Contains(v.stdout, "key "+rotated.Fingerprint) ||
		!strings.Contains(v.stderr, "VOL1 (needs KEK "+oldID+"): key "+rotated.Fingerprint) || strings.Contains(v.stderr, current.Fingerprint) {
		t.Fatalf("verify with the rotated key only under the old KEK: %+v", v)
	}
	// The full push: the rotated key rewrapped too.
	if _, err := c.Push([]cryptocache.PushKey{{Volume: "VOL1", Key: rewrap(current), Current: true}, {Volume: "VOL1", Key: rewrap(rotated)}}); err != nil {
		t.Fatal(err)
	}
	v = outs.add(tk(t, dir, "", "cache", "verify", cryptocache.FileName, "--kek", "new.key"))
	if v.code != 0 || !strings.Contains(v.stdout, "ok    VOL1  v1  kek "+newID) || !strings.Contains(v.stdout, "all 1 entries unwrap") ||
		strings.Count(v.stdout, "older wrapping under KEK "+oldID+", superseded") != 2 {
		t.Fatalf("verify with the new KEK after the full push: %+v", v)
	}
	// With only the old KEK, the old lines still work (a DR site that has
	// only the old KEK).
	v = outs.add(tk(t, dir, "", "cache", "verify", cryptocache.FileName, "--kek", "old.key"))
	if v.code != 0 || !strings.Contains(v.stdout, "kek "+newID+" not given, but key "+current.Fingerprint+" unwraps from an earlier line under KEK "+oldID) {
		t.Fatalf("verify with the old KEK: %+v", v)
	}
	outs.noSecrets(t, rotated.Value, current.Value, rewrap(current).Value)
}
