package cryptocache

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// The shareable vector of bareos-compat.md.
const (
	vecKEK    = "0123456789abcdefFEDCBA9876543210"
	vecPass   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"
	vecStored = "/3Fq8mNgW1+JJsA6eX7+3+Dr3KMNYcFSgHQHUEF+NNoHmQhSVU1S4g"
)

type bareosRec struct {
	volume, key string
	added       int64
}

// bareosFile builds a Bareos crypto cache as an x86-64 (entrySize 280) or
// 32-bit (272) build writes it, stale pointers included.
func bareosFile(entrySize int, recs []bareosRec) []byte {
	ptrs := entrySize - 2*128 - 8
	b := make([]byte, 32, 32+len(recs)*entrySize)
	copy(b, "BAREOS Crypto Cache\n\x00")
	binary.LittleEndian.PutUint32(b[24:], 1)
	binary.LittleEndian.PutUint32(b[28:], uint32(len(recs)))
	for _, r := range recs {
		e := make([]byte, entrySize)
		for i := 0; i < ptrs; i++ {
			e[i] = 0xAB // stale pointer bytes
		}
		copy(e[ptrs:], r.volume)
		copy(e[ptrs+128:], r.key)
		binary.LittleEndian.PutUint64(e[ptrs+256:], uint64(r.added))
		b = append(b, e...)
	}
	return b
}

func TestReadBareosCache(t *testing.T) {
	plain := plainBareos(vecPass)
	recs := []bareosRec{
		{"Full-0007", vecStored, 1700000000},
		{"Full-0001", plain + "=", 1600000000},
		{"Full-0007", vecStored, 1700000100}, // duplicate: the later one is kept
	}
	bk, _ := keys.ParseBareosKEK(vecKEK)
	ring, _ := keys.NewKeyring()
	ring.AddBareos(bk)
	dk, _ := keys.BareosDriveKey([]byte(vecPass))
	fp := keys.Fingerprint(dk)
	for _, tc := range []struct {
		size   int
		layout string
	}{{280, "x86-64 (280-byte entries)"}, {272, "32-bit (272-byte entries)"}} {
		path := filepath.Join(t.TempDir(), "bareos-sd.9103.cryptoc")
		os.WriteFile(path, bareosFile(tc.size, recs), 0o600)
		bc, err := ReadBareosCache(path)
		if err != nil {
			t.Fatal(err)
		}
		if bc.Layout != tc.layout || bc.EntrySize != tc.size || len(bc.Entries) != 2 || len(bc.Duplicates) != 1 || bc.Duplicates[0] != "Full-0007" {
			t.Fatalf("%d: %+v", tc.size, bc)
		}
		e0, e1 := bc.Entries[0], bc.Entries[1]
		if e0.Volume != "Full-0001" || e0.Key.Value != plain || e0.Key.Scheme != keys.SchemeBareos || e0.Key.KEKID != "" ||
			e0.Key.Fingerprint != fp || !e0.Added.Equal(time.Unix(1600000000, 0)) {
			t.Fatalf("entry 0: %v (value ok: %v)", e0, e0.Key.Value == plain)
		}
		if e1.Volume != "Full-0007" || e1.Key.Value != vecStored || e1.Key.Fingerprint != "" || !e1.Added.Equal(time.Unix(1700000100, 0)) {
			t.Fatalf("entry 1: %v", e1)
		}
		// Both give the vector's drive key.
		for _, e := range bc.Entries {
			k, err := ring.Unwrap(e.Key)
			if err != nil || string(k) != string(dk) {
				t.Fatalf("%s: %v", e.Volume, err)
			}
		}
		// And they go into a Tapeward cache as they are.
		c := open(t, filepath.Join(filepath.Dir(path), FileName), newClock())
		if _, err := c.PutMany(bc.Entries, false); err != nil {
			t.Fatal(err)
		}
		if e, err := c.Get("Full-0001"); err != nil || !e.Added.Equal(time.Unix(1600000000, 0)) {
			t.Fatalf("imported: %v %v", e, err)
		}
	}
}

func TestReadBareosCacheErrors(t *testing.T) {
	good := bareosFile(280, []bareosRec{{"V1", vecStored, 1}, {"V2", vecStored, 2}})
	bigEndian := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(bigEndian[24:], 1)
	v2 := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(v2[24:], 2)
	badKey := bareosFile(280, []bareosRec{{"V1", vecStored, 1}, {"V2", vecStored[:50], 2}})
	noNUL := bareosFile(280, []bareosRec{{strings.Repeat("x", 128), vecStored, 1}})
	farFuture := bareosFile(272, []bareosRec{{"V1", vecStored, 1 << 60}})
	cases := []struct {
		name  string
		data  []byte
		entry int
		want  string
	}{
		{"truncated", good[:len(good)-3], 0, "2 entries, which take 560 bytes (280-byte x86-64 entries) or 544 (272-byte 32-bit entries), but 557 bytes follow"},
		{"not a cache", []byte("hello"), 0, "not a Bareos crypto cache"},
		{"tapeward cache", Encode(nil), 0, "Tapeward crypto cache"},
		{"big-endian", bigEndian, 0, "big-endian"},
		{"version", v2, 0, "version 2"},
		{"bad key", badKey, 2, `(volume "V2") the key string must be 54 (wrapped) or 43 (unwrapped) base64 characters for scheme bareos; got 50`},
		{"no NUL", noNUL, 1, "not NUL-terminated"},
		{"far future", farFuture, 1, "the cache keeps times from 1970 to 9999"},
	}
	for _, tc := range cases {
		path := filepath.Join(t.TempDir(), "x.cryptoc")
		os.WriteFile(path, tc.data, 0o600)
		_, err := ReadBareosCache(path)
		var be *BareosError
		if !errors.As(err, &be) || be.Entry != tc.entry || be.Path != path || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if strings.Contains(err.Error(), vecStored[:40]) {
			t.Fatalf("%s: error quotes the stored string: %v", tc.name, err)
		}
	}
}

func FuzzParseBareosCache(f *testing.F) {
	f.Add(bareosFile(280, []bareosRec{{"V1", vecStored, 1}}))
	f.Add(bareosFile(272, []bareosRec{{"V1", plainBareos(vecPass), 1}, {"V2", vecStored, 2}}))
	f.Add([]byte("BAREOS Crypto Cache\n\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		bc, err := ParseBareosCache(data)
		if err != nil {
			if _, ok := err.(*BareosError); !ok {
				t.Fatalf("error is not a *BareosError: %v", err)
			}
			return
		}
		for _, e := range bc.Entries {
			if _, err := normalize(e); err != nil {
				t.Fatalf("accepted an invalid entry: %v", err)
			}
		}
		if _, err := Parse(Encode(bc.Entries)); err != nil {
			t.Fatalf("imported entries do not make a valid cache file: %v", err)
		}
	})
}
