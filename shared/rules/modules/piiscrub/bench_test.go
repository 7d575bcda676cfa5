package piiscrub

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/replayvault/replayvault/shared/rules/sdk"
	"github.com/replayvault/replayvault/shared/workload"
)

// BenchmarkScrub is the rule's logic compiled natively, for comparison with
// the same logic in the sandbox (shared/rules BenchmarkCall).
func BenchmarkScrub(b *testing.B) {
	for _, size := range []int{30 << 10, 300 << 10} {
		events := workload.Segment(rand.New(rand.NewPCG(1, 2)), 1, 1_700_000_000_000, size)
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(events)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Func(&sdk.Input{Events: events}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
