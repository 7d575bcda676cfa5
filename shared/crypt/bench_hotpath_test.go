package crypt

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/google/uuid"
)

// Seal runs once per ingested segment and Open once per segment read: with
// validation they are the per-segment CPU of Pack and Serve. Compare runs
// with benchstat.

var hotSizes = []struct {
	name string
	size int
}{{"20KB", 20 << 10}, {"1MB", 1 << 20}}

func hotKEK(b *testing.B) *KEK {
	b.Helper()
	key := make([]byte, keySize)
	_, _ = rand.Read(key)
	aead, err := newGCM(key)
	if err != nil {
		b.Fatal(err)
	}
	return &KEK{ID: uuid.New(), aead: aead}
}

var hotAAD = []byte("42|0b5e1d7a-27f5-4c43-9c38-f1ee5d8f5a61|17|recording")

func BenchmarkSeal(b *testing.B) {
	kek := hotKEK(b)
	for _, sz := range hotSizes {
		data := make([]byte, sz.size)
		_, _ = rand.Read(data)
		b.Run(sz.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(sz.size))
			for b.Loop() {
				if _, err := Seal(kek, hotAAD, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	kek := hotKEK(b)
	for _, sz := range hotSizes {
		data := make([]byte, sz.size)
		_, _ = rand.Read(data)
		s, err := Seal(kek, hotAAD, data)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(sz.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(sz.size))
			for b.Loop() {
				if _, err := Open(kek, hotAAD, s.Ciphertext, s.WrappedDEK); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSealParallel seals from every core at once, as a packer instance
// does under load, sharing one KEK.
func BenchmarkSealParallel(b *testing.B) {
	kek := hotKEK(b)
	data := make([]byte, 20<<10)
	_, _ = rand.Read(data)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := Seal(kek, hotAAD, data); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func ExampleSeal_sizes() {
	fmt.Println(Overhead)
	// Output: 28
}
