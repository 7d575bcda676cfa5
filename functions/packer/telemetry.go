package packer

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/replayvault/replayvault/shared/store"
)

// maxFlushLinks bounds the links of a flush span (the SDK's default link
// limit): a batch may hold a thousand requests.
const maxFlushLinks = 128

// startFlushSpan starts b's flush span: a child of a sampled request of
// the batch (the first), linked from every other sampled request it holds
// (and, once it ends, linking back to it), so each sampled request's trace
// reaches the flush that acked it. Unsampled requests are skipped: their
// traces are not kept, and a batch with any sampled request thus gets a
// recorded flush span.
func (p *Packer) startFlushSpan(ctx context.Context, b *batch) (context.Context, trace.Span) {
	var parent trace.SpanContext
	var links []trace.Link
	for _, e := range b.entries {
		switch {
		case !e.request.IsSampled():
		case !parent.IsValid():
			parent = e.request
		case len(links) < maxFlushLinks:
			links = append(links, trace.Link{SpanContext: e.request})
		}
	}
	if !parent.IsValid() {
		// No sampled request: the first one's trace decides (unsampled).
		for _, e := range b.entries {
			if e.request.IsValid() {
				parent = e.request
				break
			}
		}
	}
	if parent.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, parent)
	}
	ctx, span := p.tracer.Start(ctx, "pack.flush", trace.WithLinks(links...))
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("replayvault.flush.trigger", b.trigger),
			attribute.Int("replayvault.flush.segments", len(b.entries)),
			attribute.Int("replayvault.retention_days", b.retention))
	}
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
