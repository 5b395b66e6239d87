package vtlwire

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// serveOne runs a device side on conn: it reads the hello, then answers
// every request with handler's response, until the connection closes.
func serveOne(t *testing.T, conn net.Conn, refuse string, handler func(*Request) *Response) {
	defer conn.Close()
	p, h, err := Accept(conn)
	if err != nil {
		t.Errorf("Accept: %v", err)
		return
	}
	defer p.Close()
	if h.Unit != "drive0" {
		refuse = "no unit " + h.Unit
	}
	if err := WriteHelloReply(conn, refuse); err != nil || refuse != "" {
		return
	}
	for {
		req, err := p.ReadRequest()
		if err != nil {
			return
		}
		if err := p.WriteResponse(handler(req)); err != nil {
			t.Errorf("WriteResponse: %v", err)
			return
		}
	}
}

func TestRoundTripNetPipe(t *testing.T) {
	cli, srv := net.Pipe()
	var got []*Request
	go serveOne(t, srv, "", func(r *Request) *Response {
		cp := *r
		cp.DataOut = append([]byte(nil), r.DataOut...)
		got = append(got, &cp)
		switch r.CDB[0] {
		case scsi.OpInquiry:
			return &Response{DataIn: []byte("0123456789"), Resid: int32(r.AllocLen - 10)}
		case scsi.OpWrite6:
			return &Response{}
		case scsi.OpTestUnitReady:
			return &Response{Status: scsi.StatusCheckCondition, Sense: []byte{0x70, 0, 2, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x3A, 0, 0, 0, 0, 0}}
		case scsi.OpRewind:
			return &Response{HostStatus: 3}
		}
		return &Response{Status: scsi.StatusBusy}
	})
	c := &Client{conn: cli, br: bufio.NewReader(cli), socket: "pipe", unit: "drive0"}
	if err := WriteHello(cli, "drive0"); err != nil {
		t.Fatal(err)
	}
	if _, err := readHelloReply(c.br); err != nil {
		t.Fatal(err)
	}

	inq := &scsi.Command{CDB: []byte{0x12, 0, 0, 0, 96, 0}, Dir: scsi.DirFromDevice, Data: make([]byte, 96), Timeout: 60 * time.Second}
	res, err := c.Do(inq)
	if err != nil || res.Status != 0 || res.Resid != 86 || string(inq.Data[:10]) != "0123456789" || res.Transferred(inq) != 10 {
		t.Fatalf("INQUIRY: %+v %v %q", res, err, inq.Data[:10])
	}
	block := bytes.Repeat([]byte{0xA5, 0x5A}, 1<<17)
	wr := &scsi.Command{CDB: scsi.Write6CDB(uint32(len(block))), Dir: scsi.DirToDevice, Data: block, Timeout: 1500 * time.Second}
	if res, err = c.Do(wr); err != nil || res.Status != 0 {
		t.Fatalf("WRITE: %+v %v", res, err)
	}
	tur := &scsi.Command{CDB: make([]byte, 6), Timeout: time.Minute}
	if res, err = c.Do(tur); err != nil || res.Status != scsi.StatusCheckCondition || len(res.Sense) != 18 || res.Sense[12] != 0x3A {
		t.Fatalf("TUR: %+v %v", res, err)
	}
	rw := &scsi.Command{CDB: []byte{1, 0, 0, 0, 0, 0}, Timeout: 600 * time.Second}
	if res, err = c.Do(rw); err != nil || res.HostStatus != 3 {
		t.Fatalf("REWIND: %+v %v", res, err)
	}
	spin := &scsi.Command{CDB: scsi.SecurityProtocolInCDB(0x20, 0x20, 8192), Dir: scsi.DirFromDevice, Data: make([]byte, 8192), Timeout: time.Minute}
	if res, err = c.Do(spin); err != nil || res.Status != scsi.StatusBusy {
		t.Fatalf("busy: %+v %v", res, err)
	}

	// What the device side decoded.
	if len(got) != 5 {
		t.Fatalf("%d requests", len(got))
	}
	if got[0].Dir != scsi.DirFromDevice || got[0].AllocLen != 96 || !bytes.Equal(got[0].CDB, inq.CDB) || got[0].Timeout != time.Minute {
		t.Errorf("INQUIRY request %+v", got[0])
	}
	if got[1].Dir != scsi.DirToDevice || !bytes.Equal(got[1].DataOut, block) || got[1].Timeout != 1500*time.Second {
		t.Errorf("WRITE request: dir %v len %d", got[1].Dir, len(got[1].DataOut))
	}
	if got[2].Dir != scsi.DirNone || got[2].AllocLen != 0 || len(got[2].DataOut) != 0 {
		t.Errorf("TUR request %+v", got[2])
	}
	if !bytes.Equal(got[4].CDB, spin.CDB) || got[4].AllocLen != 8192 {
		t.Errorf("SPIN request %+v", got[4])
	}
	c.Close()
}

