package keys

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newTestKEK(t testing.TB, fill byte) *KEK {
	t.Helper()
	k, err := NewKEK(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestV1RoundTrip(t *testing.T) {
	kek := newTestKEK(t, 1)
	r, err := NewKeyring(kek)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := r.WrapNew()
	if err != nil {
		t.Fatal(err)
	}
	if sk.Scheme != SchemeV1 || sk.KEKID != kek.ID() || len(sk.Value) != V1StoredLen || len(sk.Fingerprint) != FingerprintLen {
		t.Fatalf("stored key %v value length %d", sk, len(sk.Value))
	}
	if strings.Contains(sk.Value, "=") {
		t.Fatal("stored v1 value is padded")
	}
	k, err := r.Unwrap(sk)
	if err != nil {
		t.Fatal(err)
	}
	if len(k) != 32 || Fingerprint(k) != sk.Fingerprint {
		t.Fatal("unwrapped key does not match its fingerprint")
	}
	// Two new keys differ.
	sk2, _ := r.WrapNew()
	if sk2.Value == sk.Value || sk2.Fingerprint == sk.Fingerprint {
		t.Fatal("WrapNew returned the same key twice")
	}
	// Wrap of known bytes is deterministic and unwraps to them.
	key := bytes.Repeat([]byte{0xAB}, 32)
	sk3, err := r.Wrap(key)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Wrap(kek.b, key)
	if sk3.Value != base64.RawStdEncoding.EncodeToString(want) {
		t.Fatal("v1 value is not base64 (no padding) of the RFC 3394 wrap")
	}
	got, err := UnwrapV1(kek, sk3.Value)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("UnwrapV1: %v", err)
	}
	if _, err := r.Wrap(key[:31]); err == nil {
		t.Fatal("Wrap accepted a 31-byte key")
	}
}

func TestKeyringSelectsKEKByID(t *testing.T) {
	a, b := newTestKEK(t, 1), newTestKEK(t, 2)
	r, _ := NewKeyring(a, b)
	if r.Active() != a {
		t.Fatal("first KEK is not active")
	}
	skA, _ := r.WrapNew()
	if err := r.SetActive(b.ID()); err != nil {
		t.Fatal(err)
	}
	skB, _ := r.WrapNew()
	if skB.KEKID != b.ID() {
		t.Fatal("new key not wrapped under the active KEK")
	}
	for _, sk := range []StoredKey{skA, skB} {
		k, err := r.Unwrap(sk)
		if err != nil || Fingerprint(k) != sk.Fingerprint {
			t.Fatalf("unwrap %v: %v", sk, err)
		}
	}
	// Rekey: rewrap A's key under B keeps the fingerprint.
	re, err := r.Rewrap(skA)
	if err != nil || re.KEKID != b.ID() || re.Fingerprint != skA.Fingerprint || re.Value == skA.Value {
		t.Fatalf("Rewrap = %v, %v", re, err)
	}
	ids := r.IDs()
	if len(ids) != 2 || !(ids[0] < ids[1]) {
		t.Fatalf("IDs = %v", ids)
	}
	if _, ok := r.Get(a.ID()); !ok {
		t.Fatal("Get(a) failed")
	}
	if err := r.Add(newTestKEK(t, 1)); err == nil {
		t.Fatal("duplicate KEK accepted")
	}
	if err := r.SetActive("0000000000000000"); err == nil || !strings.Contains(err.Error(), a.ID()) {
		t.Fatalf("SetActive(unknown): %v", err)
	}
}

func TestKeyringErrors(t *testing.T) {
	a, b := newTestKEK(t, 1), newTestKEK(t, 2)
	ra, _ := NewKeyring(a)
	rb, _ := NewKeyring(b)
	sk, _ := ra.WrapNew()

	// Missing KEK id: names the needed id and the ids the keyring has.
	_, err := rb.Unwrap(sk)
	var nf *KEKNotFoundError
	var ue *UnwrapError
	if !errors.As(err, &nf) || !errors.As(err, &ue) || nf.Needed != a.ID() || ue.KEKID != a.ID() {
		t.Fatalf("missing KEK: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, a.ID()) || !strings.Contains(msg, b.ID()) {
		t.Fatalf("missing KEK message: %s", msg)
	}

	// Stored key claims KEK b but was wrapped with a: integrity error naming b.
	both, _ := NewKeyring(a, b)
	lie := sk
	lie.KEKID = b.ID()
	_, err = both.Unwrap(lie)
	if !errors.As(err, &ue) || !errors.Is(err, ErrIntegrity) || ue.KEKID != b.ID() {
		t.Fatalf("wrong KEK: %v", err)
	}
	if !strings.Contains(err.Error(), "not wrapped with KEK "+b.ID()) {
		t.Fatalf("wrong KEK message: %s", err)
	}

	// Truncated, padded, bad base64, unknown scheme, fingerprint mismatch.
	cases := []struct {
		name string
		mod  func(StoredKey) StoredKey
		want string
	}{
		{"truncated", func(s StoredKey) StoredKey { s.Value = s.Value[:12]; return s },
			"stored v1 key must be 54 base64 characters (40 bytes); got 12"},
		{"padded", func(s StoredKey) StoredKey { s.Value += "=="; return s }, "remove the trailing '='"},
		{"bad char", func(s StoredKey) StoredKey { s.Value = "*" + s.Value[1:]; return s }, "not valid base64"},
		{"trailing bits", func(s StoredKey) StoredKey { s.Value = s.Value[:53] + flipLast(s.Value[53]); return s }, "not valid base64"},
		{"scheme", func(s StoredKey) StoredKey { s.Scheme = "v2"; return s }, `unknown scheme "v2"`},
		{"fingerprint", func(s StoredKey) StoredKey { s.Fingerprint = "0000000000000000"; return s }, "fingerprint"},
		{"corrupt", func(s StoredKey) StoredKey { s.Value = flipChar(s.Value, 20); return s }, "or it is corrupt"},
	}
	for _, c := range cases {
		k, err := ra.Unwrap(c.mod(sk))
		if err == nil || k != nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want *UnwrapError containing %q", c.name, err, c.want)
		}
	}

	// Empty keyring.
	var empty Keyring
	if _, err := empty.WrapNew(); err == nil || !strings.Contains(err.Error(), "no active KEK") {
		t.Fatalf("empty keyring WrapNew: %v", err)
	}
}

func flipLast(c byte) string {
	// Keeps the character's top bits (the data) and sets a trailing bit.
	i := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", c)
	return string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i|1])
}

