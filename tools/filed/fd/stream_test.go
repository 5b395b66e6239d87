package fd

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	d := newDataStream(context.Background(), func() (pb.Storage_JobDataClient, error) {
		<-release // the producer writes before the connection fails
		return nil, refused
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
