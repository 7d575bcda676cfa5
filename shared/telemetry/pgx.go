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

// DBTracer is a pgx.QueryTracer that makes a client span per statement
// (including BEGIN and COMMIT), as a child of the caller's span.
type DBTracer struct {
	tracer trace.Tracer
}

// NewDBTracer returns a DBTracer of t (nil: t.Tracer of Nop).
func NewDBTracer(t *Telemetry) *DBTracer { return &DBTracer{tracer: t.OrNop().Tracer} }

// TraceQueryStart implements pgx.QueryTracer.
func (d *DBTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx // no trace to join: a stray root span per statement helps nobody
	}
	sql := strings.TrimSpace(data.SQL)
	op, _, _ := strings.Cut(sql, " ")
	op = strings.ToUpper(strings.TrimSpace(op))
	if len(sql) > maxStatementChars {
		sql = sql[:maxStatementChars]
	}
	ctx, span := d.tracer.Start(ctx, "db."+op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("db.system", "postgresql"),
		attribute.String("db.operation.name", op),
		attribute.String("db.query.text", sql),
	))
	return context.WithValue(ctx, dbSpanKey{}, span)
}

// dbSpanKey marks the span TraceQueryStart started, so TraceQueryEnd never
// ends the caller's.
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
