// Package vtlwire is the unix-socket protocol between a SCSI initiator and
// the virtual tape library (tools/vtl). It carries exactly what Linux SG_IO
// carries, so code above scsi.Transport is the same for real hardware and for
// the emulator.
//
// One connection is one I_T nexus to one logical unit. The client opens it
// with a hello naming the unit; then it sends requests and reads one response
// per request, in order. All integers are big-endian.
//
//	hello     "VTL1" | u8 name length | name ("drive0", "drive1", …, "changer")
//	      or  "VTL2" | u8 flags | u8 name length | name
//	              flags bit 0: exclusive (as O_EXCL on an sg node: refused
//	              while anyone else holds the unit; then no one else gets it)
//	              flags bit 1: shared data buffer (a memfd comes with the
//	              hello; the data phases go through it: see shared.go)
//	hello ok  u8 0 | u16 length | properties   (empty, or "max_transfer=N":
//	              the unit carries at most N data bytes per command)
//	hello err u8 1 | u16 message length | message      (then the server closes;
//	              a message starting "busy:" means another nexus holds the unit)
//
//	request   u8 direction (0 none, 1 to device, 2 from device)
//	          u8 CDB length (1..16) | u16 reserved (0)
//	          u32 timeout in milliseconds
//	          u32 data length: data-out bytes that follow (direction 1),
//	              allocation length (direction 2), 0 (direction 0)
//	          CDB bytes | data-out bytes
//
//	response  u8 SAM status | u8 sense length
//	          u16 host status (0 = delivered; see scsi.Result)
//	          u32 data-in length (bytes that follow the sense)
//	          i32 residual (requested − transferred)
//	          sense bytes | data-in bytes
package vtlwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// Magic opens a connection without options; MagicV2 one with a flags byte.
const (
	Magic   = "VTL1"
	MagicV2 = "VTL2"
)

// Hello is what a client asks for when it opens a connection.
type Hello struct {
	Unit string
	// Exclusive: refuse the connection if anyone else holds the unit, and
	// keep everyone else out while it lasts.
	Exclusive bool
	// SharedBuffer: the data phases go through a shared data buffer (shared.go)
	// instead of the socket.
	SharedBuffer bool
}

// BusyPrefix starts the refusal of a unit someone else holds.
const BusyPrefix = "busy: "

// MaxData bounds one command's data phase in either direction (the largest
// block a drive accepts is 8 MiB; READ BLOCK LIMITS says so).
const MaxData = 16 << 20

const (
	reqHeaderLen  = 12
	respHeaderLen = 12
)

// Request is one decoded request, as the device side sees it.
type Request struct {
	Dir     scsi.Direction
	CDB     []byte
	Timeout time.Duration
	// AllocLen is the data-in allocation length (DirFromDevice).
	AllocLen int
	// DataOut holds the data-out bytes (DirToDevice). It aliases the
	// reader's buffer and is valid until the next ReadRequest.
	DataOut []byte
}

// Response is one answer, as the device side produces it.
type Response struct {
	Status     byte
	Sense      []byte
	HostStatus uint16
	DataIn     []byte // bytes actually transferred to the initiator
	Resid      int32
}

// ErrProtocol marks a malformed frame; the connection cannot continue.
var ErrProtocol = errors.New("vtl wire protocol error")

// WriteHello opens a connection to the named unit.
func WriteHello(w io.Writer, unit string) error {
	if len(unit) == 0 || len(unit) > 255 {
		return fmt.Errorf("vtl unit name %q: must be 1..255 bytes", unit)
	}
	b := append([]byte(Magic), byte(len(unit)))
	b = append(b, unit...)
	_, err := w.Write(b)
	return err
}

// WriteHelloOpts opens a connection with options (the VTL2 hello); a
// client offering a shared data buffer sends its descriptor with these
// bytes (Client does).
func WriteHelloOpts(w io.Writer, h Hello) error {
	b, err := helloV2(h)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func helloV2(h Hello) ([]byte, error) {
	if len(h.Unit) == 0 || len(h.Unit) > 255 {
		return nil, fmt.Errorf("vtl unit name %q: must be 1..255 bytes", h.Unit)
	}
	var flags byte
	if h.Exclusive {
		flags |= 1
	}
	if h.SharedBuffer {
		flags |= helloShared
	}
	b := append([]byte(MagicV2), flags, byte(len(h.Unit)))
	return append(b, h.Unit...), nil
}

// ReadHello reads a client's hello and returns the unit name.
func ReadHello(r io.Reader) (string, error) {
	h, err := ReadHelloOpts(r)
	return h.Unit, err
}

// ReadHelloOpts reads a client's hello (VTL1 or VTL2).
func ReadHelloOpts(r io.Reader) (Hello, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Hello{}, err
	}
	var out Hello
	nameLen := h[4]
	switch string(h[:4]) {
	case Magic:
	case MagicV2:
		out.Exclusive = h[4]&1 != 0
		out.SharedBuffer = h[4]&helloShared != 0
		if h[4]&^(1|helloShared) != 0 {
			return Hello{}, fmt.Errorf("%w: unknown hello flags 0x%02X", ErrProtocol, h[4])
		}
		var l [1]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return Hello{}, err
		}
		nameLen = l[0]
	default:
		return Hello{}, fmt.Errorf("%w: bad magic %q (is this a vtl client?)", ErrProtocol, h[:4])
	}
	name := make([]byte, nameLen)
	if _, err := io.ReadFull(r, name); err != nil {
		return Hello{}, err
	}
	out.Unit = string(name)
	return out, nil
}

