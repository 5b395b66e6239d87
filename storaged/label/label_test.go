package label

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/label-v1.bin from goldenLabel")

func goldenLabel() Label {
	return Label{
		Volume:    "TW0001L6",
		Pool:      "Offsite",
		MediaType: "LTO-6",
		LabelTime: time.Date(2026, 11, 22, 5, 30, 0, 123456789, time.UTC),
		BlockSize: 1 << 20,
		Storage:   "storaged-1",
		Encryption: Encryption{
			Encrypted:   true,
			Scheme:      "v1",
			KEKID:       "3f2a9c0d11e4b7a8",
			Fingerprint: "a1b2c3d4e5f60718",
		},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, l := range []Label{
		goldenLabel(),
		{Volume: "CLEAR1", BlockSize: 262144, LabelTime: time.Date(2000, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))},
		{Volume: strings.Repeat("é", 32), Pool: strings.Repeat("p", MaxNameLen), MediaType: strings.Repeat("m", MaxMediaTypeLen),
			Storage: strings.Repeat("s", MaxNameLen), BlockSize: MaxBlockSize, LabelTime: time.Now(),
			Encryption: Encryption{Encrypted: true, Scheme: strings.Repeat("b", MaxSchemeLen), KEKID: strings.Repeat("k", MaxIDLen), Fingerprint: strings.Repeat("f", MaxIDLen)}},
	} {
		blk, err := Encode(l)
		if err != nil {
			t.Fatalf("Encode(%v): %v", l, err)
		}
		if len(blk) != Size || string(blk[:8]) != Magic {
			t.Fatalf("block of %d bytes starting %q", len(blk), blk[:8])
		}
		got, err := Decode(blk)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if got.Version != Version || !got.LabelTime.Equal(l.LabelTime) || got.LabelTime.Location() != time.UTC {
			t.Fatalf("version %d time %v, want %d %v UTC", got.Version, got.LabelTime, Version, l.LabelTime)
		}
		got.Version, got.LabelTime = 0, l.LabelTime
		if got != l {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, l)
		}
	}
}

func TestGolden(t *testing.T) {
	path := filepath.Join("testdata", "label-v1.bin")
	blk, err := Encode(goldenLabel())
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, blk, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(blk, want) {
		t.Fatalf("Encode differs from %s: the v1 format changed; a change needs a new version", path)
	}
	l, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	l.Version = 0
	if l != goldenLabel() {
		t.Fatalf("golden decodes to %+v", l)
	}
	// The layout the README documents, byte for byte.
	if v := binary.BigEndian.Uint16(want[8:]); v != 1 {
		t.Fatalf("version field %d", v)
	}
	if h := binary.BigEndian.Uint16(want[10:]); h != 32 {
		t.Fatalf("header length %d", h)
	}
	n := int(binary.BigEndian.Uint16(want[12:]))
	body := want[32 : 32+n]
	if body[0] != '{' || body[n-1] != '\n' || !bytes.Contains(body, []byte(`"volume": "TW0001L6"`)) ||
		!bytes.Contains(body, []byte(`"label_time": "2026-11-22T05:30:00.123456789Z"`)) {
		t.Fatalf("body:\n%s", body)
	}
	if bytes.ContainsFunc(want[32+n:], func(r rune) bool { return r != 0 }) {
		t.Fatal("padding not zero")
	}
}

