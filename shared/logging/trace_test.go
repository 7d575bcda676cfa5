package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestTraceFields(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	spanCtx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
	tests := []struct {
		name    string
		project string
		ctx     context.Context
		want    map[string]any // nil value: field must be absent
	}{
		{"with span", "proj", spanCtx, map[string]any{
			TraceKey: "projects/proj/traces/4bf92f3577b34da6a3ce929d0e0e4736", SpanIDKey: "00f067aa0ba902b7", TraceSampledKey: true,
			"severity": "WARNING", "message": "hello",
		}},
		{"no project", "", spanCtx, map[string]any{TraceKey: "4bf92f3577b34da6a3ce929d0e0e4736"}},
		{"no span", "proj", context.Background(), map[string]any{TraceKey: nil, SpanIDKey: nil, "message": "hello"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := NewForProject(&buf, "debug", tt.project).With("k", "v")
			l.WarnContext(tt.ctx, "hello", "n", 1)
			var got map[string]any
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("%v: %s", err, buf.Bytes())
			}
			for k, want := range tt.want {
				v, ok := got[k]
				if want == nil {
					if ok {
						t.Errorf("%s = %v, want absent", k, v)
					}
					continue
				}
				if v != want {
					t.Errorf("%s = %v, want %v", k, v, want)
				}
			}
			if got["k"] != "v" {
				t.Errorf("attribute from With lost: %s", buf.Bytes())
			}
		})
	}
	// A logger without a context never has trace fields.
	var buf bytes.Buffer
	slog.New(NewForProject(&buf, "", "p").Handler()).Info("x")
	if bytes.Contains(buf.Bytes(), []byte(TraceKey)) {
		t.Errorf("trace field without a span: %s", buf.Bytes())
	}
}
