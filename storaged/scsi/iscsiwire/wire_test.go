package iscsiwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"testing"
	"time"
)

// RFC 7143 Appendix B.4 gives CRC32C examples as the bytes on the wire.
func TestCRC32CVectorsOfRFC7143(t *testing.T) {
	inc := make([]byte, 32)
	dec := make([]byte, 32)
	for i := range inc {
		inc[i] = byte(i)
		dec[i] = byte(31 - i)
	}
	for _, c := range []struct {
		name string
		in   []byte
		wire [4]byte
	}{
		{"32 zero bytes", make([]byte, 32), [4]byte{0xaa, 0x36, 0x91, 0x8a}},
		{"32 0xff bytes", bytes.Repeat([]byte{0xff}, 32), [4]byte{0x43, 0xab, 0xa8, 0x62}},
		{"incrementing", inc, [4]byte{0x4e, 0x79, 0xdd, 0x46}},
		{"decrementing", dec, [4]byte{0x5c, 0xdb, 0x3f, 0x11}},
	} {
		var got [4]byte
		binary.LittleEndian.PutUint32(got[:], CRC32C(c.in))
		if got != c.wire {
			t.Errorf("%s: wire bytes % x, want % x", c.name, got, c.wire)
		}
	}
}

func TestMessagesRoundTrip(t *testing.T) {
	cdb := [16]byte{0x0a, 0x01, 0, 0x10, 0}
	msgs := []Message{
		&SCSICommand{Immediate: true, Final: true, Write: true, Attr: AttrSimple, LUN: LUN(3), ITT: 7, ExpectedLength: 1 << 20, CmdSN: 9, ExpStatSN: 11, CDB: cdb},
		&SCSIResponse{Underflow: true, Response: RespCompleted, Status: 2, ITT: 7, StatSN: 1, ExpCmdSN: 2, MaxCmdSN: 3, ExpDataSN: 4, Residual: 5},
		&DataIn{Final: true, HasStatus: true, Underflow: true, Status: 0, LUN: LUN(1), ITT: 1, TTT: ReservedTag, StatSN: 2, ExpCmdSN: 3, MaxCmdSN: 4, DataSN: 5, BufferOffset: 6, Residual: 7},
		&DataOut{Final: true, LUN: LUN(300), ITT: 1, TTT: 2, ExpStatSN: 3, DataSN: 4, BufferOffset: 5},
		&R2T{LUN: LUN(2), ITT: 1, TTT: 2, StatSN: 3, ExpCmdSN: 4, MaxCmdSN: 5, R2TSN: 6, BufferOffset: 7, DesiredLength: 8},
		&LoginRequest{Transit: true, CSG: StageOperational, NSG: StageFullFeature, ISID: [6]byte{0x80, 1, 2, 3, 4, 5}, TSIH: 9, ITT: 1, CID: 2, CmdSN: 3, ExpStatSN: 4},
		&LoginResponse{Transit: true, CSG: StageSecurity, NSG: StageOperational, ISID: [6]byte{1}, TSIH: 3, ITT: 1, StatSN: 2, ExpCmdSN: 3, MaxCmdSN: 4, StatusClass: 2, StatusDetail: 1},
		&TextRequest{Immediate: true, Final: true, ITT: 1, TTT: ReservedTag, CmdSN: 2, ExpStatSN: 3},
		&TextResponse{Final: true, Continue: false, ITT: 1, TTT: 5, StatSN: 2, ExpCmdSN: 3, MaxCmdSN: 4},
		&LogoutRequest{Immediate: true, Reason: LogoutSession, ITT: 1, CID: 2, CmdSN: 3, ExpStatSN: 4},
		&LogoutResponse{Response: 0, ITT: 1, StatSN: 2, ExpCmdSN: 3, MaxCmdSN: 4, Time2Wait: 2, Time2Retain: 20},
		&NOPOut{Immediate: true, LUN: LUN(0), ITT: 1, TTT: ReservedTag, CmdSN: 2, ExpStatSN: 3},
		&NOPIn{ITT: ReservedTag, TTT: 9, StatSN: 2, ExpCmdSN: 3, MaxCmdSN: 4},
		&TaskMgmtRequest{Immediate: true, Function: TMFAbortTask, LUN: LUN(1), ITT: 2, RefTaskTag: 1, CmdSN: 3, ExpStatSN: 4, RefCmdSN: 5, ExpDataSN: 6},
		&TaskMgmtResponse{Response: TMFRespNoTask, ITT: 2, StatSN: 3, ExpCmdSN: 4, MaxCmdSN: 5},
		&AsyncMessage{LUN: LUN(1), StatSN: 1, ExpCmdSN: 2, MaxCmdSN: 3, Event: AsyncLogoutRequest, Param3: 5},
		&Reject{Reason: RejectProtocolError, StatSN: 1, ExpCmdSN: 2, MaxCmdSN: 3},
	}
	for _, m := range msgs {
		b := m.Encode()
		var back any
		switch b.Opcode() {
		case OpSCSICommand:
			v := DecodeSCSICommand(&b)
			back = &v
		case OpSCSIResponse:
			v := DecodeSCSIResponse(&b)
			back = &v
		case OpDataIn:
			v := DecodeDataIn(&b)
			back = &v
		case OpDataOut:
			v := DecodeDataOut(&b)
			back = &v
		case OpR2T:
			v := DecodeR2T(&b)
			back = &v
		case OpLogin:
			v := DecodeLoginRequest(&b)
			back = &v
		case OpLoginResp:
			v := DecodeLoginResponse(&b)
			back = &v
		case OpText:
			v := DecodeTextRequest(&b)
			back = &v
		case OpTextResp:
			v := DecodeTextResponse(&b)
			back = &v
		case OpLogout:
			v := DecodeLogoutRequest(&b)
			back = &v
		case OpLogoutResp:
			v := DecodeLogoutResponse(&b)
			back = &v
		case OpNOPOut:
			v := DecodeNOPOut(&b)
			back = &v
		case OpNOPIn:
			v := DecodeNOPIn(&b)
			back = &v
		case OpTaskMgmt:
			v := DecodeTaskMgmtRequest(&b)
			back = &v
		case OpTaskMgmtResp:
			v := DecodeTaskMgmtResponse(&b)
			back = &v
		case OpAsync:
			v := DecodeAsyncMessage(&b)
			back = &v
		case OpReject:
			v := DecodeReject(&b)
			back = &v
		default:
			t.Fatalf("%T encoded opcode 0x%02x", m, b.Opcode())
		}
		if !reflect.DeepEqual(back, m) {
			t.Errorf("%s: decoded %+v, want %+v", OpName(b.Opcode()), back, m)
		}
	}
}

