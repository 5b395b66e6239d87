package catalog

import (
	"bytes"
	"hash/maphash"
	"math/bits"
)

// pathTable is a set of paths with a rank and a seen mark each, for the
// in-memory view (memView): the paths' bytes in large chunks, the
// entries in one slice, and an open-addressing index of them, none of
// which holds a pointer per path. (A map[string]int32 cost a string
// allocation per path, a garbage collector scanning all of them, and
// twice the hashing on load: a lookup, then an insert.)
type pathTable struct {
	seed   maphash.Seed
	chunks [][]byte
	ents   []pathEnt
	// slots: 0 is empty; else the entry's index + 1 in the low 32 bits
	// and the high 32 bits of its path's hash in the high ones. At most
	// half of them are used.
	slots []uint64
	mask  uint64
	// next is the entry after the one lookup last found: lookups mostly
	// come in the order of the puts (the client walks its tree in the
	// order of the backup the view was read from, rows in the order they
	// were written), so lookup tries it before hashing.
	next int32
}

type pathEnt struct {
	chunk, off, n uint32
	seen          bool
	rank          int64
}

// pathChunk is the size of a chunk of path bytes (a longer path has a
// chunk of its own).
const pathChunk = 1 << 20

func newPathTable(rows int64) *pathTable {
	t := &pathTable{seed: maphash.MakeSeed()}
	t.ents = make([]pathEnt, 0, max(rows, 0))
	t.resize(max(rows, 8))
	return t
}

// resize makes the index hold n entries at most half full.
func (t *pathTable) resize(n int64) {
	size := uint64(1) << bits.Len64(uint64(2*n-1))
	t.slots, t.mask = make([]uint64, size), size-1
	for i := range t.ents {
		t.place(t.hash(t.path(int32(i))), int32(i))
	}
}

func (t *pathTable) hash(p []byte) uint64 { return maphash.Bytes(t.seed, p) }

// place puts entry i, whose path hashes to h, in the first empty slot of
// its probe sequence.
func (t *pathTable) place(h uint64, i int32) {
	for s := h & t.mask; ; s = (s + 1) & t.mask {
		if t.slots[s] == 0 {
			t.slots[s] = h&^0xffffffff | uint64(i+1)
			return
		}
	}
}

func (t *pathTable) path(i int32) []byte {
	e := &t.ents[i]
	return t.chunks[e.chunk][e.off : e.off+e.n : e.off+e.n]
}

// find returns the index of p's entry (h its hash), or -1.
func (t *pathTable) find(p []byte, h uint64) int32 {
	for s := h & t.mask; ; s = (s + 1) & t.mask {
		v := t.slots[s]
		if v == 0 {
			return -1
		}
		if v>>32 == h>>32 {
			if i := int32(uint32(v) - 1); bytes.Equal(t.path(i), p) {
				return i
			}
		}
	}
}

// lookup returns the entry of p, or nil.
func (t *pathTable) lookup(p []byte) *pathEnt {
	i := t.next
	if int(i) >= len(t.ents) || !bytes.Equal(t.path(i), p) {
		if i = t.find(p, t.hash(p)); i < 0 {
			return nil
		}
	}
	t.next = i + 1
	return &t.ents[i]
}

// put adds p with rank, or raises the rank of its entry to rank.
func (t *pathTable) put(p []byte, rank int64) {
	h := t.hash(p)
	if i := t.find(p, h); i >= 0 {
		t.ents[i].rank = max(t.ents[i].rank, rank)
		return
	}
	if 2*uint64(len(t.ents)+1) > uint64(len(t.slots)) {
		t.resize(int64(2 * (len(t.ents) + 1)))
	}
	e := pathEnt{n: uint32(len(p)), rank: rank}
	last := len(t.chunks) - 1
	if last < 0 || cap(t.chunks[last])-len(t.chunks[last]) < len(p) {
		t.chunks = append(t.chunks, make([]byte, 0, max(pathChunk, len(p))))
		last++
	}
	e.chunk, e.off = uint32(last), uint32(len(t.chunks[last]))
	t.chunks[last] = append(t.chunks[last], p...)
	t.ents = append(t.ents, e)
	t.place(h, int32(len(t.ents)-1))
}
