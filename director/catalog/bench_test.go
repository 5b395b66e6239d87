package catalog

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkCreateLabeling is the catalog's share of labeling one slot:
// make and wrap a key, insert the row + "generated" event (one committed
// transaction). The goal for the whole label flow is 100 slots in ≤ 10 s.
func BenchmarkCreateLabeling(b *testing.B) {
	f := newFixture(b)
	k := newKEKs(b, 1)[0]
	r := ring(b, k, k)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sk, err := r.WrapNew()
		if err != nil {
			b.Fatal(err)
		}
		_, err = f.s.CreateLabeling(f.ctx, MediaNew{Volume: fmt.Sprintf("B%06d", i), Barcode: fmt.Sprintf("B%05dL6", i),
			Pool: "Offsite", Storage: "sd1", Slot: i, Encrypted: true, Key: &sk})
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkLabelSlot is CreateLabeling + MarkLabeled: every catalog write
// of one slot's label flow.
func BenchmarkLabelSlot(b *testing.B) {
	f := newFixture(b)
	k := newKEKs(b, 1)[0]
	r := ring(b, k, k)
	now := time.Now()
	i := 0
	for b.Loop() {
		sk, err := r.WrapNew()
		if err != nil {
			b.Fatal(err)
		}
		v := fmt.Sprintf("B%06d", i)
		if _, err = f.s.CreateLabeling(f.ctx, MediaNew{Volume: v, Pool: "Offsite", Storage: "sd1", Slot: i, Encrypted: true, Key: &sk}); err != nil {
			b.Fatal(err)
		}
		if err := f.s.MarkLabeled(f.ctx, v, now, &now); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkVolumeKey is one key fetch by the owning storage (the mount
// path) over a catalog of 200 volumes.
func BenchmarkVolumeKey(b *testing.B) {
	f := newFixture(b)
	k := newKEKs(b, 1)[0]
	r := ring(b, k, k)
	const n = 200
	for i := range n {
		f.label(b, fmt.Sprintf("V%04d", i), "", "sd1", i, r)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sk, err := f.s.VolumeKey(f.ctx, fmt.Sprintf("V%04d", i%n), "sd1")
		if err != nil || sk.Value == "" {
			b.Fatal(err)
		}
		i++
	}
}
