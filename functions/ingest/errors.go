package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/replayvault/replayvault/shared/api"
	"github.com/replayvault/replayvault/shared/derrors"
)

// Error is a request Ingest refuses, with the status and a stable code.
// Its message never holds payload bytes or keys.
type Error struct {
	Status     int
	Code       string
	Message    string
	retryAfter int    // seconds, for 429
	scope      string // what was rate limited
}

func (e *Error) Error() string { return e.Message }

// Unwrap gives the shared class of the status, for callers that classify
// with derrors.
func (e *Error) Unwrap() error {
	switch e.Status {
	case http.StatusUnauthorized:
		return derrors.Unauthenticated
	case http.StatusForbidden:
		return derrors.PermissionDenied
	case http.StatusNotFound:
		return derrors.NotFound
	case http.StatusMethodNotAllowed:
		return derrors.MethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return derrors.TooLarge
	case http.StatusTooManyRequests:
		return derrors.Overloaded
	}
	return derrors.InvalidArgument
}

// errUnavailable marks a failure worth retrying (503): Pub/Sub did not
// accept the messages in time.
var errUnavailable = fmt.Errorf("pub/sub %w", derrors.Unavailable)

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, code, format, args...)
}

// writeError answers err: an *Error with its status and reason; anything
// else (the database, Pub/Sub) through the shared mapping, 5xx details kept
// in the log. Every answer carries Sentry's "detail" next to our "error" so
// both the SDK's logs and a human read it.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		status, code := derrors.ToStatus(err)
		if status < 500 {
			// Only Ingest's own errors may be a client's fault.
			status, code = http.StatusInternalServerError, "internal"
		}
		slog.ErrorContext(r.Context(), "ingest failed", "path", r.URL.Path, "status", status, "error", err)
		e = &Error{Status: status, Code: code, Message: http.StatusText(status)}
		if derrors.Retryable(status) {
			e.retryAfter = 5
		}
	} else {
		slog.InfoContext(r.Context(), "ingest refused", "path", r.URL.Path, "status", e.Status, "code", e.Code, "reason", e.Message)
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
		if e.Status == http.StatusTooManyRequests {
			// retry_after:categories:scope; no categories means all.
			w.Header().Set("X-Sentry-Rate-Limits", strconv.Itoa(e.retryAfter)+"::"+sentryScope(e.scope))
		}
	}
	api.WriteJSON(w, e.Status, map[string]any{
		"detail": e.Message,
		"error":  map[string]any{"code": e.Code, "message": e.Message},
	})
}

func sentryScope(s string) string {
	if s == "project" {
		return "project"
	}
	return "key"
}
