package keys

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// The worked example of docs/bareos-compat.md.
const (
	bareosExampleKEK    = "0123456789abcdefFEDCBA9876543210"
	bareosExamplePass   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"
	bareosExampleStored = "/3Fq8mNgW1+JJsA6eX7+3+Dr3KMNYcFSgHQHUEF+NNoHmQhSVU1S4g"
)

func TestBareosWorkedExample(t *testing.T) {
	kek, err := ParseBareosKEK(bareosExampleKEK)
	if err != nil {
		t.Fatal(err)
	}
	got, err := WrapBareos(kek, []byte(bareosExamplePass))
	if err != nil {
		t.Fatal(err)
	}
	if got != bareosExampleStored {
		t.Fatalf("WrapBareos = %s, want %s", got, bareosExampleStored)
	}
	for _, in := range []string{bareosExampleStored, bareosExampleStored + "==", bareosExampleStored + "="} {
		p, err := UnwrapBareos(kek, in)
		if err != nil {
			t.Fatalf("UnwrapBareos(%q): %v", in, err)
		}
		if string(p) != bareosExamplePass {
			t.Fatalf("UnwrapBareos = %q", p)
		}
	}
	dk, err := BareosDriveKey([]byte(bareosExamplePass))
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcde"), 0)
	if !bytes.Equal(dk, want) {
		t.Fatalf("drive key = %q, want %q", dk, want)
	}
	// Only the first 16 bytes of the KEK string matter.
	kek2, _ := ParseBareosKEK("0123456789abcdef")
	if kek2.ID() != kek.ID() {
		t.Fatal("KEK strings with the same first 16 bytes have different ids")
	}
	if kek.ID() != KEKIDOf([]byte("0123456789abcdef")) {
		t.Fatal("Bareos KEK id is not KEKIDOf its 16 used bytes")
	}
	if p, err := UnwrapBareos(kek2, bareosExampleStored); err != nil || string(p) != bareosExamplePass {
		t.Fatalf("16-byte KEK string: %q, %v", p, err)
	}
}

// RFC 3394 §4.1 through the Bareos AES-128 path.
func TestBareosRFC3394_4_1(t *testing.T) {
	v := rfc3394Vectors[0]
	kek, err := ParseBareosKEK(string(mustHex(t, v.kek)))
	if err != nil {
		t.Fatal(err)
	}
	w, err := Wrap(kek.b, mustHex(t, v.data))
	if err != nil || !bytes.Equal(w, mustHex(t, v.wrapped)) {
		t.Fatalf("AES-128 path: %X, %v", w, err)
	}
}

func TestBareosPlainForm(t *testing.T) {
	s, err := WrapBareos(nil, []byte(bareosExamplePass))
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != BareosPlainLen || strings.ContainsRune(s, '=') {
		t.Fatalf("plain form %q: want 43 characters, no padding", s)
	}
	for _, in := range []string{s, s + "="} {
		p, err := UnwrapBareos(nil, in)
		if err != nil || string(p) != bareosExamplePass {
			t.Fatalf("UnwrapBareos(nil, %q) = %q, %v", in, p, err)
		}
	}
}

func TestBareosErrors(t *testing.T) {
	kek, _ := ParseBareosKEK(bareosExampleKEK)
	other, _ := ParseBareosKEK("fedcba9876543210")

	_, err := UnwrapBareos(other, bareosExampleStored)
	var ue *UnwrapError
	if !errors.As(err, &ue) || !errors.Is(err, ErrIntegrity) || ue.KEKID != other.ID() || ue.Scheme != SchemeBareos {
		t.Fatalf("wrong KEK: %v", err)
	}
	if !strings.Contains(err.Error(), other.ID()) {
		t.Fatalf("wrong KEK message does not name the KEK id: %v", err)
	}
	_, err = UnwrapBareos(nil, bareosExampleStored)
	if err == nil || !strings.Contains(err.Error(), "needs the Bareos KEK") {
		t.Fatalf("wrapped without KEK: %v", err)
	}
	_, err = UnwrapBareos(kek, bareosExampleStored[:50])
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Got != 50 || !strings.Contains(err.Error(), "54") || !strings.Contains(err.Error(), "43") {
		t.Fatalf("truncated: %v", err)
	}
	_, err = UnwrapBareos(kek, strings.Replace(bareosExampleStored, "/", "*", 1))
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "base64") {
		t.Fatalf("bad base64: %v", err)
	}
	if _, err := ParseBareosKEK("short"); err == nil || !strings.Contains(err.Error(), "at least 16 bytes") || !strings.Contains(err.Error(), "got 5") {
		t.Fatalf("short KEK string: %v", err)
	}
	if _, err := WrapBareos(kek, []byte("tooshort")); err == nil || !strings.Contains(err.Error(), "32 characters") {
		t.Fatalf("short passphrase: %v", err)
	}
	if _, err := BareosDriveKey(make([]byte, 31)); err == nil {
		t.Fatal("BareosDriveKey accepted 31 bytes")
	}
}

func TestGenerateBareosPassphrase(t *testing.T) {
	if len(BareosAlphabet) != 90 {
		t.Fatalf("alphabet has %d characters", len(BareosAlphabet))
	}
	for _, bad := range []string{" ", "'", "\"", "\\", "`"} {
		if strings.Contains(BareosAlphabet, bad) {
			t.Fatalf("alphabet contains %q", bad)
		}
	}
	seen := map[string]bool{}
	counts := map[byte]int{}
	for i := 0; i < 200; i++ {
		p, err := GenerateBareosPassphrase()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 32 {
			t.Fatalf("length %d", len(p))
		}
		for _, c := range p {
			if !strings.ContainsRune(BareosAlphabet, rune(c)) {
				t.Fatalf("character %q outside the alphabet", c)
			}
			counts[c]++
		}
		if seen[string(p)] {
			t.Fatal("repeated passphrase")
		}
		seen[string(p)] = true
	}
	// 6400 draws over 90 characters: every character shows up.
	if len(counts) != 90 {
		t.Fatalf("only %d of 90 characters seen", len(counts))
	}
}