func flipChar(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

func TestKeyringBareos(t *testing.T) {
	bk, _ := ParseBareosKEK(bareosExampleKEK)
	r, _ := NewKeyring(newTestKEK(t, 7))
	if err := r.AddBareos(bk); err != nil {
		t.Fatal(err)
	}
	want := append([]byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcde"), 0)
	plain, _ := WrapBareos(nil, []byte(bareosExamplePass))
	for _, sk := range []StoredKey{
		{Scheme: SchemeBareos, Value: bareosExampleStored},
		{Scheme: SchemeBareos, KEKID: bk.ID(), Value: bareosExampleStored + "=="},
		{Scheme: SchemeBareos, Value: plain, Fingerprint: Fingerprint(want)},
	} {
		k, err := r.Unwrap(sk)
		if err != nil || !bytes.Equal(k, want) {
			t.Fatalf("Unwrap(%v) = %q, %v", sk, k, err)
		}
	}
	// Import: a Bareos key becomes a v1 key with the same drive key.
	v1, err := r.Rewrap(StoredKey{Scheme: SchemeBareos, Value: bareosExampleStored})
	if err != nil || v1.Scheme != SchemeV1 || v1.Fingerprint != Fingerprint(want) {
		t.Fatalf("Rewrap bareos: %v, %v", v1, err)
	}
	if _, err := r.Unwrap(StoredKey{Scheme: SchemeBareos, KEKID: "0123456789abcdef", Value: bareosExampleStored}); err == nil || !strings.Contains(err.Error(), "0123456789abcdef") {
		t.Fatalf("unknown Bareos KEK id: %v", err)
	}
	r2, _ := NewKeyring()
	if _, err := r2.Unwrap(StoredKey{Scheme: SchemeBareos, Value: bareosExampleStored}); err == nil || !strings.Contains(err.Error(), "0 Bareos KEKs") {
		t.Fatalf("no Bareos KEK: %v", err)
	}
}

func writeFile(t testing.TB, dir, name string, content []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, content, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlainKEKFile(t *testing.T) {
	dir := t.TempDir()
	kek := newTestKEK(t, 0x5a)
	content := EncodeKEKHex(kek)
	if string(content) != strings.Repeat("5a", 32)+"\n" {
		t.Fatalf("EncodeKEKHex = %q", content)
	}
	for name, c := range map[string][]byte{
		"nl":    content,
		"nonl":  content[:64],
		"crlf":  append(bytes.Clone(content[:64]), '\r', '\n'),
		"upper": []byte(strings.ToUpper(string(content))),
	} {
		p := writeFile(t, dir, name, c, 0o600)
		k, err := LoadKEKFile(p, LoadOptions{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if k.ID() != kek.ID() {
			t.Fatalf("%s: id %s, want %s", name, k.ID(), kek.ID())
		}
	}
	bad := map[string]string{
		"short":  "abcd\n",
		"nonhex": strings.Repeat("5a", 31) + "zz\n",
		"twonl":  strings.Repeat("5a", 32) + "\n\n",
		"space":  " " + strings.Repeat("5a", 32),
	}
	for name, c := range bad {
		p := writeFile(t, dir, "bad-"+name, []byte(c), 0o600)
		_, err := LoadKEKFile(p, LoadOptions{})
		var fe *FormatError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := LoadKEKFile(filepath.Join(dir, "missing"), LoadOptions{}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := LoadKEKFile(dir, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory: %v", err)
	}
	big := writeFile(t, dir, "big", bytes.Repeat([]byte("a"), maxKeyFile+10), 0o600)
	if _, err := LoadKEKFile(big, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("big file: %v", err)
	}
}

func TestPermissions(t *testing.T) {
	dir := t.TempDir()
	kek := newTestKEK(t, 3)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o620} {
		p := writeFile(t, dir, "kek.key", EncodeKEKHex(kek), mode)
		_, err := LoadKEKFile(p, LoadOptions{})
		var pe *PermissionError
		if !errors.As(err, &pe) || pe.Mode.Perm() != mode {
			t.Fatalf("mode %o: %v", mode, err)
		}
		if mode&0o044 != 0 {
			want := "KEK file " + p + " is readable by group or others (mode 0" + modeString(mode) + "); run: chmod 600 " + p
			if err.Error() != want {
				t.Fatalf("message %q\nwant    %q", err, want)
			}
		} else if !strings.Contains(err.Error(), "run: chmod 600 "+p) {
			t.Fatalf("message %q", err)
		}
		if err := CheckPrivateFile(p); !errors.As(err, &pe) {
			t.Fatalf("CheckPrivateFile mode %o: %v", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		p := writeFile(t, dir, "kek.key", EncodeKEKHex(kek), mode)
		if err := CheckPrivateFile(p); err != nil {
			t.Fatalf("mode %o: %v", mode, err)
		}
	}
	// Paths that need quoting are quoted in the command.
	p := writeFile(t, dir, "my kek's.key", EncodeKEKHex(kek), 0o644)
	if err := CheckPrivateFile(p); err == nil || !strings.HasSuffix(err.Error(), `chmod 600 '`+dir+`/my kek'\''s.key'`) {
		t.Fatalf("quoted path: %v", err)
	}
	bp := writeFile(t, dir, "bareos.txt", []byte(bareosExampleKEK+"\n"), 0o640)
	if _, err := LoadBareosKEKFile(bp); err == nil || !strings.HasPrefix(err.Error(), "Bareos KEK file "+bp+" is readable") {
		t.Fatalf("Bareos KEK file: %v", err)
	}
	mp := writeFile(t, dir, "master.json", []byte("{}"), 0o644)
	if _, err := LoadMasterKeyset(mp); err == nil || !strings.HasPrefix(err.Error(), "master keyset file "+mp+" is readable") {
		t.Fatalf("master keyset: %v", err)
	}
}

func modeString(m os.FileMode) string {
	const digits = "01234567"
	p := m.Perm()
	return string([]byte{digits[p>>6&7], digits[p>>3&7], digits[p&7]})
}

func TestBareosKEKFile(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "bk", []byte(bareosExampleKEK+"\n"), 0o600)
	k, err := LoadBareosKEKFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := UnwrapBareos(k, bareosExampleStored); err != nil || string(p) != bareosExamplePass {
		t.Fatalf("unwrap with file KEK: %v", err)
	}
	short := writeFile(t, dir, "short", []byte("0123456789\n"), 0o600)
	if _, err := LoadBareosKEKFile(short); err == nil || !strings.Contains(err.Error(), "at least 16 bytes") || !strings.Contains(err.Error(), short) || !strings.Contains(err.Error(), "got 10") {
		t.Fatalf("short Bareos KEK file: %v", err)
	}
}

func TestSealedKEKFile(t *testing.T) {
	dir := t.TempDir()
	mk, err := NewMasterKeysetJSON()
	if err != nil {
		t.Fatal(err)
	}
	mp := writeFile(t, dir, "master.json", mk, 0o600)
	m, err := LoadMasterKeyset(mp)
	if err != nil {
		t.Fatal(err)
	}
	kek := newTestKEK(t, 9)
	sealed, err := m.SealKEK(kek)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(sealed), "tapeward-sealed-kek v1 "+kek.ID()+"\n") {
		t.Fatalf("header: %q", strings.SplitN(string(sealed), "\n", 2)[0])
	}
	if bytes.Contains(sealed, []byte(strings.Repeat("09", 32))) || bytes.Contains(sealed, bytes.Repeat([]byte{9}, 32)) {
		t.Fatal("sealed file contains the KEK in clear")
	}
	sp := writeFile(t, dir, "kek.sealed", sealed, 0o600)
	k, err := LoadKEKFile(sp, LoadOptions{MasterKeysetPath: mp})
	if err != nil {
		t.Fatal(err)
	}
	if k.ID() != kek.ID() || !bytes.Equal(k.b, kek.b) {
		t.Fatal("sealed KEK did not round trip")
	}

	// No master keyset given.
	if _, err := LoadKEKFile(sp, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "sealed") || !strings.Contains(err.Error(), "--master") {
		t.Fatalf("no master: %v", err)
	}
	// Another master keyset.
	mk2, _ := NewMasterKeysetJSON()
	mp2 := writeFile(t, dir, "master2.json", mk2, 0o600)
	if _, err := LoadKEKFile(sp, LoadOptions{MasterKeysetPath: mp2}); err == nil || !strings.Contains(err.Error(), "another master keyset") {
		t.Fatalf("other master: %v", err)
	}
	// The id in the header is bound: swapping it fails.
	other := newTestKEK(t, 10)
	swapped := bytes.Replace(sealed, []byte(kek.ID()), []byte(other.ID()), 1)
	swp := writeFile(t, dir, "swapped", swapped, 0o600)
	if _, err := LoadKEKFile(swp, LoadOptions{MasterKeysetPath: mp}); err == nil || !strings.Contains(err.Error(), "altered") {
		t.Fatalf("swapped id: %v", err)
	}
	// Bodies swapped between two sealed files fail too.
	sealed2, _ := m.SealKEK(other)
	mixed := append([]byte("tapeward-sealed-kek v1 "+kek.ID()+"\n"), bytes.SplitN(sealed2, []byte("\n"), 2)[1]...)
	mxp := writeFile(t, dir, "mixed", mixed, 0o600)
	if _, err := LoadKEKFile(mxp, LoadOptions{MasterKeysetPath: mp}); err == nil {
		t.Fatal("body of another sealed file accepted")
	}
	// Malformed sealed files.
	for name, c := range map[string]string{
		"noline": "tapeward-sealed-kek v1 " + kek.ID(),
		"badid":  "tapeward-sealed-kek v1 XYZ\nAAAA\n",
		"badb64": "tapeward-sealed-kek v1 " + kek.ID() + "\n***\n",
	} {
		p := writeFile(t, dir, name, []byte(c), 0o600)
		var fe *FormatError
		if _, err := LoadKEKFile(p, LoadOptions{MasterKeysetPath: mp}); !errors.As(err, &fe) {
			t.Errorf("%s: %v", name, err)
		}
	}
	notks := writeFile(t, dir, "notks.json", []byte(`{"x": 1}`), 0o600)
	if _, err := LoadKEKFile(sp, LoadOptions{MasterKeysetPath: notks}); err == nil || !strings.Contains(err.Error(), "not a Tink JSON keyset") {
		t.Fatalf("bad keyset: %v", err)
	}
}

func TestPrintingNeverShowsBytes(t *testing.T) {
	kek := newTestKEK(t, 0x42)
	bk, _ := ParseBareosKEK(bareosExampleKEK)
	r, _ := NewKeyring(kek)
	r.AddBareos(bk)
	plain, _ := WrapBareos(nil, []byte(bareosExamplePass))
	sk := StoredKey{Scheme: SchemeBareos, Value: plain, Fingerprint: "x"}
	secrets := append(secretForms(kek.b), secretForms(bk.b)...)
	secrets = append(secrets, secretForms([]byte(bareosExamplePass))...)
	secrets = append(secrets, plain)
	dir := t.TempDir()
	mk, _ := NewMasterKeysetJSON()
	mp := writeFile(t, dir, "m.json", mk, 0o600)
	m, err := LoadMasterKeyset(mp)
	if err != nil {
		t.Fatal(err)
	}
	var ks struct {
		Key []struct {
			KeyData struct{ Value string }
		}
	}
	if err := json.Unmarshal(mk, &ks); err != nil || len(ks.Key) != 1 || len(ks.Key[0].KeyData.Value) < 40 {
		t.Fatalf("cannot read the master key from the keyset JSON: %v", err)
	}
	secrets = append(secrets, ks.Key[0].KeyData.Value[8:], ks.Key[0].KeyData.Value[len(ks.Key[0].KeyData.Value)-20:])
	if mb, err := base64.StdEncoding.DecodeString(ks.Key[0].KeyData.Value); err == nil && len(mb) > 32 {
		secrets = append(secrets, secretForms(mb[len(mb)-32:])...)
	}
	for _, v := range []any{kek, *kek, bk, *bk, r, sk, &sk, m, *m} {
		for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q"} {
			out := sprintf(f, v)
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Fatalf("%s of %T shows key material: %s", f, v, out)
				}
			}
		}
	}
	if !strings.Contains(sprintf("%v", kek), kek.ID()) || !strings.Contains(sprintf("%v", sk), "bareos") {
		t.Fatal("String does not identify the key")
	}
}

func TestUnwrapErrorNamesKEKForCorruptStrings(t *testing.T) {
	kek := newTestKEK(t, 1)
	r, _ := NewKeyring(kek)
	sk, _ := r.WrapNew()
	sk.Value = sk.Value[:12]
	_, err := r.Unwrap(sk)
	want := "unwrap failed (KEK " + kek.ID() + "): stored v1 key must be 54 base64 characters (40 bytes); got 12"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
	sk.KEKID = ""
	if _, err := r.Unwrap(sk); err == nil || !strings.Contains(err.Error(), "has no KEK id") {
		t.Fatalf("no KEK id: %v", err)
	}
}

// FuzzUnwrapStored feeds arbitrary stored strings to both schemes: no
// panic, no key on failure, and whatever succeeds is canonical (wrapping the
// result again gives the same string, modulo Bareos' optional padding).
func FuzzUnwrapStored(f *testing.F) {
	kek := newTestKEK(f, 1)
	bk, _ := ParseBareosKEK(bareosExampleKEK)
	r, _ := NewKeyring(kek)
	r.AddBareos(bk)
	sk, _ := r.Wrap(bytes.Repeat([]byte{3}, 32))
	plain, _ := WrapBareos(nil, []byte(bareosExamplePass))
	for _, s := range []string{sk.Value, sk.Value + "=", sk.Value[:53], bareosExampleStored, bareosExampleStored + "==", plain, "", "====", "*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := UnwrapV1(kek, s)
		if (err == nil) == (k == nil) {
			t.Fatalf("v1: key %v with err %v", k != nil, err)
		}
		if err == nil {
			again, _ := WrapV1(kek, k)
			if again.Value != s {
				t.Fatalf("v1: %q unwrapped but rewraps to %q", s, again.Value)
			}
		}
		p, err := UnwrapBareos(bk, s)
		if (err == nil) == (p == nil) {
			t.Fatalf("bareos: passphrase %v with err %v", p != nil, err)
		}
		if err == nil {
			// Bareos' decoder ignores the unused trailing bits, and so does
			// ours: compare what the strings decode to.
			var again string
			if len(strings.TrimRight(s, "=")) == BareosPlainLen {
				again, _ = WrapBareos(nil, p)
			} else {
				again, _ = WrapBareos(bk, p)
			}
			a, _ := base64.RawStdEncoding.DecodeString(again)
			b, _ := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
			if !bytes.Equal(a, b) {
				t.Fatalf("bareos: %q unwrapped but rewraps to %q", s, again)
			}
		}
		var ue *UnwrapError
		if _, err := r.Unwrap(StoredKey{Scheme: SchemeV1, KEKID: kek.ID(), Value: s}); err != nil && !errors.As(err, &ue) {
			t.Fatalf("keyring error is not *UnwrapError: %v", err)
		}
	})
}
