package derrors

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestToStatus(t *testing.T) {
	storeDown := fmt.Errorf("database %w", Unavailable)
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
	}{
		{"bad id", fmt.Errorf("%w: replay id must be a UUID", InvalidArgument), http.StatusBadRequest, "bad_request"},
		{"no token", fmt.Errorf("%w: missing bearer token", Unauthenticated), http.StatusUnauthorized, "unauthenticated"},
		{"other project", fmt.Errorf("%w: token is for another project", PermissionDenied), http.StatusForbidden, "forbidden"},
		{"unknown replay", fmt.Errorf("replay 1/x: %w", NotFound), http.StatusNotFound, "not_found"},
		{"method", MethodNotAllowed, http.StatusMethodNotAllowed, "method_not_allowed"},
		{"shredded", fmt.Errorf("%w: replay was shredded", Gone), http.StatusGone, "gone"},
		{"big body", fmt.Errorf("%w: over 1 MiB", TooLarge), http.StatusRequestEntityTooLarge, "too_large"},
		{"buffer full", fmt.Errorf("packer buffer full: %w", Overloaded), http.StatusTooManyRequests, "overloaded"},
		{"tampered", fmt.Errorf("open segment: %w", Integrity), http.StatusInternalServerError, "integrity"},
		{"gcs down", fmt.Errorf("read: %w", StorageUnavailable), http.StatusBadGateway, "storage_unavailable"},
		{"db down, wrapped twice", fmt.Errorf("flush: %w", storeDown), http.StatusServiceUnavailable, "unavailable"},
		{"deadline", fmt.Errorf("kms: %w", context.DeadlineExceeded), http.StatusServiceUnavailable, "unavailable"},
		{"canceled", context.Canceled, http.StatusServiceUnavailable, "unavailable"},
		{"unclassified", errors.New("boom"), http.StatusInternalServerError, "internal"},
		{"two classes: the first listed wins", errors.Join(fmt.Errorf("%w", Unavailable), fmt.Errorf("%w", InvalidArgument)), http.StatusBadRequest, "bad_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, code := ToStatus(tc.err)
			if status != tc.wantStatus || code != tc.wantCode {
				t.Errorf("ToStatus(%v) = %d %s, want %d %s", tc.err, status, code, tc.wantStatus, tc.wantCode)
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	for status, want := range map[int]bool{400: false, 404: false, 410: false, 429: true, 500: false, 502: true, 503: true} {
		if got := Retryable(status); got != want {
			t.Errorf("Retryable(%d) = %v, want %v", status, got, want)
		}
	}
}
