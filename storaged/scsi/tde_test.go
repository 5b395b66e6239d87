package scsi

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// tdeDrive is a minimal in-process drive for the TDE helpers: it answers
// INQUIRY and SPIN/SPOUT from the reference's example pages and keeps the
// encryption state. Integration against the real vtl is in ./vtltest.
type tdeDrive struct {
	noSPIN   bool // answer SPIN/SPOUT with 05/20/00
	lying    bool // accept SPOUT, keep reporting disabled
	algIndex byte
	noCKOD   bool
	devType  byte

	enc, dec byte
	idx      byte
	kic      uint32
	ukad     []byte
	lastKey  []byte
	sawKey   bool
}

func sense(key, asc, ascq byte) Result {
	s := make([]byte, 18)
	s[0], s[2], s[7], s[12], s[13] = 0x70, key, 10, asc, ascq
	return check(s)
}

func (d *tdeDrive) do(c *Command) (Result, error) {
	switch c.CDB[0] {
	case OpInquiry:
		q := make([]byte, 36)
		q[0], q[1], q[2], q[3], q[4] = d.devType, 0x80, 6, 2, 31
		copy(q[8:], "IBM     ULT3580-TD6     G350")
		return reply(c, q), nil
	case OpSecurityProtocolIn, OpSecurityProtocolOut:
		if d.noSPIN {
			return sense(5, 0x20, 0), nil
		}
	}
	switch c.CDB[0] {
	case OpSecurityProtocolIn:
		page := binary.BigEndian.Uint16(c.CDB[2:4])
		if c.CDB[1] == 0 {
			return reply(c, []byte{0, 0, 0, 0, 0, 0, 0, 2, 0, 0x20}), nil
		}
		switch page {
		case 0x0010:
			dec := fmt.Sprintf("00 10 00 28 09 00*15 %02X 00 00 14 BA 8C 00 20 00 3C 00 20 ED 00 00 00 00 00 00 00 00 01 00 14", d.algIndex)
			return reply(c, hxNoT(dec)), nil
		case 0x0011:
			return reply(c, []byte{0, 0x11, 0, 1, 0}), nil
		case 0x0012:
			caps := hxNoT("00 12 00 0C 01 07 00 07 00*8")
			if d.noCKOD {
				caps[5] = 3
			}
			return reply(c, caps), nil
		case 0x0020:
			p := make([]byte, 24)
			binary.BigEndian.PutUint16(p[0:], 0x20)
			p[4], p[5], p[6], p[7] = 0x42, d.enc, d.dec, d.idx
			binary.BigEndian.PutUint32(p[8:], d.kic)
			p[12] = 0x10
			if len(d.ukad) > 0 {
				p = append(p, 0, 1, 0, byte(len(d.ukad)))
				p = append(p, d.ukad...)
			}
			binary.BigEndian.PutUint16(p[2:], uint16(len(p)-4))
			return reply(c, p), nil
		case 0x0021:
			p := hxNoT("00 21 00 0C 00*7 05 05 01 00 00")
			if len(d.ukad) > 0 {
				p = append(p, 0, 1, 0, byte(len(d.ukad)))
				p = append(p, d.ukad...)
				binary.BigEndian.PutUint16(p[2:], uint16(len(p)-4))
			}
			return reply(c, p), nil
		}
		return sense(5, 0x24, 0), nil
	case OpSecurityProtocolOut:
		p := c.Data
		if binary.BigEndian.Uint32(c.CDB[6:10]) != uint32(len(p)) || len(p) < 20 || int(binary.BigEndian.Uint16(p[2:]))+4 != len(p) {
			return sense(5, 0x1A, 0), nil
		}
		if p[8] != d.algIndex {
			return sense(5, 0x26, 0), nil
		}
		kl := int(binary.BigEndian.Uint16(p[18:]))
		d.lastKey = append([]byte(nil), p[20:20+kl]...)
		d.sawKey = d.sawKey || kl > 0
		d.kic++
		if d.lying {
			return Result{}, nil
		}
		d.enc, d.dec, d.idx = p[6], p[7], p[8]
		d.ukad = nil
		if r := p[20+kl:]; len(r) >= 4 {
			d.ukad = append([]byte(nil), r[4:4+int(binary.BigEndian.Uint16(r[2:]))]...)
		}
		if d.enc == 0 && d.dec == 0 {
			d.idx = 0
		}
		return Result{}, nil
	}
	return sense(5, 0x20, 0), nil
}

