package catalog

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// labelled makes an encrypted (r != nil) or clear volume of storage sd1 in
// status Append, verified at t0.
func (f *fixture) labelled(t *testing.T, volume, barcode string, r *keys.Keyring) keys.StoredKey {
	t.Helper()
	_, sk := f.label(t, volume, barcode, "sd1", 1, r)
	var v *time.Time
	if r != nil {
		v = &t0
	}
	if err := f.s.MarkLabeled(f.ctx, volume, t0, v); err != nil {
		t.Fatal(err)
	}
	return sk
}

func (f *fixture) eventsOf(t *testing.T, volume string, ev KeyEventType) []KeyEvent {
	t.Helper()
	evs, err := f.s.ListKeyEvents(f.ctx, KeyEventFilter{Volume: volume, Event: ev})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// BeginWrite commits data_since before any block is written; from then on
// no key change and no relabel is possible, even with every counter at 0
// (the "written" report lost).
func TestBeginWriteMakesTheKeyStay(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	sk := f.labelled(t, "OFF001", "", r)
	f.clock.Advance(time.Minute)
	since, err := f.s.BeginWrite(f.ctx, "OFF001", "sd1", sk.Fingerprint)
	if err != nil || !since.Equal(t0.Add(time.Minute)) {
		t.Fatalf("BeginWrite = %v, %v; want data_since %v", since, err, t0.Add(time.Minute))
	}
	f.clock.Advance(time.Minute)
	if again, err := f.s.BeginWrite(f.ctx, "OFF001", "sd1", sk.Fingerprint); err != nil || !again.Equal(since) {
		t.Fatalf("second BeginWrite = %v, %v; data_since must stay %v", again, err, since)
	}
	for _, mode := range []EncryptionMode{EncryptRotate, EncryptNo} {
		_, err := f.s.UpdateEncryption(f.ctx, "OFF001", mode, r, "x")
		var hd *HasDataError
		if !errors.As(err, &hd) || hd.DataSince == nil || !hd.DataSince.Equal(since) || hd.Bytes != 0 || !strings.Contains(err.Error(), "data since") {
			t.Fatalf("UpdateEncryption(%s) after BeginWrite = %v, want a HasDataError with data_since", mode, err)
		}
	}
	if err := f.s.BeginRelabel(f.ctx, "OFF001"); err == nil {
		t.Fatal("BeginRelabel of a volume with data_since succeeded")
	}
	if sk2, _ := f.s.VolumeKey(f.ctx, "OFF001", "sd1"); sk2 != sk {
		t.Fatal("the key changed")
	}

	// Refusals: another storage, a drive without the key, a clear
	// volume's drive with a key, a volume not Append.
	var no *NotOwnedError
	if _, err := f.s.BeginWrite(f.ctx, "OFF001", "sd2", sk.Fingerprint); !errors.As(err, &no) {
		t.Fatalf("BeginWrite from sd2 = %v", err)
	}
	var wr *WriteRefusedError
	if _, err := f.s.BeginWrite(f.ctx, "OFF001", "sd1", ""); !errors.As(err, &wr) {
		t.Fatalf("BeginWrite with no key in the drive = %v", err)
	}
	f.labelled(t, "LOC001", "", nil)
	if _, err := f.s.BeginWrite(f.ctx, "LOC001", "sd1", sk.Fingerprint); !errors.As(err, &wr) {
		t.Fatalf("BeginWrite on a clear volume with a key = %v", err)
	}
	if _, err := f.s.BeginWrite(f.ctx, "LOC001", "sd1", ""); err != nil {
		t.Fatalf("BeginWrite on a clear volume = %v", err)
	}
	f.label(t, "OFF002", "", "sd1", 2, r) // Labeling
	if _, err := f.s.BeginWrite(f.ctx, "OFF002", "sd1", sk.Fingerprint); !errors.As(err, &wr) || !strings.Contains(err.Error(), "Labeling") {
		t.Fatalf("BeginWrite on a Labeling volume = %v", err)
	}
}

// A rotate and a BeginWrite racing on the same volume: exactly one wins.
// Either the key changed and the session (with the old key) is refused, or
// the session began and the rotate is refused. Never both.
func TestRotateRacesBeginWrite(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	const n = 12
	olds := map[string]keys.StoredKey{}
	for i := range n {
		v := fmt.Sprintf("RACE%02d", i)
		olds[v] = f.labelled(t, v, "", r)
	}
	for v, old := range olds {
		var (
			wg           sync.WaitGroup
			werr, rotErr error
		)
		wg.Add(2)
		go func() { defer wg.Done(); _, werr = f.s.BeginWrite(f.ctx, v, "sd1", old.Fingerprint) }()
		go func() { defer wg.Done(); _, rotErr = f.s.UpdateEncryption(f.ctx, v, EncryptRotate, r, "x") }()
		wg.Wait()
		var (
			hd *HasDataError
			wr *WriteRefusedError
		)
		switch {
		case werr == nil && errors.As(rotErr, &hd):
		case rotErr == nil && errors.As(werr, &wr):
		default:
			t.Fatalf("%s: BeginWrite = %v, rotate = %v; want exactly one to win", v, werr, rotErr)
		}
	}
}

// RestoreKey (a relabel found data after all): the old key is current
// again, the key of the change goes to the history, data_since is set, and
// nothing is lost.
func TestRestoreKeyAfterRotate(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	old := f.labelled(t, "OFF001", "TW0001L6", r)
	f.clock.Advance(time.Minute)
	m, err := f.s.UpdateEncryption(f.ctx, "OFF001", EncryptRotate, r, "console:admin")
	if err != nil {
		t.Fatal(err)
	}
	newKey, _ := f.s.VolumeKey(f.ctx, "OFF001", "sd1")
	if err := f.s.BeginRelabel(f.ctx, "OFF001"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	got, err := f.s.RestoreKey(f.ctx, "OFF001", old.Fingerprint, "the relabel found data on tape", true, "console:admin")
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := f.s.VolumeKey(f.ctx, "OFF001", "sd1"); cur != old {
		t.Fatalf("current key after restore = %v, want %v", cur, old)
	}
	if got.Status != StatusAppend || got.EncryptionVerifiedAt == nil || !got.EncryptionVerifiedAt.Equal(t0) || got.KeyFingerprint != old.Fingerprint {
		t.Fatalf("after restore: %+v", got)
	}
	hist, err := f.s.KeyHistory(f.ctx, "OFF001")
	if err != nil {
		t.Fatal(err)
	}
	byFP := map[string]HistoryKey{}
	for _, h := range hist {
		byFP[h.Key.Fingerprint] = h
	}
	if h := byFP[newKey.Fingerprint]; h.Key != newKey || h.Reason != "reverted" {
		t.Fatalf("the rotated key is not kept in the history: %+v", hist)
	}
	if h := byFP[old.Fingerprint]; h.Key != old || !h.Current {
		t.Fatalf("the restored key's history row: %+v", hist)
	}
	ev := f.eventsOf(t, "OFF001", EventRestored)
	if len(ev) != 1 || !strings.Contains(ev[0].Detail, old.Fingerprint) || !strings.Contains(ev[0].Detail, newKey.Fingerprint) ||
		!strings.Contains(ev[0].Detail, "found data") || ev[0].KEKID != old.KEKID {
		t.Fatalf("restored events: %+v", ev)
	}
	// data_since is set: the key can no longer change.
	var hd *HasDataError
	if _, err := f.s.UpdateEncryption(f.ctx, "OFF001", EncryptRotate, r, "x"); !errors.As(err, &hd) || hd.DataSince == nil {
		t.Fatalf("rotate after the revert = %v, want a HasDataError", err)
	}
	if m.KeyFingerprint != newKey.Fingerprint {
		t.Fatal("UpdateEncryption returned another key than it stored")
	}
	// A fingerprint the volume never had.
	if _, err := f.s.RestoreKey(f.ctx, "OFF001", "0000000000000000", "x", false, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RestoreKey of an unknown fingerprint = %v", err)
	}

	// encrypt=yes undone: the volume is clear again, the new key kept.
	f.labelled(t, "LOC001", "", nil)
	m, err = f.s.UpdateEncryption(f.ctx, "LOC001", EncryptYes, r, "x")
	if err != nil {
		t.Fatal(err)
	}
	got, err = f.s.RestoreKey(f.ctx, "LOC001", "", "the relabel found data on tape", true, "x")
	if err != nil || got.Encrypted {
		t.Fatalf("restore to clear: %+v, %v", got, err)
	}
	if hist, _ := f.s.KeyHistory(f.ctx, "LOC001"); len(hist) != 1 || hist[0].Key.Fingerprint != m.KeyFingerprint || hist[0].Reason != "reverted" {
		t.Fatalf("history after restoring LOC001 to clear: %+v", hist)
	}
	// A key made current again can be superseded again (its history row is
	// reused, not duplicated).
	f.labelled(t, "OFF003", "", r)
	o3, _ := f.s.VolumeKey(f.ctx, "OFF003", "sd1")
	if _, err := f.s.UpdateEncryption(f.ctx, "OFF003", EncryptRotate, r, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.RestoreKey(f.ctx, "OFF003", o3.Fingerprint, "test", false, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.UpdateEncryption(f.ctx, "OFF003", EncryptRotate, r, "x"); err != nil {
		t.Fatalf("rotating a restored key again: %v", err)
	}
	if hist, _ := f.s.KeyHistory(f.ctx, "OFF003"); len(hist) != 2 {
		t.Fatalf("history of OFF003 = %+v, want its two earlier keys", hist)
	}
}

// CheckLabel: a label matching the current key gets it; a label naming a
// history key gets that key, said so; every mismatch names both sides.
func TestCheckLabel(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	old := f.labelled(t, "OFF001", "TW0001L6", r)
	lv := LabelView{Volume: "OFF001", Barcode: "TW0001L6", Encrypted: true, KEKID: old.KEKID, Fingerprint: old.Fingerprint, Storage: "sd1", Pool: "Offsite"}
	lk, err := f.s.CheckLabel(f.ctx, "sd1", lv)
	if err != nil || lk.Key != old || lk.Source != SourceCurrent || !lk.Encrypted || lk.Barcode != "TW0001L6" || lk.Pool != "Offsite" {
		t.Fatalf("CheckLabel(current) = %+v, %v", lk, err)
	}
	if _, err := f.s.UpdateEncryption(f.ctx, "OFF001", EncryptRotate, r, "x"); err != nil {
		t.Fatal(err)
	}
	cur, _ := f.s.VolumeKey(f.ctx, "OFF001", "sd1")
	lk, err = f.s.CheckLabel(f.ctx, "sd1", lv)
	if err != nil || lk.Key != old || !strings.HasPrefix(lk.Source, "history: superseded") || !strings.Contains(lk.Source, "rotated") {
		t.Fatalf("CheckLabel(history key) = %+v, %v", lk, err)
	}
	f.labelled(t, "LOC001", "TW0002L6", nil)
	if lk, err := f.s.CheckLabel(f.ctx, "sd1", LabelView{Volume: "LOC001", Barcode: "TW0002L6"}); err != nil || lk.Encrypted {
		t.Fatalf("CheckLabel(clear) = %+v, %v", lk, err)
	}

	for _, c := range []struct {
		name string
		lv   LabelView
		want []string
	}{
		{"forged clear label", LabelView{Volume: "OFF001", Barcode: "TW0001L6", Storage: "sd1"},
			[]string{"encrypted: the label says no", "catalog says yes (key " + cur.Fingerprint}},
		{"unknown key", LabelView{Volume: "OFF001", Barcode: "TW0001L6", Encrypted: true, KEKID: old.KEKID, Fingerprint: "0123456789abcdef"},
			[]string{"the label names key 0123456789abcdef", "catalog's key is " + cur.Fingerprint}},
		{"other barcode", LabelView{Volume: "OFF001", Barcode: "XX0009L6", Encrypted: true, Fingerprint: cur.Fingerprint},
			[]string{`the cartridge is "XX0009L6"`, `"TW0001L6"`}},
		{"other storage", LabelView{Volume: "OFF001", Encrypted: true, Fingerprint: cur.Fingerprint, Storage: "sd9"},
			[]string{`written by "sd9"`, `belongs to "sd1"`}},
		{"encrypted label on a clear volume", LabelView{Volume: "LOC001", Encrypted: true, Fingerprint: old.Fingerprint},
			[]string{"the label says yes (key " + old.Fingerprint, "the catalog says no"}},
	} {
		_, err := f.s.CheckLabel(f.ctx, "sd1", c.lv)
		var lm *LabelMismatchError
		if !errors.As(err, &lm) {
			t.Fatalf("%s: CheckLabel = %v, want a LabelMismatchError", c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", c.name, err, w)
			}
		}
		checkNoSecrets(t, c.name, err, old.Value, cur.Value)
	}
	var no *NotOwnedError
	if _, err := f.s.CheckLabel(f.ctx, "sd2", lv); !errors.As(err, &no) {
		t.Fatalf("CheckLabel by sd2 = %v", err)
	}
	if _, err := f.s.CheckLabel(f.ctx, "sd1", LabelView{Volume: "NOPE"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("CheckLabel(unknown volume) = %v", err)
	}
}

// A director that stopped during a label left rows in Labeling: at start-up
// they become Error with the reason and an "interrupted" event, keep their
// key, and can be labelled again.
func TestInterruptLabeling(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	_, sk := f.label(t, "OFF002", "", "sd1", 2, r)
	f.label(t, "OFF001", "", "sd1", 1, r)
	f.labelled(t, "OFF003", "", r)
	got, err := f.s.InterruptLabeling(f.ctx, "director")
	if err != nil || fmt.Sprint(got) != "[OFF001 OFF002]" {
		t.Fatalf("InterruptLabeling = %v, %v", got, err)
	}
	m, _ := f.s.GetMedia(f.ctx, "OFF002")
	if m.Status != StatusError || m.ErrorReason != InterruptedReason || m.KeyFingerprint != sk.Fingerprint {
		t.Fatalf("OFF002 after InterruptLabeling: %+v", m)
	}
	if m, _ := f.s.GetMedia(f.ctx, "OFF003"); m.Status != StatusAppend {
		t.Fatalf("an Append volume was touched: %+v", m)
	}
	ev := f.eventsOf(t, "OFF002", EventInterrupted)
	if len(ev) != 1 || !strings.Contains(ev[0].Detail, sk.Fingerprint) || ev[0].KEKID != sk.KEKID {
		t.Fatalf("interrupted events: %+v", ev)
	}
	if again, err := f.s.InterruptLabeling(f.ctx, "director"); err != nil || len(again) != 0 {
		t.Fatalf("second InterruptLabeling = %v, %v", again, err)
	}
	// One volume: only that one, and only if it is in Labeling.
	f.label(t, "OFF004", "", "sd1", 4, r)
	f.label(t, "OFF005", "", "sd1", 5, r)
	if got, err := f.s.InterruptLabeling(f.ctx, "director", "OFF004", "OFF003"); err != nil || fmt.Sprint(got) != "[OFF004]" {
		t.Fatalf("InterruptLabeling(OFF004, OFF003) = %v, %v", got, err)
	}
	if m, _ := f.s.GetMedia(f.ctx, "OFF005"); m.Status != StatusLabeling {
		t.Fatalf("OFF005 was not named but changed: %+v", m)
	}
	if err := f.s.BeginRelabel(f.ctx, "OFF002"); err != nil {
		t.Fatalf("relabel after the interruption: %v", err)
	}
	if cur, _ := f.s.VolumeKey(f.ctx, "OFF002", "sd1"); cur != sk {
		t.Fatal("the key changed")
	}
}
