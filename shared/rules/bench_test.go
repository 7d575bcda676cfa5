package rules_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/rules"
	"github.com/replayvault/replayvault/shared/rules/rulestest"
	"github.com/replayvault/replayvault/shared/rules/sdk"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// BenchmarkCall is one rule's run on about 30 KB of rrweb events as Pack
// makes it (Set.Apply on a pooled instance), for each module: echo gets the
// events (the ABI's cost in ModeEvents), sampling the header only, the
// scrub a table of candidate strings (ModeStrings: the walk and the splice
// are Pack's, in this process), detect the events. Compare with the
// scrub's native BenchmarkScrub in shared/rules/modules/piiscrub.
func BenchmarkCall(b *testing.B) {
	d := testenv.NewDeps(b)
	events := workload.Segment(rand.New(rand.NewPCG(1, 2)), 1, 1_700_000_000_000, 30<<10)
	mods := []struct{ name, pkg string }{
		{"echo", "shared/rules/testdata/echo"},
		{"sampling", "shared/rules/modules/sampling/wasm"},
		{"piiscrub", "shared/rules/modules/piiscrub/wasm"},
		{"detect", "shared/rules/modules/detect/wasm"},
	}
	for i, m := range mods {
		hash := rulestest.Push(b, d.DB, d.Blobs, m.name, rulestest.Build(b, m.pkg))
		rulestest.Assign(b, d.DB, store.RuleAssignment{ProjectID: int64(i + 1), Name: m.name, ModuleHash: hash, Config: []byte(`{"rate":1}`)})
	}
	lim := rules.DefaultLimits()
	lim.Timeout = time.Minute // this measures cost; the machine may be busy
	e := rules.NewEngine(lim)
	b.Cleanup(e.Close)
	rs := rules.NewSet(e, d.DB, d.Blobs, 16<<20)
	ctx := context.Background()
	if err := rs.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	for i, m := range mods {
		id := segID(int64(i+1), uuid.New(), 1)
		b.Run(m.name, func(b *testing.B) {
			if _, err := rs.Apply(ctx, id, 30, nil, events); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(events)))
			cpu := rulestest.StartCPU()
			for b.Loop() {
				v, err := rs.Apply(ctx, id, 30, nil, events)
				if err != nil || v.Decision != sdk.DecisionKeep {
					b.Fatalf("apply: %v %+v", err, v)
				}
			}
			cpu.Report(b)
		})
	}
}
