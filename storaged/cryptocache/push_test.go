package cryptocache

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// rewrapUnder unwraps sk with fx's ring and wraps the same drive key under
// kek (what a rekey does).
func (f *fixture) rewrapUnder(t testing.TB, sk keys.StoredKey, kek *keys.KEK) keys.StoredKey {
	t.Helper()
	k, err := f.ring.Unwrap(sk)
	if err != nil {
		t.Fatal(err)
	}
	defer clear(k)
	nk, err := keys.WrapV1(kek, k)
	if err != nil {
		t.Fatal(err)
	}
	f.secret = append(f.secret, nk.Value)
	return nk
}

// After a rekey the director pushes a volume's current key and its history
// keys, all under the new KEK: the old current string moves to the history,
// a history key is added once, nothing is removed, and a second identical
// push changes nothing.
func TestPushCurrentAndHistory(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	path := filepath.Join(t.TempDir(), FileName)
	c := open(t, path, clk)
	kek2, err := keys.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}

	old, cur := fx.v1(t), fx.v1(t) // VOL1 had key old (rotated), now cur
	mustPut(t, c, Entry{Volume: "VOL1", Key: old}, Added)
	clk.advance(time.Hour)
	mustPut(t, c, Entry{Volume: "VOL1", Key: cur}, Replaced)
	other := fx.v1(t)
	mustPut(t, c, Entry{Volume: "VOL2", Key: other}, Added)
	clk.advance(time.Hour)

	cur2, old2, other2 := fx.rewrapUnder(t, cur, kek2), fx.rewrapUnder(t, old, kek2), fx.rewrapUnder(t, other, kek2)
	push := []PushKey{
		{Volume: "VOL1", Key: old2}, // history first: Push applies current keys first anyway
		{Volume: "VOL1", Key: cur2, Current: true},
		{Volume: "VOL2", Key: other2, Current: true},
		{Volume: "VOL2", Key: other}, // a history key the cache already holds (as current before this push)
	}
	res, err := c.Push(push)
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	if want := []PutResult{Added, Replaced, Replaced, Unchanged}; !reflect.DeepEqual(res, want) {
		t.Fatalf("Push results = %v, want %v", res, want)
	}
	checkMode(t, path)
	e, err := c.Get("VOL1")
	if err != nil {
		t.Fatal(err)
	}
	if e.Key != cur2 {
		t.Fatalf("VOL1 current = %v, want %v", e.Key, cur2)
	}
	var hist []keys.StoredKey
	for _, h := range e.History {
		hist = append(hist, h.Key)
	}
	if want := []keys.StoredKey{old, cur, old2}; !reflect.DeepEqual(hist, want) {
		t.Fatalf("VOL1 history = %v, want %v (nothing removed, the pushed history key last)", hist, want)
	}
	now := clk.now().Truncate(time.Second)
	if h := e.History[2]; !h.Added.Equal(now) || !h.Replaced.Equal(now) {
		t.Fatalf("pushed history line times = %v, want added = replaced = %v", h, now)
	}
	// The file is a valid v1 cache: parse and re-encode give the same bytes.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := Parse(data)
	if err != nil {
		t.Fatalf("the pushed file does not parse: %v", err)
	}
	if string(Encode(entries)) != string(data) {
		t.Fatal("the pushed file is not canonical")
	}

	// The same push again: nothing new, the file is not rewritten.
	clk.advance(time.Hour)
	res, err = c.Push(push)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r != Unchanged {
			t.Fatalf("second push: key %d is %v, want unchanged", i, r)
		}
	}
	again, _ := os.ReadFile(path)
	if string(again) != string(data) {
		t.Fatal("an identical push rewrote the file")
	}

	// KEK counts: VOL1's keys (two fingerprints) are each wrapped under
	// both KEKs; VOL2's one key too. Nothing is sole under the old KEK.
	counts, err := c.KEKCounts()
	if err != nil {
		t.Fatal(err)
	}
	want := []KEKCount{{KEKID: fx.kekID, Keys: 3}, {KEKID: kek2.ID(), Keys: 3}}
	if kek2.ID() < fx.kekID {
		want[0], want[1] = want[1], want[0]
	}
	if !reflect.DeepEqual(counts, want) {
		t.Fatalf("KEKCounts = %+v, want %+v", counts, want)
	}
}

