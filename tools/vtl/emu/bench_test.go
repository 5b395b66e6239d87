package emu

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tapeward/tapeward/storaged/scsi"
)

// benchLib serves a library with one large cartridge in drive0.
func benchLib(b *testing.B) *testLib {
	h := newTestLib(b, func(c *Config) {
		c.Capacity, c.Slots, c.Drives = 64<<30, 1, 1
		// Default: the disk (TMPDIR). VTL_BENCH_DIR=/dev/shm measures the
		// emulator without it.
		c.Dir = b.TempDir()
		if d := os.Getenv("VTL_BENCH_DIR"); d != "" {
			dir, err := os.MkdirTemp(d, "vtlbench")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { os.RemoveAll(dir) })
			c.Dir = dir
		}
	})
	h.load(1, 0)
	return h
}

func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{256 << 10, 1 << 20} {
		for _, enc := range []bool{false, true} {
			b.Run(fmt.Sprintf("%dKiB/enc=%v", size>>10, enc), func(b *testing.B) {
				h := benchLib(b)
				c := h.dial("drive0")
				settle(b, c)
				if enc {
					setKey(b, c, testKey(1))
				}
				blk := pattern(size, 7)
				cdb := write6(size)
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if i > 0 && i%(256<<20/size) == 0 {
						// Keep the cartridge file at 256 MiB: rewind and
						// erase (outside the timer) so the page cache is
						// reused instead of growing the file for ever.
						b.StopTimer()
						must(b, c, rewind(), nil, 0)
						must(b, c, []byte{0x19, 0, 0, 0, 0, 0}, nil, 0)
						b.StartTimer()
					}
					r := run(b, c, cdb, blk, 0)
					if r.status != 0 {
						b.Fatalf("write: %s", r.skey())
					}
				}
				b.StopTimer()
				must(b, c, wfm(0), nil, 0)
			})
		}
	}
}

func BenchmarkRead(b *testing.B) {
	for _, size := range []int{256 << 10, 1 << 20} {
		for _, enc := range []bool{false, true} {
			b.Run(fmt.Sprintf("%dKiB/enc=%v", size>>10, enc), func(b *testing.B) {
				h := benchLib(b)
				c := h.dial("drive0")
				settle(b, c)
				if enc {
					setKey(b, c, testKey(1))
				}
				const n = 256
				blk := pattern(size, 7)
				for range n {
					must(b, c, write6(size), blk, 0)
				}
				must(b, c, wfm(0), nil, 0)
				must(b, c, rewind(), nil, 0)
				cmd := &scsi.Command{CDB: read6(size, true), Dir: scsi.DirFromDevice, Data: make([]byte, size), Timeout: time.Minute}
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if i > 0 && i%n == 0 {
						b.StopTimer()
						must(b, c, rewind(), nil, 0)
						b.StartTimer()
					}
					r, err := c.Do(cmd)
					if err != nil || r.Status != 0 || r.Resid != 0 {
						b.Fatalf("read: %v %+v", err, r)
					}
				}
			})
		}
	}
}
