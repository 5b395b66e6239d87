package main

import (
	"io"
	"sync"
)

// queuePipe is io.Pipe with a queue: Write copies into one of up to
// queueDepth buffers (readN reads tape blocks straight into them) and
// returns without waiting for the reader, so the
// next tape block is read from the drive while the safe writer hashes
// and writes the previous ones. (With io.Pipe, whose Write waits until
// every byte is read, the drive and the writer took turns.)
type queuePipe struct {
	full chan []byte   // filled buffers, in order; closed by the writer
	free chan []byte   // buffers the reader is done with
	done chan struct{} // closed by the reader
	made int           // buffers allocated (writer side)
	werr error         // the writer's close error, set before full is closed
	rerr error         // the reader's close error, set before done is closed
	cur  []byte        // unread part of the reader's buffer
	held []byte        // the reader's buffer, whole
	once sync.Once
}

const (
	queueDepth = 4
	queueBuf   = 1 << 20
	queueMin   = 64 << 10
)

func newQueuePipe() *queuePipe {
	return &queuePipe{full: make(chan []byte, queueDepth), free: make(chan []byte, queueDepth), done: make(chan struct{})}
}

// buffer is a free buffer for want bytes: at least want, queueMin and
// at most queueBuf (a new one while fewer than queueDepth exist, or in
// place of a free one that is smaller: one made for a header gives way
// to one for a tape block), or nil once the reader closed.
func (q *queuePipe) buffer(want int64) []byte {
	size := int(min(queueBuf, max(queueMin, want)))
	var b []byte
	select {
	case b = <-q.free:
	case <-q.done:
		return nil
	default:
		if q.made < queueDepth {
			q.made++
			return make([]byte, size)
		}
		select {
		case b = <-q.free:
		case <-q.done:
			return nil
		}
	}
	if cap(b) < size {
		return make([]byte, size)
	}
	return b[:cap(b)]
}

// send queues b for the reader; false once the reader closed.
func (q *queuePipe) send(b []byte) bool {
	select {
	case q.full <- b:
		return true
	case <-q.done:
		return false
	}
}

// Write queues a copy of p; it blocks only while queueDepth buffers are
// waiting, and fails with the reader's error once the reader closed.
func (q *queuePipe) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		b := q.buffer(int64(len(p)))
		if b == nil {
			return n, q.rerr
		}
		b = b[:copy(b, p)]
		if !q.send(b) {
			return n, q.rerr
		}
		p = p[len(b):]
		n += len(b)
	}
	return n, nil
}

// directReader is tapeio.Cursor's ReadDirect: at most limit bytes into
// p, a whole tape block straight from the drive when it fits.
type directReader interface {
	ReadDirect(p []byte, limit int64) (int, error)
}

// readN queues the next n bytes of r, each read into a queue buffer of
// its own: a whole block goes from the drive into the buffer the writer
// hashes and writes, with no copy in between. io.EOF (with the bytes
// queued) when r ends first.
func (q *queuePipe) readN(r directReader, n int64) (int64, error) {
	var done int64
	for done < n {
		b := q.buffer(n - done)
		if b == nil {
			return done, q.rerr
		}
		m, err := r.ReadDirect(b, n-done)
		if m > 0 {
			if !q.send(b[:m]) {
				return done, q.rerr
			}
			done += int64(m)
		} else {
			q.free <- b // never blocks: at most queueDepth buffers exist
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// CloseWrite ends the stream: the reader gets what was queued, then err
// (io.EOF when nil). Called once, by the writer.
func (q *queuePipe) CloseWrite(err error) {
	if err == nil {
		err = io.EOF
	}
	q.werr = err
	close(q.full)
}

func (q *queuePipe) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := q.fill(); err != nil {
		return 0, err
	}
	n := copy(p, q.cur)
	q.cur = q.cur[n:]
	return n, nil
}

// Lend implements extract.Lender: the next bytes of the queue's buffer,
// which goes back to the writer at the next Lend or Read after it was
// used up.
func (q *queuePipe) Lend(max int, dst [][]byte) ([][]byte, error) {
	if err := q.fill(); err != nil {
		return dst, err
	}
	n := min(max, len(q.cur))
	dst = append(dst, q.cur[:n])
	q.cur = q.cur[n:]
	return dst, nil
}

// fill makes cur hold unread bytes: the next filled buffer once the
// current one is used up (given back to the writer then), or the
// writer's close error.
func (q *queuePipe) fill() error {
	for len(q.cur) == 0 {
		if q.held != nil {
			q.free <- q.held[:cap(q.held)] // never blocks: at most queueDepth buffers exist
			q.held = nil
		}
		b, ok := <-q.full
		if !ok {
			return q.werr
		}
		q.held, q.cur = b, b
	}
	return nil
}

// CloseRead stops the writer: its Writes fail with err from now on.
func (q *queuePipe) CloseRead(err error) {
	q.once.Do(func() {
		q.rerr = err
		close(q.done)
	})
}