func hxNoT(s string) []byte { return hx(&testing.T{}, s) }

func newTDE(d *tdeDrive) (*Device, *fakeTransport) {
	if d.algIndex == 0 {
		d.algIndex = 1
	}
	if d.devType == 0 {
		d.devType = TypeTape
	}
	ft := &fakeTransport{do: d.do}
	return NewDevice(ft), ft
}

func TestProbeAME(t *testing.T) {
	drv := &tdeDrive{algIndex: 3}
	dev, _ := newTDE(drv)
	p, err := dev.Probe()
	if err != nil {
		t.Fatal(err)
	}
	if !p.AME || p.AlgorithmIndex != 3 || p.KeySize != 32 || p.MaxUKAD != 32 || !p.CKOD || !p.KADFormatCapable || p.Inquiry.Vendor != "IBM" {
		t.Fatalf("%+v", p)
	}
	if p.Err() != nil {
		t.Fatal(p.Err())
	}
	js, err := json.Marshal(p)
	if err != nil || !strings.Contains(string(js), `"ame":true`) || !strings.Contains(string(js), `"algorithm_index":3`) {
		t.Fatalf("%s %v", js, err)
	}
	if !strings.Contains(p.String(), "AES-256-GCM") {
		t.Error(p.String())
	}
}

func TestProbeNoAME(t *testing.T) {
	dev, _ := newTDE(&tdeDrive{noSPIN: true})
	p, err := dev.Probe()
	if err != nil {
		t.Fatal(err)
	}
	want := "no application-managed encryption: SECURITY PROTOCOL IN not supported (ILLEGAL REQUEST 20/00)"
	if p.AME || p.Reason != want {
		t.Fatalf("AME %t reason %q", p.AME, p.Reason)
	}
	_, err = dev.SetKey(make([]byte, 32), SetKeyOpts{})
	if !IsNoAME(err) || !strings.Contains(err.Error(), want) {
		t.Fatalf("SetKey on no-AME drive: %v", err)
	}
	dev, _ = newTDE(&tdeDrive{devType: TypeMediumChanger})
	p, err = dev.Probe()
	if err != nil || p.AME || !strings.Contains(p.Reason, "medium changer, not a tape drive") {
		t.Fatalf("%+v %v", p, err)
	}
}