// A few fields checked against their RFC byte positions directly, so that
// Encode and Decode cannot agree on a wrong offset.
func TestWireOffsets(t *testing.T) {
	c := (&SCSICommand{Final: true, Read: true, Attr: AttrSimple, LUN: LUN(1), ITT: 0x01020304, ExpectedLength: 0x100, CmdSN: 0x0a0b0c0d, CDB: [16]byte{0x08}}).Encode()
	if c[0] != 0x01 || c[1] != 0xc1 || c[8] != 0 || c[9] != 1 || binary.BigEndian.Uint16(c[8:]) != 0x0001 {
		t.Errorf("SCSI Command bytes 0..9 % x", c[:10])
	}
	if !bytes.Equal(c[16:20], []byte{1, 2, 3, 4}) || binary.BigEndian.Uint32(c[20:]) != 0x100 || !bytes.Equal(c[24:28], []byte{0xa, 0xb, 0xc, 0xd}) || c[32] != 0x08 {
		t.Errorf("SCSI Command % x", c[:])
	}
	l := (&LoginRequest{Transit: true, CSG: StageOperational, NSG: StageFullFeature, CID: 0x0102}).Encode()
	if l[0] != 0x43 || l[1] != 0x87 || l[20] != 1 || l[21] != 2 {
		t.Errorf("Login Request bytes % x", l[:24])
	}
	r := (&R2T{DesiredLength: 0x00112233}).Encode()
	if r[0] != 0x31 || r[1] != 0x80 || !bytes.Equal(r[44:48], []byte{0, 0x11, 0x22, 0x33}) {
		t.Errorf("R2T % x", r[:])
	}
	if n, ok := LUNNumber(LUN(5)); !ok || n != 5 || LUN(5) != 0x0005000000000000 {
		t.Errorf("LUN(5) = %016x → %d %v", LUN(5), n, ok)
	}
	if n, ok := LUNNumber(LUN(1000)); !ok || n != 1000 || LUN(1000)>>48 != 0x43e8 {
		t.Errorf("LUN(1000) = %016x → %d %v", LUN(1000), n, ok)
	}
}

