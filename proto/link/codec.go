package link

import (
	"encoding/binary"
	"math/bits"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	gproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// DataCodec is the protobuf codec of the data streams (JobData,
// RestoreData, WriteData, ReadData). Its wire format is protobuf's;
// what differs is the work around a message that carries only data:
//
//   - Marshal copies the data once into a buffer that is not zeroed
//     first (gRPC's codec takes a zeroed pooled buffer and copies into
//     it: the zeroing cost as much as the copy);
//   - Unmarshal copies the data once from gRPC's receive buffers into a
//     buffer of DataPool, not zeroed either (gRPC's codec joins the
//     buffers into one, then protobuf copies into a zeroed new slice).
//
// Every other message goes through gRPC's own proto codec. A receiver
// that is done with a data slice may give it back with ReleaseData.
//
// Either copy can go where the other side allows it: a receiver that
// copies the data anyway (a reader) receives into a *DataIn, whose Frames
// keep the data in gRPC's receive buffers; a sender that can do without
// its buffer until gRPC has written it sends a *DataOut.
var DataCodec encoding.CodecV2 = dataCodec{fallback: encoding.GetCodecV2(gproto.Name)}

// DataServerOptions make a server that serves data streams use DataCodec
// and, for its transport's receive and write buffers, DataPool (gRPC's
// default pool zeroes every buffer it hands out; each is overwritten
// before it is read). The transport reads HTTP/2 frames straight from the
// TLS connection (ReadBufferSize 0): with its default 32 KiB read buffer
// every 16 KiB data frame was copied once more, from TLS into that
// buffer and from there into the frame's (TLS keeps its own buffer of
// decrypted records, so the small frame-header reads stay cheap). Its
// flow-control windows are fixed at what a client may send before
// storaged has read it: 2 data messages of 1 MiB per stream, 4 per
// connection (gRPC's own start at 64 KiB and grow with its estimate of
// the link; a backup of many small files is faster with these, one of
// large files no slower, and storaged's memory stays bounded with every
// client sending). It writes 1 MiB at a time (gRPC's default is 32 KiB),
// which Credentials turn into one socket write, as filed's data dial
// does in the other direction; the buffer is taken from a pool for each
// flush (SharedWriteBuffer), so an idle connection holds none.
func DataServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodecV2(DataCodec), experimental.BufferPool(DataPool), grpc.ReadBufferSize(0),
		grpc.WriteBufferSize(1 << 20), grpc.SharedWriteBuffer(true),
		grpc.InitialWindowSize(2 << 20), grpc.InitialConnWindowSize(4 << 20)}
}

// DataDialOptions are DataServerOptions for a client connection.
func DataDialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.ForceCodecV2(DataCodec)), experimental.WithBufferPool(DataPool), grpc.WithReadBufferSize(0)}
}

type dataCodec struct{ fallback encoding.CodecV2 }

// Name is the content subtype: the format is protobuf's.
func (dataCodec) Name() string { return gproto.Name }

// dataMessage describes v when it is a message of the data streams: the
// number of its bytes field (0 for any other message), the data it holds
// (has: the message is a data message), and set, which makes it a data
// message holding b (Unmarshal's).
func dataMessage(v any) (field int, data []byte, has bool, set func(b []byte)) {
	switch m := v.(type) {
	case *pb.JobDataRequest:
		_, has = m.GetMsg().(*pb.JobDataRequest_Data)
		return 2, m.GetData(), has, func(b []byte) { proto.Reset(m); m.Msg = &pb.JobDataRequest_Data{Data: b} }
	case *pb.RestoreDataReply:
		_, has = m.GetMsg().(*pb.RestoreDataReply_Data)
		return 2, m.GetData(), has, func(b []byte) { proto.Reset(m); m.Msg = &pb.RestoreDataReply_Data{Data: b} }
	case *pb.WriteDataRequest:
		_, has = m.GetMsg().(*pb.WriteDataRequest_Data)
		return 2, m.GetData(), has, func(b []byte) { proto.Reset(m); m.Msg = &pb.WriteDataRequest_Data{Data: b} }
	case *pb.ReadDataReply:
		return 1, m.GetData(), true, func(b []byte) { proto.Reset(m); m.Data = b }
	}
	return 0, nil, false, nil
}

