package piiscrub

import (
	"math/rand/v2"
	"testing"

	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/workload"
)

func BenchmarkZZParts(b *testing.B) {
	raw := workload.Segment(rand.New(rand.NewPCG(3, 4)), 1, 1_700_000_000_000, 30<<10)
	gz := workload.Gzip(raw)
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			segment.Decode(segment.Gzip, gz, 64<<20)
		}
	})
	b.Run("validategz", func(b *testing.B) {
		for b.Loop() {
			segment.Validate(gz, segment.Limits{})
		}
	})
	b.Run("validateplain", func(b *testing.B) {
		for b.Loop() {
			segment.Validate(raw, segment.Limits{})
		}
	})
	b.Run("compress", func(b *testing.B) {
		for b.Loop() {
			segment.Compress(raw)
		}
	})
	b.Run("compressfast", func(b *testing.B) {
		for b.Loop() {
			segment.CompressLevel(raw, segment.LevelFastest)
		}
	})
	b.Run("scrub", func(b *testing.B) {
		s, _ := newScrubber(nil)
		for b.Loop() {
			s.scrub(raw)
		}
	})
	b.Run("gzip", func(b *testing.B) {
		for b.Loop() {
			workload.Gzip(raw)
		}
	})
}