// WriteHelloAccept accepts a hello and tells the client the unit's data
// phase limit (maxTransfer bytes per command; 0: MaxData).
func WriteHelloAccept(w io.Writer, maxTransfer int) error {
	props := ""
	if maxTransfer > 0 {
		props = "max_transfer=" + strconv.Itoa(maxTransfer)
	}
	b := make([]byte, 3, 3+len(props))
	binary.BigEndian.PutUint16(b[1:], uint16(len(props)))
	b = append(b, props...)
	_, err := w.Write(b)
	return err
}

// WriteHelloReply accepts (msg == "") or refuses the hello.
func WriteHelloReply(w io.Writer, refusal string) error {
	if len(refusal) > 0xFFFF {
		refusal = refusal[:0xFFFF]
	}
	b := make([]byte, 3, 3+len(refusal))
	if refusal != "" {
		b[0] = 1
	}
	binary.BigEndian.PutUint16(b[1:], uint16(len(refusal)))
	b = append(b, refusal...)
	_, err := w.Write(b)
	return err
}

// readHelloReply returns the unit's data phase limit (0: not advertised)
// if the server accepted the hello, its refusal otherwise.
func readHelloReply(r io.Reader) (int, error) {
	var h [3]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(h[1:]))
	if _, err := io.ReadFull(r, msg); err != nil {
		return 0, err
	}
	if h[0] != 0 {
		return 0, errors.New(string(msg))
	}
	mt := 0
	for _, f := range strings.Fields(string(msg)) {
		if v, ok := strings.CutPrefix(f, "max_transfer="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				mt = n
			}
		}
	}
	return mt, nil
}

// WriteRequest sends one command. With a net.Conn the header and the data
// go out in one writev, without copying the data.
func WriteRequest(w io.Writer, cmd *scsi.Command) error { return writeRequest(w, cmd, nil) }

// writeRequest sends one command; with sh its data-out goes into the
// shared buffer.
func writeRequest(w io.Writer, cmd *scsi.Command, sh *SharedBuffer) error {
	if len(cmd.CDB) == 0 || len(cmd.CDB) > 16 {
		return fmt.Errorf("CDB length %d: must be 1..16 bytes", len(cmd.CDB))
	}
	if len(cmd.Data) > MaxData {
		return fmt.Errorf("data length %d exceeds the vtl limit of %d bytes", len(cmd.Data), MaxData)
	}
	var hdr [reqHeaderLen + 16]byte
	hdr[0] = byte(cmd.Dir)
	hdr[1] = byte(len(cmd.CDB))
	binary.BigEndian.PutUint32(hdr[4:], uint32(cmd.Timeout/time.Millisecond))
	dataLen := 0
	if cmd.Dir != scsi.DirNone {
		dataLen = len(cmd.Data)
	}
	binary.BigEndian.PutUint32(hdr[8:], uint32(dataLen))
	n := copy(hdr[reqHeaderLen:], cmd.CDB)
	head := hdr[:reqHeaderLen+n]
	if cmd.Dir != scsi.DirToDevice || len(cmd.Data) == 0 || sh != nil {
		if sh != nil && cmd.Dir == scsi.DirToDevice {
			copy(sh.out(), cmd.Data)
		}
		_, err := w.Write(head)
		return err
	}
	bufs := net.Buffers{head, cmd.Data}
	_, err := bufs.WriteTo(w)
	return err
}

// ReadRequest reads one command. buf is reused for data-out between calls.
func ReadRequest(r io.Reader, buf *[]byte) (*Request, error) { return readRequest(r, buf, nil) }

