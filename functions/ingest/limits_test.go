package ingest

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestRateLimits(t *testing.T) {
	cfg := testConfig()
	cfg.KeyRate, cfg.KeyBurst = 0.01, 2
	cfg.ProjectRate, cfg.ProjectBurst = 0.01, 3
	e := newEnv(t, cfg)
	k1, k2 := e.key(42), e.key(42)
	rec := rrwebEvents(1_700_000_000_000, "x")
	send := func(key string) (int, string, http.Header) {
		hex := strings.ReplaceAll(uuid.NewString(), "-", "")
		status, code, resp := e.post("/api/42/envelope/?sentry_key="+key, envelope(hex, 0, rec, true))
		return status, code, resp.Header
	}
	for i := range 2 {
		if s, c, _ := send(k1); s != 200 {
			t.Fatalf("request %d of key 1: %d %s", i, s, c)
		}
	}
	s, c, h := send(k1)
	if s != http.StatusTooManyRequests || c != "rate_limited" {
		t.Fatalf("third request of key 1: %d %s, want 429", s, c)
	}
	ra, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || ra < 1 {
		t.Errorf("Retry-After = %q", h.Get("Retry-After"))
	}
	if got, want := h.Get("X-Sentry-Rate-Limits"), h.Get("Retry-After")+"::key"; got != want {
		t.Errorf("X-Sentry-Rate-Limits = %q, want %q", got, want)
	}
	// Key 2 has its own bucket, but the project's holds one more only.
	if s, c, _ := send(k2); s != 200 {
		t.Fatalf("key 2: %d %s", s, c)
	}
	s, _, h = send(k2)
	if s != http.StatusTooManyRequests || !strings.HasSuffix(h.Get("X-Sentry-Rate-Limits"), "::project") {
		t.Errorf("key 2 past the project's burst: %d %q", s, h.Get("X-Sentry-Rate-Limits"))
	}
	// Refused requests took no tokens and published nothing.
	if got := len(e.pull(3, time.Second)); got != 3 {
		t.Errorf("published %d, want 3", got)
	}
}

func TestRevocationWithinTTL(t *testing.T) {
	cfg := testConfig()
	cfg.KeyCacheTTL = 200 * time.Millisecond
	e := newEnv(t, cfg)
	key := e.key(42)
	rec := rrwebEvents(1_700_000_000_000, "x")
	send := func() (int, string) {
		s, c, _ := e.post("/v1/projects/42/replays/"+uuid.NewString()+"/segments/0?key="+key, rec)
		return s, c
	}
	if s, c := send(); s != 200 {
		t.Fatalf("before revoke: %d %s", s, c)
	}
	if err := e.db.RevokeIngestKey(context.Background(), 42, key); err != nil {
		t.Fatal(err)
	}
	time.Sleep(cfg.KeyCacheTTL + 50*time.Millisecond)
	if s, c := send(); s != 401 || c != "revoked_key" {
		t.Errorf("after the TTL: %d %s, want 401 revoked_key", s, c)
	}
}

func TestCORS(t *testing.T) {
	e := newEnv(t, testConfig())
	key := e.key(42, "http://good.example")
	star := e.key(42, "*")
	tests := []struct {
		name, path, origin string
		status             int
		allow              string
	}{
		{"sentry allowed", "/api/42/envelope/?sentry_key=" + key, "http://good.example", 204, "http://good.example"},
		{"sentry other origin", "/api/42/envelope/?sentry_key=" + key, "http://evil.example", 403, ""},
		{"sentry any origin", "/api/42/envelope/?sentry_key=" + star, "http://evil.example", 204, "http://evil.example"},
		{"sentry unknown key", "/api/42/envelope/?sentry_key=nope", "http://good.example", 401, ""},
		// posthog-js's token is in the body: the actual request is checked.
		{"posthog", "/s/", "http://any.example", 204, "http://any.example"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodOptions, e.url+tc.path, nil)
			req.Header.Set("Origin", tc.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Access-Control-Allow-Origin") != tc.allow {
				t.Errorf("got %d allow %q, want %d allow %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), tc.status, tc.allow)
			}
		})
	}
}