func TestFramingWithDigestsAndPadding(t *testing.T) {
	for _, d := range []Digests{{}, {Header: true}, {Data: true}, {Header: true, Data: true}} {
		var buf bytes.Buffer
		w := NewWriter(&buf)
		w.Digests = d
		data := []byte("HeaderDigest=None\x00abc") // 21 bytes: 3 bytes of padding
		if err := w.Write(NewPDU(&TextRequest{Final: true, ITT: 5, TTT: ReservedTag}, data)); err != nil {
			t.Fatal(err)
		}
		if err := w.Write(NewPDU(&NOPOut{ITT: 6, TTT: ReservedTag}, nil)); err != nil {
			t.Fatal(err)
		}
		want := 48 + 24 + 48
		if d.Header {
			want += 8
		}
		if d.Data {
			want += 4
		}
		if buf.Len() != want {
			t.Fatalf("%+v: %d bytes on the wire, want %d", d, buf.Len(), want)
		}
		r := NewReader(bytes.NewReader(buf.Bytes()))
		r.Digests = d
		p, err := r.Read()
		if err != nil || p.Opcode() != OpText || !bytes.Equal(p.Data, data) || p.BHS.ITT() != 5 {
			t.Fatalf("%+v: read %v %v", d, p, err)
		}
		p, err = r.Read()
		if err != nil || p.Opcode() != OpNOPOut || len(p.Data) != 0 {
			t.Fatalf("%+v: second read %v %v", d, p, err)
		}
		if _, err := r.Read(); err != io.EOF {
			t.Fatalf("%+v: after the last PDU: %v, want EOF", d, err)
		}
		if !d.Header && !d.Data {
			continue
		}
		// One flipped bit in the data (or header) must be caught.
		bad := bytes.Clone(buf.Bytes())
		off := 48 + 4 // in the text data when digests are on
		if d.Header && !d.Data {
			off = 20 // in the ITT
		}
		if d.Header && d.Data {
			off = 48 + 4 + 2
		}
		bad[off] ^= 0x10
		r = NewReader(bytes.NewReader(bad))
		r.Digests = d
		_, err = r.Read()
		var de *DigestError
		if !errors.As(err, &de) || !errors.Is(err, ErrDigest) || de.Header != (d.Header && !d.Data) {
			t.Fatalf("%+v: corrupted byte %d read as %v", d, off, err)
		}
	}
}

func TestReaderRefusesOversizedSegmentsAndTruncation(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.Write(NewPDU(&DataOut{Final: true, ITT: 1}, make([]byte, 9000))); err != nil {
		t.Fatal(err)
	}
	r := NewReader(bytes.NewReader(buf.Bytes()))
	r.MaxData = 8192
	if _, err := r.Read(); !errors.Is(err, ErrTooLong) {
		t.Fatalf("9000-byte segment under an 8192 limit: %v", err)
	}
	r = NewReader(bytes.NewReader(buf.Bytes()[:100]))
	if _, err := r.Read(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated PDU: %v", err)
	}
}

func TestParseText(t *testing.T) {
	kvs, err := ParseText([]byte("InitiatorName=iqn.2026-12.io.tapeward:sd1\x00SessionType=Normal\x00\x00"))
	if err != nil || len(kvs) != 2 || kvs[0] != (KV{"InitiatorName", "iqn.2026-12.io.tapeward:sd1"}) || kvs[1].Value != "Normal" {
		t.Fatalf("ParseText = %v, %v", kvs, err)
	}
	if got := AppendText(nil, kvs...); string(got) != "InitiatorName=iqn.2026-12.io.tapeward:sd1\x00SessionType=Normal\x00" {
		t.Errorf("AppendText = %q", got)
	}
	for _, bad := range []string{"novalue\x00", "=x\x00", string(bytes.Repeat([]byte("k"), 64)) + "=1\x00"} {
		if _, err := ParseText([]byte(bad)); !errors.Is(err, ErrText) {
			t.Errorf("ParseText(%q) = %v, want ErrText", bad, err)
		}
	}
}

