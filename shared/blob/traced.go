package blob

import (
	"context"
	"io"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Traced wraps a Store with a client span per request. (The storage
// library traces only to the process-global OpenTelemetry provider, which
// replayvault never sets: telemetry is passed in explicitly.) Spans carry
// the object name and sizes, never its bytes.
type Traced struct {
	Store
	tracer trace.Tracer
}

// NewTraced wraps s; each request is a span of tracer.
func NewTraced(s Store, tracer trace.Tracer) *Traced {
	return &Traced{Store: s, tracer: tracer}
}

// start begins a request's span; outside a sampled trace it returns a
// span that records nothing, without building its attributes.
func (t *Traced) start(ctx context.Context, op, name string, kv ...attribute.KeyValue) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return ctx, noopSpan
	}
	return t.tracer.Start(ctx, "gcs."+op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(append(kv, attribute.String("gcs.object", name))...))
}

// noopSpan is a span that records nothing (the zero context's).
var noopSpan = trace.SpanFromContext(context.Background())

func end(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "storage request failed")
	}
	span.End()
}

// Create traces Store.Create.
func (t *Traced) Create(ctx context.Context, name string, parts ...[]byte) (err error) {
	ctx, span := t.start(ctx, "Create", name, attribute.Int("gcs.bytes", Size(parts)))
	defer func() { end(span, err) }()
	return t.Store.Create(ctx, name, parts...)
}

// ReadRange traces Store.ReadRange.
func (t *Traced) ReadRange(ctx context.Context, name string, offset, length int64) (b []byte, err error) {
	ctx, span := t.start(ctx, "ReadRange", name, attribute.Int64("gcs.offset", offset), attribute.Int64("gcs.bytes", length))
	defer func() { end(span, err) }()
	return t.Store.ReadRange(ctx, name, offset, length)
}

// OpenRange traces Store.OpenRange: the span lasts until the reader is
// closed, and records the first read error.
func (t *Traced) OpenRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	ctx, span := t.start(ctx, "OpenRange", name, attribute.Int64("gcs.offset", offset), attribute.Int64("gcs.bytes", length))
	r, err := t.Store.OpenRange(ctx, name, offset, length)
	if err != nil {
		end(span, err)
		return nil, err
	}
	return &tracedReader{ReadCloser: r, span: span}, nil
}

// tracedReader ends its span when closed.
type tracedReader struct {
	io.ReadCloser
	span trace.Span
	err  error
}

func (r *tracedReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

func (r *tracedReader) Close() error {
	err := r.ReadCloser.Close()
	end(r.span, r.err)
	return err
}

// Delete traces Store.Delete.
func (t *Traced) Delete(ctx context.Context, name string) (err error) {
	ctx, span := t.start(ctx, "Delete", name)
	defer func() { end(span, err) }()
	return t.Store.Delete(ctx, name)
}

// List traces Store.List.
func (t *Traced) List(ctx context.Context, prefix string, fn func(Object) error) (err error) {
	ctx, span := t.start(ctx, "List", prefix)
	defer func() { end(span, err) }()
	return t.Store.List(ctx, prefix, fn)
}
