package archive

import (
	"math/rand/v2"
	"testing"
)

// byteSum is the definition HeaderSum computes faster: every byte of the
// block added, the checksum field's eight as spaces.
func byteSum(blk *[BlockSize]byte) int64 {
	var sum int64
	for i, c := range blk {
		if i >= offChksum && i < offChksum+8 {
			c = ' '
		}
		sum += int64(c)
	}
	return sum
}

// TestHeaderSum: HeaderSum is the byte-by-byte sum on blocks of zeros, of
// 0xff (every lane at its largest), of random bytes, and with a byte set
// at each position in turn (a lane or field boundary summed wrong shows).
func TestHeaderSum(t *testing.T) {
	var blks []*[BlockSize]byte
	zero, full := new([BlockSize]byte), new([BlockSize]byte)
	for i := range full {
		full[i] = 0xff
	}
	blks = append(blks, zero, full)
	r := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		b := new([BlockSize]byte)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		blks = append(blks, b)
	}
	for i := range BlockSize {
		b := new([BlockSize]byte)
		b[i] = 0xff - byte(i)
		blks = append(blks, b)
	}
	for k, b := range blks {
		if got, want := HeaderSum(b), byteSum(b); got != want {
			t.Fatalf("block %d: HeaderSum %d, the byte sum %d", k, got, want)
		}
	}
}

func BenchmarkHeaderSum(b *testing.B) {
	blk := new([BlockSize]byte)
	for i := range blk {
		blk[i] = byte(i * 7)
	}
	b.Run("lanes", func(b *testing.B) {
		b.SetBytes(BlockSize)
		for b.Loop() {
			HeaderSum(blk)
		}
	})
	b.Run("bytes", func(b *testing.B) {
		b.SetBytes(BlockSize)
		for b.Loop() {
			byteSum(blk)
		}
	})
}
