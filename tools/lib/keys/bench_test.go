package keys

import (
	"bytes"
	"testing"
)

func BenchmarkNewVolumeKey(b *testing.B) {
	for b.Loop() {
		k, err := NewVolumeKey()
		if err != nil {
			b.Fatal(err)
		}
		clear(k)
	}
}

func BenchmarkWrapV1(b *testing.B) {
	r, _ := NewKeyring(newTestKEK(b, 1))
	key := bytes.Repeat([]byte{7}, 32)
	for b.Loop() {
		if _, err := r.Wrap(key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWrapNewV1(b *testing.B) {
	r, _ := NewKeyring(newTestKEK(b, 1))
	for b.Loop() {
		if _, err := r.WrapNew(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnwrapV1(b *testing.B) {
	r, _ := NewKeyring(newTestKEK(b, 1))
	sk, _ := r.WrapNew()
	for b.Loop() {
		k, err := r.Unwrap(sk)
		if err != nil {
			b.Fatal(err)
		}
		clear(k)
	}
}

func BenchmarkWrapBareos(b *testing.B) {
	kek, _ := ParseBareosKEK(bareosExampleKEK)
	p := []byte(bareosExamplePass)
	for b.Loop() {
		if _, err := WrapBareos(kek, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnwrapBareos(b *testing.B) {
	kek, _ := ParseBareosKEK(bareosExampleKEK)
	for b.Loop() {
		p, err := UnwrapBareos(kek, bareosExampleStored)
		if err != nil {
			b.Fatal(err)
		}
		clear(p)
	}
}

func BenchmarkGenerateBareosPassphrase(b *testing.B) {
	for b.Loop() {
		p, err := GenerateBareosPassphrase()
		if err != nil {
			b.Fatal(err)
		}
		clear(p)
	}
}
