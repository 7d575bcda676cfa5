package rules_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/replayvault/replayvault/shared/rules"
	"github.com/replayvault/replayvault/shared/rules/rulestest"
	"github.com/replayvault/replayvault/shared/rules/sdk"
	"github.com/replayvault/replayvault/shared/workload"
)

// BenchmarkCall is one rule call on a pooled instance: the ABI's cost
// (echo, which only reads its input) and the scrub module's, on about
// 30 KB of rrweb events.
func BenchmarkCall(b *testing.B) {
	lim := rules.DefaultLimits()
	lim.Timeout = time.Minute // this measures cost; the machine may be busy
	e := rules.NewEngine(lim)
	b.Cleanup(e.Close)
	events := workload.Segment(rand.New(rand.NewPCG(1, 2)), 1, 1_700_000_000_000, 30<<10)
	for _, name := range []string{"shared/rules/testdata/echo", "shared/rules/modules/piiscrub/wasm", "shared/rules/modules/detect/wasm", "shared/rules/modules/sampling/wasm"} {
		m, err := e.Module(context.Background(), rulestest.Build(b, name))
		if err != nil {
			b.Fatal(err)
		}
		in, err := sdk.EncodeInput(nil, &sdk.Header{ABI: 1, ProjectID: 1, ReplayID: "0b6a4a4e-6f3c-4a39-9d4e-3f0a4a9c8e11"}, events)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			// The first call instantiates (starts the Go runtime).
			if _, err := m.Call(context.Background(), "t", in); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(events)))
			cpu := rulestest.StartCPU()
			for b.Loop() {
				if _, err := m.Call(context.Background(), "t", in); err != nil {
					b.Fatal(err)
				}
			}
			cpu.Report(b)
		})
	}
}
