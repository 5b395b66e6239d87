package link

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// split cuts b into a BufferSlice of pieces of the given sizes (the last
// takes the rest), as gRPC hands a message over in its receive buffers.
func split(b []byte, sizes ...int) mem.BufferSlice {
	var out mem.BufferSlice
	for _, n := range sizes {
		n = min(n, len(b))
		out = append(out, mem.SliceBuffer(b[:n]))
		b = b[n:]
	}
	return append(out, mem.SliceBuffer(b))
}

// TestDataCodecWireIsProtobuf: every message of the data streams, with
// data of every size class and cut anywhere, encodes to exactly what
// protobuf encodes and decodes back equal, whichever side uses gRPC's
// codec; messages without data go through protobuf untouched.
func TestDataCodecWireIsProtobuf(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var msgs []proto.Message
	for _, n := range []int{0, 1, 100, 4095, 4096, 4097, 65536, 1<<20 + 3} {
		d := data(n)
		msgs = append(msgs,
			&pb.JobDataRequest{Msg: &pb.JobDataRequest_Data{Data: d}},
			&pb.RestoreDataReply{Msg: &pb.RestoreDataReply_Data{Data: d}},
			&pb.WriteDataRequest{Msg: &pb.WriteDataRequest_Data{Data: d}},
			&pb.ReadDataReply{Data: d})
	}
	msgs = append(msgs,
		&pb.JobDataRequest{Msg: &pb.JobDataRequest_Open{Open: &pb.JobDataOpen{Session: "s", Token: "t"}}},
		&pb.JobDataRequest{Msg: &pb.JobDataRequest_Keepalive{Keepalive: true}},
		&pb.RestoreDataReply{Msg: &pb.RestoreDataReply_End{End: &pb.RestoreDataEnd{Members: 3, Bytes: 9}}},
		&pb.StatusRequest{})
	for i, m := range msgs {
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		bs, err := DataCodec.Marshal(m)
		if err != nil {
			t.Fatalf("message %d: Marshal: %v", i, err)
		}
		got := bs.Materialize()
		bs.Free()
		if !bytes.Equal(got, want) {
			t.Fatalf("message %d (%T, %d bytes): DataCodec's encoding differs from protobuf's", i, m, len(want))
		}
		for _, cut := range [][]int{nil, {1}, {2}, {3, 7}, {len(want) / 2}, {4096, 4096}} {
			into := m.ProtoReflect().New().Interface()
			if err := DataCodec.Unmarshal(split(bytes.Clone(want), cut...), into); err != nil {
				t.Fatalf("message %d cut %v: Unmarshal: %v", i, cut, err)
			}
			if !proto.Equal(into, m) {
				t.Fatalf("message %d (%T) cut %v: decoded differs", i, m, cut)
			}
		}
	}
}

// TestDataCodecOtherFieldsFallBack: a data message that carries more
// than its data (an unknown field after it, or the tag of another field
// first) is decoded by protobuf, not mistaken for bare data.
func TestDataCodecOtherFieldsFallBack(t *testing.T) {
	d := bytes.Repeat([]byte{7}, 8192)
	b, err := proto.Marshal(&pb.JobDataRequest{Msg: &pb.JobDataRequest_Data{Data: d}})
	if err != nil {
		t.Fatal(err)
	}
	extra := protowire.AppendTag(bytes.Clone(b), 99, protowire.VarintType)
	extra = protowire.AppendVarint(extra, 5)
	var got pb.JobDataRequest
	if err := DataCodec.Unmarshal(split(extra), &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.GetData(), d) || len(got.ProtoReflect().GetUnknown()) == 0 {
		t.Fatalf("with an unknown field after the data: %d bytes of data, unknown %x", len(got.GetData()), got.ProtoReflect().GetUnknown())
	}
	// Records first, then data: the oneof's last field wins, as in protobuf.
	rec, _ := proto.Marshal(&pb.JobDataRequest{Msg: &pb.JobDataRequest_Records{Records: &pb.MemberRecords{}}})
	both := append(bytes.Clone(rec), b...)
	var want pb.JobDataRequest
	if err := proto.Unmarshal(both, &want); err != nil {
		t.Fatal(err)
	}
	if err := DataCodec.Unmarshal(split(both), &got); err != nil || !proto.Equal(&got, &want) {
		t.Fatalf("records then data: %v, equal %v", err, proto.Equal(&got, &want))
	}
}

