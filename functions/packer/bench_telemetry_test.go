package packer

import (
	"context"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/telemetry"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// BenchmarkTelemetryOverhead measures what instrumentation costs Pack: each
// op pushes the same 1,000 segments (through HandleEvent, as Pub/Sub does)
// once into a packer without telemetry and once into one with everything
// on — every trace sampled, a span per request, flush, GCS request and SQL
// statement, all metrics — on the same stand-ins, alternating so both see
// the same machine. It reports process CPU per segment of each and the
// overhead as a percentage (target: under 3%). The process also runs the
// GCS and KMS stand-ins, so the percentage is of Pack plus those.
func BenchmarkTelemetryOverhead(b *testing.B) {
	d := testenv.NewDeps(b)
	ctx := context.Background()
	cfg := Config{
		FlushBytes: 8 << 20, FlushSegments: 500, FlushAge: 2 * time.Second, MaxConcurrency: 1000,
		MaxBufferBytes: 256 << 20, FlushTimeout: time.Minute,
	}
	off := New(cfg, d.DB, d.Blobs, d.Keyring(), hotReject{b})
	b.Cleanup(off.Close)

	// Spans go through the batch processor, as in production, to an
	// exporter that keeps nothing.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardSpans{}))
	b.Cleanup(func() { tp.Shutdown(ctx) })
	tel := telemetry.New(tp, sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())))
	m, err := telemetry.NewPack(tel)
	if err != nil {
		b.Fatal(err)
	}
	tracedDB, err := store.OpenURL(ctx, d.DSN, store.WithTracer(telemetry.NewDBTracer(tel)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(tracedDB.Close)
	on := New(cfg, tracedDB, blob.NewTraced(d.Blobs, tel.Tracer), d.Keyring(), hotReject{b}, WithTelemetry(tel, m))
	b.Cleanup(on.Close)

	const n = 1000
	rng := rand.New(rand.NewPCG(7, 7))
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = workload.Gzip(workload.Segment(rng, i%50, 1_700_000_000_000, 2000+rng.IntN(20000)))
	}
	round := func(p *Packer) time.Duration {
		events := make([]event.Event, n)
		replays := make([]uuid.UUID, n/50)
		for i := range replays {
			replays[i] = uuid.New()
		}
		for i := range events {
			m := message(1, replays[i/50], i%50, payloads[i])
			// A publisher's trace context, as a traced client sends it.
			m.Attributes["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			events[i] = pushEvent(b, m)
		}
		before := cpuTime()
		var wg sync.WaitGroup
		for _, e := range events {
			wg.Go(func() {
				if err := p.HandleEvent(ctx, e); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		return cpuTime() - before
	}
	round(off) // warm both: first KEK, connections
	round(on)
	var cpuOff, cpuOn time.Duration
	for b.Loop() {
		cpuOff += round(off)
		cpuOn += round(on)
	}
	perOff := float64(cpuOff.Nanoseconds()) / float64(n*b.N)
	perOn := float64(cpuOn.Nanoseconds()) / float64(n*b.N)
	b.ReportMetric(perOff, "cpu-ns/seg-off")
	b.ReportMetric(perOn, "cpu-ns/seg-on")
	b.ReportMetric(100*(perOn-perOff)/perOff, "overhead-%")
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