func (c dataCodec) Marshal(v any) (mem.BufferSlice, error) {
	if d, ok := v.(*DataOut); ok {
		return c.marshalOut(d)
	}
	field, data, has, _ := dataMessage(v)
	if !has || len(data) < minFast {
		return c.fallback.Marshal(v)
	}
	var hdr [1 + binary.MaxVarintLen64]byte
	h := appendDataTag(hdr[:0], field, len(data))
	bp := DataPool.Get(len(h) + len(data))
	copy((*bp)[copy(*bp, h):], data)
	return mem.BufferSlice{mem.NewBuffer(bp, DataPool)}, nil
}

// appendDataTag appends the tag of bytes field field (length-delimited)
// and the length n of its data: what precedes the data on the wire.
func appendDataTag(b []byte, field, n int) []byte {
	return binary.AppendUvarint(append(b, byte(field<<3|2)), uint64(n))
}

// marshalOut sends d's data where it is: the message's tag and length in
// a buffer of their own, then the data itself, which gRPC frees (Done)
// once written.
func (c dataCodec) marshalOut(d *DataOut) (mem.BufferSlice, error) {
	field, data, has, _ := dataMessage(d.Msg)
	if !has || len(data) < minFast {
		bs, err := c.Marshal(d.Msg) // copied: the data is free again
		d.Done(data)
		return bs, err
	}
	hdr := appendDataTag(make([]byte, 0, 1+binary.MaxVarintLen64), field, len(data))
	return mem.BufferSlice{mem.SliceBuffer(hdr), mem.NewBuffer(&data, donePool(d.Done))}, nil
}

// DataOut sends one message of a data stream without copying its data
// into a buffer of gRPC's (pass it to the stream's SendMsg): the data
// belongs to gRPC from then on, until gRPC has written it (or dropped
// it) and calls Done with it; then the sender may use it again. Msg is
// the message, its data of at least 4 KiB (a smaller one is copied, and
// Done called at once). Done must not block.
type DataOut struct {
	Msg  proto.Message
	Done func(data []byte)
}

// donePool is the mem.BufferPool of one DataOut's data: gRPC gives the
// data back through it.
type donePool func([]byte)

func (p donePool) Get(n int) *[]byte { b := make([]byte, n); return &b }
func (p donePool) Put(b *[]byte)     { p(*b) }

func (c dataCodec) Unmarshal(in mem.BufferSlice, v any) error {
	if d, ok := v.(*DataIn); ok {
		field, _, _, _ := dataMessage(d.Msg)
		f, ok := dataOnly(in, field)
		if !ok {
			d.Frames = Frames{}
			return c.fallback.Unmarshal(in, d.Msg)
		}
		proto.Reset(d.Msg)
		in.Ref() // gRPC frees its reference when this returns
		d.Frames = f
		return nil
	}
	field, _, _, set := dataMessage(v)
	f, ok := dataOnly(in, field)
	if !ok {
		return c.fallback.Unmarshal(in, v)
	}
	bp := DataPool.Get(f.Len())
	f.Read(*bp)
	set(*bp)
	return nil
}

// dataOnly reports whether the message in is bytes field field alone
// (its tag first, its length reaching the end exactly; field 0: not a
// data message) and of at least minFast bytes, and gives its data as
// Frames over in (not referenced); anything else (another field, unknown
// fields, a repeated tag) is protobuf's to decode.
func dataOnly(in mem.BufferSlice, field int) (Frames, bool) {
	total := in.Len()
	if field == 0 || total < minFast {
		return Frames{}, false
	}
	var head [1 + binary.MaxVarintLen64]byte
	n := 0
	for _, buf := range in {
		n += copy(head[n:], buf.ReadOnlyData())
		if n == len(head) {
			break
		}
	}
	if n < 2 || head[0] != byte(field<<3|2) {
		return Frames{}, false
	}
	size, k := binary.Uvarint(head[1:n])
	if k <= 0 || uint64(total-1-k) != size {
		return Frames{}, false
	}
	f := Frames{bufs: in, n: total}
	f.discard(1 + k) // the tag and length: size bytes are left
	return f, true
}

// minFast: smaller messages go through protobuf (nothing to gain).
const minFast = 4 << 10

