package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

func TestVolumeKeyOwnership(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	_, sk := f.label(t, "OFF001", "", "sd1", 1, r)
	_, orphanKey := f.label(t, "OFF002", "", "", NoSlot, r)
	f.label(t, "LOC001", "", "sd1", 2, nil)

	got, err := f.s.VolumeKey(f.ctx, "OFF001", "sd1")
	if err != nil {
		t.Fatal(err)
	}
	if got != sk {
		t.Fatalf("VolumeKey = %v, want %v (values equal: %v)", got, sk, got.Value == sk.Value)
	}
	dk, err := r.Unwrap(got)
	if err != nil || keys.Fingerprint(dk) != sk.Fingerprint {
		t.Fatalf("fetched key does not unwrap to its fingerprint: %v", err)
	}

	for _, c := range []struct{ volume, storage, owner string }{
		{"OFF001", "sd2", "sd1"},
		{"OFF001", "", "sd1"},
		{"OFF002", "sd1", ""}, // a volume with no storage belongs to nobody
		{"OFF002", "", ""},
		{"LOC001", "sd2", "sd1"}, // a foreign storage does not learn that the volume is clear
	} {
		_, err := f.s.VolumeKey(f.ctx, c.volume, c.storage)
		var no *NotOwnedError
		if !errors.As(err, &no) || no.Volume != c.volume || no.Storage != c.storage || no.Owner != c.owner {
			t.Fatalf("VolumeKey(%s, %q) = %v, want *NotOwnedError owner %q", c.volume, c.storage, err, c.owner)
		}
		if errors.Is(err, ErrNotEncrypted) || errors.Is(err, ErrNotFound) {
			t.Fatalf("NotOwnedError matches another sentinel: %v", err)
		}
		checkNoSecrets(t, "VolumeKey", err, sk.Value, orphanKey.Value, sk.Fingerprint, orphanKey.Fingerprint)
		if c.owner != "" && strings.Contains(err.Error(), c.owner) {
			t.Fatalf("the refusal names the owner: %v", err)
		}
	}
	if _, err := f.s.VolumeKey(f.ctx, "NOPE", "sd1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("VolumeKey(unknown) = %v", err)
	}
	var ne *NotEncryptedError
	if _, err := f.s.VolumeKey(f.ctx, "LOC001", "sd1"); !errors.As(err, &ne) || !errors.Is(err, ErrNotEncrypted) || ne.Volume != "LOC001" {
		t.Fatalf("VolumeKey(clear) = %v", err)
	}
}

// addJobSession records that a job wrote a tape file on volume (no bytes
// counted on the media row: only the job_media row says it holds data).
func (f *fixture) addJobSession(t *testing.T, volume string) {
	t.Helper()
	_, err := f.s.Pool().Exec(f.ctx, `
		WITH j AS (INSERT INTO jobs (name, job_type) VALUES ('nightly', 'Backup') RETURNING id)
		INSERT INTO job_media (job_id, media_id, volume_index, part, tape_file, first_block)
		SELECT j.id, m.id, 1, 1, 2, 0 FROM j, media m WHERE m.volume_name = $1`, volume)
	if err != nil {
		t.Fatal(err)
	}
}

