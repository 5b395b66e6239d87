package catalog

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

func TestKeyEvents(t *testing.T) {
	f := newFixture(t)
	k := newKEKs(t, 1)[0]
	r := ring(t, k, k)
	_, sk := f.label(t, "OFF001", "", "sd1", 1, r) // adds "generated" at t0
	ctx := f.ctx

	add := func(e KeyEvent) KeyEvent {
		t.Helper()
		got, err := f.s.AddKeyEvent(ctx, e)
		if err != nil {
			t.Fatalf("AddKeyEvent(%+v): %v", e, err)
		}
		return got
	}
	fetched := add(KeyEvent{At: t0.Add(time.Minute), Volume: "OFF001", Event: EventFetched, Actor: "sd1", KEKID: k.ID(), Detail: sk.Fingerprint})
	f.clock.Advance(2 * time.Minute)
	loaded := add(KeyEvent{Volume: "OFF001", Event: EventLoaded, Actor: "sd1", Detail: "drive Drive-1 (/dev/sg3), key " + sk.Fingerprint})
	if loaded.ID == 0 || loaded.ID == fetched.ID || !loaded.At.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("AddKeyEvent returned %+v", loaded)
	}
	// A volume that is not (or no longer) in the catalog: kept, media_id NULL.
	gone := add(KeyEvent{At: t0.Add(3 * time.Minute), Volume: "GONE01", Event: EventCleared, Actor: "sd2"})
	var mediaNull, mediaSet bool
	if err := f.s.Pool().QueryRow(ctx, `SELECT (SELECT media_id IS NULL FROM key_events WHERE id = $1), (SELECT media_id IS NOT NULL FROM key_events WHERE id = $2)`,
		gone.ID, loaded.ID).Scan(&mediaNull, &mediaSet); err != nil || !mediaNull || !mediaSet {
		t.Fatalf("media_id: unknown volume NULL=%v, known volume set=%v (%v)", mediaNull, mediaSet, err)
	}

	list := func(fl KeyEventFilter) string {
		t.Helper()
		evs, err := f.s.ListKeyEvents(ctx, fl)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs {
			out = append(out, e.Volume+":"+string(e.Event))
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		f    KeyEventFilter
		want string
	}{
		{KeyEventFilter{}, "GONE01:cleared,OFF001:loaded,OFF001:fetched,OFF001:generated"},
		{KeyEventFilter{Volume: "OFF001"}, "OFF001:loaded,OFF001:fetched,OFF001:generated"},
		{KeyEventFilter{Volume: "OFF001", Limit: 2}, "OFF001:loaded,OFF001:fetched"},
		{KeyEventFilter{Since: t0.Add(time.Minute)}, "GONE01:cleared,OFF001:loaded,OFF001:fetched"},
		{KeyEventFilter{Event: EventGenerated}, "OFF001:generated"},
		{KeyEventFilter{Volume: "NOPE"}, ""},
	} {
		if got := list(c.f); got != c.want {
			t.Errorf("ListKeyEvents(%+v) = %s, want %s", c.f, got, c.want)
		}
	}
	evs, _ := f.s.ListKeyEvents(ctx, KeyEventFilter{Event: EventFetched})
	if len(evs) != 1 || evs[0] != fetched {
		t.Fatalf("listed %+v, added %+v", evs, fetched)
	}

	// Refused: bad fields, and anything that looks like key material.
	raw, err := r.Unwrap(sk)
	if err != nil {
		t.Fatal(err)
	}
	var iv *InvalidError
	for _, e := range []KeyEvent{
		{Volume: "", Event: EventLoaded, Actor: "sd1"},
		{Volume: "OFF001", Event: "deleted", Actor: "sd1"},
		{Volume: "OFF001", Event: EventLoaded, Actor: ""},
		{Volume: "OFF001", Event: EventLoaded, Actor: "sd1", Detail: "stored " + sk.Value},
		{Volume: "OFF001", Event: EventLoaded, Actor: "sd1", KEKID: sk.Value},
		{Volume: "OFF001", Event: EventLoaded, Actor: "sd1", Detail: "key " + hex.EncodeToString(raw)},
		{Volume: "OFF001", Event: EventLoaded, Actor: "sd1", Detail: "key " + base64.StdEncoding.EncodeToString(raw)},
	} {
		_, err := f.s.AddKeyEvent(ctx, e)
		if !errors.As(err, &iv) {
			t.Fatalf("AddKeyEvent(event %q actor %q, %d-character detail) = %v, want *InvalidError", e.Event, e.Actor, len(e.Detail), err)
		}
		checkNoSecrets(t, "AddKeyEvent", err, sk.Value, hex.EncodeToString(raw), base64.RawStdEncoding.EncodeToString(raw))
	}
	// The database-side guard: a stored string the shape test would not
	// flag (no digits) is still refused when a detail quotes it.
	const lettersOnly = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZab"
	if looksLikeKeyMaterial(lettersOnly) {
		t.Fatal("test premise: the letters-only string passes the shape test")
	}
	if _, err := f.s.Pool().Exec(ctx, `UPDATE media SET key_string = $1 WHERE volume_name = 'OFF001'`, lettersOnly); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.AddKeyEvent(ctx, KeyEvent{Volume: "OFF001", Event: EventLoaded, Actor: "sd1", Detail: "x " + lettersOnly + " y"})
	if !errors.As(err, &iv) || !strings.Contains(err.Error(), "quotes the volume's stored key") {
		t.Fatalf("detail quoting the stored key: %v", err)
	}
	checkNoSecrets(t, "AddKeyEvent", err, lettersOnly)
	if n := len(strings.Split(list(KeyEventFilter{}), ",")); n != 4 {
		t.Fatalf("refused events were recorded: %d events", n)
	}
	if _, err := f.s.ListKeyEvents(ctx, KeyEventFilter{Limit: -1}); !errors.As(err, &iv) {
		t.Fatalf("negative limit: %v", err)
	}
}

