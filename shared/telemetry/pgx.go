package telemetry

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// maxStatementChars bounds the SQL text a span carries. Statements are
// replayvault's own hand-written SQL with placeholders; arguments are never
// recorded.
const maxStatementChars = 300

// DBTracer is a pgx.QueryTracer and pgx.BatchTracer that makes a client
// span per statement (including BEGIN and COMMIT), and one per batch of
// statements sent in one round trip, as a child of the caller's span. It
// does nothing outside a sampled trace: a root span per statement would
// help nobody, and a child of an unsampled request would not be kept.
type DBTracer struct {
	tracer trace.Tracer
}

var (
	_ pgx.QueryTracer = (*DBTracer)(nil)
	_ pgx.BatchTracer = (*DBTracer)(nil)
)

// NewDBTracer returns a DBTracer of t (nil: t.Tracer of Nop).
func NewDBTracer(t *Telemetry) *DBTracer { return &DBTracer{tracer: t.OrNop().Tracer} }

// dbSystem is the db.system attribute of every span.
var dbSystem = attribute.String("db.system", "postgresql")

// TraceQueryStart implements pgx.QueryTracer.
func (d *DBTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return ctx
	}
	sql := strings.TrimSpace(data.SQL)
	op, _, _ := strings.Cut(sql, " ")
	op = strings.ToUpper(strings.TrimSpace(op))
	if len(sql) > maxStatementChars {
		sql = sql[:maxStatementChars]
	}
	ctx, span := d.tracer.Start(ctx, "db."+op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		dbSystem,
		attribute.String("db.operation.name", op),
		attribute.String("db.query.text", sql),
	))
	return context.WithValue(ctx, dbSpanKey{}, span)
}

// dbSpanKey marks the span TraceQueryStart or TraceBatchStart started, so
// the end never ends the caller's.
type dbSpanKey struct{}

// TraceQueryEnd implements pgx.QueryTracer.
func (d *DBTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	span, ok := ctx.Value(dbSpanKey{}).(trace.Span)
	if !ok {
		return
	}
	if data.Err != nil {
		span.RecordError(data.Err)
		span.SetStatus(codes.Error, "statement failed")
	}
	span.SetAttributes(attribute.Int64("db.rows_affected", data.CommandTag.RowsAffected()))
	span.End()
}

// TraceBatchStart implements pgx.BatchTracer: one span for the whole
// batch, however many statements it holds.
func (d *DBTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return ctx
	}
	n := 0
	if data.Batch != nil {
		n = data.Batch.Len()
	}
	ctx, span := d.tracer.Start(ctx, "db.BATCH", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		dbSystem,
		attribute.String("db.operation.name", "BATCH"),
		attribute.Int("db.operation.batch.size", n),
	))
	return context.WithValue(ctx, dbSpanKey{}, span)
}

// TraceBatchQuery implements pgx.BatchTracer; a failed statement marks the
// batch's span.
func (d *DBTracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	if span, ok := ctx.Value(dbSpanKey{}).(trace.Span); ok && data.Err != nil {
		span.RecordError(data.Err)
		span.SetStatus(codes.Error, "statement failed")
	}
}

// TraceBatchEnd implements pgx.BatchTracer.
func (d *DBTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	span, ok := ctx.Value(dbSpanKey{}).(trace.Span)
	if !ok {
		return
	}
	if data.Err != nil {
		span.RecordError(data.Err)
		span.SetStatus(codes.Error, "batch failed")
	}
	span.End()
}