func TestUpdateEncryption(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	ctx := f.ctx
	labeled := func(volume string, rr *keys.Keyring) keys.StoredKey {
		_, sk := f.label(t, volume, "", "sd1", NoSlot, rr)
		var v *time.Time
		if rr != nil {
			v = &t0
		}
		if err := f.s.MarkLabeled(ctx, volume, t0, v); err != nil {
			t.Fatal(err)
		}
		return sk
	}
	events := func(volume string) []KeyEvent {
		evs, err := f.s.ListKeyEvents(ctx, KeyEventFilter{Volume: volume})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}

	// yes: a clear volume without data gets a key.
	labeled("LOC001", nil)
	f.clock.Advance(time.Minute)
	m, err := f.s.UpdateEncryption(ctx, "LOC001", EncryptYes, r, "console:admin")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Encrypted || m.KEKID != k.ID() || m.KeyFingerprint == "" || m.EncryptionVerifiedAt != nil {
		t.Fatalf("after encrypt=yes: %+v", m)
	}
	sk, err := f.s.VolumeKey(ctx, "LOC001", "sd1")
	if err != nil {
		t.Fatal(err)
	}
	if dk, err := r.Unwrap(sk); err != nil || keys.Fingerprint(dk) != m.KeyFingerprint {
		t.Fatalf("new key does not unwrap: %v", err)
	}
	evs := events("LOC001")
	if len(evs) != 1 || evs[0].Event != EventGenerated || evs[0].Detail != m.KeyFingerprint || evs[0].Actor != "console:admin" ||
		evs[0].KEKID != k.ID() || !evs[0].At.Equal(t0.Add(time.Minute)) {
		t.Fatalf("events after encrypt=yes: %+v", evs)
	}
	// yes again: nothing changes, no event.
	if m2, err := f.s.UpdateEncryption(ctx, "LOC001", EncryptYes, r, "console:admin"); err != nil || m2.KeyFingerprint != m.KeyFingerprint {
		t.Fatalf("encrypt=yes twice: %v (fingerprint %s → %s)", err, m.KeyFingerprint, m2.KeyFingerprint)
	}
	if n := len(events("LOC001")); n != 1 {
		t.Fatalf("encrypt=yes twice added events: %d", n)
	}

	// rotate: a new key, event "rotated" old -> new; verification cleared.
	old := labeled("OFF001", r)
	m, err = f.s.UpdateEncryption(ctx, "OFF001", EncryptRotate, r, "console:admin")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Encrypted || m.KeyFingerprint == old.Fingerprint || m.EncryptionVerifiedAt != nil {
		t.Fatalf("after rotate: %+v", m)
	}
	nk, _ := f.s.VolumeKey(ctx, "OFF001", "sd1")
	if nk.Value == old.Value {
		t.Fatal("rotate kept the stored key")
	}
	evs = events("OFF001")
	if len(evs) != 3 || evs[0].Event != EventRotated || evs[0].Detail != old.Fingerprint+" -> "+m.KeyFingerprint ||
		evs[1].Event != EventSuperseded || !strings.Contains(evs[1].Detail, old.Fingerprint) || !strings.Contains(evs[1].Detail, m.KeyFingerprint) {
		t.Fatalf("events after rotate (newest first): %+v", evs)
	}
	rotated := m.KeyFingerprint

	// no: the key moves to the history of a volume without data.
	m, err = f.s.UpdateEncryption(ctx, "OFF001", EncryptNo, nil, "console:admin")
	if err != nil {
		t.Fatal(err)
	}
	row := readKeyRow(t, f.s.Pool(), "OFF001")
	if m.Encrypted || row.Encrypted || row.Value != nil || row.KEKID != nil || row.Finger != nil || row.VerifiedAt != nil {
		t.Fatalf("after encrypt=no: media %+v, row %+v", m, row)
	}
	evs = events("OFF001")
	if len(evs) != 5 || evs[0].Event != EventRotated || !strings.Contains(evs[0].Detail, "encryption removed") ||
		evs[1].Event != EventSuperseded || !strings.Contains(evs[1].Detail, rotated) {
		t.Fatalf("events after encrypt=no: %+v", evs)
	}
	// Both keys the volume had are in its history, wrapped as they were.
	hist, err := f.s.KeyHistory(ctx, "OFF001")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Key != old || hist[0].Reason != "rotated" || hist[1].Key != nk || hist[1].Reason != "encryption removed" ||
		hist[0].HadData || hist[1].ValidFrom == nil || hist[0].Current {
		t.Fatalf("key history of OFF001 = %+v", hist)
	}
	if _, err := f.s.UpdateEncryption(ctx, "OFF001", EncryptNo, nil, "x"); err != nil {
		t.Fatalf("encrypt=no on a clear volume: %v", err)
	}
	var ne *NotEncryptedError
	if _, err := f.s.UpdateEncryption(ctx, "OFF001", EncryptRotate, r, "x"); !errors.As(err, &ne) {
		t.Fatalf("rotate a clear volume: %v", err)
	}

	// Volumes with data are refused, and stay as they were.
	withBytes := labeled("OFF002", r)
	if err := f.s.RecordWritten(ctx, "OFF002", 1<<20, 1); err != nil {
		t.Fatal(err)
	}
	withJob := labeled("OFF003", r)
	f.addJobSession(t, "OFF003")
	labeled("LOC002", nil)
	if err := f.s.RecordWritten(ctx, "LOC002", 512, 1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		volume string
		mode   EncryptionMode
		key    keys.StoredKey
	}{
		{"OFF002", EncryptRotate, withBytes}, {"OFF002", EncryptNo, withBytes},
		{"OFF003", EncryptRotate, withJob}, {"OFF003", EncryptNo, withJob},
		{"LOC002", EncryptYes, keys.StoredKey{}},
	} {
		before := readKeyRow(t, f.s.Pool(), c.volume)
		nEvents := len(events(c.volume))
		_, err := f.s.UpdateEncryption(ctx, c.volume, c.mode, r, "x")
		var hd *HasDataError
		if !errors.As(err, &hd) || hd.Volume != c.volume {
			t.Fatalf("UpdateEncryption(%s, %s) on a volume with data = %v", c.volume, c.mode, err)
		}
		checkNoSecrets(t, "HasDataError", err, c.key.Value)
		after := readKeyRow(t, f.s.Pool(), c.volume)
		if fmt.Sprint(deref(before.Value), before.Encrypted) != fmt.Sprint(deref(after.Value), after.Encrypted) || len(events(c.volume)) != nEvents {
			t.Fatalf("refused UpdateEncryption(%s, %s) changed the row or the log", c.volume, c.mode)
		}
	}
	var hd *HasDataError
	_, err = f.s.UpdateEncryption(ctx, "OFF003", EncryptRotate, r, "x")
	if !errors.As(err, &hd) || hd.JobSessions != 1 || hd.Bytes != 0 {
		t.Fatalf("HasDataError for a job session: %+v", hd)
	}

	// Labeling volumes, unknown volumes, bad modes, missing keyrings.
	f.label(t, "OFF004", "", "sd1", NoSlot, r)
	var se *StateError
	if _, err := f.s.UpdateEncryption(ctx, "OFF004", EncryptRotate, r, "x"); !errors.As(err, &se) {
		t.Fatalf("rotate while Labeling: %v", err)
	}
	if _, err := f.s.UpdateEncryption(ctx, "NOPE", EncryptRotate, r, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown volume: %v", err)
	}
	var iv *InvalidError
	if _, err := f.s.UpdateEncryption(ctx, "OFF002", "maybe", r, "x"); !errors.As(err, &iv) {
		t.Fatalf("bad mode: %v", err)
	}
	if _, err := f.s.UpdateEncryption(ctx, "LOC001", EncryptRotate, nil, "x"); !errors.As(err, &iv) {
		t.Fatalf("rotate without a keyring: %v", err)
	}
	if m, err := ParseEncryptionMode("rotate"); err != nil || m != EncryptRotate {
		t.Fatalf("ParseEncryptionMode = %v, %v", m, err)
	}
}

