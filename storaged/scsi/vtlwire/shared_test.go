package vtlwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// sharedServer listens on a unix socket and serves each connection with
// serveOne's protocol; handler also gets the connection's Peer.
func sharedServer(t *testing.T, handler func(*Peer, *Request) *Response) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "vtl.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				p, _, err := Accept(conn)
				if err != nil {
					WriteHelloReply(conn, err.Error())
					return
				}
				defer p.Close()
				if WriteHelloAccept(conn, 0) != nil {
					return
				}
				for {
					req, err := p.ReadRequest()
					if err != nil {
						return
					}
					if p.WriteResponse(handler(p, req)) != nil {
						return
					}
				}
			}()
		}
	}()
	return sock
}

// TestSharedDataPhases: with and without the shared data buffer, WRITE's
// data reaches the device and READ's comes back, whether the device built
// it in its area of the buffer (sent without a copy) or elsewhere; with
// the buffer, data-out aliases it and a key page is wiped from it after
// the command.
func TestSharedDataPhases(t *testing.T) {
	type seen struct {
		data    []byte
		aliased bool
		outArea []byte // the data-out area after the previous command
	}
	got := make(chan seen, 1)
	var last *Peer
	var lastLen int
	sock := sharedServer(t, func(p *Peer, r *Request) *Response {
		s := seen{data: append([]byte(nil), r.DataOut...)}
		if sh := p.SharedBuffer(); sh != nil {
			_, s.aliased = sh.offsetOf(r.DataOut)
			if len(r.DataOut) > 0 && !s.aliased {
				t.Errorf("data-out of % X is not in the shared buffer", r.CDB)
			}
		}
		if last == p && p.SharedBuffer() != nil {
			s.outArea = append([]byte(nil), last.SharedBuffer().out()[:lastLen]...)
		}
		last, lastLen = p, len(r.DataOut)
		got <- s
		switch {
		case r.Dir != scsi.DirFromDevice:
			return &Response{}
		case r.CDB[0] == scsi.OpRead6 && p.SharedBuffer() != nil:
			d := p.SharedBuffer().Device()[100 : 100+r.AllocLen]
			for i := range d {
				d[i] = byte(i % 251)
			}
			return &Response{DataIn: d}
		default:
			d := make([]byte, r.AllocLen)
			for i := range d {
				d[i] = byte(i % 251)
			}
			return &Response{DataIn: d}
		}
	})
	for _, shared := range []bool{true, false} {
		c, err := DialOpts(sock, Hello{Unit: "drive0", SharedBuffer: shared})
		if err != nil {
			t.Fatal(err)
		}
		if (c.sh != nil) != shared {
			t.Fatalf("shared=%t: client buffer %v", shared, c.sh != nil)
		}
		block := bytes.Repeat([]byte("tapeward"), 1<<17)
		wr := &scsi.Command{CDB: scsi.Write6CDB(uint32(len(block))), Dir: scsi.DirToDevice, Data: block, Timeout: time.Minute}
		if _, err := c.Do(wr); err != nil {
			t.Fatal(err)
		}
		if s := <-got; !bytes.Equal(s.data, block) || s.aliased != shared {
			t.Fatalf("shared=%t: WRITE data %d bytes (equal %t), aliased %t", shared, len(s.data), bytes.Equal(s.data, block), s.aliased)
		}
		for _, op := range []byte{scsi.OpRead6, scsi.OpInquiry} {
			n := 1 << 20
			if op == scsi.OpInquiry {
				n = 96
			}
			cdb := []byte{op, 0, 0, 0, byte(n), 0}
			if op == scsi.OpRead6 {
				cdb = scsi.Read6CDB(uint32(n), false)
			}
			rd := &scsi.Command{CDB: cdb, Dir: scsi.DirFromDevice, Data: make([]byte, n), Timeout: time.Minute}
			res, err := c.Do(rd)
			<-got
			if err != nil || res.Transferred(rd) != n {
				t.Fatalf("shared=%t op %02X: %+v %v", shared, op, res, err)
			}
			for i, b := range rd.Data {
				if b != byte(i%251) {
					t.Fatalf("shared=%t op %02X: byte %d is %d, want %d", shared, op, i, b, i%251)
				}
			}
		}
		key := bytes.Repeat([]byte{0xA5}, 52)
		spout := &scsi.Command{CDB: []byte{scsi.OpSecurityProtocolOut, 0x20, 0, 0x10, 0, 0, 0, 0, 0, 52, 0, 0}, Dir: scsi.DirToDevice, Data: key, Timeout: time.Minute}
		if _, err := c.Do(spout); err != nil {
			t.Fatal(err)
		}
		if s := <-got; !bytes.Equal(s.data, key) {
			t.Fatalf("shared=%t: key page not delivered", shared)
		}
		tur := &scsi.Command{CDB: make([]byte, 6), Timeout: time.Minute}
		if _, err := c.Do(tur); err != nil {
			t.Fatal(err)
		}
		if s := <-got; shared && !bytes.Equal(s.outArea, make([]byte, 52)) {
			t.Fatalf("the key page is still in the shared buffer after SECURITY PROTOCOL OUT: % X", s.outArea)
		}
		c.Close()
	}
}

// TestSharedRejects: a hello that offers a buffer without sending one is
// refused by Accept; a response pointing outside the buffer is a
// protocol error.
func TestSharedRejects(t *testing.T) {
	sock := sharedServer(t, func(*Peer, *Request) *Response { return &Response{} })
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("VTL2\x02\x06drive0")); err != nil {
		t.Fatal(err)
	}
	if _, err := readHelloReply(conn); err == nil || err.Error() != errNoSharedFD.Error() {
		t.Fatalf("hello without its buffer: %v", err)
	}

	sh, fd, err := newShared()
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	defer sh.Close()
	var hdr [respHeaderLen + 4]byte
	binary.BigEndian.PutUint32(hdr[4:], 4096)
	binary.BigEndian.PutUint32(hdr[respHeaderLen:], SharedSize-100)
	cmd := &scsi.Command{CDB: []byte{scsi.OpInquiry}, Dir: scsi.DirFromDevice, Data: make([]byte, 4096)}
	if _, err := readResponse(bytes.NewReader(hdr[:]), cmd, sh); !errors.Is(err, ErrProtocol) {
		t.Fatalf("data-in past the buffer's end: %v", err)
	}
	binary.BigEndian.PutUint32(hdr[respHeaderLen:], SharedSize-4096)
	if _, err := readResponse(bytes.NewReader(hdr[:]), cmd, sh); err != nil {
		t.Fatalf("data-in at the buffer's end: %v", err)
	}
}
