package emu

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi/vtlwire"
)

// TestWriteReadRoundTrip, with the data phases through the shared data
// buffer (vtlwire.Dial's default) and through the socket.
func TestWriteReadRoundTrip(t *testing.T) {
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprintf("shared=%t", shared), func(t *testing.T) { testWriteReadRoundTrip(t, shared) })
	}
}

func testWriteReadRoundTrip(t *testing.T, shared bool) {
	h := newTestLib(t, nil)
	h.load(1, 0)
	c := h.dialHello(vtlwire.Hello{Unit: "drive0", SharedBuffer: shared})
	if ua := settle(t, c); len(ua) != 1 || ua[0] != "6/29/00" {
		t.Fatalf("first command on a new nexus: UAs %v, want [6/29/00]", ua)
	}
	blocks := [][]byte{pattern(1000, 1), pattern(65536, 2), pattern(4096, 3)}
	for _, b := range blocks {
		must(t, c, write6(len(b)), b, 0)
	}
	must(t, c, wfm(1), nil, 0)
	must(t, c, write6(10), pattern(10, 9), 0)
	must(t, c, rewind(), nil, 0)
	for i, b := range blocks {
		r := must(t, c, read6(len(b), true), nil, len(b))
		if !bytes.Equal(r.data, b) {
			t.Fatalf("block %d differs", i)
		}
	}
	r := expect(t, c, "0/00/01", read6(65536, true), nil, 65536)
	eqBytes(t, "filemark sense", r.sense[:18], unhex(t, "F0 00 80 00 01 00 00 1C 00 00 00 00 00 01 00 00 00 00"))
	r = must(t, c, read6(10, false), nil, 10)
	eqBytes(t, "after filemark", r.data, pattern(10, 9))
	expect(t, c, "8/00/05", read6(65536, true), nil, 65536)
}

// One vtl per directory: a second library on the same --dir is refused
// until the first is closed.
func TestDirectoryLock(t *testing.T) {
	h := newTestLib(t, nil)
	if _, err := NewLibrary(h.cfg); err == nil {
		t.Fatal("second library on the same directory accepted")
	}
	h.shutdown()
	lib, err := NewLibrary(h.cfg)
	if err != nil {
		t.Fatalf("after close: %v", err)
	}
	lib.Close()
}
