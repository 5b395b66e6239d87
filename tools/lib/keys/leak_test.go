package keys

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sprintf(format string, v any) string { return fmt.Sprintf(format, v) }

// secretForms returns the ways key bytes could show up in text: hex in both
// cases, every base64 flavour, and the raw bytes.
func secretForms(b []byte) []string {
	return []string{
		hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
		base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
		string(b),
	}
}

// windows returns every 12-character substring of every form, so that a
// partial leak (a prefix, a few bytes) is caught too.
func windows(forms []string) []string {
	var out []string
	for _, f := range forms {
		if len(f) < 12 {
			out = append(out, f)
			continue
		}
		for i := 0; i+12 <= len(f); i++ {
			out = append(out, f[i:i+12])
		}
	}
	return out
}

// TestNoKeyMaterialInErrors drives every error path of the package with
// inputs made from known secrets and checks that no error text contains
// any form of any secret.
func TestNoKeyMaterialInErrors(t *testing.T) {
	dir := t.TempDir()
	volKey := bytes.Repeat([]byte{0xC3, 0x5E, 0x91, 0x07}, 8)
	kekBytes := bytes.Repeat([]byte{0x6D, 0xA2, 0x19, 0xF4}, 8)
	kek, _ := NewKEK(kekBytes)
	other, _ := NewKEK(bytes.Repeat([]byte{0x11, 0x22, 0x33, 0x44}, 8))
	bareosKEKString := "Zq8#Lm2@Xv5!Rt9%Wy3^"
	bk, _ := ParseBareosKEK(bareosKEKString)
	passphrase := []byte("Q7m!x2R#v9L@k4T$z8N%w3P^s6J&d1H*")
	plainBareos, _ := WrapBareos(nil, passphrase)
	wrappedBareos, _ := WrapBareos(bk, passphrase)

	secrets := windows(append(append(append(secretForms(volKey), secretForms(kekBytes)...),
		secretForms([]byte(bareosKEKString))...), secretForms(passphrase)...))
	secrets = append(secrets, windows([]string{plainBareos})...)

	r, _ := NewKeyring(kek)
	sk, _ := r.Wrap(volKey)
	wrapped, _ := Wrap(kekBytes, volKey)
	keyHex := hex.EncodeToString(volKey)
	kekHex := hex.EncodeToString(kekBytes)

	var errs []error
	add := func(_ any, err error) {
		if err == nil {
			t.Errorf("error path %d returned no error", len(errs))
		}
		errs = append(errs, err)
	}
	file := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), mode)
		os.Chmod(p, mode)
		return p
	}

	// RFC 3394.
	add(Wrap(kekBytes[:20], volKey))
	add(Wrap(kekBytes, volKey[:20]))
	add(Unwrap(kekBytes[:20], wrapped))
	add(Unwrap(kekBytes, wrapped[:20]))
	add(Unwrap(other.b, wrapped))
	tampered := bytes.Clone(wrapped)
	tampered[17] ^= 4
	add(Unwrap(kekBytes, tampered))
	// Hex parsing of key and KEK text.
	add(DecodeHex("volume key", keyHex[:40], 32))
	add(DecodeHex("volume key", keyHex[:30]+"g"+keyHex[31:], 32))
	add(DecodeHex("volume key", keyHex+"0", 0))
	add(ParseKEKHex(kekHex[:62] + "zz"))
	add(ParseKEKHex(kekHex + "00"))
	add(NewKEK(kekBytes[:31]))
	// v1 stored strings.
	add(DecodeV1(sk.Value[:12]))
	add(DecodeV1(sk.Value + "=="))
	add(DecodeV1("!" + sk.Value[1:]))
	add(UnwrapV1(other, sk.Value))
	add(r.Wrap(volKey[:31]))
	for _, mod := range []func(StoredKey) StoredKey{
		func(s StoredKey) StoredKey { s.KEKID = other.ID(); return s },
		func(s StoredKey) StoredKey { s.Value = s.Value[:50]; return s },
		func(s StoredKey) StoredKey { s.Value = flipChar(s.Value, 5); return s },
		func(s StoredKey) StoredKey { s.Scheme = "v9"; return s },
		func(s StoredKey) StoredKey { s.Fingerprint = "ffffffffffffffff"; return s },
		func(s StoredKey) StoredKey { s.Scheme = SchemeBareos; s.Value = plainBareos[:40] + "!!!"; return s },
		func(s StoredKey) StoredKey { s.Scheme = SchemeBareos; s.Value = wrappedBareos; s.KEKID = ""; return s },
	} {
		add(r.Unwrap(mod(sk)))
	}
	r2, _ := NewKeyring(other)
	add(r2.Unwrap(sk))
	add(r2.SetActive(kek.ID()), r2.SetActive(kek.ID()))
	var empty Keyring
	add(empty.Wrap(volKey))
	add(nil, r.Add(kek))
	// Bareos.
	add(ParseBareosKEK(bareosKEKString[:10]))
	add(WrapBareos(bk, passphrase[:31]))
	add(BareosDriveKey(passphrase[:20]))
	bOther, _ := ParseBareosKEK("0000000000000000")
	add(UnwrapBareos(bOther, wrappedBareos))
	add(UnwrapBareos(nil, wrappedBareos))
	add(UnwrapBareos(bk, wrappedBareos[:50]))
	add(UnwrapBareos(bk, plainBareos[:42]+"*"))
	add(UnwrapBareos(bk, wrappedBareos[:53]+"*"))
	// Files.
	add(LoadKEKFile(file("k1", kekHex+"\n", 0o644), LoadOptions{}))
	add(LoadKEKFile(file("k2", kekHex[:63]+"x\n", 0o600), LoadOptions{}))
	add(LoadKEKFile(file("k3", kekHex[:60]+"\n", 0o600), LoadOptions{}))
	add(LoadKEKFile(file("k4", kekHex+"\n\n", 0o600), LoadOptions{}))
	add(LoadKEKFile(filepath.Join(dir, "absent"), LoadOptions{}))
	add(LoadBareosKEKFile(file("b1", bareosKEKString+"\n", 0o640)))
	add(LoadBareosKEKFile(file("b2", bareosKEKString[:9]+"\n", 0o600)))
	add(nil, CheckPrivateFile(file("k5", kekHex, 0o604)))
	mk, _ := NewMasterKeysetJSON()
	mp := file("m.json", string(mk), 0o600)
	m, _ := LoadMasterKeyset(mp)
	sealed, _ := m.SealKEK(kek)
	sp := file("s1", string(sealed), 0o600)
	add(LoadKEKFile(sp, LoadOptions{}))
	mk2, _ := NewMasterKeysetJSON()
	add(LoadKEKFile(sp, LoadOptions{MasterKeysetPath: file("m2.json", string(mk2), 0o600)}))
	add(LoadKEKFile(file("s2", strings.Replace(string(sealed), kek.ID(), other.ID(), 1), 0o600), LoadOptions{MasterKeysetPath: mp}))
	add(LoadKEKFile(file("s3", "tapeward-sealed-kek v1 "+kek.ID()+"\n"+kekHex+"\n", 0o600), LoadOptions{MasterKeysetPath: mp}))
	add(LoadKEKFile(sp, LoadOptions{MasterKeysetPath: file("m3.json", string(mk[:len(mk)/2])+kekHex, 0o600)}))
	add(LoadKEKFile(sp, LoadOptions{MasterKeysetPath: file("m4.json", string(mk), 0o644)}))

	for i, err := range errs {
		if err == nil {
			continue
		}
		for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			for _, s := range secrets {
				if strings.Contains(text, s) {
					t.Errorf("error %d contains key material %q: %s", i, s, text)
				}
			}
		}
	}
	if len(errs) < 50 {
		t.Fatalf("only %d error paths exercised", len(errs))
	}
}
