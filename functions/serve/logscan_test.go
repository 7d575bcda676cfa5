package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/google/uuid"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/functions/shred"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/logging"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/telemetry"
	"github.com/replayvault/replayvault/shared/testenv"
)

// TestLogsHoldNoSecrets runs a session across the functions with telemetry
// on and every log at debug level — pushes (valid, redelivered, invalid)
// through Pack, reads and failed reads through Serve, a shred and a sweep
// through Shred — and scans every log line: it is Cloud Logging JSON
// (severity, message), lines logged in a request carry its trace, and none
// holds the recorded text, the tokens, the JWT secret or any wrapped key,
// in plain, base64 or hex form.
func TestLogsHoldNoSecrets(t *testing.T) {
	d := testenv.NewDeps(t)
	ps := testenv.NewPubSub(t)
	ctx := context.Background()
	var logs lockedBuffer
	prev := slog.Default()
	slog.SetDefault(logging.NewForProject(&logs, "debug", "proj"))
	t.Cleanup(func() { slog.SetDefault(prev) })
	tel := telemetry.New(sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter())),
		sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())))

	// Pack, with the real reject topic.
	client, err := ps.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	topic := fmt.Sprintf("projects/%s/topics/rejects-%s", ps.Project(), uuid.NewString()[:8])
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	pub := client.Publisher(topic)
	defer pub.Stop()
	rej := packer.NewPubSubRejecter(pub, 10*time.Second)
	pm, err := telemetry.NewPack(tel)
	if err != nil {
		t.Fatal(err)
	}
	p := packer.New(packer.Config{
		FlushBytes: 8 << 20, FlushSegments: 5, FlushAge: 100 * time.Millisecond, MaxConcurrency: 1000,
		MaxBufferBytes: 64 << 20, FlushTimeout: 30 * time.Second,
		Limits: segment.Limits{MaxDecompressed: 1 << 20},
	}, d.DB, blob.NewTraced(d.Blobs, tel.Tracer), d.Keyring(), rej, packer.WithTelemetry(tel, pm))
	defer p.Close()

	const typed = "hunter2-typed-by-the-user-7f3a"
	replay := uuid.New()
	attrs := func(seg int) map[string]string {
		return map[string]string{"project_id": "4", "replay_id": replay.String(), "segment_id": strconv.Itoa(seg)}
	}
	var pushes []*http.Request
	for i := range 6 {
		data := fmt.Appendf(nil, `[{"type":3,"timestamp":%d,"data":{"source":5,"text":%q,"id":%d}}]`, 1_700_000_000_000+i, typed, i)
		pushes = append(pushes, push(t, fmt.Sprint("m", i), data, attrs(i)))
	}
	pushes = append(pushes,
		push(t, "m0-again", fmt.Appendf(nil, `[{"type":3,"timestamp":1,"data":{"text":%q}}]`, typed), attrs(0)),
		push(t, "bad-json", []byte(typed+` not json`), attrs(7)),
		push(t, "bad-object", fmt.Appendf(nil, `{"text":%q}`, typed), attrs(8)),
		push(t, "bad-attrs", fmt.Appendf(nil, `[{"text":%q}]`, typed), map[string]string{"project_id": "12x"}),
	)
	var wg sync.WaitGroup
	for _, req := range pushes {
		wg.Go(func() {
			w := httptest.NewRecorder()
			p.ServeHTTP(w, req.WithContext(ctx))
			if w.Code != http.StatusOK {
				t.Errorf("push: status %d, want 200", w.Code)
			}
		})
	}
	wg.Wait()

	// Serve: a read, a metadata call, a bad token and a wrong project.
	opt, _, err := Telemetry(tel)
	if err != nil {
		t.Fatal(err)
	}
	srv := serveHTTP(t, New(defaults(), d.DB, blob.NewTraced(d.Blobs, tel.Tracer), d.KEKCache(), auth.NewVerifier(testSecret, auth.Policy{}), opt))
	readTok := token(t, 4)
	body := readAll(t, get(t, recordingURL(srv, 4, replay, ""), readTok))
	if !bytes.Contains(body, []byte(typed)) {
		t.Fatalf("the recording does not hold the typed text: %s", body)
	}
	readAll(t, get(t, fmt.Sprintf("%s/v1/projects/4/replays/%s", srv, replay), readTok))
	for _, tok := range []string{readTok + "x", token(t, 5), "garbage." + typed} {
		resp := get(t, recordingURL(srv, 4, replay, ""), tok)
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("token %q: status %d, want an error", tok, resp.StatusCode)
		}
	}

	// Collect the key material before the shred destroys it.
	var secrets [][]byte
	r, err := d.DB.Pool.Query(ctx, `SELECT wrapped_dek FROM segments UNION ALL SELECT wrapped FROM keks`)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var b []byte
		if err := r.Scan(&b); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, b)
	}
	r.Close()
	if len(secrets) < 7 {
		t.Fatalf("only %d wrapped keys found", len(secrets))
	}

	// Shred the replay, then sweep.
	so, err := shred.Telemetry(tel)
	if err != nil {
		t.Fatal(err)
	}
	sh := serveHTTP(t, shred.New(shred.Config{SweepToken: "sweep-token-5e1f", SweepBatch: 100, SweepBudget: time.Minute, DeleteParallelism: 2},
		d.DB, d.Blobs, auth.NewVerifier(testSecret, auth.Policy{}), so).Handler())
	delTok := token(t, 4, auth.ScopeDelete)
	for _, rq := range []struct{ method, url, tok string }{
		{http.MethodDelete, fmt.Sprintf("%s/v1/projects/4/replays/%s", sh, replay), delTok},
		{http.MethodPost, sh + "/v1/sweep", "sweep-token-5e1f"},
		{http.MethodPost, sh + "/v1/sweep", "wrong-" + typed},
	} {
		req, _ := http.NewRequest(rq.method, rq.url, nil)
		req.Header.Set("Authorization", "Bearer "+rq.tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if resp := get(t, recordingURL(srv, 4, replay, ""), readTok); resp.StatusCode != http.StatusGone {
		t.Errorf("read after shred: status %d, want 410", resp.StatusCode)
	} else {
		resp.Body.Close()
	}

	forbidden := map[string]string{
		"typed text": typed, "read token": readTok, "delete token": delTok,
		"jwt secret": testSecret, "sweep token": "sweep-token-5e1f",
	}
	for k, v := range map[string]string{"typed text": typed, "read token": readTok} {
		forbidden[k+" (base64)"] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	for i, s := range secrets {
		forbidden[fmt.Sprintf("wrapped key %d (base64)", i)] = base64.StdEncoding.EncodeToString(s)[:16]
		forbidden[fmt.Sprintf("wrapped key %d (hex)", i)] = hex.EncodeToString(s)[:16]
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) < 15 {
		t.Fatalf("only %d log lines; the session did not run:\n%s", len(lines), logs.String())
	}
	traced := 0
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not JSON: %q", line)
			continue
		}
		if m["severity"] == nil || m["message"] == nil {
			t.Errorf("no severity or message: %s", line)
		}
		if m[logging.TraceKey] != nil {
			traced++
		}
		for what, s := range forbidden {
			if strings.Contains(line, s) {
				t.Errorf("log line holds the %s: %s", what, line)
			}
		}
	}
	if traced < len(pushes) {
		t.Errorf("%d of %d log lines carry a trace, want at least one per push", traced, len(lines))
	}
}

// push is the request a Pub/Sub push subscription sends for a message.
func push(t *testing.T, id string, data []byte, attrs map[string]string) *http.Request {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"message":      map[string]any{"messageId": id, "data": data, "attributes": attrs},
		"subscription": "projects/p/subscriptions/pack",
	})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
