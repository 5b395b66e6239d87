package fd

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tapeward/tapeward/proto/link"
	pb "github.com/tapeward/tapeward/proto/tapewardpb"
)

// The data stream opens in its sender while the producer writes: when
// it cannot be opened, the job is told at once (failed: it stops its
// walk) and the producer's next call returns the same error, whether it
// is filling chunks or ending the stream.
func TestDataStreamThatCannotOpen(t *testing.T) {
	refused := status.Error(codes.Unavailable, "connection refused")
	release := make(chan struct{})
	failed := make(chan error, 1)
	d := newDataStream(context.Background(), func() (pb.Storage_JobDataClient, func() error, error) {
		<-release // the producer writes before the connection fails
		return nil, nil, refused
	}, &pb.JobDataOpen{}, time.Hour, nil, nil, func(err error) { failed <- err })
	chunk := make([]byte, ChunkSize)
	if _, err := d.Write(chunk[:100]); err != nil {
		t.Fatalf("a write before the stream opened: %v", err)
	}
	close(release)
	if err := <-failed; !errors.Is(err, refused) {
		t.Fatalf("failed got %v, want the connection's error", err)
	}
	var err error
	for i := 0; i < inFlight+4 && err == nil; i++ { // the queue fills, then the error
		_, err = d.Write(chunk)
	}
	if !errors.Is(err, refused) {
		t.Fatalf("writes after the failure: %v, want the connection's error", err)
	}
	if _, err := d.finish(1); !errors.Is(err, refused) {
		t.Fatalf("finish: %v, want the connection's error", err)
	}
}

// heldStream is a JobData client stream that keeps each data message's
// buffer, as gRPC does until it has written it, and gives it back only
// when the test says (Done).
type heldStream struct {
	grpc.ClientStream
	data  chan *link.DataOut
	other chan *pb.JobDataRequest
}

func (h *heldStream) SendMsg(m any) error {
	switch m := m.(type) {
	case *link.DataOut:
		h.data <- m
	case *pb.JobDataRequest:
		if m.GetData() != nil {
			return fmt.Errorf("a data message sent as it is, not as a link.DataOut (the codec copies it)")
		}
		h.other <- m
	default:
		return fmt.Errorf("SendMsg got a %T", m)
	}
	return nil
}

func (h *heldStream) Send(m *pb.JobDataRequest) error { return h.SendMsg(m) }

func (h *heldStream) CloseAndRecv() (*pb.JobDataReply, error) { return &pb.JobDataReply{}, nil }

// A chunk goes to gRPC as it is (link.DataOut, not copied) and is
// filled again only after gRPC gave it back: with every buffer held the
// producer waits, and what was sent is intact when it is written.
func TestChunksGoToGRPCUncopied(t *testing.T) {
	const chunks = 2*(inFlight+2) + 1
	h := &heldStream{data: make(chan *link.DataOut, chunks), other: make(chan *pb.JobDataRequest, 16)}
	d := newDataStream(ctxT(t), func() (pb.Storage_JobDataClient, func() error, error) { return h, func() error { return nil }, nil },
		&pb.JobDataOpen{}, time.Hour, nil, nil, func(error) {})
	produced := make(chan error, 1)
	go func() {
		chunk := make([]byte, ChunkSize)
		for i := range chunks {
			for j := range chunk {
				chunk[j] = byte(i*7 + j)
			}
			if _, err := d.Write(chunk); err != nil {
				produced <- err
				return
			}
		}
		_, err := d.finish(0)
		produced <- err
	}()
	var prodErr error
	prodDone := false
	next := func() *link.DataOut {
		t.Helper()
		for {
			select {
			case m := <-h.data:
				return m
			default:
			}
			if prodDone { // it ended after every message was sent
				t.Fatalf("the producer ended (%v) before the next data message", prodErr)
			}
			select {
			case m := <-h.data:
				return m
			case prodErr = <-produced:
				prodDone = true
			}
		}
	}
	check := func(i int, m *link.DataOut) {
		t.Helper()
		b := m.Msg.(*pb.JobDataRequest).GetData()
		if len(b) != ChunkSize {
			t.Fatalf("data message %d: %d bytes, want %d", i, len(b), ChunkSize)
		}
		for j, c := range b {
			if c != byte(i*7+j) {
				t.Fatalf("data message %d: byte %d is %d, want %d (its buffer was filled again while gRPC held it)", i, j, c, byte(i*7+j))
			}
		}
	}
	// Hold every buffer the stream has: the producer can fill no other.
	held := make([]*link.DataOut, inFlight+2)
	for i := range held {
		held[i] = next()
	}
	for i, m := range held {
		check(i, m)
	}
	for _, m := range held {
		m.Done(m.Msg.(*pb.JobDataRequest).GetData())
	}
	for i := len(held); i < chunks; i++ {
		m := next()
		check(i, m)
		m.Done(m.Msg.(*pb.JobDataRequest).GetData())
	}
	if !prodDone {
		prodErr = <-produced
	}
	if prodErr != nil {
		t.Fatalf("producer: %v", prodErr)
	}
	if got := d.allocs; got != inFlight+2 {
		t.Fatalf("%d buffers made, want %d (each comes back from gRPC)", got, inFlight+2)
	}
}
