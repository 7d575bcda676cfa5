// Package telemetry sets up OpenTelemetry for replayvault's functions: a
// tracer and meter provider chosen from the environment, the W3C trace
// context carried by HTTP requests and Pub/Sub pushes, and one typed set of
// instruments per function (Pack, Serve, Shred, Ingest), so that a call site
// records a measurement in one line.
//
// Nothing here is global: Setup returns a *Telemetry that Build functions
// receive as an option, and a nil or Nop Telemetry costs next to nothing.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// ScopeName names the instrumentation scope of every tracer and meter.
const ScopeName = "github.com/replayvault/replayvault"

// Exporter kinds, chosen by Config.Exporter.
const (
	// ExporterNone records nothing (the default when no collector is set).
	ExporterNone = "none"
	// ExporterOTLP sends to the collector at OTEL_EXPORTER_OTLP_ENDPOINT.
	ExporterOTLP = "otlp"
	// ExporterStdout writes spans and metrics as JSON to Config.Stdout.
	ExporterStdout = "stdout"
	// ExporterMemory keeps metrics in process for Snapshot (the dev stack).
	ExporterMemory = "memory"
)

// Config selects the exporters. ConfigFromEnv reads it from the standard
// OpenTelemetry variables.
type Config struct {
	// ServiceName is the service.name resource attribute (K_SERVICE on
	// Cloud Run).
	ServiceName string
	// Exporter is one of the Exporter* kinds.
	Exporter string
	// Protocol is the OTLP protocol: "grpc" (default) or "http/protobuf".
	Protocol string
	// SampleRatio is the fraction of new traces sampled (parent-based: a
	// sampled caller's trace is always kept). 0 means 1.
	SampleRatio float64
	// Stdout receives the stdout exporter's output (os.Stdout if nil).
	Stdout io.Writer
}

// ConfigFromEnv reads OTEL_EXPORTER_OTLP_ENDPOINT (any value selects OTLP;
// the exporters read the endpoint and headers themselves),
// OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_TRACES_SAMPLER_ARG, K_SERVICE and
// REPLAYVAULT_TELEMETRY (stdout, memory or none) for local runs.
func ConfigFromEnv(defaultService string) Config {
	c := Config{ServiceName: defaultService, Exporter: ExporterNone, Protocol: os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")}
	if s := os.Getenv("K_SERVICE"); s != "" {
		c.ServiceName = s
	}
	if s := os.Getenv("OTEL_SERVICE_NAME"); s != "" {
		c.ServiceName = s
	}
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" {
		c.Exporter = ExporterOTLP
	}
	if e := strings.ToLower(os.Getenv("REPLAYVAULT_TELEMETRY")); e != "" {
		c.Exporter = e
	}
	var r float64
	if _, err := fmt.Sscan(os.Getenv("OTEL_TRACES_SAMPLER_ARG"), &r); err == nil && r > 0 && r <= 1 {
		c.SampleRatio = r
	}
	return c
}

// Telemetry is one process's tracer and meter plus what flushes them.
type Telemetry struct {
	// Tracer starts replayvault's spans.
	Tracer trace.Tracer
	// TracerProvider is handed to client instrumentation (otelgrpc).
	TracerProvider trace.TracerProvider
	// Meter creates the instruments.
	Meter metric.Meter
	// MeterProvider is handed to client instrumentation.
	MeterProvider metric.MeterProvider

	snapshot *sdkmetric.ManualReader
	shutdown []func(context.Context) error
}

// Nop returns a Telemetry that records nothing.
func Nop() *Telemetry {
	tp, mp := tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider()
	return &Telemetry{Tracer: tp.Tracer(ScopeName), TracerProvider: tp, Meter: mp.Meter(ScopeName), MeterProvider: mp}
}

// OrNop returns t, or Nop if t is nil, so that options may be left unset.
func (t *Telemetry) OrNop() *Telemetry {
	if t == nil {
		return Nop()
	}
	return t
}

// New returns a Telemetry over the given providers (tests pass an SDK
// provider with an in-memory exporter or a ManualReader).
func New(tp trace.TracerProvider, mp metric.MeterProvider) *Telemetry {
	t := Nop()
	if tp != nil {
		t.TracerProvider, t.Tracer = tp, tp.Tracer(ScopeName)
	}
	if mp != nil {
		t.MeterProvider, t.Meter = mp, mp.Meter(ScopeName)
	}
	return t
}

// Setup builds the providers cfg selects. The OTLP exporters connect
// lazily, so Setup does no network I/O.
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	var (
		spanExp   sdktrace.SpanExporter
		metReader sdkmetric.Reader
		manual    *sdkmetric.ManualReader
		err       error
	)
	switch cfg.Exporter {
	case "", ExporterNone:
		return Nop(), nil
	case ExporterOTLP:
		spanExp, metReader, err = otlpExporters(ctx, cfg.Protocol)
	case ExporterStdout:
		w := cfg.Stdout
		if w == nil {
			w = os.Stdout
		}
		spanExp, err = stdouttrace.New(stdouttrace.WithWriter(w))
		if err == nil {
			var me sdkmetric.Exporter
			me, err = stdoutmetric.New(stdoutmetric.WithWriter(w))
			metReader = sdkmetric.NewPeriodicReader(me)
		}
	case ExporterMemory:
		manual = sdkmetric.NewManualReader()
		metReader = manual
	default:
		return nil, fmt.Errorf("telemetry: unknown exporter %q (otlp, stdout, memory, none)", cfg.Exporter)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: %s exporter: %w", cfg.Exporter, err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	t := &Telemetry{snapshot: manual}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(metReader))
	t.MeterProvider, t.Meter = mp, mp.Meter(ScopeName)
	t.shutdown = append(t.shutdown, mp.Shutdown)
	if spanExp != nil {
		ratio := cfg.SampleRatio
		if ratio == 0 {
			ratio = 1
		}
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithResource(res),
			sdktrace.WithBatcher(spanExp),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
		t.TracerProvider, t.Tracer = tp, tp.Tracer(ScopeName)
		t.shutdown = append(t.shutdown, tp.Shutdown)
	} else {
		tp := tracenoop.NewTracerProvider()
		t.TracerProvider, t.Tracer = tp, tp.Tracer(ScopeName)
	}
	return t, nil
}

func otlpExporters(ctx context.Context, protocol string) (sdktrace.SpanExporter, sdkmetric.Reader, error) {
	switch protocol {
	case "", "grpc":
		se, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, nil, err
		}
		me, err := otlpmetricgrpc.New(ctx)
		if err != nil {
			return nil, nil, err
		}
		return se, sdkmetric.NewPeriodicReader(me), nil
	case "http/protobuf":
		se, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, nil, err
		}
		me, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, nil, err
		}
		return se, sdkmetric.NewPeriodicReader(me), nil
	default:
		return nil, nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", protocol)
	}
}

// Shutdown flushes every pending span and metric and stops the exporters.
// Call it once, after the functions have drained.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	for _, f := range t.shutdown {
		if err := f(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("telemetry shutdown: %w", err)
	}
	return nil
}
