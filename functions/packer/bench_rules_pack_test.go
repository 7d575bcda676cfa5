package packer

import (
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/workload"
)

// BenchmarkRulesPackCPU is the edge rules' cost against Pack's whole CPU
// per segment, where BenchmarkScrubCost measures it against the CPU slot's
// work only: the process's CPU time per segment with no rule ("none"),
// with the PII scrub module ("scrub", which masks every input value, so
// it rewrites every segment that holds one: 15 in 16 here), with the
// scrub finding nothing ("nothing-found"), with all three modules ("all":
// sampling at 100%, scrub, detection) and with the scrub storing what it
// rewrote as s2 ("scrub-s2", REWRITTEN_ENCODING=s2; the others store it as
// it is, production's default), each as a ratio to "none" measured in the
// same run. The target is scrub-x at most 1.5.
//
// Each op pushes, for every case once, the same 1,000 (30 KB) or 256
// (300 KB) real-shaped segments (workload.Recording: replays of 16
// segments of about 30 KB or 300 KB of JSON, the first also holding a
// full snapshot of that size, gzipped as browsers send them; fresh replay
// ids every round, so nothing is a duplicate) concurrently through
// ServeHTTP in Ingest's direct form, into a packer with BenchmarkPackCPU's
// production settings (slices derived, issues detected) and the projects
// of rulesBenchPacker. Pack answers 200 once a segment's batch is
// committed, so a round is done when every request is answered (the
// benchmark fails on any other answer, and if a segment was not stored):
// its CPU counts taking the request, validating, the rules, compressing
// what they rewrite, sealing the segment and its slices, batching,
// assembling the batch's object and writing its rows, and the garbage
// collection of all that (a collection before each round, not counted,
// clears the previous round's garbage; one at its end is counted). The
// cases run in an order that rotates every op, so that what else the
// machine runs moves the ratios little. Not counted: PostgreSQL (its own
// process), the upload (dropped: an in-process GCS stand-in's CPU would
// count), HTTP transport (the requests are handed to ServeHTTP in process)
// and Ingest.
//
// Reported per size: cpu-us-<case> (process CPU µs per segment),
// scrub-x, nothing-found-x, all-x and scrub-s2-x (each case's CPU ÷ none's, from the
// totals of the run), and MB/cpu-s-<case> (decompressed JSON per CPU
// second of the process: the throughput of one core). The log gives the
// range of the per-op ratios and the share of segments each case rewrote.
// Four ops take about two minutes on two cores.
//
//	scripts/test -run '^$' -bench BenchmarkRulesPackCPU -benchtime 4x ./functions/packer
func BenchmarkRulesPackCPU(b *testing.B) {
	// The flushes' log lines would land inside the benchmark's result
	// lines (they print once a sub-benchmark ends).
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.DiscardHandler))
	b.Cleanup(func() { slog.SetDefault(prev) })
	cfg := packCPUConfig()
	// Production's limits and transcoding level (config.Pack's defaults).
	cfg.Limits.MaxDecompressed, cfg.Level = 64<<20, segment.LevelBetter
	cfg.RewrittenPlain = true
	p := rulesPacker(b, cfg)
	cases := []struct {
		name    string
		project int64
		s2      bool // rewritten events stored as s2 (REWRITTEN_ENCODING=s2)
	}{{"none", none, false}, {"scrub", scrubOnly, false}, {"nothing-found", scrubClean, false}, {"all", all, false}, {"scrub-s2", scrubOnly, true}}
	rng := mrand.New(mrand.NewPCG(7, 8))
	for _, size := range []struct{ bytes, n int }{{30 << 10, 1000}, {300 << 10, 256}} {
		const perReplay = 16
		// payloads[i] is segment i%perReplay of its replay.
		n := size.n
		payloads := make([][]byte, 0, n)
		var rawBytes int
		for len(payloads) < n {
			for _, raw := range workload.Recording(rng, perReplay, size.bytes, size.bytes, 1_700_000_000_000)[:min(perReplay, n-len(payloads))] {
				payloads = append(payloads, workload.Gzip(raw))
				rawBytes += len(raw)
			}
		}
		round := func(project int64, s2 bool) (cpu time.Duration, rewritten int64) {
			p.cfg.RewrittenPlain = !s2 // between rounds: no request is in flight
			bodies := make([][]byte, n)
			var replay uuid.UUID
			for i := range bodies {
				if i%perReplay == 0 {
					replay = uuid.New()
				}
				bodies[i] = directBody(b, message(project, replay, i%perReplay, payloads[i]))
			}
			st := &p.stats
			notStored := func() int64 {
				return st.Duplicate.Load() + st.Shredded.Load() + st.Rejected.Load() + st.Filtered.Load() + st.FlushFailures.Load()
			}
			before, rewrote := notStored(), st.Rewritten.Load()
			runtime.GC()
			cpu = serveAll(b, p, directRequest, bodies)
			gc := cpuTime()
			runtime.GC()
			cpu += cpuTime() - gc
			if got := notStored() - before; got != 0 {
				b.Fatalf("project %d: %d segments (or flushes) not stored", project, got)
			}
			return cpu, st.Rewritten.Load() - rewrote
		}
		b.Run(fmt.Sprintf("real-%dKB", size.bytes>>10), func(b *testing.B) {
			for _, c := range cases {
				round(c.project, c.s2) // warm: modules instantiated, statements prepared
			}
			total := make([]time.Duration, len(cases))
			rewritten := make([]int64, len(cases))
			ratios := make([][]float64, len(cases))
			for op := 0; b.Loop(); op++ {
				cpu := make([]time.Duration, len(cases))
				for k := range cases {
					i := (op + k) % len(cases)
					var rw int64
					cpu[i], rw = round(cases[i].project, cases[i].s2)
					total[i] += cpu[i]
					rewritten[i] += rw
				}
				for i := range cases {
					ratios[i] = append(ratios[i], float64(cpu[i])/float64(cpu[0]))
				}
			}
			segs := float64(n * b.N)
			for i, c := range cases {
				b.ReportMetric(float64(total[i].Microseconds())/segs, "cpu-us-"+c.name)
				if i > 0 {
					b.ReportMetric(float64(total[i])/float64(total[0]), c.name+"-x")
					b.Logf("%s: per-op ratio %.2f..%.2f; rewrote %.0f%% of segments",
						c.name, slices.Min(ratios[i]), slices.Max(ratios[i]), 100*float64(rewritten[i])/segs)
				}
				b.ReportMetric(float64(rawBytes*b.N)/1e6/total[i].Seconds(), "MB/cpu-s-"+c.name)
			}
		})
	}
}