// DataIn receives one message of a data stream (pass it to the stream's
// RecvMsg, Msg set to a message of the stream's type): a message that is
// data alone, as DataCodec's Unmarshal would make a slice of, leaves Msg
// empty and its data in Frames, still in gRPC's receive buffers; any
// other is decoded into Msg, Frames empty. The receiver reads the
// Frames and frees them (a receive overwrites Frames, never frees them:
// they may have been handed on).
type DataIn struct {
	Msg    proto.Message
	Frames Frames
}

// Frames is the data of a message as gRPC received it (the buffers of
// its HTTP/2 frames, 16 KiB each), read once by the receiver instead of
// being joined into one slice first.
type Frames struct {
	bufs mem.BufferSlice
	i    int // the buffer read next
	off  int // bytes of bufs[i] already read
	n    int // bytes left
}

// FramesOf is b as Frames (data that came in one slice).
func FramesOf(b []byte) Frames {
	return Frames{bufs: mem.BufferSlice{mem.SliceBuffer(b)}, n: len(b)}
}

// Len is the number of bytes left.
func (f *Frames) Len() int { return f.n }

// Read copies the next bytes into p; 0 when none are left.
func (f *Frames) Read(p []byte) int {
	total := 0
	for len(p) > 0 && f.n > 0 {
		c := copy(p, f.next(len(p)))
		p, total = p[c:], total+c
	}
	return total
}

// Lend appends the next bytes, at most max, to dst as pieces of the
// buffers (not copied): they stay valid until Free.
func (f *Frames) Lend(max int, dst [][]byte) [][]byte {
	for max > 0 && f.n > 0 {
		b := f.next(max)
		dst, max = append(dst, b), max-len(b)
	}
	return dst
}

// discard skips n bytes (at most Len).
func (f *Frames) discard(n int) {
	for n > 0 {
		n -= len(f.next(n))
	}
}

// next returns the next bytes, at most max, as they lie in one buffer,
// and moves past them.
func (f *Frames) next(max int) []byte {
	b := f.bufs[f.i].ReadOnlyData()
	d := b[f.off:]
	d = d[:min(len(d), f.n, max)]
	f.n, f.off = f.n-len(d), f.off+len(d)
	if f.off == len(b) {
		f.i, f.off = f.i+1, 0
	}
	return d
}

// Free gives the buffers back; f is empty after it.
func (f *Frames) Free() {
	if f.bufs != nil {
		f.bufs.Free()
	}
	*f = Frames{}
}

// DataPool holds the buffers of DataCodec: power-of-two classes from
// 4 KiB to MaxMessage, not zeroed on reuse (each use overwrites what it
// gives out). It implements mem.BufferPool for gRPC.
var DataPool = &dataPool{}

type dataPool struct {
	classes [poolClasses]sync.Pool
}

const (
	poolMinShift = 12 // 4 KiB
	poolClasses  = 13 // … 16 MiB (MaxMessage)
)

func poolClass(size int) int {
	if size <= 1<<poolMinShift {
		return 0
	}
	return bits.Len(uint(size-1)) - poolMinShift
}

// Get returns a buffer of length size (its bytes are not zeroed).
func (p *dataPool) Get(size int) *[]byte {
	c := poolClass(size)
	if c >= poolClasses {
		b := make([]byte, size)
		return &b
	}
	if bp, ok := p.classes[c].Get().(*[]byte); ok {
		*bp = (*bp)[:size]
		return bp
	}
	b := make([]byte, size, 1<<(c+poolMinShift))
	return &b
}

// Put takes a buffer back (one whose capacity is not a class's is
// dropped).
func (p *dataPool) Put(bp *[]byte) {
	c := cap(*bp)
	if c < 1<<poolMinShift || c&(c-1) != 0 {
		return
	}
	if k := bits.Len(uint(c)) - 1 - poolMinShift; k < poolClasses {
		p.classes[k].Put(bp)
	}
}

// ReleaseData gives back a data slice that DataCodec's Unmarshal made,
// once the receiver is done with it (nothing may keep it). Others are
// ignored (their capacity is not a pool class's).
func ReleaseData(b []byte) {
	if cap(b) >= 1<<poolMinShift {
		b = b[:0]
		DataPool.Put(&b)
	}
}
