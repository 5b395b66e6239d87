package keys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEscrowSealOpenRoundTrip(t *testing.T) {
	priv, err := NewEscrowKey()
	if err != nil {
		t.Fatal(err)
	}
	vk, err := NewVolumeKey()
	if err != nil {
		t.Fatal(err)
	}
	fp := Fingerprint(vk)
	env, err := priv.Public().Seal(vk, "TW0001L6")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(env, vk) {
		t.Fatal("envelope contains the key in clear")
	}
	if id, err := EnvelopeKeyID(env); err != nil || id != priv.ID() {
		t.Fatalf("EnvelopeKeyID = %q, %v; want %q", id, err, priv.ID())
	}
	got, err := priv.Open(env, "TW0001L6", fp)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, vk) {
		t.Fatal("opened key differs")
	}
	// Bound to the volume name and the fingerprint.
	if _, err := priv.Open(env, "TW0002L6", fp); !errors.Is(err, ErrEscrowOpen) {
		t.Fatalf("other volume: %v", err)
	}
	if _, err := priv.Open(env, "TW0001L6", "0000000000000000"); !errors.Is(err, ErrEscrowOpen) {
		t.Fatalf("other fingerprint: %v", err)
	}

	// Files: the private file round-trips, the public file seals for it.
	dir := t.TempDir()
	pb, err := priv.MarshalPrivate()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "e.key"), pb, 0o600)
	ub, err := priv.Public().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "e.pub"), ub, 0o644)
	priv2, err := LoadEscrowPrivate(filepath.Join(dir, "e.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub2, err := LoadEscrowPublic(filepath.Join(dir, "e.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if priv2.ID() != priv.ID() || pub2.ID() != priv.ID() {
		t.Fatalf("ids differ: %s %s %s", priv.ID(), priv2.ID(), pub2.ID())
	}
	env2, err := pub2.Seal(vk, "TW0001L6")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := priv2.Open(env2, "TW0001L6", fp); err != nil || !bytes.Equal(got, vk) {
		t.Fatalf("open with loaded key: %v", err)
	}
	// The public file has no secret: a private-key loader refuses it.
	if _, err := LoadEscrowPublic(filepath.Join(dir, "e.key")); err == nil {
		t.Fatal("public loader accepted the private keyset")
	}

	// From the 32 private bytes (paper) the same key comes back.
	raw := priv.PrivateKeyBytes()
	priv3, err := EscrowKeyFromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	if priv3.ID() != priv.ID() {
		t.Fatalf("key from bytes has id %s, want %s", priv3.ID(), priv.ID())
	}
	if got, err := priv3.Open(env, "TW0001L6", fp); err != nil || !bytes.Equal(got, vk) {
		t.Fatalf("open with key from bytes: %v", err)
	}
}

func TestEscrowOpenWrongKeyNamesTheNeededID(t *testing.T) {
	a, _ := NewEscrowKey()
	b, _ := NewEscrowKey()
	vk, _ := NewVolumeKey()
	env, err := a.Public().Seal(vk, "TW0003L6")
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Open(env, "TW0003L6", Fingerprint(vk))
	if !errors.Is(err, ErrEscrowOpen) || !strings.Contains(err.Error(), a.ID()) {
		t.Fatalf("error %v should name escrow key %s", err, a.ID())
	}
	for _, s := range []string{err.Error(), a.String(), b.Public().String()} {
		if strings.Contains(s, string(vk)) {
			t.Fatal("key material in text")
		}
	}
	if _, err := EnvelopeKeyID([]byte{2, 1, 2, 3, 4, 5, 6, 7, 8, 9}); err == nil {
		t.Fatal("version 2 envelope accepted")
	}
}

func TestWrapNewEscrow(t *testing.T) {
	kek, _ := NewKEK(bytes.Repeat([]byte{7}, 32))
	ring, err := NewKeyring(kek)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := NewEscrowKey()
	sk, e, err := ring.WrapNewEscrow("TW0009L6", priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	if e.KeyID != priv.ID() || e.IsZero() {
		t.Fatalf("escrow %v", e)
	}
	viaKEK, err := UnwrapV1(kek, sk.Value)
	if err != nil {
		t.Fatal(err)
	}
	viaEscrow, err := priv.OpenEscrow(e, "TW0009L6", sk.Fingerprint)
	if err != nil || !bytes.Equal(viaKEK, viaEscrow) {
		t.Fatalf("escrow opens another key: %v", err)
	}
	if _, e, err := ring.WrapNewEscrow("TW0009L6", nil); err != nil || !e.IsZero() {
		t.Fatalf("no escrow key: %v %v", e, err)
	}
}