// readRequest reads one command; with sh its data-out is in the shared
// buffer (and aliases it).
func readRequest(r io.Reader, buf *[]byte, sh *SharedBuffer) (*Request, error) {
	var hdr [reqHeaderLen + 16]byte
	if _, err := io.ReadFull(r, hdr[:reqHeaderLen]); err != nil {
		return nil, err
	}
	dir := scsi.Direction(hdr[0])
	cdbLen := int(hdr[1])
	if dir > scsi.DirFromDevice {
		return nil, fmt.Errorf("%w: direction %d", ErrProtocol, hdr[0])
	}
	if cdbLen == 0 || cdbLen > 16 {
		return nil, fmt.Errorf("%w: CDB length %d", ErrProtocol, cdbLen)
	}
	dataLen := int(binary.BigEndian.Uint32(hdr[8:]))
	if dataLen > MaxData {
		return nil, fmt.Errorf("%w: data length %d exceeds %d", ErrProtocol, dataLen, MaxData)
	}
	if dir == scsi.DirNone && dataLen != 0 {
		return nil, fmt.Errorf("%w: data length %d with no data phase", ErrProtocol, dataLen)
	}
	if _, err := io.ReadFull(r, hdr[reqHeaderLen:reqHeaderLen+cdbLen]); err != nil {
		return nil, err
	}
	req := &Request{
		Dir:     dir,
		CDB:     append([]byte(nil), hdr[reqHeaderLen:reqHeaderLen+cdbLen]...),
		Timeout: time.Duration(binary.BigEndian.Uint32(hdr[4:])) * time.Millisecond,
	}
	switch dir {
	case scsi.DirFromDevice:
		req.AllocLen = dataLen
	case scsi.DirToDevice:
		if sh != nil {
			req.DataOut = sh.out()[:dataLen]
			break
		}
		if cap(*buf) < dataLen {
			*buf = make([]byte, dataLen)
		}
		req.DataOut = (*buf)[:dataLen]
		if _, err := io.ReadFull(r, req.DataOut); err != nil {
			return nil, err
		}
	}
	return req, nil
}

// WriteResponse sends one answer; DataIn is sent without copying.
func WriteResponse(w io.Writer, resp *Response) error {
	_, err := writeResponse(w, resp, nil)
	return err
}

// writeResponse sends one answer; with sh its data-in goes through the
// shared buffer (copied to the start of the device's area unless it is in
// the buffer already), its offset follows the header, and placed is where
// in the buffer it is.
func writeResponse(w io.Writer, resp *Response, sh *SharedBuffer) (placed []byte, err error) {
	if len(resp.Sense) > 255 {
		return nil, fmt.Errorf("sense length %d exceeds 255", len(resp.Sense))
	}
	if len(resp.DataIn) > MaxData {
		return nil, fmt.Errorf("data-in length %d exceeds %d", len(resp.DataIn), MaxData)
	}
	var hdr [respHeaderLen + 4 + 255]byte
	hdr[0] = resp.Status
	hdr[1] = byte(len(resp.Sense))
	binary.BigEndian.PutUint16(hdr[2:], resp.HostStatus)
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(resp.DataIn)))
	binary.BigEndian.PutUint32(hdr[8:], uint32(resp.Resid))
	at := respHeaderLen
	if sh != nil {
		off, ok := sh.offsetOf(resp.DataIn)
		if !ok {
			off = sharedHalf
			copy(sh.Device(), resp.DataIn)
		}
		if len(resp.DataIn) > 0 {
			placed = sh.mem[off : off+len(resp.DataIn)]
		}
		binary.BigEndian.PutUint32(hdr[at:], uint32(off))
		at += 4
	}
	n := copy(hdr[at:], resp.Sense)
	head := hdr[:at+n]
	if len(resp.DataIn) == 0 || sh != nil {
		_, err = w.Write(head)
		return placed, err
	}
	bufs := net.Buffers{head, resp.DataIn}
	_, err = bufs.WriteTo(w)
	return nil, err
}

// readResponse reads one answer; data-in lands directly in cmd.Data
// (with sh: is copied there from the shared buffer).
func readResponse(r io.Reader, cmd *scsi.Command, sh *SharedBuffer) (scsi.Result, error) {
	var hdr [respHeaderLen + 4]byte
	hl := respHeaderLen
	if sh != nil {
		hl += 4
	}
	if _, err := io.ReadFull(r, hdr[:hl]); err != nil {
		return scsi.Result{}, err
	}
	res := scsi.Result{
		Status:     hdr[0],
		HostStatus: binary.BigEndian.Uint16(hdr[2:]),
		Resid:      int(int32(binary.BigEndian.Uint32(hdr[8:]))),
	}
	if sl := int(hdr[1]); sl > 0 {
		res.Sense = make([]byte, sl)
		if _, err := io.ReadFull(r, res.Sense); err != nil {
			return scsi.Result{}, err
		}
	}
	dataLen := int(binary.BigEndian.Uint32(hdr[4:]))
	if dataLen > 0 {
		if cmd.Dir != scsi.DirFromDevice || dataLen > len(cmd.Data) {
			return scsi.Result{}, fmt.Errorf("%w: device sent %d data-in bytes for a %s command with a %d-byte buffer",
				ErrProtocol, dataLen, cmd.Dir, len(cmd.Data))
		}
		if sh == nil {
			if _, err := io.ReadFull(r, cmd.Data[:dataLen]); err != nil {
				return scsi.Result{}, err
			}
			return res, nil
		}
		off := int(binary.BigEndian.Uint32(hdr[respHeaderLen:]))
		if off > len(sh.mem) || dataLen > len(sh.mem)-off {
			return scsi.Result{}, fmt.Errorf("%w: device put %d data-in bytes at offset %d of the %d-byte shared buffer", ErrProtocol, dataLen, off, len(sh.mem))
		}
		copy(cmd.Data, sh.mem[off:off+dataLen])
	}
	return res, nil
}
