package catalog

import (
	"bytes"
	"fmt"
	"testing"
)

// The path table keeps one entry per path with the highest rank put,
// finds every path in any order (those of the order of the puts without
// hashing), grows past the number of rows it was made for, and keeps a
// path longer than a chunk whole.
func TestPathTable(t *testing.T) {
	const n = 5000
	long := bytes.Repeat([]byte("x/"), pathChunk) // two chunks' worth
	pathOf := func(i int) []byte { return fmt.Appendf(nil, "/home/u%d/dir%d/file-%d", i%7, i%13, i) }
	tab := newPathTable(10) // far fewer than put: it grows
	for i := range n {
		tab.put(pathOf(i), int64(i))
		if i == n/2 {
			tab.put(long, -1)
		}
	}
	for i := 0; i < n; i += 3 { // a later job of the chain has a third of them again
		tab.put(pathOf(i), int64(n+i))
	}
	tab.put(pathOf(9), 0) // a lower rank does not lower it
	if len(tab.ents) != n+1 {
		t.Fatalf("%d entries, want %d", len(tab.ents), n+1)
	}
	if len(tab.slots) < 2*len(tab.ents) {
		t.Fatalf("%d slots for %d entries: more than half full", len(tab.slots), len(tab.ents))
	}
	check := func(order string, idx []int) {
		t.Helper()
		for _, i := range idx {
			e := tab.lookup(pathOf(i))
			want := int64(i) // the rank tells the entry
			if i%3 == 0 {
				want = int64(n + i)
			}
			if e == nil || e.rank != want {
				t.Fatalf("%s: lookup(%s) = %+v, want the entry of rank %d", order, pathOf(i), e, want)
			}
		}
	}
	var fwd, rev, strided []int
	for i := range n {
		fwd, rev, strided = append(fwd, i), append(rev, n-1-i), append(strided, i*7919%n)
	}
	check("in the order of the puts", fwd)
	check("in reverse", rev)
	check("scattered", strided)
	if e := tab.lookup(long); e == nil || e.rank != -1 || !bytes.Equal(tab.path(tab.next-1), long) {
		t.Fatalf("the %d-byte path: %v", len(long), e)
	}
	for _, p := range []string{"", "/home/u0/dir0/file-", "/home/u1/dir1/file-50000", string(long[:len(long)-1])} {
		if e := tab.lookup([]byte(p)); e != nil {
			t.Fatalf("lookup(%.40q) found %+v: not put", p, *e)
		}
	}
	// After a miss, the next lookup in order is still found.
	check("after misses", []int{0, 1, 2})
}
