package main

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"testing/iotest"
)

// TestQueuePipe: bytes written and queued by readN arrive whole and in order,
// with the writer's error at the end; a reader that stops unblocks the
// writer with the reader's error.
func TestQueuePipe(t *testing.T) {
	data := randomBytes(9<<20+123, 1)
	q := newQueuePipe()
	werr := errors.New("tape file ended")
	go func() {
		if _, err := q.Write(data[:100]); err != nil {
			t.Error(err)
		}
		// one byte at a time for a while, then blocks (the rest of
		// them: io.EOF after what there was)
		n, err := q.readN(blocks(iotest.OneByteReader(bytes.NewReader(data[100:5000]))), 4900)
		if n != 4900 || err != nil {
			t.Errorf("readN: %d, %v; want 4900, nil", n, err)
		}
		if n, err := q.readN(blocks(bytes.NewReader(data[5000:])), int64(len(data))); n != int64(len(data)-5000) || err != io.EOF {
			t.Errorf("readN: %d, %v; want %d, EOF", n, err, len(data)-5000)
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
		_, err := q.readN(blocks(bytes.NewReader(data)), int64(len(data)))
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

// TestQueuePipeLend: Lend and Read in turns give the bytes written, in
// order; a lent buffer is not filled again before the next Lend or Read
// (the writer is kept busy meanwhile, so it would be).
func TestQueuePipeLend(t *testing.T) {
	data := randomBytes(7<<20+77, 5)
	q := newQueuePipe()
	go func() {
		_, err := q.readN(blocks(bytes.NewReader(data)), int64(len(data)))
		q.CloseWrite(err)
	}()
	var got []byte
	for step, lend := 1000, true; ; step, lend = step*2+1, !lend {
		if !lend {
			p := make([]byte, step)
			n, err := q.Read(p)
			got = append(got, p[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		bufs, err := q.Lend(step, nil)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var lent []byte
		for _, b := range bufs {
			lent = append(lent, b...)
		}
		if len(lent) == 0 || len(lent) > step {
			t.Fatalf("Lend(%d) gave %d bytes", step, len(lent))
		}
		// Give the writer every chance to reuse the buffer: wait until
		// it has filled every buffer there is (queueDepth waiting, or the
		// stream is done).
		for len(q.full) < queueDepth-1 && len(got)+len(lent)+queueDepth*queueBuf < len(data) {
			runtime.Gosched()
		}
		for _, b := range bufs {
			got = append(got, b...)
		}
		if !bytes.Equal(got[len(got)-len(lent):], lent) {
			t.Fatalf("a lent buffer changed before the next Lend (at byte %d)", len(got)-len(lent))
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want the %d written in order", len(got), len(data))
	}
}

// TestQueuePipeBlockBuffers: after a member's headers filled small
// buffers, readN still hands whole blocks to the reader (a buffer too
// small for the bytes wanted is replaced), and a small member's data
// takes no block-sized buffer.
func TestQueuePipeBlockBuffers(t *testing.T) {
	data := randomBytes(6*queueBuf, 9)
	q := newQueuePipe()
	go func() {
		for range 2 * queueDepth {
			if _, err := q.Write(data[:512]); err != nil {
				t.Error(err)
			}
		}
		if _, err := q.readN(blocks(bytes.NewReader(data[:4096])), 4096); err != nil {
			t.Error(err)
		}
		_, err := q.readN(blocks(bytes.NewReader(data)), int64(len(data)))
		q.CloseWrite(err)
	}()
	var sizes, caps []int
	for {
		bufs, err := q.Lend(2*queueBuf, nil)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bufs {
			sizes, caps = append(sizes, len(b)), append(caps, cap(b))
		}
	}
	want := []int{512, 512, 512, 512, 512, 512, 512, 512, 4096, queueBuf, queueBuf, queueBuf, queueBuf, queueBuf, queueBuf}
	if !slices.Equal(sizes, want) {
		t.Fatalf("the reader got pieces of %v bytes, want %v", sizes, want)
	}
	if caps[8] != queueMin {
		t.Fatalf("a 4096-byte member's data came in a buffer of %d bytes, want %d", caps[8], queueMin)
	}
}

// blockSource is a directReader over r: what one Read of r gives, at
// most a block of queueBuf bytes and the limit.
type blockSource struct{ r io.Reader }

func blocks(r io.Reader) blockSource { return blockSource{r} }

func (b blockSource) ReadDirect(p []byte, limit int64) (int, error) {
	return b.r.Read(p[:min(int64(len(p)), limit, queueBuf)])
}

// randomBytes is n bytes of a random stream of seed.
func randomBytes(n int, seed uint64) []byte {
	data := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, seed+1))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	return data
}