// A push is all or nothing, and refuses a history key for a volume the
// cache does not hold (an old line needs the volume's key line), a current
// key given twice, and an invalid key, without quoting stored strings.
func TestPushRefusals(t *testing.T) {
	fx := newFixture(t)
	clk := newClock()
	path := filepath.Join(t.TempDir(), FileName)
	c := open(t, path, clk)
	a := fx.v1(t)
	mustPut(t, c, Entry{Volume: "VOL1", Key: a}, Added)
	before, _ := os.ReadFile(path)
	b, h := fx.v1(t), fx.v1(t)
	for _, tc := range []struct {
		name  string
		push  []PushKey
		field string
	}{
		{"history of an unknown volume", []PushKey{{Volume: "VOL1", Key: b, Current: true}, {Volume: "VOL9", Key: h}}, "history key"},
		{"current twice", []PushKey{{Volume: "VOL1", Key: b, Current: true}, {Volume: "VOL1", Key: h, Current: true}}, "current key"},
		{"bad stored key", []PushKey{{Volume: "VOL1", Key: b, Current: true}, {Volume: "VOL1", Key: keys.StoredKey{Scheme: keys.SchemeV1, KEKID: fx.kekID, Value: "short"}}}, "stored key"},
	} {
		_, err := c.Push(tc.push)
		var ie *InvalidEntryError
		if !errors.As(err, &ie) || ie.Field != tc.field {
			t.Fatalf("%s: err = %v, want *InvalidEntryError on %q", tc.name, err, tc.field)
		}
		fx.noSecrets(t, err.Error())
		if after, _ := os.ReadFile(path); string(after) != string(before) {
			t.Fatalf("%s: the refused push changed the file", tc.name)
		}
	}
	// The same stored string under another fingerprint: a conflict.
	bad := a
	bad.Fingerprint = "0000000000000000"
	_, err := c.Push([]PushKey{{Volume: "VOL1", Key: bad}})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Field != "fingerprint" {
		t.Fatalf("conflicting history key: err = %v, want *ConflictError on the fingerprint", err)
	}
}

// Sole counts keys (fingerprints of a volume) whose only wrappings are
// under one KEK; unwrapped bareos strings need no KEK.
func TestKEKCounts(t *testing.T) {
	fx := newFixture(t)
	kek2, _ := keys.GenerateKEK()
	a, b := fx.v1(t), fx.v1(t)
	a2 := fx.rewrapUnder(t, a, kek2)
	plain := fx.bareos(t, false)
	wrappedBareos := fx.bareos(t, true)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	entries := []Entry{
		// VOL1: key a, now under kek2, the old wrapping in the history; an
		// older key b only under the first KEK.
		{Volume: "VOL1", Key: a2, Added: t0, History: []Superseded{{Key: b, Added: t0, Replaced: t0}, {Key: a, Added: t0, Replaced: t0}}},
		{Volume: "VOL2", Key: plain, Added: t0},
		{Volume: "VOL3", Key: wrappedBareos, Added: t0},
		// A string without a fingerprint counts on its own.
		{Volume: "VOL4", Key: keys.StoredKey{Scheme: a.Scheme, KEKID: a.KEKID, Value: a.Value}, Added: t0},
	}
	got := KEKCounts(entries)
	want := map[string]KEKCount{
		fx.kekID:   {KEKID: fx.kekID, Keys: 3, Sole: 2},   // b, and VOL4's string
		kek2.ID():  {KEKID: kek2.ID(), Keys: 1, Sole: 0},  // a is also under the first KEK
		fx.bk.ID(): {KEKID: fx.bk.ID(), Keys: 1, Sole: 1}, // VOL3
	}
	if len(got) != len(want) {
		t.Fatalf("KEKCounts = %+v, want %+v", got, want)
	}
	for i, g := range got {
		if i > 0 && got[i-1].KEKID >= g.KEKID {
			t.Fatalf("KEKCounts not sorted by id: %+v", got)
		}
		if want[g.KEKID] != g {
			t.Fatalf("KEKCounts: %+v, want %+v", g, want[g.KEKID])
		}
	}
}
