package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/replayvault/replayvault/shared/telemetry"
)

// maxOTLPBody bounds one OTLP export request the dev stack accepts.
const maxOTLPBody = 8 << 20

// metricSink is the dev stack's stand-in for an OpenTelemetry collector:
// the functions export their metrics to it over OTLP/HTTP every second
// (cumulative), and it keeps the latest value of every series for
// /api/metrics, the live charts and the one-line summary.
type metricSink struct {
	mu     sync.Mutex
	series map[string]sinkPoint // by service|metric|attrs
	at     time.Time            // last export received
}

// sinkPoint is one series' latest cumulative value.
type sinkPoint struct {
	Service string  `json:"service"`
	Metric  string  `json:"metric"`
	Attrs   string  `json:"attrs,omitempty"`
	Value   float64 `json:"value"` // sum, gauge, or histogram sum
	Count   uint64  `json:"count,omitempty"`
}

func newMetricSink() *metricSink { return &metricSink{series: map[string]sinkPoint{}} }

// functionEnv points a function's OTLP exporter at the sink at baseURL.
func functionEnv(baseURL, function string) []string {
	return []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + baseURL,
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_METRIC_EXPORT_INTERVAL=1000",
		"OTEL_SERVICE_NAME=" + strings.ToLower(function),
		// Spans are exported too (the sink drops them): the dev stack runs
		// the instrumentation exactly as deployed.
	}
}

// ServeHTTP accepts POST /v1/metrics and /v1/traces (protobuf).
func (m *metricSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOTLPBody))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	if r.URL.Path == "/v1/metrics" {
		var req collectormetrics.ExportMetricsServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, "bad OTLP metrics: "+err.Error(), http.StatusBadRequest)
			return
		}
		m.add(&req)
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK) // an empty Export*ServiceResponse
}

func (m *metricSink) add(req *collectormetrics.ExportMetricsServiceRequest) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.at = time.Now()
	for _, rm := range req.ResourceMetrics {
		service := ""
		for _, kv := range rm.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, sm := range rm.ScopeMetrics {
			for _, met := range sm.Metrics {
				put := func(attrs []*commonpb.KeyValue, v float64, n uint64) {
					p := sinkPoint{Service: service, Metric: met.Name, Attrs: attrKey(attrs), Value: v, Count: n}
					m.series[p.Service+"|"+p.Metric+"|"+p.Attrs] = p
				}
				switch d := met.Data.(type) {
				case *metricspb.Metric_Sum:
					for _, p := range d.Sum.DataPoints {
						put(p.Attributes, number(p), 0)
					}
				case *metricspb.Metric_Gauge:
					for _, p := range d.Gauge.DataPoints {
						put(p.Attributes, number(p), 0)
					}
				case *metricspb.Metric_Histogram:
					for _, p := range d.Histogram.DataPoints {
						put(p.Attributes, p.GetSum(), p.Count)
					}
				}
			}
		}
	}
}

func number(p *metricspb.NumberDataPoint) float64 {
	if v, ok := p.Value.(*metricspb.NumberDataPoint_AsInt); ok {
		return float64(v.AsInt)
	}
	return p.GetAsDouble()
}

func attrKey(kv []*commonpb.KeyValue) string {
	parts := make([]string, 0, len(kv))
	for _, a := range kv {
		v := a.GetValue()
		var s string
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			s = x.StringValue
		case *commonpb.AnyValue_IntValue:
			s = fmt.Sprint(x.IntValue)
		case *commonpb.AnyValue_BoolValue:
			s = fmt.Sprint(x.BoolValue)
		case *commonpb.AnyValue_DoubleValue:
			s = fmt.Sprint(x.DoubleValue)
		}
		parts = append(parts, a.Key+"="+s)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// snapshot is every series, sorted.
func (m *metricSink) snapshot() []sinkPoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]sinkPoint, 0, len(m.series))
	for _, p := range m.series {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.Metric+a.Service+a.Attrs < b.Metric+b.Service+b.Attrs
	})
	return out
}

// devTotals are the cumulative figures of the summary line and the charts.
type devTotals struct {
	Received   float64 `json:"received"`
	Rejected   float64 `json:"rejected"`
	Flushes    float64 `json:"flushes"`
	FlushBytes float64 `json:"flush_bytes"`
	FlushAgeS  float64 `json:"flush_age_s"` // sum over flushes
	Acks       float64 `json:"acks"`
	AckWaitS   float64 `json:"ack_wait_s"` // sum over acks
	Reads      float64 `json:"reads"`      // Serve recording requests
}

func (m *metricSink) totals() devTotals {
	var t devTotals
	for _, p := range m.snapshot() {
		switch p.Metric {
		case telemetry.MetricPackReceived:
			t.Received += p.Value
		case telemetry.MetricPackRejected:
			t.Rejected += p.Value
		case telemetry.MetricPackFlushBytes:
			t.Flushes += float64(p.Count)
			t.FlushBytes += p.Value
		case telemetry.MetricPackFlushAge:
			t.FlushAgeS += p.Value
		case telemetry.MetricPackAckWait:
			t.Acks += float64(p.Count)
			t.AckWaitS += p.Value
		case telemetry.MetricHTTPRequests:
			if strings.Contains(p.Attrs, "function=serve") && strings.Contains(p.Attrs, "route=recording") {
				t.Reads += p.Value
			}
		}
	}
	return t
}

// waitFor polls the totals until ok accepts them or ctx ends (the
// functions export once a second).
func (m *metricSink) waitFor(ctx context.Context, ok func(devTotals) bool) (devTotals, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		t := m.totals()
		if ok(t) {
			return t, nil
		}
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-tick.C:
		}
	}
}

// handleMetrics answers GET /api/metrics: the totals and every series.
func (s *stack) handleMetrics(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"time":   time.Now().UnixMilli(),
		"totals": s.metrics.totals(),
		"series": s.metrics.snapshot(),
	})
}

// summarize writes a one-line live summary to out every second, in place
// (carriage return), until ctx ends.
func (m *metricSink) summarize(ctx context.Context, out io.Writer) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prev, prevAt := m.totals(), time.Now()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out)
			return
		case now := <-tick.C:
			t := m.totals()
			fmt.Fprintf(out, "\r%s", summaryLine(prev, t, now.Sub(prevAt)))
			prev, prevAt = t, now
		}
	}
}

// summaryLine is the live line: rates over the last interval, totals since
// the start.
func summaryLine(prev, t devTotals, d time.Duration) string {
	rate := (t.Received - prev.Received) / d.Seconds()
	ack := "-"
	if n := t.Acks - prev.Acks; n > 0 {
		ack = fmt.Sprintf("%.0fms", 1000*(t.AckWaitS-prev.AckWaitS)/n)
	}
	return fmt.Sprintf("segments %6.1f/s (%.0f total) | flushes %.0f | rejects %.0f | ack %s | reads %.0f   ",
		rate, t.Received, t.Flushes, t.Rejected, ack, t.Reads)
}
