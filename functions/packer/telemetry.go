package packer

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/replayvault/replayvault/shared/store"
)

// startFlushSpan starts b's flush span: a child of the request that opened
// the batch, linked from every other request it holds (and, once it ends,
// linking back to it), so each request's trace reaches the flush that
// acked it.
func (p *Packer) startFlushSpan(ctx context.Context, b *batch) (context.Context, trace.Span) {
	var parent trace.SpanContext
	links := make([]trace.Link, 0, len(b.entries))
	for _, e := range b.entries {
		switch {
		case !e.request.IsValid():
		case !parent.IsValid():
			parent = e.request
		default:
			links = append(links, trace.Link{SpanContext: e.request})
		}
	}
	if parent.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, parent)
	}
	ctx, span := p.tracer.Start(ctx, "pack.flush", trace.WithLinks(links...), trace.WithAttributes(
		attribute.String("replayvault.flush.trigger", b.trigger),
		attribute.Int("replayvault.flush.segments", len(b.entries)),
		attribute.Int("replayvault.retention_days", b.retention)))
	b.flushSpan = span.SpanContext()
	return ctx, span
}

// countOutcomes counts a flushed batch's entries by outcome, for the flush
// metric.
func countOutcomes(entries []*entry) (stored, duplicate, shredded int) {
	for _, e := range entries {
		switch e.outcome {
		case store.Stored:
			stored++
		case store.Duplicate:
			duplicate++
		default:
			shredded++
		}
	}
	return stored, duplicate, shredded
}