// snapshot is every media row's key columns, for before/after comparisons.
func (f *fixture) snapshot(t *testing.T) string {
	t.Helper()
	var s string
	err := f.s.Pool().QueryRow(f.ctx, `SELECT coalesce(string_agg(concat_ws('|', volume_name, key_string, key_scheme, kek_id, key_fingerprint, updated_at), E'\n' ORDER BY id), '') FROM media`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) countEvents(t *testing.T, event KeyEventType) int {
	t.Helper()
	var n int
	if err := f.s.Pool().QueryRow(f.ctx, `SELECT count(*) FROM key_events WHERE event = $1`, string(event)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRekeyTwoKEKs(t *testing.T) {
	f := newFixture(t)
	kk := newKEKs(t, 2)
	oldK, newK := kk[0], kk[1]
	oldOnly := ring(t, oldK, oldK)
	before := map[string]keys.StoredKey{}
	for i := range 5 {
		v := fmt.Sprintf("OFF%03d", i)
		_, before[v] = f.label(t, v, "", "sd1", i, oldOnly)
	}
	f.label(t, "LOC001", "", "sd1", 9, nil)

	both := ring(t, newK, oldK, newK)
	f.clock.Advance(time.Hour)
	res, err := f.s.Rekey(f.ctx, both, "tapekey")
	if err != nil {
		t.Fatal(err)
	}
	if res.Rewrapped != 5 || res.AlreadyCurrent != 0 {
		t.Fatalf("Rekey = %+v, want 5 rewrapped", res)
	}
	newOnly := ring(t, newK, newK)
	for v, old := range before {
		got, err := f.s.VolumeKey(f.ctx, v, "sd1")
		if err != nil {
			t.Fatal(err)
		}
		if got.KEKID != newK.ID() || got.Fingerprint != old.Fingerprint || got.Scheme != keys.SchemeV1 || got.Value == old.Value {
			t.Fatalf("%s after rekey: %v (was %v)", v, got, old)
		}
		want, err := oldOnly.Unwrap(old)
		if err != nil {
			t.Fatal(err)
		}
		dk, err := newOnly.Unwrap(got)
		if err != nil {
			t.Fatalf("%s: the new stored key does not unwrap with the new KEK alone: %v", v, err)
		}
		if !bytes.Equal(dk, want) {
			t.Fatalf("%s: rekey changed the drive key", v)
		}
		if _, err := oldOnly.Unwrap(got); err == nil {
			t.Fatalf("%s: the new stored key unwraps with the old KEK", v)
		}
	}
	evs, err := f.s.ListKeyEvents(f.ctx, KeyEventFilter{Event: EventRekeyed})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5 {
		t.Fatalf("%d rekeyed events, want 5", len(evs))
	}
	for _, e := range evs {
		old := before[e.Volume]
		if e.KEKID != newK.ID() || e.Actor != "tapekey" || !e.At.Equal(t0.Add(time.Hour)) ||
			!strings.Contains(e.Detail, old.Fingerprint) || !strings.Contains(e.Detail, oldK.ID()) {
			t.Fatalf("rekeyed event = %+v", e)
		}
	}
	// Nothing left to do the second time.
	res, err = f.s.Rekey(f.ctx, both, "tapekey")
	if err != nil || res.Rewrapped != 0 || res.AlreadyCurrent != 5 {
		t.Fatalf("second Rekey = %+v, %v", res, err)
	}
	if n := f.countEvents(t, EventRekeyed); n != 5 {
		t.Fatalf("second Rekey added events: %d", n)
	}
	var iv *InvalidError
	if _, err := f.s.Rekey(f.ctx, nil, "x"); !errors.As(err, &iv) {
		t.Fatalf("Rekey(nil ring) = %v", err)
	}
}

func TestRekeyMissingKEKRollsBack(t *testing.T) {
	f := newFixture(t)
	kk := newKEKs(t, 3)
	k1, k2, lost := kk[0], kk[1], kk[2]
	// Keys under k1 first (they would be rewrapped), then one under a KEK
	// the ring does not have.
	var secrets []string
	for i, r := range []*keys.Keyring{ring(t, k1, k1), ring(t, k1, k1), ring(t, lost, lost), ring(t, k1, k1)} {
		_, sk := f.label(t, fmt.Sprintf("OFF%03d", i), "", "sd1", i, r)
		secrets = append(secrets, sk.Value)
	}
	before := f.snapshot(t)
	f.clock.Advance(time.Hour)
	_, err := f.s.Rekey(f.ctx, ring(t, k2, k1, k2), "tapekey")
	var re *RekeyError
	if !errors.As(err, &re) || re.Volume != "OFF002" || re.KEKID != lost.ID() {
		t.Fatalf("Rekey with a KEK missing = %v, want *RekeyError for OFF002 under %s", err, lost.ID())
	}
	var nf *keys.KEKNotFoundError
	if !errors.As(err, &nf) || nf.Needed != lost.ID() {
		t.Fatalf("Rekey error does not carry *keys.KEKNotFoundError: %v", err)
	}
	if !strings.Contains(err.Error(), "OFF002") || !strings.Contains(err.Error(), lost.ID()) || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("Rekey error text: %v", err)
	}
	checkNoSecrets(t, "Rekey", err, secrets...)
	if after := f.snapshot(t); after != before {
		t.Fatalf("a failed rekey changed rows:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if n := f.countEvents(t, EventRekeyed); n != 0 {
		t.Fatalf("a failed rekey left %d rekeyed events", n)
	}
}

func TestRekeyConcurrent(t *testing.T) {
	f := newFixture(t)
	kk := newKEKs(t, 2)
	old := ring(t, kk[0], kk[0])
	const n = 24
	for i := range n {
		f.label(t, fmt.Sprintf("OFF%03d", i), "", "sd1", i, old)
	}
	r := ring(t, kk[1], kk...)
	// Hold each rekey a moment after its SELECT: without the locks, all of
	// them would read the same stale rows and rewrap each key three times.
	testHookRekeyLocked = func() { time.Sleep(100 * time.Millisecond) }
	t.Cleanup(func() { testHookRekeyLocked = nil })
	var wg sync.WaitGroup
	results := make([]RekeyResult, 3)
	errs := make([]error, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = f.s.Rekey(f.ctx, r, fmt.Sprintf("rekey-%d", i))
		}()
	}
	// Another writer of a row the rekeys lock: it waits or is waited for,
	// and both succeed.
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := f.s.MarkLabeled(f.ctx, "OFF005", t0, &t0); err != nil {
			t.Error(err)
		}
	}()
	wg.Wait()
	total := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Rekey %d: %v", i, err)
		}
		total += results[i].Rewrapped
		if results[i].Rewrapped+results[i].AlreadyCurrent != n {
			t.Fatalf("Rekey %d = %+v: rewrapped + current != %d", i, results[i], n)
		}
	}
	if total != n {
		t.Fatalf("the concurrent rekeys rewrapped %d keys in total (%+v), want %d: a key was rewrapped twice or missed", total, results, n)
	}
	if c := f.countEvents(t, EventRekeyed); c != n {
		t.Fatalf("%d rekeyed events, want %d", c, n)
	}
	var stale int
	if err := f.s.Pool().QueryRow(f.ctx, `SELECT count(*) FROM media WHERE encrypted AND kek_id <> $1`, kk[1].ID()).Scan(&stale); err != nil || stale != 0 {
		t.Fatalf("%d keys not under the active KEK (%v)", stale, err)
	}
}

