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
	for _, c := range []struct {
		name string
		run  func() error
	}{
		{"DataCodec/marshal", func() error { bs, err := DataCodec.Marshal(m); bs.Free(); return err }},
		{"grpc-proto/marshal", func() error { bs, err := DataCodec.(dataCodec).fallback.Marshal(m); bs.Free(); return err }},
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
