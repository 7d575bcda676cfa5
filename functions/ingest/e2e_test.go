package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/functions/serve"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/testenv"
)

const serveSecret = "ingest-test-secret-0123456789abcdef"

// failReject fails the test: everything Ingest publishes must be packable.
type failReject struct{ t *testing.T }

func (r failReject) Reject(_ context.Context, attrs map[string]string, _ []byte, reason string) error {
	r.t.Errorf("Pack rejected %v: %s", attrs, reason)
	return nil
}

// TestEndToEnd sends a replay through each way in — Sentry envelopes,
// posthog-js snapshot batches (gzip, with events posthog-js compressed
// itself), plain rrweb segments — each with one request sent twice (an SDK
// retry), through the Pub/Sub emulator into Pack, and reads every replay
// back through Serve: the events equal what was sent, in order, once, and
// the metadata names the SDK and its id.
func TestEndToEnd(t *testing.T) {
	d := testenv.NewDeps(t)
	e := newEnvDB(t, testConfig(), d.DB)
	key := e.key(42, "http://localhost:8080")
	const origin = "http://localhost:8080"
	ua := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"

	// Sentry: segments 0 and 1, segment 0 twice.
	sentryHex := strings.ReplaceAll(uuid.NewString(), "-", "")
	s0, s1 := rrwebEvents(1_700_000_000_000, "sentry-0"), rrwebEvents(1_700_000_005_000, "sentry-1")
	for _, body := range [][]byte{envelope(sentryHex, 0, s0, true), envelope(sentryHex, 1, s1, false), envelope(sentryHex, 0, s0, true)} {
		if s, c, _ := e.post("/api/42/envelope/?sentry_key="+key+"&sentry_version=7", body, "Origin", origin, "Content-Type", "text/plain;charset=UTF-8", "User-Agent", ua); s != 200 {
			t.Fatalf("sentry: %d %s", s, c)
		}
	}

	// PostHog: two batches of a UUIDv7 session, the first twice.
	session := uuid.Must(uuid.NewV7())
	start := time.Now().UnixMilli()
	plainA, sentA := posthogEvents(start+1000, "typed-a")
	plainB, sentB := posthogEvents(start+6000, "typed-b")
	batchA := gzipBytes(snapshotBatch(key, session.String(), "win-1", sentA))
	batchB := gzipBytes(snapshotBatch(key, session.String(), "win-1", sentB))
	for _, body := range [][]byte{batchA, batchB, batchA} {
		if s, c, _ := e.post("/s/?ver=1.200.0&_=1", body, "Origin", origin, "Content-Type", "text/plain", "User-Agent", ua); s != 200 {
			t.Fatalf("posthog: %d %s", s, c)
		}
	}

	// rrweb: segment 0 plain (twice), segment 1 gzip.
	rrReplay := uuid.New()
	r0, r1 := rrwebEvents(1_700_000_000_000, "rr-0"), rrwebEvents(1_700_000_003_000, "rr-1")
	for i, body := range [][]byte{r0, gzipBytes(r1), r0} {
		path := fmt.Sprintf("/v1/projects/42/replays/%s/segments/%d?key=%s&url=http://localhost:8080/", rrReplay, []int{0, 1, 0}[i], key)
		if s, c, _ := e.post(path, body, "Origin", origin, "Content-Type", "text/plain", "User-Agent", ua); s != 200 {
			t.Fatalf("rrweb: %d %s", s, c)
		}
	}

	// Deliver all nine messages to Pack.
	pcfg := packer.Config{
		FlushBytes: 8 << 20, FlushSegments: 1000, FlushAge: 50 * time.Millisecond, MaxConcurrency: 1000,
		MaxBufferBytes: 64 << 20, FlushTimeout: 30 * time.Second,
		Limits: segment.Limits{MaxDecompressed: 8 << 20},
	}
	p := packer.New(pcfg, d.DB, d.Blobs, d.Keyring(), failReject{t})
	defer p.Close()
	results := deliver(t, e, p, 9)
	counts := map[packer.Result]int{}
	for _, r := range results {
		counts[r]++
	}
	if counts[packer.Stored] != 6 || counts[packer.Duplicate] != 3 {
		t.Errorf("pack results %v, want 6 stored and 3 duplicates", counts)
	}

	// Read back through Serve.
	srv := serve.New(serve.ConfigFrom(&config.Serve{CoalesceGapBytes: 1 << 20, MaxReadBytes: 16 << 20, ReadParallelism: 8}),
		d.DB, d.Blobs, d.KEKCache(), auth.NewVerifier(serveSecret, auth.Policy{}))
	hs := httptest.NewServer(srv)
	defer hs.Close()
	token, err := auth.Mint(serveSecret, 42, []string{auth.ScopeRead}, "test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, hs.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	sentryReplay := uuid.MustParse(sentryHex)
	tests := []struct {
		name     string
		replay   uuid.UUID
		want     []any
		source   string
		sourceID string
		sdk      string
		urls     []string
	}{
		{"sentry", sentryReplay, concat(t, s0, s1), "sentry", sentryHex, "sentry.javascript.browser/8.0.0", []string{"http://localhost/page"}},
		{"posthog", session, concat(t, plainA, plainB), "posthog", session.String(), "posthog-js/1.200.0", []string{"http://localhost/p"}},
		{"rrweb", rrReplay, concat(t, r0, r1), "rrweb", rrReplay.String(), "", []string{"http://localhost:8080/"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []any
			get(fmt.Sprintf("/v1/projects/42/replays/%s/recording", tc.replay), &got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("recording (-sent +served):\n%s", diff)
			}
			var meta serve.Metadata
			get(fmt.Sprintf("/v1/projects/42/replays/%s", tc.replay), &meta)
			if meta.SegmentCount != 2 || meta.Source != tc.source || meta.SourceID != tc.sourceID ||
				meta.SDK != tc.sdk || meta.UserAgentFamily != "Chrome" || !cmp.Equal(meta.URLs, tc.urls) {
				t.Errorf("metadata = %+v", meta)
			}
		})
	}
}

// deliver pulls n messages from e's subscription into Pack, acking each
// once Pack has settled it.
func deliver(t *testing.T, e *env, p *packer.Packer, n int) []packer.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		mu      sync.Mutex
		results []packer.Result
	)
	err := e.client.Subscriber(e.sub).Receive(ctx, func(ctx context.Context, m *pubsub.Message) {
		res, err := p.Ingest(ctx, packer.Message{ID: m.ID, Data: m.Data, Attributes: m.Attributes})
		if err != nil {
			m.Nack()
			return
		}
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		results = append(results, res)
		if len(results) == n {
			cancel()
		}
	})
	if err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
	if len(results) != n {
		t.Fatalf("Pack settled %d messages, want %d", len(results), n)
	}
	return results
}

