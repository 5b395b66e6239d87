package link

// Direct streams: the bulk data streams between filed and storaged
// (Storage.JobData and Storage.RestoreData) over mutual TLS without
// HTTP/2. gRPC cuts every message into 16 KiB HTTP/2 frames, hands each
// frame from its reading goroutine to the stream's reader, and copies the
// data into its write buffer once more before TLS copies it into a
// record. Within one process that costs no more than a direct stream
// (BenchmarkDataStream, 2026-12-05: 1.30-1.35 and 1.32-1.34 CPU-s a
// GiB); between processes its handoffs do: a restore of 100,000 files of
// 4 KiB took storaged 2.7-2.8 CPU-s over gRPC and 1.9-2.0 this way
// (director's BenchmarkRestoreSmallFiles, alternating pairs, 2026-12-05).
//
// A direct stream is one TCP connection per call, on the server's own
// port: the client sends the preamble (DirectPreamble, in clear; a gRPC
// client's first byte is a TLS handshake record's 0x16), then the TLS
// handshake with the same certificates and checks as gRPC's, then frames
// in both directions:
//
//	kind  u8   'O' open (client, first): the full method name
//	           'M' a message: protobuf
//	           'D' a data message (DataCodec's: a message whose only field
//	               is its data): the data alone
//	           'H' half-close (client: no more messages)
//	           'S' status (server, last): google.rpc.Status, code 0 = OK
//	length u32 big-endian, at most MaxMessage
//	payload
//
// The server runs the service's own handler (its grpc.ServiceDesc) with a
// grpc.ServerStream over the connection, so handlers, their peer checks
// (tlsconf.PeerOf) and their status codes are the same on both paths; a
// client gets a grpc.ClientStream, so the generated stream wrappers work
// over it. Small frames are gathered (up to 64 KiB) until a large one,
// Flush, a half-close or the status; a large data frame goes out in one
// socket write with what was gathered (records.go's batching).

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// DirectPreamble starts a direct stream's connection, before TLS.
const DirectPreamble = "TAPEWARD-DATA/1\n"

// Frame kinds.
const (
	frameOpen   = 'O'
	frameMsg    = 'M'
	frameData   = 'D'
	frameHalf   = 'H'
	frameStatus = 'S'
)

const (
	frameHeader = 5
	// gatherMax: frames are gathered up to this much before a write.
	gatherMax = 64 << 10
)

// FlushStream writes what the direct stream of a handler's context (its
// stream's Context()) has gathered; a gRPC stream writes without being
// asked (nil). Senders call it before they wait for more to send.
func FlushStream(ctx context.Context) error {
	if s, ok := ctx.Value(directKey{}).(*directServerStream); ok {
		return s.fc.Flush()
	}
	return nil
}

// AbandonStream bounds the writes of the direct stream of a handler's
// context to d from now: a client that stopped reading holds the
// handler in a write until then (gRPC's keepalive ends such a stream).
func AbandonStream(ctx context.Context, d time.Duration) {
	if s, ok := ctx.Value(directKey{}).(*directServerStream); ok {
		s.fc.tc.SetWriteDeadline(time.Now().Add(d))
	}
}

type directKey struct{}

// frameConn reads and writes frames on a TLS connection.
type frameConn struct {
	tc  *tls.Conn
	raw *rawConn

	wmu     sync.Mutex
	pending []byte // gathered frames
	werr    error

	hdr [frameHeader]byte // read side
}

func newFrameConn(tc *tls.Conn, raw *rawConn) *frameConn {
	return &frameConn{tc: tc, raw: raw}
}

// writeFrame writes one frame: gathered when small, otherwise at once in
// one socket write with what was gathered before it.
func (c *frameConn) writeFrame(kind byte, payload []byte) error {
	if len(payload) < gatherMax {
		return c.gather(kind, func(b []byte) ([]byte, error) { return append(b, payload...), nil })
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	if len(payload) > MaxMessage {
		return errTooLarge(len(payload))
	}
	c.pending = appendFrameHeader(c.pending, kind, len(payload))
	return c.flushLocked(payload)
}

// writeMsg writes a protobuf message as an 'M' frame, marshalled where it
// is gathered.
func (c *frameConn) writeMsg(m proto.Message) error {
	return c.gather(frameMsg, func(b []byte) ([]byte, error) {
		b, err := proto.MarshalOptions{}.MarshalAppend(b, m)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "marshalling %T: %v", m, err)
		}
		return b, nil
	})
}

