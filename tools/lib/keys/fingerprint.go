// Package keys is Tapeward's key core: volume keys, RFC 3394 key wrap, the
// stored-key schemes (v1 and bareos), KEK ids and key fingerprints, the KEK
// keyring and KEK files. It does no I/O beyond reading key files, and no
// error or String method in it ever contains key bytes.
package keys

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Labels that separate the one-way values derived from key material.
const (
	fingerprintLabel = "tapeward/v1/volume-key-fingerprint"
	kekIDLabel       = "tapeward/v1/kek-id"
)

// FingerprintLen is the length of a key fingerprint or KEK id in characters.
const FingerprintLen = 16

// Fingerprint returns the one-way fingerprint of the key a drive receives
// (32 bytes for AES-256): 16 lower-case hex characters of
// HMAC-SHA256(key, label). It identifies a key in the catalog, logs, the
// drive's U-KAD and vtl's status without revealing anything about it.
func Fingerprint(driveKey []byte) string { return derive(driveKey, fingerprintLabel) }

// KEKIDOf returns the id of a key encryption key: the same construction as
// Fingerprint under a different label, so the two never collide.
func KEKIDOf(kek []byte) string { return derive(kek, kekIDLabel) }

func derive(secret []byte, label string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	sum := m.Sum(nil)
	return hex.EncodeToString(sum[:FingerprintLen/2])
}
