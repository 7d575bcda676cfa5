package telemetry

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/api/idtoken"
	"google.golang.org/api/option"
)

func TestCloudRunAudience(t *testing.T) {
	for _, tt := range []struct{ endpoint, want string }{
		{"https://replayvault-otel-collector-abc123-uc.a.run.app", "https://replayvault-otel-collector-abc123-uc.a.run.app"},
		{"https://Collector-XYZ.a.run.app/", "https://collector-xyz.a.run.app"},
		{"https://collector-xyz.a.run.app:443", "https://collector-xyz.a.run.app"},
		{"http://collector-xyz.a.run.app", ""}, // a token never travels in the clear
		{"https://collector-xyz.a.run.app:8443", ""},
		{"https://collector.example.com", ""},
		{"https://run.app.example.com", ""},
		{"http://localhost:4318", ""},
		{"", ""},
		{"::", ""},
	} {
		if got := CloudRunAudience(tt.endpoint); got != tt.want {
			t.Errorf("CloudRunAudience(%q) = %q, want %q", tt.endpoint, got, tt.want)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	for _, tt := range []struct {
		name                        string
		endpoint, protocol, sampler string
		wantExporter, wantAud       string
		wantRatio                   float64
	}{
		{"off", "", "", "", ExporterNone, "", 0},
		{"cloud run collector", "https://c-1-uc.a.run.app", "http/protobuf", "0.25", ExporterOTLP, "https://c-1-uc.a.run.app", 0.25},
		{"other collector", "http://collector:4318", "http/protobuf", "", ExporterOTLP, "", 0},
		{"sampler arg out of range", "http://collector:4318", "", "7", ExporterOTLP, "", 0},
		{"sampler arg garbled", "http://collector:4318", "", "all", ExporterOTLP, "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tt.endpoint)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", tt.protocol)
			t.Setenv("OTEL_TRACES_SAMPLER_ARG", tt.sampler)
			t.Setenv("REPLAYVAULT_TELEMETRY", "")
			c := ConfigFromEnv("replayvault")
			if c.Exporter != tt.wantExporter || c.IDTokenAudience != tt.wantAud || c.SampleRatio != tt.wantRatio || c.Protocol != tt.protocol {
				t.Errorf("got exporter %q audience %q ratio %v protocol %q, want %q %q %v %q",
					c.Exporter, c.IDTokenAudience, c.SampleRatio, c.Protocol, tt.wantExporter, tt.wantAud, tt.wantRatio, tt.protocol)
			}
		})
	}
}

// tokenServer stands in for Google's OAuth token endpoint: it takes the
// JWT-bearer grant a service account key signs (through the real
// golang.org/x/oauth2 and google.golang.org/api/idtoken code) and answers
// with an ID token for the audience the assertion asks for.
type tokenServer struct {
	*httptest.Server
	mu        sync.Mutex
	audiences []string // target_audience of each request
	fail      bool
	block     chan struct{} // if set, requests wait for it to close
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ts.block != nil {
			<-ts.block
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		claims, err := jwtClaims(r.PostForm.Get("assertion"))
		if err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			http.Error(w, fmt.Sprintf("bad grant: %v", err), http.StatusBadRequest)
			return
		}
		aud, _ := claims["target_audience"].(string)
		ts.mu.Lock()
		ts.audiences = append(ts.audiences, aud)
		fail := ts.fail
		ts.mu.Unlock()
		if fail {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id_token": idTokenFor(aud)})
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) requests() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.audiences...)
}

// idTokenFor is the (unsigned) ID token the token server issues for aud;
// the client reads its exp to know how long to reuse it.
func idTokenFor(aud string) string {
	enc := base64.RawURLEncoding
	claims, _ := json.Marshal(map[string]any{"aud": aud, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()})
	return enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims) + ".c2ln"
}

func jwtClaims(jwt string) (map[string]any, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var c map[string]any
	return c, json.Unmarshal(b, &c)
}

// serviceAccountKey returns a service account key file whose token_uri is
// the token server.
func serviceAccountKey(t *testing.T, tokenURI string) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "test-project",
		"private_key_id": "k1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "replayvault-pack@test-project.iam.gserviceaccount.com",
		"client_id":      "1",
		"token_uri":      tokenURI,
	})
	return b
}

// otlpSink records the path and Authorization header of each OTLP/HTTP
// export it receives.
type otlpSink struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []string // "path auth"
}

