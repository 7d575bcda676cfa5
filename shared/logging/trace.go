package logging

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Cloud Logging's special fields that join a log entry to its trace.
const (
	TraceKey        = "logging.googleapis.com/trace"
	SpanIDKey       = "logging.googleapis.com/spanId"
	TraceSampledKey = "logging.googleapis.com/trace_sampled"
)

// traceHandler adds the trace fields of the context's span to every record
// logged with a context (slog.InfoContext and friends).
type traceHandler struct {
	slog.Handler
	project string
}

// Handle implements slog.Handler.
func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(
			slog.String(TraceKey, TraceName(h.project, sc.TraceID())),
			slog.String(SpanIDKey, sc.SpanID().String()),
			slog.Bool(TraceSampledKey, sc.IsSampled()),
		)
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as), h.project}
}

// WithGroup implements slog.Handler.
func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name), h.project}
}

// TraceName is the value of the trace field: projects/P/traces/T, or the bare
// trace id when the project is unknown (local runs).
func TraceName(project string, id trace.TraceID) string {
	if project == "" {
		return id.String()
	}
	return "projects/" + project + "/traces/" + id.String()
}
