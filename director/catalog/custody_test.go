package catalog

import (
	"bytes"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// addHistoryKey inserts a media_keys row (a key the volume had before its
// current one) with SQL, as the key-history code will, and returns it.
func (f *fixture) addHistoryKey(t testing.TB, volume string, r *keys.Keyring) keys.StoredKey {
	t.Helper()
	sk, err := r.WrapNew()
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.s.Pool().Exec(f.ctx, `
		INSERT INTO media_keys (media_id, volume_name, key_string, key_scheme, kek_id, key_fingerprint, valid_from, valid_to, reason, had_data)
		SELECT id, volume_name, $2, $3, $4, $5, $6, $7, 'rotated', true FROM media WHERE volume_name = $1`,
		volume, sk.Value, string(sk.Scheme), sk.KEKID, sk.Fingerprint, t0.Add(-48*time.Hour), t0.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

func (f *fixture) historyKeys(t testing.TB, volume string) []keys.StoredKey {
	t.Helper()
	rows, err := f.s.Pool().Query(f.ctx, `SELECT key_scheme, kek_id, key_string, key_fingerprint FROM media_keys WHERE volume_name = $1 ORDER BY id`, volume)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []keys.StoredKey
	for rows.Next() {
		var (
			sk     keys.StoredKey
			scheme string
		)
		if err := rows.Scan(&scheme, &sk.KEKID, &sk.Value, &sk.Fingerprint); err != nil {
			t.Fatal(err)
		}
		sk.Scheme = keys.Scheme(scheme)
		out = append(out, sk)
	}
	return out
}

// rekey rewraps the keys of the volumes' history (media_keys) with their
// current keys, in the same transaction, and queues a crypto cache push
// for every encrypted volume of every storage; CompletePushes removes the
// rows of successful pushes (not those queued again by a later rekey) and
// records "pushed" events; KEKUsage says what depends on each KEK.
func TestRekeyRewrapsHistoryAndQueuesPushes(t *testing.T) {
	f := newFixture(t)
	kk := newKEKs(t, 2)
	k1, k2 := kk[0], kk[1]
	oldOnly, newOnly := ring(t, k1, k1), ring(t, k2, k2)
	_, cur1 := f.label(t, "OFF001", "", "sd1", 1, oldOnly)
	f.label(t, "OFF002", "", "sd1", 2, oldOnly)
	f.label(t, "OFF003", "", "sd2", 1, oldOnly)
	f.label(t, "OFF004", "", "", NoSlot, oldOnly) // no storage: nothing to push
	f.label(t, "LOC001", "", "sd1", 3, nil)       // clear: nothing to push
	f.label(t, "LOC002", "", "sd1", 5, nil)       // clear now, a key in its history (encryption removed)
	h1 := f.addHistoryKey(t, "OFF001", oldOnly)
	h3 := f.addHistoryKey(t, "OFF003", oldOnly)
	h5 := f.addHistoryKey(t, "LOC002", oldOnly)

	use, err := f.s.KEKUsage(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(use) != 1 || use[0].KEKID != k1.ID() || use[0].Current != 4 || use[0].History != 3 || len(use[0].Sole) != 7 {
		t.Fatalf("KEKUsage before rekey = %+v, want KEK %s: 4 current, 3 history, 7 sole", use, k1.ID())
	}
	if s := use[0].Sole; s[0].Volume != "LOC002" || !s[0].History || s[1].Volume != "OFF001" {
		t.Fatalf("sole keys = %+v", s)
	}

	f.clock.Advance(time.Hour)
	res, err := f.s.Rekey(f.ctx, ring(t, k2, k1, k2), "console:admin")
	if err != nil {
		t.Fatal(err)
	}
	if res.Rewrapped != 4 || res.HistoryRewrapped != 3 || !maps.Equal(res.Pending, map[string]int{"sd1": 3, "sd2": 1}) {
		t.Fatalf("Rekey = %+v, want 4 + 3 history rewrapped, pending sd1: 3, sd2: 1", res)
	}
	for vol, before := range map[string]keys.StoredKey{"OFF001": h1, "OFF003": h3, "LOC002": h5} {
		got := f.historyKeys(t, vol)
		if len(got) != 1 || got[0].KEKID != k2.ID() || got[0].Fingerprint != before.Fingerprint || got[0].Value == before.Value {
			t.Fatalf("%s history after rekey = %v, want its key %s under KEK %s", vol, got, before.Fingerprint, k2.ID())
		}
		want, _ := oldOnly.Unwrap(before)
		dk, err := newOnly.Unwrap(got[0])
		if err != nil || !bytes.Equal(dk, want) {
			t.Fatalf("%s: the rewrapped history key does not unwrap to the same key with the new KEK alone: %v", vol, err)
		}
	}
	if n := f.countEvents(t, EventRekeyed); n != 7 {
		t.Fatalf("%d rekeyed events, want 7 (4 current, 3 history)", n)
	}
	use, err = f.s.KEKUsage(f.ctx)
	if err != nil || len(use) != 1 || use[0].KEKID != k2.ID() || use[0].Current != 4 || use[0].History != 3 {
		t.Fatalf("KEKUsage after rekey = %+v, %v; want everything under %s", use, err, k2.ID())
	}

	// What sd1 gets: its two encrypted volumes, OFF001 with its history,
	// and the clear volume's history key.
	pend, err := f.s.PendingPushes(f.ctx, "sd1")
	if err != nil {
		t.Fatal(err)
	}
	if len(pend) != 3 || pend[0].Volume != "LOC002" || pend[0].Current != nil || len(pend[0].History) != 1 ||
		pend[0].History[0].Fingerprint != h5.Fingerprint || pend[0].History[0].KEKID != k2.ID() {
		t.Fatalf("PendingPushes(sd1)[0] = %v, want LOC002's history key only", pend[0])
	}
	pend = pend[1:]
	if len(pend) != 2 || pend[0].Volume != "OFF001" || pend[1].Volume != "OFF002" || pend[0].Current == nil ||
		pend[0].Current.KEKID != k2.ID() || pend[0].Current.Fingerprint != cur1.Fingerprint || len(pend[0].History) != 1 ||
		pend[0].History[0].Fingerprint != h1.Fingerprint || pend[0].History[0].KEKID != k2.ID() || len(pend[1].History) != 0 ||
		!pend[0].QueuedAt.Equal(t0.Add(time.Hour)) || !strings.Contains(pend[0].Reason, k2.ID()) {
		t.Fatalf("PendingPushes(sd1) = %v", pend)
	}
	checkNoSecrets(t, "PendingPush", errors.New(pend[0].String()), pend[0].Current.Value, pend[0].History[0].Value)

	// A later rekey queues them again before the push is recorded: the
	// rows stay pending (the caches must get what the later rekey made).
	f.clock.Advance(time.Minute)
	if _, err := f.s.Rekey(f.ctx, ring(t, k2, k1, k2), "console:admin"); err != nil {
		t.Fatal(err)
	}
	if n, err := f.s.CompletePushes(f.ctx, "sd1", pend, "director"); err != nil || n != 0 {
		t.Fatalf("CompletePushes of rows queued again = %d, %v; want 0 removed", n, err)
	}
	pend, err = f.s.PendingPushes(f.ctx, "sd1")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := f.s.CompletePushes(f.ctx, "sd1", pend, "director"); err != nil || n != 3 {
		t.Fatalf("CompletePushes = %d, %v; want 3 removed", n, err)
	}
	if evs, err := f.s.ListKeyEvents(f.ctx, KeyEventFilter{Volume: "LOC002", Event: EventPushed}); err != nil || len(evs) != 1 ||
		evs[0].KEKID != k2.ID() || !strings.Contains(evs[0].Detail, "1 history keys: "+h5.Fingerprint) {
		t.Fatalf("pushed events of LOC002 = %+v, %v", evs, err)
	}
	if got, err := f.s.PendingCounts(f.ctx); err != nil || !maps.Equal(got, map[string]int{"sd2": 1}) {
		t.Fatalf("PendingCounts = %v, %v; want only sd2: 1", got, err)
	}
	evs, err := f.s.ListKeyEvents(f.ctx, KeyEventFilter{Volume: "OFF001", Event: EventPushed})
	if err != nil || len(evs) != 1 || evs[0].KEKID != k2.ID() || !strings.Contains(evs[0].Detail, "storage sd1") ||
		!strings.Contains(evs[0].Detail, h1.Fingerprint) || evs[0].Actor != "director" {
		t.Fatalf("pushed events of OFF001 = %+v, %v", evs, err)
	}
	if _, err := f.s.PendingPushes(f.ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("PendingPushes(unknown storage) = %v", err)
	}
}

// A history key under a KEK the ring lacks rolls the whole rekey back:
// no current key changed, no push queued.
func TestRekeyHistoryMissingKEKRollsBack(t *testing.T) {
	f := newFixture(t)
	kk := newKEKs(t, 3)
	k1, k2, lost := kk[0], kk[1], kk[2]
	_, sk := f.label(t, "OFF001", "", "sd1", 1, ring(t, k1, k1))
	h := f.addHistoryKey(t, "OFF001", ring(t, lost, lost))
	before := f.snapshot(t)
	_, err := f.s.Rekey(f.ctx, ring(t, k2, k1, k2), "console:admin")
	var re *RekeyError
	if !errors.As(err, &re) || re.Volume != "OFF001" || re.KEKID != lost.ID() || !strings.Contains(err.Error(), "history key "+h.Fingerprint) {
		t.Fatalf("Rekey = %v, want *RekeyError naming OFF001's history key %s under %s", err, h.Fingerprint, lost.ID())
	}
	checkNoSecrets(t, "Rekey", err, sk.Value, h.Value)
	if after := f.snapshot(t); after != before {
		t.Fatal("a failed rekey changed a current key")
	}
	if got, err := f.s.PendingCounts(f.ctx); err != nil || len(got) != 0 {
		t.Fatalf("a failed rekey queued pushes: %v %v", got, err)
	}
}
