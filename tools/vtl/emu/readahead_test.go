package emu

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
)

// aheadCounts returns drive 0's read-ahead counters.
func (h *testLib) aheadCounts() (made, used int) {
	d := h.lib.drives[0]
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.aheadMade, d.aheadUsed
}

// waitMade waits (up to 10 s) until the drive has made n read-aheads: a
// READ's read-ahead runs after its answer, on that nexus's connection,
// so another nexus's next command may otherwise come first.
func (h *testLib) waitMade(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		made, _ := h.aheadCounts()
		if made >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("read-aheads made %d after 10 s, want %d", made, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// writeBlocks writes n encrypted blocks of 64 KiB with key 1 from a fresh
// nexus and rewinds; it returns the blocks.
func (h *testLib) writeBlocks(t *testing.T, n int) [][]byte {
	t.Helper()
	w := h.dial("drive0")
	settle(t, w)
	setKey(t, w, testKey(1))
	var blocks [][]byte
	for i := range n {
		b := pattern(64<<10, byte(i))
		blocks = append(blocks, b)
		must(t, w, write6(len(b)), b, 0)
	}
	must(t, w, wfm(1), nil, 0)
	must(t, w, rewind(), nil, 0)
	return blocks
}

// TestReadAheadServesSequentialReads: after the first READ, each READ of
// a run of blocks is answered from the block read ahead while the host
// took the one before, with the data a READ without it returns; through
// the shared data buffer and through the socket.
func TestReadAheadServesSequentialReads(t *testing.T) {
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprintf("shared=%t", shared), func(t *testing.T) {
			h := newTestLib(t, nil)
			h.load(1, 0)
			blocks := h.writeBlocks(t, 20)
			c := h.dialHello(vtlwire.Hello{Unit: "drive0", SharedBuffer: shared})
			drainUA(t, c)
			for i, b := range blocks {
				r := must(t, c, read6(len(b), true), nil, len(b))
				if !bytes.Equal(r.data, b) {
					t.Fatalf("block %d differs", i)
				}
			}
			expect(t, c, "0/00/01", read6(64<<10, true), nil, 64<<10) // the filemark
			if made, used := h.aheadCounts(); used != len(blocks)-1 || made != len(blocks)-1 {
				t.Fatalf("read-aheads made %d, used %d; want %d and %d", made, used, len(blocks)-1, len(blocks)-1)
			}
		})
	}
}

// TestReadAheadDropped: whatever happens between two READs — a key
// change on another nexus, a move, a command of another nexus — the
// second READ answers as if nothing had been read ahead.
func TestReadAheadDropped(t *testing.T) {
	h := newTestLib(t, nil)
	h.load(1, 0)
	blocks := h.writeBlocks(t, 6)
	a, b := h.dial("drive0"), h.dial("drive0")
	drainUA(t, a)
	drainUA(t, b)
	setKey(t, a, testKey(1))
	drainUA(t, b)
	must(t, a, read6(64<<10, true), nil, 64<<10) // block 0; block 1 read ahead
	h.waitMade(t, 1)

	// Another nexus sets another key: block 1 no longer decrypts.
	setKey(t, b, testKey(2))
	drainUA(t, a)
	r := run(t, a, read6(64<<10, true), nil, 64<<10)
	if r.skey() == "" || r.sense[2]&0x0F != 7 || bytes.Equal(r.data, blocks[1]) {
		t.Fatalf("READ after the key changed: %v (want DATA PROTECT, no data)", r)
	}

	// Back to key 1; a move between two READs: the block moved to.
	setKey(t, b, testKey(1))
	drainUA(t, a)
	must(t, a, rewind(), nil, 0)
	must(t, a, read6(64<<10, true), nil, 64<<10) // block 0; block 1 read ahead
	must(t, a, space6(0, 2), nil, 0)             // to block 3
	if r := must(t, a, read6(64<<10, true), nil, 64<<10); !bytes.Equal(r.data, blocks[3]) {
		t.Fatal("READ after SPACE: not block 3")
	}
	// A command of another nexus in between: still the right block.
	h.waitMade(t, 3)
	must(t, b, tur(), nil, 0)
	if r := must(t, a, read6(64<<10, true), nil, 64<<10); !bytes.Equal(r.data, blocks[4]) {
		t.Fatal("READ after another nexus's command: not block 4")
	}
	if r := must(t, a, read6(64<<10, true), nil, 64<<10); !bytes.Equal(r.data, blocks[5]) {
		t.Fatal("READ of block 5 differs")
	}
	// Read ahead: after blocks 0, 0, 3, 4 (block 5 followed block 4's,
	// served); used: only block 5's.
	if made, used := h.aheadCounts(); used != 1 || made != 4 {
		t.Fatalf("read-aheads made %d, used %d; want 4 and 1", made, used)
	}
}
