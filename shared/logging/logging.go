// Package logging sets up log/slog to write JSON that Cloud Logging reads:
// "severity" instead of "level", "message" instead of "msg", and, when the
// context carries an OpenTelemetry span, the trace fields that join the
// entry to its trace in Cloud Trace.
package logging

import (
	"io"
	"log/slog"
	"os"
	"strings"
)

// New returns a JSON logger for Cloud Logging at the level named by
// LOG_LEVEL (debug, info, warn, error; default info). Trace fields name the
// project of GOOGLE_CLOUD_PROJECT.
func New(w io.Writer, level string) *slog.Logger {
	return NewForProject(w, level, os.Getenv("GOOGLE_CLOUD_PROJECT"))
}

// NewForProject is New with the trace fields naming project.
func NewForProject(w io.Writer, level, project string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn", "warning":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	return slog.New(traceHandler{project: project, Handler: slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: lv,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.LevelKey:
				a.Key = "severity"
				if l, ok := a.Value.Any().(slog.Level); ok && l == slog.LevelWarn {
					a.Value = slog.StringValue("WARNING")
				}
			case slog.MessageKey:
				a.Key = "message"
			}
			return a
		},
	})})
}

// Setup makes New's logger the default, writing to stderr.
func Setup() {
	slog.SetDefault(New(os.Stderr, os.Getenv("LOG_LEVEL")))
}