// posthogEvents returns a batch of rrweb events as plain events and as
// posthog-js sends them: the full snapshot's data and the mutation's fields
// gzipped into latin-1 strings, marked "cv":"2024-10".
func posthogEvents(ts int64, text string) (plain []byte, sent []json.RawMessage) {
	meta := fmt.Sprintf(`{"type":4,"data":{"href":"http://localhost/p","width":800,"height":600},"timestamp":%d}`, ts)
	fullData := `{"node":{"type":0,"childNodes":[{"type":2,"tagName":"input","attributes":{"value":""},"childNodes":[],"id":2}],"id":1},"initialOffset":{"left":0,"top":0}}`
	adds := fmt.Sprintf(`[{"parentId":1,"nextId":null,"node":{"type":3,"textContent":%q,"id":3}}]`, text)
	mutation := fmt.Sprintf(`{"type":3,"data":{"source":0,"texts":[],"attributes":[],"removes":[],"adds":%s},"timestamp":%d}`, adds, ts+2)
	input := fmt.Sprintf(`{"type":3,"data":{"source":5,"text":%q,"isChecked":false,"id":2},"timestamp":%d}`, text, ts+3)
	plain = []byte("[" + meta + fmt.Sprintf(`,{"type":2,"data":%s,"timestamp":%d},`, fullData, ts+1) + mutation + "," + input + "]")

	z := func(s string) string { b, _ := json.Marshal(latin1(gzipBytes([]byte(s)))); return string(b) }
	sent = []json.RawMessage{
		json.RawMessage(meta),
		json.RawMessage(fmt.Sprintf(`{"type":2,"data":%s,"timestamp":%d,"cv":"2024-10"}`, z(fullData), ts+1)),
		json.RawMessage(fmt.Sprintf(`{"type":3,"data":{"source":0,"texts":%s,"attributes":%s,"removes":%s,"adds":%s},"timestamp":%d,"cv":"2024-10"}`,
			z("[]"), z("[]"), z("[]"), z(adds), ts+2)),
		json.RawMessage(input),
	}
	return plain, sent
}

// concat decodes JSON arrays of events and joins them.
func concat(t *testing.T, arrays ...[]byte) []any {
	t.Helper()
	var all []any
	for _, a := range arrays {
		var evs []any
		if err := json.NewDecoder(bytes.NewReader(a)).Decode(&evs); err != nil {
			t.Fatal(err)
		}
		all = append(all, evs...)
	}
	return all
}
