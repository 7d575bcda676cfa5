package telemetry

import (
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Handler wraps an HTTP function's handler: each request gets a server
// span, a child of the caller's traceparent if it sent one, and is counted
// in m by route (route(r), or the method if route is nil) and status.
func (t *Telemetry) Handler(function string, m *HTTP, route func(*http.Request) string, h http.Handler) http.Handler {
	tracer := t.OrNop().Tracer
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rt := r.Method
		if route != nil {
			rt = route(r)
		}
		ctx := FromHTTP(r.Context(), r.Header)
		ctx, span := tracer.Start(ctx, function+" "+rt, trace.WithSpanKind(trace.SpanKindServer))
		// Attributes only on spans that are kept: most requests are not
		// sampled, and building them would cost each one allocations.
		recording := span.IsRecording()
		if recording {
			span.SetAttributes(attribute.String("http.request.method", r.Method), attribute.String("http.route", rt))
		}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			if recording {
				span.SetAttributes(attribute.Int("http.response.status_code", status))
				if status >= 500 {
					span.SetStatus(codes.Error, http.StatusText(status))
				}
			}
			span.End()
			m.Request(ctx, rt, status, time.Since(start))
		}()
		h.ServeHTTP(sw, r.WithContext(ctx))
	})
}

// statusWriter remembers the status written. Unwrap lets
// http.ResponseController reach the Flusher and Hijacker underneath.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