func TestSetKeyClearReadBack(t *testing.T) {
	drv := &tdeDrive{algIndex: 1}
	dev, ft := newTDE(drv)
	key := bytes.Repeat([]byte{0x5A}, 32)
	st, err := dev.SetKey(key, SetKeyOpts{UKAD: []byte("fp:0123456789abcdef"), CKOD: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.EncryptionMode != EncryptOn || st.DecryptionMode != DecryptMixed || st.KeyInstanceCounter != 1 {
		t.Fatalf("%+v", st)
	}
	if !bytes.Equal(drv.lastKey, key) {
		t.Fatal("drive did not receive the key")
	}
	// Find the SPOUT and check the page the drive got.
	var spout *Command
	for i := range ft.cmds {
		if ft.cmds[i].CDB[0] == OpSecurityProtocolOut {
			spout = &ft.cmds[i]
		}
	}
	if spout == nil {
		t.Fatal("no SPOUT sent")
	}
	want := append(hx(t, "00 10 00 47 40 04 02 03 01 00 00 00*7 00 20"), key...)
	want = append(want, hx(t, `00 00 00 13 "fp:0123456789abcdef"`)...)
	if !bytes.Equal(spout.Data, want) {
		t.Fatalf("SPOUT page\n got % X\nwant % X", spout.Data, want)
	}
	if spout.Timeout != QuickTimeout {
		t.Fatalf("SPOUT timeout %v", spout.Timeout)
	}
	n, err := dev.NextBlockStatus()
	if err != nil || n.Status != BlockStatusDecryptable {
		t.Fatalf("%+v %v", n, err)
	}
	if u, _ := UKAD(n.KADs); string(u) != "fp:0123456789abcdef" {
		t.Fatalf("NBES U-KAD %q", u)
	}
	st, err = dev.Clear()
	if err != nil || !st.Cleared() || st.KeyInstanceCounter != 2 {
		t.Fatalf("clear: %+v %v", st, err)
	}
	if len(drv.lastKey) != 0 {
		t.Fatal("clear sent key bytes")
	}
}

func TestSetKeyParameterBufferZeroed(t *testing.T) {
	drv := &tdeDrive{}
	var seen []byte
	dev, ft := newTDE(drv)
	inner := ft.do
	ft.do = func(c *Command) (Result, error) {
		if c.CDB[0] == OpSecurityProtocolOut {
			seen = c.Data // the live buffer, not a copy
		}
		return inner(c)
	}
	key := bytes.Repeat([]byte{0xC3}, 32)
	if _, err := dev.SetKey(key, SetKeyOpts{}); err != nil {
		t.Fatal(err)
	}
	if seen == nil || bytes.Contains(seen, key[:8]) || !bytes.Equal(seen, make([]byte, len(seen))) {
		t.Fatalf("SPOUT buffer not zeroed: % X", seen)
	}
	if !bytes.Equal(key, bytes.Repeat([]byte{0xC3}, 32)) {
		t.Fatal("caller's key modified")
	}
}

func TestSetKeyLyingDrive(t *testing.T) {
	dev, _ := newTDE(&tdeDrive{lying: true})
	key := bytes.Repeat([]byte{0x77}, 32)
	_, err := dev.SetKey(key, SetKeyOpts{})
	if !IsKeyNotTaken(err) {
		t.Fatalf("lying drive: %v", err)
	}
	if !strings.Contains(err.Error(), "expected encryption encrypt and decryption mixed, drive reports disable/disable") {
		t.Fatal(err)
	}
	for _, frag := range []string{"7777", "77 77", "wwww"} {
		if strings.Contains(strings.ToLower(err.Error()), frag) {
			t.Fatalf("key material in error %q", err)
		}
	}
}

func TestSetKeyValidation(t *testing.T) {
	dev, _ := newTDE(&tdeDrive{noCKOD: true})
	if _, err := dev.SetKey(make([]byte, 16), SetKeyOpts{}); err == nil || !strings.Contains(err.Error(), "key of 16 bytes") {
		t.Fatalf("short key: %v", err)
	}
	if _, err := dev.SetKey(make([]byte, 32), SetKeyOpts{UKAD: make([]byte, 33)}); err == nil || !strings.Contains(err.Error(), "exceeds the drive's limit of 32") {
		t.Fatalf("long U-KAD: %v", err)
	}
	if _, err := dev.SetKey(make([]byte, 32), SetKeyOpts{CKOD: true}); err == nil || !strings.Contains(err.Error(), "CKOD") {
		t.Fatalf("CKOD unsupported: %v", err)
	}
}

// A unit attention on SPIN/SPOUT (command not executed) is retried.
func TestTDERetriesUnitAttention(t *testing.T) {
	drv := &tdeDrive{}
	dev, ft := newTDE(drv)
	ua := 2
	inner := ft.do
	ft.do = func(c *Command) (Result, error) {
		if c.CDB[0] == OpSecurityProtocolIn && ua > 0 {
			ua--
			return sense(6, 0x28, 0), nil
		}
		return inner(c)
	}
	st, err := dev.Status()
	if err != nil || !st.Cleared() {
		t.Fatalf("%+v %v", st, err)
	}
	if ua != 0 {
		t.Fatal("UAs not consumed")
	}
}

// SPIN with a page longer than the first allocation is re-issued.
func TestSPINReissuesLongPage(t *testing.T) {
	big := make([]byte, 9000)
	binary.BigEndian.PutUint16(big[0:], 0x20)
	binary.BigEndian.PutUint16(big[2:], uint16(len(big)-4))
	ft := &fakeTransport{do: func(c *Command) (Result, error) { return reply(c, big), nil }}
	dev := NewDevice(ft)
	b, err := dev.SecurityProtocolIn(0x20, 0x20)
	if err != nil || len(b) != 9000 || len(ft.cmds) != 2 || binary.BigEndian.Uint32(ft.cmds[1].CDB[6:10]) != 9000 {
		t.Fatalf("len %d cmds %d err %v", len(b), len(ft.cmds), err)
	}
}

func TestVerifyEncrypted(t *testing.T) {
	nbes := map[string]string{
		"plain": "00 21 00 0C 00*8 03 00 00 00",
		"good":  `00 21 00 14 00*7 01 05 01 00 00 | 00 01 00 04 "fp:1"`,
		"other": `00 21 00 14 00*7 01 05 01 00 00 | 00 01 00 04 "fp:2"`,
	}
	for name, page := range nbes {
		dev, ft := script(t,
			func(c *Command) Result { return Result{} },
			func(c *Command) Result { return reply(c, hx(t, page)) },
		)
		n, err := dev.VerifyEncrypted(7, []byte("fp:1"))
		if !bytes.Equal(ft.cmds[0].CDB, Locate16CDB(LocateBlock, 7, 0, false, false)) {
			t.Fatalf("%s: first command % X", name, ft.cmds[0].CDB)
		}
		switch name {
		case "good":
			if err != nil || n.Status != BlockStatusDecryptable {
				t.Fatalf("good: %v", err)
			}
		case "plain":
			if !IsNotEncrypted(err) || !strings.Contains(err.Error(), "block 7 was not encrypted as required: next block status says \"not encrypted\"") {
				t.Fatalf("plain: %v", err)
			}
		case "other":
			if !IsNotEncrypted(err) || !strings.Contains(err.Error(), `U-KAD "fp:2" recorded, expected "fp:1"`) {
				t.Fatalf("other: %v", err)
			}
		}
	}
}

// 2A/0D (capabilities changed) drops the cached probe: SetKey probes again.
func TestCapabilitiesChangedReprobes(t *testing.T) {
	drv := &tdeDrive{}
	dev, ft := newTDE(drv)
	if _, err := dev.Probe(); err != nil {
		t.Fatal(err)
	}
	inner := ft.do
	once := true
	ft.do = func(c *Command) (Result, error) {
		if c.CDB[0] == OpSecurityProtocolIn && once {
			once = false
			return sense(6, 0x2A, 0x0D), nil
		}
		return inner(c)
	}
	if _, err := dev.Status(); err != nil {
		t.Fatal(err)
	}
	drv.algIndex = 2 // the drive now reports another index
	inquiries := 0
	start := len(ft.cmds)
	if _, err := dev.SetKey(make([]byte, 32), SetKeyOpts{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range ft.cmds[start:] {
		if c.CDB[0] == OpInquiry {
			inquiries++
		}
		if c.CDB[0] == OpSecurityProtocolOut && c.Data[8] != 2 {
			t.Fatalf("SPOUT used algorithm index %d after the capabilities changed", c.Data[8])
		}
	}
	if inquiries != 1 {
		t.Fatalf("%d re-probes", inquiries)
	}
}
