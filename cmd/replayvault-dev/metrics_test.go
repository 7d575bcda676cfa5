package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/replayvault/replayvault/shared/telemetry"
)

// TestMetricSink exports metrics from a function's real telemetry setup
// (OTLP/HTTP, as the dev stack configures the functions) into the sink and
// reads them back as the summary line and the charts do.
func TestMetricSink(t *testing.T) {
	sink := newMetricSink()
	srv := httptest.NewServer(sink)
	defer srv.Close()
	for _, kv := range functionEnv(srv.URL, "Pack") {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.ConfigFromEnv("replayvault"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := telemetry.NewPack(tel)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		p.Received(ctx)
		p.Acked(ctx, "stored", 20*time.Millisecond)
	}
	p.Rejected(ctx, "not_json")
	p.Flushed(ctx, telemetry.Flush{Trigger: telemetry.TriggerAge, Bytes: 1000, Segments: 4, Stored: 4, Age: time.Second})
	h, _ := telemetry.NewHTTP(tel, "serve")
	h.Request(ctx, "recording", 200, time.Millisecond)
	h.Request(ctx, "replay", 200, time.Millisecond)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(sctx); err != nil { // flushes the last export
		t.Fatal(err)
	}

	got := sink.totals()
	want := devTotals{Received: 5, Rejected: 1, Flushes: 1, FlushBytes: 1000, FlushAgeS: 1, Acks: 5, AckWaitS: 0.1, Reads: 1}
	if d := got.AckWaitS - want.AckWaitS; d > 1e-9 || d < -1e-9 {
		t.Errorf("ack wait sum %v, want %v", got.AckWaitS, want.AckWaitS)
	}
	got.AckWaitS = want.AckWaitS
	if got != want {
		t.Errorf("totals %+v, want %+v", got, want)
	}
	for _, s := range sink.snapshot() {
		if s.Service != "pack" {
			t.Errorf("series %s from service %q, want pack (OTEL_SERVICE_NAME)", s.Metric, s.Service)
		}
	}
	line := summaryLine(devTotals{}, got, time.Second)
	for _, part := range []string{"segments    5.0/s", "flushes 1", "rejects 1", "ack 20ms", "reads 1"} {
		if !strings.Contains(line, part) {
			t.Errorf("summary %q lacks %q", line, part)
		}
	}
}
