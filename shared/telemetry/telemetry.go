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
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

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
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/api/idtoken"
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
	// SampleRatio is the fraction of new traces sampled, in (0, 1]
	// (parent-based: a caller's decision, carried by its traceparent, is
	// kept). 0 means DefaultSampleRatio.
	SampleRatio float64
	// Stdout receives the stdout exporter's output (os.Stdout if nil).
	Stdout io.Writer
	// IDTokenAudience, if set, makes the OTLP/HTTP exporters send a
	// Google-signed ID token for this audience with every request
	// (IDTokenTransport): what a collector on Cloud Run that only the
	// functions' service accounts may invoke requires. ConfigFromEnv sets it
	// to the endpoint's origin when that is an https run.app URL.
	IDTokenAudience string
	// IDTokenOptions configure the ID token source (tests pass
	// credentials); empty means the application default credentials.
	IDTokenOptions []idtoken.ClientOption
}

// DefaultSampleRatio is the fraction of new traces sampled when
// OTEL_TRACES_SAMPLER_ARG is not set: one push or request in ten keeps its
// spans (README, "Observability"), which bounds both the cost of tracing
// in the functions and Cloud Trace's bill, while every metric still counts
// every request.
const DefaultSampleRatio = 0.1

// ConfigFromEnv reads OTEL_EXPORTER_OTLP_ENDPOINT (any value selects OTLP;
// the exporters read the endpoint and headers themselves; an https run.app
// endpoint also selects ID tokens for it), OTEL_EXPORTER_OTLP_PROTOCOL,
// OTEL_TRACES_SAMPLER_ARG (the ratio of new traces sampled, in (0, 1]),
// K_SERVICE and REPLAYVAULT_TELEMETRY (stdout, memory or none) for local
// runs.
func ConfigFromEnv(defaultService string) Config {
	c := Config{ServiceName: defaultService, Exporter: ExporterNone, Protocol: os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")}
	if s := os.Getenv("K_SERVICE"); s != "" {
		c.ServiceName = s
	}
	if s := os.Getenv("OTEL_SERVICE_NAME"); s != "" {
		c.ServiceName = s
	}
	if ep := os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); ep != "" {
		c.Exporter = ExporterOTLP
		c.IDTokenAudience = CloudRunAudience(ep)
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
		err       error
	)
	switch cfg.Exporter {
	case "", ExporterNone:
		return Nop(), nil
	case ExporterOTLP:
		spanExp, metReader, err = otlpExporters(ctx, cfg)
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
		metReader = sdkmetric.NewManualReader()
	default:
		return nil, fmt.Errorf("telemetry: unknown exporter %q (otlp, stdout, memory, none)", cfg.Exporter)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: %s exporter: %w", cfg.Exporter, err)
	}
	return NewSDK(cfg, spanExp, metReader)
}

// NewSDK returns the providers Setup makes, over the given span exporter
// (nil: no tracing) and metric reader: the resource (service.name, and a
// service.instance.id of this process so that instances never write the
// same time series), the parent-based ratio sampler, a batch span
// processor, and exemplars off. Setup passes the exporters cfg selects;
// benchmarks pass ones that discard, to measure what production pays.
//
// Exemplars are off because every measurement inside a sampled trace would
// offer one (a clock read and attribute copy per counter increment), while
// Cloud Monitoring keeps them only on distributions; the traces are found
// from a metric's time window and the log lines' trace field instead.
func NewSDK(cfg Config, spans sdktrace.SpanExporter, metrics sdkmetric.Reader) (*Telemetry, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.instance.id", instanceID())))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	t := &Telemetry{}
	if m, ok := metrics.(*sdkmetric.ManualReader); ok {
		t.snapshot = m
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter)}
	if metrics != nil {
		mopts = append(mopts, sdkmetric.WithReader(metrics))
	}
	mp := sdkmetric.NewMeterProvider(mopts...)
	t.MeterProvider, t.Meter = mp, mp.Meter(ScopeName)
	t.shutdown = append(t.shutdown, mp.Shutdown)
	if spans == nil {
		tp := tracenoop.NewTracerProvider()
		t.TracerProvider, t.Tracer = tp, tp.Tracer(ScopeName)
		return t, nil
	}
	ratio := cfg.SampleRatio
	if ratio <= 0 || ratio > 1 {
		ratio = DefaultSampleRatio
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithBatcher(spans),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	t.TracerProvider, t.Tracer = tp, tp.Tracer(ScopeName)
	t.shutdown = append(t.shutdown, tp.Shutdown)
	return t, nil
}

// instanceID names this process among a service's instances: 16 random hex
// digits (the collector maps service.name and service.instance.id to the
// generic_task job and task_id of MonitoredResource).
func instanceID() string {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

func otlpExporters(ctx context.Context, cfg Config) (sdktrace.SpanExporter, sdkmetric.Reader, error) {
	switch cfg.Protocol {
	case "", "grpc":
		if cfg.IDTokenAudience != "" {
			return nil, nil, fmt.Errorf("ID tokens for %s need OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", cfg.IDTokenAudience)
		}
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
		var (
			topts []otlptracehttp.Option
			mopts []otlpmetrichttp.Option
		)
		if cfg.IDTokenAudience != "" {
			c := &http.Client{Transport: IDTokenTransport(nil, cfg.IDTokenAudience, cfg.IDTokenOptions...), Timeout: otlpTimeout()}
			topts = append(topts, otlptracehttp.WithHTTPClient(c))
			mopts = append(mopts, otlpmetrichttp.WithHTTPClient(c))
		}
		se, err := otlptracehttp.New(ctx, topts...)
		if err != nil {
			return nil, nil, err
		}
		me, err := otlpmetrichttp.New(ctx, mopts...)
		if err != nil {
			return nil, nil, err
		}
		return se, sdkmetric.NewPeriodicReader(me), nil
	default:
		return nil, nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", cfg.Protocol)
	}
}

// otlpTimeout is OTEL_EXPORTER_OTLP_TIMEOUT (milliseconds, default 10 s):
// with their own HTTP client the exporters no longer apply it themselves.
func otlpTimeout() time.Duration {
	if ms, err := strconv.Atoi(os.Getenv("OTEL_EXPORTER_OTLP_TIMEOUT")); err == nil && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return 10 * time.Second
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
