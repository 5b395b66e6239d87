package iscsiwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C is the iSCSI digest of b (§13.1: CRC32C, sent least significant
// byte first).
func CRC32C(b ...[]byte) uint32 {
	var c uint32
	for _, p := range b {
		c = crc32.Update(c, castagnoli, p)
	}
	return c
}

// Digests says which digests a connection carries after login
// (HeaderDigest / DataDigest negotiated to CRC32C). Login PDUs never carry
// digests.
type Digests struct {
	Header, Data bool
}

// PDU is one iSCSI PDU: its header, Additional Header Segments (rarely
// used) and data segment (without padding).
type PDU struct {
	BHS  BHS
	AHS  []byte
	Data []byte
}

// NewPDU makes a PDU of a typed header and a data segment.
func NewPDU(m Message, data []byte) *PDU {
	p := &PDU{BHS: m.Encode(), Data: data}
	p.BHS.SetDataSegmentLength(len(data))
	return p
}

// Opcode is the PDU's opcode.
func (p *PDU) Opcode() byte { return p.BHS.Opcode() }

func (p *PDU) String() string {
	return fmt.Sprintf("%s itt=0x%08x data=%d", OpName(p.Opcode()), p.BHS.ITT(), len(p.Data))
}

// ErrDigest is matched (errors.Is) by a *DigestError.
var ErrDigest = errors.New("iSCSI digest mismatch")

// DigestError is a header or data digest that does not match the PDU: the
// PDU must be discarded (a header digest error means the connection's
// framing can no longer be trusted; at ErrorRecoveryLevel 0 both end the
// connection).
type DigestError struct {
	Header bool // header digest, else data digest
	Op     byte
	Got    uint32
	Want   uint32
}

func (e *DigestError) Error() string {
	what := "data"
	if e.Header {
		what = "header"
	}
	return fmt.Sprintf("iSCSI %s digest mismatch on %s (received 0x%08x, computed 0x%08x): the connection corrupts data", what, OpName(e.Op), e.Got, e.Want)
}

// Is makes errors.Is(err, ErrDigest) true.
func (e *DigestError) Is(target error) bool { return target == ErrDigest }

// ErrTooLong is matched by an error for a data segment over the limit the
// receiver declared (MaxRecvDataSegmentLength).
var ErrTooLong = errors.New("iSCSI data segment longer than MaxRecvDataSegmentLength")

// Reader reads PDUs from a connection.
type Reader struct {
	r *bufio.Reader
	// Digests in effect (switch them on after login).
	Digests Digests
	// MaxData is the largest data segment accepted (this side's
	// MaxRecvDataSegmentLength; during login 8192 unless declared); 0
	// means 16 MiB − 1, the field's limit.
	MaxData int
	scratch [4]byte
}

// NewReader reads PDUs from r (buffered here).
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 64<<10)} }

// Header reads the next PDU's BHS and AHS (checking the header digest).
// The caller must then read its data segment with Data or DataInto
// before the next Header.
func (r *Reader) Header() (BHS, []byte, error) {
	var b BHS
	if _, err := io.ReadFull(r.r, b[:]); err != nil {
		return b, nil, err
	}
	var ahs []byte
	if n := b.TotalAHSLength(); n > 0 {
		ahs = make([]byte, n)
		if _, err := io.ReadFull(r.r, ahs); err != nil {
			return b, nil, noEOF(err)
		}
	}
	if r.Digests.Header {
		if _, err := io.ReadFull(r.r, r.scratch[:]); err != nil {
			return b, nil, noEOF(err)
		}
		got := binary.LittleEndian.Uint32(r.scratch[:])
		if want := CRC32C(b[:], ahs); got != want {
			return b, nil, &DigestError{Header: true, Op: b.Opcode(), Got: got, Want: want}
		}
	}
	if max := r.maxData(); b.DataSegmentLength() > max {
		return b, nil, fmt.Errorf("%w: %s carries %d bytes, limit %d", ErrTooLong, OpName(b.Opcode()), b.DataSegmentLength(), max)
	}
	return b, ahs, nil
}

func (r *Reader) maxData() int {
	if r.MaxData <= 0 {
		return 1<<24 - 1
	}
	return r.MaxData
}