// gather appends a frame to those gathered, its payload appended by
// appendPayload, and writes them all once they reach gatherMax.
func (c *frameConn) gather(kind byte, appendPayload func([]byte) ([]byte, error)) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	at := len(c.pending)
	b, err := appendPayload(appendFrameHeader(c.pending, kind, 0))
	if err != nil {
		return err
	}
	n := len(b) - at - frameHeader
	if n > MaxMessage {
		return errTooLarge(n)
	}
	binary.BigEndian.PutUint32(b[at+1:], uint32(n))
	c.pending = b
	if len(c.pending) >= gatherMax {
		return c.flushLocked(nil)
	}
	return nil
}

func errTooLarge(n int) error {
	return status.Errorf(codes.ResourceExhausted, "message of %d bytes (the most is %d)", n, MaxMessage)
}

func appendFrameHeader(b []byte, kind byte, n int) []byte {
	return binary.BigEndian.AppendUint32(append(b, kind), uint32(n))
}

// Flush writes the gathered frames.
func (c *frameConn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	return c.flushLocked(nil)
}

// flushLocked writes the gathered frames and then more (a large frame's
// payload) in one socket write.
func (c *frameConn) flushLocked(more []byte) error {
	if len(c.pending) == 0 && len(more) == 0 {
		return nil
	}
	c.raw.begin()
	var err error
	if len(c.pending) > 0 {
		_, err = c.tc.Write(c.pending)
	}
	if err == nil && len(more) > 0 {
		_, err = c.tc.Write(more)
	}
	if ferr := c.raw.end(); err == nil {
		err = ferr
	}
	if cap(c.pending) > 4*gatherMax {
		c.pending = nil
	} else {
		c.pending = c.pending[:0]
	}
	c.werr = err
	return err
}

// readFrame reads the next frame: its kind and its payload, in a buffer
// of DataPool that the caller keeps or gives back.
func (c *frameConn) readFrame() (byte, *[]byte, error) {
	if _, err := io.ReadFull(c.tc, c.hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(c.hdr[1:])
	if n > MaxMessage {
		return 0, nil, fmt.Errorf("a frame of %d bytes (the most is %d)", n, MaxMessage)
	}
	bp := DataPool.Get(int(n))
	if _, err := io.ReadFull(c.tc, *bp); err != nil {
		DataPool.Put(bp)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return c.hdr[0], bp, nil
}

// decodeFrame decodes an 'M' or 'D' frame's payload (a DataPool buffer)
// into v: a proto.Message, or a *DataIn, which keeps data in the buffer
// (Frames); a data message's data field is the buffer itself.
func decodeFrame(kind byte, bp *[]byte, v any) error {
	if d, ok := v.(*DataIn); ok {
		if kind == frameData {
			proto.Reset(d.Msg)
			d.Frames = Frames{bufs: mem.BufferSlice{mem.NewBuffer(bp, DataPool)}, n: len(*bp)}
			return nil
		}
		d.Frames = Frames{}
		v = d.Msg
	}
	m, ok := v.(proto.Message)
	if !ok {
		DataPool.Put(bp)
		return status.Errorf(codes.Internal, "a direct stream receives protobuf messages, not %T", v)
	}
	if kind == frameData {
		_, _, _, set := dataMessage(m)
		if set == nil {
			DataPool.Put(bp)
			return status.Errorf(codes.Internal, "data came for %T, which carries none", m)
		}
		set(*bp)
		return nil
	}
	err := proto.Unmarshal(*bp, m)
	DataPool.Put(bp)
	if err != nil {
		return status.Errorf(codes.Internal, "unmarshalling %T: %v", m, err)
	}
	return nil
}

// sendMsg writes v: a data message as a 'D' frame of its data alone (a
// DataOut's data given back once written), any other as 'M'.
func (c *frameConn) sendMsg(v any) error {
	if d, ok := v.(*DataOut); ok {
		_, data, has, _ := dataMessage(d.Msg)
		if !has {
			d.Done(data)
			return c.writeMsg(d.Msg)
		}
		err := c.writeFrame(frameData, data)
		d.Done(data)
		return err
	}
	m, ok := v.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "a direct stream sends protobuf messages, not %T", v)
	}
	if _, data, has, _ := dataMessage(m); has {
		return c.writeFrame(frameData, data)
	}
	return c.writeMsg(m)
}
