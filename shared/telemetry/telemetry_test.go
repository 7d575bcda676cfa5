package telemetry

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const (
	tpA = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tpB = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
)

func TestFromPush(t *testing.T) {
	tests := []struct {
		name  string
		attrs map[string]string
		ce    map[string]any
		want  string // trace id, "" for none
	}{
		{"attribute", map[string]string{"traceparent": tpA}, nil, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"pubsub client attribute", map[string]string{"googclient_traceparent": tpB}, nil, "0af7651916cd43dd8448eb211c80319c"},
		{"attribute wins over the CloudEvent", map[string]string{"traceparent": tpA}, map[string]any{"traceparent": tpB}, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"CloudEvent extension", nil, map[string]any{"traceparent": tpB}, "0af7651916cd43dd8448eb211c80319c"},
		{"garbled attribute falls back", map[string]string{"traceparent": "00-zz"}, map[string]any{"traceparent": tpB}, "0af7651916cd43dd8448eb211c80319c"},
		{"none", map[string]string{"project_id": "1"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := trace.SpanContextFromContext(FromPush(context.Background(), tt.attrs, tt.ce))
			got := ""
			if sc.IsValid() {
				got = sc.TraceID().String()
			}
			if got != tt.want {
				t.Errorf("trace id %q, want %q", got, tt.want)
			}
		})
	}
}

func TestInjectRoundTrip(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "s")
	defer span.End()
	attrs := map[string]string{}
	InjectAttributes(ctx, attrs)
	h := http.Header{}
	InjectHTTP(ctx, h)
	for name, got := range map[string]trace.SpanContext{
		"attributes": trace.SpanContextFromContext(FromPush(context.Background(), attrs, nil)),
		"http":       trace.SpanContextFromContext(FromHTTP(context.Background(), h)),
	} {
		if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() {
			t.Errorf("%s: %v, want %v", name, got, span.SpanContext())
		}
	}
}

// TestHandler: a request with a traceparent gets a server span in that
// trace, its status is counted by route, and http.ResponseController still
// reaches the Flusher underneath.
func TestHandler(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tel, err := Setup(context.Background(), Config{Exporter: ExporterMemory})
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	tel.TracerProvider, tel.Tracer = tp, tp.Tracer(ScopeName)
	m, err := NewHTTP(tel, "serve")
	if err != nil {
		t.Fatal(err)
	}
	h := tel.Handler("serve", m, func(r *http.Request) string { return "recording" }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !trace.SpanContextFromContext(r.Context()).IsValid() {
			t.Error("no span in the request context")
		}
		if r.URL.Query().Get("fail") != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("a"))
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush through the wrapper: %v", err)
		}
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, q := range []string{"", "", "?fail=1"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+q, nil)
		req.Header.Set("traceparent", tpA)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	srv.Close() // waits for the handlers to return: the client may see a flushed body first
	snap, err := tel.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := snap.Total(MetricHTTPRequests, "route=recording", "http.response.status_code=200"); n != 2 {
		t.Errorf("200s = %v, want 2 (%v)", n, snap)
	}
	if n := snap.Total(MetricHTTPRequests, "http.response.status_code=503"); n != 1 {
		t.Errorf("503s = %v, want 1", n)
	}
	if n := snap.Count(MetricHTTPDuration, "function=serve"); n != 3 {
		t.Errorf("durations = %d, want 3", n)
	}
	got := spans.GetSpans()
	if len(got) != 3 {
		t.Fatalf("%d spans, want 3", len(got))
	}
	for _, s := range got {
		if s.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || s.SpanKind != trace.SpanKindServer {
			t.Errorf("span %s in trace %s kind %v, want the caller's trace, server kind", s.Name, s.SpanContext.TraceID(), s.SpanKind)
		}
	}
}

func TestSetup(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	for _, tc := range []struct {
		cfg     Config
		wantErr bool
	}{
		{Config{}, false},
		{Config{Exporter: ExporterNone}, false},
		{Config{Exporter: ExporterMemory}, false},
		{Config{Exporter: ExporterStdout, Stdout: &out, ServiceName: "t", SampleRatio: 1}, false},
		{Config{Exporter: ExporterOTLP, Protocol: "grpc"}, false},
		{Config{Exporter: ExporterOTLP, Protocol: "http/protobuf"}, false},
		{Config{Exporter: ExporterOTLP, Protocol: "carrier-pigeon"}, true},
		{Config{Exporter: "prometheus"}, true},
	} {
		tel, err := Setup(ctx, tc.cfg)
		if (err != nil) != tc.wantErr {
			t.Errorf("Setup(%+v) error %v, want error %v", tc.cfg, err, tc.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		p, err := NewPack(tel)
		if err != nil {
			t.Errorf("%s: NewPack: %v", tc.cfg.Exporter, err)
		}
		if _, err := NewServe(tel); err != nil {
			t.Errorf("NewServe: %v", err)
		}
		if _, err := NewShred(tel); err != nil {
			t.Errorf("NewShred: %v", err)
		}
		if _, err := NewIngest(tel); err != nil {
			t.Errorf("NewIngest: %v", err)
		}
		p.Flushed(ctx, Flush{Trigger: TriggerAge, Bytes: 10, Segments: 1, Stored: 1, Age: time.Second})
		_, span := tel.Tracer.Start(ctx, "x")
		span.End()
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if tc.cfg.Exporter != ExporterOTLP { // nothing listens: the flush would time out
			if err := tel.Shutdown(sctx); err != nil {
				t.Errorf("%s: Shutdown: %v", tc.cfg.Exporter, err)
			}
		}
		cancel()
	}
	if !strings.Contains(out.String(), MetricPackFlushBytes) || !strings.Contains(out.String(), `"Name":"x"`) {
		t.Errorf("stdout exporter wrote no flush metric or span at shutdown:\n%.500s", out.String())
	}
}

// TestNilInstruments: functions built without telemetry hold nil
// instruments, and every method is a no-op on them.
func TestNilInstruments(t *testing.T) {
	ctx := context.Background()
	var p *Pack
	p.Received(ctx)
	p.Rejected(ctx, "x")
	p.Flushed(ctx, Flush{})
	p.Acked(ctx, "stored", time.Second)
	p.Buffer(ctx, 1)
	p.SecondCopy(ctx, true)
	p.KMS().Call(ctx, "wrap", nil)
	var s *Serve
	s.Recording(ctx, 1, 1, 1, time.Second)
	var sh *Shred
	sh.Receipt(ctx, "project", 1)
	sh.Swept(ctx, nil, 1, "done")
	var i *Ingest
	i.Request(ctx, "browser", "accepted", 1)
	var h *HTTP
	h.Request(ctx, "r", 200, time.Second)
}

// TestMetricNamesUnique guards the list Terraform's tests read.
func TestMetricNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range MetricNames() {
		if seen[n] || !strings.HasPrefix(n, "replayvault.") {
			t.Errorf("metric name %q repeated or outside replayvault.", n)
		}
		seen[n] = true
	}
}
