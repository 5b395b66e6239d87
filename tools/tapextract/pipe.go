package main

import (
	"io"
	"sync"
)

// queuePipe is io.Pipe with a queue: Write copies into one of up to
// queueDepth buffers and returns without waiting for the reader, so the
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

// buffer is a free buffer (a new one of size while fewer than
// queueDepth exist), or nil once the reader closed.
func (q *queuePipe) buffer(size int) []byte {
	select {
	case b := <-q.free:
		return b[:cap(b)]
	case <-q.done:
		return nil
	default:
	}
	if q.made < queueDepth {
		q.made++
		return make([]byte, size)
	}
	select {
	case b := <-q.free:
		return b[:cap(b)]
	case <-q.done:
		return nil
	}
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
		b := q.buffer(min(queueBuf, max(queueMin, len(p))))
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

// ReadFrom reads r to its end straight into the queue's buffers (what
// io.Copy and io.CopyN use): no intermediate copy, and the reader gets
// whole buffers.
func (q *queuePipe) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	for {
		b := q.buffer(queueBuf)
		if b == nil {
			return n, q.rerr
		}
		m, err := 0, error(nil)
		for m < len(b) && err == nil {
			var k int
			k, err = r.Read(b[m:])
			m += k
		}
		if m > 0 {
			if !q.send(b[:m]) {
				return n, q.rerr
			}
			n += int64(m)
		} else {
			q.free <- b // never blocks: at most queueDepth buffers exist
		}
		switch {
		case err == io.EOF:
			return n, nil
		case err != nil:
			return n, err
		}
	}
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
