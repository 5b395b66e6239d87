package cryptocache

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkPut10000 measures one Put (lock, re-read, atomic rewrite with
// two fsyncs) on a cache that holds 10 000 entries.
func BenchmarkPut10000(b *testing.B) {
	fx := newFixture(b)
	clk := newClock()
	path := filepath.Join(b.TempDir(), FileName)
	c := open(b, path, clk)
	sk := fx.v1(b)
	es := make([]Entry, 10000)
	for i := range es {
		es[i] = Entry{Volume: fmt.Sprintf("VOL%05d", i), Key: sk}
	}
	if _, err := c.PutMany(es, true); err != nil {
		b.Fatal(err)
	}
	keys := []Entry{{Volume: "VOL00042", Key: fx.v1(b)}, {Volume: "VOL00042", Key: sk}}
	i := 0
	for b.Loop() {
		if _, err := c.Put(keys[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