func TestDialUnixSocketAndRefusal(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vtl.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serveOne(t, conn, "", func(r *Request) *Response {
				return &Response{DataIn: bytes.Repeat([]byte{7}, r.AllocLen), Resid: 0}
			})
		}
	}()
	c, err := Dial(sock, "drive0")
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr() != "vtl:"+sock+"#drive0" {
		t.Fatalf("Addr %q", c.Addr())
	}
	rd := &scsi.Command{CDB: scsi.Read6CDB(1<<20, true), Dir: scsi.DirFromDevice, Data: make([]byte, 1<<20), Timeout: time.Minute}
	res, err := c.Do(rd)
	if err != nil || res.Transferred(rd) != 1<<20 || rd.Data[1<<20-1] != 7 {
		t.Fatalf("%+v %v", res, err)
	}
	c.Close()

	_, err = Dial(sock, "drive9")
	if err == nil || !strings.Contains(err.Error(), "no unit drive9") {
		t.Fatalf("refusal: %v", err)
	}
	_, err = Dial(filepath.Join(t.TempDir(), "absent.sock"), "drive0")
	if err == nil || !strings.Contains(err.Error(), "is `vtl serve --socket") {
		t.Fatalf("absent socket: %v", err)
	}
}

func TestCodecRejects(t *testing.T) {
	var b bytes.Buffer
	if err := WriteRequest(&b, &scsi.Command{}); err == nil {
		t.Fatal("empty CDB accepted")
	}
	if err := WriteRequest(&b, &scsi.Command{CDB: make([]byte, 17)}); err == nil {
		t.Fatal("17-byte CDB accepted")
	}
	var buf []byte
	for name, frame := range map[string][]byte{
		"direction 3":     {3, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"cdb length 0":    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"cdb length 17":   {0, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"data with none":  {0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
		"data over limit": {2, 6, 0, 0, 0, 0, 0, 0, 0x7F, 0, 0, 0},
	} {
		if _, err := ReadRequest(bytes.NewReader(frame), &buf); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ReadHello(strings.NewReader("HTTP/")); !errors.Is(err, ErrProtocol) {
		t.Fatal("bad magic accepted")
	}
	// A device sending more data-in than the buffer holds is a protocol error.
	var resp bytes.Buffer
	if err := WriteResponse(&resp, &Response{DataIn: make([]byte, 10)}); err != nil {
		t.Fatal(err)
	}
	_, err := readResponse(&resp, &scsi.Command{CDB: []byte{0x12}, Dir: scsi.DirFromDevice, Data: make([]byte, 4)}, nil)
	if !errors.Is(err, ErrProtocol) {
		t.Fatalf("overlong data-in: %v", err)
	}
	if err := WriteResponse(&resp, &Response{Sense: make([]byte, 256)}); err == nil {
		t.Fatal("256-byte sense accepted")
	}
	// Negative residual survives the trip.
	resp.Reset()
	_ = WriteResponse(&resp, &Response{Resid: -512})
	r, err := readResponse(&resp, &scsi.Command{CDB: []byte{8}, Dir: scsi.DirFromDevice, Data: make([]byte, 4)}, nil)
	if err != nil || r.Resid != -512 {
		t.Fatalf("resid %d %v", r.Resid, err)
	}
}

// After the connection breaks, the command in flight fails and is never
// resent; the next command dials a new nexus.
func TestRedialAfterBrokenConnection(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vtl.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	var mu sync.Mutex
	hellos, requests := 0, 0
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			// Each connection answers one command, then "power-cycles".
			go func(conn net.Conn) {
				defer conn.Close()
				if _, err := ReadHello(conn); err != nil {
					return
				}
				WriteHelloReply(conn, "")
				mu.Lock()
				hellos++
				mu.Unlock()
				var buf []byte
				req, err := ReadRequest(conn, &buf)
				if err != nil {
					return
				}
				mu.Lock()
				requests++
				mu.Unlock()
				WriteResponse(conn, &Response{DataIn: make([]byte, req.AllocLen)})
			}(conn)
		}
	}()
	c, err := Dial(sock, "drive0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	inq := func() error {
		_, err := c.Do(&scsi.Command{CDB: []byte{0x12, 0, 0, 0, 36, 0}, Dir: scsi.DirFromDevice, Data: make([]byte, 36)})
		return err
	}
	if err := inq(); err != nil {
		t.Fatalf("first command: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // the server has closed the first connection
	if err := inq(); err == nil || !strings.Contains(err.Error(), "drive0") {
		t.Fatalf("command on a broken connection: err = %v, want a failure naming the unit", err)
	}
	if err := inq(); err != nil {
		t.Fatalf("command after the break: %v (want a new connection)", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if hellos != 2 || requests != 2 {
		t.Fatalf("server saw %d hellos and %d commands; want 2 and 2 (the failed command is never resent)", hellos, requests)
	}
}

// TestHelloV2Bytes: the VTL2 hello (exclusive and shared flags) and the accept reply
// carrying the unit's transfer limit, byte for byte; VTL1 still parses.
func TestHelloV2Bytes(t *testing.T) {
	var b bytes.Buffer
	if err := WriteHelloOpts(&b, Hello{Unit: "drive0", Exclusive: true}); err != nil {
		t.Fatal(err)
	}
	if want := "VTL2\x01\x06drive0"; b.String() != want {
		t.Fatalf("hello % X, want % X", b.Bytes(), want)
	}
	h, err := ReadHelloOpts(&b)
	if err != nil || h != (Hello{Unit: "drive0", Exclusive: true}) {
		t.Fatalf("%+v %v", h, err)
	}
	b.Reset()
	WriteHello(&b, "changer")
	if h, err := ReadHelloOpts(&b); err != nil || h != (Hello{Unit: "changer"}) {
		t.Fatalf("VTL1: %+v %v", h, err)
	}
	b.Reset()
	if err := WriteHelloOpts(&b, Hello{Unit: "drive0", SharedBuffer: true}); err != nil || b.String() != "VTL2\x02\x06drive0" {
		t.Fatalf("shared hello % X %v", b.Bytes(), err)
	}
	if h, err := ReadHelloOpts(&b); err != nil || h != (Hello{Unit: "drive0", SharedBuffer: true}) {
		t.Fatalf("shared: %+v %v", h, err)
	}
	if _, err := ReadHelloOpts(strings.NewReader("VTL2\x04\x06drive0")); !errors.Is(err, ErrProtocol) {
		t.Fatalf("unknown flag: %v", err)
	}
	b.Reset()
	WriteHelloAccept(&b, 1<<20)
	if want := "\x00\x00\x14max_transfer=1048576"; b.String() != want {
		t.Fatalf("accept % X, want % X", b.Bytes(), want)
	}
	if mt, err := readHelloReply(&b); err != nil || mt != 1<<20 {
		t.Fatalf("%d %v", mt, err)
	}
	b.Reset()
	WriteHelloAccept(&b, 0)
	if b.String() != "\x00\x00\x00" {
		t.Fatalf("accept without a limit % X", b.Bytes())
	}
	b.Reset()
	WriteHelloReply(&b, BusyPrefix+"drive0 is held")
	if _, err := readHelloReply(&b); err == nil || err.Error() != "busy: drive0 is held" {
		t.Fatalf("refusal: %v", err)
	}
}