func TestNegotiationRules(t *testing.T) {
	for _, c := range []struct{ key, offered, mine, want string }{
		{"HeaderDigest", "CRC32C,None", "None,CRC32C", "CRC32C"},
		{"HeaderDigest", "None", "CRC32C", RejectValue},
		{"MaxBurstLength", "1048576", "262144", "262144"},
		{"DefaultTime2Wait", "0", "2", "2"},
		{"InitialR2T", "No", "Yes", "Yes"},
		{"InitialR2T", "No", "No", "No"},
		{"ImmediateData", "Yes", "No", "No"},
		{"MaxRecvDataSegmentLength", "262144", "65536", "65536"},
		{"X-com.example.Foo", "1", "", NotUnderstood},
	} {
		got, err := Negotiate(c.key, c.offered, c.mine)
		if err != nil || got != c.want {
			t.Errorf("Negotiate(%s, %s, %s) = %q, %v; want %q", c.key, c.offered, c.mine, got, err, c.want)
		}
	}
	if _, err := Negotiate("MaxBurstLength", "12", "262144"); err == nil {
		t.Error("MaxBurstLength=12 (below 512) accepted")
	}
	if _, err := Check("MaxBurstLength", "262144", "1048576"); err == nil {
		t.Error("a min-rule answer above the offer accepted")
	}
	if _, err := Check("HeaderDigest", "None", "CRC32C"); err == nil {
		t.Error("a list answer that was not offered accepted")
	}
	if v, err := Check("InitialR2T", "No", "Yes"); err != nil || v != "Yes" {
		t.Errorf("Check InitialR2T No→Yes = %q, %v", v, err)
	}
	p := DefaultParams()
	for _, kv := range []KV{{"HeaderDigest", "CRC32C"}, {"ImmediateData", "No"}, {"MaxRecvDataSegmentLength", "262144"}} {
		if err := p.Set(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	if !p.HeaderDigest || p.ImmediateData || p.MaxRecvDataSegmentLength != 262144 {
		t.Errorf("Set gave %+v", p)
	}
}

func TestBinaryValuesAndSerials(t *testing.T) {
	b, err := DecodeBinary("0x0a0B")
	if err != nil || !bytes.Equal(b, []byte{0x0a, 0x0b}) {
		t.Errorf("hex: % x %v", b, err)
	}
	b, err = DecodeBinary("0bAQID")
	if err != nil || !bytes.Equal(b, []byte{1, 2, 3}) {
		t.Errorf("base64: % x %v", b, err)
	}
	if _, err := DecodeBinary("secret"); err == nil {
		t.Error("a plain string decoded as binary")
	}
	if EncodeBinary([]byte{0xde, 0xad}) != "0xdead" {
		t.Error(EncodeBinary([]byte{0xde, 0xad}))
	}
	if !SerialLess(0xfffffff0, 5) || SerialLess(5, 0xfffffff0) || SerialLess(3, 3) {
		t.Error("serial number arithmetic wrong across the wrap")
	}
	s, err := ParseSenseSegment(SenseSegment([]byte{0x70, 0, 6}))
	if err != nil || !bytes.Equal(s, []byte{0x70, 0, 6}) {
		t.Errorf("sense segment: % x %v", s, err)
	}
	if _, err := ParseSenseSegment([]byte{0, 9, 1}); err == nil {
		t.Error("a SenseLength past the segment accepted")
	}
}

func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Digests = Digests{Header: true, Data: true}
	_ = w.Write(NewPDU(&SCSICommand{Final: true, Write: true, ITT: 1, ExpectedLength: 4}, []byte{1, 2, 3, 4, 5}))
	f.Add(buf.Bytes(), true)
	f.Add(make([]byte, 48), false)
	f.Fuzz(func(t *testing.T, b []byte, dig bool) {
		r := NewReader(bytes.NewReader(b))
		r.Digests = Digests{Header: dig, Data: dig}
		r.MaxData = 1 << 16
		for range 8 {
			p, err := r.Read()
			if err != nil {
				return
			}
			if len(p.Data) != p.BHS.DataSegmentLength() {
				t.Fatalf("data %d, header says %d", len(p.Data), p.BHS.DataSegmentLength())
			}
			_, _ = ParseText(p.Data)
			_, _ = ParseSenseSegment(p.Data)
		}
	})
}

// Wait consumes nothing: a deadline passing in Wait leaves the next PDU
// whole for Header.
func TestWaitConsumesNothing(t *testing.T) {
	cl, sv := net.Pipe()
	defer cl.Close()
	defer sv.Close()
	r := NewReader(cl)
	cl.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if err := r.Wait(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Wait with nothing sent: %v, want a deadline error", err)
	}
	cl.SetReadDeadline(time.Time{})
	go NewWriter(sv).Write(NewPDU(&NOPIn{ITT: 7, TTT: ReservedTag}, []byte("ping")))
	if err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	p, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if p.Opcode() != OpNOPIn || p.BHS.ITT() != 7 || string(p.Data) != "ping" {
		t.Fatalf("after Wait read %v %q", p, p.Data)
	}
}
