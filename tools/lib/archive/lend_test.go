package archive

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// lender is a BufferWriter as adverse as its contract allows: it gives a
// written buffer out again at once (the last written first), overwritten
// with junk, and its buffers are smaller than the writer's own.
type lender struct {
	out        bytes.Buffer
	free       [][]byte
	lent       int // buffers out, not yet taken back
	written    int // WriteBuffer calls with data
	failBuffer int // Buffer fails on this call (1-based; 0: never)
	failWrite  int // WriteBuffer fails on this call with data
	calls      int
}

var errLender = errors.New("the destination is gone")

func (l *lender) Write(p []byte) (int, error) { return l.out.Write(p) }

func (l *lender) Buffer() ([]byte, error) {
	l.calls++
	if l.calls == l.failBuffer {
		return nil, errLender
	}
	l.lent++
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		for i := range b {
			b[i] = 0xa5
		}
		return b, nil
	}
	return make([]byte, 200<<10), nil
}

func (l *lender) WriteBuffer(b []byte) error {
	l.lent--
	if len(b) > 0 {
		l.written++
		if l.written == l.failWrite {
			return errLender
		}
		l.out.Write(b)
	}
	l.free = append(l.free, b[:cap(b)])
	return nil
}

// lendSet is memberSet with large files (past parallelHash) of every
// shape: whole buffers and a part, shrunk, grown, sparse.
func lendSet() []testMember {
	set := memberSet()
	reg := func(p string, size int, data []byte) testMember {
		return testMember{Member{Path: p, Type: TypeReg, Size: int64(size), Mode: 0o600, Mtime: testTime}, data}
	}
	set = append(set,
		reg("big/exact", 400<<10, pattern(400<<10, 11)),
		reg("big/odd", 3<<20+77, pattern(3<<20+77, 12)),
		reg("big/threshold", parallelHash, pattern(parallelHash, 13)),
		reg("big/shrunk", 2<<20, pattern(1<<20+5, 14)),
		reg("big/grew", 300<<10, pattern(1<<20, 15)))
	sp := make([]byte, 4<<20)
	copy(sp[1<<20:], pattern(1<<20+9, 16))
	m := Member{Path: "big/sparse", Type: TypeReg, Size: int64(len(sp)), Mode: 0o600, Mtime: testTime,
		Sparse: []Span{{1 << 20, 1<<20 + 9}}}
	return append(set, testMember{m, sp})
}

// Into a BufferWriter a large file's data goes in the destination's
// buffers, and the stream, the offsets and the digests are the same as
// through Write, whatever the destination does with a buffer once it is
// written; every buffer comes back.
func TestLentBuffers(t *testing.T) {
	var plain bytes.Buffer
	want := writeTo(t, &plain, lendSet())
	l := &lender{}
	got := writeTo(t, l, lendSet())
	if l.written == 0 {
		t.Fatal("no buffer was written whole: the writer did not use the lender's buffers")
	}
	if l.lent != 0 {
		t.Errorf("%d buffers not given back", l.lent)
	}
	if !bytes.Equal(l.out.Bytes(), plain.Bytes()) {
		i := 0
		for i < min(l.out.Len(), plain.Len()) && l.out.Bytes()[i] == plain.Bytes()[i] {
			i++
		}
		t.Fatalf("streams differ from byte %d (%d and %d bytes)", i, l.out.Len(), plain.Len())
	}
	if !slices.EqualFunc(got, want, func(a, b Record) bool {
		return a.Path == b.Path && a.HeaderOffset == b.HeaderOffset && a.DataOffset == b.DataOffset &&
			a.StoredSize == b.StoredSize && a.SHA256 == b.SHA256 && a.Warnings == b.Warnings
	}) {
		t.Errorf("records differ:\n%+v\nwant\n%+v", got, want)
	}
}

// A destination that fails while lending fails the member with its error
// and the stream offset, and gets every buffer back.
func TestLentBuffersFail(t *testing.T) {
	data := pattern(3<<20, 21)
	m := Member{Path: "big", Type: TypeReg, Size: int64(len(data)), Mode: 0o600, Mtime: testTime}
	for _, l := range []*lender{{failBuffer: 1}, {failBuffer: 3}, {failWrite: 1}, {failWrite: 4}} {
		w := NewWriter(l)
		_, err := w.WriteMember(m, bytes.NewReader(data))
		if !errors.Is(err, errLender) {
			t.Errorf("Buffer failing on call %d, WriteBuffer on data call %d: %v, want the destination's error", l.failBuffer, l.failWrite, err)
		}
		if l.lent != 0 {
			t.Errorf("Buffer failing on call %d, WriteBuffer on data call %d: %d buffers not given back", l.failBuffer, l.failWrite, l.lent)
		}
		if _, err := w.WriteMember(m, bytes.NewReader(data)); !errors.Is(err, errLender) {
			t.Errorf("the next member after the failure: %v, want the same error", err)
		}
	}
}
