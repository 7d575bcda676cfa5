// Package api holds what the HTTP functions share: error responses (their
// status comes from derrors), JSON responses, path ids, authorization and CORS.
package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/google/uuid"
	"github.com/replayvault/replayvault/shared/derrors"
)

// WriteError answers with err's status and a JSON body
// {"error":{"code":...,"message":...}} plus any extra fields. Server-side
// errors are logged; their detail is not sent to the client.
func WriteError(w http.ResponseWriter, r *http.Request, err error, extra map[string]any) {
	status, code := derrors.ToStatus(err)
	msg := err.Error()
	if status >= 500 {
		slog.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "error", err)
		msg = http.StatusText(status)
	}
	if derrors.Retryable(status) {
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
		return 0, fmt.Errorf("%w: project id %q must be a positive integer", derrors.InvalidArgument, s)
	}
	return p, nil
}

// ReplayID parses a replay id path value.
func ReplayID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 || id == uuid.Nil {
		return uuid.Nil, fmt.Errorf("%w: replay id %q must be a UUID", derrors.InvalidArgument, s)
	}
	return id, nil
}