// TestDataPool: Get gives the length asked for from a power-of-two class
// and reuses what Put and ReleaseData give back; buffers of other
// capacities are not taken.
func TestDataPool(t *testing.T) {
	for _, n := range []int{1, 4096, 4097, 1 << 20, MaxMessage} {
		b := DataPool.Get(n)
		if len(*b) != n || cap(*b) < n || cap(*b)&(cap(*b)-1) != 0 {
			t.Fatalf("Get(%d): len %d cap %d", n, len(*b), cap(*b))
		}
		DataPool.Put(b)
	}
	if b := DataPool.Get(MaxMessage + 1); len(*b) != MaxMessage+1 {
		t.Fatalf("Get beyond the classes: len %d", len(*b))
	}
	// A released buffer comes back (sync.Pool may drop it: try a few).
	reused := false
	for i := 0; i < 100 && !reused; i++ {
		b := make([]byte, 8192)
		b[0] = 0xa5
		ReleaseData(b[:100])
		g := DataPool.Get(5000)
		reused = (*g)[0] == 0xa5 && cap(*g) == 8192
	}
	if !reused {
		t.Error("a released 8 KiB buffer never came back from Get")
	}
	odd := make([]byte, 5000)
	ReleaseData(odd) // capacity 5000: not a class, dropped
	for i := 0; i < 10; i++ {
		if g := DataPool.Get(4097); cap(*g) == 5000 {
			t.Fatal("a buffer of capacity 5000 was pooled")
		}
	}
}

func BenchmarkDataCodec(b *testing.B) {
	d := make([]byte, 1<<20)
	m := &pb.RestoreDataReply{Msg: &pb.RestoreDataReply_Data{Data: d}}
	wire, _ := proto.Marshal(m)
	// 16 KiB pieces, as gRPC receives them; sink: a reader's buffer.
	var frames mem.BufferSlice
	for b := wire; len(b) > 0; b = b[min(len(b), 16384):] {
		frames = append(frames, mem.SliceBuffer(b[:min(len(b), 16384)]))
	}
	sink := make([]byte, 256<<10)
	for _, c := range []struct {
		name string
		run  func() error
	}{
		{"DataCodec/marshal", func() error { bs, err := DataCodec.Marshal(m); bs.Free(); return err }},
		{"grpc-proto/marshal", func() error { bs, err := DataCodec.(dataCodec).fallback.Marshal(m); bs.Free(); return err }},
		{"DataOut/marshal", func() error {
			bs, err := DataCodec.Marshal(&DataOut{Msg: m, Done: func([]byte) {}})
			bs.Free()
			return err
		}},
		{"DataCodec/unmarshal", func() error {
			var r pb.RestoreDataReply
			err := DataCodec.Unmarshal(split(wire, 16384, 16384), &r)
			ReleaseData(r.GetData())
			return err
		}},
		{"grpc-proto/unmarshal", func() error {
			var r pb.RestoreDataReply
			return DataCodec.(dataCodec).fallback.Unmarshal(split(wire, 16384, 16384), &r)
		}},
		// A reader's receive: the data ends in the reader's buffer.
		{"DataCodec/unmarshal+read", func() error {
			var r pb.RestoreDataReply
			err := DataCodec.Unmarshal(frames, &r)
			for b := r.GetData(); len(b) > 0; b = b[copy(sink, b):] {
			}
			ReleaseData(r.GetData())
			return err
		}},
		{"DataIn/unmarshal+read", func() error {
			in := DataIn{Msg: &pb.RestoreDataReply{}}
			err := DataCodec.Unmarshal(frames, &in)
			for in.Frames.Len() > 0 {
				in.Frames.Read(sink)
			}
			in.Frames.Free()
			return err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(d)))
			for b.Loop() {
				if err := c.run(); err != nil {
					b.Fatal(fmt.Sprint(err))
				}
			}
		})
	}
}

// countingPool is a mem.BufferPool that counts the buffers given back.
type countingPool struct{ put int }

// Get makes buffers of at least 4 KiB: gRPC pools no smaller ones.
func (p *countingPool) Get(n int) *[]byte { b := make([]byte, n, max(n, 4096)); return &b }
func (p *countingPool) Put(*[]byte)       { p.put++ }

// pooled cuts b like split, into buffers of pool (refcounted, as gRPC's
// receive buffers are).
func pooled(pool *countingPool, b []byte, size int) mem.BufferSlice {
	var out mem.BufferSlice
	for len(b) > 0 {
		n := min(size, len(b))
		bp := pool.Get(n)
		copy(*bp, b[:n])
		out = append(out, mem.NewBuffer(bp, pool))
		b = b[n:]
	}
	return out
}

