package keys

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad test hex %q: %v", s, err)
	}
	return b
}

// RFC 3394 §4.1–4.6.
var rfc3394Vectors = []struct {
	section, kek, data, wrapped string
}{
	{"4.1", "000102030405060708090A0B0C0D0E0F",
		"00112233445566778899AABBCCDDEEFF",
		"1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"},
	{"4.2", "000102030405060708090A0B0C0D0E0F1011121314151617",
		"00112233445566778899AABBCCDDEEFF",
		"96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D"},
	{"4.3", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
		"00112233445566778899AABBCCDDEEFF",
		"64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7"},
	{"4.4", "000102030405060708090A0B0C0D0E0F1011121314151617",
		"00112233445566778899AABBCCDDEEFF0001020304050607",
		"031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2"},
	{"4.5", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
		"00112233445566778899AABBCCDDEEFF0001020304050607",
		"A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1"},
	{"4.6", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
		"00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
		"28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"},
}

func TestRFC3394Vectors(t *testing.T) {
	for _, v := range rfc3394Vectors {
		t.Run(v.section, func(t *testing.T) {
			kek, data, want := mustHex(t, v.kek), mustHex(t, v.data), mustHex(t, v.wrapped)
			got, err := Wrap(kek, data)
			if err != nil {
				t.Fatalf("Wrap: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Wrap = %X, want %X", got, want)
			}
			plain, err := Unwrap(kek, want)
			if err != nil {
				t.Fatalf("Unwrap: %v", err)
			}
			if !bytes.Equal(plain, data) {
				t.Fatalf("Unwrap = %X, want %X", plain, data)
			}
		})
	}
}

func TestWrapDoesNotModifyInputs(t *testing.T) {
	v := rfc3394Vectors[5]
	kek, data := mustHex(t, v.kek), mustHex(t, v.data)
	kek0, data0 := bytes.Clone(kek), bytes.Clone(data)
	w, err := Wrap(kek, data)
	if err != nil {
		t.Fatal(err)
	}
	w0 := bytes.Clone(w)
	if _, err := Unwrap(kek, w); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kek, kek0) || !bytes.Equal(data, data0) || !bytes.Equal(w, w0) {
		t.Fatal("Wrap or Unwrap modified an input")
	}
}

func TestWrapRoundTripSizes(t *testing.T) {
	for _, kl := range []int{16, 24, 32} {
		kek := bytes.Repeat([]byte{byte(kl)}, kl)
		for dl := 16; dl <= 128; dl += 8 {
			data := make([]byte, dl)
			for i := range data {
				data[i] = byte(i*7 + dl)
			}
			w, err := Wrap(kek, data)
			if err != nil {
				t.Fatalf("kek %d data %d: %v", kl, dl, err)
			}
			if len(w) != dl+8 {
				t.Fatalf("kek %d data %d: wrapped length %d", kl, dl, len(w))
			}
			p, err := Unwrap(kek, w)
			if err != nil || !bytes.Equal(p, data) {
				t.Fatalf("kek %d data %d: round trip failed: %v", kl, dl, err)
			}
		}
	}
}

func TestWrapRejectsBadSizes(t *testing.T) {
	good := make([]byte, 32)
	for _, kl := range []int{0, 8, 15, 17, 31, 33, 64} {
		if _, err := Wrap(make([]byte, kl), good); err == nil || !strings.Contains(err.Error(), "16, 24 or 32") {
			t.Errorf("Wrap with %d-byte KEK: err = %v", kl, err)
		}
		if _, err := Unwrap(make([]byte, kl), make([]byte, 40)); err == nil {
			t.Errorf("Unwrap with %d-byte KEK succeeded", kl)
		}
	}
	for _, dl := range []int{0, 8, 12, 17, 33} {
		if _, err := Wrap(good, make([]byte, dl)); err == nil || !strings.Contains(err.Error(), "at least 16 bytes") {
			t.Errorf("Wrap of %d bytes: err = %v", dl, err)
		}
	}
	for _, wl := range []int{0, 8, 16, 20, 41} {
		_, err := Unwrap(good, make([]byte, wl))
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Got != wl {
			t.Errorf("Unwrap of %d bytes: err = %v", wl, err)
		}
	}
}

