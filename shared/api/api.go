// Package api holds what the HTTP functions share: the mapping of errors to
// status codes (in one place), JSON responses, path ids and CORS.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/store"
)

var (
	// ErrBadRequest: malformed ids, ranges or bodies (400).
	ErrBadRequest = errors.New("bad request")
	// ErrNotFound: no such replay (404).
	ErrNotFound = errors.New("not found")
	// ErrGone: the replay was shredded (410).
	ErrGone = errors.New("gone")
	// ErrMethod: the path exists but not with this method (405).
	ErrMethod = errors.New("method not allowed")
	// ErrTooLarge: the request body is over its limit (413).
	ErrTooLarge = errors.New("request too large")
)

// Status maps an error to its HTTP status and a stable code for the body.
func Status(err error) (int, string) {
	switch {
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, "bad_request"
	case errors.Is(err, auth.ErrUnauthenticated):
		return http.StatusUnauthorized, "unauthenticated"
	case errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, ErrNotFound), errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, ErrMethod):
		return http.StatusMethodNotAllowed, "method_not_allowed"
	case errors.Is(err, ErrGone):
		return http.StatusGone, "gone"
	case errors.Is(err, crypt.ErrIntegrity):
		return http.StatusInternalServerError, "integrity"
	case errors.Is(err, blob.ErrUnavailable), errors.Is(err, blob.ErrNotFound):
		return http.StatusBadGateway, "storage_unavailable"
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, crypt.ErrKMSUnavailable),
		errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "unavailable"
	}
	return http.StatusInternalServerError, "internal"
}

// WriteError answers with err's status and a JSON body
// {"error":{"code":...,"message":...}} plus any extra fields. Server-side
// errors are logged; their detail is not sent to the client.
func WriteError(w http.ResponseWriter, r *http.Request, err error, extra map[string]any) {
	status, code := Status(err)
	msg := err.Error()
	if status >= 500 {
		slog.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "error", err)
		msg = http.StatusText(status)
	}
	if status == http.StatusBadGateway || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	body := map[string]any{"code": code, "message": msg}
	for k, v := range extra {
		body[k] = v
	}
	WriteJSON(w, status, map[string]any{"error": body})
}

// WriteJSON writes v as a JSON response that no cache may keep.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	NoStore(w)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// NoStore forbids every cache, shared or private, from keeping the response:
// a cached replay would outlive its shred.
func NoStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
}

// ProjectID parses a project id path value.
func ProjectID(s string) (int64, error) {
	p, err := strconv.ParseInt(s, 10, 64)
	if err != nil || p <= 0 {
		return 0, fmt.Errorf("%w: project id %q must be a positive integer", ErrBadRequest, s)
	}
	return p, nil
}

// ReplayID parses a replay id path value.
func ReplayID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 || id == uuid.Nil {
		return uuid.Nil, fmt.Errorf("%w: replay id %q must be a UUID", ErrBadRequest, s)
	}
	return id, nil
}
