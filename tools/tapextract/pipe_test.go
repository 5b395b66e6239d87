package main

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// TestQueuePipe: bytes written and read-from arrive whole and in order,
// with the writer's error at the end; a reader that stops unblocks the
// writer with the reader's error.
func TestQueuePipe(t *testing.T) {
	data := make([]byte, 9<<20+123)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	q := newQueuePipe()
	werr := errors.New("tape file ended")
	go func() {
		if _, err := q.Write(data[:100]); err != nil {
			t.Error(err)
		}
		// one byte at a time for a while, as a tape cursor at a block edge may return
		n, err := q.ReadFrom(io.LimitReader(iotest.OneByteReader(bytes.NewReader(data[100:5000])), 4900))
		if n != 4900 || err != nil {
			t.Errorf("ReadFrom: %d, %v; want 4900, nil", n, err)
		}
		if n, err := q.ReadFrom(bytes.NewReader(data[5000:])); n != int64(len(data)-5000) || err != nil {
			t.Errorf("ReadFrom: %d, %v", n, err)
		}
		q.CloseWrite(werr)
	}()
	got, err := io.ReadAll(q)
	if !errors.Is(err, werr) {
		t.Fatalf("the reader got %v at the end, want the writer's error", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the %d written (or not in order)", len(got), len(data))
	}

	q = newQueuePipe()
	done := make(chan error, 1)
	go func() {
		_, err := q.ReadFrom(bytes.NewReader(data))
		done <- err
	}()
	if _, err := io.ReadFull(q, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	q.CloseRead(errStop)
	if err := <-done; !errors.Is(err, errStop) {
		t.Fatalf("the writer got %v after the reader stopped, want errStop", err)
	}
	if _, err := q.Write([]byte("x")); !errors.Is(err, errStop) {
		t.Fatalf("Write after the reader stopped: %v, want errStop", err)
	}
}