func TestExportKeys(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	want := map[string]keys.StoredKey{}
	for _, v := range []string{"OFF002", "OFF001"} {
		_, want[v] = f.label(t, v, "", "sd1", NoSlot, r)
	}
	f.label(t, "LOC001", "", "sd1", NoSlot, nil)
	if _, err := f.s.EnsurePool(f.ctx, PoolSpec{Name: "Other", Encrypt: true}); err != nil {
		t.Fatal(err)
	}
	sk, _ := r.WrapNew()
	if _, err := f.s.CreateLabeling(f.ctx, MediaNew{Volume: "OTH001", Pool: "Other", Slot: NoSlot, Encrypted: true, Key: &sk}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
	got, err := f.s.ExportKeys(f.ctx, ExportFilter{Pool: "Offsite"}, "tapekey export")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Volume != "OFF001" || got[1].Volume != "OFF002" {
		t.Fatalf("ExportKeys(Offsite) = %v", got)
	}
	for _, e := range got {
		w := want[e.Volume]
		if e.StoredKey() != w || e.Scheme != keys.SchemeV1 || e.KEKID != k.ID() {
			t.Fatalf("exported %v, want %v", e, w)
		}
		for _, s := range []string{fmt.Sprint(e), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e), fmt.Sprintf("%v", got)} {
			if strings.Contains(s, e.Stored) {
				t.Fatalf("ExportedKey prints its stored string: %s", s)
			}
		}
	}
	evs, err := f.s.ListKeyEvents(f.ctx, KeyEventFilter{Event: EventExported})
	if err != nil || len(evs) != 2 {
		t.Fatalf("exported events: %v, %v", evs, err)
	}
	for _, e := range evs {
		if e.Actor != "tapekey export" || e.Detail != want[e.Volume].Fingerprint || e.KEKID != k.ID() || !e.At.Equal(t0.Add(time.Hour)) {
			t.Fatalf("exported event = %+v", e)
		}
	}
	all, err := f.s.ExportKeys(f.ctx, ExportFilter{}, "tapekey export")
	if err != nil || len(all) != 3 {
		t.Fatalf("ExportKeys(all) = %v, %v", all, err)
	}
	one, err := f.s.ExportKeys(f.ctx, ExportFilter{Volume: "OTH001"}, "tapekey export")
	if err != nil || len(one) != 1 || one[0].Stored != sk.Value {
		t.Fatalf("ExportKeys(one volume) = %v, %v", one, err)
	}
	if n := f.countEvents(t, EventExported); n != 6 {
		t.Fatalf("%d exported events, want 2+3+1", n)
	}
	if _, err := f.s.ExportKeys(f.ctx, ExportFilter{Pool: "Nope"}, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ExportKeys(unknown pool) = %v", err)
	}
	if none, err := f.s.ExportKeys(f.ctx, ExportFilter{Pool: "Local"}, "x"); err != nil || len(none) != 0 {
		t.Fatalf("ExportKeys(clear pool) = %v, %v", none, err)
	}
}