func TestDecodeErrors(t *testing.T) {
	good, err := Encode(goldenLabel())
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte {
		b := bytes.Clone(good)
		return f(b)
	}
	// Re-checksummed after a change, to reach the checks behind the CRC.
	resum := func(b []byte) []byte {
		clear(b[16:20])
		binary.BigEndian.PutUint32(b[16:], crc32c(b))
		return b
	}
	cases := []struct {
		name string
		blk  []byte
		want error
	}{
		{"empty", nil, ErrNotTapeward},
		{"ansi VOL1", []byte("VOL1TW0001              " + strings.Repeat(" ", 56)), ErrNotTapeward},
		{"zeros", make([]byte, Size), ErrNotTapeward},
		{"bareos-like", append([]byte("Bareos 2.0 immortal\n"), make([]byte, 200)...), ErrNotTapeward},
		{"magic lowercase", mod(func(b []byte) []byte { b[0] = 't'; return b }), ErrNotTapeward},
		{"flipped body bit", mod(func(b []byte) []byte { b[40] ^= 1; return b }), ErrCorrupt},
		{"flipped padding bit", mod(func(b []byte) []byte { b[Size-1] ^= 0x80; return b }), ErrCorrupt},
		{"flipped checksum", mod(func(b []byte) []byte { b[17] ^= 1; return b }), ErrCorrupt},
		{"truncated", good[:Size-1], ErrCorrupt},
		{"extended", append(bytes.Clone(good), 0), ErrCorrupt},
		{"version 0", mod(func(b []byte) []byte { b[9] = 0; return resum(b) }), ErrCorrupt},
		{"version 2", mod(func(b []byte) []byte { b[9] = 2; return b }), ErrNewerVersion},
		{"version 2 any size", append([]byte(Magic+"\x00\x02"), make([]byte, 4000)...), ErrNewerVersion},
		{"header length", mod(func(b []byte) []byte { b[11] = 64; return resum(b) }), ErrCorrupt},
		{"body length 0", mod(func(b []byte) []byte { b[12], b[13] = 0, 0; return resum(b) }), ErrCorrupt},
		{"body length short", mod(func(b []byte) []byte { b[13] -= 10; return resum(b) }), ErrCorrupt},
		{"body length huge", mod(func(b []byte) []byte { b[12], b[13] = 0xFF, 0xFF; return resum(b) }), ErrCorrupt},
		{"reserved byte", mod(func(b []byte) []byte { b[25] = 1; return resum(b) }), ErrCorrupt},
		{"bad json", mod(func(b []byte) []byte { b[32] = '['; return resum(b) }), ErrCorrupt},
		{"bad time", mod(func(b []byte) []byte {
			i := bytes.Index(b, []byte("2026-11"))
			b[i] = 'x'
			return resum(b)
		}), ErrCorrupt},
		{"no volume", mod(func(b []byte) []byte {
			i := bytes.Index(b, []byte("TW0001L6"))
			copy(b[i-1:], bytes.Repeat([]byte{' '}, 9)) // "volume": "        " + closing quote moved
			b[i-1] = '"'
			b[i] = '"'
			return resum(b)
		}), ErrCorrupt},
	}
	for _, c := range cases {
		_, err := Decode(c.blk)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Decode error %v, want %v", c.name, err, c.want)
		}
		for _, other := range []error{ErrNotTapeward, ErrCorrupt, ErrNewerVersion} {
			if other != c.want && errors.Is(err, other) {
				t.Errorf("%s: error %v also matches %v", c.name, err, other)
			}
		}
	}
}

func TestEncodeRefuses(t *testing.T) {
	g := goldenLabel()
	cases := map[string]func(l *Label){
		"no volume":           func(l *Label) { l.Volume = "" },
		"long volume":         func(l *Label) { l.Volume = strings.Repeat("v", MaxNameLen+1) },
		"control char":        func(l *Label) { l.Pool = "a\nb" },
		"invalid utf8":        func(l *Label) { l.Storage = "\xff" },
		"zero block size":     func(l *Label) { l.BlockSize = 0 },
		"huge block size":     func(l *Label) { l.BlockSize = MaxBlockSize + 1 },
		"no time":             func(l *Label) { l.LabelTime = time.Time{} },
		"encrypted no kek":    func(l *Label) { l.Encryption.KEKID = "" },
		"encrypted no scheme": func(l *Label) { l.Encryption.Scheme = "" },
		"encrypted no fp":     func(l *Label) { l.Encryption.Fingerprint = "" },
		"clear with fp":       func(l *Label) { l.Encryption.Encrypted = false; l.Encryption.Scheme, l.Encryption.KEKID = "", "" },
		"wrapped key as fp": func(l *Label) {
			l.Encryption.Fingerprint = "qZt1l3n3bqkq1oV0yq0yXz4w1lB9U3m6hYVZc0bQ2r1XWkI5r9c3Dg+/AbCdEfGhIjKl"
		},
		"fp with base64 symbol": func(l *Label) { l.Encryption.Fingerprint = "ab+/cd" },
	}
	for name, f := range cases {
		l := g
		f(&l)
		blk, err := Encode(l)
		if !errors.Is(err, ErrInvalid) || blk != nil {
			t.Errorf("%s: Encode = %d bytes, %v; want ErrInvalid", name, len(blk), err)
		}
		if strings.Contains(name, "wrapped") && strings.Contains(err.Error(), l.Encryption.Fingerprint) {
			t.Errorf("%s: error echoes the value: %v", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	good, err := Encode(goldenLabel())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(Magic))
	f.Add(append([]byte(Magic+"\x00\x01\x00\x20\x00\x05"), make([]byte, 100)...))
	f.Add(make([]byte, Size))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrNotTapeward) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerVersion) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// Whatever decodes re-encodes to the same block.
		again, err := Encode(l)
		if err != nil {
			t.Fatalf("decoded label does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			l2, _ := Decode(again)
			if l2 != l {
				t.Fatalf("re-encoding changed the label: %+v vs %+v", l, l2)
			}
		}
	})
}

