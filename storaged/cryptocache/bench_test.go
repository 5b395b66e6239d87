package cryptocache

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tapeward/tapeward/tools/lib/keys"
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

// BenchmarkPushRekey10000 measures the push a rekey makes into a cache of
// 10 000 volumes: every volume's current key rewrapped under a new KEK
// plus one history key each, in one atomic update (one op = the whole
// push of 20 000 keys; the cache is fresh for every op).
func BenchmarkPushRekey10000(b *testing.B) {
	fx := newFixture(b)
	clk := newClock()
	sk, hist := fx.v1(b), fx.v1(b)
	kek2, err := keys.GenerateKEK()
	if err != nil {
		b.Fatal(err)
	}
	sk2, hist2 := fx.rewrapUnder(b, sk, kek2), fx.rewrapUnder(b, hist, kek2)
	es := make([]Entry, 10000)
	push := make([]PushKey, 0, 2*len(es))
	for i := range es {
		v := fmt.Sprintf("VOL%05d", i)
		es[i] = Entry{Volume: v, Key: sk}
		push = append(push, PushKey{Volume: v, Key: sk2, Current: true}, PushKey{Volume: v, Key: hist2})
	}
	for b.Loop() {
		b.StopTimer()
		c := open(b, filepath.Join(b.TempDir(), FileName), clk)
		if _, err := c.PutMany(es, true); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := c.Push(push); err != nil {
			b.Fatal(err)
		}
	}
}