// TestNoKeyMaterialInKeyEvents runs every operation that writes key events
// and then greps every column of every key event for every stored string
// and drive key the test saw.
func TestNoKeyMaterialInKeyEvents(t *testing.T) {
	f := newFixture(t)
	kk := newKEKs(t, 2)
	r1 := ring(t, kk[0], kk[0])
	both := ring(t, kk[1], kk...)
	ctx := f.ctx
	var secrets []string
	seen := func(sk keys.StoredKey) {
		t.Helper()
		secrets = append(secrets, sk.Value)
		dk, err := both.Unwrap(sk)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, hex.EncodeToString(dk), base64.RawStdEncoding.EncodeToString(dk), base64.StdEncoding.EncodeToString(dk))
	}
	for i := range 4 {
		v := fmt.Sprintf("OFF%03d", i)
		_, sk := f.label(t, v, "", "sd1", i, r1)
		seen(sk)
		if err := f.s.MarkLabeled(ctx, v, t0, &t0); err != nil {
			t.Fatal(err)
		}
	}
	f.label(t, "LOC001", "", "sd1", 9, nil)
	if err := f.s.MarkLabeled(ctx, "LOC001", t0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.UpdateEncryption(ctx, "LOC001", EncryptYes, r1, "console"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.UpdateEncryption(ctx, "OFF001", EncryptRotate, r1, "console"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"LOC001", "OFF001"} {
		sk, err := f.s.VolumeKey(ctx, v, "sd1")
		if err != nil {
			t.Fatal(err)
		}
		seen(sk)
	}
	if _, err := f.s.UpdateEncryption(ctx, "OFF002", EncryptNo, nil, "console"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.AddKeyEvent(ctx, KeyEvent{Volume: "OFF000", Event: EventVerified, Actor: "sd1", Detail: "drive says encrypting"}); err != nil {
		t.Fatal(err)
	}
	if res, err := f.s.Rekey(ctx, both, "tapekey"); err != nil || res.Rewrapped != 4 {
		t.Fatalf("Rekey = %+v, %v", res, err)
	}
	exp, err := f.s.ExportKeys(ctx, ExportFilter{}, "tapekey")
	if err != nil || len(exp) != 4 {
		t.Fatalf("ExportKeys = %d keys, %v", len(exp), err)
	}
	for _, e := range exp {
		seen(e.StoredKey())
	}
	for _, k := range kk {
		secrets = append(secrets, string(keys.EncodeKEKHex(k)))
	}

	rows, err := f.s.Pool().Query(ctx, `SELECT event, detail, k::text FROM key_events k ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	events := map[string]int{}
	for rows.Next() {
		var event, detail, all string
		if err := rows.Scan(&event, &detail, &all); err != nil {
			t.Fatal(err)
		}
		events[event]++
		if looksLikeKeyMaterial(detail) {
			t.Errorf("%s event detail looks like key material: %q", event, detail)
		}
		for _, s := range secrets {
			if strings.Contains(all, s) {
				t.Fatalf("a %s key event holds key material (%d characters of it)", event, len(s))
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// The log really covers every kind of write the store makes.
	want := map[string]int{"generated": 5, "rotated": 2, "superseded": 2, "verified": 1, "rekeyed": 6, "exported": 4} // rekeyed: 4 current keys + the 2 history keys
	if fmt.Sprint(events) != fmt.Sprint(want) {
		t.Fatalf("key events = %v, want %v", events, want)
	}
}
