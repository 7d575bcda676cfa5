package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/oauth2"
	"google.golang.org/api/idtoken"
)

// CloudRunAudience returns the ID token audience a Cloud Run service at
// endpoint expects (its origin, https://NAME-HASH-REGION.a.run.app), or ""
// if endpoint is not an https run.app URL. A collector on Cloud Run without
// public invokers accepts only requests carrying a Google-signed ID token
// for that audience, from an identity holding roles/run.invoker on it.
func CloudRunAudience(endpoint string) string {
	u, err := url.Parse(strings.TrimSpace(endpoint))
	if err != nil || u.Scheme != "https" || u.User != nil {
		return ""
	}
	host := strings.ToLower(u.Hostname())
	if !strings.HasSuffix(host, ".run.app") || u.Port() != "" && u.Port() != "443" {
		return ""
	}
	return "https://" + host
}

// IDTokenTransport returns an http.RoundTripper that sends each request
// over base (http.DefaultTransport if nil) with an
// "Authorization: Bearer" ID token for audience, unless the request
// already has an Authorization header (OTEL_EXPORTER_OTLP_HEADERS may set
// one). Tokens come from idtoken.NewTokenSource with opts (default: the
// application default credentials, on Cloud Run the metadata server),
// made on the first request, so building the transport does no I/O; the
// token source caches a token until shortly before it expires.
//
// A token fetch is bounded by the request's context. Tokens are never
// logged or put in errors.
func IDTokenTransport(base http.RoundTripper, audience string, opts ...idtoken.ClientOption) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &idTokenTransport{base: base, audience: audience, opts: opts}
}

type idTokenTransport struct {
	base     http.RoundTripper
	audience string
	opts     []idtoken.ClientOption

	mu  sync.Mutex
	src oauth2.TokenSource // nil until a token source was made
}

func (t *idTokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" {
		return t.base.RoundTrip(req)
	}
	tok, err := t.token(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close() // RoundTrip must close the body, even on errors
		}
		return nil, err
	}
	// RoundTrip must not modify the caller's request.
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	return t.base.RoundTrip(r)
}

// token returns an ID token, waiting for it no longer than ctx allows. A
// fetch that outlives ctx finishes in the background and fills the cache.
func (t *idTokenTransport) token(ctx context.Context) (string, error) {
	type result struct {
		tok string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		tok, err := t.fetch(context.WithoutCancel(ctx))
		ch <- result{tok, err}
	}()
	select {
	case r := <-ch:
		return r.tok, r.err
	case <-ctx.Done():
		return "", fmt.Errorf("telemetry: ID token for %s: %w", t.audience, ctx.Err())
	}
}

func (t *idTokenTransport) fetch(ctx context.Context) (string, error) {
	t.mu.Lock()
	src := t.src
	t.mu.Unlock()
	if src == nil {
		s, err := idtoken.NewTokenSource(ctx, t.audience, t.opts...)
		if err != nil {
			return "", fmt.Errorf("telemetry: ID token source for %s: %w", t.audience, err)
		}
		t.mu.Lock()
		if t.src == nil {
			t.src = s
		}
		src = t.src
		t.mu.Unlock()
	}
	tok, err := src.Token()
	if err != nil {
		return "", fmt.Errorf("telemetry: ID token for %s: %w", t.audience, err)
	}
	// idtoken's sources put the ID token in AccessToken.
	return tok.AccessToken, nil
}
