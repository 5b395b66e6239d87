package scsi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// §3.3: the stenc two-algorithm DEC capture, every field.
func TestDECStencTwoAlgorithms(t *testing.T) {
	b := hx(t, `00 10 00 3C 09 00*15
		01 00 00 14 8A 8C 00 20 00 3C 00 20 ED 00 00 00 00 00 00 00 00 01 00 14
		02 00 00 14 8A 8F 00 20 00 3C 00 20 D9 00 00 00 00 00 00 00 00 01 00 10`)
	c, err := ParseDEC(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.EXTDECC != 2 || c.CFGP != 1 || len(c.Algorithms) != 2 || !c.PageLengthMismatch {
		t.Fatalf("header: %+v", c)
	}
	want1 := AlgorithmDescriptor{Index: 1, Length: 20, AVFMV: true, DecryptC: 2, EncryptC: 2, AVFCLP: 2, KADFC: true, VCELBC: true,
		MaxUKAD: 32, MaxAKAD: 60, KeySize: 32, DKADC: 3, EEMCC: 2, RDMCC: 6, EAREM: true, Algorithm: 0x00010014}
	if c.Algorithms[0] != want1 {
		t.Errorf("algorithm 1:\n got %+v\nwant %+v", c.Algorithms[0], want1)
	}
	// 8F: KADFC, VCELBC, UKADF, AKADF; D9: DKAD 11, EEMC 01, RDMC 100, EAREM 1
	want2 := AlgorithmDescriptor{Index: 2, Length: 20, AVFMV: true, DecryptC: 2, EncryptC: 2, AVFCLP: 2, KADFC: true, VCELBC: true,
		UKADF: true, AKADF: true, MaxUKAD: 32, MaxAKAD: 60, KeySize: 32, DKADC: 3, EEMCC: 1, RDMCC: 4, EAREM: true, Algorithm: 0x00010010}
	if c.Algorithms[1] != want2 {
		t.Errorf("algorithm 2:\n got %+v\nwant %+v", c.Algorithms[1], want2)
	}
	if !c.Algorithms[0].IsAES256GCMHardware() || c.Algorithms[1].IsAES256GCMHardware() {
		t.Error("AES-256-GCM selection")
	}
	if !strings.Contains(c.String(), "AES-256-GCM") || !strings.Contains(c.String(), "AES-256-CCM") {
		t.Error(c.String())
	}
}

// §3.3: the mhVTL one-algorithm DEC, and its no-LTO-4-media variant.
func TestDECmhVTL(t *testing.T) {
	page := "00 10 00 28 01 00*15 01 00 00 14 %s 10 00 20 00 0C 00 20 09 00 00 00 00 00 00 00 00 01 00 14"
	c, err := ParseDEC(hx(t, fmt.Sprintf(page, "BA")))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Algorithms[0]
	want := AlgorithmDescriptor{Index: 1, Length: 20, AVFMV: true, MACC: true, DELBC: true, DecryptC: 2, EncryptC: 2,
		NonceC: 1, MaxUKAD: 32, MaxAKAD: 12, KeySize: 32, RDMCC: 4, EAREM: true, Algorithm: AlgorithmAES256GCM}
	if c.EXTDECC != 0 || c.CFGP != 1 || a != want {
		t.Fatalf("got %+v %+v", c, a)
	}
	c, err = ParseDEC(hx(t, fmt.Sprintf(page, "3A")))
	if err != nil || c.Algorithms[0].AVFMV || !c.Algorithms[0].IsAES256GCMHardware() {
		t.Fatalf("3A: %+v %v", c, err)
	}
}

// §11: the suggested emulator DEC.
func TestDECSuggested(t *testing.T) {
	c, err := ParseDEC(hx(t, "00 10 00 28 09 00*15 01 00 00 14 BA 8C 00 20 00 3C 00 20 ED 00 00 00 00 00 00 00 00 01 00 14"))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Algorithms[0]
	if c.EXTDECC != 2 || !a.AVFMV || a.AVFCLP != 2 || a.MaxAKAD != 60 || a.RDMCC != 6 || !a.KADFC {
		t.Fatalf("%+v", a)
	}
}

func TestDECRejectsMalformed(t *testing.T) {
	for name, s := range map[string]string{
		"wrong page":        "00 20 00 10 00*16",
		"length past data":  "00 10 00 28 01 00*15",
		"too short":         "00 10 00 04 00 00 00 00",
		"descriptor len 16": "00 10 00 24 01 00*15 01 00 00 10 00*16",
		"stray bytes":       "00 10 00 12 01 00*15 01 00",
		"header only":       "00 10",
	} {
		if _, err := ParseDEC(hx(t, s)); !errors.Is(err, ErrPage) {
			t.Errorf("%s: err %v, want ErrPage", name, err)
		}
	}
}

func TestPageLists(t *testing.T) {
	got, err := ParsePageList(hx(t, "00 00 00 0E 00 00 00 01 00 10 00 11 00 12 00 20 00 21"), PageTDEInSupport)
	if err != nil || fmt.Sprint(got) != "[0 1 16 17 18 32 33]" {
		t.Fatalf("in support: %v %v", got, err)
	}
	got, err = ParsePageList(hx(t, "00 01 00 02 00 10"), PageTDEOutSupport)
	if err != nil || len(got) != 1 || got[0] != 0x10 {
		t.Fatalf("out support: %v %v", got, err)
	}
	if _, err := ParsePageList(hx(t, "00 01 00 03 00 10 00"), PageTDEOutSupport); err == nil {
		t.Fatal("odd length accepted")
	}
	p, err := ParseSupportedProtocols(hx(t, "00 00 00 00 00 00 00 02 00 20"))
	if err != nil || !bytes.Equal(p, []byte{0, 0x20}) {
		t.Fatalf("protocols: % X %v", p, err)
	}
	if _, err := ParseSupportedProtocols(hx(t, "00 00 00 00 00 00 00 05 00 20")); err == nil {
		t.Fatal("overlong protocol list accepted")
	}
}

func TestKeyFormatsAndMgmt(t *testing.T) {
	f, err := ParseKeyFormats(hx(t, "00 11 00 01 00"))
	if err != nil || !bytes.Equal(f, []byte{0}) {
		t.Fatalf("% X %v", f, err)
	}
	f, err = ParseKeyFormats(hx(t, "00 11 00 02 00 00")) // mhVTL pads
	if err != nil || !bytes.Equal(f, []byte{0}) {
		t.Fatalf("mhVTL: % X %v", f, err)
	}
	f, err = ParseKeyFormats(hx(t, "00 11 00 02 00 02"))
	if err != nil || !bytes.Equal(f, []byte{0, 2}) {
		t.Fatalf("HP: % X %v", f, err)
	}
	m, err := ParseManagementCaps(hx(t, "00 12 00 0C 01 07 00 07 00*8"))
	if err != nil {
		t.Fatal(err)
	}
	want := ManagementCapabilities{LockC: true, CKODC: true, CKORPC: true, CKORLC: true, AITNC: true, LocalC: true, PublicC: true}
	if *m != want {
		t.Fatalf("%+v", m)
	}
	m, err = ParseManagementCaps(hx(t, "00 12 00 0C 00 03 00 04 00*8"))
	if err != nil || m.CKODC || !m.CKORPC || !m.AITNC || m.LocalC {
		t.Fatalf("partial caps: %+v %v", m, err)
	}
}

// §3.6 DES examples.
func TestDESExamples(t *testing.T) {
	s, err := ParseDES(hx(t, "00 20 00 14 00 00 00 00 00 00 00 00 10 00*11"))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Cleared() || s.KeyInstanceCounter != 0 || s.ParametersControl != 1 || s.NexusScope != ScopePublic || len(s.KADs) != 0 {
		t.Fatalf("power-on: %+v", s)
	}
	s, err = ParseDES(hx(t, `00 20 00 24 42 02 02 01 00 00 00 01 18 00 00 00 00*8 00 01 00 0C "Hello world!"`))
	if err != nil {
		t.Fatal(err)
	}
	if s.NexusScope != ScopeAll || s.KeyScope != ScopeAll || s.EncryptionMode != EncryptOn || s.DecryptionMode != DecryptOn ||
		s.AlgorithmIndex != 1 || s.KeyInstanceCounter != 1 || s.ParametersControl != 1 || !s.VCELB || s.RDMD || s.CEEMS != 0 {
		t.Fatalf("after set: %+v", s)
	}
	if len(s.KADs) != 1 || s.KADs[0].Type != KADTypeUKAD || s.KADs[0].Authenticated != 1 || string(s.KADs[0].Data) != "Hello world!" {
		t.Fatalf("KADs: %+v", s.KADs)
	}
	str := s.String()
	for _, w := range []string{"encryption encrypt", "decryption decrypt", "key instance counter 1", `U-KAD "Hello world!"`} {
		if !strings.Contains(str, w) {
			t.Errorf("String() %q lacks %q", str, w)
		}
	}
	js, err := json.Marshal(s)
	if err != nil || !strings.Contains(string(js), `"encryption_mode":"encrypt"`) || !strings.Contains(string(js), `"decryption_mode":"decrypt"`) {
		t.Fatalf("JSON %s %v", js, err)
	}
	// mhVTL: byte 4 0x21, PAGE LENGTH 0x20 but 24 bytes sent → rejected,
	// not misread.
	if _, err := ParseDES(hx(t, "00 20 00 20 21 02 03 01 00 00 00 05 00*12")); !errors.Is(err, ErrPage) {
		t.Fatalf("mhVTL bug page: %v", err)
	}
	if _, err := ParseDES(hx(t, "00 20 00 1C 42 02 03 01 00 00 00 01 10 00*11 00 01 00 08 41 42")); !errors.Is(err, ErrPage) {
		t.Fatalf("overrunning KAD: %v", err)
	}
}

// §3.7 NBES examples.
func TestNBESExamples(t *testing.T) {
	n, err := ParseNBES(hx(t, "00 21 00 0C 00*8 03 00 00 00"))
	if err != nil || n.Status != BlockStatusNotEncrypted || n.Status.Encrypted() || len(n.KADs) != 0 {
		t.Fatalf("plain: %+v %v", n, err)
	}
	n, err = ParseNBES(hx(t, `00 21 00 1C 00*7 01 05 01 00 00 | 00 01 00 0C "Hello world!"`))
	if err != nil {
		t.Fatal(err)
	}
	if n.LogicalObject != 1 || n.Status != BlockStatusDecryptable || n.AlgorithmIndex != 1 || n.KADFormat != 0 || !n.Status.Encrypted() {
		t.Fatalf("encrypted: %+v", n)
	}
	if u, ok := UKAD(n.KADs); !ok || string(u) != "Hello world!" {
		t.Fatalf("U-KAD: %+v", n.KADs)
	}
	n, err = ParseNBES(hx(t, `00 21 00 1C 00*7 02 06 01 00 02 | 00 01 00 0C "Hello world!"`))
	if err != nil || n.Status != BlockStatusNoKey || n.KADFormat != 2 || n.LogicalObject != 2 {
		t.Fatalf("status 6: %+v %v", n, err)
	}
	if !strings.Contains(n.String(), "lacks the key") {
		t.Error(n.String())
	}
	n, err = ParseNBES(hx(t, "00 21 00 0C 00*8 42 00 03 00"))
	if err != nil || n.CompressionStatus != 4 || n.Status != BlockStatusNotBlock || !n.EMES || !n.RDMDS {
		t.Fatalf("flags: %+v %v", n, err)
	}
	if _, err := ParseNBES(hx(t, "00 21 00 08 00*8")); !errors.Is(err, ErrPage) {
		t.Fatal("short NBES accepted")
	}
}

// §4.2: the exact parameter lists stenc and proxmox send.
func TestSDEBytes(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(0xA0 + i)
	}
	K := fmt.Sprintf("% X", key)
	cases := []struct {
		name string
		page SetDataEncryption
		cdb  string
		want string
	}{
		{"stenc -e on -d mixed", SetDataEncryption{Scope: ScopeAll, CEEM: 1, EncryptionMode: EncryptOn, DecryptionMode: DecryptMixed, AlgorithmIndex: 1, Key: key},
			"B5 20 00 10 00 00 00 00 00 34 00 00", "00 10 00 30 40 40 02 03 01 00 00 00 00 00 00 00 00 00 00 20 " + K},
		{"stenc -e on -d mixed KADF_C", SetDataEncryption{Scope: ScopeAll, CEEM: 1, EncryptionMode: EncryptOn, DecryptionMode: DecryptMixed, AlgorithmIndex: 1, KADFormat: 2, Key: key},
			"B5 20 00 10 00 00 00 00 00 34 00 00", "00 10 00 30 40 40 02 03 01 00 02 00 00 00 00 00 00 00 00 20 " + K},
		{"stenc -e on -d on Hello world!", SetDataEncryption{Scope: ScopeAll, CEEM: 1, EncryptionMode: EncryptOn, DecryptionMode: DecryptOn, AlgorithmIndex: 1, KADFormat: 2, Key: key,
			KADs: []KAD{{Type: KADTypeUKAD, Data: []byte("Hello world!")}}},
			"B5 20 00 10 00 00 00 00 00 44 00 00", "00 10 00 40 40 40 02 02 01 00 02 00*7 00 20 " + K + ` 00 00 00 0C "Hello world!"`},
		{"stenc -e off -d off", SetDataEncryption{Scope: ScopeAll, CEEM: 1, AlgorithmIndex: 1},
			"B5 20 00 10 00 00 00 00 00 14 00 00", "00 10 00 10 40 40 00 00 01 00 00 00*7 00 00"},
		{"proxmox set key", SetDataEncryption{Scope: ScopeAll, EncryptionMode: EncryptOn, DecryptionMode: DecryptMixed, AlgorithmIndex: 1, Key: key},
			"B5 20 00 10 00 00 00 00 00 34 00 00", "00 10 00 30 40 00 02 03 01 00 00 00 00 00 00 00 00 00 00 20 " + K},
		{"proxmox clear", *ClearPage(1),
			"B5 20 00 10 00 00 00 00 00 14 00 00", "00 10 00 10 40 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00"},
		{"LTFS set key with A-KAD", SetDataEncryption{Scope: ScopeAll, EncryptionMode: EncryptOn, DecryptionMode: DecryptMixed, AlgorithmIndex: 1, Key: key,
			KADs: []KAD{{Type: KADTypeAKAD, Data: []byte("DKi-12-bytes")}}},
			"B5 20 00 10 00 00 00 00 00 44 00 00", "00 10 00 40 40 00 02 03 01 00 00 00*7 00 20 " + K + ` 01 00 00 0C "DKi-12-bytes"`},
		{"stenc allow raw + ckod", SetDataEncryption{Scope: ScopeAll, CEEM: 1, RDMC: 2, CKOD: true, EncryptionMode: EncryptOn, DecryptionMode: DecryptMixed, AlgorithmIndex: 1, Key: key},
			"B5 20 00 10 00 00 00 00 00 34 00 00", "00 10 00 30 40 64 02 03 01 00 00 00 00 00 00 00 00 00 00 20 " + K},
		{"every flag", SetDataEncryption{Scope: ScopeLocal, Lock: true, CEEM: 3, RDMC: 3, SDK: true, CKOD: true, CKORP: true, CKORL: true, EncryptionMode: EncryptExternal, DecryptionMode: DecryptRaw, AlgorithmIndex: 7, KeyFormat: 2},
			"B5 20 00 10 00 00 00 00 00 14 00 00", "00 10 00 10 21 FF 01 01 07 02 00 00*7 00 00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.page.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if want := hx(t, c.want); !bytes.Equal(got, want) {
				t.Fatalf("page\n got % X\nwant % X", got, want)
			}
			cdb := SecurityProtocolOutCDB(SecProtoTapeEncrypt, PageSetDataEncryption, uint32(len(got)))
			if want := hx(t, c.cdb); !bytes.Equal(cdb, want) {
				t.Fatalf("CDB % X, want % X", cdb, want)
			}
			// The key never shows in String or %v / %#v.
			for _, s := range []string{c.page.String(), fmt.Sprintf("%v", &c.page), fmt.Sprintf("%#v", &c.page), fmt.Sprintf("%+v", c.page), fmt.Sprintf("%#v", c.page), fmt.Sprintf("%v", []SetDataEncryption{c.page})} {
				dec := strings.Trim(fmt.Sprint(key[:4]), "[]")
				if len(c.page.Key) > 0 && (strings.Contains(s, fmt.Sprintf("%X", key[:4])) || strings.Contains(s, fmt.Sprintf("%x", key[:4])) || strings.Contains(s, string(key[:4])) || strings.Contains(s, dec)) {
					t.Fatalf("key material in %q", s)
				}
			}
		})
	}
}

// §1: canonical SPIN CDBs.
func TestSPINCDBs(t *testing.T) {
	for page, want := range map[uint16]string{
		0x0010: "A2 20 00 10 00 00 00 00 20 00 00 00",
		0x0020: "A2 20 00 20 00 00 00 00 20 00 00 00",
		0x0021: "A2 20 00 21 00 00 00 00 20 00 00 00",
	} {
		if got := SecurityProtocolInCDB(0x20, page, 8192); !bytes.Equal(got, hx(t, want)) {
			t.Errorf("page %04X: % X", page, got)
		}
	}
	if got := SecurityProtocolInCDB(0, 0, 0x12345678); !bytes.Equal(got, hx(t, "A2 00 00 00 00 00 12 34 56 78 00 00")) {
		t.Errorf("proto 0: % X", got)
	}
}
