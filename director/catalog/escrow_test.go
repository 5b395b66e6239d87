package catalog

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/tapeward/tapeward/tools/lib/keys"
)

// TestEscrowEnvelopes: a pool with an escrow key gets an envelope with every
// key the catalog makes (label, rotation, recycle); it opens with the
// escrow private key to the same key the KEK unwraps; a rotated key keeps
// its envelope in the history; rekey leaves envelopes alone; shred destroys
// the catalog's copies and lists the escrow keys whose envelopes stay on
// tape.
func TestEscrowEnvelopes(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	k := newKEKs(t, 2)
	r := ring(t, k[0], k[0])
	esc, err := keys.NewEscrowKey()
	if err != nil {
		t.Fatal(err)
	}
	f.s.SetEscrowKeys(func(pool string) *keys.EscrowPublic {
		if pool == "Offsite" {
			return esc.Public()
		}
		return nil
	})
	opens := func(volume string, sk keys.StoredKey) keys.Escrow {
		t.Helper()
		e, err := f.s.VolumeEscrow(ctx, volume, sk.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		if e.KeyID != esc.ID() {
			t.Fatalf("%s key %s: escrow %v, want escrow key %s", volume, sk.Fingerprint, e, esc.ID())
		}
		viaEscrow, err := esc.OpenEscrow(e, volume, sk.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		viaKEK, err := ring(t, k[1], k[0], k[1]).Unwrap(sk)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(viaEscrow, viaKEK) {
			t.Fatalf("%s: the envelope holds another key", volume)
		}
		return e
	}

	// Label: the caller seals (as the director does) and CreateLabeling
	// stores the envelope.
	sk, e, err := r.WrapNewEscrow("OFF001", esc.Public())
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.s.CreateLabeling(ctx, MediaNew{Volume: "OFF001", Pool: "Offsite", Storage: "sd1", Slot: 1, Encrypted: true, Key: &sk, Escrow: e})
	if err != nil {
		t.Fatal(err)
	}
	if m.EscrowKeyID != esc.ID() {
		t.Fatalf("media escrow key id %q", m.EscrowKeyID)
	}
	first := opens("OFF001", sk)
	if err := f.s.MarkLabeled(ctx, "OFF001", t0, &t0); err != nil {
		t.Fatal(err)
	}

	// Rotation: a new key with a new envelope; the old one keeps its own.
	f.clock.Advance(time.Minute)
	if _, err := f.s.UpdateEncryption(ctx, "OFF001", EncryptRotate, r, "console:admin"); err != nil {
		t.Fatal(err)
	}
	cur, err := f.s.VolumeKey(ctx, "OFF001", "sd1")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Fingerprint == sk.Fingerprint {
		t.Fatal("rotation kept the key")
	}
	second := opens("OFF001", cur)
	if second.Envelope == first.Envelope {
		t.Fatal("rotation kept the envelope")
	}
	if again := opens("OFF001", sk); again != first {
		t.Fatal("the history lost the old key's envelope")
	}

	// Rekey: the wrapped string changes, the envelope does not.
	if _, err := f.s.Rekey(ctx, ring(t, k[1], k[0], k[1]), "tapekey"); err != nil {
		t.Fatal(err)
	}
	rk, _ := f.s.VolumeKey(ctx, "OFF001", "sd1")
	if e2, _ := f.s.VolumeEscrow(ctx, "OFF001", rk.Fingerprint); e2 != second || rk.KEKID != k[1].ID() {
		t.Fatalf("after rekey: %v kek %s", e2, rk.KEKID)
	}

	// A clear pool gets no envelope (encrypt=yes on a Local volume).
	f.label(t, "LOC001", "", "sd1", NoSlot, nil)
	if err := f.s.MarkLabeled(ctx, "LOC001", t0, nil); err != nil {
		t.Fatal(err)
	}
	if m, err := f.s.UpdateEncryption(ctx, "LOC001", EncryptYes, ring(t, k[1], k[1]), "console:admin"); err != nil || m.EscrowKeyID != "" {
		t.Fatalf("Local pool: %v %+v", err, m)
	}

	// Recycle: a purged volume's new key gets a new envelope; the old key
	// (moved to the history) keeps its own.
	rold := f.labelled(t, "OFF002", "", r)
	if _, err := f.s.BeginWrite(ctx, "OFF002", "sd1", rold.Fingerprint); err != nil {
		t.Fatal(err)
	}
	f.writeJob(t, LevelFull, JobOK, 1, "OFF002")
	if _, err := f.s.PurgeVolume(ctx, PurgeRequest{Volume: "OFF002", Actor: "console:op"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.BeginRecycle(ctx, RecycleRequest{Volume: "OFF002", Encrypt: true, Ring: r, Actor: "director"}); err != nil {
		t.Fatal(err)
	}
	rnew, err := f.s.VolumeKey(ctx, "OFF002", "sd1")
	if err != nil {
		t.Fatal(err)
	}
	if rnew.Fingerprint == rold.Fingerprint {
		t.Fatal("recycle kept the key")
	}
	opens("OFF002", rnew)

	// Shred: the catalog's copies go; the result names the escrow key.
	res, err := f.s.ShredVolume(ctx, "OFF001", "console:admin")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.EscrowKeys, []string{esc.ID()}) {
		t.Fatalf("shred escrow keys %v", res.EscrowKeys)
	}
	var n int
	if err := f.s.pool.QueryRow(ctx, `SELECT count(*) FROM media WHERE escrow_envelope IS NOT NULL AND volume_name = 'OFF001'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("envelope left in media: %d %v", n, err)
	}
	if e, _ := f.s.VolumeEscrow(ctx, "OFF001", sk.Fingerprint); !e.IsZero() {
		t.Fatal("envelope left in the history")
	}
}