// TestEscrowEnvelopeField: the optional escrow fields round-trip; the
// original version-1 label (testdata/label-v1.bin, written before they
// existed) still decodes, with none; a body without them is byte-identical
// to the old encoding; an old reader (the old body struct) reads a new
// label, ignoring them.
func TestEscrowEnvelopeField(t *testing.T) {
	l := goldenLabel()
	l.Encryption.EscrowKeyID = "0123456789abcdef"
	l.Encryption.EscrowEnvelope = strings.Repeat("QUJD", 30)
	blk, err := Encode(l)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(blk)
	if err != nil {
		t.Fatal(err)
	}
	got.Version = 0
	if got != l {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, l)
	}
	if !strings.Contains(l.String(), "escrow key 0123456789abcdef") || strings.Contains(l.String(), "QUJD") {
		t.Fatalf("String: %s", l)
	}

	old, err := os.ReadFile(filepath.Join("testdata", "label-v1.bin"))
	if err != nil {
		t.Fatal(err)
	}
	ol, err := Decode(old)
	if err != nil {
		t.Fatalf("old-format label: %v", err)
	}
	if ol.Encryption.EscrowKeyID != "" || ol.Encryption.EscrowEnvelope != "" || ol.Volume != "TW0001L6" {
		t.Fatalf("old-format label decodes to %+v", ol)
	}

	// An old reader: the body as it was before the escrow fields.
	type oldBody struct {
		Volume      string `json:"volume"`
		Fingerprint string `json:"key_fingerprint,omitempty"`
	}
	n := int(binary.BigEndian.Uint16(blk[12:]))
	var ob oldBody
	dec := json.NewDecoder(bytes.NewReader(blk[32 : 32+n]))
	if err := dec.Decode(&ob); err != nil || ob.Volume != "TW0001L6" || ob.Fingerprint != "a1b2c3d4e5f60718" {
		t.Fatalf("old reader: %+v %v", ob, err)
	}

	for name, e := range map[string]Encryption{
		"id without envelope": {Encrypted: true, Scheme: "v1", KEKID: "k", Fingerprint: "f", EscrowKeyID: "abc"},
		"envelope without id": {Encrypted: true, Scheme: "v1", KEKID: "k", Fingerprint: "f", EscrowEnvelope: "QUJD"},
		"not base64":          {Encrypted: true, Scheme: "v1", KEKID: "k", Fingerprint: "f", EscrowKeyID: "abc", EscrowEnvelope: "!!!!"},
		"too long":            {Encrypted: true, Scheme: "v1", KEKID: "k", Fingerprint: "f", EscrowKeyID: "abc", EscrowEnvelope: strings.Repeat("QUJD", 41)},
		"on a clear volume":   {EscrowKeyID: "abc", EscrowEnvelope: "QUJD"},
	} {
		bad := goldenLabel()
		bad.Encryption = e
		if _, err := Encode(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Encode error %v, want ErrInvalid", name, err)
		}
	}
}