// TestDataInFrames: a data-only message received into a DataIn leaves
// its data in the receive buffers, which outlive gRPC's own reference
// and are read (or lent) back exactly, whatever the sizes of the steps;
// the buffers go back to their pool on Free, not before. Any other
// message (small, another field, another kind) is decoded into Msg.
func TestDataInFrames(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{4096, 4097, 16384, 65536 + 5, 1<<20 + 3} {
		d := make([]byte, n)
		for i := range d {
			d[i] = byte(rng.Uint32())
		}
		wire, _ := proto.Marshal(&pb.RestoreDataReply{Msg: &pb.RestoreDataReply_Data{Data: d}})
		for _, size := range []int{1, 7, 1500, 16384} {
			if size < 1500 && n > 65536 {
				continue
			}
			pool := &countingPool{}
			in := pooled(pool, wire, size)
			bufs := len(in)
			got := DataIn{Msg: &pb.RestoreDataReply{}}
			if err := DataCodec.Unmarshal(in, &got); err != nil {
				t.Fatalf("%d bytes in pieces of %d: %v", n, size, err)
			}
			in.Free() // gRPC's reference
			if pool.put != 0 {
				t.Fatalf("%d bytes in pieces of %d: %d buffers went back to the pool while the frames hold them", n, size, pool.put)
			}
			if got.Frames.Len() != n || got.Msg.(*pb.RestoreDataReply).Msg != nil {
				t.Fatalf("%d bytes in pieces of %d: frames of %d bytes, message %v", n, size, got.Frames.Len(), got.Msg)
			}
			// Read and Lend in turns: the same bytes, in order, Lend's
			// pieces at most what was asked (and something while any is left).
			var out []byte
			for step, lend := 1, false; got.Frames.Len() > 0; step, lend = step*3+1, !lend {
				if lend {
					k := 0
					for _, piece := range got.Frames.Lend(step, nil) {
						out, k = append(out, piece...), k+len(piece)
					}
					if k == 0 || k > step {
						t.Fatalf("%d bytes in pieces of %d: Lend(%d) gave %d bytes", n, size, step, k)
					}
					continue
				}
				p := make([]byte, step)
				k := got.Frames.Read(p)
				out = append(out, p[:k]...)
			}
			if !bytes.Equal(out, d) || got.Frames.Read(make([]byte, 10)) != 0 {
				t.Fatalf("%d bytes in pieces of %d: read back %d bytes, equal %v", n, size, len(out), bytes.Equal(out, d))
			}
			got.Frames.Free()
			if pool.put != bufs {
				t.Fatalf("%d bytes in pieces of %d: %d of %d buffers back after Free", n, size, pool.put, bufs)
			}
		}
	}
	for _, m := range []proto.Message{
		&pb.RestoreDataReply{Msg: &pb.RestoreDataReply_Data{Data: make([]byte, 100)}},
		&pb.RestoreDataReply{Msg: &pb.RestoreDataReply_End{End: &pb.RestoreDataEnd{Members: 3, Bytes: 9}}},
	} {
		wire, _ := proto.Marshal(m)
		got := DataIn{Msg: &pb.RestoreDataReply{}}
		if err := DataCodec.Unmarshal(split(wire, 3), &got); err != nil {
			t.Fatal(err)
		}
		if got.Frames.Len() != 0 || !proto.Equal(got.Msg, m) {
			t.Fatalf("%v: frames of %d bytes, decoded %v", m, got.Frames.Len(), got.Msg)
		}
	}
}

// TestDataOut: a data message sent through a DataOut encodes to exactly
// what protobuf encodes; its data is handed back (Done, once) only when
// gRPC frees what Marshal returned, at once when it is small enough to
// be copied.
func TestDataOut(t *testing.T) {
	for _, n := range []int{0, 100, 4095, 4096, 1<<18 + 5} {
		d := bytes.Repeat([]byte{0x5a}, n)
		m := &pb.RestoreDataReply{Msg: &pb.RestoreDataReply_Data{Data: d}}
		want, _ := proto.Marshal(m)
		var done [][]byte
		bs, err := DataCodec.Marshal(&DataOut{Msg: m, Done: func(b []byte) { done = append(done, b) }})
		if err != nil {
			t.Fatal(err)
		}
		if got := bs.Materialize(); !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: the encoding differs from protobuf's", n)
		}
		copied := n < minFast
		if len(done) != map[bool]int{true: 1, false: 0}[copied] {
			t.Fatalf("%d bytes: Done called %d times before gRPC freed the message", n, len(done))
		}
		bs.Free()
		if len(done) != 1 || len(done[0]) != n || n > 0 && &done[0][0] != &d[0] {
			t.Fatalf("%d bytes: after Free, Done called %d times (want once, with the data)", n, len(done))
		}
	}
}