// Wait blocks until the next PDU's first byte has arrived, consuming
// nothing: a side that bounds the wait for an answer with a read deadline
// calls it first, so that a deadline that passes between PDUs leaves the
// stream intact (one passing inside a PDU breaks the framing).
func (r *Reader) Wait() error {
	_, err := r.r.Peek(1)
	return err
}

// Data reads the data segment of the PDU whose header was just read, into
// a new slice.
func (r *Reader) Data(b *BHS) ([]byte, error) {
	n := b.DataSegmentLength()
	if n == 0 {
		return nil, nil
	}
	d := make([]byte, n)
	return d, r.DataInto(b, d)
}

// DataInto reads the data segment of the PDU whose header was just read
// into dst, which must be exactly DataSegmentLength bytes long: a
// Data-In's payload goes straight to its place in the command's buffer.
func (r *Reader) DataInto(b *BHS, dst []byte) error {
	n := b.DataSegmentLength()
	if len(dst) != n {
		return fmt.Errorf("iSCSI: %s data segment is %d bytes, buffer %d", OpName(b.Opcode()), n, len(dst))
	}
	if n == 0 {
		return nil
	}
	if _, err := io.ReadFull(r.r, dst); err != nil {
		return noEOF(err)
	}
	pad := padLen(n)
	k := pad
	if r.Digests.Data {
		k += 4
	}
	var tail [7]byte
	if _, err := io.ReadFull(r.r, tail[:k]); err != nil {
		return noEOF(err)
	}
	if r.Digests.Data {
		got := binary.LittleEndian.Uint32(tail[pad:k])
		if want := CRC32C(dst, tail[:pad]); got != want {
			return &DigestError{Op: b.Opcode(), Got: got, Want: want}
		}
	}
	return nil
}

// Read reads a whole PDU.
func (r *Reader) Read() (*PDU, error) {
	b, ahs, err := r.Header()
	if err != nil {
		return nil, err
	}
	d, err := r.Data(&b)
	if err != nil {
		return nil, err
	}
	return &PDU{BHS: b, AHS: ahs, Data: d}, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func padLen(n int) int { return (4 - n%4) % 4 }

// Writer writes PDUs to a connection. It is not safe for concurrent use:
// a side that writes from several goroutines serialises them.
type Writer struct {
	w io.Writer
	// Digests in effect (switch them on after login).
	Digests Digests
	hdr     [BHSLen + 4]byte
	tail    [8]byte
	bufs    net.Buffers
}

// NewWriter writes PDUs to w. On a *net.TCPConn the header, data and
// trailer go out in one writev, without copying the data.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write sends one PDU. p.BHS's data segment length and AHS length are set
// from p.Data and p.AHS (which must be a multiple of 4 bytes).
func (w *Writer) Write(p *PDU) error {
	if len(p.AHS)%4 != 0 || len(p.AHS) > 255*4 {
		return fmt.Errorf("iSCSI: AHS of %d bytes is not a multiple of 4 up to 1020", len(p.AHS))
	}
	if len(p.Data) >= 1<<24 {
		return fmt.Errorf("iSCSI: data segment of %d bytes does not fit a PDU", len(p.Data))
	}
	p.BHS[4] = byte(len(p.AHS) / 4)
	p.BHS.SetDataSegmentLength(len(p.Data))
	copy(w.hdr[:], p.BHS[:])
	bufs := append(w.bufs[:0], w.hdr[:BHSLen])
	if len(p.AHS) > 0 {
		bufs = append(bufs, p.AHS)
	}
	if w.Digests.Header {
		var d [4]byte
		binary.LittleEndian.PutUint32(d[:], CRC32C(p.BHS[:], p.AHS))
		if len(p.AHS) == 0 {
			copy(w.hdr[BHSLen:], d[:])
			bufs[0] = w.hdr[:BHSLen+4]
		} else {
			bufs = append(bufs, d[:])
		}
	}
	if n := len(p.Data); n > 0 {
		bufs = append(bufs, p.Data)
		pad := padLen(n)
		clear(w.tail[:pad])
		k := pad
		if w.Digests.Data {
			binary.LittleEndian.PutUint32(w.tail[pad:], CRC32C(p.Data, w.tail[:pad]))
			k += 4
		}
		if k > 0 {
			bufs = append(bufs, w.tail[:k])
		}
	}
	w.bufs = bufs
	_, err := bufs.WriteTo(w.w)
	w.bufs = w.bufs[:0]
	return err
}
