package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/derrors"
	"github.com/replayvault/replayvault/shared/store"
)

func TestWriteError(t *testing.T) {
	tests := []struct {
		err        error
		status     int
		retryAfter bool
	}{
		{fmt.Errorf("x: %w", derrors.InvalidArgument), 400, false},
		{fmt.Errorf("x: %w", auth.ErrUnauthenticated), 401, false},
		{fmt.Errorf("x: %w", auth.ErrForbidden), 403, false},
		{fmt.Errorf("x: %w", derrors.NotFound), 404, false},
		{fmt.Errorf("x: %w", blob.ErrNotFound), 502, true},
		{fmt.Errorf("x: %w", derrors.Gone), 410, false},
		{fmt.Errorf("x: %w", derrors.Overloaded), 429, true},
		{fmt.Errorf("x: %w", derrors.TooLarge), 413, false},
		{fmt.Errorf("x: %w", crypt.ErrIntegrity), 500, false},
		{fmt.Errorf("x: %w", blob.ErrUnavailable), 502, true},
		{fmt.Errorf("x: %w", store.ErrUnavailable), 503, true},
		{fmt.Errorf("x: %w", crypt.ErrKMSUnavailable), 503, true},
		{fmt.Errorf("something else"), 500, false},
	}
	for _, tc := range tests {
		t.Run(tc.err.Error(), func(t *testing.T) {
			w := httptest.NewRecorder()
			WriteError(w, httptest.NewRequest("GET", "/", nil), tc.err, map[string]any{"extra": 1})
			if w.Code != tc.status {
				t.Errorf("status %d, want %d", w.Code, tc.status)
			}
			if got := w.Header().Get("Retry-After") != ""; got != tc.retryAfter {
				t.Errorf("Retry-After present = %v, want %v", got, tc.retryAfter)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", w.Header().Get("Cache-Control"))
			}
			var body struct {
				Error struct {
					Code, Message string
					Extra         int
				}
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code == "" || body.Error.Extra != 1 {
				t.Errorf("body %s: %v", w.Body, err)
			}
			if tc.status >= 500 && body.Error.Message != http.StatusText(tc.status) {
				t.Errorf("5xx leaks detail: %q", body.Error.Message)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	h := CORS([]string{"https://app.example"}, "GET, OPTIONS", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
	}))
	tests := []struct {
		name, method, origin string
		preflight            bool
		status               int
		allow                string
	}{
		{"preflight allowed", "OPTIONS", "https://app.example", true, 204, "https://app.example"},
		{"preflight refused", "OPTIONS", "https://evil.example", true, 403, ""},
		{"simple allowed", "GET", "https://app.example", false, 200, "https://app.example"},
		{"simple other origin", "GET", "https://evil.example", false, 200, ""},
		{"no origin", "GET", "", false, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/", nil)
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.preflight {
				r.Header.Set("Access-Control-Request-Method", "GET")
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status || w.Header().Get("Access-Control-Allow-Origin") != tc.allow {
				t.Errorf("status %d allow %q; want %d %q", w.Code, w.Header().Get("Access-Control-Allow-Origin"), tc.status, tc.allow)
			}
		})
	}
}

func TestIDs(t *testing.T) {
	for _, s := range []string{"0", "-1", "abc", "1.5", ""} {
		if _, err := ProjectID(s); err == nil {
			t.Errorf("ProjectID(%q) succeeded", s)
		}
	}
	if p, err := ProjectID("42"); err != nil || p != 42 {
		t.Errorf("ProjectID(42) = %d, %v", p, err)
	}
	for _, s := range []string{"", "x", "00000000-0000-0000-0000-000000000000", "{5b7b8f5e-3a41-4b2a-9f7e-1a2b3c4d5e6f}", "5b7b8f5e3a414b2a9f7e1a2b3c4d5e6f"} {
		if _, err := ReplayID(s); err == nil {
			t.Errorf("ReplayID(%q) succeeded", s)
		}
	}
	if _, err := ReplayID("5b7b8f5e-3a41-4b2a-9f7e-1a2b3c4d5e6f"); err != nil {
		t.Error(err)
	}
}
