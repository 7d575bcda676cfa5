package telemetry

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// propagator reads and writes W3C traceparent and tracestate.
var propagator = propagation.TraceContext{}

// Pub/Sub attributes that may carry a publisher's trace context: the plain
// W3C name, and the one the Go, Java and Python Pub/Sub clients write when
// their OpenTelemetry tracing is on.
var pubsubTraceKeys = [][2]string{
	{"traceparent", "tracestate"},
	{"googclient_traceparent", "googclient_tracestate"},
}

// FromHTTP returns ctx carrying the remote span context of h's traceparent
// header, if it has a valid one.
func FromHTTP(ctx context.Context, h http.Header) context.Context {
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// InjectHTTP writes ctx's span context into h as traceparent.
func InjectHTTP(ctx context.Context, h http.Header) {
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// FromPush returns ctx carrying the remote span context of a Pub/Sub push:
// first the message attributes the publisher set (they travel with the
// message through redeliveries), then the CloudEvent's traceparent
// extension (Eventarc, or the ce-traceparent header of the push request).
// ce may be nil.
func FromPush(ctx context.Context, attrs map[string]string, ce map[string]any) context.Context {
	for _, k := range pubsubTraceKeys {
		if tp := attrs[k[0]]; tp != "" {
			if c := extract(ctx, tp, attrs[k[1]]); trace.SpanContextFromContext(c).IsRemote() {
				return c
			}
		}
	}
	if tp, ok := ce["traceparent"].(string); ok {
		ts, _ := ce["tracestate"].(string)
		return extract(ctx, tp, ts)
	}
	return ctx
}

// InjectAttributes writes ctx's span context into Pub/Sub message
// attributes, for publishers (the dev stack, tests).
func InjectAttributes(ctx context.Context, attrs map[string]string) {
	propagator.Inject(ctx, propagation.MapCarrier(attrs))
}

func extract(ctx context.Context, traceparent, tracestate string) context.Context {
	c := propagation.MapCarrier{"traceparent": traceparent}
	if tracestate != "" {
		c["tracestate"] = tracestate
	}
	return propagator.Extract(ctx, c)
}