func newOTLPSink(t *testing.T) *otlpSink {
	s := &otlpSink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, r.URL.Path+" "+r.Header.Get("Authorization"))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *otlpSink) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reqs...)
}

// TestIDTokenExport: with an ID token audience the OTLP/HTTP exporters of
// Setup send every trace and metric export with a Bearer ID token for that
// audience, fetched once through the real idtoken package and reused.
func TestIDTokenExport(t *testing.T) {
	const audience = "https://replayvault-otel-collector-abc-uc.a.run.app"
	tokens := newTokenServer(t)
	sink := newOTLPSink(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.URL)
	ctx := context.Background()
	tel, err := Setup(ctx, Config{
		Exporter: ExporterOTLP, Protocol: "http/protobuf", ServiceName: "replayvault-pack", SampleRatio: 1,
		IDTokenAudience: audience,
		IDTokenOptions:  []idtoken.ClientOption{option.WithAuthCredentialsJSON(option.ServiceAccount, serviceAccountKey(t, tokens.URL))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := tokens.requests(); len(got) != 0 {
		t.Fatalf("Setup fetched %d tokens, want none before the first export", len(got))
	}
	p, err := NewPack(tel)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		p.Received(ctx)
		_, span := tel.Tracer.Start(ctx, "pack.segment")
		span.End()
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := tel.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}

	want := "Bearer " + idTokenFor(audience)
	paths := map[string]bool{}
	for _, r := range sink.requests() {
		path, auth, _ := strings.Cut(r, " ")
		paths[path] = true
		// The exp claim may differ by a second between two calls.
		if !strings.HasPrefix(auth, "Bearer ") || strings.Count(auth, ".") != 2 {
			t.Errorf("%s without an ID token: Authorization %q", path, auth)
			continue
		}
		claims, err := jwtClaims(strings.TrimPrefix(auth, "Bearer "))
		if err != nil || claims["aud"] != audience {
			t.Errorf("%s: token for %v (%v), want %s (like %.30s…)", path, claims["aud"], err, audience, want)
		}
	}
	if !paths["/v1/traces"] || !paths["/v1/metrics"] {
		t.Errorf("exports reached %v, want /v1/traces and /v1/metrics", paths)
	}
	if got := tokens.requests(); len(got) != 1 || got[0] != audience {
		t.Errorf("token requests for %q, want one for %s (reused for every export)", got, audience)
	}
}

// TestIDTokenTransport: a request that already carries Authorization (an
// OTEL_EXPORTER_OTLP_HEADERS value) is sent as is, without a token fetch;
// when no token can be had, nothing is sent unauthenticated; a token fetch
// that hangs ends with the request's context.
func TestIDTokenTransport(t *testing.T) {
	const audience = "https://c-1-uc.a.run.app"
	tokens := newTokenServer(t)
	sink := newOTLPSink(t)
	key := option.WithAuthCredentialsJSON(option.ServiceAccount, serviceAccountKey(t, tokens.URL))
	client := &http.Client{Transport: IDTokenTransport(nil, audience, key)}

	req, _ := http.NewRequest(http.MethodPost, sink.URL+"/v1/traces", strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer from-headers")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := sink.requests(); len(got) != 1 || got[0] != "/v1/traces Bearer from-headers" {
		t.Errorf("sink saw %q, want the caller's own Authorization", got)
	}
	if got := tokens.requests(); len(got) != 0 {
		t.Errorf("%d token fetches for a request with its own Authorization", len(got))
	}

	tokens.mu.Lock()
	tokens.fail = true
	tokens.mu.Unlock()
	if _, err := client.Post(sink.URL+"/v1/metrics", "application/x-protobuf", strings.NewReader("x")); err == nil {
		t.Error("export sent although no token could be had")
	}
	if got := sink.requests(); len(got) != 1 {
		t.Errorf("sink saw %q after a failed token fetch, want nothing more", got)
	}

	hang := newTokenServer(t)
	hang.block = make(chan struct{})
	defer close(hang.block)
	client = &http.Client{Transport: IDTokenTransport(nil, audience, option.WithAuthCredentialsJSON(option.ServiceAccount, serviceAccountKey(t, hang.URL)))}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, sink.URL+"/v1/metrics", strings.NewReader("x"))
	if _, err := client.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung token fetch: error %v, want the request's deadline", err)
	}
	if got := sink.requests(); len(got) != 1 {
		t.Errorf("sink saw %q after a hung token fetch, want nothing more", got)
	}
}