func TestRekeyConvertsBareosKeys(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	bk, err := keys.ParseBareosKEK("bareos-kek-string-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	p, err := keys.GenerateBareosPassphrase()
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := keys.WrapBareos(bk, p)
	if err != nil {
		t.Fatal(err)
	}
	dk, err := keys.BareosDriveKey(p)
	if err != nil {
		t.Fatal(err)
	}
	old := keys.StoredKey{Scheme: keys.SchemeBareos, KEKID: bk.ID(), Value: wrapped, Fingerprint: keys.Fingerprint(dk)}
	if _, err := f.s.CreateLabeling(f.ctx, MediaNew{Volume: "BAR001", Pool: "Offsite", Storage: "sd1", Slot: 1, Encrypted: true, Key: &old}); err != nil {
		t.Fatal(err)
	}
	r := ring(t, k, k)
	if err := r.AddBareos(bk); err != nil {
		t.Fatal(err)
	}
	res, err := f.s.Rekey(f.ctx, r, "tapekey")
	if err != nil || res.Rewrapped != 1 {
		t.Fatalf("Rekey = %+v, %v", res, err)
	}
	got, err := f.s.VolumeKey(f.ctx, "BAR001", "sd1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Scheme != keys.SchemeV1 || got.KEKID != k.ID() || got.Fingerprint != old.Fingerprint {
		t.Fatalf("after rekey: %v", got)
	}
	v1only := ring(t, k, k)
	if back, err := v1only.Unwrap(got); err != nil || !bytes.Equal(back, dk) {
		t.Fatalf("the converted key does not unwrap to the Bareos drive key: %v", err)
	}
	evs, err := f.s.ListKeyEvents(f.ctx, KeyEventFilter{Volume: "BAR001", Event: EventRekeyed})
	if err != nil || len(evs) != 1 || !strings.Contains(evs[0].Detail, "scheme bareos -> v1") {
		t.Fatalf("rekeyed event: %+v, %v", evs, err)
	}
}

func TestRekeyAndExportConcurrent(t *testing.T) {
	f := newFixture(t)
	kk := newKEKs(t, 2)
	old := ring(t, kk[0], kk[0])
	const n = 16
	// Names in the reverse order of ids: exports read by name, rekeys lock
	// by id; without a common lock the two could deadlock.
	for i := range n {
		f.label(t, fmt.Sprintf("OFF%03d", n-i), "", "sd1", i, old)
	}
	r := ring(t, kk[1], kk...)
	testHookRekeyLocked = func() { time.Sleep(50 * time.Millisecond) }
	t.Cleanup(func() { testHookRekeyLocked = nil })
	var wg sync.WaitGroup
	exports := make([][]ExportedKey, 4)
	errs := make([]error, len(exports)+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, errs[len(exports)] = f.s.Rekey(f.ctx, r, "tapekey")
	}()
	for i := range exports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			exports[i], errs[i] = f.s.ExportKeys(f.ctx, ExportFilter{}, fmt.Sprintf("export-%d", i))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	for i, exp := range exports {
		if len(exp) != n {
			t.Fatalf("export %d has %d keys", i, len(exp))
		}
		// All keys from before the rekey or all from after: never a mix.
		for _, e := range exp {
			if e.KEKID != exp[0].KEKID {
				t.Fatalf("export %d mixes KEKs %s and %s", i, exp[0].KEKID, e.KEKID)
			}
			if _, err := r.Unwrap(e.StoredKey()); err != nil {
				t.Fatalf("export %d: %s does not unwrap: %v", i, e.Volume, err)
			}
		}
	}
}
