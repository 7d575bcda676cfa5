package telemetry_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/replayvault/replayvault/shared/logging"
	"github.com/replayvault/replayvault/shared/telemetry"
)

// BenchmarkPushInstrumentation measures, without the noise of a whole
// packer, what telemetry adds to one Pack push: what ServeHTTP and
// Ingest do per request (take the publisher's traceparent, start and end
// the request span, count it, reserve and release buffer bytes, record the
// ack wait) and its one log line through the production handler (JSON,
// trace fields). "off" is the Nop provider, as without a collector;
// "sampled" the production SDK with publishers sampling at the default
// ratio; "all" every trace sampled. The difference between off and the
// others in cpu-ns/op (process CPU: the wall clock of a shared machine
// counts other processes too), divided by Pack's CPU per segment
// (BenchmarkTelemetryOverhead's cpu-ns/seg-off), is the per-push share of
// the overhead; the per-flush spans and metrics are shared by a whole
// batch.
//
//	go test -run '^$' -bench BenchmarkPushInstrumentation -count 5 ./shared/telemetry/
func BenchmarkPushInstrumentation(b *testing.B) {
	prev := slog.Default()
	slog.SetDefault(logging.NewForProject(io.Discard, "info", "proj"))
	b.Cleanup(func() { slog.SetDefault(prev) })

	// 100 publisher traceparents, sampled as a publisher at ratio r would.
	parents := func(r float64) []map[string]string {
		s := sdktrace.TraceIDRatioBased(r)
		out := make([]map[string]string, 100)
		for i := range out {
			var tid trace.TraceID
			tid[0], tid[15] = byte(i), byte(i*7+1)
			tid[8] = byte(i * 37) // the ratio sampler reads bytes 8..15
			flags := "00"
			if s.ShouldSample(sdktrace.SamplingParameters{TraceID: tid}).Decision == sdktrace.RecordAndSample {
				flags = "01"
			}
			out[i] = map[string]string{"traceparent": fmt.Sprintf("00-%s-00f067aa0ba902b7-%s", tid, flags)}
		}
		return out
	}
	sdk := func(r float64) *telemetry.Telemetry {
		tel, err := telemetry.NewSDK(telemetry.Config{ServiceName: "replayvault-pack", SampleRatio: r}, discard{}, sdkmetric.NewManualReader())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tel.Shutdown(context.Background()) })
		return tel
	}
	for _, v := range []struct {
		name  string
		tel   *telemetry.Telemetry
		ratio float64
	}{
		{"off", telemetry.Nop(), telemetry.DefaultSampleRatio},
		{"sampled", sdk(telemetry.DefaultSampleRatio), telemetry.DefaultSampleRatio},
		{"all", sdk(1), 1},
	} {
		b.Run(v.name, func(b *testing.B) {
			m, err := telemetry.NewPack(v.tel)
			if err != nil {
				b.Fatal(err)
			}
			if v.name == "off" {
				m = nil // as packer.New without WithTelemetry
			}
			ps := parents(v.ratio)
			b.ReportAllocs()
			i := 0
			cpu0 := cpuTime()
			for b.Loop() {
				start := time.Now()
				ctx, span := v.tel.Tracer.Start(telemetry.FromPush(context.Background(), ps[i%len(ps)], nil), "pack.segment",
					trace.WithSpanKind(trace.SpanKindConsumer))
				m.Received(ctx)
				m.Buffer(ctx, 4096)
				m.Buffer(ctx, -4096)
				m.Acked(ctx, "stored", time.Since(start))
				span.End()
				slog.InfoContext(ctx, "segment acked", "message_id", "4bf92f35-77b3-4da6-a3ce-929d0e0e4736-7", "result", "stored")
				i++
			}
			// Process CPU, not wall time: on a shared machine the wall
			// clock also counts other processes' turns.
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }
