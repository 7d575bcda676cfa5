package telemetry

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recordAll records one measurement on every instrument of every function.
func recordAll(ctx context.Context, t *testing.T, tel *Telemetry) {
	t.Helper()
	p, err := NewPack(tel)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServe(tel)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := NewShred(tel)
	if err != nil {
		t.Fatal(err)
	}
	in, err := NewIngest(tel)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHTTP(tel, "serve")
	if err != nil {
		t.Fatal(err)
	}
	p.Received(ctx)
	p.Rejected(ctx, "bad_json")
	p.Overloaded(ctx)
	p.KEKRotated(ctx)
	p.Buffer(ctx, 10)
	p.Flushed(ctx, Flush{Trigger: TriggerAge, Bytes: 10, Segments: 1, Stored: 1, Duplicate: 1, Discarded: 1, Age: time.Second, Duration: time.Second})
	p.Acked(ctx, "stored", time.Second)
	p.KMS().Call(ctx, "wrap", nil)
	s.Recording(ctx, 2, 1, 100, time.Millisecond)
	sh.Receipt(ctx, "project", 3)
	sh.Swept(ctx, map[string]int64{"segments_expired": 2}, 5, "done")
	in.Request(ctx, "browser", "accepted", 2)
	h.Request(ctx, "recording", 200, time.Millisecond)
}

// TestMetricAttributes: every instrument records exactly the attribute
// keys MetricAttributes lists (none for the others), so that the labels
// Terraform's filters name exist, and every metric name is emitted.
func TestMetricAttributes(t *testing.T) {
	ctx := context.Background()
	r := sdkmetric.NewManualReader()
	tel, err := NewSDK(Config{ServiceName: "t"}, nil, r)
	if err != nil {
		t.Fatal(err)
	}
	recordAll(ctx, t, tel)
	var rm metricdata.ResourceMetrics
	if err := r.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			keys := map[string]bool{}
			for _, set := range attributeSets(m.Data) {
				for _, kv := range set.ToSlice() {
					keys[string(kv.Key)] = true
				}
			}
			got[m.Name] = slices.Sorted(maps.Keys(keys))
		}
	}
	want := MetricAttributes()
	for _, name := range MetricNames() {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: not emitted", name)
			continue
		}
		if w := want[name]; !slices.Equal(g, w) && !(len(g) == 0 && len(w) == 0) {
			t.Errorf("%s: attribute keys %v, MetricAttributes says %v", name, g, w)
		}
	}
	for name := range want {
		if !slices.Contains(MetricNames(), name) {
			t.Errorf("MetricAttributes names %s, which is not in MetricNames", name)
		}
	}
}

// attributeSets returns the attribute set of each data point of d.
func attributeSets(d metricdata.Aggregation) []attribute.Set {
	var out []attribute.Set
	switch d := d.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	case metricdata.Histogram[int64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	}
	return out
}

func TestMetricLabel(t *testing.T) {
	for key, want := range map[string]string{
		"http.response.status_code": "http_response_status_code",
		"reject_reason":             "reject_reason",
		"2xx":                       "key_2xx",
		"":                          "",
	} {
		if got := MetricLabel(key); got != want {
			t.Errorf("MetricLabel(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestResource: the resource has service.name and a service.instance.id
// that differs between processes (two NewSDK calls stand for two), and no
// cloud.platform or k8s.cluster.name: the combination the collector's
// exporter maps to MonitoredResource (generic_task).
func TestResource(t *testing.T) {
	ids := map[string]bool{}
	for range 2 {
		exp := tracetest.NewInMemoryExporter()
		tel, err := NewSDK(Config{ServiceName: "replayvault-pack", SampleRatio: 1}, exp, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, span := tel.Tracer.Start(context.Background(), "x")
		span.End()
		flush(t, tel) // (Shutdown would empty the in-memory exporter)
		spans := exp.GetSpans()
		if len(spans) != 1 {
			t.Fatalf("%d spans, want 1", len(spans))
		}
		attrs := map[string]string{}
		for _, kv := range spans[0].Resource.Attributes() {
			attrs[string(kv.Key)] = kv.Value.String()
		}
		if attrs["service.name"] != "replayvault-pack" || len(attrs["service.instance.id"]) != 16 {
			t.Errorf("resource %v: want service.name replayvault-pack and a 16-digit service.instance.id", attrs)
		}
		for _, k := range []string{"cloud.platform", "k8s.cluster.name", "faas.name"} {
			if _, ok := attrs[k]; ok {
				t.Errorf("resource has %s: the exporter would not map it to %s", k, MonitoredResource)
			}
		}
		ids[attrs["service.instance.id"]] = true
	}
	if len(ids) != 2 {
		t.Errorf("two processes share service.instance.id %v: their time series would collide", ids)
	}
}

// TestSampling: new traces are sampled at the configured ratio (default
// DefaultSampleRatio), a caller's decision is kept either way, and the
// database tracer adds nothing to an unsampled trace.
func TestSampling(t *testing.T) {
	ctx := context.Background()
	exp := tracetest.NewInMemoryExporter()
	tel, err := NewSDK(Config{ServiceName: "t"}, exp, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	sampled := 0
	for range n {
		_, span := tel.Tracer.Start(ctx, "root")
		if span.SpanContext().IsSampled() {
			sampled++
		}
		span.End()
	}
	// Trace ids are random: 10% of 2,000 is 200, with a standard deviation
	// of about 13; 100..300 fails only for a broken sampler.
	if sampled < n*DefaultSampleRatio/2 || sampled > n*DefaultSampleRatio*3/2 {
		t.Errorf("%d of %d new traces sampled, want about %v", sampled, n, n*DefaultSampleRatio)
	}
	for _, tc := range []struct {
		traceparent string
		want        bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", false},
	} {
		pctx := FromPush(ctx, map[string]string{"traceparent": tc.traceparent}, nil)
		for range 50 {
			_, span := tel.Tracer.Start(pctx, "child")
			if span.SpanContext().IsSampled() != tc.want {
				t.Fatalf("child of %s: sampled %v, want %v", tc.traceparent, span.SpanContext().IsSampled(), tc.want)
			}
			span.End()
		}
		db := NewDBTracer(tel)
		qctx := db.TraceQueryStart(pctx, nil, pgx.TraceQueryStartData{SQL: "SELECT 1"})
		db.TraceQueryEnd(qctx, nil, pgx.TraceQueryEndData{})
		bctx := db.TraceBatchStart(pctx, nil, pgx.TraceBatchStartData{Batch: &pgx.Batch{}})
		db.TraceBatchQuery(bctx, nil, pgx.TraceBatchQueryData{Err: errors.New("x")})
		db.TraceBatchEnd(bctx, nil, pgx.TraceBatchEndData{})
		if (qctx != pctx) != tc.want || (bctx != pctx) != tc.want {
			t.Errorf("DB tracer in a trace sampled=%v: started spans %v/%v", tc.want, qctx != pctx, bctx != pctx)
		}
	}
	flush(t, tel)
	var db []string
	for _, s := range exp.GetSpans() {
		if s.Name == "db.SELECT" || s.Name == "db.BATCH" {
			db = append(db, s.Name)
			if s.Parent.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
				t.Errorf("%s outside the caller's trace", s.Name)
			}
		}
	}
	if !slices.Equal(db, []string{"db.SELECT", "db.BATCH"}) {
		t.Errorf("database spans %v, want db.SELECT and db.BATCH of the sampled trace only", db)
	}
}

// flush exports every ended span of tel.
func flush(t *testing.T, tel *Telemetry) {
	t.Helper()
	if err := tel.TracerProvider.(*sdktrace.TracerProvider).ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestRecordingAllocatesNothing: the measurements every Pack push and
// every HTTP request makes allocate nothing once their attribute sets are
// cached, inside a sampled trace too (exemplars are off).
func TestRecordingAllocatesNothing(t *testing.T) {
	tel, err := NewSDK(Config{ServiceName: "t"}, nil, sdkmetric.NewManualReader())
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPack(tel)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHTTP(tel, "serve")
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "request")
	defer span.End()
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		t.Fatal("test span not sampled")
	}
	for name, f := range map[string]func(){
		"Pack.Received": func() { p.Received(ctx) },
		"Pack.Buffer":   func() { p.Buffer(ctx, 100) },
		"Pack.Acked":    func() { p.Acked(ctx, "stored", time.Millisecond) },
		"Pack.Rejected": func() { p.Rejected(ctx, "bad_json") },
		"Pack.Flushed":  func() { p.Flushed(ctx, Flush{Trigger: TriggerCount, Bytes: 1, Segments: 1, Stored: 1}) },
		"HTTP.Request":  func() { h.Request(ctx, "recording", 200, time.Millisecond) },
	} {
		f() // first: makes the attribute set
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
}