func TestUnwrapWrongKEK(t *testing.T) {
	v := rfc3394Vectors[5]
	kek, wrapped := mustHex(t, v.kek), mustHex(t, v.wrapped)
	other := bytes.Clone(kek)
	other[31] ^= 1
	p, err := Unwrap(other, wrapped)
	if p != nil {
		t.Fatal("Unwrap returned bytes on failure")
	}
	var ue *UnwrapError
	if !errors.As(err, &ue) || !errors.Is(err, ErrIntegrity) {
		t.Fatalf("err = %#v, want *UnwrapError wrapping ErrIntegrity", err)
	}
	if ue.KEKID != KEKIDOf(other) {
		t.Fatalf("KEKID = %s, want %s", ue.KEKID, KEKIDOf(other))
	}
	want := "unwrap failed: this string was not wrapped with KEK " + KEKIDOf(other) + " (integrity check failed) — or it is corrupt"
	if err.Error() != want {
		t.Fatalf("message = %q\nwant      %q", err.Error(), want)
	}
}

// Every single-bit change anywhere in the wrapped bytes must fail.
func TestUnwrapDetectsEveryBitFlip(t *testing.T) {
	v := rfc3394Vectors[5]
	kek, wrapped := mustHex(t, v.kek), mustHex(t, v.wrapped)
	for i := range wrapped {
		for bit := 0; bit < 8; bit++ {
			w := bytes.Clone(wrapped)
			w[i] ^= 1 << bit
			if _, err := Unwrap(kek, w); !errors.Is(err, ErrIntegrity) {
				t.Fatalf("flip byte %d bit %d: err = %v", i, bit, err)
			}
		}
	}
}

func FuzzWrapRoundTrip(f *testing.F) {
	for _, v := range rfc3394Vectors {
		f.Add(mustHex(f, v.kek), mustHex(f, v.data))
	}
	f.Add(make([]byte, 32), make([]byte, 40))
	f.Fuzz(func(t *testing.T, kek, data []byte) {
		kek = fitKEK(kek)
		data = fitData(data)
		w, err := Wrap(kek, data)
		if err != nil {
			t.Fatalf("Wrap(%d-byte KEK, %d bytes): %v", len(kek), len(data), err)
		}
		p, err := Unwrap(kek, w)
		if err != nil {
			t.Fatalf("Unwrap: %v", err)
		}
		if !bytes.Equal(p, data) {
			t.Fatal("round trip changed the data")
		}
	})
}

func FuzzUnwrapTampered(f *testing.F) {
	for _, v := range rfc3394Vectors {
		f.Add(mustHex(f, v.kek), mustHex(f, v.data), uint16(0), byte(1))
	}
	f.Add(make([]byte, 32), make([]byte, 32), uint16(39), byte(0x80))
	f.Fuzz(func(t *testing.T, kek, data []byte, pos uint16, xor byte) {
		if xor == 0 {
			xor = 1
		}
		kek = fitKEK(kek)
		data = fitData(data)
		w, err := Wrap(kek, data)
		if err != nil {
			t.Fatal(err)
		}
		w[int(pos)%len(w)] ^= xor
		if p, err := Unwrap(kek, w); err == nil || p != nil {
			t.Fatalf("tampered byte %d (xor %#x) unwrapped without error", int(pos)%len(w), xor)
		}
	})
}

// fitKEK turns any fuzz input into a 16-, 24- or 32-byte KEK.
func fitKEK(b []byte) []byte {
	n := 16 + 8*(len(b)%3)
	out := make([]byte, n)
	copy(out, b)
	return out
}

// fitData turns any fuzz input into 16+ bytes in 8-byte steps.
func fitData(b []byte) []byte {
	n := len(b)
	if n < 16 {
		n = 16
	}
	n = (n + 7) &^ 7
	if n > 4096 {
		n = 4096
	}
	out := make([]byte, n)
	copy(out, b)
	return out
}
