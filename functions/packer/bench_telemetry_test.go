package packer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/logging"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/telemetry"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// BenchmarkTelemetryOverhead measures what instrumentation costs Pack's
// CPU per segment. Each op is one round of 1,000 pushes (through
// ServeHTTP, as Pub/Sub sends them, each with a publisher's traceparent)
// into each of three packers on the same stand-ins:
//
//   - off: telemetry off (the Nop provider, as without a collector);
//   - sampled: production settings (telemetry.NewSDK: default sample
//     ratio, batch span processor, exemplars off, every metric, spans per
//     request, flush, GCS request, SQL statement and batch), with the
//     publishers sampling at the same ratio, as a traced Ingest does;
//   - all: the same with every trace sampled (OTEL_TRACES_SAMPLER_ARG=1
//     and sampled publishers): the worst case.
//
// Spans go to an exporter that drops them, metrics to a reader nobody
// reads: what is measured is the instrumented code, not the export. Log
// lines go through the production handler (JSON, with the trace fields)
// to io.Discard, for every packer. The order of the three rotates each op
// and a GC runs before each round, so that drift and one round's garbage
// are not charged to another.
//
// It reports process CPU per segment of off, and for sampled and all the
// overhead over off as the median of the per-op ratios, with a 95%
// confidence interval of that median (order statistics: distribution-free),
// and the fastest round of each against the fastest of off. The process also runs the GCS and KMS stand-ins, so the
// percentages are of Pack plus those. Target: under 3% for sampled.
//
//	scripts/test -run '^$' -bench BenchmarkTelemetryOverhead -benchtime=40x ./functions/packer/
func BenchmarkTelemetryOverhead(b *testing.B) {
	d := testenv.NewDeps(b)
	ctx := context.Background()
	cfg := Config{
		FlushBytes: 8 << 20, FlushSegments: 500, FlushAge: 2 * time.Second, MaxConcurrency: 1000,
		MaxBufferBytes: 256 << 20, FlushTimeout: time.Minute,
	}
	prev := slog.Default()
	slog.SetDefault(logging.NewForProject(io.Discard, "info", "proj"))
	b.Cleanup(func() { slog.SetDefault(prev) })

	off := New(cfg, d.DB, d.Blobs, d.Keyring(), hotReject{b})
	b.Cleanup(off.Close)
	instrumented := func(ratio float64) *Packer {
		tel, err := telemetry.NewSDK(telemetry.Config{ServiceName: "replayvault-pack", SampleRatio: ratio}, discardSpans{}, sdkmetric.NewManualReader())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tel.Shutdown(ctx) })
		m, err := telemetry.NewPack(tel)
		if err != nil {
			b.Fatal(err)
		}
		db, err := store.OpenURL(ctx, d.DSN, store.WithTracer(telemetry.NewDBTracer(tel)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(db.Close)
		p := New(cfg, db, blob.NewTraced(d.Blobs, tel.Tracer), d.Keyring(), hotReject{b}, WithTelemetry(tel, m))
		b.Cleanup(p.Close)
		return p
	}
	variants := []struct {
		name  string
		p     *Packer
		ratio float64 // of the publishers' sampled traceparents
	}{
		{"off", off, telemetry.DefaultSampleRatio},
		{"sampled", instrumented(telemetry.DefaultSampleRatio), telemetry.DefaultSampleRatio},
		{"all", instrumented(1), 1},
	}

	const n = 1000
	rng := rand.New(rand.NewPCG(7, 7))
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = workload.Gzip(workload.Segment(rng, i%50, 1_700_000_000_000, 2000+rng.IntN(20000)))
	}
	events := func(ratio float64) [][]byte {
		sampler := sdktrace.TraceIDRatioBased(ratio)
		out := make([][]byte, n)
		replays := make([]uuid.UUID, n/50)
		for i := range replays {
			replays[i] = uuid.New()
		}
		for i := range out {
			m := message(1, replays[i/50], i%50, payloads[i])
			var tid trace.TraceID
			var sid trace.SpanID
			for j := range tid {
				tid[j] = byte(rng.Uint32())
			}
			for j := range sid {
				sid[j] = byte(rng.Uint32())
			}
			flags := "00"
			if sampler.ShouldSample(sdktrace.SamplingParameters{TraceID: tid}).Decision == sdktrace.RecordAndSample {
				flags = "01"
			}
			// A publisher's trace context, as a traced client sends it.
			m.Attributes["traceparent"] = fmt.Sprintf("00-%s-%s-%s", tid, sid, flags)
			body, err := json.Marshal(pushBody(m))
			if err != nil {
				b.Fatal(err)
			}
			out[i] = body
		}
		return out
	}
	round := func(p *Packer, es [][]byte) time.Duration {
		runtime.GC()
		before := cpuTime()
		var wg sync.WaitGroup
		for _, body := range es {
			wg.Go(func() {
				if code := serve(p, rawPush(body).WithContext(ctx)); code != http.StatusOK {
					b.Errorf("status %d", code)
				}
			})
		}
		wg.Wait()
		return cpuTime() - before
	}
	for _, v := range variants { // warm every packer: first KEK, connections
		round(v.p, events(v.ratio))
	}

	cpu := make([][]float64, len(variants)) // per variant, per op: CPU ns per segment
	for op := 0; b.Loop(); op++ {
		b.StopTimer()
		es := make([][][]byte, len(variants))
		for i, v := range variants {
			es[i] = events(v.ratio)
		}
		b.StartTimer()
		for k := range variants {
			i := (op + k) % len(variants)
			cpu[i] = append(cpu[i], float64(round(variants[i].p, es[i]).Nanoseconds())/n)
		}
	}
	b.ReportMetric(median(cpu[0]), "cpu-ns/seg-off")
	for i := 1; i < len(variants); i++ {
		ratios := make([]float64, len(cpu[0]))
		for op := range ratios {
			ratios[op] = 100 * (cpu[i][op]/cpu[0][op] - 1)
		}
		med, lo, hi := workload.MedianCI(ratios)
		name := variants[i].name
		b.ReportMetric(med, "overhead-%-"+name)
		b.ReportMetric(lo, "ci95-lo-%-"+name)
		b.ReportMetric(hi, "ci95-hi-%-"+name)
		// The fastest round of each: what is left when the machine's
		// noise is least.
		fastest := 100 * (slices.Min(cpu[i])/slices.Min(cpu[0]) - 1)
		b.ReportMetric(fastest, "min-vs-min-%-"+name)
		b.Logf("%s: %d ops, overhead median %.2f%% (95%% CI %.2f..%.2f; per-op range %.2f..%.2f), fastest vs fastest %.2f%%; CPU/segment median %.0f ns vs off %.0f ns",
			name, len(ratios), med, lo, hi, slices.Min(ratios), slices.Max(ratios), fastest, median(cpu[i]), median(cpu[0]))
	}
}

// median returns the median of xs.
func median(xs []float64) float64 {
	m, _, _ := workload.MedianCI(xs)
	return m
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// discardSpans is a span exporter that drops what it is given.
type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }
