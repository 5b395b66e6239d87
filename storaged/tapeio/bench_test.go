package tapeio

import (
	"crypto/rand"
	"sync"
	"testing"

	"github.com/tapeward/tapeward/storaged/scsi"
)

var (
	bigOnce sync.Once
	big     *lib
	bigErr  error
)

// bigLib is a vtl with 256 MiB cartridges for the benchmarks (sessions
// of benchSession blocks are rewritten in place, so the files stay small).
func bigLib(b *testing.B) *lib {
	bigOnce.Do(func() { big, bigErr = startLib("big", "256MiB", 6, "") })
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	return big
}

const benchSession = 128 // blocks per session before rewriting from block 2

func benchDrive(b *testing.B, slot int, encrypt bool) (*scsi.Device, []byte) {
	l := bigLib(b)
	d := l.mount(b, slot, 0)
	labelled(b, d, DefaultBlockSize)
	var ukad []byte
	if encrypt {
		key := make([]byte, 32)
		rand.Read(key)
		ukad = testUKAD()
		if _, err := d.SetKey(key, scsi.SetKeyOpts{UKAD: ukad}); err != nil {
			b.Fatal(err)
		}
	}
	return d, ukad
}

// BenchmarkRawWrite is the baseline: Device.Write of 1 MiB blocks, a
// filemark and a LOCATE back to block 2 every benchSession blocks.
func BenchmarkRawWrite(b *testing.B) {
	for _, enc := range []bool{false, true} {
		name := map[bool]string{false: "clear", true: "encrypted"}[enc]
		b.Run(name, func(b *testing.B) {
			d, _ := benchDrive(b, map[bool]int{false: 1, true: 2}[enc], enc)
			block := randomData(DefaultBlockSize)
			b.SetBytes(DefaultBlockSize)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := d.Write(block); err != nil {
					b.Fatal(err)
				}
				if (i+1)%benchSession == 0 || i == b.N-1 {
					if _, err := d.WriteFilemarks(1, false); err != nil {
						b.Fatal(err)
					}
					if err := d.Locate(scsi.LocateBlock, 2); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkWriter: the same blocks through Writer (sessions of
// benchSession blocks, the first-block encryption check when encrypted),
// written as whole 1 MiB slices or in 32 KiB pieces (as io.Copy / tar do).
func BenchmarkWriter(b *testing.B) {
	for _, enc := range []bool{false, true} {
		for _, chunk := range []int{DefaultBlockSize, 32 << 10} {
			name := map[bool]string{false: "clear", true: "encrypted"}[enc]
			if chunk == DefaultBlockSize {
				name += "/1MiB-writes"
			} else {
				name += "/32KiB-writes"
			}
			b.Run(name, func(b *testing.B) {
				d, ukad := benchDrive(b, map[bool]int{false: 3, true: 4}[enc], enc)
				opts := WriterOptions{}
				if enc {
					opts.AfterFirstBlock = VerifyFirstBlock(ukad)
				}
				block := randomData(DefaultBlockSize)
				b.SetBytes(DefaultBlockSize)
				b.ReportAllocs()
				b.ResetTimer()
				w, err := NewWriter(d, opts)
				if err != nil {
					b.Fatal(err)
				}
				for i := range b.N {
					for off := 0; off < len(block); off += chunk {
						if _, err := w.Write(block[off : off+chunk]); err != nil {
							b.Fatal(err)
						}
					}
					if (i+1)%benchSession == 0 || i == b.N-1 {
						if err := w.Close(); err != nil {
							b.Fatal(err)
						}
						if err := d.Locate(scsi.LocateBlock, 2); err != nil {
							b.Fatal(err)
						}
						if w, err = NewWriter(d, opts); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}
